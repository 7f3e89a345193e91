//! Figures measured outside cutover and attached to a run: what a load generator saw
//! while the run moved its databases (writes acknowledged, writes lost), or a drill's
//! own clock.
//!
//! cutover cannot count the application's writes itself, so whoever ran the writer
//! reports them with `cutover report RUN_ID --measure writes_acknowledged=N --measure
//! writes_lost=M`. They are kept beside the journal in `measures.json` (the journal stays
//! the run's own record) and every report of the run shows them from then on. A report
//! of a run nobody measured says so instead of showing an empty cell.

use crate::failure::Failure;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The file, in the run directory.
pub const MEASURES_FILE: &str = "measures.json";

/// The measures a caller may attach, with the unit each is given in. Whole numbers only:
/// they are counts or whole seconds as a load generator reports them.
const KNOWN: [(&str, &str); 4] = [
    (super::model::EXTRA_WRITES_ACKNOWLEDGED, "writes"),
    (super::model::EXTRA_WRITES_LOST, "writes"),
    (super::model::EXTRA_RTO, "seconds"),
    (super::model::EXTRA_RPO, "seconds"),
];

/// What `measures.json` holds: measure name → value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Measures(pub BTreeMap<String, u64>);

impl Measures {
    /// Parses `--measure` arguments (`NAME=VALUE`). Every problem is reported, naming the
    /// argument and the measures that exist; nothing is returned unless all are good.
    pub fn parse_args(args: &[String]) -> Result<Measures, String> {
        let mut out = BTreeMap::new();
        let mut problems = Vec::new();
        for arg in args {
            match parse_one(arg) {
                Ok((k, v)) => {
                    out.insert(k, v);
                }
                Err(p) => problems.push(p),
            }
        }
        let m = Measures(out);
        problems.extend(m.inconsistency());
        if problems.is_empty() {
            Ok(m)
        } else {
            Err(problems.join("\n"))
        }
    }

    /// What makes these figures contradict each other, if anything.
    fn inconsistency(&self) -> Option<String> {
        let ack = self.0.get(super::model::EXTRA_WRITES_ACKNOWLEDGED)?;
        let lost = self.0.get(super::model::EXTRA_WRITES_LOST)?;
        (lost > ack).then(|| format!(
            "writes_lost={lost} is more than writes_acknowledged={ack}: a lost write is an acknowledged one that is missing"
        ))
    }

    /// The measures attached to the run in `run_dir`; empty when there are none.
    pub fn load(run_dir: &Path) -> Result<Measures, Failure> {
        let path = run_dir.join(MEASURES_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Failure::permanent(format!("{} cannot be read: {e}", path.display())).with_hint(
                    "it holds only figures given with `cutover report --measure`; fix or remove it and give them again",
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Measures::default()),
            Err(e) => Err(Failure::permanent(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    /// Adds `new` to the measures of the run in `run_dir` (a name given again replaces
    /// its value) and writes the file atomically. Figures that would contradict the ones
    /// already recorded are refused and nothing is written.
    pub fn record(run_dir: &Path, new: &Measures) -> Result<Measures, Failure> {
        let mut all = Measures::load(run_dir)?;
        all.0.extend(new.0.iter().map(|(k, v)| (k.clone(), *v)));
        if let Some(problem) = all.inconsistency() {
            return Err(Failure::permanent(format!(
                "{problem} (with the figures already attached); nothing was recorded"
            )));
        }
        let text = serde_json::to_string_pretty(&all).expect("a map of numbers serialises");
        super::write_atomic(&run_dir.join(MEASURES_FILE), &(text + "\n"))?;
        Ok(all)
    }
}

fn parse_one(arg: &str) -> Result<(String, u64), String> {
    let names = || {
        KNOWN
            .iter()
            .map(|(k, unit)| format!("{k} ({unit})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some((name, value)) = arg.split_once('=') else {
        return Err(format!(
            "--measure {arg:?}: expected NAME=VALUE, e.g. writes_acknowledged=2150"
        ));
    };
    let name = name.trim();
    if !KNOWN.iter().any(|(k, _)| *k == name) {
        return Err(format!(
            "--measure {arg:?}: there is no measure {name:?}; the measures are {}",
            names()
        ));
    }
    let value = value
        .trim()
        .parse::<u64>()
        .map_err(|_| format!("--measure {arg:?}: {value:?} is not a whole number ≥ 0"))?;
    Ok((name.to_owned(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn known_measures_parse_and_a_repeated_name_keeps_the_last_value() {
        let m = Measures::parse_args(&args(&[
            "writes_acknowledged=10",
            "writes_lost=0",
            "writes_acknowledged=12",
        ]))
        .unwrap();
        assert_eq!(m.0.get("writes_acknowledged"), Some(&12));
        assert_eq!(m.0.get("writes_lost"), Some(&0));
    }

    #[test]
    fn every_bad_argument_is_named_with_what_to_do() {
        let err = Measures::parse_args(&args(&["writes=3", "writes_lost=-1", "rto_seconds"]))
            .unwrap_err();
        assert!(
            err.contains("no measure \"writes\"") && err.contains("writes_acknowledged (writes)"),
            "{err}"
        );
        assert!(err.contains("\"-1\" is not a whole number"), "{err}");
        assert!(err.contains("expected NAME=VALUE"), "{err}");
        let err =
            Measures::parse_args(&args(&["writes_acknowledged=3", "writes_lost=4"])).unwrap_err();
        assert!(err.contains("more than writes_acknowledged=3"), "{err}");
    }

    #[test]
    fn a_figure_contradicting_the_recorded_ones_is_refused_and_nothing_changes() {
        let dir = tempfile::tempdir().unwrap();
        let given = |a: &[&str]| Measures::parse_args(&args(a)).unwrap();
        Measures::record(dir.path(), &given(&["writes_acknowledged=3"])).unwrap();
        let err = Measures::record(dir.path(), &given(&["writes_lost=5"])).unwrap_err();
        assert!(
            err.message.contains("nothing was recorded"),
            "{}",
            err.message
        );
        assert_eq!(
            Measures::load(dir.path()).unwrap(),
            given(&["writes_acknowledged=3"])
        );
    }

    #[test]
    fn recorded_measures_merge_with_earlier_ones() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Measures::load(dir.path()).unwrap(), Measures::default());
        Measures::record(
            dir.path(),
            &Measures::parse_args(&args(&["writes_acknowledged=5"])).unwrap(),
        )
        .unwrap();
        let all = Measures::record(
            dir.path(),
            &Measures::parse_args(&args(&["writes_lost=0"])).unwrap(),
        )
        .unwrap();
        assert_eq!(all, Measures::load(dir.path()).unwrap());
        assert_eq!(all.0.len(), 2);
    }
}
