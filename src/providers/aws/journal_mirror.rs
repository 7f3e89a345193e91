//! Run journals mirrored to S3 (`runs/<run>/journal.jsonl`), so any machine can resume a
//! run. The mirror is a copy: the local journal stays authoritative while the run is
//! live; a machine without it downloads the mirror and verifies its SHA-256.

use super::s3_store::S3Store;
use crate::failure::Failure;
use crate::ids::{ObjectKey, RunId};
use crate::providers::run_store::Reconciled;
use crate::providers::{ObjectInfo, ObjectStore};
use std::path::Path;

fn diverged(run_id: &RunId, path: &Path, mirror: &str) -> Failure {
    Failure::permanent(format!(
        "run {run_id}: the local journal {} and the mirror {mirror} disagree (neither is a prefix of the other): the run went on from two machines",
        path.display()
    ))
    .with_hint("compare both journals and keep the one whose effects are real; nothing was changed")
}

#[derive(Clone, Debug)]
pub struct S3JournalMirror {
    store: S3Store,
}

impl S3JournalMirror {
    pub fn new(store: S3Store) -> Self {
        Self { store }
    }

    pub fn key(run_id: &RunId) -> ObjectKey {
        ObjectKey::new(format!("runs/{run_id}/journal.jsonl"))
    }

    /// The mirror of `run_id`, if there is one.
    pub async fn head(&self, run_id: &RunId) -> Result<Option<ObjectInfo>, Failure> {
        self.store.head(&Self::key(run_id)).await
    }

    /// `s3://bucket/key` of the mirror of `run_id`, for messages.
    pub fn location(&self, run_id: &RunId) -> String {
        self.store.location(&Self::key(run_id))
    }

    /// Uploads the journal at `path`; returns its size and SHA-256.
    pub async fn upload(&self, run_id: &RunId, path: &Path) -> Result<ObjectInfo, Failure> {
        self.store.put_file(&Self::key(run_id), path).await
    }

    /// Downloads the mirror to `path`, verified against its recorded SHA-256.
    /// `Ok(None)` when the run has no mirror.
    pub async fn download(
        &self,
        run_id: &RunId,
        path: &Path,
    ) -> Result<Option<ObjectInfo>, Failure> {
        let key = Self::key(run_id);
        if self.store.head(&key).await?.is_none() {
            return Ok(None);
        }
        self.store.get_file(&key, path).await.map(Some)
    }

    /// Makes the local journal at `path` the longer of itself and the mirror, and says
    /// what it did. The journal only ever grows, so one of the two must be a prefix of
    /// the other; if not, the run diverged on two machines and nothing is changed.
    pub async fn reconcile(&self, run_id: &RunId, path: &Path) -> Result<Reconciled, Failure> {
        let key = Self::key(run_id);
        let local = match std::fs::read(path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(Failure::permanent(format!(
                    "cannot read journal {}: {e}",
                    path.display()
                )))
            }
        };
        if self.store.head(&key).await?.is_none() {
            return Ok(match local {
                Some(_) => Reconciled::LocalOnly,
                None => Reconciled::Missing,
            });
        }
        let remote = self.store.get_bytes(&key).await?;
        let local = local.unwrap_or_default();
        if remote.len() <= local.len() {
            return if local.starts_with(&remote) {
                Ok(Reconciled::LocalAhead)
            } else {
                Err(diverged(run_id, path, &self.store.location(&key)))
            };
        }
        if !remote.starts_with(&local) {
            return Err(diverged(run_id, path, &self.store.location(&key)));
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Failure::permanent(format!("cannot create {}: {e}", dir.display())))?;
        }
        let tmp = path.with_extension("jsonl.mirror");
        std::fs::write(&tmp, &remote)
            .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| Failure::permanent(format!("cannot write {}: {e}", path.display())))?;
        Ok(Reconciled::Downloaded)
    }

    /// Every run with something under `runs/`.
    pub async fn runs(&self) -> Result<Vec<RunId>, Failure> {
        Ok(self
            .store
            .list_dirs("runs/")
            .await?
            .into_iter()
            .filter_map(|d| {
                d.strip_prefix("runs/")
                    .map(|r| RunId::new(r.trim_end_matches('/')))
            })
            .collect())
    }
}
