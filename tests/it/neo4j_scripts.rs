//! The neo4j scripts: shellcheck-clean, and run for real under bash — the exact command
//! text the SSM exec provider sends — against moto with the AWS CLI, with `neo4j-admin`
//! replaced by a stand-in named `fake-neo4j-admin` that records its argv. This proves the
//! plumbing (pipefail, checksums, upload, result object, secrets read on the instance),
//! not Neo4j itself.

use crate::aws_support::{setup, tool, Moto};
use cutover::db::neo4j::admin::BackupType;
use cutover::db::neo4j::scripts::{self, Attempt};
use cutover::db::neo4j::{Edition, ServerInfo};
use cutover::ids::{ObjectKey, RunId, SecretName};
use cutover::providers::aws::{S3Store, SecretsManagerStore, SsmExec};
use cutover::providers::{ExecResult, ObjectStore, Script};
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Duration;

pub const FAKE_ADMIN: &str = r#"#!/usr/bin/env bash
# fake-neo4j-admin: a stand-in for neo4j-admin in tests. Records argv, fakes the effect.
set -euo pipefail
printf '%s\n' "$*" >>"$FAKE_ADMIN_LOG"
case "$1 $2" in
  "database dump")
    if [[ " $* " == *" --to-stdout "* ]]; then
      head -c 3000000 /dev/zero | tr '\0' 'n'
    else
      exit 64
    fi ;;
  "database load")
    dir="${3#--from-path=}"
    cp "$dir/neo4j.dump" "$FAKE_STORE" ;;
  "dbms set-initial-password")
    # neo4j-admin reads the password from an @-file (one quoted argument).
    pw="$3"
    if [[ $pw == @* ]]; then pw="$(head -n1 "${pw#@}")"; pw="${pw#\"}"; pw="${pw%\"}"; fi
    printf '%s' "$pw" >"$FAKE_PASSWORD_FILE" ;;
  "database backup")
    for a in "$@"; do case "$a" in --to-path=*) to="${a#--to-path=}" ;; esac; done
    n=$(find "$to" -name '*.backup' | wc -l)
    head -c $((100000 + n)) /dev/zero | tr '\0' 'b' >"$to/neo4j-2026-11-21T00-00-0$n.backup" ;;
  "database restore")
    for a in "$@"; do case "$a" in --from-path=*) from="${a#--from-path=}" ;; esac; done
    IFS=, read -ra parts <<<"$from"
    for p in "${parts[@]}"; do test -s "$p"; done ;;
  "database check")
    if [[ ${FAKE_CHECK_FAIL:-0} == 1 ]]; then
      for a in "$@"; do case "$a" in --report-path=*) rp="${a#--report-path=}" ;; esac; done
      echo "inconsistency" >"$rp/inconsistencies-fake.report"
      exit 1
    fi ;;
  *) echo "fake-neo4j-admin: unexpected $*" >&2; exit 64 ;;
esac
"#;

#[test]
fn every_script_is_shellcheck_clean() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, text) in scripts::ALL {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        files.push(p);
    }
    let wrapper = dir.path().join("exec_wrapper.sh");
    std::fs::write(&wrapper, cutover::providers::aws::ssm_exec::WRAPPER).unwrap();
    files.push(wrapper);
    let out = std::process::Command::new(tool("shellcheck"))
        .args(["-s", "bash"])
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "shellcheck:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The AMI recipe's scripts too (they source ../versions.env).
    let ami = Path::new(env!("CARGO_MANIFEST_DIR")).join("ami/scripts");
    let out = std::process::Command::new(tool("shellcheck"))
        .args(["-s", "bash", "-x", "install.sh", "configure.sh"])
        .current_dir(&ami)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "shellcheck ami:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

struct Bench {
    moto: Moto,
    exec: SsmExec,
    store: S3Store,
    dir: tempfile::TempDir,
    settings: cutover::providers::aws::AwsSettings,
    clients: cutover::providers::aws::AwsClients,
}

async fn bench() -> Bench {
    let (moto, settings, clients) = setup("cutover-neo4j-scripts").await;
    let store = S3Store::new(clients.s3.clone(), settings.clone());
    let exec = SsmExec::new(
        clients.ssm.clone(),
        store.clone(),
        RunId::new("20261121-neo40001"),
    );
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("fake-neo4j-admin");
    std::fs::write(&fake, FAKE_ADMIN).unwrap();
    // fake-systemctl: a stand-in for systemctl that records its arguments.
    let systemctl = dir.path().join("fake-systemctl");
    std::fs::write(
        &systemctl,
        "#!/usr/bin/env bash\necho \"systemctl $*\" >>\"$FAKE_ADMIN_LOG\"\n",
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&fake)
        .arg(&systemctl)
        .status()
        .unwrap();
    Bench {
        moto,
        exec,
        store,
        dir,
        settings,
        clients,
    }
}

impl Bench {
    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// Runs the command text SSM would run, as this test process's user, against moto.
    async fn run(&self, script: &Script) -> (i32, ExecResult) {
        self.run_with(script, &[]).await
    }

    async fn run_with(&self, script: &Script, extra: &[(&str, &str)]) -> (i32, ExecResult) {
        let text = self.exec.render(script).unwrap();
        let path = format!(
            "{}:{}",
            tool("aws").parent().unwrap().display(),
            std::env::var("PATH").unwrap()
        );
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(&text)
            .envs(self.moto.cli_env())
            .env("PATH", path)
            .env("NEO4J_ADMIN", self.path("fake-neo4j-admin"))
            .env("FAKE_ADMIN_LOG", self.path("argv.log"))
            .env("FAKE_STORE", self.path("store.dump"))
            .env("FAKE_PASSWORD_FILE", self.path("password"))
            .env("CUTOVER_LOCK_FILE", self.path("cutover.lock"))
            .env("CUTOVER_SYSTEMCTL", self.path("fake-systemctl"))
            .envs(extra.iter().copied())
            .output()
            .unwrap();
        let result = self
            .exec
            .read_result(&script.nonce)
            .await
            .unwrap()
            .unwrap_or_else(|| {
                panic!(
                    "no result object; stderr: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        (out.status.code().unwrap_or(-1), result)
    }

    fn argv_log(&self) -> String {
        std::fs::read_to_string(self.path("argv.log")).unwrap_or_default()
    }
}

fn attempt(n: &str) -> Attempt {
    Attempt {
        nonce: format!("attempt-{n}"),
        timeout: Duration::from_secs(300),
    }
}

fn sha(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

#[tokio::test]
async fn dump_streams_to_s3_with_sha256_and_load_verifies_and_checks_before_loading() {
    let b = bench().await;
    let info = ServerInfo {
        version: "5.26.3".parse().unwrap(),
        edition: Edition::Community,
    };
    let key = ObjectKey::new("backups/ledger/run-1/neo4j.dump");
    let uri = b.store.location(&key);

    let dump = scripts::dump_to_s3(&info, "neo4j", &uri, &attempt("dump1")).unwrap();
    let (code, result) = b.run(&dump).await;
    assert_eq!(code, 0, "{}", result.output_tail);
    assert_eq!(result.exit_code, 0);
    assert!(
        b.argv_log().contains("database dump --to-stdout neo4j"),
        "{}",
        b.argv_log()
    );
    let want = hex::encode(Sha256::digest(vec![b'n'; 3_000_000]));
    assert_eq!(result.outputs["sha256"], want);
    assert_eq!(result.outputs["size_bytes"], "3000000");
    let bytes = b.store.get_bytes(&key).await.unwrap();
    assert_eq!(
        hex::encode(Sha256::digest(&bytes)),
        want,
        "the object in S3 has the reported checksum"
    );
    let sidecar = b
        .store
        .get_bytes(&ObjectKey::new("backups/ledger/run-1/neo4j.dump.sha256"))
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&sidecar).starts_with(&want));

    // Load: a wrong expected checksum stops before neo4j-admin load runs.
    let wrong = "0".repeat(64);
    let reports = b
        .store
        .location(&ObjectKey::new("backups/ledger/run-1/check-reports"));
    let load_script = |sha256: &str, name: &str| {
        scripts::load_from_s3(
            &info,
            "5.26.3".parse().unwrap(),
            "neo4j",
            &uri,
            sha256,
            &reports,
            &attempt(name),
        )
        .unwrap()
    };
    let load = load_script(&wrong, "load1");
    let (code, result) = b.run(&load).await;
    assert_eq!(code, 3);
    assert_eq!(result.outputs["loaded"], "false");
    assert!(result.output_tail.contains("checksum mismatch"));
    assert!(
        !b.argv_log().contains("database load") && !b.argv_log().contains("database check"),
        "neither check nor load may run on a mismatch"
    );
    assert!(!b.path("store.dump").exists());

    // The right bytes but an inconsistent store: the check's report goes to the object
    // store, exit 4, and nothing is loaded.
    let load = load_script(&want, "load-inconsistent");
    let (code, result) = b.run_with(&load, &[("FAKE_CHECK_FAIL", "1")]).await;
    assert_eq!(code, 4, "{}", result.output_tail);
    assert_eq!(result.outputs["consistent"], "false");
    assert_eq!(result.outputs["loaded"], "false");
    assert_eq!(result.outputs["report_prefix"], reports);
    assert!(result.output_tail.contains("nothing was loaded"));
    let report = b
        .store
        .get_bytes(&ObjectKey::new(
            "backups/ledger/run-1/check-reports/inconsistencies-fake.report",
        ))
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&report).trim(), "inconsistency");
    assert!(
        b.argv_log().contains("database check --report-path=/var/tmp/cutover-load-attempt-load-inconsistent/check-reports --from-path=/var/tmp/cutover-load-attempt-load-inconsistent --temp-path=/var/tmp/cutover-load-attempt-load-inconsistent/check-temp neo4j"),
        "{}",
        b.argv_log()
    );
    assert!(!b.argv_log().contains("database load"), "{}", b.argv_log());
    assert!(!b.path("store.dump").exists());

    let load = load_script(&want, "load2");
    let (code, result) = b.run(&load).await;
    assert_eq!(code, 0, "{}", result.output_tail);
    assert_eq!(result.outputs["consistent"], "true");
    assert_eq!(result.outputs["loaded"], "true");
    let log = b.argv_log();
    let checked = log
        .find("database check --report-path=/var/tmp/cutover-load-attempt-load2/check-reports")
        .expect("the artifact is checked");
    let loaded = log
        .find("database load --from-path=/var/tmp/cutover-load-attempt-load2 --overwrite-destination=true neo4j")
        .expect("then loaded");
    assert!(checked < loaded, "checked before loading: {log}");
    assert_eq!(sha(&b.path("store.dump")), want);
    assert!(
        !Path::new("/var/tmp/cutover-load-attempt-load2").exists(),
        "scratch directory removed"
    );

    // A failing dump (pipefail): the stand-in refuses, the upload must not be reported.
    let mut broken = dump.clone();
    broken.nonce = "attempt-dump2".into();
    broken.body = broken.body.replace("--to-stdout", "--bogus");
    let (code, result) = b.run(&broken).await;
    assert_ne!(code, 0);
    assert!(!result.outputs.contains_key("sha256"));
}

/// A script left running by a crashed cutover holds the instance's lock: a second
/// script (the resumed run's new attempt) exits 75 (transient) before doing anything.
#[tokio::test]
async fn a_second_script_waits_for_the_one_already_running() {
    let b = bench().await;
    let info = ServerInfo {
        version: "5.26.3".parse().unwrap(),
        edition: Edition::Community,
    };
    let uri = b
        .store
        .location(&ObjectKey::new("backups/ledger/locked/neo4j.dump"));
    let dump = scripts::dump_to_s3(&info, "neo4j", &uri, &attempt("locked")).unwrap();
    // `-o`: only the flock process holds the lock (not its child), so killing it frees it.
    let mut holder = std::process::Command::new("flock")
        .arg("-o")
        .arg(b.path("cutover.lock"))
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    // Bounded wait until the stand-in holder has the lock.
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let probe = std::process::Command::new("flock")
            .args(["-n"])
            .arg(b.path("cutover.lock"))
            .arg("true")
            .status()
            .unwrap();
        if !probe.success() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(b.exec.render(&dump).unwrap())
        .envs(b.moto.cli_env())
        .env("NEO4J_ADMIN", b.path("fake-neo4j-admin"))
        .env("FAKE_ADMIN_LOG", b.path("argv.log"))
        .env("CUTOVER_LOCK_FILE", b.path("cutover.lock"))
        .output()
        .unwrap();
    let _ = holder.kill();
    let _ = holder.wait();
    let result = b
        .exec
        .read_result(&dump.nonce)
        .await
        .unwrap()
        .expect("result object");
    assert_eq!(result.exit_code, 75, "{}", result.output_tail);
    assert!(
        result
            .output_tail
            .contains("another cutover script is running"),
        "{}\n{}",
        result.output_tail,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(b.argv_log().is_empty(), "neo4j-admin never ran");

    // Once the first has finished, the same script runs.
    let again = scripts::dump_to_s3(&info, "neo4j", &uri, &attempt("unlocked")).unwrap();
    let (code, result) = b.run(&again).await;
    assert_eq!(code, 0, "{}", result.output_tail);
}

#[tokio::test]
async fn the_initial_password_is_read_from_secrets_manager_on_the_instance() {
    let b = bench().await;
    let secrets = SecretsManagerStore::new(b.clients.secrets.clone());
    let name = SecretName::new("neo4j_stage_secrets");
    secrets
        .create_if_missing(
            &name,
            &SecretString::from(r#"{"ledgerspacepass":"s3cret-Pa55word"}"#.to_owned()),
            None,
        )
        .await
        .unwrap();
    let script = scripts::set_initial_password(
        "neo4j_stage_secrets",
        "AWSCURRENT",
        Some("ledgerspacepass"),
        &attempt("pw1"),
    )
    .unwrap();
    let text = b.exec.render(&script).unwrap();
    assert!(
        !text.contains("s3cret-Pa55word"),
        "the password is never in the command text"
    );
    let data = b.path("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut script = script;
    script
        .env
        .insert("NEO4J_DATA".into(), data.display().to_string());
    let (code, result) = b.run(&script).await;
    assert_eq!(code, 0, "{}", result.output_tail);
    assert_eq!(result.outputs["password_set"], "true");
    assert_eq!(
        std::fs::read_to_string(b.path("password")).unwrap(),
        "s3cret-Pa55word"
    );
    assert!(
        !result.output_tail.contains("s3cret"),
        "the password is not in the output"
    );
    let log = b
        .store
        .get_bytes(&b.exec.log_key("attempt-pw1"))
        .await
        .unwrap();
    assert!(!String::from_utf8_lossy(&log).contains("s3cret"));
    let _ = &b.settings;

    // The service is started only after the password is set.
    let log = b.argv_log();
    let set_at = log.find("set-initial-password").expect("password set");
    let start_at = log
        .find("systemctl enable --now neo4j")
        .expect("neo4j started");
    assert!(set_at < start_at, "{log}");

    // Once Neo4j has users (a retry after success), nothing is set again: the service is
    // only made sure to run, and the result says so (cutover then checks the login).
    std::fs::create_dir_all(data.join("dbms")).unwrap();
    std::fs::write(data.join("dbms/auth.ini"), "neo4j:...").unwrap();
    std::fs::remove_file(b.path("password")).unwrap();
    script.nonce = "attempt-pw2".into();
    let (code, result) = b.run(&script).await;
    assert_eq!(code, 0, "{}", result.output_tail);
    assert_eq!(result.outputs["password_set"], "already");
    assert!(
        !b.path("password").exists(),
        "no second set-initial-password"
    );
}

#[tokio::test]
async fn community_freeze_edits_only_its_block_and_restarts() {
    let b = bench().await;
    let info = ServerInfo {
        version: "5.26.3".parse().unwrap(),
        edition: Edition::Community,
    };
    let conf = b.path("neo4j.conf");
    std::fs::write(&conf, "server.default_listen_address=0.0.0.0\n").unwrap();
    let systemctl = b.path("fake-systemctl");
    std::fs::write(
        &systemctl,
        "#!/usr/bin/env bash\necho \"$*\" >>\"$FAKE_ADMIN_LOG\"\n",
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&systemctl)
        .status()
        .unwrap();
    for (n, freeze) in [("f1", true), ("f2", true), ("u1", false)] {
        let mut s = scripts::community_freeze(&info, "neo4j", freeze, &attempt(n)).unwrap();
        s.env
            .insert("NEO4J_CONF".into(), conf.display().to_string());
        s.env
            .insert("CUTOVER_SYSTEMCTL".into(), systemctl.display().to_string());
        let (code, result) = b.run(&s).await;
        assert_eq!(code, 0, "{}", result.output_tail);
        let text = std::fs::read_to_string(&conf).unwrap();
        assert_eq!(text.contains("server.databases.read_only=neo4j"), freeze);
        assert!(text.starts_with("server.default_listen_address=0.0.0.0\n"));
    }
    assert_eq!(
        b.argv_log().matches("restart neo4j").count(),
        2,
        "no restart when nothing changed"
    );
}

#[tokio::test]
async fn enterprise_backup_uploads_each_artifact_and_restore_verifies_the_chain_first() {
    let b = bench().await;
    let ee = ServerInfo {
        version: "5.26.3".parse().unwrap(),
        edition: Edition::Enterprise,
    };
    let prefix = b.store.location(&ObjectKey::new("backups/ledger/chain"));
    let backup_dir = b.path("backups");
    let mut chain = Vec::new();
    for (n, kind) in [("b1", BackupType::Full), ("b2", BackupType::Diff)] {
        let mut s = scripts::backup_to_s3(&ee, "neo4j", kind, &prefix, &attempt(n)).unwrap();
        // The stand-in writes where the rendered command says; point both at a temp dir.
        s.body = s.body.replace(
            "/var/lib/neo4j/backups/cutover/neo4j",
            &backup_dir.display().to_string(),
        );
        s.env.insert(
            "CUTOVER_BACKUP_DIR".into(),
            backup_dir.display().to_string(),
        );
        let (code, result) = b.run(&s).await;
        assert_eq!(code, 0, "{}", result.output_tail);
        assert_eq!(
            result.outputs["artifacts"], "1",
            "only the new artifact is uploaded"
        );
        let fields: Vec<&str> = result.outputs["artifact.0"].split(' ').collect();
        let key = ObjectKey::new(format!("backups/ledger/chain/{}", fields[0]));
        let bytes = b.store.get_bytes(&key).await.unwrap();
        assert_eq!(hex::encode(Sha256::digest(&bytes)), fields[1]);
        chain.push(scripts::ChainArtifact {
            uri: b.store.location(&key),
            sha256: fields[1].to_owned(),
        });
    }
    assert!(b.argv_log().contains("--type=FULL") && b.argv_log().contains("--type=DIFF"));

    // A wrong checksum anywhere in the chain: nothing is restored.
    let mut bad = chain.clone();
    bad[1].sha256 = "0".repeat(64);
    let s = scripts::restore_from_s3(
        &ee,
        "5.26.3".parse().unwrap(),
        "neo4j",
        &bad,
        &attempt("r1"),
    )
    .unwrap();
    let (code, result) = b.run(&s).await;
    assert_eq!(code, 3);
    assert_eq!(result.outputs["restored"], "false");
    assert!(!b.argv_log().contains("database restore"));

    let s = scripts::restore_from_s3(
        &ee,
        "5.26.3".parse().unwrap(),
        "neo4j",
        &chain,
        &attempt("r2"),
    )
    .unwrap();
    let (code, result) = b.run(&s).await;
    assert_eq!(code, 0, "{}", result.output_tail);
    assert_eq!(result.outputs["artifacts_verified"], "2");
    assert_eq!(result.outputs["restored"], "true");
    assert!(b
        .argv_log()
        .contains("database restore --from-path=/var/tmp/cutover-restore-attempt-r2/"));
}

#[tokio::test]
async fn check_reports_inconsistencies_to_s3_and_exits_4() {
    let b = bench().await;
    let prefix = b.store.location(&ObjectKey::new("reports/ledger"));
    let s = scripts::check_database("neo4j", &prefix, &attempt("c1")).unwrap();
    let (code, result) = b.run(&s).await;
    assert_eq!(code, 0, "{}", result.output_tail);
    assert_eq!(result.outputs["consistent"], "true");

    let s = scripts::check_database("neo4j", &prefix, &attempt("c2")).unwrap();
    let (code, result) = b.run_with(&s, &[("FAKE_CHECK_FAIL", "1")]).await;
    assert_eq!(code, 4);
    assert_eq!(result.outputs["consistent"], "false");
    let report = b
        .store
        .get_bytes(&ObjectKey::new(
            "reports/ledger/inconsistencies-fake.report",
        ))
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&report).trim(), "inconsistency");
}
