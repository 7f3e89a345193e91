//! The shell scripts cutover runs on a Neo4j instance through the exec provider.
//!
//! A script's body is: [`PRELUDE`] (S3 copy with encryption, run-as-neo4j, reading a
//! Secrets Manager field), then `cutover_neo4j_*` functions rendered from the typed
//! builders in [`super::admin`], then the script file itself. Every file is
//! shellcheck-clean and runs under `set -euo pipefail`; declared outputs go through
//! `cutover_output` (provided by the exec wrapper) into the result object.

use super::admin::{self, AdminCommand, BackupType, CheckSource, DumpTarget, LoadSource};
use super::version::{Edition, ServerInfo};
use crate::failure::Failure;
use crate::providers::Script;
use std::collections::BTreeMap;
use std::time::Duration;

pub const PRELUDE: &str = include_str!("scripts/prelude.sh");
pub const DUMP_TO_S3: &str = include_str!("scripts/dump-to-s3.sh");
pub const LOAD_FROM_S3: &str = include_str!("scripts/load-from-s3.sh");
pub const SET_INITIAL_PASSWORD: &str = include_str!("scripts/set-initial-password.sh");
pub const COMMUNITY_FREEZE: &str = include_str!("scripts/community-freeze.sh");
pub const BACKUP_TO_S3: &str = include_str!("scripts/backup-to-s3.sh");
pub const RESTORE_FROM_S3: &str = include_str!("scripts/restore-from-s3.sh");
pub const CHECK: &str = include_str!("scripts/check.sh");

/// Every script file, by name (for shellcheck and tests).
pub const ALL: &[(&str, &str)] = &[
    ("prelude.sh", PRELUDE),
    ("dump-to-s3.sh", DUMP_TO_S3),
    ("load-from-s3.sh", LOAD_FROM_S3),
    ("set-initial-password.sh", SET_INITIAL_PASSWORD),
    ("community-freeze.sh", COMMUNITY_FREEZE),
    ("backup-to-s3.sh", BACKUP_TO_S3),
    ("restore-from-s3.sh", RESTORE_FROM_S3),
    ("check.sh", CHECK),
];

/// How the program is invoked in rendered functions.
const PROGRAM: &str = "cutover_as_neo4j \"$NEO4J_ADMIN\"";

fn function(name: &str, body: &str) -> String {
    format!("{name}() {{\n  {body}\n}}\n")
}

fn assemble(functions: &[String], script: &str) -> String {
    let mut body = String::from(PRELUDE);
    body.push('\n');
    for f in functions {
        body.push_str(f);
    }
    body.push('\n');
    // The script's own shebang/set line is harmless after the prelude.
    body.push_str(script);
    body
}

/// Identity of one attempt: the nonce, also used for scratch paths on the instance.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub nonce: String,
    pub timeout: Duration,
}

fn script(name: &str, body: String, env: BTreeMap<String, String>, attempt: &Attempt) -> Script {
    Script {
        name: name.to_owned(),
        body,
        env,
        timeout: attempt.timeout,
        nonce: attempt.nonce.clone(),
    }
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Dump `database` to `artifact_uri` (s3://…) with SHA-256. Streams with `--to-stdout`
/// on 5.19+, else dumps to a scratch directory and streams the file.
pub fn dump_to_s3(
    info: &ServerInfo,
    database: &str,
    artifact_uri: &str,
    attempt: &Attempt,
) -> Result<Script, Failure> {
    let func = if info.version.supports_streamed_dump() {
        let cmd = admin::dump(info, database, &DumpTarget::Stdout)?;
        function("cutover_neo4j_dump", &cmd.shell_line(PROGRAM))
    } else {
        let dir = format!("/var/tmp/cutover-dump-{}", attempt.nonce);
        let cmd = admin::dump(info, database, &DumpTarget::Directory(dir.clone()))?;
        function(
            "cutover_neo4j_dump",
            &format!(
                "mkdir -p '{dir}' && chmod 777 '{dir}' && {} >&2 && cat '{dir}/{database}.dump' && rm -rf '{dir}'",
                cmd.shell_line(PROGRAM)
            ),
        )
    };
    Ok(script(
        "neo4j-dump",
        assemble(&[func], DUMP_TO_S3),
        env(&[
            ("CUTOVER_ARTIFACT_URI", artifact_uri),
            ("NEO4J_DATABASE", database),
        ]),
        attempt,
    ))
}

/// Download, verify `expected_sha256`, check the artifact's consistency with
/// `neo4j-admin database check --from-path` (reports to `report_prefix` when it is not
/// consistent, exit 4), then load. Nothing is loaded unless both pass. Refuses an
/// artifact from a newer version before anything is sent.
pub fn load_from_s3(
    info: &ServerInfo,
    artifact_version: super::Neo4jVersion,
    database: &str,
    artifact_uri: &str,
    expected_sha256: &str,
    report_prefix: &str,
    attempt: &Attempt,
) -> Result<Script, Failure> {
    admin::guard_restore(artifact_version, info)?;
    if expected_sha256.len() != 64 || !expected_sha256.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Failure::permanent(format!(
            "{expected_sha256:?} is not a SHA-256"
        )));
    }
    let dir = format!("/var/tmp/cutover-load-{}", attempt.nonce);
    let check_temp = format!("{dir}/check-temp");
    let check_reports = format!("{dir}/check-reports");
    let check = admin::check(
        database,
        CheckSource::Artifact {
            dir: &dir,
            temp: &check_temp,
        },
        &check_reports,
    )?;
    let load = admin::load(info, database, &LoadSource::Directory(dir.clone()))?;
    Ok(script(
        "neo4j-load",
        assemble(
            &[
                function("cutover_neo4j_check_artifact", &check.shell_line(PROGRAM)),
                function("cutover_neo4j_load", &load.shell_line(PROGRAM)),
            ],
            LOAD_FROM_S3,
        ),
        env(&[
            ("CUTOVER_ARTIFACT_URI", artifact_uri),
            (
                "CUTOVER_EXPECTED_SHA256",
                &expected_sha256.to_ascii_lowercase(),
            ),
            ("NEO4J_DATABASE", database),
            ("CUTOVER_LOAD_DIR", &dir),
            ("CUTOVER_CHECK_TEMP", &check_temp),
            ("CUTOVER_REPORT_DIR", &check_reports),
            ("CUTOVER_REPORT_PREFIX", report_prefix),
        ]),
        attempt,
    ))
}

/// Initial password from Secrets Manager (`secret_id`, `stage`, JSON `key`).
pub fn set_initial_password(
    secret_id: &str,
    stage: &str,
    key: Option<&str>,
    attempt: &Attempt,
) -> Result<Script, Failure> {
    let cmd: AdminCommand = admin::set_initial_password("neo4j_password");
    Ok(script(
        "neo4j-set-initial-password",
        assemble(
            &[function(
                "cutover_neo4j_set_initial_password",
                &cmd.shell_line(PROGRAM),
            )],
            SET_INITIAL_PASSWORD,
        ),
        env(&[
            ("NEO4J_SECRET_ID", secret_id),
            ("NEO4J_SECRET_STAGE", stage),
            ("NEO4J_SECRET_KEY", key.unwrap_or("")),
        ]),
        attempt,
    ))
}

/// Community freeze/unfreeze through `server.databases.read_only` and a restart.
///
/// Why configuration and not something online: Community has no `ALTER DATABASE`, and
/// whether `dbms.setConfigValue` can change `server.databases.read_only` on Community is
/// not documented. The setting is documented for both editions; a restart applies it for
/// certain. The cost is a restart of blue (reads fail for its duration); on Community the
/// dump needs the DBMS stopped anyway, so the freeze window already includes downtime.
pub fn community_freeze(
    info: &ServerInfo,
    database: &str,
    freeze: bool,
    attempt: &Attempt,
) -> Result<Script, Failure> {
    admin::validate_database_name(database)?;
    if info.edition != Edition::Community {
        return Err(Failure::permanent(
            "Enterprise servers freeze with ALTER DATABASE … SET ACCESS READ ONLY",
        ));
    }
    Ok(script(
        if freeze {
            "neo4j-freeze"
        } else {
            "neo4j-unfreeze"
        },
        assemble(&[], COMMUNITY_FREEZE),
        env(&[
            ("NEO4J_DATABASE", database),
            ("CUTOVER_FREEZE", if freeze { "true" } else { "false" }),
        ]),
        attempt,
    ))
}

/// Enterprise online backup (full or differential) uploaded with SHA-256 per artifact.
pub fn backup_to_s3(
    info: &ServerInfo,
    database: &str,
    kind: BackupType,
    artifact_prefix: &str,
    attempt: &Attempt,
) -> Result<Script, Failure> {
    let dir = format!("/var/lib/neo4j/backups/cutover/{database}");
    let cmd = admin::backup(info, database, &dir, kind, "localhost:6362")?;
    Ok(script(
        "neo4j-backup",
        assemble(
            &[function("cutover_neo4j_backup", &cmd.shell_line(PROGRAM))],
            BACKUP_TO_S3,
        ),
        env(&[
            ("CUTOVER_BACKUP_DIR", &dir),
            ("CUTOVER_ARTIFACT_PREFIX", artifact_prefix),
            ("NEO4J_DATABASE", database),
        ]),
        attempt,
    ))
}

/// Enterprise online FULL backup into a fresh per-attempt directory on the instance; its
/// one artifact is uploaded to exactly `artifact_uri` (s3://…) with SHA-256, and the
/// directory removed. Outputs as [`dump_to_s3`]: `sha256`, `size_bytes`, `artifact_uri`.
pub fn online_full_backup_to_s3(
    info: &ServerInfo,
    database: &str,
    artifact_uri: &str,
    attempt: &Attempt,
) -> Result<Script, Failure> {
    let dir = format!("/var/tmp/cutover-backup-{}", attempt.nonce);
    let cmd = admin::backup(info, database, &dir, BackupType::Full, "localhost:6362")?;
    Ok(script(
        "neo4j-online-backup",
        assemble(
            &[function("cutover_neo4j_backup", &cmd.shell_line(PROGRAM))],
            BACKUP_TO_S3,
        ),
        env(&[
            ("CUTOVER_BACKUP_DIR", &dir),
            ("CUTOVER_ARTIFACT_URI", artifact_uri),
            ("NEO4J_DATABASE", database),
        ]),
        attempt,
    ))
}

/// The same script, stopping the whole DBMS around its `neo4j-admin` command and starting
/// it again afterwards (also on failure). Community needs this for dump and load.
pub fn stopping_dbms(mut script: Script) -> Script {
    script
        .env
        .insert("CUTOVER_STOP_DBMS".to_owned(), "true".to_owned());
    script
}

/// One artifact of a backup chain, as its manifest records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainArtifact {
    /// `s3://bucket/key/<name>.backup`
    pub uri: String,
    pub sha256: String,
}

/// Enterprise restore of a backup chain (full first, then differentials), every artifact
/// verified before `neo4j-admin database restore` runs. Refuses an artifact from a newer
/// version before anything is sent.
pub fn restore_from_s3(
    info: &ServerInfo,
    artifact_version: super::Neo4jVersion,
    database: &str,
    chain: &[ChainArtifact],
    attempt: &Attempt,
) -> Result<Script, Failure> {
    admin::guard_restore(artifact_version, info)?;
    let dir = format!("/var/tmp/cutover-restore-{}", attempt.nonce);
    let mut lines = String::new();
    let mut paths = Vec::new();
    for a in chain {
        let name = a.uri.rsplit('/').next().unwrap_or_default();
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !a.uri.starts_with("s3://") || !valid_name {
            return Err(Failure::permanent(format!(
                "{} is not an s3:// backup artifact cutover can restore",
                a.uri
            )));
        }
        if a.sha256.len() != 64 || !a.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Failure::permanent(format!(
                "{}: {:?} is not a SHA-256",
                a.uri, a.sha256
            )));
        }
        lines.push_str(&format!("{} {}\n", a.uri, a.sha256.to_ascii_lowercase()));
        paths.push(format!("{dir}/{name}"));
    }
    let cmd = admin::restore(info, database, &paths)?;
    Ok(script(
        "neo4j-restore",
        assemble(
            &[function("cutover_neo4j_restore", &cmd.shell_line(PROGRAM))],
            RESTORE_FROM_S3,
        ),
        env(&[
            ("CUTOVER_ARTIFACTS", &lines),
            ("CUTOVER_RESTORE_DIR", &dir),
            ("NEO4J_DATABASE", database),
        ]),
        attempt,
    ))
}

/// Consistency check of the stopped database; reports go to `report_prefix` (s3://…).
pub fn check_database(
    database: &str,
    report_prefix: &str,
    attempt: &Attempt,
) -> Result<Script, Failure> {
    let dir = format!("/var/tmp/cutover-check-{}", attempt.nonce);
    let cmd = admin::check(database, CheckSource::StoppedDatabase, &dir)?;
    Ok(script(
        "neo4j-check",
        assemble(
            &[function("cutover_neo4j_check", &cmd.shell_line(PROGRAM))],
            CHECK,
        ),
        env(&[
            ("CUTOVER_REPORT_DIR", &dir),
            ("CUTOVER_REPORT_PREFIX", report_prefix),
            ("NEO4J_DATABASE", database),
        ]),
        attempt,
    ))
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

    fn attempt() -> Attempt {
        Attempt {
            nonce: "n-0001-abcd".into(),
            timeout: Duration::from_secs(600),
        }
    }

    #[test]
    fn every_script_is_strict_bash() {
        for (name, text) in ALL {
            assert!(text.starts_with("#!/usr/bin/env bash\n"), "{name}");
            assert!(text.contains("set -euo pipefail"), "{name}");
        }
    }

    #[test]
    fn dump_renders_the_typed_command() {
        let s = dump_to_s3(
            &info("5.26.3", Edition::Community),
            "neo4j",
            "s3://b/k/neo4j.dump",
            &attempt(),
        )
        .unwrap();
        assert!(s.body.contains("cutover_neo4j_dump() {\n  cutover_as_neo4j \"$NEO4J_ADMIN\" database dump --to-stdout neo4j\n}"));
        let s = dump_to_s3(
            &info("5.15.0", Edition::Community),
            "neo4j",
            "s3://b/k/neo4j.dump",
            &attempt(),
        )
        .unwrap();
        assert!(s
            .body
            .contains("--to-path=/var/tmp/cutover-dump-n-0001-abcd"));
    }

    #[test]
    fn load_refuses_a_newer_artifact_before_rendering() {
        let sha = "a".repeat(64);
        let older_target = info("5.21.0", Edition::Community);
        assert!(load_from_s3(
            &older_target,
            "5.22.0".parse().unwrap(),
            "neo4j",
            "s3://b/x",
            &sha,
            "s3://b/reports",
            &attempt()
        )
        .is_err());
        let s = load_from_s3(
            &info("5.26.0", Edition::Community),
            "5.22.0".parse().unwrap(),
            "neo4j",
            "s3://b/x",
            &sha,
            "s3://b/reports",
            &attempt(),
        )
        .unwrap();
        assert_eq!(
            s.env["CUTOVER_LOAD_DIR"],
            "/var/tmp/cutover-load-n-0001-abcd"
        );
        // The artifact is checked where it was downloaded, before the load.
        assert!(s.body.contains(
            "database check --report-path=/var/tmp/cutover-load-n-0001-abcd/check-reports --from-path=/var/tmp/cutover-load-n-0001-abcd --temp-path=/var/tmp/cutover-load-n-0001-abcd/check-temp neo4j"
        ));
        assert_eq!(s.env["CUTOVER_REPORT_PREFIX"], "s3://b/reports");
        assert!(load_from_s3(
            &older_target,
            "5.21.0".parse().unwrap(),
            "neo4j",
            "s3://b/x",
            "nope",
            "s3://b/reports",
            &attempt()
        )
        .is_err());
    }

    #[test]
    fn restore_renders_the_chain_in_order_and_refuses_bad_input() {
        let ee = info("5.26.3", Edition::Enterprise);
        let chain = vec![
            ChainArtifact {
                uri: "s3://b/k/neo4j-2026-11-21T00-00-00.backup".into(),
                sha256: "a".repeat(64),
            },
            ChainArtifact {
                uri: "s3://b/k/neo4j-2026-11-21T01-00-00.backup".into(),
                sha256: "b".repeat(64),
            },
        ];
        let s =
            restore_from_s3(&ee, "5.26.0".parse().unwrap(), "neo4j", &chain, &attempt()).unwrap();
        assert!(s.body.contains(
            "database restore --from-path=/var/tmp/cutover-restore-n-0001-abcd/neo4j-2026-11-21T00-00-00.backup,/var/tmp/cutover-restore-n-0001-abcd/neo4j-2026-11-21T01-00-00.backup --overwrite-destination=true neo4j"
        ));
        assert!(restore_from_s3(
            &info("5.26.3", Edition::Community),
            "5.26.0".parse().unwrap(),
            "neo4j",
            &chain,
            &attempt()
        )
        .is_err());
        assert!(restore_from_s3(
            &ee,
            "2025.01.0".parse().unwrap(),
            "neo4j",
            &chain,
            &attempt()
        )
        .is_err());
        let bad = vec![ChainArtifact {
            uri: "s3://b/k/x;rm.backup".into(),
            sha256: "a".repeat(64),
        }];
        assert!(
            restore_from_s3(&ee, "5.26.0".parse().unwrap(), "neo4j", &bad, &attempt()).is_err()
        );
    }

    #[test]
    fn the_password_is_never_in_the_script_or_env() {
        let s = set_initial_password(
            "neo4j_prod_secrets",
            "AWSPENDING",
            Some("ledgerspacepass"),
            &attempt(),
        )
        .unwrap();
        assert!(s
            .body
            .contains("dbms set-initial-password \"${neo4j_password}\""));
        assert!(s.env.keys().all(|k| !k.contains("PASSWORD")));
    }
}
