//! `[traffic]` of an environment, read and checked at load: where the application reads
//! its connection settings, the service to restart after a switch, and the application's
//! own health endpoint.
//!
//! ```toml
//! [traffic]
//! kind = "secret"                    # secret (default) | ecs-environment | parameters
//! secret = "credex-core/production"  # kind = "secret": default `<env>/app-connection`
//! ecs_cluster = "credex"             # both or neither; required by ecs-environment
//! ecs_service = "credex-core"
//! container = "credex-core"          # ecs-environment: default the only container
//! health_url = "https://app.internal/health"
//! [traffic.keys]                     # kind = "secret": database → key prefix
//! ledger = "ledgerspace"
//! [traffic.names.ledger]             # any kind: the names of one database's settings
//! url = "NEO_4J_LEDGER_SPACE_BOLT_URL"
//! user = "NEO_4J_LEDGER_SPACE_USER"
//! password = "NEO_4J_LEDGER_SPACE_PASS"
//! ```

use crate::ids::SecretName;
use std::collections::BTreeMap;

/// Where the application reads its database connection settings (`[traffic] kind`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TrafficKind {
    /// Keys of one JSON secret, read at start-up. Every provider.
    #[default]
    Secret,
    /// Plain `environment` entries of the ECS service's task definition (how credex's
    /// services read them today), replaced by name in a new revision. aws only.
    EcsEnvironment,
    /// One SSM parameter per setting; the password one a SecureString. aws only.
    Parameters,
}

impl TrafficKind {
    pub const ALL: &'static [TrafficKind] = &[
        TrafficKind::Secret,
        TrafficKind::EcsEnvironment,
        TrafficKind::Parameters,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TrafficKind::Secret => "secret",
            TrafficKind::EcsEnvironment => "ecs-environment",
            TrafficKind::Parameters => "parameters",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == text)
    }

    /// Whether the local provider can serve it (only the secret: the others are AWS
    /// services).
    pub fn works_locally(self) -> bool {
        self == TrafficKind::Secret
    }
}

/// The names under which the application reads one database's three settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionNames {
    pub url: String,
    pub user: String,
    pub password: String,
}

impl ConnectionNames {
    pub fn all(&self) -> [&str; 3] {
        [&self.url, &self.user, &self.password]
    }
}

/// `[traffic.names.DB]`: any of the three names, the rest from the kind's default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameOverrides {
    pub url: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
}

/// The typed `[traffic]` section (all defaults when the environment has none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrafficConfig {
    pub kind: TrafficKind,
    /// The JSON secret holding the application's connection settings (`secret`).
    pub secret: Option<SecretName>,
    /// Database → the prefix of its keys in that secret (`[traffic.keys]`).
    pub key_prefixes: BTreeMap<String, String>,
    /// Database → names that differ from the kind's default (`[traffic.names.DB]`).
    pub names: BTreeMap<String, NameOverrides>,
    /// The ECS service restarted after a switch (`ecs_cluster`, `ecs_service`); with
    /// `ecs-environment`, the service whose task definition the switch changes.
    pub app_service: Option<EcsService>,
    /// `ecs-environment`: the container whose environment changes (`container`);
    /// `None` = the task definition's only container.
    pub container: Option<String>,
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

    /// The names of `database`'s settings in environment `environment`:
    /// `[traffic.names.DB]` where given, else the kind's default —
    /// - secret: `<prefix>bolturl`, `<prefix>user`, `<prefix>pass`, the prefix from
    ///   `[traffic.keys]` (default `<database>space`: credex's `ledgerspace…`);
    /// - ecs-environment: `NEO_4J_<DATABASE>_SPACE_BOLT_URL`, `…_USER`, `…_PASS`
    ///   (credex's `NEO_4J_LEDGER_SPACE_…`);
    /// - parameters: `/<environment>/<database>/bolt-url`, `…/user`, `…/password`.
    pub fn names_for(&self, environment: &str, database: &str) -> ConnectionNames {
        let default = match self.kind {
            TrafficKind::Secret => {
                let p = self
                    .key_prefixes
                    .get(database)
                    .cloned()
                    .unwrap_or_else(|| format!("{database}space"));
                ConnectionNames {
                    url: format!("{p}bolturl"),
                    user: format!("{p}user"),
                    password: format!("{p}pass"),
                }
            }
            TrafficKind::EcsEnvironment => {
                let d: String = database
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() {
                            c.to_ascii_uppercase()
                        } else {
                            '_'
                        }
                    })
                    .collect();
                ConnectionNames {
                    url: format!("NEO_4J_{d}_SPACE_BOLT_URL"),
                    user: format!("NEO_4J_{d}_SPACE_USER"),
                    password: format!("NEO_4J_{d}_SPACE_PASS"),
                }
            }
            TrafficKind::Parameters => ConnectionNames {
                url: format!("/{environment}/{database}/bolt-url"),
                user: format!("/{environment}/{database}/user"),
                password: format!("/{environment}/{database}/password"),
            },
        };
        let Some(o) = self.names.get(database) else {
            return default;
        };
        ConnectionNames {
            url: o.url.clone().unwrap_or(default.url),
            user: o.user.clone().unwrap_or(default.user),
            password: o.password.clone().unwrap_or(default.password),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_names_credex_settings_by_default_and_overrides_win() {
        let mut c = TrafficConfig::default();
        c.key_prefixes.insert("ledger".into(), "ledgerspace".into());
        assert_eq!(c.names_for("prod", "ledger").url, "ledgerspacebolturl");
        assert_eq!(c.names_for("prod", "search").password, "searchspacepass");
        c.kind = TrafficKind::EcsEnvironment;
        assert_eq!(
            c.names_for("prod", "ledger").all(),
            [
                "NEO_4J_LEDGER_SPACE_BOLT_URL",
                "NEO_4J_LEDGER_SPACE_USER",
                "NEO_4J_LEDGER_SPACE_PASS"
            ]
        );
        assert_eq!(
            c.names_for("prod", "search-2").url,
            "NEO_4J_SEARCH_2_SPACE_BOLT_URL"
        );
        c.kind = TrafficKind::Parameters;
        assert_eq!(c.names_for("prod", "ledger").user, "/prod/ledger/user");
        c.names.insert(
            "ledger".into(),
            NameOverrides {
                url: Some("/credex/ledger-url".into()),
                ..Default::default()
            },
        );
        let n = c.names_for("prod", "ledger");
        assert_eq!(
            (n.url.as_str(), n.user.as_str()),
            ("/credex/ledger-url", "/prod/ledger/user")
        );
    }

    #[test]
    fn kinds_round_trip_and_only_the_secret_works_locally() {
        for k in TrafficKind::ALL {
            assert_eq!(TrafficKind::parse(k.as_str()), Some(*k));
        }
        assert_eq!(TrafficKind::parse("ecs"), None);
        assert!(TrafficKind::Secret.works_locally());
        assert!(!TrafficKind::EcsEnvironment.works_locally());
    }
}
