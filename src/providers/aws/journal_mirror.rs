//! Run journals mirrored to S3 (`runs/<run>/journal.jsonl`), so any machine can resume a
//! run. The mirror is a copy: the local journal stays authoritative while the run is
//! live; a machine without it downloads the mirror and verifies its SHA-256.

use super::s3_store::S3Store;
use crate::failure::Failure;
use crate::ids::{ObjectKey, RunId};
use crate::providers::{ObjectInfo, ObjectStore};
use std::path::Path;

#[derive(Clone, Debug)]
pub struct JournalMirror {
    store: S3Store,
}

impl JournalMirror {
    pub fn new(store: S3Store) -> Self {
        Self { store }
    }

    pub fn key(run_id: &RunId) -> ObjectKey {
        ObjectKey::new(format!("runs/{run_id}/journal.jsonl"))
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
