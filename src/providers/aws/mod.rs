//! The `aws` provider: EC2 (compute), SSM Run Command (exec), S3 (object store, lease,
//! journal mirror), Secrets Manager (secret store), SSM Parameter Store and traffic
//! targets (Secrets Manager JSON keys, SSM parameters, an ECS task definition).
//!
//! Every call returns a classified [`crate::failure::Failure`] (see [`errors`]). Nothing
//! here sleeps: waits are `readiness()` / `poll()` calls that the engine repeats until
//! its own deadline.

pub mod config;
pub mod ec2_compute;
pub mod errors;
pub mod iam;
pub mod images;
pub mod journal_mirror;
pub mod lease;
pub mod parameters;
pub mod run_store;
pub mod s3_store;
pub mod secrets;
pub mod ssm_exec;
pub mod traffic;

pub use config::{AwsClients, AwsSettings};
pub use ec2_compute::{Ec2Compute, Ec2InstanceSettings};
pub use images::{Ec2Images, Image, ImageState};
pub use journal_mirror::S3JournalMirror;
pub use lease::{LeaseInfo, LeaseOutcome, S3Lease};
pub use parameters::ParameterStore;
pub use run_store::S3RunStore;
pub use s3_store::S3Store;
pub use secrets::SecretsManagerStore;
pub use ssm_exec::SsmExec;
pub use traffic::{EcsServiceTarget, SsmParametersTarget};

use crate::failure::Failure;
use crate::ids::RunId;
use std::sync::Arc;

/// The `aws` provider of one environment: its `[aws]` settings and SDK clients, from
/// which the run's services, the S3 lease and the journal mirror are made.
#[derive(Clone, Debug)]
pub struct AwsProvider {
    pub environment: config::AwsEnvironment,
    pub clients: AwsClients,
    /// The environment's `[traffic]`: where the application reads its settings.
    pub traffic: crate::providers::TrafficConfig,
    /// The environment's name (the default traffic secret is `<name>/app-connection`).
    pub environment_name: String,
}

impl AwsProvider {
    /// Loads credentials and region for `aws` (an environment's `[aws]`) through the
    /// standard chain; `traffic` is the `[traffic]` of environment `environment_name`.
    /// Makes no request: a wrong credential or endpoint shows at the first call,
    /// classified.
    pub async fn open(
        aws: &config::AwsEnvironment,
        traffic: &crate::providers::TrafficConfig,
        environment_name: &str,
    ) -> Result<Self, Failure> {
        let environment = aws.clone();
        let clients = AwsClients::load(&environment.settings).await;
        Ok(Self {
            environment,
            clients,
            traffic: traffic.clone(),
            environment_name: environment_name.to_owned(),
        })
    }

    pub fn store(&self) -> S3Store {
        S3Store::new(self.clients.s3.clone(), self.environment.settings.clone())
    }

    pub fn lease(&self) -> S3Lease {
        S3Lease::new(self.clients.s3.clone(), self.environment.settings.clone())
    }

    pub fn mirror(&self) -> S3JournalMirror {
        S3JournalMirror::new(self.store())
    }

    /// The lease and the journal mirror, in the bucket.
    pub fn run_store(&self) -> S3RunStore {
        S3RunStore::new(self.lease(), self.mirror())
    }

    pub fn images(&self) -> Ec2Images {
        Ec2Images::new(self.clients.ec2.clone())
    }

    /// Parameters under `/cutover/<env>/…` for the environment named `env`.
    pub fn parameters(&self, env: &str) -> ParameterStore {
        ParameterStore::new(self.clients.ssm.clone(), env)
    }

    pub fn compute(&self) -> Ec2Compute {
        Ec2Compute::new(self.clients.ec2.clone(), self.clients.ssm.clone())
            .with_defaults(self.environment.instance_defaults.clone())
    }

    /// The services the steps of `run_id` use. Exec results and logs go under
    /// `runs/<run_id>/exec/` in the bucket.
    pub fn provider_set(&self, run_id: &RunId) -> Result<crate::providers::ProviderSet, Failure> {
        let mut exec = SsmExec::new(self.clients.ssm.clone(), self.store(), run_id.clone());
        if let Some(timeout) = self.environment.ssm_delivery_timeout {
            exec = exec.with_delivery_timeout(timeout);
        }
        Ok(crate::providers::ProviderSet {
            compute: Arc::new(self.compute()),
            objects: Arc::new(self.store()),
            secrets: Arc::new(SecretsManagerStore::new(self.clients.secrets.clone())),
            exec: Some(Arc::new(exec)),
            app: self
                .app_service()
                .map(|s| Arc::new(s) as Arc<dyn crate::providers::AppService>),
            traffic: self.traffic_target()?,
        })
    }

    /// `[traffic] ecs_cluster` / `ecs_service`: the application's service.
    fn app_service(&self) -> Option<EcsServiceTarget> {
        let s = self.traffic.app_service.as_ref()?;
        Some(EcsServiceTarget::new(
            self.clients.ecs.clone(),
            &s.cluster,
            &s.service,
            self.traffic.container.clone(),
        ))
    }

    /// The `[traffic] kind` target.
    fn traffic_target(&self) -> Result<Arc<dyn crate::providers::TrafficTarget>, Failure> {
        use crate::providers::traffic::{SecretJsonTarget, TrafficKind};
        Ok(match self.traffic.kind {
            TrafficKind::Secret => Arc::new(SecretJsonTarget::new(
                Arc::new(SecretsManagerStore::new(self.clients.secrets.clone())),
                self.traffic.secret_name(&self.environment_name),
            )),
            TrafficKind::EcsEnvironment => Arc::new(self.app_service().ok_or_else(|| {
                Failure::permanent(
                    "[traffic] kind = \"ecs-environment\" names no ecs_cluster and ecs_service",
                )
            })?),
            TrafficKind::Parameters => Arc::new(SsmParametersTarget::new(self.clients.ssm.clone())),
        })
    }
}

impl crate::providers::EnvironmentProvider for AwsProvider {
    fn services(&self, run_id: &RunId) -> Result<crate::providers::ProviderSet, Failure> {
        self.provider_set(run_id)
    }

    fn compute(&self) -> Arc<dyn crate::providers::Compute> {
        Arc::new(AwsProvider::compute(self))
    }

    fn run_store(&self) -> Arc<dyn crate::providers::run_store::RunStore> {
        Arc::new(AwsProvider::run_store(self))
    }
}
