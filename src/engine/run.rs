//! Starting and resuming runs: the run directory, the journal, the lease and the plan
//! hash check around one [`Executor`] session.
//!
//! Layout under the environment's state directory:
//! ```text
//! <state_dir>/lease.json                 one run at a time (local provider)
//! <state_dir>/runs/<run_id>/journal.jsonl
//! <state_dir>/runs/<run_id>/...          step scratch files (outputs, backups)
//! ```
//!
//! On the `aws` provider the lease is `s3://<bucket>/<state_prefix>/lease.json` (every
//! machine sees it) and the journal is mirrored to `runs/<run_id>/journal.jsonl` in the
//! bucket while the run goes on, so another machine can resume it. The local journal is
//! authoritative while this process runs; the mirror lags it by one upload (uploads
//! start as soon as a record is on disk; [`MIRROR_INTERVAL`] is the retry pace), and
//! resume reconciles the two (the longer wins; a run that diverged on two machines is
//! refused).

pub use super::backend::{Backend, MIRROR_INTERVAL};
use super::backend::{LeaseKeeper, MirrorKeeper};
use super::executor::{Executor, SessionEnd, SharedJournal};
use super::journal::{Event, Journal, Outcome, RunRelation};
use super::state::{replay, RunView};
use crate::config::{Environment, Problems, Runbook};
use crate::failure::Failure;
use crate::ids::RunId;
use crate::plan::Plan;
use crate::progress::{ProgressEvent, ProgressHandle};
use crate::providers::lease::{hostname, Acquire, LeaseInfo, TakeOver};
use crate::providers::run_store::ActiveLease;
use crate::steps::Services;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Why a run could not start or resume. Each variant maps to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Bad input; nothing was done (exit 2).
    #[error("{0}")]
    Invalid(Box<Problems>),
    /// Another run holds the environment (exit 3).
    #[error("environment {environment} is locked by {holder}; wait for it to finish, or if it is stuck, inspect it with `cutover status {} --env {environment}`", holder.run_id)]
    Locked {
        environment: String,
        holder: Box<LeaseInfo>,
    },
    /// A stale lease is in the way (exit 3).
    #[error("environment {environment} has a stale lease: {holder} ({reason}). If that run is really dead, resume it (`cutover resume {} --env {environment}`) or start a new run with --take-over-lease", holder.run_id)]
    StaleLease {
        environment: String,
        holder: Box<LeaseInfo>,
        reason: String,
    },
    /// The runbook or environment changed since the run started (exit 2).
    #[error("the plan changed since run {run_id} started (was {old}, now {new}); resume refuses a changed runbook or environment. Restore the files, or pass --force to resume with the new plan (recorded in the journal)")]
    PlanChanged {
        run_id: RunId,
        old: String,
        new: String,
    },
    /// The run cannot be resumed (exit 2).
    #[error("{0}")]
    NotResumable(String),
    /// Something failed outside any step (exit 1 or 3 as the journal says).
    #[error("{0}")]
    Failure(#[from] Failure),
}

impl RunError {
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Invalid(_) | RunError::PlanChanged { .. } | RunError::NotResumable(_) => 2,
            RunError::Locked { .. } | RunError::StaleLease { .. } => 3,
            RunError::Failure(_) => 3,
        }
    }
}

/// How a run session ended, with what the operator needs to know.
#[derive(Debug)]
pub struct RunSummary {
    pub run_id: RunId,
    pub end: SessionEnd,
    pub run_dir: PathBuf,
    pub view: RunView,
    /// The Markdown report, when it was written (JSON and SVG sit beside it).
    pub report: Option<PathBuf>,
    /// A `health.bake` step of the run failed (the rollback acts on this).
    pub bake_failed: bool,
}

impl RunSummary {
    pub fn exit_code(&self) -> u8 {
        match &self.end {
            SessionEnd::Finished(outcome, _) => outcome.exit_code(),
            SessionEnd::Interrupted => 130,
        }
    }
}

/// Options of `cutover run`.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub sets: Vec<(String, String)>,
    /// Writes the run's report when a session ends (the report layer, handed in by the
    /// caller); `None` writes none.
    pub reporter: Option<Arc<dyn RunReporter>>,
    /// Use this run id instead of a generated one (must be new).
    pub run_id: Option<RunId>,
    pub take_over_lease: bool,
    /// This run is a rollback of that run: it is linked to it both ways in the journals,
    /// and may take over its lease (see [`TakeOver::RollbackOf`]).
    pub rollback_of: Option<RunId>,
}

/// Writes a run's report from its journal. The engine calls it when a session ends and
/// when a rollback links the run it undoes; the report layer implements it, so the
/// engine does not depend on it.
pub trait RunReporter: Send + Sync + std::fmt::Debug {
    /// Writes the report of the run whose directory is `run_dir` from its journal
    /// `records`; returns the main (Markdown) file.
    fn write(&self, run_dir: &Path, records: &[super::journal::Record])
        -> Result<PathBuf, Failure>;
}

pub fn runs_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("runs")
}

pub fn run_dir(state_dir: &Path, run_id: &RunId) -> PathBuf {
    runs_dir(state_dir).join(run_id.as_str())
}

pub fn journal_path(state_dir: &Path, run_id: &RunId) -> PathBuf {
    run_dir(state_dir, run_id).join("journal.jsonl")
}

/// Loads and validates runbook + environment into a plan; all problems at once.
pub fn load_plan(
    runbook: &Path,
    environment: &str,
    sets: &[(String, String)],
) -> Result<Plan, Problems> {
    let env = Environment::load(environment);
    let book = Runbook::load(runbook);
    match (book, env) {
        (Ok(book), Ok(env)) => Plan::build(&book, Arc::new(env), sets),
        (book, env) => {
            let mut problems = Problems::default();
            if let Err(p) = env {
                problems.extend(p);
            }
            if let Err(p) = book {
                problems.extend(p);
            }
            Err(problems)
        }
    }
}

fn valid_run_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

async fn acquire(
    env: &Environment,
    backend: &Backend,
    run_id: &RunId,
    take_over: TakeOver,
) -> Result<(Box<dyn ActiveLease>, Option<(LeaseInfo, String)>), RunError> {
    let (outcome, lease) = backend.runs.acquire_lease(run_id, take_over).await?;
    match outcome {
        Acquire::Acquired { taken_over } => Ok((lease.expect("acquired"), taken_over)),
        Acquire::Held(holder) => Err(RunError::Locked {
            environment: env.name.clone(),
            holder: Box::new(holder),
        }),
        Acquire::Stale(holder, reason) => Err(RunError::StaleLease {
            environment: env.name.clone(),
            holder: Box::new(holder),
            reason,
        }),
    }
}

/// Whether the lease should be released when a session ends this way: only when the
/// environment is as the run intended (succeeded) or as it was (rolled back / failed).
fn releases_lease(end: &SessionEnd) -> bool {
    matches!(
        end,
        SessionEnd::Finished(
            Outcome::Succeeded | Outcome::RolledBack | Outcome::Failed,
            _
        )
    )
}

/// Starts a new run of `plan`.
pub async fn start(
    plan: Plan,
    options: RunOptions,
    progress: ProgressHandle,
    stop: watch::Receiver<bool>,
) -> Result<RunSummary, RunError> {
    let env = plan.environment.clone();
    let run_id = match options.run_id {
        Some(id) if valid_run_id(id.as_str()) => id,
        Some(id) => {
            return Err(RunError::NotResumable(format!(
                "run id `{id}` is not valid: use letters, digits, `-`, `_` (at most 64)"
            )))
        }
        None => RunId::generate(),
    };
    let journal_file = journal_path(&env.state_dir, &run_id);
    if journal_file.exists() {
        return Err(RunError::NotResumable(format!(
            "run {run_id} already exists in {}; resume it with `cutover resume {run_id}`",
            env.state_dir.display()
        )));
    }
    let take_over = match (&options.rollback_of, options.take_over_lease) {
        (Some(of), _) => TakeOver::RollbackOf(of.clone()),
        (None, true) => TakeOver::AnyStale,
        (None, false) => TakeOver::Never,
    };
    let backend = Backend::open(&env).await?;
    if let Some(mirror) = backend.mirror() {
        if mirror.exists(&run_id).await? {
            return Err(RunError::NotResumable(format!(
                "run {run_id} already exists in {}; resume it with `cutover resume {run_id}`",
                mirror.location(&run_id)
            )));
        }
    }
    let (lease, taken_over) = acquire(&env, &backend, &run_id, take_over).await?;
    let keeper = LeaseKeeper::start(lease);
    let result = async {
        let mut journal = Journal::create(&journal_file)?;
        journal.append(Event::RunStarted {
            run_id: run_id.clone(),
            plan_hash: plan.hash.clone(),
            runbook: absolute(&plan.runbook_path),
            environment: absolute(&env.source.path),
            environment_name: env.name.clone(),
            params: plan
                .params
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            sets: options.sets.clone(),
            cutover_version: env!("CARGO_PKG_VERSION").into(),
            host: hostname(),
            pid: std::process::id(),
        })?;
        if let Some((previous, reason)) = &taken_over {
            journal.append(Event::LeaseTakenOver {
                previous_owner: previous.owner.clone(),
                previous_run_id: previous.run_id.to_string(),
                previous_pid: previous.pid,
                reason: reason.clone(),
            })?;
        }
        if let Some(of) = &options.rollback_of {
            journal.append(Event::RunLinked {
                relation: RunRelation::RollbackOf,
                run_id: of.clone(),
                outcome: None,
            })?;
            link_undone_run(
                &env.state_dir,
                &backend,
                options.reporter.as_deref(),
                of,
                &run_id,
                None,
            )
            .await?;
        }
        session(
            plan,
            run_id.clone(),
            journal,
            &RunView::default(),
            &backend,
            options.reporter.as_deref(),
            progress,
            stop,
        )
        .await
    }
    .await;
    finish_session(keeper, result).await
}

async fn finish_session(
    keeper: LeaseKeeper,
    result: Result<RunSummary, RunError>,
) -> Result<RunSummary, RunError> {
    match result {
        Ok(summary) => {
            keeper.stop(releases_lease(&summary.end)).await?;
            Ok(summary)
        }
        Err(e) => {
            let _ = keeper.stop(false).await;
            Err(e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn session(
    plan: Plan,
    run_id: RunId,
    journal: Journal,
    prior: &RunView,
    backend: &Backend,
    reporter: Option<&dyn RunReporter>,
    progress: ProgressHandle,
    stop: watch::Receiver<bool>,
) -> Result<RunSummary, RunError> {
    let env = plan.environment.clone();
    let dir = run_dir(&env.state_dir, &run_id);
    let journal_file = journal.path().to_path_buf();
    let providers = Some(backend.providers(&run_id)?);
    let mut journal = journal;
    let mirror = backend.mirror().map(|m| {
        let appended = Arc::new(tokio::sync::Notify::new());
        journal.notify_on_append(appended.clone());
        MirrorKeeper::start(m, run_id.clone(), journal_file.clone(), appended)
    });
    let journal: SharedJournal = Arc::new(Mutex::new(journal));
    let services = Arc::new(Services {
        environment: env.clone(),
        run_dir: dir.clone(),
        progress: progress.clone(),
        providers,
    });
    progress.report(ProgressEvent::RunStarted {
        run_id: run_id.clone(),
        runbook: plan.name.clone(),
        environment: env.name.clone(),
        steps: plan.steps.len(),
    });
    let executor = Executor {
        plan: Arc::new(plan),
        run_id: run_id.clone(),
        journal,
        services,
        progress,
        stop,
    };
    let end = executor.run(prior).await;
    if let Some(mirror) = mirror {
        // The local journal stays authoritative; a mirror that could not be brought up
        // to date only matters to a resume on another machine, which reconciles.
        if let Err(f) = mirror.finish().await {
            executor.progress.report(ProgressEvent::Note {
                step: None,
                message: format!("the journal mirror was not updated: {}", f.message),
            });
        }
    }
    let end = end?;
    let (records, _) = super::journal::read_records(&journal_file)?;
    let view = replay(&records);
    if let (SessionEnd::Finished(outcome, _), Some(of)) = (&end, view.rollback_of()) {
        link_undone_run(
            &env.state_dir,
            backend,
            reporter,
            of,
            &run_id,
            Some(*outcome),
        )
        .await?;
    }
    let bake_failed = executor.plan.steps.iter().any(|s| {
        s.kind.name == "health.bake"
            && view.steps.get(&s.id).map(|v| v.status) == Some(super::state::StepStatus::Failed)
    });
    // A report that cannot be written does not change what the run did; say so.
    let report = match reporter.map(|r| r.write(&dir, &records)) {
        Some(Ok(markdown)) => Some(markdown),
        Some(Err(f)) => {
            executor.progress.report(ProgressEvent::Note {
                step: None,
                message: format!("the report was not written: {}", f.message),
            });
            None
        }
        None => None,
    };
    Ok(RunSummary {
        run_id,
        end,
        run_dir: dir,
        view,
        report,
        bake_failed,
    })
}

/// Records in the journal of `undone` that `rollback` rolls it back (with the rollback's
/// outcome once it ended), rewrites its report, and on aws uploads its journal to the
/// mirror. Called under the environment's lease.
async fn link_undone_run(
    state_dir: &Path,
    backend: &Backend,
    reporter: Option<&dyn RunReporter>,
    undone: &RunId,
    rollback: &RunId,
    outcome: Option<Outcome>,
) -> Result<(), Failure> {
    let path = journal_path(state_dir, undone);
    let (mut journal, _) = Journal::open(&path)?;
    journal.append(Event::RunLinked {
        relation: RunRelation::RolledBackBy,
        run_id: rollback.clone(),
        outcome,
    })?;
    drop(journal);
    if let Some(mirror) = backend.mirror() {
        mirror.upload(undone, &path).await?;
    }
    let (records, _) = super::journal::read_records(&path)?;
    // The journal holds the link either way; a report that cannot be rewritten is shown
    // again by `cutover report`.
    let rewritten = reporter.map(|r| r.write(&run_dir(state_dir, undone), &records));
    if let Some(Err(f)) = rewritten {
        tracing::warn!(run_id = %undone, error = %f, "the report of the rolled-back run was not rewritten");
    }
    Ok(())
}

/// Reads a run's journal into a view.
pub fn load_view(state_dir: &Path, run_id: &RunId) -> Result<RunView, RunError> {
    let path = journal_path(state_dir, run_id);
    if !path.exists() {
        return Err(RunError::NotResumable(format!(
            "no run {run_id} in {}; `cutover status --env …` lists runs",
            state_dir.display()
        )));
    }
    let (records, _) = super::journal::read_records(&path)?;
    Ok(replay(&records))
}

/// Run ids in the state directory, oldest first.
pub fn list_runs(state_dir: &Path) -> Vec<RunId> {
    let mut ids: Vec<RunId> = std::fs::read_dir(runs_dir(state_dir))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("journal.jsonl").exists())
        .map(|e| RunId::new(e.file_name().to_string_lossy().to_string()))
        .collect();
    ids.sort_by_key(|id| {
        std::fs::metadata(journal_path(state_dir, id))
            .and_then(|m| m.created().or_else(|_| m.modified()))
            .ok()
    });
    ids
}

/// Options of `cutover resume`.
#[derive(Clone, Debug, Default)]
pub struct ResumeOptions {
    /// Resume even though the plan changed (recorded in the journal).
    pub force: bool,
    /// As [`RunOptions::reporter`].
    pub reporter: Option<Arc<dyn RunReporter>>,
    /// The runbook's path on this machine, when it is not where the run started (a run
    /// resumed on another machine). The plan must still hash the same unless `force`.
    pub runbook: Option<PathBuf>,
}

/// Resumes a run that crashed, was interrupted, or needs its rollback finished. On
/// `aws`, a run started on another machine is resumed from the journal mirror.
pub async fn resume(
    run_id: RunId,
    environment: &str,
    options: ResumeOptions,
    progress: ProgressHandle,
    stop: watch::Receiver<bool>,
) -> Result<RunSummary, RunError> {
    let env = Environment::load(environment).map_err(|p| RunError::Invalid(Box::new(p)))?;
    let path = journal_path(&env.state_dir, &run_id);
    let backend = Backend::open(&env).await?;
    backend.reconcile_journal(&run_id, &path).await?;
    let prior = load_view(&env.state_dir, &run_id)?;
    if let Some(link) = prior.rolled_back_by() {
        return Err(RunError::NotResumable(format!(
            "run {run_id} is rolled back by run {} ({}); resume that one if it is unfinished (`cutover resume {} --env {}`), or roll back again with `cutover rollback {run_id} --env {}`",
            link.run_id,
            link.outcome.map_or_else(|| "unfinished".to_string(), |o| o.to_string()),
            link.run_id,
            env.name,
            env.name
        )));
    }
    if let Some(outcome) = prior.outcome {
        if outcome != Outcome::NeedsAttention {
            return Err(RunError::NotResumable(format!(
                "run {run_id} already finished: {outcome}. Nothing to resume"
            )));
        }
        if !prior.failing() {
            return Err(RunError::NotResumable(format!(
                "run {run_id} needs attention: {}. Resolve it by hand; resume cannot fix a broken postcondition",
                prior.message.clone().unwrap_or_default()
            )));
        }
    }
    // The journal names the runbook by its absolute path where the run started; on
    // another machine `--runbook` says where it is here. The environment is the one
    // named now (`--env`): its state directory is this machine's. Either way the plan
    // must hash as it did when the run started.
    let runbook = options
        .runbook
        .clone()
        .unwrap_or_else(|| PathBuf::from(&prior.runbook));
    let environment_file = env.source.path.display().to_string();
    let plan = load_plan(&runbook, &environment_file, &prior.sets)
        .map_err(|p| RunError::Invalid(Box::new(p)))?;
    if plan.hash != prior.plan_hash && !options.force {
        return Err(RunError::PlanChanged {
            run_id,
            old: short(&prior.plan_hash),
            new: short(&plan.hash),
        });
    }
    let (lease, taken_over) =
        acquire(&plan.environment, &backend, &run_id, TakeOver::SameRun).await?;
    let keeper = LeaseKeeper::start(lease);
    let result = async {
        // Under the lease, the mirror can no longer move; if it moved since we read it,
        // another machine went on with the run meanwhile: start over from its journal.
        use crate::providers::run_store::Reconciled;
        if backend.reconcile_journal(&run_id, &path).await? == Some(Reconciled::Downloaded) {
            return Err(RunError::NotResumable(format!(
                "run {run_id} went on from another machine while this resume started; run `cutover resume {run_id}` again"
            )));
        }
        let (mut journal, _) = Journal::open(&path)?;
        journal.append(Event::RunResumed {
            pid: std::process::id(),
            host: hostname(),
            forced: plan.hash != prior.plan_hash,
            plan_hash: plan.hash.clone(),
        })?;
        if let Some((previous, reason)) = &taken_over {
            journal.append(Event::LeaseTakenOver {
                previous_owner: previous.owner.clone(),
                previous_run_id: previous.run_id.to_string(),
                previous_pid: previous.pid,
                reason: reason.clone(),
            })?;
        }
        session(
            plan,
            run_id.clone(),
            journal,
            &prior,
            &backend,
            options.reporter.as_deref(),
            progress,
            stop,
        )
        .await
    }
    .await;
    finish_session(keeper, result).await
}

fn short(hash: &str) -> String {
    hash.chars().take(12).collect()
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
