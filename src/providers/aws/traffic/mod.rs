//! The aws traffic targets (the trait and the JSON-secret target, which serves aws too,
//! are in [`crate::providers::traffic`]):
//!
//! - [`EcsServiceTarget`] (`kind = "ecs-environment"`): environment variables of an ECS
//!   service's task definition, **replaced by name** (duplicates of a name collapse into
//!   the one new value; never appended), a new revision registered and the service
//!   rolled onto it; `settled` is the "deployment stable" condition the engine polls.
//!   It is also the [`crate::providers::AppService`] restarted after a secret switch.
//! - [`SsmParametersTarget`] (`kind = "parameters"`): one SSM parameter per setting.

mod ecs_service;
mod ssm_parameter;

pub use crate::providers::traffic::{SwitchReceipt, TrafficTarget, TrafficValues};
pub use ecs_service::{replace_env_by_name, EcsServiceTarget, PREVIOUS_TD_TAG, SWITCH_TOKEN_TAG};
pub use ssm_parameter::SsmParametersTarget;
