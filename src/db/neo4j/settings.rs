//! The neo4j engine's settings: the environment's `edition` plus an optional `neo4j`
//! table in `[databases.NAME]`:
//!
//! ```toml
//! [databases.ledger]
//! engine = "neo4j"
//! edition = "enterprise"
//! neo4j = { backup = "online", bolt_scheme = "bolt+s", backup_timeout = "3h" }
//! ```
//!
//! Unknown keys are refused. Every value has a default (see [`Neo4jSettings::defaults`]).

use super::exec_driver::PollPolicy;
use super::version::Edition;
use crate::failure::Failure;
use serde::Deserialize;
use std::time::Duration;

/// How a backup is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackupMethod {
    /// `neo4j-admin database dump` (offline: Community stops the DBMS, Enterprise stops
    /// the database) streamed to S3. Format `dump`.
    Dump,
    /// `neo4j-admin database backup --type=FULL` (Enterprise, online: reads and writes
    /// keep being served). Format `online-full`.
    OnlineFull,
}

impl BackupMethod {
    /// The `format` recorded in the artifact.
    pub fn format(self) -> &'static str {
        match self {
            BackupMethod::Dump => "dump",
            BackupMethod::OnlineFull => "online-full",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neo4jSettings {
    /// What the environment says the server is; detection must agree.
    pub edition: Edition,
    pub backup: BackupMethod,
    /// `bolt`, `bolt+s`, `neo4j`, `neo4j+s` (used when the instance has no `bolt` endpoint).
    pub bolt_scheme: String,
    pub bolt_port: u16,
    pub backup_timeout: Duration,
    pub restore_timeout: Duration,
    /// Freeze, unfreeze, initial password.
    pub command_timeout: Duration,
    /// How long the server may take to serve again after a restart or a stop/start.
    pub restart_timeout: Duration,
    /// Roles the application user gets (Enterprise; Community has no roles).
    pub app_roles: Vec<String>,
    /// The JSON key holding the password in the administrator's secret (`None`: the
    /// secret string is the password).
    pub admin_secret_key: Option<String>,
    /// After a backup, read the stored object back and hash it on cutover's host.
    pub verify_readback: bool,
    pub poll: PollPolicy,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    backup: Option<String>,
    bolt_scheme: Option<String>,
    bolt_port: Option<u16>,
    backup_timeout: Option<String>,
    restore_timeout: Option<String>,
    command_timeout: Option<String>,
    restart_timeout: Option<String>,
    app_roles: Option<Vec<String>>,
    admin_secret_key: Option<String>,
    verify_readback: Option<bool>,
    inconclusive_repolls: Option<u32>,
}

impl Neo4jSettings {
    /// Enterprise backs up online (blue keeps serving); Community dumps.
    pub fn defaults(edition: Edition) -> Self {
        Self {
            edition,
            backup: match edition {
                Edition::Enterprise => BackupMethod::OnlineFull,
                Edition::Community => BackupMethod::Dump,
            },
            bolt_scheme: "bolt".into(),
            bolt_port: 7687,
            backup_timeout: Duration::from_secs(2 * 3600),
            restore_timeout: Duration::from_secs(2 * 3600),
            command_timeout: Duration::from_secs(600),
            restart_timeout: Duration::from_secs(600),
            app_roles: vec!["publisher".into()],
            admin_secret_key: None,
            verify_readback: true,
            poll: PollPolicy::default(),
        }
    }

    /// From the environment's edition and its `neo4j` table (JSON), every problem reported
    /// at once.
    pub fn from_table(
        edition: Edition,
        table: Option<&serde_json::Value>,
        database: &str,
    ) -> Result<Self, Failure> {
        let mut s = Self::defaults(edition);
        let Some(table) = table else {
            return Ok(s);
        };
        let context = format!("[databases.{database}] neo4j");
        let raw: RawSettings = serde_json::from_value(table.clone())
            .map_err(|e| Failure::permanent(format!("{context}: {e}")))?;
        let mut problems = Vec::new();
        if let Some(b) = raw.backup.as_deref() {
            match b {
                "dump" => s.backup = BackupMethod::Dump,
                "online" if edition == Edition::Enterprise => s.backup = BackupMethod::OnlineFull,
                "online" => {
                    problems.push("backup = \"online\" needs edition = \"enterprise\"".to_owned())
                }
                other => problems.push(format!(
                    "backup must be \"dump\" or \"online\", not {other:?}"
                )),
            }
        }
        if let Some(scheme) = raw.bolt_scheme {
            if [
                "bolt",
                "bolt+s",
                "bolt+ssc",
                "neo4j",
                "neo4j+s",
                "neo4j+ssc",
            ]
            .contains(&scheme.as_str())
            {
                s.bolt_scheme = scheme;
            } else {
                problems.push(format!("bolt_scheme {scheme:?} is not a Bolt URI scheme"));
            }
        }
        if let Some(p) = raw.bolt_port {
            s.bolt_port = p;
        }
        for (key, value, slot) in [
            ("backup_timeout", raw.backup_timeout, &mut s.backup_timeout),
            (
                "restore_timeout",
                raw.restore_timeout,
                &mut s.restore_timeout,
            ),
            (
                "command_timeout",
                raw.command_timeout,
                &mut s.command_timeout,
            ),
            (
                "restart_timeout",
                raw.restart_timeout,
                &mut s.restart_timeout,
            ),
        ] {
            if let Some(text) = value {
                match crate::config::toml_read::parse_duration(&text) {
                    Ok(d) => *slot = d,
                    Err(e) => problems.push(format!("{key}: {e}")),
                }
            }
        }
        if let Some(roles) = raw.app_roles {
            s.app_roles = roles;
        }
        s.admin_secret_key = raw.admin_secret_key.or(s.admin_secret_key);
        if let Some(v) = raw.verify_readback {
            s.verify_readback = v;
        }
        if let Some(n) = raw.inconclusive_repolls {
            s.poll.inconclusive_repolls = n.min(20);
        }
        if problems.is_empty() {
            Ok(s)
        } else {
            Err(Failure::permanent(format!(
                "{context}: {}",
                problems.join("; ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_edition_and_the_table_overrides_them() {
        let ce = Neo4jSettings::from_table(Edition::Community, None, "ledger").unwrap();
        assert_eq!(ce.backup, BackupMethod::Dump);
        let ee = Neo4jSettings::from_table(Edition::Enterprise, None, "ledger").unwrap();
        assert_eq!(ee.backup, BackupMethod::OnlineFull);
        let t = serde_json::json!({ "backup": "dump", "bolt_scheme": "bolt+s", "backup_timeout": "3h" });
        let s = Neo4jSettings::from_table(Edition::Enterprise, Some(&t), "ledger").unwrap();
        assert_eq!(s.backup, BackupMethod::Dump);
        assert_eq!(s.bolt_scheme, "bolt+s");
        assert_eq!(s.backup_timeout, Duration::from_secs(3 * 3600));
    }

    #[test]
    fn every_problem_is_reported_and_unknown_keys_refused() {
        let t = serde_json::json!({ "backup": "online", "bolt_scheme": "http", "command_timeout": "soon" });
        let e = Neo4jSettings::from_table(Edition::Community, Some(&t), "ledger").unwrap_err();
        assert!(e.message.contains("enterprise"), "{}", e.message);
        assert!(e.message.contains("http"), "{}", e.message);
        assert!(e.message.contains("command_timeout"), "{}", e.message);
        let t = serde_json::json!({ "bakup": "dump" });
        assert!(Neo4jSettings::from_table(Edition::Community, Some(&t), "ledger").is_err());
    }
}
