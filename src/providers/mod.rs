//! What a provider gives the steps ([`ProviderSet`]: compute, exec, object store, secret
//! store, the traffic target and the application's service) and the engine
//! ([`EnvironmentProvider`], with its [`run_store::RunStore`]: lease and journal mirror).
//! Each is a small trait so the same steps run on the `local` provider (processes,
//! directories, files) and on `aws` (EC2, SSM, S3, Secrets Manager, ECS).
//!
//! Every method returns a classified [`Failure`] so the engine knows whether retrying can
//! help. Methods that create things take an idempotency token and must adopt what an
//! earlier attempt with the same token created instead of creating it twice.

pub mod aws;
pub mod lease;
pub mod local;
pub mod run_store;
pub mod terraform;
pub mod traffic;

pub use traffic::{EcsService, TrafficConfig, TrafficTarget};

use crate::failure::Failure;
use crate::ids::{InstanceId, ObjectKey, SecretName};
use async_trait::async_trait;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// The services of one provider, as the steps of a run use them.
#[derive(Clone)]
pub struct ProviderSet {
    pub compute: std::sync::Arc<dyn Compute>,
    pub objects: std::sync::Arc<dyn ObjectStore>,
    pub secrets: std::sync::Arc<dyn SecretStore>,
    /// `None` where commands run through the database engine instead (local).
    pub exec: Option<std::sync::Arc<dyn Exec>>,
    /// The application's service, restarted after a traffic switch so it re-reads its
    /// settings (an ECS service on aws, when `[traffic]` names one). `None` when the
    /// application picks up the change by itself (the local demo's writer).
    pub app: Option<std::sync::Arc<dyn AppService>>,
    /// Where the application reads its connection settings (`[traffic] kind`).
    pub traffic: std::sync::Arc<dyn TrafficTarget>,
}

/// An environment's provider, opened once per command: the services its runs' steps use
/// and where its runs keep their lease and journal mirror. The engine knows providers
/// only through this.
pub trait EnvironmentProvider: Send + Sync {
    /// The services the steps of `run_id` use.
    fn services(&self, run_id: &crate::ids::RunId) -> Result<ProviderSet, Failure>;
    /// The compute alone, for work outside a run (`gc`).
    fn compute(&self) -> std::sync::Arc<dyn Compute>;
    /// The lease and, where runs resume on other machines, the journal mirror.
    fn run_store(&self) -> std::sync::Arc<dyn run_store::RunStore>;
}

/// The application's running service. credex reads its database settings at start-up,
/// so a switch of the secret it reads takes effect only when its tasks restart.
#[async_trait]
pub trait AppService: Send + Sync {
    /// e.g. `ECS service cluster/service`, for messages.
    fn describe(&self) -> String;
    /// Starts a new deployment of what runs now (old tasks stop before new ones start).
    /// Every call is a new deployment: callers journal the intent and call it once.
    async fn restart(&self) -> Result<(), Failure>;
    /// Whether the newest deployment is the only one and fully running. Polled.
    async fn settled(&self) -> Result<Readiness, Failure>;
}

/// Tags on instances and other resources (`cutover:env`, `cutover:run-id`, ...).
pub type Tags = BTreeMap<String, String>;

/// Tag keys cutover puts on everything it creates.
pub mod tag {
    pub const ENV: &str = "cutover:env";
    pub const DATABASE: &str = "cutover:database";
    pub const COLOR: &str = "cutover:color";
    pub const RUN_ID: &str = "cutover:run-id";
    pub const STEP_ID: &str = "cutover:step-id";
    pub const NAME: &str = "Name";
}

/// What to create. `settings` are the provider-specific instance settings from the
/// environment file (instance type, subnet, ... for AWS; heap size for local).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProvisionRequest {
    /// AMI id, or the local provider's image directory name.
    pub image: String,
    pub name: String,
    pub tags: Tags,
    /// Same token ⇒ same instance, across retries and resumed runs.
    pub idempotency_token: String,
    #[serde(default)]
    pub settings: serde_json::Value,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    Pending,
    Running,
    Stopping,
    Stopped,
    ShuttingDown,
    Terminated,
    Other(String),
}

/// An instance as the provider sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Instance {
    pub id: InstanceId,
    pub state: InstanceState,
    pub tags: Tags,
    /// Host name or IP address the database listens on.
    pub address: Option<String>,
    /// Named endpoints, e.g. `bolt` → `bolt://127.0.0.1:7687`.
    #[serde(default)]
    pub endpoints: BTreeMap<String, String>,
    /// The image it was launched from (AMI id, or the local image name), when the
    /// provider reports it: `cutover rollback` rebuilds a removed blue from it.
    #[serde(default)]
    pub image: Option<String>,
}

/// Whether an instance can be used yet. Not-ready is not an error: the caller polls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    NotYet(String),
}

#[async_trait]
pub trait Compute: Send + Sync {
    /// Creates an instance, or adopts the one an earlier call with the same idempotency
    /// token created. Returns without waiting for readiness.
    async fn provision(&self, request: &ProvisionRequest) -> Result<Instance, Failure>;
    /// `None` when the instance does not exist (or is long gone).
    async fn describe(&self, id: &InstanceId) -> Result<Option<Instance>, Failure>;
    /// Whether the instance is usable (running and reachable by the exec channel).
    async fn readiness(&self, id: &InstanceId) -> Result<Readiness, Failure>;
    async fn stop(&self, id: &InstanceId) -> Result<(), Failure>;
    /// Idempotent: terminating a terminated or missing instance succeeds.
    async fn terminate(&self, id: &InstanceId) -> Result<(), Failure>;
    /// Instances (not terminated) carrying every given tag.
    async fn find_by_tags(&self, tags: &Tags) -> Result<Vec<Instance>, Failure>;
}

/// A script to run on an instance. Never put a secret in `body` or `env`: scripts fetch
/// secrets themselves from the secret store.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Script {
    /// Short name for logs and result object keys, e.g. `neo4j-dump`.
    pub name: String,
    pub body: String,
    /// Non-secret environment variables for the script.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub timeout: Duration,
    /// Unique per attempt; echoed back in the result so a stale result is never believed.
    pub nonce: String,
}

/// A started command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecHandle {
    pub id: String,
    pub instance: InstanceId,
    pub nonce: String,
}

/// The structured result a script reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecResult {
    pub exit_code: i32,
    /// `key=value` outputs the script declared (checksums, sizes, versions).
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
    /// The last lines of output, for error messages. Never the source of truth.
    #[serde(default)]
    pub output_tail: String,
    pub nonce: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecStatus {
    Running,
    Finished(ExecResult),
    /// The channel claims something it cannot prove (e.g. SSM says Success but the result
    /// object is missing). Reconcile before retrying.
    Inconclusive(String),
}

#[async_trait]
pub trait Exec: Send + Sync {
    async fn start(&self, instance: &InstanceId, script: &Script) -> Result<ExecHandle, Failure>;
    async fn poll(&self, handle: &ExecHandle) -> Result<ExecStatus, Failure>;
    async fn cancel(&self, handle: &ExecHandle) -> Result<(), Failure>;
}

/// What an object store knows about one object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectInfo {
    pub key: ObjectKey,
    pub size: u64,
    /// Lower-case hex SHA-256 of the content, when known.
    pub sha256: Option<String>,
    /// RFC 3339, when known.
    pub last_modified: Option<String>,
}

/// A readable byte stream.
pub type ByteStream = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Streams `body` into `key`, computing SHA-256 on the way; memory stays bounded.
    async fn put_stream(&self, key: &ObjectKey, body: ByteStream) -> Result<ObjectInfo, Failure>;
    async fn put_file(&self, key: &ObjectKey, path: &Path) -> Result<ObjectInfo, Failure>;
    async fn put_bytes(&self, key: &ObjectKey, bytes: Vec<u8>) -> Result<ObjectInfo, Failure>;
    async fn get_stream(&self, key: &ObjectKey) -> Result<ByteStream, Failure>;
    /// Downloads to `path` and returns the SHA-256 of what was written.
    async fn get_file(&self, key: &ObjectKey, path: &Path) -> Result<ObjectInfo, Failure>;
    async fn get_bytes(&self, key: &ObjectKey) -> Result<Vec<u8>, Failure>;
    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectInfo>, Failure>;
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, Failure>;
    /// Idempotent.
    async fn delete(&self, key: &ObjectKey) -> Result<(), Failure>;
    /// Records `sha256` as the SHA-256 of an object written by someone else (an
    /// instance's `aws s3 cp`), where this store's own writes record it: the
    /// `cutover-sha256` tag on S3, the `.sha256` sidecar locally. Afterwards `head`
    /// reports it. The caller vouches for the value (it checked it against the writer's
    /// report and the size, or read the object back). Idempotent; refused when the
    /// object already records a different one.
    async fn record_sha256(&self, key: &ObjectKey, sha256: &str) -> Result<(), Failure>;
    /// Human-readable location for messages, e.g. `s3://bucket/key`.
    fn location(&self, key: &ObjectKey) -> String;
}

/// Secret version stages, as in Secrets Manager.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretStage {
    Current,
    Pending,
    Previous,
}

/// A secret value with its version. `Debug` never shows the value.
#[derive(Clone, Debug)]
pub struct SecretVersion {
    pub version_id: String,
    pub value: SecretString,
}

/// Metadata about a secret version, safe to log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretVersionInfo {
    pub version_id: String,
    pub stages: Vec<SecretStage>,
}

#[async_trait]
pub trait SecretStore: Send + Sync {
    async fn get(
        &self,
        name: &SecretName,
        stage: SecretStage,
    ) -> Result<Option<SecretVersion>, Failure>;
    /// Stores `value` as the pending version; the same `token` adopts an earlier call's
    /// version instead of creating another. Returns the version id.
    async fn put_pending(
        &self,
        name: &SecretName,
        value: &SecretString,
        token: &str,
    ) -> Result<String, Failure>;
    /// Makes `version_id` current; the old current becomes previous. Idempotent.
    async fn promote(&self, name: &SecretName, version_id: &str) -> Result<(), Failure>;
    /// Moves current back to the previous version. Idempotent.
    async fn rollback(&self, name: &SecretName) -> Result<(), Failure>;
    async fn versions(&self, name: &SecretName) -> Result<Vec<SecretVersionInfo>, Failure>;
}

/// Makes a child process die with cutover (PR_SET_PDEATHSIG), so a killed run leaves
/// no command running unobserved.
#[cfg(target_os = "linux")]
pub fn die_with_parent(cmd: &mut tokio::process::Command) {
    // SAFETY: prctl is async-signal-safe and touches only the child being created.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
pub fn die_with_parent(_cmd: &mut tokio::process::Command) {}
