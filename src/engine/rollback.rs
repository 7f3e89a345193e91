//! `cutover rollback RUN_ID`: a run of its own that moves the application back from green
//! to blue after a blue-green run switched traffic, and the automatic rollback of a
//! failed bake.
//!
//! # What it reads
//! The undone run's journal: the succeeded `traffic.switch` step's outputs `from` (blue's
//! instances), `to` (green's) and `fingerprints` (the content green held at the switch,
//! which equalled frozen blue's). They become the rollback runbook's params
//! (`blue_<db>`, `green_<db>`, `fingerprint_<db>`, `of`), so the plan shows them and the
//! rollback's own journal records them; `runbooks/rollback.toml` decides from green's
//! fingerprint whether to switch straight back or migrate green's writes back. For a run
//! that succeeded (blue removed) it also reads the `image`, `version` and
//! `target_version` its `db.preflight` of each blue journaled, and runs
//! `runbooks/rollback-fresh-blue.toml` with `green_<db>` and `blue_image_<db>`.
//!
//! # Guarantees
//! - A rollback is a run like any other (journaled, resumable, reported) under the same
//!   environment lease; it takes over the undone run's lease (stale, or handed over by
//!   this very process when a failed bake starts it). A live lease of another process is
//!   never taken: the undone run must stop first.
//! - Both journals link the pair (`RunLinked`): `cutover status` shows it, and the undone
//!   run can no longer be resumed (its rollback is what goes on).
//! - A run that succeeded (its bake passed and blue was removed) is rolled back onto a
//!   new blue built from blue's image (`rollback-fresh-blue.toml`), never onto an older
//!   version than green's.
//! - Refused, with nothing done (exit 2): a run that never switched, that switched back
//!   already, that a rollback already undid or is undoing, or that succeeded onto a newer
//!   version than blue's (no engine loads a newer store) or without a recorded image.

use super::executor::SessionEnd;
use super::journal::Outcome;
use super::run::{self, load_plan, load_view, Backend, RunError, RunOptions, RunSummary};
use super::state::{CompensationStatus, RunView, StepStatus};
use crate::config::Environment;
use crate::ids::{RunId, StepId};
use crate::progress::ProgressHandle;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tokio::sync::watch;

/// Where the undone run moved the application: from blue to green, per database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwitchRecord {
    pub step: StepId,
    pub blue: BTreeMap<String, String>,
    pub green: BTreeMap<String, String>,
    pub fingerprints: BTreeMap<String, String>,
    /// `Some` when the run succeeded, so its bake passed and blue was removed: the image
    /// each database's blue ran, from which the rollback builds a new blue.
    pub removed_blue_images: Option<BTreeMap<String, String>>,
}

impl SwitchRecord {
    /// The rollback runbook's params: blue, green and the switch's fingerprints while
    /// blue is alive; green and blue's images when blue was removed.
    pub fn sets(&self, of: &RunId) -> Vec<(String, String)> {
        let mut sets = vec![("of".to_string(), of.to_string())];
        if let Some(images) = &self.removed_blue_images {
            for (db, id) in &self.green {
                sets.push((format!("green_{db}"), id.clone()));
            }
            for (db, image) in images {
                sets.push((format!("blue_image_{db}"), image.clone()));
            }
            return sets;
        }
        for (db, id) in &self.blue {
            sets.push((format!("blue_{db}"), id.clone()));
        }
        for (db, id) in &self.green {
            sets.push((format!("green_{db}"), id.clone()));
        }
        for (db, fp) in &self.fingerprints {
            sets.push((format!("fingerprint_{db}"), fp.clone()));
        }
        sets
    }
}

fn string_map(value: Option<&serde_json::Value>) -> BTreeMap<String, String> {
    value
        .and_then(|v| v.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

fn refused(message: String) -> RunError {
    RunError::NotResumable(message)
}

/// What a rollback of `view` would undo, or why there is nothing a rollback may do.
pub fn switch_record(view: &RunView, of: &RunId) -> Result<SwitchRecord, RunError> {
    if let Some(link) = view.rolled_back_by() {
        match link.outcome {
            // The earlier rollback failed and was undone: the app is on green; try again.
            Some(Outcome::RolledBack | Outcome::Failed) => {}
            other => {
                return Err(refused(format!(
                    "run {of} is already rolled back by run {} ({}); see `cutover status {}`",
                    link.run_id,
                    other.map_or_else(|| "unfinished: resume it".to_string(), |o| o.to_string()),
                    link.run_id
                )))
            }
        }
    }
    match view.outcome {
        Some(Outcome::Succeeded) => {}
        Some(Outcome::Failed | Outcome::RolledBack) => {
            return Err(refused(format!(
                "run {of} ended {}: it was undone already and the application is where it was before it",
                view.outcome.expect("matched")
            )))
        }
        Some(Outcome::NeedsAttention) | None => {}
    }
    let found = view.completion_order.iter().find_map(|id| {
        let step = view.steps.get(id)?;
        let outputs = step.outputs.as_ref()?;
        let blue = string_map(outputs.get("from"));
        (step.status == StepStatus::Succeeded && outputs.contains_key("to") && !blue.is_empty())
            .then_some((id, step, outputs, blue))
    });
    let Some((id, step, outputs, blue)) = found else {
        return Err(refused(format!(
            "run {of} never switched traffic (no traffic.switch step with a recorded `from`); nothing to move back. If it needs attention, `cutover resume {of}` finishes its own rollback"
        )));
    };
    if step.compensation == Some(CompensationStatus::Succeeded) {
        return Err(refused(format!(
            "run {of} switched back already (step {id} was undone)"
        )));
    }
    let removed_blue_images = match view.outcome {
        Some(Outcome::Succeeded) => Some(removed_blue_images(view, of, &blue)?),
        _ => None,
    };
    let record = SwitchRecord {
        step: id.clone(),
        blue,
        green: string_map(outputs.get("to")),
        fingerprints: string_map(outputs.get("fingerprints")),
        removed_blue_images,
    };
    if record.blue.keys().ne(record.green.keys()) {
        return Err(refused(format!(
            "run {of}: step {id} recorded blue for {:?} but green for {:?}; cannot pair them",
            record.blue.keys().collect::<Vec<_>>(),
            record.green.keys().collect::<Vec<_>>()
        )));
    }
    Ok(record)
}

/// For a run that succeeded (its bake passed, blue was removed): the image each blue
/// ran, as the run's `db.preflight` of that instance journaled it.
///
/// Refused when the journal records no image (a run from before preflight recorded
/// one), or when green runs a newer version than blue did: the reverse migration would
/// load green's newer store into the older version, which cannot read it (Neo4j
/// supports no downgrade), so the application stays on green.
fn removed_blue_images(
    view: &RunView,
    of: &RunId,
    blue: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, RunError> {
    let mut images = BTreeMap::new();
    for (db, instance) in blue {
        let preflight = view.completion_order.iter().find_map(|id| {
            let step = view.steps.get(id)?;
            let outputs = step.outputs.as_ref()?;
            (step.status == StepStatus::Succeeded
                && outputs.get("instance_id").and_then(|v| v.as_str()) == Some(instance.as_str())
                && outputs.contains_key("target_version"))
            .then_some(outputs)
        });
        let text = |key: &str| {
            preflight
                .and_then(|o| o.get(key))
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let image = text("image");
        if image.is_empty() {
            return Err(refused(format!(
                "run {of} succeeded and removed blue {db} ({instance}), and its journal records no image for it: there is nothing to rebuild blue from. The application stays on green; migrate onto new instances with `cutover run runbooks/blue-green.toml` instead"
            )));
        }
        let (blue_version, green_version) = (text("version"), text("target_version"));
        if crate::steps::preflight::version_older(&blue_version, &green_version) {
            return Err(refused(format!(
                "run {of} moved {db} from {blue_version} (blue, removed) to {green_version} (green): rebuilding blue would load green's {green_version} store into {blue_version}, which cannot read a newer store. The application stays on green; to leave green, migrate onto new instances of {green_version} or newer with `cutover run runbooks/blue-green.toml`"
            )));
        }
        images.insert(db.clone(), image);
    }
    Ok(images)
}

/// The rollback runbook used by default, beside the undone run's runbook:
/// `rollback.toml` while blue is alive, `rollback-fresh-blue.toml` when it was removed.
pub fn default_runbook(view: &RunView, record: &SwitchRecord) -> PathBuf {
    let name = if record.removed_blue_images.is_some() {
        "rollback-fresh-blue.toml"
    } else {
        "rollback.toml"
    };
    Path::new(&view.runbook)
        .parent()
        .map_or_else(|| PathBuf::from(name), |d| d.join(name))
}

/// Starts the rollback of run `of` in `environment` with `runbook` (default
/// [`default_runbook`]).
pub async fn start(
    of: RunId,
    environment: &str,
    runbook: Option<PathBuf>,
    reporter: Option<std::sync::Arc<dyn run::RunReporter>>,
    progress: ProgressHandle,
    stop: watch::Receiver<bool>,
) -> Result<RunSummary, RunError> {
    let env = Environment::load(environment).map_err(|p| RunError::Invalid(Box::new(p)))?;
    let backend = Backend::open(&env).await?;
    backend.fetch_run(&env.state_dir, &of).await?;
    let view = load_view(&env.state_dir, &of)?;
    let record = switch_record(&view, &of)?;
    let runbook = runbook.unwrap_or_else(|| default_runbook(&view, &record));
    let sets = record.sets(&of);
    let environment_file = env.source.path.display().to_string();
    let plan = load_plan(&runbook, &environment_file, &sets)
        .map_err(|p| RunError::Invalid(Box::new(p)))?;
    let options = RunOptions {
        sets,
        reporter,
        run_id: None,
        take_over_lease: false,
        rollback_of: Some(of),
    };
    run::start(plan, options, progress, stop).await
}

/// Whether `summary` is a run whose bake failed and that a rollback must finish: it needs
/// attention (its own compensation stopped because green took writes) and it switched.
/// A bake failure before any write is undone by the run's own compensation (outcome
/// RolledBack) and needs no rollback run.
pub fn wanted_after(summary: &RunSummary) -> bool {
    summary.bake_failed
        && matches!(
            summary.end,
            SessionEnd::Finished(Outcome::NeedsAttention, _)
        )
        && switch_record(&summary.view, &summary.run_id).is_ok()
}

/// The exit code of a run whose failed bake was rolled back by `rollback`: 1 when the
/// rollback succeeded (the run failed; the application is back on blue with every
/// write), 3 when it did not (green serves; partly applied), 130 when interrupted.
pub fn chained_exit_code(rollback: &Result<RunSummary, RunError>) -> u8 {
    match rollback {
        Ok(s) => match &s.end {
            SessionEnd::Finished(Outcome::Succeeded, _) => 1,
            SessionEnd::Finished(..) => 3,
            SessionEnd::Interrupted => 130,
        },
        Err(e) => e.exit_code().max(3),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::journal::{Event, Record};
    use chrono::Utc;

    fn record(seq: u64, event: Event) -> Record {
        Record {
            seq,
            at: Utc::now(),
            event,
        }
    }

    fn switched(extra: Vec<Event>) -> RunView {
        switched_after(Vec::new(), extra)
    }

    /// Blue's preflight as the journal records it: `image`, running `version`, green's
    /// `target_version`.
    fn preflight(image: &str, version: &str, target_version: &str) -> Vec<Event> {
        vec![
            Event::StepStarted {
                step: StepId::new("preflight-ledger"),
                attempt: 1,
                kind: None,
            },
            Event::StepSucceeded {
                step: StepId::new("preflight-ledger"),
                outputs: serde_json::json!({
                    "instance_id": "i-blue",
                    "image": image,
                    "version": version,
                    "target_version": target_version,
                })
                .as_object()
                .unwrap()
                .clone(),
            },
        ]
    }

    fn succeeded() -> Event {
        Event::RunFinished {
            outcome: Outcome::Succeeded,
            message: String::new(),
        }
    }

    fn switched_after(before: Vec<Event>, extra: Vec<Event>) -> RunView {
        let mut events = before;
        events.extend([
            Event::StepStarted {
                step: StepId::new("switch"),
                attempt: 1,
                kind: None,
            },
            Event::StepSucceeded {
                step: StepId::new("switch"),
                outputs: serde_json::json!({
                    "from": { "ledger": "i-blue" },
                    "to": { "ledger": "i-green" },
                    "fingerprints": { "ledger": "fp0" },
                    "version_id": "v2",
                })
                .as_object()
                .unwrap()
                .clone(),
            },
        ]);
        events.extend(extra);
        let records: Vec<Record> = events
            .into_iter()
            .enumerate()
            .map(|(i, e)| record(i as u64 + 1, e))
            .collect();
        crate::engine::state::replay(&records)
    }

    #[test]
    fn the_switch_outputs_become_the_rollback_params() {
        let view = switched(vec![Event::RunFinished {
            outcome: Outcome::NeedsAttention,
            message: "bake failed".into(),
        }]);
        let of = RunId::new("r1");
        let record = switch_record(&view, &of).unwrap();
        assert_eq!(
            record.sets(&of),
            vec![
                ("of".to_string(), "r1".to_string()),
                ("blue_ledger".to_string(), "i-blue".to_string()),
                ("green_ledger".to_string(), "i-green".to_string()),
                ("fingerprint_ledger".to_string(), "fp0".to_string()),
            ]
        );
    }

    #[test]
    fn a_succeeded_run_is_rolled_back_onto_a_new_blue_from_blues_image() {
        let of = RunId::new("r1");
        let view = switched_after(
            preflight("neo4j-5.26.30", "5.26.30", "5.26.30"),
            vec![succeeded()],
        );
        let record = switch_record(&view, &of).unwrap();
        assert_eq!(
            record.sets(&of),
            vec![
                ("of".to_string(), "r1".to_string()),
                ("green_ledger".to_string(), "i-green".to_string()),
                ("blue_image_ledger".to_string(), "neo4j-5.26.30".to_string()),
            ]
        );
        assert!(default_runbook(&view, &record).ends_with("rollback-fresh-blue.toml"));
        // While blue is alive (the run needs attention), the plain rollback.
        let alive = switched(vec![Event::RunFinished {
            outcome: Outcome::NeedsAttention,
            message: String::new(),
        }]);
        let record = switch_record(&alive, &of).unwrap();
        assert!(default_runbook(&alive, &record).ends_with("rollback.toml"));
    }

    #[test]
    fn a_rollback_is_refused_when_there_is_nothing_to_move_back() {
        let of = RunId::new("r1");
        let view = switched(vec![Event::RunFinished {
            outcome: Outcome::RolledBack,
            message: String::new(),
        }]);
        let err = switch_record(&view, &of).unwrap_err().to_string();
        assert!(err.contains("undone already"), "{err}");
        // Succeeded, blue removed: refused without an image to rebuild it from, and onto
        // an older version than green runs.
        let no_image = switched(vec![succeeded()]);
        let err = switch_record(&no_image, &of).unwrap_err().to_string();
        assert!(err.contains("records no image"), "{err}");
        let upgraded = switched_after(
            preflight("neo4j-5.26.30", "5.26.30", "2026.08.1"),
            vec![succeeded()],
        );
        let err = switch_record(&upgraded, &of).unwrap_err().to_string();
        assert!(
            err.contains("load green's 2026.08.1 store into 5.26.30"),
            "{err}"
        );
        let never = crate::engine::state::replay(&[]);
        let err = switch_record(&never, &of).unwrap_err().to_string();
        assert!(err.contains("never switched"), "{err}");
        let linked = switched(vec![Event::RunLinked {
            relation: crate::engine::journal::RunRelation::RolledBackBy,
            run_id: RunId::new("r2"),
            outcome: None,
        }]);
        let err = switch_record(&linked, &of).unwrap_err().to_string();
        assert!(err.contains("already rolled back by run r2"), "{err}");
        // A rollback that failed and was undone leaves the app on green: try again.
        let undone = switched(vec![Event::RunLinked {
            relation: crate::engine::journal::RunRelation::RolledBackBy,
            run_id: RunId::new("r2"),
            outcome: Some(Outcome::RolledBack),
        }]);
        assert!(switch_record(&undone, &of).is_ok());
    }
}
