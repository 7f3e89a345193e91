//! Traffic targets: where the application reads its database connection settings, and
//! how to point it at green and back. One trait for every provider; `[traffic] kind`
//! chooses the target (see [`config`]):
//!
//! - `secret` ([`SecretJsonTarget`], every provider): keys of a JSON secret in the
//!   provider's secret store, a new version staged and promoted.
//! - `ecs-environment` (aws, [`crate::providers::aws::EcsServiceTarget`]): environment
//!   entries of the ECS service's task definition, replaced by name, a new revision
//!   registered and the service rolled onto it.
//! - `parameters` (aws, [`crate::providers::aws::SsmParametersTarget`]): one SSM
//!   parameter per setting.
//!
//! Every switch is idempotent on its token and returns a [`SwitchReceipt`] of what it
//! replaced, by reference only (a version, a task definition): the record is journaled,
//! so it never holds a value, and `switch_back` restores exactly what it names.

pub mod config;
mod secret_json;

pub use config::{ConnectionNames, EcsService, TrafficConfig, TrafficKind};
pub use secret_json::SecretJsonTarget;

use crate::failure::Failure;
use crate::providers::Readiness;
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Named values a target holds (`NEO_4J_LEDGER_SPACE_PASS` → …), and which of them are
/// secrets (passwords): a target that can store a value as a secret does (an SSM
/// SecureString). `Debug` shows only the names.
#[derive(Clone, Default)]
pub struct TrafficValues {
    values: BTreeMap<String, SecretString>,
    secret: BTreeSet<String>,
}

impl TrafficValues {
    pub fn from_plain<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let mut out = Self::default();
        for (k, v) in pairs {
            out.insert(k, SecretString::from(v.into()));
        }
        out
    }
    pub fn insert(&mut self, name: impl Into<String>, value: SecretString) {
        self.values.insert(name.into(), value);
    }
    /// Inserts a value that is a secret (a password).
    pub fn insert_secret(&mut self, name: impl Into<String>, value: SecretString) {
        let name = name.into();
        self.secret.insert(name.clone());
        self.values.insert(name, value);
    }
    pub fn is_secret(&self, name: &str) -> bool {
        self.secret.contains(name)
    }
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(|v| v.expose_secret())
    }
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
    /// The values in the clear, for the one call that writes them.
    pub fn plain(&self) -> BTreeMap<String, String> {
        self.values
            .iter()
            .map(|(k, v)| (k.clone(), v.expose_secret().to_owned()))
            .collect()
    }
}

impl fmt::Debug for TrafficValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}

/// What a switch replaced, by reference: `version` is what the switch made (a secret
/// version id, a task definition ARN, the token), `detail` what it replaced (the
/// previous task definition, each parameter's previous version). Journaled as the
/// step's output, so it **never holds a value**: a password stays in the target.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchReceipt {
    pub version: String,
    #[serde(default)]
    pub detail: BTreeMap<String, String>,
}

#[async_trait]
pub trait TrafficTarget: Send + Sync {
    /// e.g. `secret credex-core/production`, for messages and the journal.
    fn describe(&self) -> String;
    /// The current values of `names`; names the target does not hold are left out.
    async fn current(&self, names: &[String]) -> Result<TrafficValues, Failure>;
    /// Points the application at `values` (only these names change). Idempotent on
    /// `token`: a retry after success returns the first attempt's record.
    async fn switch_to(
        &self,
        values: &TrafficValues,
        token: &str,
    ) -> Result<SwitchReceipt, Failure>;
    /// Restores what `record` names if the switch is still in effect; idempotent.
    async fn switch_back(&self, record: &SwitchReceipt, token: &str) -> Result<(), Failure>;
    /// Whether the application reads what the last switch wrote. Polled; never waits.
    /// `Ready` at once for targets the application re-reads only when restarted.
    async fn settled(&self) -> Result<Readiness, Failure>;
    /// Whether `switch_to` and `switch_back` restart the application themselves (an
    /// ECS task definition change rolls the service), so the caller must not restart
    /// it a second time.
    fn restarts_application(&self) -> bool {
        false
    }
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

    #[test]
    fn a_record_from_an_older_journal_without_detail_reads() {
        let r: SwitchReceipt =
            serde_json::from_value(serde_json::json!({ "version": "v2" })).unwrap();
        assert_eq!(r.version, "v2");
        assert!(r.detail.is_empty());
    }
}
