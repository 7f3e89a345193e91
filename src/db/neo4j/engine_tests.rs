//! The neo4j engine's decisions, against in-memory stand-ins: an `Exec` that answers
//! from a script of replies, a Bolt side that records statements, an object store in a
//! map. Paused tokio time, so backoff and deadlines cost nothing.

use super::bolt_admin::{DatabaseStatus, Neo4jBolt};
use super::cypher::CypherStatement;
use super::engine::Neo4jEngine;
use super::script_runner::{run_script, PollPolicy};
use super::settings::{BackupMethod, Neo4jSettings};
use super::version::{Edition, ServerInfo};
use crate::db::bolt::BoltTarget;
use crate::db::engine::{BackupArtifact, DatabaseEngine, DbHandle, DbOperation, OpPoll};
use crate::db::EngineKind;
use crate::failure::{ErrorClass, Failure};
use crate::ids::{InstanceId, ObjectKey, SecretName};
use crate::providers::{
    ByteStream, Exec, ExecHandle, ExecResult, ExecStatus, Instance, InstanceState, ObjectInfo,
    ObjectStore, Script,
};
use async_trait::async_trait;
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ADMIN_PASSWORD: &str = "Admin-Pa55word-never-in-scripts";
const APP_PASSWORD: &str = "App-Pa55word-never-in-scripts";

/// One answer of the fake exec to a poll.
#[derive(Clone)]
enum Reply {
    Running,
    Finished {
        exit_code: i32,
        outputs: Vec<(&'static str, String)>,
        tail: &'static str,
    },
    /// A finished result carrying another attempt's nonce.
    StaleResult,
    Inconclusive,
    PollError(Failure),
}

/// An `Exec` whose polls answer from `replies` (the last one repeats), recording every
/// script started and every cancel.
#[derive(Default)]
struct FakeExec {
    replies: Mutex<VecDeque<Reply>>,
    started: Mutex<Vec<Script>>,
    cancelled: Mutex<Vec<String>>,
}

impl FakeExec {
    fn with(replies: Vec<Reply>) -> Arc<Self> {
        Arc::new(Self {
            replies: Mutex::new(replies.into()),
            ..Self::default()
        })
    }
    fn started(&self) -> Vec<Script> {
        self.started.lock().unwrap().clone()
    }
    fn cancels(&self) -> usize {
        self.cancelled.lock().unwrap().len()
    }
}

#[async_trait]
impl Exec for FakeExec {
    async fn start(&self, instance: &InstanceId, script: &Script) -> Result<ExecHandle, Failure> {
        self.started.lock().unwrap().push(script.clone());
        Ok(ExecHandle {
            id: format!("cmd-{}", self.started.lock().unwrap().len()),
            instance: instance.clone(),
            nonce: script.nonce.clone(),
        })
    }

    async fn poll(&self, handle: &ExecHandle) -> Result<ExecStatus, Failure> {
        let reply = {
            let mut replies = self.replies.lock().unwrap();
            if replies.len() > 1 {
                replies.pop_front().unwrap()
            } else {
                replies.front().cloned().expect("a reply")
            }
        };
        Ok(match reply {
            Reply::Running => ExecStatus::Running,
            Reply::Finished {
                exit_code,
                outputs,
                tail,
            } => ExecStatus::Finished(ExecResult {
                exit_code,
                outputs: outputs
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect(),
                output_tail: tail.to_owned(),
                nonce: handle.nonce.clone(),
            }),
            Reply::StaleResult => ExecStatus::Finished(ExecResult {
                exit_code: 0,
                outputs: BTreeMap::new(),
                output_tail: String::new(),
                nonce: "another-attempt".into(),
            }),
            Reply::Inconclusive => ExecStatus::Inconclusive(
                "SSM reports Success/Success but the result object does not exist".into(),
            ),
            Reply::PollError(f) => return Err(f),
        })
    }

    async fn cancel(&self, handle: &ExecHandle) -> Result<(), Failure> {
        self.cancelled.lock().unwrap().push(handle.id.clone());
        Ok(())
    }
}

/// A stand-in for a Neo4j server's Bolt side: reports `info`, records statement texts,
/// keeps the access mode ALTER DATABASE sets.
struct StandInBolt {
    info: ServerInfo,
    statements: Mutex<Vec<String>>,
    access: Mutex<&'static str>,
    read_only_setting: Mutex<Option<String>>,
}

impl StandInBolt {
    fn new(version: &str, edition: Edition) -> Arc<Self> {
        Arc::new(Self {
            info: ServerInfo {
                version: version.parse().unwrap(),
                edition,
            },
            statements: Mutex::new(Vec::new()),
            access: Mutex::new("read-write"),
            read_only_setting: Mutex::new(None),
        })
    }
    fn statements(&self) -> Vec<String> {
        self.statements.lock().unwrap().clone()
    }
}

#[async_trait]
impl Neo4jBolt for StandInBolt {
    async fn server_info(&self, _target: &BoltTarget) -> Result<ServerInfo, Failure> {
        Ok(self.info.clone())
    }
    async fn execute(&self, _target: &BoltTarget, s: &CypherStatement) -> Result<(), Failure> {
        if s.text.contains("SET ACCESS READ ONLY") {
            *self.access.lock().unwrap() = "read-only";
        } else if s.text.contains("SET ACCESS READ WRITE") {
            *self.access.lock().unwrap() = "read-write";
        }
        self.statements.lock().unwrap().push(s.text.clone());
        Ok(())
    }
    async fn show_database(
        &self,
        _target: &BoltTarget,
        _database: &str,
    ) -> Result<Vec<DatabaseStatus>, Failure> {
        Ok(vec![DatabaseStatus {
            access: (*self.access.lock().unwrap()).to_owned(),
            current_status: "online".into(),
        }])
    }
    async fn read_only_setting(&self, _target: &BoltTarget) -> Result<Option<String>, Failure> {
        Ok(self.read_only_setting.lock().unwrap().clone())
    }
    async fn probe(&self, _target: &BoltTarget) -> Result<(), Failure> {
        Ok(())
    }
}

/// An object store in a map, at `s3://test-bucket/<key>`. Its writes record no SHA-256
/// (as objects the instance uploads with the AWS CLI have no tag); `record_sha256` does.
#[derive(Default)]
struct MemoryStore {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
    recorded: Mutex<BTreeMap<String, String>>,
}

impl MemoryStore {
    fn put(&self, key: &str, bytes: Vec<u8>) {
        self.objects.lock().unwrap().insert(key.to_owned(), bytes);
    }
    fn info(key: &ObjectKey, bytes: &[u8]) -> ObjectInfo {
        ObjectInfo {
            key: key.clone(),
            size: bytes.len() as u64,
            sha256: None,
            last_modified: None,
        }
    }
    fn bytes(&self, key: &ObjectKey) -> Result<Vec<u8>, Failure> {
        self.objects
            .lock()
            .unwrap()
            .get(key.as_str())
            .cloned()
            .ok_or_else(|| Failure::permanent(format!("no object {key}")))
    }
}

#[async_trait]
impl ObjectStore for MemoryStore {
    async fn put_stream(
        &self,
        key: &ObjectKey,
        mut body: ByteStream,
    ) -> Result<ObjectInfo, Failure> {
        let mut bytes = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut body, &mut bytes)
            .await
            .unwrap();
        self.put_bytes(key, bytes).await
    }
    async fn put_file(&self, key: &ObjectKey, path: &Path) -> Result<ObjectInfo, Failure> {
        self.put_bytes(key, std::fs::read(path).unwrap()).await
    }
    async fn put_bytes(&self, key: &ObjectKey, bytes: Vec<u8>) -> Result<ObjectInfo, Failure> {
        let info = Self::info(key, &bytes);
        self.put(key.as_str(), bytes);
        Ok(info)
    }
    async fn get_stream(&self, key: &ObjectKey) -> Result<ByteStream, Failure> {
        Ok(Box::new(std::io::Cursor::new(self.bytes(key)?)))
    }
    async fn get_file(&self, key: &ObjectKey, path: &Path) -> Result<ObjectInfo, Failure> {
        let bytes = self.bytes(key)?;
        std::fs::write(path, &bytes).unwrap();
        Ok(Self::info(key, &bytes))
    }
    async fn get_bytes(&self, key: &ObjectKey) -> Result<Vec<u8>, Failure> {
        self.bytes(key)
    }
    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectInfo>, Failure> {
        let recorded = self.recorded.lock().unwrap().get(key.as_str()).cloned();
        Ok(self
            .objects
            .lock()
            .unwrap()
            .get(key.as_str())
            .map(|b| ObjectInfo {
                sha256: recorded,
                ..Self::info(key, b)
            }))
    }
    async fn list(&self, _prefix: &str) -> Result<Vec<ObjectInfo>, Failure> {
        Ok(Vec::new())
    }
    async fn delete(&self, key: &ObjectKey) -> Result<(), Failure> {
        self.objects.lock().unwrap().remove(key.as_str());
        Ok(())
    }
    async fn record_sha256(&self, key: &ObjectKey, sha256: &str) -> Result<(), Failure> {
        self.recorded
            .lock()
            .unwrap()
            .insert(key.as_str().to_owned(), sha256.to_owned());
        Ok(())
    }
    fn location(&self, key: &ObjectKey) -> String {
        format!("s3://test-bucket/{key}")
    }
}

fn handle() -> DbHandle {
    DbHandle {
        instance: Instance {
            id: InstanceId::new("i-0123456789abcdef0"),
            state: InstanceState::Running,
            tags: BTreeMap::new(),
            address: Some("10.0.1.20".into()),
            endpoints: BTreeMap::new(),
            image: None,
        },
        database: "neo4j".into(),
        admin_user: "neo4j".into(),
        admin_password: SecretString::from(ADMIN_PASSWORD.to_owned()),
    }
}

fn settings(edition: Edition) -> Neo4jSettings {
    Neo4jSettings::defaults(edition)
}

fn engine(exec: &Arc<FakeExec>, bolt: &Arc<StandInBolt>, settings: Neo4jSettings) -> Neo4jEngine {
    Neo4jEngine::with_bolt(exec.clone(), bolt.clone(), settings)
}

fn script(timeout: Duration) -> Script {
    Script {
        name: "neo4j-dump".into(),
        body: "true".into(),
        env: BTreeMap::new(),
        timeout,
        nonce: "neo4j-dump-0001".into(),
    }
}

/// Runs a 600-second test script on `i-1` through `exec`.
async fn run(exec: &FakeExec, policy: &PollPolicy) -> Result<ExecResult, Failure> {
    run_script(
        exec,
        &InstanceId::new("i-1"),
        &script(Duration::from_secs(600)),
        policy,
    )
    .await
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn ok(outputs: Vec<(&'static str, String)>) -> Reply {
    Reply::Finished {
        exit_code: 0,
        outputs,
        tail: "",
    }
}

fn dump_outputs(bytes: &[u8], uri: &str) -> Vec<(&'static str, String)> {
    vec![
        ("sha256", sha(bytes)),
        ("size_bytes", bytes.len().to_string()),
        ("artifact_uri", uri.to_owned()),
    ]
}

#[tokio::test(start_paused = true)]
async fn inconclusive_is_never_success_and_the_command_is_cancelled() {
    let exec = FakeExec::with(vec![Reply::Running, Reply::Inconclusive]);
    let policy = PollPolicy::default();
    let err = run(exec.as_ref(), &policy).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Inconclusive);
    assert!(
        err.message.contains("outcome of script neo4j-dump"),
        "{}",
        err.message
    );
    assert!(
        err.message.contains("result object does not exist"),
        "{}",
        err.message
    );
    assert!(err.hint.unwrap().contains("neo4j-dump-0001"));
    assert_eq!(exec.cancels(), 1);

    // A stale result of another attempt is no evidence either.
    let exec = FakeExec::with(vec![Reply::StaleResult]);
    let err = run(exec.as_ref(), &policy).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Inconclusive);
    assert_eq!(exec.cancels(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_late_result_object_is_believed_after_a_bounded_repoll() {
    let exec = FakeExec::with(vec![
        Reply::Inconclusive,
        Reply::Inconclusive,
        Reply::PollError(Failure::transient("ThrottlingException")),
        ok(vec![("answer", "42".into())]),
    ]);
    let result = run(exec.as_ref(), &PollPolicy::default()).await.unwrap();
    assert_eq!(result.outputs["answer"], "42");
    assert_eq!(exec.cancels(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_non_zero_exit_is_a_classified_failure_naming_the_script_and_its_tail() {
    let policy = PollPolicy::default();
    let exec = FakeExec::with(vec![
        Reply::Running,
        Reply::Finished {
            exit_code: 3,
            outputs: vec![],
            tail: "checksum mismatch for s3://b/k: expected aa, got bb; nothing was loaded\n",
        },
    ]);
    let err = run(exec.as_ref(), &policy).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(
        err.message
            .contains("script neo4j-dump on i-1 exited with code 3"),
        "{}",
        err.message
    );
    assert!(
        err.message.contains("nothing was loaded"),
        "{}",
        err.message
    );

    let exec = FakeExec::with(vec![Reply::Finished {
        exit_code: 1,
        outputs: vec![],
        tail: "upload failed: Connection reset by peer",
    }]);
    let err = run(exec.as_ref(), &policy).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Transient);
    assert!(err.message.contains("Connection reset"));

    // The instance lock held by an earlier script: retried, and the hint says why.
    let exec = FakeExec::with(vec![Reply::Finished {
        exit_code: 75,
        outputs: vec![],
        tail: "another cutover script is running on this instance",
    }]);
    let err = run(exec.as_ref(), &policy).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Transient);
    assert!(err
        .hint
        .as_deref()
        .unwrap_or_default()
        .contains("still running"));
}

#[tokio::test(start_paused = true)]
async fn past_the_deadline_the_command_is_cancelled_and_the_outcome_unknown() {
    let exec = FakeExec::with(vec![Reply::Running]);
    let policy = PollPolicy {
        grace: Duration::from_secs(30),
        ..PollPolicy::default()
    };
    let started = tokio::time::Instant::now();
    let err = run_script(
        exec.as_ref(),
        &InstanceId::new("i-1"),
        &script(Duration::from_secs(120)),
        &policy,
    )
    .await
    .unwrap_err();
    assert_eq!(err.class, ErrorClass::Inconclusive);
    assert!(
        err.message.contains("did not report within"),
        "{}",
        err.message
    );
    assert!(started.elapsed() <= Duration::from_secs(150));
    assert_eq!(exec.cancels(), 1);
}

/// A Community dump backup whose stored object is `stored` while the script reported
/// `reported`.
async fn community_backup(
    reported: &[u8],
    stored: Option<&[u8]>,
) -> (Result<BackupArtifact, Failure>, Arc<FakeExec>) {
    let key = ObjectKey::new("backups/prod/run-1/ledger/ledger.backup");
    let store = MemoryStore::default();
    if let Some(bytes) = stored {
        store.put(key.as_str(), bytes.to_vec());
    }
    let uri = store.location(&key);
    let exec = FakeExec::with(vec![Reply::Running, ok(dump_outputs(reported, &uri))]);
    let bolt = StandInBolt::new("5.26.3", Edition::Community);
    let e = engine(&exec, &bolt, settings(Edition::Community));
    let result = e.backup(&handle(), &store, &key).await;
    // A backup returned means the object now records the SHA-256 it reports.
    if let Ok(artifact) = &result {
        let head = store.head(&key).await.unwrap().unwrap();
        assert_eq!(head.sha256, artifact.object.sha256, "the recorded SHA-256");
    }
    (result, exec)
}

#[tokio::test(start_paused = true)]
async fn a_backup_is_returned_only_when_the_stored_object_matches_the_script() {
    let bytes = b"a neo4j dump".repeat(1000);
    let (artifact, exec) = community_backup(&bytes, Some(&bytes)).await;
    let artifact = artifact.unwrap();
    assert_eq!(
        artifact.object.sha256.as_deref(),
        Some(sha(&bytes).as_str())
    );
    assert_eq!(artifact.object.size, bytes.len() as u64);
    assert_eq!(artifact.engine, EngineKind::Neo4j);
    assert_eq!(artifact.engine_version, "5.26.3");
    assert_eq!(artifact.format, "dump");
    let started = exec.started();
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].name, "neo4j-dump");
    assert_eq!(
        started[0].env["CUTOVER_STOP_DBMS"], "true",
        "Community dumps with the DBMS stopped"
    );
    assert_eq!(
        started[0].env["CUTOVER_ARTIFACT_URI"],
        "s3://test-bucket/backups/prod/run-1/ledger/ledger.backup"
    );
}

#[tokio::test(start_paused = true)]
async fn a_tampered_truncated_or_missing_upload_is_detected() {
    let bytes = b"a neo4j dump".repeat(1000);
    let mut tampered = bytes.clone();
    tampered[100] ^= 0xff;
    let (r, _) = community_backup(&bytes, Some(&tampered)).await;
    let err = r.unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(err.message.contains("checksum mismatch"), "{}", err.message);

    let (r, _) = community_backup(&bytes, Some(&bytes[..bytes.len() - 1])).await;
    let err = r.unwrap_err();
    assert!(err.message.contains("size mismatch"), "{}", err.message);

    let (r, _) = community_backup(&bytes, None).await;
    let err = r.unwrap_err();
    assert!(err.message.contains("does not exist"), "{}", err.message);
}

fn artifact(version: &str, sha256: Option<String>, format: &str) -> BackupArtifact {
    BackupArtifact {
        object: ObjectInfo {
            key: ObjectKey::new("backups/prod/run-1/ledger/ledger.backup"),
            size: 10,
            sha256,
            last_modified: None,
        },
        engine: EngineKind::Neo4j,
        engine_version: version.into(),
        format: format.into(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_restore_into_an_older_neo4j_is_refused_before_any_script_is_sent() {
    let exec = FakeExec::with(vec![ok(vec![])]);
    let bolt = StandInBolt::new("5.21.0", Edition::Community);
    let e = engine(&exec, &bolt, settings(Edition::Community));
    let store = MemoryStore::default();
    let err = e
        .restore(
            &handle(),
            &store,
            &artifact("5.22.0", Some("a".repeat(64)), "dump"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(
        err.message.contains("same or a newer version"),
        "{}",
        err.message
    );
    // No SHA-256, an online backup onto Community, an unknown format: all refused early.
    for bad in [
        artifact("5.21.0", None, "dump"),
        artifact("5.21.0", Some("a".repeat(64)), "online-full"),
        artifact("5.21.0", Some("a".repeat(64)), "zip"),
    ] {
        assert!(e.restore(&handle(), &store, &bad).await.is_err());
    }
    assert!(exec.started().is_empty(), "no exec call may happen");
    assert!(bolt.statements().is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_enterprise_restore_stops_loads_creates_and_starts_the_database() {
    let sha256 = "b".repeat(64);
    let exec = FakeExec::with(vec![ok(vec![
        ("sha256", sha256.clone()),
        ("consistent", "true".into()),
        ("loaded", "true".into()),
    ])]);
    let bolt = StandInBolt::new("5.26.3", Edition::Enterprise);
    let e = engine(&exec, &bolt, settings(Edition::Enterprise));
    e.restore(
        &handle(),
        &MemoryStore::default(),
        &artifact("5.26.0", Some(sha256.clone()), "dump"),
    )
    .await
    .unwrap();
    let s = &exec.started()[0];
    assert_eq!(s.name, "neo4j-load");
    assert_eq!(s.env["CUTOVER_EXPECTED_SHA256"], sha256);
    assert!(!s.env.contains_key("CUTOVER_STOP_DBMS"));
    assert_eq!(
        bolt.statements(),
        [
            "STOP DATABASE `neo4j` WAIT 120 SECONDS",
            "CREATE DATABASE `neo4j` IF NOT EXISTS WAIT 120 SECONDS",
            "START DATABASE `neo4j` WAIT 120 SECONDS",
        ]
    );

    // A script that exits 0 without reporting the verified load is not believed.
    let exec = FakeExec::with(vec![ok(vec![])]);
    let e = engine(&exec, &bolt, settings(Edition::Enterprise));
    let err = e
        .restore(
            &handle(),
            &MemoryStore::default(),
            &artifact("5.26.0", Some(sha256), "dump"),
        )
        .await
        .unwrap_err();
    assert!(
        err.message.contains("did not report a verified load"),
        "{}",
        err.message
    );
}

#[tokio::test(start_paused = true)]
async fn an_enterprise_dump_starts_the_database_again_when_the_script_fails() {
    let exec = FakeExec::with(vec![Reply::Finished {
        exit_code: 1,
        outputs: vec![],
        tail: "neo4j-admin: database is in use",
    }]);
    let bolt = StandInBolt::new("5.26.3", Edition::Enterprise);
    let mut s = settings(Edition::Enterprise);
    s.backup = BackupMethod::Dump;
    let e = engine(&exec, &bolt, s);
    let err = e
        .backup(
            &handle(),
            &MemoryStore::default(),
            &ObjectKey::new("b/k.backup"),
        )
        .await
        .unwrap_err();
    assert!(
        err.message.contains("database is in use"),
        "{}",
        err.message
    );
    assert_eq!(
        bolt.statements(),
        [
            "STOP DATABASE `neo4j` WAIT 120 SECONDS",
            "START DATABASE `neo4j` WAIT 120 SECONDS"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn enterprise_freezes_with_alter_database_and_is_idempotent() {
    let exec = FakeExec::with(vec![ok(vec![])]);
    let bolt = StandInBolt::new("5.26.3", Edition::Enterprise);
    let e = engine(&exec, &bolt, settings(Edition::Enterprise));
    let db = handle();
    e.freeze(&db).await.unwrap();
    e.freeze(&db).await.unwrap();
    assert!(e.is_frozen(&db).await.unwrap());
    e.unfreeze(&db).await.unwrap();
    assert!(!e.is_frozen(&db).await.unwrap());
    assert_eq!(
        bolt.statements(),
        [
            "ALTER DATABASE `neo4j` SET ACCESS READ ONLY WAIT 120 SECONDS",
            "ALTER DATABASE `neo4j` SET ACCESS READ ONLY WAIT 120 SECONDS",
            "ALTER DATABASE `neo4j` SET ACCESS READ WRITE WAIT 120 SECONDS",
        ]
    );
    assert!(exec.started().is_empty());
}

#[tokio::test(start_paused = true)]
async fn community_freeze_runs_the_script_only_when_not_frozen_and_unfreeze_always() {
    let exec = FakeExec::with(vec![ok(vec![
        ("frozen", "true".into()),
        ("restarted", "true".into()),
    ])]);
    let bolt = StandInBolt::new("5.26.3", Edition::Community);
    let e = engine(&exec, &bolt, settings(Edition::Community));
    let db = handle();
    e.freeze(&db).await.unwrap();
    assert_eq!(exec.started()[0].env["CUTOVER_FREEZE"], "true");
    *bolt.read_only_setting.lock().unwrap() = Some("neo4j".into());
    assert!(e.is_frozen(&db).await.unwrap());
    e.freeze(&db).await.unwrap();
    assert_eq!(exec.started().len(), 1, "already frozen: no restart");
    e.unfreeze(&db).await.unwrap();
    assert_eq!(exec.started()[1].env["CUTOVER_FREEZE"], "false");
}

#[tokio::test(start_paused = true)]
async fn the_edition_must_match_the_environment() {
    let exec = FakeExec::with(vec![ok(vec![])]);
    let bolt = StandInBolt::new("5.26.3", Edition::Community);
    let e = engine(&exec, &bolt, settings(Edition::Enterprise));
    let err = e.version(&handle()).await.unwrap_err();
    assert!(
        err.message.contains("edition = \"enterprise\""),
        "{}",
        err.message
    );
}

#[tokio::test(start_paused = true)]
async fn user_passwords_go_as_parameters_and_the_administrator_is_not_changed() {
    let exec = FakeExec::with(vec![ok(vec![])]);
    let bolt = StandInBolt::new("5.26.3", Edition::Enterprise);
    let e = engine(&exec, &bolt, settings(Edition::Enterprise));
    let db = handle();
    let pw = SecretString::from(APP_PASSWORD.to_owned());
    e.set_user_password(&db, "cutover_app", &pw).await.unwrap();
    assert_eq!(
        bolt.statements(),
        [
            "CREATE USER `cutover_app` IF NOT EXISTS SET PASSWORD $password CHANGE NOT REQUIRED",
            "ALTER USER `cutover_app` SET PASSWORD $password CHANGE NOT REQUIRED",
            "GRANT ROLE `publisher` TO `cutover_app`",
        ]
    );
    let err = e.set_user_password(&db, "neo4j", &pw).await.unwrap_err();
    assert!(err.message.contains("lock cutover out"), "{}", err.message);
    e.set_user_password(&db, "neo4j", &SecretString::from(ADMIN_PASSWORD.to_owned()))
        .await
        .unwrap();
    assert_eq!(bolt.statements().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn no_secret_appears_in_any_script_or_statement_text() {
    let bytes = b"dump".repeat(100);
    let key = ObjectKey::new("backups/k/ledger.backup");
    let store = Arc::new(MemoryStore::default());
    store.put(key.as_str(), bytes.clone());
    let uri = store.location(&key);
    let mut outputs = dump_outputs(&bytes, &uri);
    outputs.extend([
        ("consistent", "true".to_owned()),
        ("loaded", "true".to_owned()),
        ("password_set", "true".to_owned()),
        ("restarted", "true".to_owned()),
    ]);
    let exec = FakeExec::with(vec![ok(outputs)]);
    let bolt = StandInBolt::new("5.26.3", Edition::Community);
    let e = engine(&exec, &bolt, settings(Edition::Community));
    let db = handle();
    let pw = SecretString::from(APP_PASSWORD.to_owned());
    e.freeze(&db).await.unwrap();
    let a = e.backup(&db, store.as_ref(), &key).await.unwrap();
    e.restore(&db, store.as_ref(), &a).await.unwrap();
    e.set_user_password(&db, "cutover_app", &pw).await.unwrap();
    e.prepare_instance(&db.instance, &SecretName::new("prod/ledger/admin"))
        .await
        .unwrap();
    e.unfreeze(&db).await.unwrap();
    let started = exec.started();
    assert_eq!(started.len(), 5);
    for s in &started {
        let text = format!("{}\n{:?}", s.body, s.env);
        for secret in [ADMIN_PASSWORD, APP_PASSWORD] {
            assert!(!text.contains(secret), "{} carries a password", s.name);
        }
    }
    let initial = started
        .iter()
        .find(|s| s.name == "neo4j-set-initial-password")
        .unwrap();
    assert_eq!(initial.env["NEO4J_SECRET_ID"], "prod/ledger/admin");
    for text in bolt.statements() {
        assert!(!text.contains(APP_PASSWORD) && !text.contains(ADMIN_PASSWORD));
    }
}

#[test]
fn the_bolt_target_never_falls_back_to_a_reachable_host() {
    let exec = FakeExec::with(vec![ok(vec![])]);
    let bolt = StandInBolt::new("5.26.3", Edition::Community);
    let e = engine(&exec, &bolt, settings(Edition::Community));
    let mut db = handle();
    let t = e.bolt_target(&db, "app", SecretString::from("x".to_owned()));
    assert_eq!(t.uri, "bolt://10.0.1.20:7687");
    assert_eq!(t.database.as_deref(), Some("neo4j"));
    db.instance.address = None;
    let t = e.bolt_target(&db, "app", SecretString::from("x".to_owned()));
    assert!(t.uri.ends_with(".no-address.invalid:7687"), "{}", t.uri);
}

const DUMP_KEY: &str = "backups/prod/run-1/ledger/ledger.backup";

/// A Community dump started through `exec` (polls answer `replies`), and its engine.
async fn started_dump(
    store: &MemoryStore,
    replies: Vec<Reply>,
) -> (Neo4jEngine, Arc<FakeExec>, DbOperation) {
    let exec = FakeExec::with(replies);
    let bolt = StandInBolt::new("5.26.3", Edition::Community);
    let e = engine(&exec, &bolt, settings(Edition::Community));
    let op = e
        .start_backup(&handle(), store, &ObjectKey::new(DUMP_KEY), "attempt-1")
        .await
        .unwrap();
    (e, exec, op)
}

/// The script's report of a dump of `bytes`, which the store then holds.
fn stored_dump(store: &MemoryStore, bytes: &[u8]) -> Reply {
    store.put(DUMP_KEY, bytes.to_vec());
    ok(dump_outputs(
        bytes,
        &store.location(&ObjectKey::new(DUMP_KEY)),
    ))
}

#[tokio::test(start_paused = true)]
async fn a_started_backup_reports_running_per_poll_and_finishes_on_a_later_poll() {
    let bytes = b"a neo4j dump".repeat(100);
    let store = MemoryStore::default();
    let finished = stored_dump(&store, &bytes);
    let (e, exec, mut op) =
        started_dump(&store, vec![Reply::Running, Reply::Running, finished]).await;
    assert_eq!(exec.started().len(), 1, "start sends the command once");
    assert_eq!(op.command.as_ref().unwrap().id, "cmd-1");
    for _ in 0..2 {
        match e.poll_backup(&handle(), &store, &mut op).await {
            OpPoll::Running { what, .. } => assert!(what.contains("cmd-1"), "{what}"),
            other => panic!("expected Running, got {other:?}"),
        }
    }
    match e.poll_backup(&handle(), &store, &mut op).await {
        OpPoll::Done(artifact) => {
            assert_eq!(
                artifact.object.sha256.as_deref(),
                Some(sha(&bytes).as_str())
            )
        }
        other => panic!("expected Done, got {other:?}"),
    }
    assert_eq!(exec.started().len(), 1, "polls never send a command");
}

/// A step journals the operation again only when a poll changed it; a healthy poll of a
/// running command must not, or a dump of an hour writes a checkpoint every few seconds.
#[tokio::test(start_paused = true)]
async fn a_poll_that_finds_the_command_still_running_leaves_the_operation_unchanged() {
    let store = MemoryStore::default();
    let (e, _exec, mut op) = started_dump(&store, vec![Reply::Running]).await;
    let journaled = serde_json::to_value(&op).unwrap();
    for _ in 0..5 {
        assert!(matches!(
            e.poll_backup(&handle(), &store, &mut op).await,
            OpPoll::Running { .. }
        ));
        assert_eq!(serde_json::to_value(&op).unwrap(), journaled);
    }
}

#[tokio::test(start_paused = true)]
async fn a_journaled_handle_is_polled_by_another_process_without_a_second_command() {
    let bytes = b"a neo4j dump".repeat(100);
    let store = MemoryStore::default();
    let finished = stored_dump(&store, &bytes);
    let (first, exec, mut op) = started_dump(&store, vec![Reply::Running, finished]).await;
    assert!(matches!(
        first.poll_backup(&handle(), &store, &mut op).await,
        OpPoll::Running { .. }
    ));
    // The crash: only the journaled JSON survives; a new engine adopts it.
    let journaled = serde_json::to_string(&op).unwrap();
    drop(first);
    let mut adopted: DbOperation = serde_json::from_str(&journaled).unwrap();
    let bolt = StandInBolt::new("5.26.3", Edition::Community);
    let second = engine(&exec, &bolt, settings(Edition::Community));
    match second.poll_backup(&handle(), &store, &mut adopted).await {
        OpPoll::Done(artifact) => assert_eq!(artifact.object.size, bytes.len() as u64),
        other => panic!("expected Done, got {other:?}"),
    }
    assert_eq!(
        exec.started().len(),
        1,
        "the adopted command is not sent again"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_command_ends_the_operation_with_its_class() {
    let refused = Reply::Finished {
        exit_code: 3,
        outputs: vec![],
        tail: "checksum mismatch",
    };
    let crashed = Reply::Finished {
        exit_code: 1,
        outputs: vec![],
        tail: "neo4j-admin: disk full",
    };
    for (reply, class) in [
        (refused, ErrorClass::Permanent),
        (crashed, ErrorClass::Transient),
        (Reply::Inconclusive, ErrorClass::Inconclusive),
    ] {
        let store = MemoryStore::default();
        let (e, exec, mut op) = started_dump(&store, vec![reply]).await;
        let mut status = e.poll_backup(&handle(), &store, &mut op).await;
        for _ in 0..10 {
            if !matches!(status, OpPoll::Running { .. }) {
                break;
            }
            status = e.poll_backup(&handle(), &store, &mut op).await;
        }
        match status {
            OpPoll::Failed(f) => {
                assert_eq!(f.class, class, "{}", f.message);
                assert!(f.message.contains("neo4j-dump"), "{}", f.message);
            }
            other => panic!("expected Failed, got {other:?}"),
        }
        if class == ErrorClass::Inconclusive {
            assert_eq!(exec.cancels(), 1, "an unknown outcome cancels the command");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_command_past_its_journaled_deadline_is_cancelled_by_whoever_polls() {
    let store = MemoryStore::default();
    let (e, exec, mut op) = started_dump(&store, vec![Reply::Running]).await;
    // As if the command was sent a day ago by a process that crashed.
    let day_ago = chrono::Utc::now().timestamp_millis() - 86_400_000;
    op.state["script"]["started_at_ms"] = day_ago.into();
    match e.poll_backup(&handle(), &store, &mut op).await {
        OpPoll::Failed(f) => {
            assert_eq!(f.class, ErrorClass::Inconclusive, "{}", f.message);
            assert!(f.message.contains("did not report within"), "{}", f.message);
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(exec.cancels(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_community_freeze_is_started_and_polled_until_the_restarted_server_serves() {
    let exec = FakeExec::with(vec![
        Reply::Running,
        ok(vec![("restarted", "true".to_owned())]),
    ]);
    let bolt = StandInBolt::new("5.26.3", Edition::Community);
    let e = engine(&exec, &bolt, settings(Edition::Community));
    let mut op = e.start_set_frozen(&handle(), true).await.unwrap();
    assert_eq!(exec.started().len(), 1);
    assert_eq!(exec.started()[0].name, "neo4j-freeze");
    assert!(
        op.command.is_some(),
        "the restart runs as a command: {op:?}"
    );
    assert!(matches!(
        e.poll_set_frozen(&handle(), &mut op).await,
        OpPoll::Running { .. }
    ));
    assert_eq!(
        e.poll_set_frozen(&handle(), &mut op).await,
        OpPoll::Done(())
    );
    assert_eq!(exec.started().len(), 1, "polls never send a command");
}

#[tokio::test(start_paused = true)]
async fn preparing_an_instance_is_started_once_and_polled_from_its_journaled_operation() {
    let exec = FakeExec::with(vec![
        Reply::Running,
        ok(vec![("password_set", "true".to_owned())]),
    ]);
    let bolt = StandInBolt::new("5.26.3", Edition::Community);
    let e = engine(&exec, &bolt, settings(Edition::Community));
    let db = handle();
    let secret = SecretName::new("prod/ledger/admin");
    let op = e
        .start_prepare_instance(&db.instance, &secret)
        .await
        .unwrap();
    assert_eq!(
        exec.started().len(),
        1,
        "start sends the script and returns"
    );
    // What a step journals, read back as a resumed run would.
    let mut op: DbOperation = serde_json::from_value(serde_json::to_value(&op).unwrap()).unwrap();
    assert!(matches!(
        e.poll_prepare_instance(&mut op).await,
        OpPoll::Running { .. }
    ));
    assert_eq!(e.poll_prepare_instance(&mut op).await, OpPoll::Done(()));
    assert_eq!(exec.started().len(), 1, "polling never sends it again");
    assert_eq!(
        exec.started()[0].env["NEO4J_SECRET_ID"],
        "prod/ledger/admin"
    );

    // A script that ends without saying it set the password is a failure, not success.
    let silent = FakeExec::with(vec![ok(vec![])]);
    let e = engine(&silent, &bolt, settings(Edition::Community));
    let mut op = e
        .start_prepare_instance(&db.instance, &secret)
        .await
        .unwrap();
    let OpPoll::Failed(f) = e.poll_prepare_instance(&mut op).await else {
        panic!("a silent script passed");
    };
    assert!(f.message.contains("password_set"), "{f}");
}
