//! The `local` provider: database server processes on loopback ports, directories as
//! images and object store, files as secret store. Everything lives under the
//! environment's state directory:
//!
//! ```text
//! <state_dir>/images/<image>/image.toml     an ArcadeDB installation (compute.rs)
//! <state_dir>/instances/registry.json       instances, tags, ports, tokens (registry.rs)
//! <state_dir>/instances/<name>/             one server's home (log, config, databases)
//! <state_dir>/objects/<key>(.sha256)        the object store (object_store.rs)
//! <state_dir>/secrets/<name>.json           the secret store, mode 0600 (secret_store.rs)
//! ```
//! An instance is an ArcadeDB server, or a real Neo4j Community server when its image is
//! `neo4j-<version>` (neo4j_home.rs). The exec channel (exec.rs) runs the neo4j engine's
//! scripts on Neo4j instances; the `arcadedb` engine does its work over HTTP and Bolt.

pub mod compute;
pub mod exec;
mod files;
pub mod lease;
pub mod neo4j_home;
pub mod object_store;
pub mod registry;
pub mod run_store;
pub mod secret_store;

pub use compute::{root_secret_name, LocalCompute, DEFAULT_IMAGE};
pub use exec::LocalExec;
pub use lease::LocalLease;
pub use object_store::LocalObjectStore;
pub use run_store::LocalRunStore;
pub use secret_store::LocalSecretStore;

use super::traffic::{SecretJsonTarget, TrafficConfig};
use super::ProviderSet;
use crate::failure::Failure;
use std::path::Path;
use std::sync::Arc;

/// The concrete local services of one state directory (for callers that need more than
/// the traits, e.g. `gc` or the root password of an instance).
#[derive(Clone, Debug)]
pub struct LocalProvider {
    pub compute: Arc<LocalCompute>,
    pub objects: Arc<LocalObjectStore>,
    pub secrets: Arc<LocalSecretStore>,
    pub exec: Arc<LocalExec>,
}

impl LocalProvider {
    pub fn open(state_dir: &Path) -> Self {
        let secrets = Arc::new(LocalSecretStore::new(state_dir.join("secrets")));
        let compute = Arc::new(LocalCompute::new(state_dir, secrets.clone()));
        Self {
            exec: Arc::new(LocalExec::new(compute.clone(), state_dir.join("secrets"))),
            compute,
            objects: Arc::new(LocalObjectStore::new(state_dir.join("objects"))),
            secrets,
        }
    }

    /// The services of environment `environment` whose `[traffic]` is `traffic`. Only
    /// the JSON-secret traffic target exists locally (the load refuses the others).
    pub fn provider_set(
        &self,
        traffic: &TrafficConfig,
        environment: &str,
    ) -> Result<ProviderSet, Failure> {
        if !traffic.kind.works_locally() {
            return Err(Failure::permanent(format!(
                "[traffic] kind `{}` needs the aws provider",
                traffic.kind.as_str()
            )));
        }
        Ok(ProviderSet {
            compute: self.compute.clone(),
            objects: self.objects.clone(),
            secrets: self.secrets.clone(),
            exec: Some(self.exec.clone()),
            app: None,
            traffic: Arc::new(SecretJsonTarget::new(
                self.secrets.clone(),
                traffic.secret_name(environment),
            )),
        })
    }
}

/// The local provider of one environment (its state directory, `[traffic]` and name).
#[derive(Clone, Debug)]
pub struct LocalEnvironment {
    provider: LocalProvider,
    state_dir: std::path::PathBuf,
    traffic: TrafficConfig,
    name: String,
}

impl LocalEnvironment {
    pub fn open(state_dir: &Path, traffic: &TrafficConfig, name: &str) -> Self {
        Self {
            provider: LocalProvider::open(state_dir),
            state_dir: state_dir.to_path_buf(),
            traffic: traffic.clone(),
            name: name.to_owned(),
        }
    }
}

impl super::EnvironmentProvider for LocalEnvironment {
    fn services(&self, _run_id: &crate::ids::RunId) -> Result<ProviderSet, Failure> {
        self.provider.provider_set(&self.traffic, &self.name)
    }

    fn compute(&self) -> Arc<dyn super::Compute> {
        self.provider.compute.clone()
    }

    fn run_store(&self) -> Arc<dyn super::run_store::RunStore> {
        Arc::new(LocalRunStore::new(&self.state_dir))
    }
}
