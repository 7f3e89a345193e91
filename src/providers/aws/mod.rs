//! The `aws` provider: EC2 (compute), SSM Run Command (exec), S3 (object store, lease,
//! journal mirror), Secrets Manager (secret store), SSM Parameter Store and traffic
//! targets (Secrets Manager JSON keys, an SSM parameter, an ECS service).
//!
//! Every call returns a classified [`crate::failure::Failure`] (see [`errors`]). Nothing
//! here sleeps: waits are `readiness()` / `poll()` calls that the engine repeats until
//! its own deadline.

pub mod config;
pub mod ec2_compute;
pub mod errors;
pub mod gc;
pub mod journal_mirror;
pub mod lease;
pub mod parameters;
pub mod s3_store;
pub mod secrets;
pub mod ssm_exec;
pub mod traffic;

pub use config::{AwsClients, AwsSettings};
pub use ec2_compute::{Ec2Compute, Ec2InstanceSettings};
pub use journal_mirror::JournalMirror;
pub use lease::{LeaseInfo, LeaseOutcome, S3Lease};
pub use parameters::ParameterStore;
pub use s3_store::S3Store;
pub use secrets::SecretsManagerStore;
pub use ssm_exec::SsmExec;
pub use traffic::{EcsServiceTarget, SecretJsonTarget, SsmParameterTarget, TrafficTarget};
