//! Traffic targets: where the application learns which database to use, and how to
//! switch it to green and back.
//!
//! - [`SecretJsonTarget`]: keys of a JSON secret in Secrets Manager (CREDEX's
//!   `ledgerspacebolturl`, `ledgerspaceuser`, `ledgerspacepass`, …), rotated through
//!   AWSPENDING → AWSCURRENT with AWSPREVIOUS kept.
//! - [`SsmParameterTarget`]: one SSM parameter.
//! - [`EcsServiceTarget`]: environment variables of an ECS service's task definition,
//!   **replaced by name** (duplicates of a name collapse into the one new value; never
//!   appended), a new revision registered and the service updated; `settled` is the
//!   "deployment stable" condition the engine polls.
//!
//! Every switch is idempotent on its token and records what it replaced, so
//! `switch_back` restores exactly that.

use crate::failure::Failure;
use crate::providers::Readiness;
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;
use std::fmt;

mod ecs_service;
mod secret_json;
mod ssm_parameter;

pub use ecs_service::{replace_env_by_name, EcsServiceTarget, PREVIOUS_TD_TAG, SWITCH_TOKEN_TAG};
pub use secret_json::SecretJsonTarget;
pub use ssm_parameter::{SsmParameterTarget, PARAMETER_VALUE};

/// Named values a target holds. Values may be passwords: `Debug` shows only the names.
#[derive(Clone, Default)]
pub struct TrafficValues(pub BTreeMap<String, SecretString>);

impl TrafficValues {
    pub fn from_plain<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), SecretString::from(v.into())))
                .collect(),
        )
    }
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.expose_secret())
    }
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
    fn plain(&self) -> BTreeMap<String, String> {
        self.0
            .iter()
            .map(|(k, v)| (k.clone(), v.expose_secret().to_owned()))
            .collect()
    }
    fn same_as(&self, other: &TrafficValues) -> bool {
        self.plain() == other.plain()
    }
}

impl fmt::Debug for TrafficValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// What a switch replaced: the old values and non-secret details (e.g. the previous task
/// definition ARN). Enough for `switch_back`.
#[derive(Clone, Debug, Default)]
pub struct SwitchRecord {
    pub previous: TrafficValues,
    pub detail: BTreeMap<String, String>,
}

#[async_trait]
pub trait TrafficTarget: Send + Sync {
    /// e.g. `secret neo4j_prod_secrets`, for messages.
    fn describe(&self) -> String;
    /// The current values of the target's names.
    async fn current(&self) -> Result<TrafficValues, Failure>;
    /// Points the application at `values`; idempotent on `token`.
    async fn switch_to(&self, values: &TrafficValues, token: &str)
        -> Result<SwitchRecord, Failure>;
    /// Restores what `record` says was there before; idempotent on `token`.
    async fn switch_back(&self, record: &SwitchRecord, token: &str) -> Result<(), Failure>;
    /// Whether the last switch has taken effect. Polled; never waits.
    async fn settled(&self) -> Result<Readiness, Failure>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_values_debug_shows_names_only() {
        let v = TrafficValues::from_plain([("ledgerspacepass", "hunter2hunter2")]);
        let text = format!("{v:?}");
        assert!(text.contains("ledgerspacepass") && !text.contains("hunter2"));
    }
}
