//! Replaying a journal into the state of a run: what `status` shows and what `resume`
//! continues from. Pure: no I/O, so every crash point can be tested cheaply.

use super::journal::{Event, Outcome, Record, RunRelation};
use crate::ids::{RunId, StepId};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    Skipped,
    Interrupted,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "error")]
pub enum CompensationStatus {
    Running,
    Succeeded,
    Failed(String),
}

/// One step as the journal tells it.
#[derive(Clone, Debug, Serialize)]
pub struct StepView {
    pub status: StepStatus,
    /// Attempts started (across sessions).
    pub attempts: u32,
    pub retries: u32,
    pub outputs: Option<serde_json::Map<String, serde_json::Value>>,
    pub first_started_at: Option<chrono::DateTime<chrono::Utc>>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    pub error: Option<String>,
    pub checkpoint: Option<serde_json::Value>,
    /// The last checkpoint of its compensation (a rollback resumed from it).
    pub compensation_checkpoint: Option<serde_json::Value>,
    /// `(action, idempotency token)` in the order they were journaled.
    pub intents: Vec<(String, String)>,
    pub compensation: Option<CompensationStatus>,
}

impl Default for StepView {
    fn default() -> Self {
        Self {
            status: StepStatus::Pending,
            attempts: 0,
            retries: 0,
            outputs: None,
            first_started_at: None,
            finished_at: None,
            error: None,
            checkpoint: None,
            compensation_checkpoint: None,
            intents: Vec::new(),
            compensation: None,
        }
    }
}

/// A run as the journal tells it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunView {
    pub run_id: Option<RunId>,
    pub plan_hash: String,
    pub runbook: String,
    pub environment: String,
    pub environment_name: String,
    pub sets: Vec<(String, String)>,
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    pub steps: BTreeMap<StepId, StepView>,
    /// Steps in the order they succeeded.
    pub completion_order: Vec<StepId>,
    /// Steps in the order they first started.
    pub start_order: Vec<StepId>,
    pub outcome: Option<Outcome>,
    pub message: Option<String>,
    pub interrupted: bool,
    pub sessions: u32,
    pub events: u64,
    /// Runs linked to this one (a rollback and the run it undoes), latest outcome each.
    pub links: Vec<RunLink>,
}

/// Another run this one is linked to (see [`Event::RunLinked`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RunLink {
    pub relation: RunRelation,
    pub run_id: RunId,
    pub outcome: Option<Outcome>,
}

impl std::fmt::Display for RunLink {
    /// `rollback of run R1`, `rolled back by run R2 (Succeeded)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} run {}", self.relation, self.run_id)?;
        match (self.relation, self.outcome) {
            (RunRelation::RollbackOf, _) => Ok(()),
            (RunRelation::RolledBackBy, Some(o)) => write!(f, " ({o})"),
            (RunRelation::RolledBackBy, None) => f.write_str(" (unfinished)"),
        }
    }
}

impl RunView {
    /// Whether any step failed (so the run is, or was, rolling back).
    pub fn failing(&self) -> bool {
        self.steps.values().any(|s| s.status == StepStatus::Failed)
    }

    /// The run this one is a rollback of.
    pub fn rollback_of(&self) -> Option<&RunId> {
        self.links
            .iter()
            .find(|l| l.relation == RunRelation::RollbackOf)
            .map(|l| &l.run_id)
    }

    /// The latest rollback of this run, with its outcome once it ended.
    pub fn rolled_back_by(&self) -> Option<&RunLink> {
        self.links
            .iter()
            .rev()
            .find(|l| l.relation == RunRelation::RolledBackBy)
    }
}

/// Folds records into a view. Unknown step ids are kept (a forced resume may rename).
pub fn replay(records: &[Record]) -> RunView {
    let mut view = RunView::default();
    for record in records {
        view.events = record.seq;
        let at = record.at;
        match &record.event {
            Event::RunStarted {
                run_id,
                plan_hash,
                runbook,
                environment,
                environment_name,
                sets,
                ..
            } => {
                view.run_id = Some(run_id.clone());
                view.plan_hash = plan_hash.clone();
                view.runbook = runbook.display().to_string();
                view.environment = environment.display().to_string();
                view.environment_name = environment_name.clone();
                view.sets = sets.clone();
                view.started_at = Some(at);
                view.sessions = 1;
            }
            Event::RunResumed { plan_hash, .. } => {
                view.plan_hash = plan_hash.clone();
                view.sessions += 1;
                view.interrupted = false;
                view.outcome = None;
                view.finished_at = None;
            }
            Event::LeaseTakenOver { .. } | Event::PostconditionChecked { .. } => {}
            Event::StepStarted { step, attempt, .. } => {
                let s = view.steps.entry(step.clone()).or_default();
                if s.first_started_at.is_none() {
                    s.first_started_at = Some(at);
                    view.start_order.push(step.clone());
                }
                s.status = StepStatus::Running;
                s.attempts = s.attempts.max(*attempt);
            }
            Event::StepIntent {
                step,
                action,
                token,
                ..
            } => {
                view.steps
                    .entry(step.clone())
                    .or_default()
                    .intents
                    .push((action.clone(), token.clone()));
            }
            Event::StepCheckpoint { step, state } => {
                view.steps.entry(step.clone()).or_default().checkpoint = Some(state.clone());
            }
            Event::CompensationCheckpoint { step, state } => {
                view.steps
                    .entry(step.clone())
                    .or_default()
                    .compensation_checkpoint = Some(state.clone());
            }
            Event::StepRetrying { step, error, .. } => {
                let s = view.steps.entry(step.clone()).or_default();
                s.retries += 1;
                s.error = Some(error.clone());
            }
            Event::StepSucceeded { step, outputs } => {
                let s = view.steps.entry(step.clone()).or_default();
                s.status = StepStatus::Succeeded;
                s.outputs = Some(outputs.clone());
                s.finished_at = Some(at);
                s.error = None;
                view.completion_order.push(step.clone());
            }
            Event::StepSkipped { step, reason } => {
                let s = view.steps.entry(step.clone()).or_default();
                s.status = StepStatus::Skipped;
                s.error = Some(reason.clone());
                s.finished_at = Some(at);
            }
            Event::StepFailed { step, error, .. } => {
                let s = view.steps.entry(step.clone()).or_default();
                s.status = StepStatus::Failed;
                s.error = Some(error.clone());
                s.finished_at = Some(at);
            }
            Event::StepInterrupted { step } => {
                view.steps.entry(step.clone()).or_default().status = StepStatus::Interrupted;
            }
            Event::CompensationStarted { step } => {
                view.steps.entry(step.clone()).or_default().compensation =
                    Some(CompensationStatus::Running);
            }
            Event::CompensationSucceeded { step } => {
                view.steps.entry(step.clone()).or_default().compensation =
                    Some(CompensationStatus::Succeeded);
            }
            Event::CompensationFailed { step, error } => {
                view.steps.entry(step.clone()).or_default().compensation =
                    Some(CompensationStatus::Failed(error.clone()));
            }
            Event::RunInterrupted { .. } => view.interrupted = true,
            Event::RunFinished { outcome, message } => {
                view.outcome = Some(*outcome);
                view.message = Some(message.clone());
                view.finished_at = Some(at);
            }
            Event::RunLinked {
                relation,
                run_id,
                outcome,
            } => {
                let link = RunLink {
                    relation: *relation,
                    run_id: run_id.clone(),
                    outcome: *outcome,
                };
                match view
                    .links
                    .iter_mut()
                    .find(|l| l.relation == *relation && l.run_id == *run_id)
                {
                    Some(existing) => *existing = link,
                    None => view.links.push(link),
                }
            }
        }
    }
    view
}
