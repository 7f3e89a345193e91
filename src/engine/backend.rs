//! What a run needs from its provider besides the steps' services: where the lease
//! lives (a file, or an object in S3), the journal mirror other machines resume from
//! (aws), and the background tasks that keep the lease renewed and the mirror current
//! while a session runs.

use super::env_lease::{EnvLease, LeaseBackend};
use super::lease::LEASE_TTL;
use super::run::journal_path;
use crate::config::Environment;
use crate::failure::Failure;
use crate::ids::RunId;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How often a live run uploads its journal to the mirror when it changed.
pub const MIRROR_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// The provider-dependent parts of running: where the lease lives, the journal mirror
/// (aws), and the services the steps use. Opened once per command (on aws this loads the
/// SDK configuration).
pub struct Backend {
    pub lease: LeaseBackend,
    pub mirror: Option<crate::providers::aws::JournalMirror>,
    pub aws: Option<crate::providers::aws::AwsProvider>,
}

impl Backend {
    pub async fn open(env: &Environment) -> Result<Self, Failure> {
        match env.provider {
            crate::config::ProviderKind::Local => Ok(Self {
                lease: LeaseBackend::Local(env.state_dir.clone()),
                mirror: None,
                aws: None,
            }),
            crate::config::ProviderKind::Aws => {
                let aws = crate::providers::aws::AwsProvider::open(
                    env.aws_section()?,
                    &env.traffic,
                    &env.name,
                )
                .await?;
                Ok(Self {
                    lease: LeaseBackend::S3(aws.lease()),
                    mirror: Some(aws.mirror()),
                    aws: Some(aws),
                })
            }
        }
    }

    /// The environment's compute, for work outside a run (`gc`).
    pub fn compute(
        &self,
        env: &Environment,
    ) -> Result<Arc<dyn crate::providers::Compute>, Failure> {
        match &self.aws {
            Some(aws) => Ok(Arc::new(aws.compute())),
            None => Ok(local_provider_set(env)?.compute),
        }
    }

    pub(super) fn providers(
        &self,
        env: &Environment,
        run_id: &RunId,
    ) -> Result<crate::providers::ProviderSet, Failure> {
        match &self.aws {
            Some(aws) => aws.provider_set(run_id),
            None => local_provider_set(env),
        }
    }

    /// Brings the local journal up to date with the mirror (aws); no-op locally.
    pub(super) async fn reconcile_journal(
        &self,
        run_id: &RunId,
        path: &Path,
    ) -> Result<Option<crate::providers::aws::journal_mirror::Reconciled>, Failure> {
        match &self.mirror {
            Some(m) => m.reconcile(run_id, path).await.map(Some),
            None => Ok(None),
        }
    }

    /// On aws, brings the local copy of `run_id`'s journal under `state_dir` up to date
    /// with the mirror (a run started on another machine becomes visible here). A no-op
    /// on local environments.
    pub async fn fetch_run(&self, state_dir: &Path, run_id: &RunId) -> Result<(), Failure> {
        self.reconcile_journal(run_id, &journal_path(state_dir, run_id))
            .await
            .map(|_| ())
    }

    /// On aws, fetches every mirrored run's journal (see [`Backend::fetch_run`]). A no-op
    /// on local environments.
    pub async fn fetch_runs(&self, state_dir: &Path) -> Result<(), Failure> {
        let Some(mirror) = &self.mirror else {
            return Ok(());
        };
        for run_id in mirror.runs().await? {
            self.fetch_run(state_dir, &run_id).await?;
        }
        Ok(())
    }
}

/// The provider services of a `local` environment.
fn local_provider_set(env: &Environment) -> Result<crate::providers::ProviderSet, Failure> {
    if env.provider != crate::config::ProviderKind::Local {
        return Err(Failure::permanent(format!(
            "environment `{}` uses the {:?} provider, not local",
            env.name, env.provider
        )));
    }
    crate::providers::local::LocalProvider::open(&env.state_dir)
        .provider_set(&env.traffic, &env.name)
}

/// Renews the lease in the background until stopped.
pub(super) struct LeaseKeeper {
    task: tokio::task::JoinHandle<()>,
    lease: Arc<tokio::sync::Mutex<Option<EnvLease>>>,
}

impl LeaseKeeper {
    pub(super) fn start(lease: EnvLease) -> Self {
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
    mirror: crate::providers::aws::JournalMirror,
    run_id: RunId,
    path: PathBuf,
}

impl MirrorKeeper {
    pub(super) fn start(
        mirror: crate::providers::aws::JournalMirror,
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
        self.mirror
            .upload(&self.run_id, &self.path)
            .await
            .map(|_| ())
    }
}
