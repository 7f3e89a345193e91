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

use super::script_runner::PollPolicy;
use super::version::Edition;
use crate::config::toml_read::{type_name, TomlReader};
use std::time::Duration;
use toml_edit::Item;

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

/// Every key the `neo4j` table accepts.
pub const NEO4J_TABLE_KEYS: &[&str] = &[
    "backup",
    "bolt_scheme",
    "bolt_port",
    "backup_timeout",
    "restore_timeout",
    "command_timeout",
    "restart_timeout",
    "app_roles",
    "admin_secret_key",
    "verify_readback",
    "inconclusive_repolls",
];

/// The Bolt URI schemes neo4rs connects with.
const BOLT_SCHEMES: &[&str] = &[
    "bolt",
    "bolt+s",
    "bolt+ssc",
    "neo4j",
    "neo4j+s",
    "neo4j+ssc",
];

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

    /// The settings for `edition` with the environment's `neo4j` table (`item`, absent:
    /// the defaults) applied. Reads at load: every problem (unknown key, wrong type, a
    /// value out of range, `online` backups on Community) is recorded in `r` with its
    /// file:line:col, and `None` is returned when there was any.
    pub fn read(
        r: &mut TomlReader<'_>,
        edition: Edition,
        item: Option<&Item>,
        context: &str,
    ) -> Option<Self> {
        let mut s = Self::defaults(edition);
        let Some(item) = item else {
            return Some(s);
        };
        let Some(t) = item.as_table_like() else {
            r.problem(
                item.span(),
                format!(
                    "`neo4j` in {context} must be a table, found {}",
                    type_name(item)
                ),
            );
            return None;
        };
        let before = r.problems.len();
        let context = format!("{context} neo4j");
        let context = context.as_str();
        r.check_keys(t, NEO4J_TABLE_KEYS, context);
        if let Some(b) = r.string(t, "backup", false, context, None) {
            match (b.value.as_str(), edition) {
                ("dump", _) => s.backup = BackupMethod::Dump,
                ("online", Edition::Enterprise) => s.backup = BackupMethod::OnlineFull,
                ("online", Edition::Community) => r.problem_with_hint(
                    b.span,
                    format!("{context}: backup = \"online\" needs edition = \"enterprise\""),
                    "Community has no online backup; remove `backup` (Community dumps)",
                ),
                (other, _) => r.problem_with_hint(
                    b.span,
                    format!("{context}: backup `{other}` is not a backup method"),
                    "use \"dump\" or \"online\" (Enterprise)",
                ),
            }
        }
        if let Some(scheme) = r.string(t, "bolt_scheme", false, context, None) {
            if BOLT_SCHEMES.contains(&scheme.value.as_str()) {
                s.bolt_scheme = scheme.value;
            } else {
                r.problem_with_hint(
                    scheme.span,
                    format!(
                        "{context}: bolt_scheme `{}` is not a Bolt URI scheme",
                        scheme.value
                    ),
                    format!("use one of {}", BOLT_SCHEMES.join(", ")),
                );
            }
        }
        if let Some(port) = r.unsigned(t, "bolt_port", context) {
            match u16::try_from(port.value) {
                Ok(p) if p > 0 => s.bolt_port = p,
                _ => r.problem(
                    port.span,
                    format!(
                        "{context}: bolt_port {} is not a TCP port (1-65535)",
                        port.value
                    ),
                ),
            }
        }
        for (key, slot) in [
            ("backup_timeout", &mut s.backup_timeout),
            ("restore_timeout", &mut s.restore_timeout),
            ("command_timeout", &mut s.command_timeout),
            ("restart_timeout", &mut s.restart_timeout),
        ] {
            if let Some(d) = r.duration(t, key, context) {
                *slot = d.value;
            }
        }
        if t.get("app_roles").is_some() {
            s.app_roles = r
                .string_list(t, "app_roles", context)
                .into_iter()
                .map(|role| role.value)
                .collect();
        }
        if let Some(key) = r.string(t, "admin_secret_key", false, context, None) {
            s.admin_secret_key = Some(key.value);
        }
        if let Some(v) = r.boolean(t, "verify_readback", context) {
            s.verify_readback = v.value;
        }
        if let Some(n) = r.unsigned(t, "inconclusive_repolls", context) {
            s.poll.inconclusive_repolls = n.value.min(20) as u32;
        }
        (r.problems.len() == before).then_some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceFile;

    /// Reads `neo4j = …` from a one-database environment snippet: the settings, or every
    /// problem as `line:col: message`.
    fn read(edition: Edition, text: &str) -> Result<Neo4jSettings, Vec<String>> {
        let source = SourceFile::new("env.toml", text);
        let doc = TomlReader::parse(&source).expect("valid TOML");
        let mut r = TomlReader::new(&source);
        let read = Neo4jSettings::read(&mut r, edition, doc.get("neo4j"), "database `ledger`");
        match read {
            Some(s) if r.problems.is_empty() => Ok(s),
            _ => Err(r.problems.0.iter().map(|p| p.to_string()).collect()),
        }
    }

    #[test]
    fn defaults_follow_the_edition_and_the_table_overrides_them() {
        assert_eq!(
            read(Edition::Community, "").unwrap().backup,
            BackupMethod::Dump
        );
        let ee = read(Edition::Enterprise, "").unwrap();
        assert_eq!(ee.backup, BackupMethod::OnlineFull);
        let s = read(
            Edition::Enterprise,
            "neo4j = { backup = \"dump\", bolt_scheme = \"bolt+s\", backup_timeout = \"3h\", verify_readback = false, app_roles = [\"reader\"] }",
        )
        .unwrap();
        assert_eq!(s.backup, BackupMethod::Dump);
        assert_eq!(s.bolt_scheme, "bolt+s");
        assert_eq!(s.backup_timeout, Duration::from_secs(3 * 3600));
        assert!(!s.verify_readback);
        assert_eq!(s.app_roles, vec!["reader".to_owned()]);
    }

    #[test]
    fn every_problem_is_reported_at_its_line_and_column() {
        let text = "[neo4j]\nbackup = \"online\"\nbolt_scheme = \"http\"\ncommand_timeout = \"soon\"\nbolt_port = 70000\nbakup = \"dump\"\nverify_readback = \"yes\"\n";
        let problems = read(Edition::Community, text).unwrap_err();
        let all = problems.join("\n");
        assert_eq!(problems.len(), 6, "{all}");
        for (line, needle) in [
            (2, "enterprise"),
            (3, "http"),
            (4, "command_timeout"),
            (5, "70000"),
            (6, "unknown key `bakup`"),
            (7, "true or false"),
        ] {
            assert!(
                problems
                    .iter()
                    .any(|p| p.contains(&format!("env.toml:{line}:")) && p.contains(needle)),
                "no problem at line {line} naming {needle:?} in:\n{all}"
            );
        }
        let not_a_table = read(Edition::Community, "neo4j = \"dump\"").unwrap_err();
        assert!(
            not_a_table[0].contains("must be a table"),
            "{not_a_table:?}"
        );
    }
}
