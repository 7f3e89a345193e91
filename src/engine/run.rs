//! Starting and resuming runs: the run directory, the journal, the lease and the plan
//! hash check around one [`Executor`] session.
//!
//! Layout under the environment's state directory:
//! ```text
//! <state_dir>/lease.json                 one run at a time
//! <state_dir>/runs/<run_id>/journal.jsonl
//! <state_dir>/runs/<run_id>/...          step scratch files (outputs, backups)
//! ```

use super::executor::{Executor, SessionEnd, SharedJournal};
use super::journal::{Event, Journal, Outcome};
use super::lease::{hostname, Acquire, LeaseInfo, LocalLease, TakeOver, LEASE_TTL};
use super::progress::{ProgressEvent, ProgressHandle};
use super::state::{replay, RunView};
use crate::config::{Environment, Problems, Runbook};
use crate::failure::Failure;
use crate::ids::RunId;
use crate::plan::Plan;
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
    /// Use this run id instead of a generated one (must be new).
    pub run_id: Option<RunId>,
    pub take_over_lease: bool,
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

/// Renews the lease in the background until dropped.
struct LeaseKeeper {
    task: tokio::task::JoinHandle<()>,
    lease: Arc<Mutex<Option<LocalLease>>>,
}

impl LeaseKeeper {
    fn start(lease: LocalLease) -> Self {
        let lease = Arc::new(Mutex::new(Some(lease)));
        let shared = lease.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(LEASE_TTL / 3);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Some(l) = shared.lock().expect("lease lock").as_mut() {
                    // A lost lease is noticed at the next renewal; the run keeps its
                    // journal either way, and the next start or resume sees the holder.
                    let _ = l.renew();
                }
            }
        });
        Self { task, lease }
    }

    /// Stops renewing; releases the lease when `release` (a finished, clean run).
    /// Otherwise the lease stays and goes stale, marking the environment as mid-run.
    fn stop(self, release: bool) -> Result<(), Failure> {
        self.task.abort();
        let lease = self.lease.lock().expect("lease lock").take();
        match lease {
            Some(l) if release => l.release(),
            _ => Ok(()),
        }
    }
}

fn acquire(
    env: &Environment,
    run_id: &RunId,
    take_over: TakeOver,
) -> Result<(LocalLease, Option<(LeaseInfo, String)>), RunError> {
    let (outcome, lease) = LocalLease::acquire(&env.state_dir, run_id, take_over)?;
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
    let take_over = if options.take_over_lease {
        TakeOver::AnyStale
    } else {
        TakeOver::Never
    };
    let (lease, taken_over) = acquire(&env, &run_id, take_over)?;
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
        session(
            plan,
            run_id.clone(),
            journal,
            &RunView::default(),
            progress,
            stop,
        )
        .await
    }
    .await;
    finish_session(keeper, result)
}

fn finish_session(
    keeper: LeaseKeeper,
    result: Result<RunSummary, RunError>,
) -> Result<RunSummary, RunError> {
    match result {
        Ok(summary) => {
            keeper.stop(releases_lease(&summary.end))?;
            Ok(summary)
        }
        Err(e) => {
            let _ = keeper.stop(false);
            Err(e)
        }
    }
}

async fn session(
    plan: Plan,
    run_id: RunId,
    journal: Journal,
    prior: &RunView,
    progress: ProgressHandle,
    stop: watch::Receiver<bool>,
) -> Result<RunSummary, RunError> {
    let env = plan.environment.clone();
    let dir = run_dir(&env.state_dir, &run_id);
    let journal_file = journal.path().to_path_buf();
    let journal: SharedJournal = Arc::new(Mutex::new(journal));
    let providers = match env.provider {
        crate::config::ProviderKind::Local => Some(crate::providers::local::provider_set(&env)?),
        crate::config::ProviderKind::Aws => None,
    };
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
    let end = executor.run(prior).await?;
    let (records, _) = super::journal::read_records(&journal_file)?;
    // A report that cannot be written does not change what the run did; say so.
    let report = match crate::report::write_reports(&dir, &records) {
        Ok(paths) => Some(paths.markdown),
        Err(f) => {
            executor.progress.report(ProgressEvent::Note {
                step: None,
                message: format!("the report was not written: {}", f.message),
            });
            None
        }
    };
    Ok(RunSummary {
        run_id,
        end,
        run_dir: dir,
        view: replay(&records),
        report,
    })
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

/// Resumes a run that crashed, was interrupted, or needs its rollback finished.
pub async fn resume(
    run_id: RunId,
    environment: &str,
    force: bool,
    progress: ProgressHandle,
    stop: watch::Receiver<bool>,
) -> Result<RunSummary, RunError> {
    let env = Environment::load(environment).map_err(|p| RunError::Invalid(Box::new(p)))?;
    let path = journal_path(&env.state_dir, &run_id);
    let prior = load_view(&env.state_dir, &run_id)?;
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
    let plan = load_plan(Path::new(&prior.runbook), &prior.environment, &prior.sets)
        .map_err(|p| RunError::Invalid(Box::new(p)))?;
    if plan.hash != prior.plan_hash && !force {
        return Err(RunError::PlanChanged {
            run_id,
            old: short(&prior.plan_hash),
            new: short(&plan.hash),
        });
    }
    let (lease, taken_over) = acquire(&plan.environment, &run_id, TakeOver::SameRun)?;
    let keeper = LeaseKeeper::start(lease);
    let result = async {
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
        session(plan, run_id.clone(), journal, &prior, progress, stop).await
    }
    .await;
    finish_session(keeper, result)
}

fn short(hash: &str) -> String {
    hash.chars().take(12).collect()
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
