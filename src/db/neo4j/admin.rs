//! Typed `neo4j-admin` invocations (Neo4j 5.x and 2025.x syntax, operations manual
//! "Back up an offline database", "Restore a database dump", "Back up an online
//! database", "Restore a database backup", "Consistency checker", "Set an initial
//! password"). Each builder refuses what the edition or version cannot do, and renders
//! to argv or to a shell line whose only non-literal parts are shell variables the
//! script set itself (e.g. the password it read from Secrets Manager).

use super::version::{Edition, Neo4jVersion, ServerInfo};
use crate::failure::Failure;

/// One argument: a literal, or a reference to a shell variable the script set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arg {
    Lit(String),
    /// Rendered as `"${NAME}"`; its value never appears in the command text.
    Var(String),
}

/// A `neo4j-admin` command line (without the program name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminCommand {
    pub args: Vec<Arg>,
}

impl AdminCommand {
    fn new(args: &[&str]) -> Self {
        Self {
            args: args.iter().map(|a| Arg::Lit((*a).to_owned())).collect(),
        }
    }
    fn push(mut self, arg: impl Into<String>) -> Self {
        self.args.push(Arg::Lit(arg.into()));
        self
    }
    fn push_var(mut self, name: &str) -> Self {
        self.args.push(Arg::Var(name.to_owned()));
        self
    }

    /// The literal argv (variables shown as `${NAME}`), for tests and logs.
    pub fn argv(&self) -> Vec<String> {
        self.args
            .iter()
            .map(|a| match a {
                Arg::Lit(s) => s.clone(),
                Arg::Var(v) => format!("${{{v}}}"),
            })
            .collect()
    }

    /// A shell line invoking `program` (usually `"$NEO4J_ADMIN"`) with safely quoted
    /// literals and double-quoted variable references.
    pub fn shell_line(&self, program: &str) -> String {
        let mut line = program.to_owned();
        for a in &self.args {
            line.push(' ');
            match a {
                Arg::Lit(s)
                    if s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_=./:,@".contains(c)) =>
                {
                    line.push_str(s)
                }
                Arg::Lit(s) => line.push_str(&format!("'{}'", s.replace('\'', r"'\''"))),
                Arg::Var(v) => line.push_str(&format!("\"${{{v}}}\"")),
            }
        }
        line
    }
}

/// Neo4j database names: 3–63 characters, ASCII letters, digits, dots and dashes,
/// starting with a letter (operations manual, "Create databases").
pub fn validate_database_name(name: &str) -> Result<(), Failure> {
    let ok = (3..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Failure::permanent(format!(
            "{name:?} is not a valid Neo4j database name"
        )))
    }
}

fn enterprise_only(info: &ServerInfo, what: &str) -> Result<(), Failure> {
    if info.edition == Edition::Enterprise {
        Ok(())
    } else {
        Err(Failure::permanent(format!(
            "{what} needs Neo4j Enterprise; this server is Community {}",
            info.version
        ))
        .with_hint("use the offline dump/load path for Community"))
    }
}

/// Where a dump goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DumpTarget {
    /// `--to-stdout`, piped to S3 with SHA-256 (5.19+: see [`Neo4jVersion::supports_streamed_dump`]).
    Stdout,
    /// `--to-path=<dir>`; the file is `<dir>/<database>.dump`.
    Directory(String),
}

/// `neo4j-admin database dump`. Community: the DBMS must be stopped; Enterprise: the
/// database must be stopped. Never `--verbose` (it polluted stdout before 5.19).
pub fn dump(
    info: &ServerInfo,
    database: &str,
    target: &DumpTarget,
) -> Result<AdminCommand, Failure> {
    validate_database_name(database)?;
    let cmd = AdminCommand::new(&["database", "dump"]);
    let cmd = match target {
        DumpTarget::Stdout => {
            if !info.version.supports_streamed_dump() {
                return Err(Failure::permanent(format!(
                    "streaming a dump to stdout is not trusted on Neo4j {} (fixed in 5.19); dump to a directory",
                    info.version
                )));
            }
            cmd.push("--to-stdout")
        }
        DumpTarget::Directory(dir) => cmd
            .push(format!("--to-path={dir}"))
            .push("--overwrite-destination=true"),
    };
    Ok(cmd.push(database))
}

/// Where a load reads from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadSource {
    Stdin,
    /// A directory holding `<database>.dump` (the name `load` requires).
    Directory(String),
}

/// `neo4j-admin database load --overwrite-destination=true`. Must run as the `neo4j` user
/// with the database (Community: the DBMS) stopped. cutover loads from a directory after
/// verifying the file's SHA-256, so an unverified stream never reaches the store.
pub fn load(
    info: &ServerInfo,
    database: &str,
    source: &LoadSource,
) -> Result<AdminCommand, Failure> {
    validate_database_name(database)?;
    let cmd = AdminCommand::new(&["database", "load"]);
    let cmd = match source {
        LoadSource::Stdin => {
            if !info.version.supports_streamed_dump() {
                return Err(Failure::permanent(format!(
                    "loading from stdin is not used on Neo4j {}",
                    info.version
                )));
            }
            cmd.push("--from-stdin")
        }
        LoadSource::Directory(dir) => cmd.push(format!("--from-path={dir}")),
    };
    Ok(cmd.push("--overwrite-destination=true").push(database))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackupType {
    Full,
    Diff,
}

/// `neo4j-admin database backup` (Enterprise, online): writes an immutable
/// `<database>-<timestamp>.backup` artifact under `to_path`.
pub fn backup(
    info: &ServerInfo,
    database: &str,
    to_path: &str,
    kind: BackupType,
    from: &str,
) -> Result<AdminCommand, Failure> {
    enterprise_only(info, "online backup")?;
    validate_database_name(database)?;
    let kind = match kind {
        BackupType::Full => "FULL",
        BackupType::Diff => "DIFF",
    };
    Ok(AdminCommand::new(&["database", "backup"])
        .push(format!("--from={from}"))
        .push(format!("--to-path={to_path}"))
        .push(format!("--type={kind}"))
        .push("--include-metadata=all")
        .push(database))
}

/// `neo4j-admin database restore` (Enterprise) from one artifact or a chain (full + diffs).
pub fn restore(
    info: &ServerInfo,
    database: &str,
    from_paths: &[String],
) -> Result<AdminCommand, Failure> {
    enterprise_only(info, "restore of online backups")?;
    validate_database_name(database)?;
    if from_paths.is_empty() {
        return Err(Failure::permanent(
            "restore needs at least one backup artifact",
        ));
    }
    Ok(AdminCommand::new(&["database", "restore"])
        .push(format!("--from-path={}", from_paths.join(",")))
        .push("--overwrite-destination=true")
        .push(database))
}

/// Which store `neo4j-admin database check` reads.
pub enum CheckSource<'a> {
    /// The database itself, which must be stopped ("cannot be used with a database that
    /// is currently in use").
    StoppedDatabase,
    /// An artifact: `dir` holds `<database>.dump` (or a full backup); it is extracted into
    /// `temp`, which must exist. The running DBMS is not touched, so this works while the
    /// server serves (checked on 5.26.30).
    Artifact { dir: &'a str, temp: &'a str },
}

/// `neo4j-admin database check` of `source`; reports go to `report_dir`. Exit code 0 is
/// consistent; inconsistencies exit non-zero with a report in `report_dir`.
pub fn check(
    database: &str,
    source: CheckSource<'_>,
    report_dir: &str,
) -> Result<AdminCommand, Failure> {
    validate_database_name(database)?;
    let mut cmd =
        AdminCommand::new(&["database", "check"]).push(format!("--report-path={report_dir}"));
    if let CheckSource::Artifact { dir, temp } = source {
        cmd = cmd
            .push(format!("--from-path={dir}"))
            .push(format!("--temp-path={temp}"));
    }
    Ok(cmd.push(database))
}

/// `neo4j-admin dbms set-initial-password "${var}"`: run once, before the first start.
/// The password is a positional argument (there is no stdin or file option), so it is
/// visible in the process list for the seconds the command runs; the AMI mounts /proc
/// with `hidepid=2` so only root sees other users' argv, and the script reads the value
/// from Secrets Manager into `var` itself — it is never in the command text.
pub fn set_initial_password(var: &str) -> AdminCommand {
    AdminCommand::new(&["dbms", "set-initial-password"]).push_var(var)
}

/// The artifact and target version pair must pass [`super::version::check_restore_compatible`].
pub fn guard_restore(artifact: Neo4jVersion, target: &ServerInfo) -> Result<(), Failure> {
    super::version::check_restore_compatible(artifact, target.version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(v: &str, e: Edition) -> ServerInfo {
        ServerInfo {
            version: v.parse().unwrap(),
            edition: e,
        }
    }

    // Expected lines follow the syntax blocks of the Neo4j operations manual (5.x/2025.x):
    // `neo4j-admin database dump [...] [--to-path=<path> | --to-stdout] <database>`,
    // `neo4j-admin database load [...] [--overwrite-destination[=true|false]] [--from-path=<path> | --from-stdin] <database>`,
    // `neo4j-admin database backup [...] [--include-metadata=none|all|users|roles] [--to-path=<path>] [--type=<type>] [--from=<host:port>[,<host:port>...]]... [<database>...]`,
    // `neo4j-admin database restore --from-path=<path>[,<path>...] [--overwrite-destination[=true|false]] <database>`,
    // `neo4j-admin database check [--report-path=<path>] [--from-path=<path>] <database>`,
    // `neo4j-admin dbms set-initial-password [--require-password-change[=true|false]] <password>`.

    #[test]
    fn dump_streams_only_on_5_19_and_later() {
        let c = dump(
            &info("5.26.3", Edition::Community),
            "neo4j",
            &DumpTarget::Stdout,
        )
        .unwrap();
        assert_eq!(
            c.shell_line("neo4j-admin"),
            "neo4j-admin database dump --to-stdout neo4j"
        );
        assert!(dump(
            &info("5.16.0", Edition::Community),
            "neo4j",
            &DumpTarget::Stdout
        )
        .is_err());
        let c = dump(
            &info("5.16.0", Edition::Community),
            "neo4j",
            &DumpTarget::Directory("/var/tmp/d".into()),
        )
        .unwrap();
        assert_eq!(
            c.argv(),
            [
                "database",
                "dump",
                "--to-path=/var/tmp/d",
                "--overwrite-destination=true",
                "neo4j"
            ]
        );
        assert!(!c.argv().iter().any(|a| a == "--verbose"));
    }

    #[test]
    fn load_overwrites_from_a_verified_directory() {
        let c = load(
            &info("2025.01.0", Edition::Enterprise),
            "neo4j",
            &LoadSource::Directory("/var/tmp/in".into()),
        )
        .unwrap();
        assert_eq!(c.shell_line("\"$NEO4J_ADMIN\""), "\"$NEO4J_ADMIN\" database load --from-path=/var/tmp/in --overwrite-destination=true neo4j");
        let c = load(
            &info("5.26.0", Edition::Community),
            "neo4j",
            &LoadSource::Stdin,
        )
        .unwrap();
        assert_eq!(
            c.argv(),
            [
                "database",
                "load",
                "--from-stdin",
                "--overwrite-destination=true",
                "neo4j"
            ]
        );
    }

    #[test]
    fn backup_and_restore_are_enterprise_only() {
        let ce = info("5.26.0", Edition::Community);
        let ee = info("5.26.0", Edition::Enterprise);
        assert!(backup(&ce, "neo4j", "/b", BackupType::Full, "localhost:6362").is_err());
        let c = backup(&ee, "neo4j", "/b", BackupType::Diff, "localhost:6362").unwrap();
        assert_eq!(
            c.argv(),
            [
                "database",
                "backup",
                "--from=localhost:6362",
                "--to-path=/b",
                "--type=DIFF",
                "--include-metadata=all",
                "neo4j"
            ]
        );
        assert!(restore(&ce, "neo4j", &["/b/x.backup".into()]).is_err());
        let c = restore(
            &ee,
            "neo4j",
            &["/b/full.backup".into(), "/b/diff.backup".into()],
        )
        .unwrap();
        assert_eq!(
            c.argv(),
            [
                "database",
                "restore",
                "--from-path=/b/full.backup,/b/diff.backup",
                "--overwrite-destination=true",
                "neo4j"
            ]
        );
        assert!(restore(&ee, "neo4j", &[]).is_err());
    }

    #[test]
    fn check_and_password_render_without_secrets() {
        let artifact = CheckSource::Artifact {
            dir: "/var/tmp/in",
            temp: "/var/tmp/in/tmp",
        };
        let c = check("neo4j", artifact, "/var/tmp/report").unwrap();
        assert_eq!(
            c.argv(),
            [
                "database",
                "check",
                "--report-path=/var/tmp/report",
                "--from-path=/var/tmp/in",
                "--temp-path=/var/tmp/in/tmp",
                "neo4j"
            ]
        );
        let c = check("neo4j", CheckSource::StoppedDatabase, "/r").unwrap();
        assert_eq!(c.argv(), ["database", "check", "--report-path=/r", "neo4j"]);
        let p = set_initial_password("neo4j_password");
        assert_eq!(
            p.shell_line("neo4j-admin"),
            "neo4j-admin dbms set-initial-password \"${neo4j_password}\""
        );
    }

    #[test]
    fn names_are_validated_and_literals_quoted() {
        assert!(validate_database_name("neo4j").is_ok());
        assert!(validate_database_name("ledger-space.v2").is_ok());
        assert!(validate_database_name("x").is_err());
        assert!(validate_database_name("neo4j; rm -rf /").is_err());
        let c = AdminCommand::new(&["a b", "it's"]);
        assert_eq!(c.shell_line("p"), r"p 'a b' 'it'\''s'");
    }
}
