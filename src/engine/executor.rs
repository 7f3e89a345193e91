//! The executor: runs a plan's steps as a DAG, owns polling, retries, deadlines,
//! interruption and compensation, and journals everything.
//!
//! # Guarantees
//! - At most `plan.concurrency` steps run at once; a step starts only after every step
//!   it `needs` succeeded (or was skipped, which skips it too).
//! - A step that succeeded in an earlier session is never run again: on resume its
//!   postcondition is re-checked instead. A violated one ends the run `NeedsAttention`;
//!   one that cannot be checked yet (a non-permanent failure: the database is down for
//!   the run's own dump) holds back the steps that need it until it is confirmed
//!   ([`super::unconfirmed`]).
//! - Transient and inconclusive failures are retried with exponential backoff and
//!   jitter within the step's attempts and deadline; permanent ones never are.
//! - When a step fails, running steps stop after their current poll and every step that
//!   started gets its compensation. A step is undone only after every started step that
//!   (transitively) needs it was undone; steps neither of which needs the other are
//!   undone concurrently, at most `plan.concurrency` at once, in reverse order of start
//!   (unfinished steps first, then finished ones, latest first) where there is a choice
//!   ([`super::undo_order`]). The first compensation that fails stops new ones from
//!   starting (those running finish) and leaves the run `NeedsAttention`: undoing
//!   further could make things worse.
//! - An interruption (first Ctrl-C) lets running polls finish, journals the state and
//!   ends the session; `resume` continues where it stopped.

use super::journal::{read_records, Event, Journal, Outcome};
use super::state::{replay, CompensationStatus, RunView, StepStatus};
use super::unconfirmed::{Unconfirmed, RECHECK_EVERY};
use super::undo_order::undo_waits;
use crate::config::expr::{resolve_value, Condition, Ref};
use crate::failure::{ErrorClass, Failure};
use crate::ids::{RunId, StepId};
use crate::plan::{Plan, PlannedStep};
use crate::progress::{ProgressEvent, ProgressHandle};
use crate::steps::{Decision, Outputs, Services, Step, StepContext, StepRecorder, ValueType};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// What [`Executor::confirm_before`] found.
enum Confirmation {
    Holds,
    NotYet,
    Violated(String),
}

/// Why running steps should stop after their current poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    None,
    /// The operator interrupted (first Ctrl-C).
    Interrupted,
    /// Another step failed or the run deadline passed: wind down and roll back.
    Failing,
}

/// The journal shared by running steps.
pub type SharedJournal = Arc<Mutex<Journal>>;

/// Appends an event; the journal mutex is held only for the write.
pub fn journal_event(journal: &SharedJournal, event: Event) -> Result<(), Failure> {
    journal
        .lock()
        .expect("journal lock")
        .append(event)
        .map(|_| ())
}

/// [`journal_event`] without its own fsync ([`Journal::append_unsynced`]): only for
/// records whose loss is harmless.
fn journal_event_unsynced(journal: &SharedJournal, event: Event) -> Result<(), Failure> {
    journal
        .lock()
        .expect("journal lock")
        .append_unsynced(event)
        .map(|_| ())
}

/// Journals a step's intents and checkpoints. A compensation's checkpoints are
/// [`Event::CompensationCheckpoint`]s, so they never replace what the forward step
/// recorded.
struct JournalRecorder {
    journal: SharedJournal,
    compensation: bool,
}

impl JournalRecorder {
    fn forward(journal: &SharedJournal) -> Arc<Self> {
        Arc::new(Self {
            journal: journal.clone(),
            compensation: false,
        })
    }
}

impl StepRecorder for JournalRecorder {
    fn intent(
        &self,
        step: &StepId,
        action: &str,
        token: &str,
        detail: serde_json::Value,
    ) -> Result<(), Failure> {
        journal_event(
            &self.journal,
            Event::StepIntent {
                step: step.clone(),
                action: action.into(),
                token: token.into(),
                detail,
            },
        )
    }
    fn checkpoint(&self, step: &StepId, state: serde_json::Value) -> Result<(), Failure> {
        let step = step.clone();
        journal_event(
            &self.journal,
            if self.compensation {
                Event::CompensationCheckpoint { step, state }
            } else {
                Event::StepCheckpoint { step, state }
            },
        )
    }
}

/// The end of one session of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEnd {
    Finished(Outcome, String),
    /// Stopped by the operator; resumable.
    Interrupted,
}

/// Runs one session of a run (the first, or a resume).
pub struct Executor {
    pub plan: Arc<Plan>,
    pub run_id: RunId,
    pub journal: SharedJournal,
    pub services: Arc<Services>,
    pub progress: ProgressHandle,
    /// Set to `Interrupted` by the CLI on the first Ctrl-C.
    pub stop: watch::Receiver<bool>,
}

enum TaskResult {
    Succeeded(Outputs),
    Failed(Failure),
    Interrupted,
}

impl Executor {
    fn lookup_fn<'a>(
        &'a self,
        outputs: &'a HashMap<StepId, Outputs>,
    ) -> impl Fn(&Ref) -> Option<serde_json::Value> + 'a {
        move |r: &Ref| match r {
            Ref::Param(name) => self.plan.params.get(name).cloned(),
            Ref::Env(path) => self.plan.environment.lookup(path).cloned(),
            Ref::StepOutput { step, output } => outputs
                .get(&StepId::new(step.as_str()))
                .and_then(|o| o.get(output).cloned()),
            Ref::Run(field) => match field.as_str() {
                "id" => Some(self.run_id.as_str().into()),
                "dir" => Some(self.services.run_dir.display().to_string().into()),
                "environment" => Some(self.plan.environment.name.clone().into()),
                _ => None,
            },
        }
    }

    /// Resolves a step's inputs; conditions become booleans.
    fn resolve_inputs(
        &self,
        kind: &crate::steps::StepKind,
        inputs: &serde_json::Map<String, serde_json::Value>,
        outputs: &HashMap<StepId, Outputs>,
    ) -> Result<Outputs, Failure> {
        let lookup = self.lookup_fn(outputs);
        let mut out = Outputs::new();
        for (name, value) in inputs {
            let spec = kind.inputs.iter().find(|i| i.name == name);
            let resolved = if spec.is_some_and(|s| s.ty == ValueType::Condition) {
                let text = value.as_str().unwrap_or_default();
                let cond = Condition::parse(text).map_err(Failure::permanent)?;
                serde_json::Value::Bool(
                    cond.eval(&lookup)
                        .map_err(|e| Failure::permanent(format!("input `{name}`: {e}")))?,
                )
            } else {
                resolve_value(value, &lookup)
                    .map_err(|e| Failure::permanent(format!("input `{name}`: {e}")))?
            };
            if let Some(spec) = spec {
                if spec.ty != ValueType::Condition && !spec.ty.accepts(&resolved) {
                    return Err(Failure::permanent(format!(
                        "input `{name}` resolved to {resolved}, which is not {}",
                        spec.ty.name()
                    )));
                }
            }
            out.insert(name.clone(), resolved);
        }
        Ok(out)
    }

    fn context(
        &self,
        step: &StepId,
        attempt: u32,
        inputs: Outputs,
        checkpoint: Option<serde_json::Value>,
    ) -> StepContext {
        self.context_with(
            step,
            attempt,
            inputs,
            checkpoint,
            JournalRecorder::forward(&self.journal),
        )
    }

    /// A compensation's context: its own checkpoint `own` (from an earlier attempt or
    /// session), the forward step's last checkpoint `forward`.
    fn compensation_context(
        &self,
        step: &StepId,
        attempt: u32,
        inputs: Outputs,
        own: Option<serde_json::Value>,
        forward: Option<serde_json::Value>,
    ) -> StepContext {
        let recorder = Arc::new(JournalRecorder {
            journal: self.journal.clone(),
            compensation: true,
        });
        self.context_with(step, attempt, inputs, own, recorder)
            .compensating(forward)
    }

    fn context_with(
        &self,
        step: &StepId,
        attempt: u32,
        inputs: Outputs,
        checkpoint: Option<serde_json::Value>,
        recorder: Arc<JournalRecorder>,
    ) -> StepContext {
        StepContext::new(
            self.run_id.clone(),
            step.clone(),
            attempt,
            inputs,
            self.services.clone(),
            recorder,
            checkpoint,
        )
    }

    /// The run as its journal tells it now, this session included: what every step
    /// checkpointed, for the compensations.
    fn journal_now(&self) -> Result<RunView, Failure> {
        let path = self
            .journal
            .lock()
            .expect("journal lock")
            .path()
            .to_path_buf();
        Ok(replay(&read_records(&path)?.0))
    }

    fn journal(&self, event: Event) -> Result<(), Failure> {
        journal_event(&self.journal, event)
    }

    /// Runs until the plan is done, failed and rolled back, or interrupted.
    /// `prior` is the replayed journal of earlier sessions (empty for a new run).
    pub async fn run(&self, prior: &RunView) -> Result<SessionEnd, Failure> {
        let mut status: BTreeMap<StepId, StepStatus> = self
            .plan
            .steps
            .iter()
            .map(|s| (s.id.clone(), StepStatus::Pending))
            .collect();
        let mut outputs: HashMap<StepId, Outputs> = HashMap::new();
        let mut completion_order: Vec<StepId> = Vec::new();
        let mut attempts: HashMap<StepId, u32> = HashMap::new();
        let mut checkpoints: HashMap<StepId, serde_json::Value> = HashMap::new();
        let mut started: Vec<StepId> = prior.start_order.clone();
        let mut failure: Option<(StepId, Failure)> = None;

        // Adopt what earlier sessions did.
        for step in &self.plan.steps {
            let Some(view) = prior.steps.get(&step.id) else {
                continue;
            };
            attempts.insert(step.id.clone(), view.attempts);
            if let Some(cp) = &view.checkpoint {
                checkpoints.insert(step.id.clone(), cp.clone());
            }
            match view.status {
                StepStatus::Succeeded => {
                    status.insert(step.id.clone(), StepStatus::Succeeded);
                    outputs.insert(step.id.clone(), view.outputs.clone().unwrap_or_default());
                }
                StepStatus::Skipped => {
                    status.insert(step.id.clone(), StepStatus::Skipped);
                }
                StepStatus::Failed => {
                    status.insert(step.id.clone(), StepStatus::Failed);
                    failure.get_or_insert_with(|| {
                        (
                            step.id.clone(),
                            Failure::permanent(view.error.clone().unwrap_or_default()),
                        )
                    });
                }
                // Started but unfinished: run it again (adopting by token).
                StepStatus::Running | StepStatus::Interrupted | StepStatus::Pending => {}
            }
        }
        completion_order.extend(
            prior
                .completion_order
                .iter()
                .filter(|s| status.get(*s) == Some(&StepStatus::Succeeded))
                .cloned(),
        );

        // Re-check finished steps' postconditions (not when already rolling back).
        let mut unconfirmed = Unconfirmed::default();
        if failure.is_none() {
            for step_id in completion_order.clone() {
                let result = match self.postcondition(&step_id, &outputs, &attempts).await {
                    Ok(result) => result,
                    Err(f) => {
                        failure = Some((step_id.clone(), f));
                        break;
                    }
                };
                match result {
                    Ok(()) => self.journal_check(step_id.clone(), true, "holds".into())?,
                    Err(f) if f.class == ErrorClass::Permanent => {
                        self.journal_check(step_id.clone(), false, f.message.clone())?;
                        return self.finish(Outcome::NeedsAttention, format!("step {step_id} finished earlier, but its effect no longer holds: {}", f.message)).await;
                    }
                    Err(f) => {
                        self.journal_check(step_id.clone(), false, format!("not confirmed yet ({}); checked again before a step that needs it starts", f.message))?;
                        unconfirmed.insert(step_id.clone());
                    }
                }
            }
        }
        let mut attention: Option<String> = None;
        let mut recheck_at: Option<Instant> = None;

        let run_deadline = self.plan.deadline.map(|d| {
            let elapsed = prior
                .started_at
                .map(|s| (chrono::Utc::now() - s).to_std().unwrap_or_default())
                .unwrap_or_default();
            Instant::now() + d.saturating_sub(elapsed)
        });

        let (stop_tx, stop_rx) = watch::channel(StopReason::None);
        let mut user_stop = self.stop.clone();
        let mut tasks: tokio::task::JoinSet<(StepId, TaskResult)> = tokio::task::JoinSet::new();
        let mut running = 0usize;
        let mut interrupted = *user_stop.borrow();

        loop {
            // Launch what is ready.
            if failure.is_none() && !interrupted && attention.is_none() {
                for step in &self.plan.steps {
                    if running >= self.plan.concurrency.max(1) {
                        break;
                    }
                    if status[&step.id] != StepStatus::Pending {
                        continue;
                    }
                    let needs: Vec<StepStatus> = step.needs.iter().map(|n| status[n]).collect();
                    if !needs
                        .iter()
                        .all(|s| matches!(s, StepStatus::Succeeded | StepStatus::Skipped))
                    {
                        continue;
                    }
                    if let Some(skipped) = step
                        .needs
                        .iter()
                        .find(|n| status[*n] == StepStatus::Skipped)
                    {
                        self.skip(
                            step,
                            format!("upstream step {skipped} was skipped"),
                            &mut status,
                        )?;
                        continue;
                    }
                    if let Some(when) = &step.when {
                        match when.eval(&self.lookup_fn(&outputs)) {
                            Ok(true) => {}
                            Ok(false) => {
                                self.skip(
                                    step,
                                    "its `when` condition is false".into(),
                                    &mut status,
                                )?;
                                continue;
                            }
                            Err(e) => {
                                let f =
                                    Failure::permanent(format!("`when` of step {}: {e}", step.id));
                                self.journal(Event::StepFailed {
                                    step: step.id.clone(),
                                    class: f.class,
                                    error: f.message.clone(),
                                    hint: None,
                                })?;
                                status.insert(step.id.clone(), StepStatus::Failed);
                                failure = Some((step.id.clone(), f));
                                break;
                            }
                        }
                    }
                    // A step the crashed session had started goes on (it started while
                    // the effect held, and its command may be what keeps the server down);
                    // one not started yet waits for the confirmation.
                    let resumed = prior.steps.get(&step.id).is_some_and(|v| {
                        matches!(v.status, StepStatus::Running | StepStatus::Interrupted)
                    });
                    let confirmation = if resumed {
                        Confirmation::Holds
                    } else {
                        self.confirm_before(step, &mut unconfirmed, &outputs, &attempts)
                            .await?
                    };
                    match confirmation {
                        Confirmation::Holds => {}
                        Confirmation::NotYet => {
                            recheck_at = unconfirmed.next_check();
                            continue;
                        }
                        Confirmation::Violated(message) => {
                            attention = Some(message);
                            let _ = stop_tx.send(StopReason::Interrupted);
                            break;
                        }
                    }
                    let inputs = match self.resolve_inputs(step.kind, &step.inputs, &outputs) {
                        Ok(i) => i,
                        Err(f) => {
                            self.journal(Event::StepFailed {
                                step: step.id.clone(),
                                class: f.class,
                                error: f.message.clone(),
                                hint: None,
                            })?;
                            status.insert(step.id.clone(), StepStatus::Failed);
                            failure = Some((step.id.clone(), f));
                            break;
                        }
                    };
                    let attempt = attempts.get(&step.id).copied().unwrap_or(0) + 1;
                    if !started.contains(&step.id) {
                        started.push(step.id.clone());
                    }
                    status.insert(step.id.clone(), StepStatus::Running);
                    running += 1;
                    let task = StepTask {
                        step: step.clone(),
                        first_attempt: attempt,
                        inputs,
                        checkpoint: checkpoints.get(&step.id).cloned(),
                        executor: self.clone_parts(),
                        stop: stop_rx.clone(),
                        run_deadline,
                    };
                    let id = step.id.clone();
                    tasks.spawn(async move { (id, task.run().await) });
                }
                if failure.is_some() {
                    let _ = stop_tx.send(StopReason::Failing);
                }
            }
            let waiting = recheck_at.is_some() && attention.is_none() && failure.is_none();
            if tasks.is_empty() && !waiting {
                break;
            }
            let deadline_sleep = async {
                match run_deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                joined = tasks.join_next(), if !tasks.is_empty() => {
                    let Some(joined) = joined else { continue };
                    running -= 1;
                    let (id, result) = joined.map_err(|e| Failure::permanent(format!("a step task panicked: {e}")))?;
                    match result {
                        TaskResult::Succeeded(out) => {
                            status.insert(id.clone(), StepStatus::Succeeded);
                            outputs.insert(id.clone(), out);
                            completion_order.push(id);
                        }
                        TaskResult::Failed(f) => {
                            status.insert(id.clone(), StepStatus::Failed);
                            if failure.is_none() {
                                failure = Some((id, f));
                                let _ = stop_tx.send(StopReason::Failing);
                            }
                        }
                        TaskResult::Interrupted => {
                            status.insert(id, StepStatus::Interrupted);
                        }
                    }
                }
                changed = user_stop.changed(), if !interrupted => {
                    if changed.is_ok() && *user_stop.borrow() {
                        interrupted = true;
                        if failure.is_none() {
                            let _ = stop_tx.send(StopReason::Interrupted);
                        }
                    }
                }
                _ = tokio::time::sleep_until(recheck_at.unwrap_or_else(Instant::now)), if waiting => {
                    recheck_at = None;
                }
                _ = deadline_sleep, if failure.is_none() => {
                    let limit = self.plan.deadline.unwrap_or_default();
                    failure = Some((StepId::new("run"), Failure::permanent(format!("the run exceeded its deadline of {}", crate::config::toml_read::format_duration(limit)))));
                    let _ = stop_tx.send(StopReason::Failing);
                }
            }
        }

        if let Some((failed_step, f)) = failure {
            return self
                .roll_back(
                    &failed_step,
                    &f,
                    &status,
                    &outputs,
                    &completion_order,
                    &started,
                )
                .await;
        }
        if let Some(message) = attention {
            return self.finish(Outcome::NeedsAttention, message).await;
        }
        if interrupted {
            self.journal(Event::RunInterrupted {
                reason: "interrupted by the operator".into(),
            })?;
            return Ok(SessionEnd::Interrupted);
        }
        self.finish(Outcome::Succeeded, "every step succeeded".into())
            .await
    }

    /// A re-check's record, unsynced: losing it repeats the check at the next resume, and
    /// the session's next synced record makes it durable.
    fn journal_check(&self, step: StepId, ok: bool, detail: String) -> Result<(), Failure> {
        journal_event_unsynced(
            &self.journal,
            Event::PostconditionChecked { step, ok, detail },
        )
    }

    /// Re-checks the postcondition of `step_id`, which succeeded in an earlier session.
    /// The outer error is the engine's own (its inputs no longer resolve).
    async fn postcondition(
        &self,
        step_id: &StepId,
        outputs: &HashMap<StepId, Outputs>,
        attempts: &HashMap<StepId, u32>,
    ) -> Result<Result<(), Failure>, Failure> {
        let step = self
            .plan
            .step(step_id)
            .expect("completed steps are in the plan");
        let inputs = self.resolve_inputs(step.kind, &step.inputs, outputs)?;
        let ctx = self.context(
            step_id,
            attempts.get(step_id).copied().unwrap_or(1),
            inputs,
            None,
        );
        let mut instance = (step.kind.build)();
        Ok(instance.postcondition(&ctx, &outputs[step_id]).await)
    }

    /// Before `step` starts: confirms the unconfirmed postconditions it needs
    /// ([`super::unconfirmed`]), journaling each confirmation.
    async fn confirm_before(
        &self,
        step: &PlannedStep,
        unconfirmed: &mut Unconfirmed,
        outputs: &HashMap<StepId, Outputs>,
        attempts: &HashMap<StepId, u32>,
    ) -> Result<Confirmation, Failure> {
        if unconfirmed.is_empty() {
            return Ok(Confirmation::Holds);
        }
        let now = Instant::now();
        for needed in unconfirmed.needed_by(&self.plan.ancestors(&step.id)) {
            if !unconfirmed.due(&needed, now) {
                return Ok(Confirmation::NotYet);
            }
            match self.postcondition(&needed, outputs, attempts).await? {
                Ok(()) => {
                    self.journal_check(
                        needed.clone(),
                        true,
                        format!("holds (confirmed before {} started)", step.id),
                    )?;
                    unconfirmed.confirmed(&needed);
                }
                Err(f) if f.class == ErrorClass::Permanent => {
                    self.journal_check(needed.clone(), false, f.message.clone())?;
                    return Ok(Confirmation::Violated(format!(
                        "step {needed} finished earlier, but its effect no longer holds: {}",
                        f.message
                    )));
                }
                Err(f) => {
                    if unconfirmed.no_verdict(&needed, now) {
                        self.journal_check(needed.clone(), false, f.message.clone())?;
                        return Ok(Confirmation::Violated(format!(
                            "step {needed} finished earlier, but whether its effect still holds could not be checked for {} minutes: {}",
                            super::unconfirmed::CONFIRM_LIMIT.as_secs() / 60,
                            f.message
                        )));
                    }
                    self.progress.report(ProgressEvent::StepWaiting {
                        step: step.id.clone(),
                        reason: format!(
                            "waiting to confirm that step {needed}'s effect still holds: {}",
                            f.message
                        ),
                        next_poll: RECHECK_EVERY,
                    });
                    return Ok(Confirmation::NotYet);
                }
            }
        }
        Ok(Confirmation::Holds)
    }

    fn skip(
        &self,
        step: &PlannedStep,
        reason: String,
        status: &mut BTreeMap<StepId, StepStatus>,
    ) -> Result<(), Failure> {
        self.journal(Event::StepSkipped {
            step: step.id.clone(),
            reason: reason.clone(),
        })?;
        self.progress.report(ProgressEvent::StepSkipped {
            step: step.id.clone(),
            reason,
        });
        status.insert(step.id.clone(), StepStatus::Skipped);
        Ok(())
    }

    async fn finish(&self, outcome: Outcome, message: String) -> Result<SessionEnd, Failure> {
        self.journal(Event::RunFinished {
            outcome,
            message: message.clone(),
        })?;
        self.progress.report(ProgressEvent::RunFinished {
            run_id: self.run_id.clone(),
            outcome: outcome.to_string(),
        });
        Ok(SessionEnd::Finished(outcome, message))
    }

    #[allow(clippy::too_many_arguments)]
    async fn roll_back(
        &self,
        failed_step: &StepId,
        failure: &Failure,
        status: &BTreeMap<StepId, StepStatus>,
        outputs: &HashMap<StepId, Outputs>,
        completion_order: &[StepId],
        started: &[StepId],
    ) -> Result<SessionEnd, Failure> {
        // Unfinished steps first (latest started first), then finished ones, latest first.
        let mut order: Vec<StepId> = started
            .iter()
            .rev()
            .filter(|s| status.get(*s) != Some(&StepStatus::Succeeded))
            .cloned()
            .collect();
        order.extend(completion_order.iter().rev().cloned());
        // What each step checkpointed (this session too), and where each compensation an
        // earlier session started got to (or finished: it counts as undone).
        let recorded = self.journal_now()?;
        // What still needs undoing, in that order; what an earlier session undid counts.
        let mut compensated = 0;
        let mut to_undo: Vec<&PlannedStep> = Vec::new();
        let mut listed = std::collections::HashSet::new();
        for step_id in order {
            let Some(step) = self.plan.step(&step_id) else {
                continue;
            };
            if step.compensate.is_none() && step.kind.compensation.is_none() {
                continue;
            }
            if matches!(
                recorded
                    .steps
                    .get(&step_id)
                    .and_then(|s| s.compensation.as_ref()),
                Some(CompensationStatus::Succeeded)
            ) {
                compensated += 1;
                continue;
            }
            if listed.insert(step_id) {
                to_undo.push(step);
            }
        }
        let needs: HashMap<&StepId, &[StepId]> = self
            .plan
            .steps
            .iter()
            .map(|s| (&s.id, s.needs.as_slice()))
            .collect();
        let ids: Vec<StepId> = to_undo.iter().map(|s| s.id.clone()).collect();
        let mut waits = undo_waits(&ids, |s| needs.get(s).copied().unwrap_or(&[]));
        // Independent undos run side by side (at most `concurrency`); one whose
        // dependents are still being undone waits. After the first failure nothing new
        // starts; the undos already running finish.
        let mut running = futures::stream::FuturesUnordered::new();
        let mut undo_failed: Option<(StepId, Failure)> = None;
        loop {
            while undo_failed.is_none() && running.len() < self.plan.concurrency.max(1) {
                let Some(at) = to_undo.iter().position(|s| waits[&s.id].is_empty()) else {
                    break;
                };
                let step = to_undo.remove(at);
                let step_id = step.id.clone();
                self.journal(Event::CompensationStarted {
                    step: step_id.clone(),
                })?;
                self.progress.report(ProgressEvent::CompensationStarted {
                    step: step_id.clone(),
                });
                let own = outputs.get(&step_id);
                let view = recorded.steps.get(&step_id);
                let checkpoints = Checkpoints {
                    forward: view.and_then(|v| v.checkpoint.clone()),
                    compensation: view.and_then(|v| v.compensation_checkpoint.clone()),
                };
                running.push(async move {
                    (
                        step_id,
                        self.compensate_one(step, own, checkpoints, outputs).await,
                    )
                });
            }
            let Some((step_id, result)) = futures::StreamExt::next(&mut running).await else {
                break;
            };
            match result {
                Ok(()) => {
                    compensated += 1;
                    for w in waits.values_mut() {
                        w.remove(&step_id);
                    }
                    self.journal(Event::CompensationSucceeded {
                        step: step_id.clone(),
                    })?;
                    self.progress.report(ProgressEvent::CompensationSucceeded {
                        step: step_id.clone(),
                    });
                }
                Err(f) => {
                    self.journal(Event::CompensationFailed {
                        step: step_id.clone(),
                        error: f.message.clone(),
                    })?;
                    self.progress.report(ProgressEvent::CompensationFailed {
                        step: step_id.clone(),
                        error: f.message.clone(),
                    });
                    undo_failed.get_or_insert((step_id, f));
                }
            }
        }
        if let Some((step_id, f)) = undo_failed {
            let message = format!(
                "step {failed_step} failed ({}); undoing step {step_id} then failed: {}. The environment is partly changed: fix the cause, then `cutover resume {}` to finish the rollback",
                failure.message, f.message, self.run_id
            );
            return self.finish(Outcome::NeedsAttention, message).await;
        }
        let hint = failure
            .hint
            .as_ref()
            .map(|h| format!(" Next: {h}."))
            .unwrap_or_default();
        if compensated == 0 {
            self.finish(
                Outcome::Failed,
                format!(
                    "step {failed_step} failed: {}; nothing needed undoing.{hint}",
                    failure.message
                ),
            )
            .await
        } else {
            self.finish(Outcome::RolledBack, format!("step {failed_step} failed: {}; {compensated} step(s) undone, the environment is as it was.{hint}", failure.message)).await
        }
    }

    /// Drives one compensation to completion within the step's retry policy. Bounded:
    /// at most `retry.attempts` attempts, each polled for at most the step's timeout
    /// (10 minutes when none is set). Each attempt sees the forward step's last
    /// checkpoint and continues from the compensation's own (an earlier attempt's or
    /// session's), so a command it started is polled, not sent again.
    async fn compensate_one(
        &self,
        step: &PlannedStep,
        own: Option<&Outputs>,
        checkpoints: Checkpoints,
        outputs: &HashMap<StepId, Outputs>,
    ) -> Result<(), Failure> {
        let limit = step.timeout.unwrap_or(Duration::from_secs(600));
        let mut last = Failure::permanent("no attempt made");
        let mut undo_state = checkpoints.compensation;
        for attempt in 1..=step.retry.attempts.max(1) {
            let deadline = Instant::now() + limit;
            let (kind, inputs) = match &step.compensate {
                Some(c) => (c.kind, &c.inputs),
                None => (step.kind, &step.inputs),
            };
            let inputs = self.resolve_inputs(kind, inputs, outputs)?;
            let mut instance = (kind.build)();
            let ctx = self.compensation_context(
                &step.id,
                attempt,
                inputs,
                undo_state.clone(),
                checkpoints.forward.clone(),
            );
            loop {
                let decision = match &step.compensate {
                    Some(_) => instance.advance(&ctx).await,
                    None => instance.compensate(&ctx, own).await,
                };
                match decision {
                    Decision::Done(_) => return Ok(()),
                    Decision::Wait { after, .. } if Instant::now() + after < deadline => {
                        tokio::time::sleep(after).await
                    }
                    Decision::Wait { reason, .. } => {
                        last = Failure::transient(format!("compensation timed out while {reason}"));
                        break;
                    }
                    Decision::Fail(f) => {
                        last = f;
                        break;
                    }
                }
            }
            undo_state = ctx.checkpoint();
            if last.class == ErrorClass::Permanent {
                break;
            }
            tokio::time::sleep(step.retry.jittered_delay(attempt)).await;
        }
        Err(last)
    }

    fn clone_parts(&self) -> ExecutorParts {
        ExecutorParts {
            run_id: self.run_id.clone(),
            journal: self.journal.clone(),
            services: self.services.clone(),
            progress: self.progress.clone(),
        }
    }
}

/// What a step checkpointed, for its compensation.
struct Checkpoints {
    /// The forward step's last checkpoint.
    forward: Option<serde_json::Value>,
    /// Its compensation's last checkpoint (an earlier session's).
    compensation: Option<serde_json::Value>,
}

#[derive(Clone)]
struct ExecutorParts {
    run_id: RunId,
    journal: SharedJournal,
    services: Arc<Services>,
    progress: ProgressHandle,
}

struct StepTask {
    step: PlannedStep,
    first_attempt: u32,
    inputs: Outputs,
    checkpoint: Option<serde_json::Value>,
    executor: ExecutorParts,
    stop: watch::Receiver<StopReason>,
    run_deadline: Option<Instant>,
}

impl StepTask {
    fn journal(&self, event: Event) -> Result<(), Failure> {
        journal_event(&self.executor.journal, event)
    }

    fn context(&self, attempt: u32, checkpoint: Option<serde_json::Value>) -> StepContext {
        StepContext::new(
            self.executor.run_id.clone(),
            self.step.id.clone(),
            attempt,
            self.inputs.clone(),
            self.executor.services.clone(),
            JournalRecorder::forward(&self.executor.journal),
            checkpoint,
        )
    }

    /// Sleeps `d`, or returns `false` early when asked to stop.
    async fn sleep_unless_stopped(&mut self, d: Duration) -> bool {
        if *self.stop.borrow() != StopReason::None {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = self.stop.changed() => *self.stop.borrow() == StopReason::None,
        }
    }

    async fn run(mut self) -> TaskResult {
        match self.run_inner().await {
            Ok(r) => r,
            Err(f) => TaskResult::Failed(f),
        }
    }

    async fn run_inner(&mut self) -> Result<TaskResult, Failure> {
        let id = self.step.id.clone();
        let progress = self.executor.progress.clone();
        let started = Instant::now();
        let step_deadline = self.step.timeout.map(|t| started + t);
        let deadline = match (step_deadline, self.run_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut attempt = self.first_attempt;
        let mut checkpoint = self.checkpoint.clone();
        loop {
            self.journal(Event::StepStarted {
                step: id.clone(),
                attempt,
                kind: Some(self.step.kind.name.into()),
            })?;
            progress.report(ProgressEvent::StepStarted {
                step: id.clone(),
                kind: self.step.kind.name.into(),
                attempt,
            });
            let ctx = self.context(attempt, checkpoint.clone());
            let mut instance: Box<dyn Step> = (self.step.kind.build)();
            let failure = loop {
                let decision = instance.advance(&ctx).await;
                match decision {
                    Decision::Done(outputs) => {
                        self.journal(Event::StepSucceeded {
                            step: id.clone(),
                            outputs: outputs.clone(),
                        })?;
                        progress.report(ProgressEvent::StepSucceeded {
                            step: id.clone(),
                            elapsed: started.elapsed(),
                        });
                        return Ok(TaskResult::Succeeded(outputs));
                    }
                    Decision::Wait { after, reason } => {
                        let now = Instant::now();
                        if let Some(d) = deadline.filter(|d| now >= *d) {
                            let _ = d;
                            break Failure::permanent(format!("step {id} timed out while {reason}"))
                                .with_hint("what it waited for may still complete: check it, then resume or roll back");
                        }
                        let sleep = deadline.map_or(after, |d| after.min(d - now));
                        progress.report(ProgressEvent::StepWaiting {
                            step: id.clone(),
                            reason,
                            next_poll: sleep,
                        });
                        if !self.sleep_unless_stopped(sleep).await {
                            return self.interrupted();
                        }
                    }
                    Decision::Fail(f) => break f,
                }
            };
            checkpoint = ctx.checkpoint();
            let out_of_time = deadline.is_some_and(|d| Instant::now() >= d);
            if f_is_retryable(&failure) && attempt < self.step.retry.attempts && !out_of_time {
                let delay = self.step.retry.jittered_delay(attempt);
                self.journal(Event::StepRetrying {
                    step: id.clone(),
                    attempt,
                    class: failure.class,
                    error: failure.message.clone(),
                    delay_ms: delay.as_millis() as u64,
                })?;
                progress.report(ProgressEvent::StepRetrying {
                    step: id.clone(),
                    attempt,
                    delay,
                    error: format!("{} ({})", failure.message, failure.class),
                });
                if !self.sleep_unless_stopped(delay).await {
                    return self.interrupted();
                }
                attempt += 1;
                continue;
            }
            self.journal(Event::StepFailed {
                step: id.clone(),
                class: failure.class,
                error: failure.message.clone(),
                hint: failure.hint.clone(),
            })?;
            progress.report(ProgressEvent::StepFailed {
                step: id.clone(),
                error: failure.message.clone(),
            });
            return Ok(TaskResult::Failed(failure));
        }
    }

    fn interrupted(&self) -> Result<TaskResult, Failure> {
        self.journal(Event::StepInterrupted {
            step: self.step.id.clone(),
        })?;
        self.executor
            .progress
            .report(ProgressEvent::StepInterrupted {
                step: self.step.id.clone(),
            });
        Ok(TaskResult::Interrupted)
    }
}

fn f_is_retryable(f: &Failure) -> bool {
    matches!(f.class, ErrorClass::Transient | ErrorClass::Inconclusive)
}
