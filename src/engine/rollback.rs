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
//! fingerprint whether to switch straight back or migrate green's writes back.
//!
//! # Guarantees
//! - A rollback is a run like any other (journaled, resumable, reported) under the same
//!   environment lease; it takes over the undone run's lease (stale, or handed over by
//!   this very process when a failed bake starts it). A live lease of another process is
//!   never taken: the undone run must stop first.
//! - Both journals link the pair (`RunLinked`): `cutover status` shows it, and the undone
//!   run can no longer be resumed (its rollback is what goes on).
//! - Refused, with nothing done (exit 2): a run that never switched, that switched back
//!   already, that succeeded (its bake passed and blue is gone), or that a rollback
//!   already undid or is undoing.

use super::executor::SessionEnd;
use super::journal::Outcome;
use super::progress::ProgressHandle;
use super::run::{self, load_plan, load_view, Backend, RunError, RunOptions, RunSummary};
use super::state::{CompensationStatus, RunView, StepStatus};
use crate::config::Environment;
use crate::ids::{RunId, StepId};
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
}

impl SwitchRecord {
    /// The rollback runbook's params.
    pub fn sets(&self, of: &RunId) -> Vec<(String, String)> {
        let mut sets = vec![("of".to_string(), of.to_string())];
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
        Some(Outcome::Succeeded) => {
            return Err(refused(format!(
                "run {of} succeeded: its bake passed and blue was removed, so there is no blue to move back to; migrate onto new instances with `cutover run runbooks/blue-green.toml` instead"
            )))
        }
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
    let record = SwitchRecord {
        step: id.clone(),
        blue,
        green: string_map(outputs.get("to")),
        fingerprints: string_map(outputs.get("fingerprints")),
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

/// The rollback runbook used by default: `rollback.toml` beside the undone run's runbook.
pub fn default_runbook(view: &RunView) -> PathBuf {
    Path::new(&view.runbook).parent().map_or_else(
        || PathBuf::from("rollback.toml"),
        |d| d.join("rollback.toml"),
    )
}

/// Starts the rollback of run `of` in `environment` with `runbook` (default
/// [`default_runbook`]).
pub async fn start(
    of: RunId,
    environment: &str,
    runbook: Option<PathBuf>,
    progress: ProgressHandle,
    stop: watch::Receiver<bool>,
) -> Result<RunSummary, RunError> {
    let env = Environment::load(environment).map_err(|p| RunError::Invalid(Box::new(p)))?;
    let backend = Backend::open(&env).await?;
    backend.fetch_run(&env.state_dir, &of).await?;
    let view = load_view(&env.state_dir, &of)?;
    let record = switch_record(&view, &of)?;
    let runbook = runbook.unwrap_or_else(|| default_runbook(&view));
    let sets = record.sets(&of);
    let environment_file = env.source.path.display().to_string();
    let plan = load_plan(&runbook, &environment_file, &sets)
        .map_err(|p| RunError::Invalid(Box::new(p)))?;
    let options = RunOptions {
        sets,
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
        let mut events = vec![
            Event::StepStarted {
                step: StepId::new("switch"),
                attempt: 1,
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
        ];
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
    fn a_rollback_is_refused_when_there_is_nothing_to_move_back() {
        let of = RunId::new("r1");
        for (outcome, says) in [
            (Outcome::Succeeded, "no blue to move back to"),
            (Outcome::RolledBack, "undone already"),
        ] {
            let view = switched(vec![Event::RunFinished {
                outcome,
                message: String::new(),
            }]);
            let err = switch_record(&view, &of).unwrap_err().to_string();
            assert!(err.contains(says), "{outcome}: {err}");
        }
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
