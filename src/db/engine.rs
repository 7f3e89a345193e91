//! The database-engine seam: what steps ask of a database, whatever engine it runs.
//! `arcadedb` implements it against local server processes; `neo4j` against EC2
//! instances through SSM and Bolt.

use super::bolt::BoltTarget;
use super::EngineKind;
use crate::failure::Failure;
use crate::ids::ObjectKey;
use crate::providers::{Instance, ObjectInfo, ObjectStore};
use async_trait::async_trait;
use secrecy::SecretString;

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

#[async_trait]
pub trait DatabaseEngine: Send + Sync {
    fn kind(&self) -> EngineKind;
    /// The server's version, e.g. `26.10.2` or `5.26.0`.
    async fn version(&self, db: &DbHandle) -> Result<String, Failure>;
    /// A real query succeeds (not just a port answering).
    async fn health(&self, db: &DbHandle) -> Result<(), Failure>;
    /// Refuse writes with a clear error; reads keep working. Idempotent.
    async fn freeze(&self, db: &DbHandle) -> Result<(), Failure>;
    /// Accept writes again. Idempotent; succeeds on a database that was never frozen.
    async fn unfreeze(&self, db: &DbHandle) -> Result<(), Failure>;
    async fn is_frozen(&self, db: &DbHandle) -> Result<bool, Failure>;
    /// Writes a consistent backup of the database to `key`; SHA-256 computed on write.
    async fn backup(
        &self,
        db: &DbHandle,
        objects: &dyn ObjectStore,
        key: &ObjectKey,
    ) -> Result<BackupArtifact, Failure>;
    /// Loads a backup into `db` on a fresh instance. The caller has verified the
    /// artifact's SHA-256 against the manifest; implementations verify it again on the
    /// bytes they actually load and refuse a mismatch before loading.
    async fn restore(
        &self,
        db: &DbHandle,
        objects: &dyn ObjectStore,
        artifact: &BackupArtifact,
    ) -> Result<(), Failure>;
    /// Creates the application user, or changes its password. Idempotent.
    async fn set_user_password(
        &self,
        db: &DbHandle,
        user: &str,
        password: &SecretString,
    ) -> Result<(), Failure>;
    /// Makes a freshly provisioned instance serve, with the administrator's password held
    /// in `admin_secret`. Neo4j sets the initial password before the first start (the
    /// instance reads the secret itself) and starts the service. Idempotent; the caller
    /// proves the result by logging in ([`DatabaseEngine::health`]). The default does
    /// nothing, for engines whose instances come up serving (ArcadeDB locally).
    async fn prepare_instance(
        &self,
        _instance: &Instance,
        _admin_secret: &crate::ids::SecretName,
    ) -> Result<(), Failure> {
        Ok(())
    }
    /// How the application (and integrity checks) reach `db` over Bolt as `user`.
    fn bolt_target(&self, db: &DbHandle, user: &str, password: SecretString) -> BoltTarget;
}
