//! A database engine with one fault, delegating everything else to the real one.

use async_trait::async_trait;
use cutover::db::bolt::BoltTarget;
use cutover::db::{BackupArtifact, DatabaseEngine, DbHandle, DbOperation, EngineKind, OpPoll};
use cutover::failure::Failure;
use cutover::ids::{ObjectKey, SecretName};
use cutover::providers::{Compute, Instance, ObjectStore};
use secrecy::{ExposeSecret, SecretString};
use sha2::Digest;
use std::sync::Arc;

#[derive(Clone, Copy, Debug)]
pub enum EngineFault {
    /// `kill-green`: the instance is stopped (the provider's stop: SIGTERM, then SIGKILL
    /// after 30 s locally) just before a restore starts, so the restore finds no server.
    StopBeforeRestore,
    /// `inconsistent-artifact`: a finished backup's stored object gets 4 KiB zeroed in
    /// the middle, and the artifact reports the damaged object's SHA-256 and size, as if
    /// the engine had written it so.
    DamageFinishedBackup,
    /// `fail-health`, `fail-secret-test`: Bolt targets carry a wrong password.
    WrongPassword,
}

pub struct FaultyEngine {
    pub inner: Arc<dyn DatabaseEngine>,
    pub fault: EngineFault,
    pub compute: Option<Arc<dyn Compute>>,
}

impl FaultyEngine {
    async fn damage(
        &self,
        objects: &dyn ObjectStore,
        mut artifact: BackupArtifact,
    ) -> Result<BackupArtifact, Failure> {
        let key = artifact.object.key.clone();
        let mut data = objects.get_bytes(&key).await?;
        // 4 KiB from the middle zeroed: enough to break any compressed block it touches.
        let start = data.len() / 2;
        let end = (start + 4096).min(data.len());
        data[start..end].fill(0);
        artifact.object.sha256 = Some(hex::encode(sha2::Sha256::digest(&data)));
        artifact.object.size = data.len() as u64;
        objects.put_bytes(&key, data).await?;
        tracing::warn!(artifact = %key, "failure point: the artifact was damaged before its manifest recorded its SHA-256");
        Ok(artifact)
    }
}

#[async_trait]
impl DatabaseEngine for FaultyEngine {
    fn kind(&self) -> EngineKind {
        self.inner.kind()
    }
    fn verifies_artifact_where_it_loads(&self) -> bool {
        self.inner.verifies_artifact_where_it_loads()
    }
    async fn version(&self, db: &DbHandle) -> Result<String, Failure> {
        self.inner.version(db).await
    }
    async fn health(&self, db: &DbHandle) -> Result<(), Failure> {
        self.inner.health(db).await
    }
    async fn freeze(&self, db: &DbHandle) -> Result<(), Failure> {
        self.inner.freeze(db).await
    }
    async fn unfreeze(&self, db: &DbHandle) -> Result<(), Failure> {
        self.inner.unfreeze(db).await
    }
    async fn is_frozen(&self, db: &DbHandle) -> Result<bool, Failure> {
        self.inner.is_frozen(db).await
    }
    async fn start_set_frozen(&self, db: &DbHandle, frozen: bool) -> Result<DbOperation, Failure> {
        self.inner.start_set_frozen(db, frozen).await
    }
    async fn poll_set_frozen(&self, db: &DbHandle, op: &mut DbOperation) -> OpPoll<()> {
        self.inner.poll_set_frozen(db, op).await
    }
    async fn start_backup(
        &self,
        db: &DbHandle,
        objects: &dyn ObjectStore,
        key: &ObjectKey,
        attempt: &str,
    ) -> Result<DbOperation, Failure> {
        self.inner.start_backup(db, objects, key, attempt).await
    }
    async fn poll_backup(
        &self,
        db: &DbHandle,
        objects: &dyn ObjectStore,
        op: &mut DbOperation,
    ) -> OpPoll<BackupArtifact> {
        match (self.fault, self.inner.poll_backup(db, objects, op).await) {
            (EngineFault::DamageFinishedBackup, OpPoll::Done(artifact)) => {
                match self.damage(objects, artifact).await {
                    Ok(damaged) => OpPoll::Done(damaged),
                    Err(f) => OpPoll::Failed(f),
                }
            }
            (_, status) => status,
        }
    }
    async fn start_restore(
        &self,
        db: &DbHandle,
        objects: &dyn ObjectStore,
        artifact: &BackupArtifact,
        attempt: &str,
    ) -> Result<DbOperation, Failure> {
        if let (EngineFault::StopBeforeRestore, Some(compute)) = (self.fault, &self.compute) {
            tracing::warn!(instance = %db.instance.id, "failure point: stopping the server before the restore");
            compute.stop(&db.instance.id).await?;
        }
        self.inner
            .start_restore(db, objects, artifact, attempt)
            .await
    }
    async fn clear_for_restore(&self, db: &DbHandle) -> Result<(), Failure> {
        self.inner.clear_for_restore(db).await
    }
    async fn poll_restore(
        &self,
        db: &DbHandle,
        objects: &dyn ObjectStore,
        artifact: &BackupArtifact,
        op: &mut DbOperation,
    ) -> OpPoll<()> {
        self.inner.poll_restore(db, objects, artifact, op).await
    }
    async fn set_user_password(
        &self,
        db: &DbHandle,
        user: &str,
        password: &SecretString,
    ) -> Result<(), Failure> {
        self.inner.set_user_password(db, user, password).await
    }
    async fn start_prepare_instance(
        &self,
        instance: &Instance,
        admin_secret: &SecretName,
    ) -> Result<DbOperation, Failure> {
        self.inner
            .start_prepare_instance(instance, admin_secret)
            .await
    }
    async fn poll_prepare_instance(&self, op: &mut DbOperation) -> OpPoll<()> {
        self.inner.poll_prepare_instance(op).await
    }
    fn bolt_target(&self, db: &DbHandle, user: &str, password: SecretString) -> BoltTarget {
        let password = match self.fault {
            EngineFault::WrongPassword => {
                SecretString::from(format!("{}-wrong", password.expose_secret()))
            }
            _ => password,
        };
        self.inner.bolt_target(db, user, password)
    }
}
