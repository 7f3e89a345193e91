//! What a run needs from its provider besides the steps' services: the run store (where
//! the lease lives, and the journal mirror other machines resume from), and the
//! background tasks that keep the lease renewed and the mirror current while a session
//! runs. The provider is chosen here, once, from the environment; the rest of the engine
//! knows it only through [`EnvironmentProvider`] and [`RunStore`].

use super::run::journal_path;
use crate::config::{Environment, ProviderKind};
use crate::failure::Failure;
use crate::ids::RunId;
use crate::providers::lease::LEASE_TTL;
use crate::providers::run_store::{ActiveLease, JournalMirror, Reconciled, RunStore};
use crate::providers::EnvironmentProvider;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How often a live run uploads its journal to the mirror when it changed.
pub const MIRROR_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// The provider of an environment, opened once per command (on aws this loads the SDK
/// configuration), and its run store.
pub struct Backend {
    provider: Box<dyn EnvironmentProvider>,
    /// The lease and (aws) the journal mirror.
    pub runs: Arc<dyn RunStore>,
}

impl Backend {
    pub async fn open(env: &Environment) -> Result<Self, Failure> {
        let provider: Box<dyn EnvironmentProvider> = match env.provider {
            ProviderKind::Local => Box::new(crate::providers::local::LocalEnvironment::open(
                &env.state_dir,
                &env.traffic,
                &env.name,
            )),
            ProviderKind::Aws => Box::new(
                crate::providers::aws::AwsProvider::open(
                    env.aws_section()?,
                    &env.traffic,
                    &env.name,
                )
                .await?,
            ),
        };
        let runs = provider.run_store();
        Ok(Self { runs, provider })
    }

    /// The journal mirror, where runs resume on other machines.
    pub fn mirror(&self) -> Option<Arc<dyn JournalMirror>> {
        self.runs.mirror()
    }

    /// The environment's compute, for work outside a run (`gc`).
    pub fn compute(&self) -> Arc<dyn crate::providers::Compute> {
        self.provider.compute()
    }

    pub(super) fn providers(
        &self,
        run_id: &RunId,
    ) -> Result<crate::providers::ProviderSet, Failure> {
        self.provider.services(run_id)
    }

    /// Brings the local journal up to date with the mirror, where there is one.
    pub(super) async fn reconcile_journal(
        &self,
        run_id: &RunId,
        path: &Path,
    ) -> Result<Option<Reconciled>, Failure> {
        match self.mirror() {
            Some(m) => m.reconcile(run_id, path).await.map(Some),
            None => Ok(None),
        }
    }

    /// Where there is a mirror, brings the local copy of `run_id`'s journal under
    /// `state_dir` up to date with it (a run started on another machine becomes visible
    /// here). A no-op otherwise.
    pub async fn fetch_run(&self, state_dir: &Path, run_id: &RunId) -> Result<(), Failure> {
        self.reconcile_journal(run_id, &journal_path(state_dir, run_id))
            .await
            .map(|_| ())
    }

    /// Fetches every mirrored run's journal (see [`Backend::fetch_run`]).
    pub async fn fetch_runs(&self, state_dir: &Path) -> Result<(), Failure> {
        let Some(mirror) = self.mirror() else {
            return Ok(());
        };
        for run_id in mirror.runs().await? {
            self.fetch_run(state_dir, &run_id).await?;
        }
        Ok(())
    }
}

/// Renews the lease in the background until stopped.
pub(super) struct LeaseKeeper {
    task: tokio::task::JoinHandle<()>,
    lease: Arc<tokio::sync::Mutex<Option<Box<dyn ActiveLease>>>>,
}

impl LeaseKeeper {
    pub(super) fn start(lease: Box<dyn ActiveLease>) -> Self {
        let lease = Arc::new(tokio::sync::Mutex::new(Some(lease)));
        let shared = lease.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(LEASE_TTL / 3);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Some(l) = shared.lock().await.as_mut() {
                    // A lost lease is noticed at the next renewal; the run keeps its
                    // journal either way, and the next start or resume sees the holder.
                    if let Err(f) = l.renew().await {
                        tracing::warn!(error = %f, "lease renewal failed");
                    }
                }
            }
        });
        Self { task, lease }
    }

    /// Stops renewing; releases the lease when `release` (a finished, clean run).
    /// Otherwise the lease stays and goes stale, marking the environment as mid-run.
    pub(super) async fn stop(self, release: bool) -> Result<(), Failure> {
        self.task.abort();
        let lease = self.lease.lock().await.take();
        match lease {
            Some(l) if release => l.release().await,
            _ => Ok(()),
        }
    }
}

/// Uploads the journal to the mirror in the background as soon as it grew (told by the
/// journal after each record; bursts coalesce into one upload), and at least every
/// [`MIRROR_INTERVAL`] while an upload keeps failing. So a command handle a step journals
/// is in S3 within one upload of being on disk: a machine resuming from the mirror then
/// adopts the command instead of sending another.
pub(super) struct MirrorKeeper {
    task: tokio::task::JoinHandle<()>,
    mirror: Arc<dyn JournalMirror>,
    run_id: RunId,
    path: PathBuf,
}

impl MirrorKeeper {
    pub(super) fn start(
        mirror: Arc<dyn JournalMirror>,
        run_id: RunId,
        path: PathBuf,
        appended: Arc<tokio::sync::Notify>,
    ) -> Self {
        let (m, r, p) = (mirror.clone(), run_id.clone(), path.clone());
        let task = tokio::spawn(async move {
            let mut uploaded: Option<u64> = None;
            let mut tick = tokio::time::interval(MIRROR_INTERVAL);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = appended.notified() => {}
                }
                let len = std::fs::metadata(&p).map(|m| m.len()).ok();
                if len.is_some() && len != uploaded {
                    match m.upload(&r, &p).await {
                        Ok(_) => uploaded = len,
                        Err(f) => {
                            tracing::warn!(error = %f, "journal mirror upload failed; retrying")
                        }
                    }
                }
            }
        });
        Self {
            task,
            mirror,
            run_id,
            path,
        }
    }

    /// Stops the background uploads and uploads the final journal.
    pub(super) async fn finish(self) -> Result<(), Failure> {
        self.task.abort();
        let _ = self.task.await;
        self.mirror.upload(&self.run_id, &self.path).await
    }
}
