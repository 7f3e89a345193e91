//! `[traffic]` of an environment, read and checked at load: where the application reads
//! its connection settings, the service to restart after a switch, and the application's
//! own health endpoint.
//!
//! ```toml
//! [traffic]
//! kind = "secret"                    # the only kind: a JSON secret the app reads
//! secret = "credex-core/production"  # default `<env>/app-connection`
//! ecs_cluster = "credex"             # both or neither
//! ecs_service = "credex-core"
//! health_url = "https://app.internal/health"
//! [traffic.keys]                     # database → key prefix (default `<database>space`)
//! ledger = "ledgerspace"
//! ```

use crate::ids::SecretName;
use std::collections::BTreeMap;

/// The typed `[traffic]` section (all defaults when the environment has none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrafficConfig {
    /// The JSON secret holding the application's connection settings (`secret`).
    pub secret: Option<SecretName>,
    /// Database → the prefix of its keys in that secret (`[traffic.keys]`).
    pub key_prefixes: BTreeMap<String, String>,
    /// The ECS service restarted after a switch (`ecs_cluster`, `ecs_service`).
    pub app_service: Option<EcsService>,
    /// The application's health endpoint, asked every bake round (`health_url`, an
    /// `http://` or `https://` URL).
    pub health_url: Option<String>,
}

/// An ECS service by cluster and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcsService {
    pub cluster: String,
    pub service: String,
}

impl TrafficConfig {
    /// The secret the application reads: `secret`, else `<environment>/app-connection`.
    pub fn secret_name(&self, environment: &str) -> SecretName {
        self.secret
            .clone()
            .unwrap_or_else(|| SecretName::new(format!("{environment}/app-connection")))
    }
}
