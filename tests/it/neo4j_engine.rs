//! `Neo4jEngine::backup` and `restore` end to end, as far as this machine allows: the
//! engine drives the real scripts through an `Exec` stand-in, [`LocalBashExec`], which
//! runs the exact command text `SsmExec` would send to SSM, under bash on this host, with
//! the AWS CLI against the harness's moto server (real S3 API over HTTP) and the result
//! object read back by `SsmExec` itself. Only the transport differs from SSM.
//!
//! Stand-ins, named as such: `fake-neo4j-admin` (records argv, fakes the effect — see
//! `neo4j_scripts::FAKE_ADMIN`), `fake-systemctl` (records argv), and
//! [`StandInNeo4jServer`] for the Bolt side (reports a version and edition, records
//! statements). No Neo4j server runs here: nothing in this module proves what Neo4j
//! itself does with these commands.

use crate::aws_support::{setup, tool, Moto};
use crate::neo4j_scripts::FAKE_ADMIN;
use async_trait::async_trait;
use cutover::db::bolt::BoltTarget;
use cutover::db::neo4j::bolt_admin::{DatabaseStatus, Neo4jBolt};
use cutover::db::neo4j::cypher::CypherStatement;
use cutover::db::neo4j::{Edition, Neo4jEngine, Neo4jSettings, ServerInfo};
use cutover::db::{DatabaseEngine, DbHandle, EngineKind};
use cutover::failure::{ErrorClass, Failure};
use cutover::ids::{InstanceId, ObjectKey, RunId};
use cutover::providers::aws::{S3Store, SsmExec};
use cutover::providers::{
    Exec, ExecHandle, ExecStatus, Instance, InstanceState, ObjectStore, Script,
};
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An `Exec` stand-in: runs `SsmExec`'s rendered command under bash on this host (as SSM
/// would on the instance) and answers polls from the result object in S3, exactly as
/// `SsmExec` does. A missing result object is Inconclusive.
struct LocalBashExec {
    ssm: SsmExec,
    env: Vec<(String, String)>,
}

#[async_trait]
impl Exec for LocalBashExec {
    async fn start(&self, instance: &InstanceId, script: &Script) -> Result<ExecHandle, Failure> {
        let text = self.ssm.render(script)?;
        let out = tokio::process::Command::new("bash")
            .arg("-c")
            .arg(&text)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .await
            .map_err(|e| Failure::permanent(format!("bash: {e}")))?;
        if !out.stderr.is_empty() {
            eprintln!("{}: {}", script.name, String::from_utf8_lossy(&out.stderr));
        }
        Ok(ExecHandle {
            id: format!("local-{}", script.nonce),
            instance: instance.clone(),
            nonce: script.nonce.clone(),
        })
    }

    async fn poll(&self, handle: &ExecHandle) -> Result<ExecStatus, Failure> {
        Ok(match self.ssm.read_result(&handle.nonce).await? {
            Some(result) => ExecStatus::Finished(result),
            None => ExecStatus::Inconclusive("no result object".into()),
        })
    }

    async fn cancel(&self, _handle: &ExecHandle) -> Result<(), Failure> {
        Ok(())
    }
}

/// A stand-in for the Bolt side of a Neo4j server: reports `info`, records statements.
struct StandInNeo4jServer {
    info: ServerInfo,
    statements: Mutex<Vec<String>>,
}

#[async_trait]
impl Neo4jBolt for StandInNeo4jServer {
    async fn server_info(&self, _t: &BoltTarget) -> Result<ServerInfo, Failure> {
        Ok(self.info.clone())
    }
    async fn execute(&self, _t: &BoltTarget, s: &CypherStatement) -> Result<(), Failure> {
        self.statements.lock().unwrap().push(s.text.clone());
        Ok(())
    }
    async fn show_database(
        &self,
        _t: &BoltTarget,
        _database: &str,
    ) -> Result<Vec<DatabaseStatus>, Failure> {
        Ok(vec![DatabaseStatus {
            access: "read-write".into(),
            current_status: "online".into(),
        }])
    }
    async fn read_only_setting(&self, _t: &BoltTarget) -> Result<Option<String>, Failure> {
        Ok(None)
    }
    async fn probe(&self, _t: &BoltTarget) -> Result<(), Failure> {
        Ok(())
    }
}

struct Rig {
    _moto: Moto,
    store: S3Store,
    dir: tempfile::TempDir,
    engine: Neo4jEngine,
    bolt: Arc<StandInNeo4jServer>,
}

fn executable(path: &PathBuf, text: &str) {
    std::fs::write(path, text).unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(path)
        .status()
        .unwrap();
}

async fn rig(bucket: &str, edition: Edition) -> Rig {
    let (moto, settings, clients) = setup(bucket).await;
    let store = S3Store::new(clients.s3.clone(), settings);
    let ssm = SsmExec::new(
        clients.ssm.clone(),
        store.clone(),
        RunId::new("20261121-neo4jeng1"),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| dir.path().join(n);
    executable(&path("fake-neo4j-admin"), FAKE_ADMIN);
    executable(
        &path("fake-systemctl"),
        "#!/usr/bin/env bash\necho \"systemctl $*\" >>\"$FAKE_ADMIN_LOG\"\n",
    );
    let mut env: Vec<(String, String)> = moto
        .cli_env()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    env.extend(
        [
            (
                "PATH",
                format!(
                    "{}:{}",
                    tool("aws").parent().unwrap().display(),
                    std::env::var("PATH").unwrap()
                ),
            ),
            (
                "NEO4J_ADMIN",
                path("fake-neo4j-admin").display().to_string(),
            ),
            (
                "CUTOVER_SYSTEMCTL",
                path("fake-systemctl").display().to_string(),
            ),
            ("FAKE_ADMIN_LOG", path("argv.log").display().to_string()),
            (
                "CUTOVER_LOCK_FILE",
                path("cutover.lock").display().to_string(),
            ),
            ("FAKE_STORE", path("store.dump").display().to_string()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let bolt = Arc::new(StandInNeo4jServer {
        info: ServerInfo {
            version: "5.26.3".parse().unwrap(),
            edition,
        },
        statements: Mutex::new(Vec::new()),
    });
    let mut settings = Neo4jSettings::defaults(edition);
    settings.poll.first_delay = Duration::from_millis(50);
    settings.poll.max_delay = Duration::from_millis(500);
    let engine =
        Neo4jEngine::with_bolt(Arc::new(LocalBashExec { ssm, env }), bolt.clone(), settings);
    Rig {
        _moto: moto,
        store,
        dir,
        engine,
        bolt,
    }
}

impl Rig {
    fn argv_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("argv.log")).unwrap_or_default()
    }
}

fn handle() -> DbHandle {
    DbHandle {
        instance: Instance {
            id: InstanceId::new("i-0123456789abcdef0"),
            state: InstanceState::Running,
            tags: BTreeMap::new(),
            address: Some("127.0.0.20".into()),
            endpoints: BTreeMap::new(),
            image: None,
        },
        database: "neo4j".into(),
        admin_user: "neo4j".into(),
        admin_password: SecretString::from("stand-in-admin-password".to_owned()),
    }
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[tokio::test]
async fn community_dump_backup_and_restore_through_the_real_scripts() {
    let r = rig("cutover-neo4j-engine-ce", Edition::Community).await;
    let db = handle();
    let key = ObjectKey::new("backups/prod/run-1/ledger/ledger.backup");

    let artifact = r.engine.backup(&db, &r.store, &key).await.unwrap();
    let stored = r.store.get_bytes(&key).await.unwrap();
    assert_eq!(
        artifact.object.sha256.as_deref(),
        Some(sha(&stored).as_str()),
        "the artifact's SHA-256 is the stored object's"
    );
    assert_eq!(stored, vec![b'n'; 3_000_000], "what the stand-in dumped");
    // The instance uploaded it (`aws s3 cp`, no tag); the engine then tagged it.
    assert_eq!(
        r.store.recorded_sha256(&key).await.unwrap(),
        artifact.object.sha256,
        "the object's cutover-sha256 tag"
    );
    assert_eq!(artifact.object.size, 3_000_000);
    assert_eq!(artifact.engine, EngineKind::Neo4j);
    assert_eq!(artifact.engine_version, "5.26.3");
    assert_eq!(artifact.format, "dump");
    let log = r.argv_log();
    let stop = log.find("systemctl stop neo4j").expect("DBMS stopped");
    let dump = log.find("database dump --to-stdout neo4j").expect("dumped");
    let start = log.find("systemctl start neo4j").expect("DBMS started");
    assert!(stop < dump && dump < start, "{log}");

    r.engine.restore(&db, &r.store, &artifact).await.unwrap();
    let loaded = std::fs::read(r.dir.path().join("store.dump")).unwrap();
    assert_eq!(
        Some(sha(&loaded)),
        artifact.object.sha256,
        "the loaded bytes"
    );
    assert_eq!(r.argv_log().matches("database load").count(), 1);

    // A tampered object: the script refuses before neo4j-admin load runs.
    let mut tampered = stored.clone();
    tampered[1_500_000] ^= 0xff;
    r.store.put_bytes(&key, tampered).await.unwrap();
    let err = r
        .engine
        .restore(&db, &r.store, &artifact)
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(err.message.contains("checksum mismatch"), "{}", err.message);
    assert!(err.message.contains("neo4j-load"), "{}", err.message);
    assert_eq!(
        r.argv_log().matches("database load").count(),
        1,
        "load must not run on a mismatch"
    );
    assert!(
        r.bolt.statements.lock().unwrap().is_empty(),
        "Community: no Cypher"
    );
}

#[tokio::test]
async fn enterprise_online_backup_and_restore_through_the_real_scripts() {
    let r = rig("cutover-neo4j-engine-ee", Edition::Enterprise).await;
    let db = handle();
    let key = ObjectKey::new("backups/prod/run-2/ledger/ledger.backup");

    let artifact = r.engine.backup(&db, &r.store, &key).await.unwrap();
    assert_eq!(artifact.format, "online-full");
    let stored = r.store.get_bytes(&key).await.unwrap();
    assert_eq!(artifact.object.sha256, Some(sha(&stored)));
    assert_eq!(artifact.object.size, stored.len() as u64);
    assert!(r.argv_log().contains("--type=FULL"), "{}", r.argv_log());
    assert!(
        r.bolt.statements.lock().unwrap().is_empty(),
        "an online backup stops nothing"
    );

    r.engine.restore(&db, &r.store, &artifact).await.unwrap();
    assert!(r
        .argv_log()
        .contains("database restore --from-path=/var/tmp/cutover-restore-neo4j-restore-"));
    assert_eq!(
        *r.bolt.statements.lock().unwrap(),
        [
            "STOP DATABASE `neo4j` WAIT 120 SECONDS",
            "CREATE DATABASE `neo4j` IF NOT EXISTS WAIT 120 SECONDS",
            "START DATABASE `neo4j` WAIT 120 SECONDS",
        ]
    );

    let mut tampered = stored;
    tampered[10] ^= 0xff;
    r.store.put_bytes(&key, tampered).await.unwrap();
    let err = r
        .engine
        .restore(&db, &r.store, &artifact)
        .await
        .unwrap_err();
    assert!(err.message.contains("checksum mismatch"), "{}", err.message);
    assert_eq!(r.argv_log().matches("database restore").count(), 1);
}
