//! The database-engine seam: what steps ask of a database, whatever engine it runs.
//! `arcadedb` implements it against local server processes; `neo4j` against EC2
//! instances through SSM and Bolt.

use super::bolt::BoltTarget;
use super::EngineKind;
use crate::failure::Failure;
use crate::ids::ObjectKey;
use crate::providers::{ExecHandle, Instance, ObjectInfo, ObjectStore};
use async_trait::async_trait;
use secrecy::SecretString;
use std::time::Duration;

/// One database on one instance, with the administrator's credentials.
/// `Debug` never shows the password.
#[derive(Clone, Debug)]
pub struct DbHandle {
    pub instance: Instance,
    /// The database's name inside the server (`ledger`, or `neo4j` on Neo4j).
    pub database: String,
    pub admin_user: String,
    pub admin_password: SecretString,
}

/// What a backup produced.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackupArtifact {
    pub object: ObjectInfo,
    /// Engine name and version that wrote it (a restore refuses older targets).
    pub engine: EngineKind,
    pub engine_version: String,
    /// `dump`, `zip`, `online-full`, ...
    pub format: String,
}

/// A long database operation (a backup, a restore) that was started and is polled.
///
/// Serialisable on purpose: a step journals it as soon as it exists, and a *different
/// process* (a resumed run) continues polling from the journaled copy instead of
/// starting the operation a second time. `command` is the remote command running it, when
/// there is one (the SSM command id and the script's nonce on aws, the exec directory's
/// id locally); `state` is the engine's own progress (phase, counters, what to verify at
/// the end), opaque to callers. [`DatabaseEngine`]'s poll methods update it in place:
/// callers journal it again whenever it changed.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DbOperation {
    /// What runs, e.g. `neo4j-backup`; for messages.
    pub operation: String,
    #[serde(default)]
    pub command: Option<ExecHandle>,
    #[serde(default)]
    pub state: serde_json::Value,
}

/// What one poll of a [`DbOperation`] found.
#[derive(Clone, Debug, PartialEq)]
pub enum OpPoll<T> {
    /// Still running: poll again after `after`. `what` is shown to the operator.
    Running {
        after: Duration,
        what: String,
    },
    Done(T),
    /// The operation is over and did not succeed; its handle is spent (a retry starts a
    /// new one). The class says whether a retry can help.
    Failed(Failure),
}

/// Drives a started operation to its end, sleeping between polls with tokio's timer.
/// For callers outside the executor (tests, tools); steps poll themselves and return
/// `Wait` instead. Bounded by the engine's own deadlines, which every poll enforces.
pub async fn drive<T, F, Fut>(mut op: DbOperation, mut poll: F) -> Result<T, Failure>
where
    F: FnMut(DbOperation) -> Fut,
    Fut: std::future::Future<Output = (DbOperation, OpPoll<T>)>,
{
    loop {
        let (next, status) = poll(op).await;
        op = next;
        match status {
            OpPoll::Done(v) => return Ok(v),
            OpPoll::Failed(f) => return Err(f),
            OpPoll::Running { after, .. } => tokio::time::sleep(after).await,
        }
    }
}

/// A fresh attempt name for [`DatabaseEngine::start_backup`] and
/// [`DatabaseEngine::start_restore`]: 32 random hex digits.
pub fn new_attempt_name() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[async_trait]
pub trait DatabaseEngine: Send + Sync {
    fn kind(&self) -> EngineKind;
    /// Whether [`start_restore`](DatabaseEngine::start_restore) checks the artifact's
    /// SHA-256 (the artifact's `object.sha256`, the manifest's) where the bytes land and
    /// refuses to load on a mismatch — the Neo4j scripts hash their download on the
    /// instance before `neo4j-admin` loads it. Then `db.restore` does not download the
    /// artifact to the controller to check it first: on aws the data never flows through
    /// the machine running cutover. The default (false) has the controller check.
    fn verifies_artifact_where_it_loads(&self) -> bool {
        false
    }
    /// The server's version, e.g. `26.10.2` or `5.26.0`.
    async fn version(&self, db: &DbHandle) -> Result<String, Failure>;
    /// A real query succeeds (not just a port answering).
    async fn health(&self, db: &DbHandle) -> Result<(), Failure>;
    /// Refuse writes with a clear error; reads keep working. Idempotent.
    async fn freeze(&self, db: &DbHandle) -> Result<(), Failure>;
    /// Accept writes again. Idempotent; succeeds on a database that was never frozen.
    async fn unfreeze(&self, db: &DbHandle) -> Result<(), Failure>;
    async fn is_frozen(&self, db: &DbHandle) -> Result<bool, Failure>;
    /// Starts freezing (`frozen = true`) or unfreezing `db`, with the guarantees of
    /// [`freeze`](DatabaseEngine::freeze) and [`unfreeze`](DatabaseEngine::unfreeze), for
    /// engines where that restarts a server (Neo4j Community). The default does it at
    /// once; its first poll reports `Done`.
    async fn start_set_frozen(&self, db: &DbHandle, frozen: bool) -> Result<DbOperation, Failure> {
        if frozen {
            self.freeze(db).await?;
        } else {
            self.unfreeze(db).await?;
        }
        Ok(DbOperation {
            operation: if frozen { "freeze" } else { "unfreeze" }.into(),
            command: None,
            state: serde_json::Value::Null,
        })
    }
    /// One bounded look at a started freeze or unfreeze.
    async fn poll_set_frozen(&self, _db: &DbHandle, _op: &mut DbOperation) -> OpPoll<()> {
        OpPoll::Done(())
    }
    /// Starts a consistent backup of the database to `key` (SHA-256 computed on write)
    /// and returns at once with its handle; [`DatabaseEngine::poll_backup`] follows it.
    /// Refusals that need no command (wrong method for the edition, a bad location) are
    /// returned here, before anything runs. An engine whose backup is quick may finish
    /// it here; its first poll then reports `Done`.
    ///
    /// `attempt` names this attempt (letters, digits, `-`): the caller journals it before
    /// the call, and a start with the same `attempt` adopts the command an earlier call
    /// sent (a process that crashed before it journaled the handle) instead of sending a
    /// second one. A new attempt (after a failed one) needs a new name.
    async fn start_backup(
        &self,
        db: &DbHandle,
        objects: &dyn ObjectStore,
        key: &ObjectKey,
        attempt: &str,
    ) -> Result<DbOperation, Failure>;
    /// One bounded look at a started backup (never waits for it). `Done` only once the
    /// stored object was checked against what the backup reported.
    async fn poll_backup(
        &self,
        db: &DbHandle,
        objects: &dyn ObjectStore,
        op: &mut DbOperation,
    ) -> OpPoll<BackupArtifact>;
    /// Starts loading a backup into `db` on a fresh instance. The caller has verified the
    /// artifact's SHA-256 against the manifest; implementations verify it again on the
    /// bytes they actually load and refuse a mismatch before loading. Everything that can
    /// be refused without a command (engine, version, format) is refused here.
    /// `attempt` as for [`start_backup`](DatabaseEngine::start_backup).
    async fn start_restore(
        &self,
        db: &DbHandle,
        objects: &dyn ObjectStore,
        artifact: &BackupArtifact,
        attempt: &str,
    ) -> Result<DbOperation, Failure>;
    /// Empties `db` so that a restore can replace it; called only after the caller proved
    /// its content is already in the backup (a rollback onto blue). The default does
    /// nothing: engines whose restore overwrites the store (Neo4j loads with
    /// `--overwrite-destination`) need no clearing.
    async fn clear_for_restore(&self, _db: &DbHandle) -> Result<(), Failure> {
        Ok(())
    }
    /// One bounded look at a started restore (never waits for it).
    async fn poll_restore(
        &self,
        db: &DbHandle,
        objects: &dyn ObjectStore,
        artifact: &BackupArtifact,
        op: &mut DbOperation,
    ) -> OpPoll<()>;
    /// [`start_backup`](DatabaseEngine::start_backup), then polls to the end with
    /// [`drive`]. Not for steps (they must not wait inside a call).
    async fn backup(
        &self,
        db: &DbHandle,
        objects: &dyn ObjectStore,
        key: &ObjectKey,
    ) -> Result<BackupArtifact, Failure> {
        let op = self
            .start_backup(db, objects, key, &new_attempt_name())
            .await?;
        drive(op, |mut op| async move {
            let status = self.poll_backup(db, objects, &mut op).await;
            (op, status)
        })
        .await
    }
    /// [`start_restore`](DatabaseEngine::start_restore), then polls to the end with
    /// [`drive`]. Not for steps.
    async fn restore(
        &self,
        db: &DbHandle,
        objects: &dyn ObjectStore,
        artifact: &BackupArtifact,
    ) -> Result<(), Failure> {
        let op = self
            .start_restore(db, objects, artifact, &new_attempt_name())
            .await?;
        drive(op, |mut op| async move {
            let status = self.poll_restore(db, objects, artifact, &mut op).await;
            (op, status)
        })
        .await
    }
    /// Creates the application user, or changes its password. Idempotent.
    async fn set_user_password(
        &self,
        db: &DbHandle,
        user: &str,
        password: &SecretString,
    ) -> Result<(), Failure>;
    /// Starts making a freshly provisioned instance serve, with the administrator's
    /// password held in `admin_secret`: Neo4j sets the initial password before the first
    /// start (a script on the instance reads the secret itself) and starts the service.
    /// Returns at once; poll with [`DatabaseEngine::poll_prepare_instance`] and journal the
    /// operation, so a resumed run polls the same script. Idempotent; the caller proves
    /// the result by logging in. The default has nothing to run, for engines whose
    /// instances come up serving (ArcadeDB locally).
    async fn start_prepare_instance(
        &self,
        _instance: &Instance,
        _admin_secret: &crate::ids::SecretName,
    ) -> Result<DbOperation, Failure> {
        Ok(DbOperation {
            operation: "prepare-instance".into(),
            command: None,
            state: serde_json::Value::Null,
        })
    }
    /// Looks at a started preparation once (never waits). One without a command is done.
    async fn poll_prepare_instance(&self, _op: &mut DbOperation) -> OpPoll<()> {
        OpPoll::Done(())
    }
    /// [`DatabaseEngine::start_prepare_instance`], then polls until it ends, waiting on
    /// tokio's timer: for set-up outside a run (a step polls instead).
    async fn prepare_instance(
        &self,
        instance: &Instance,
        admin_secret: &crate::ids::SecretName,
    ) -> Result<(), Failure> {
        let op = self.start_prepare_instance(instance, admin_secret).await?;
        drive(op, |mut op| async move {
            let status = self.poll_prepare_instance(&mut op).await;
            (op, status)
        })
        .await
    }
    /// How the application (and integrity checks) reach `db` over Bolt as `user`.
    fn bolt_target(&self, db: &DbHandle, user: &str, password: SecretString) -> BoltTarget;
}
