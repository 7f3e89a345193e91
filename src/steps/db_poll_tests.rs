//! `db.backup` as a checkpointed state machine, against a fake engine whose command runs
//! for a given number of polls: it returns `Wait` while the command runs, journals the
//! command's handle, and a step rebuilt from the journal after a crash polls the recorded
//! handle instead of starting a second command. No Bolt server listens here, so the
//! backups start from a journal that already holds what `db.backup` reads over Bolt
//! before its dump ([`Journal::with_evidence`]); without it, the step fails before any
//! command starts. Paused tokio time: retries back off for free. `traffic.verify` is
//! tested against the same fakes (it opens the database as `db.backup` does).

use super::context::{Services, StepContext, StepRecorder};
use super::db_access::test_engine;
use super::{Decision, Step};
use crate::db::bolt::BoltTarget;
use crate::db::{BackupArtifact, DatabaseEngine, DbHandle, DbOperation, EngineKind, OpPoll};
use crate::failure::{ErrorClass, Failure};
use crate::ids::{InstanceId, ObjectKey, RunId, StepId};
use crate::providers::local::object_store::LocalObjectStore;
use crate::providers::local::root_secret_name;
use crate::providers::local::secret_store::LocalSecretStore;
use crate::providers::{
    Compute, ExecHandle, Instance, InstanceState, ObjectInfo, ObjectStore, ProviderSet,
    ProvisionRequest, Readiness, SecretStore, Tags,
};
use async_trait::async_trait;
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the fake's command ends.
#[derive(Clone, Copy)]
enum Outcome {
    Succeeds,
    Fails(ErrorClass),
}

/// The 12-byte Neo4j dump at `key` the fake engine reports.
fn dump_artifact(key: ObjectKey) -> BackupArtifact {
    BackupArtifact {
        object: ObjectInfo {
            key,
            size: 12,
            sha256: Some("ab".repeat(32)),
            last_modified: None,
        },
        engine: EngineKind::Neo4j,
        engine_version: "5.26.3".into(),
        format: "dump".into(),
    }
}

/// A database engine whose backup command runs for `running_polls` polls; its restore
/// ends at the first poll, and checks the artifact itself when `verifies_where_it_loads`.
struct FakeEngine {
    running_polls: u32,
    outcome: Outcome,
    starts: AtomicU32,
    polls: AtomicU32,
    verifies_where_it_loads: bool,
    restores: AtomicU32,
    /// The attempt name of every start, backup or restore, in order.
    attempts: std::sync::Mutex<Vec<String>>,
    /// This many backup starts fail first, as transient (a server that does not answer).
    start_failures: AtomicU32,
    /// A freeze or unfreeze runs for this many polls (a Community server's restart).
    freeze_polls: u32,
    /// Freezes and unfreezes started, and their polls.
    freeze_starts: AtomicU32,
    freeze_poll_count: AtomicU32,
}

impl FakeEngine {
    fn new(running_polls: u32, outcome: Outcome) -> Arc<Self> {
        Arc::new(Self {
            running_polls,
            outcome,
            starts: AtomicU32::new(0),
            polls: AtomicU32::new(0),
            verifies_where_it_loads: false,
            restores: AtomicU32::new(0),
            attempts: Default::default(),
            start_failures: AtomicU32::new(0),
            freeze_polls: 0,
            freeze_starts: AtomicU32::new(0),
            freeze_poll_count: AtomicU32::new(0),
        })
    }

    fn freezing_for(polls: u32) -> Arc<Self> {
        Arc::new(Self {
            freeze_polls: polls,
            ..Arc::into_inner(Self::new(0, Outcome::Succeeds)).unwrap()
        })
    }

    fn restoring(verifies_where_it_loads: bool) -> Arc<Self> {
        Arc::new(Self {
            verifies_where_it_loads,
            ..Arc::into_inner(Self::new(0, Outcome::Succeeds)).unwrap()
        })
    }
}

#[async_trait]
impl DatabaseEngine for FakeEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Neo4j
    }
    fn verifies_artifact_where_it_loads(&self) -> bool {
        self.verifies_where_it_loads
    }
    async fn version(&self, _db: &DbHandle) -> Result<String, Failure> {
        Ok("5.26.3".into())
    }
    async fn health(&self, _db: &DbHandle) -> Result<(), Failure> {
        Ok(())
    }
    async fn freeze(&self, _db: &DbHandle) -> Result<(), Failure> {
        Ok(())
    }
    async fn unfreeze(&self, _db: &DbHandle) -> Result<(), Failure> {
        Ok(())
    }
    async fn is_frozen(&self, _db: &DbHandle) -> Result<bool, Failure> {
        Ok(true)
    }
    async fn start_set_frozen(&self, db: &DbHandle, frozen: bool) -> Result<DbOperation, Failure> {
        let n = self.freeze_starts.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(DbOperation {
            operation: if frozen {
                "fake-freeze"
            } else {
                "fake-unfreeze"
            }
            .into(),
            command: Some(ExecHandle {
                id: format!("freeze-{n}"),
                instance: db.instance.id.clone(),
                nonce: format!("nonce-{n}"),
            }),
            state: serde_json::Value::Null,
        })
    }
    async fn poll_set_frozen(&self, _db: &DbHandle, _op: &mut DbOperation) -> OpPoll<()> {
        let n = self.freeze_poll_count.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= self.freeze_polls {
            return OpPoll::Running {
                after: Duration::from_secs(5),
                what: format!("server restarting (poll {n})"),
            };
        }
        OpPoll::Done(())
    }
    async fn start_backup(
        &self,
        db: &DbHandle,
        _objects: &dyn ObjectStore,
        key: &ObjectKey,
        attempt: &str,
    ) -> Result<DbOperation, Failure> {
        self.attempts.lock().unwrap().push(attempt.to_owned());
        if self
            .start_failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(Failure::transient(
                "bolt://blue: server unavailable: Connection refused",
            ));
        }
        let n = self.starts.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(DbOperation {
            operation: "fake-backup".into(),
            command: Some(ExecHandle {
                id: format!("cmd-{n}"),
                instance: db.instance.id.clone(),
                nonce: format!("nonce-{n}"),
            }),
            state: serde_json::json!({ "key": key }),
        })
    }
    async fn poll_backup(
        &self,
        _db: &DbHandle,
        _objects: &dyn ObjectStore,
        op: &mut DbOperation,
    ) -> OpPoll<BackupArtifact> {
        let n = self.polls.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= self.running_polls {
            return OpPoll::Running {
                after: Duration::from_secs(5),
                what: format!("dump running (poll {n})"),
            };
        }
        match self.outcome {
            Outcome::Succeeds => OpPoll::Done(dump_artifact(
                serde_json::from_value(op.state["key"].clone()).unwrap(),
            )),
            Outcome::Fails(class) => OpPoll::Failed(Failure {
                class,
                ..Failure::permanent("script neo4j-dump exited with code 3")
            }),
        }
    }
    async fn start_restore(
        &self,
        _db: &DbHandle,
        _objects: &dyn ObjectStore,
        _artifact: &BackupArtifact,
        attempt: &str,
    ) -> Result<DbOperation, Failure> {
        self.attempts.lock().unwrap().push(attempt.to_owned());
        self.restores.fetch_add(1, Ordering::SeqCst);
        Ok(DbOperation {
            operation: "fake-restore".into(),
            command: None,
            state: serde_json::Value::Null,
        })
    }
    async fn poll_restore(
        &self,
        _db: &DbHandle,
        _objects: &dyn ObjectStore,
        _artifact: &BackupArtifact,
        _op: &mut DbOperation,
    ) -> OpPoll<()> {
        OpPoll::Done(())
    }
    async fn set_user_password(
        &self,
        _db: &DbHandle,
        _user: &str,
        _password: &SecretString,
    ) -> Result<(), Failure> {
        Ok(())
    }
    fn bolt_target(&self, _db: &DbHandle, user: &str, password: SecretString) -> BoltTarget {
        // Port 1 on loopback: nothing listens, so a fingerprint fails fast.
        BoltTarget {
            uri: "bolt://127.0.0.1:1".into(),
            user: user.to_owned(),
            password,
            database: Some("neo4j".into()),
        }
    }
}

/// An instance that exists.
struct OneInstance;

#[async_trait]
impl Compute for OneInstance {
    async fn provision(&self, _r: &ProvisionRequest) -> Result<Instance, Failure> {
        Err(Failure::permanent("not used here"))
    }
    async fn describe(&self, id: &InstanceId) -> Result<Option<Instance>, Failure> {
        Ok(Some(Instance {
            id: id.clone(),
            state: InstanceState::Running,
            tags: Tags::new(),
            address: Some("127.0.0.1".into()),
            endpoints: BTreeMap::new(),
            image: None,
        }))
    }
    async fn readiness(&self, _id: &InstanceId) -> Result<Readiness, Failure> {
        Ok(Readiness::Ready)
    }
    async fn stop(&self, _id: &InstanceId) -> Result<(), Failure> {
        Ok(())
    }
    async fn terminate(&self, _id: &InstanceId) -> Result<(), Failure> {
        Ok(())
    }
    async fn find_by_tags(&self, _tags: &Tags) -> Result<Vec<Instance>, Failure> {
        Ok(Vec::new())
    }
}

/// The journal, as far as a step writes it: intents and checkpoints, in order.
#[derive(Default)]
struct Journal {
    intents: Mutex<Vec<String>>,
    checkpoints: Mutex<Vec<serde_json::Value>>,
}

impl StepRecorder for Journal {
    fn intent(
        &self,
        _: &StepId,
        action: &str,
        _: &str,
        _: serde_json::Value,
    ) -> Result<(), Failure> {
        self.intents.lock().unwrap().push(action.to_owned());
        Ok(())
    }
    fn checkpoint(&self, _: &StepId, state: serde_json::Value) -> Result<(), Failure> {
        self.checkpoints.lock().unwrap().push(state);
        Ok(())
    }
}

impl Journal {
    fn last_checkpoint(&self) -> Option<serde_json::Value> {
        self.checkpoints.lock().unwrap().last().cloned()
    }

    /// A journal whose backup step has read blue over Bolt (its first phase) and
    /// journaled it: fingerprint `fp-blue`, no invariants, no answers.
    fn with_evidence() -> Arc<Journal> {
        let journal = Journal::default();
        let fingerprint = crate::integrity::fingerprint::Fingerprint::for_tests(
            "fp-blue".into(),
            BTreeMap::new(),
            BTreeMap::new(),
        );
        journal.checkpoints.lock().unwrap().push(serde_json::json!({
            "evidence": { "fingerprint": fingerprint, "invariants": [], "answers": [] }
        }));
        Arc::new(journal)
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    services: Arc<Services>,
}

const ENV: &str = "name = \"unit\"\nprovider = \"local\"\nstate_dir = \"state\"\n\
[databases.ledger]\nengine = \"arcadedb\"\nedition = \"community\"\nversion = \"26.10\"\n";

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let secrets = LocalSecretStore::new(dir.path().join("secrets"));
    let name = root_secret_name(&InstanceId::new("blue"));
    let v = secrets
        .put_pending(&name, &SecretString::from("root-pass".to_owned()), "t1")
        .await
        .unwrap();
    secrets.promote(&name, &v).await.unwrap();
    let secrets = Arc::new(secrets);
    let providers = ProviderSet {
        compute: Arc::new(OneInstance),
        objects: Arc::new(LocalObjectStore::new(dir.path().join("objects"))),
        secrets: secrets.clone(),
        exec: None,
        app: None,
        traffic: Arc::new(crate::providers::traffic::SecretJsonTarget::new(
            secrets,
            crate::ids::SecretName::new("unit/app-connection"),
        )),
    };
    let services = Services::for_tests(dir.path(), ENV, providers);
    Fixture {
        _dir: dir,
        services,
    }
}

impl Fixture {
    /// The step's context as the executor builds it: in a resumed run, with the last
    /// journaled checkpoint.
    fn ctx(&self, journal: &Arc<Journal>, attempt: u32) -> StepContext {
        let serde_json::Value::Object(inputs) =
            serde_json::json!({ "database": "ledger", "instance": "blue" })
        else {
            unreachable!()
        };
        StepContext::new(
            RunId::new("run-1"),
            StepId::new("backup"),
            attempt,
            inputs,
            self.services.clone(),
            journal.clone(),
            journal.last_checkpoint(),
        )
    }
}

fn backup_step() -> Box<dyn Step> {
    (crate::steps::find_kind("db.backup").unwrap().build)()
}

#[tokio::test(start_paused = true)]
async fn a_backup_waits_while_its_command_runs_and_moves_on_when_it_ends() {
    let f = fixture().await;
    let engine = FakeEngine::new(2, Outcome::Succeeds);
    test_engine::set(engine.clone());
    let journal = Journal::with_evidence();
    let ctx = f.ctx(&journal, 1);
    let mut step = backup_step();
    for poll in 1..=2 {
        match step.advance(&ctx).await {
            Decision::Wait { after, reason } => {
                assert_eq!(after, Duration::from_secs(5));
                assert!(reason.contains(&format!("poll {poll}")), "{reason}");
            }
            other => panic!("expected Wait, got {other:?}"),
        }
    }
    assert_eq!(engine.starts.load(Ordering::SeqCst), 1);
    assert_eq!(
        *journal.intents.lock().unwrap(),
        vec!["db.backup".to_owned()]
    );
    // The third advance sees the command end: the artifact is journaled and the manifest
    // written with what was read before the dump; no Bolt read follows it.
    let decision = step.advance(&ctx).await;
    let cp = journal.last_checkpoint().unwrap();
    assert_eq!(cp["artifact"]["format"], "dump", "{cp}");
    assert!(
        cp["operation"].is_null(),
        "the spent handle is cleared: {cp}"
    );
    match decision {
        Decision::Done(out) => assert_eq!(out["fingerprint"], "fp-blue", "{out:?}"),
        other => panic!("expected the manifest, got {other:?}"),
    }
    let objects = f.services.providers.as_ref().unwrap().objects.clone();
    let manifest: super::db::Manifest = serde_json::from_slice(
        &objects
            .get_bytes(&ObjectKey::new("backups/unit/run-1/ledger/manifest.json"))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(manifest.fingerprint.content, "fp-blue");
    assert_eq!(engine.starts.load(Ordering::SeqCst), 1);
}

/// What the manifest holds is read over Bolt before the dump (a Community dump stops the
/// server; read after it, the step would wait for its restart): with no server to read,
/// the step fails before any command is sent.
#[tokio::test(start_paused = true)]
async fn a_backup_reads_the_database_before_its_dump_stops_the_server() {
    let f = fixture().await;
    let engine = FakeEngine::new(0, Outcome::Succeeds);
    test_engine::set(engine.clone());
    let journal = Arc::new(Journal::default());
    match backup_step().advance(&f.ctx(&journal, 1)).await {
        Decision::Fail(f) => assert!(f.message.contains("fingerprint of ledger"), "{}", f.message),
        other => panic!("expected the fingerprint to come first, got {other:?}"),
    }
    assert_eq!(engine.starts.load(Ordering::SeqCst), 0);
    assert!(journal.intents.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_step_rebuilt_from_the_journal_polls_the_recorded_command_instead_of_starting_another() {
    let f = fixture().await;
    let engine = FakeEngine::new(3, Outcome::Succeeds);
    test_engine::set(engine.clone());
    let journal = Journal::with_evidence();
    {
        let ctx = f.ctx(&journal, 1);
        let mut step = backup_step();
        assert!(matches!(step.advance(&ctx).await, Decision::Wait { .. }));
        // The process dies here, the command still running.
    }
    let cp = journal.last_checkpoint().unwrap();
    assert_eq!(cp["operation"]["command"]["id"], "cmd-1", "{cp}");
    // A new process: a new step instance and context from the journal.
    let ctx = f.ctx(&journal, 1);
    let mut step = backup_step();
    assert!(matches!(step.advance(&ctx).await, Decision::Wait { .. }));
    assert!(matches!(step.advance(&ctx).await, Decision::Wait { .. }));
    let _ = step.advance(&ctx).await;
    assert_eq!(
        engine.starts.load(Ordering::SeqCst),
        1,
        "resume adopts the command; it never sends a second one"
    );
    assert_eq!(journal.intents.lock().unwrap().len(), 1);
    assert_eq!(
        journal.last_checkpoint().unwrap()["artifact"]["format"],
        "dump"
    );
}

/// The window between sending a command and journaling its handle: the attempt's name
/// is journaled before the command is sent, so a process that died in that window is
/// followed by one that starts the same attempt (which the exec channel adopts: see
/// `SsmExec::start` and the local exec), never a new one.
#[tokio::test(start_paused = true)]
async fn a_crash_between_sending_and_journaling_the_command_starts_the_same_attempt_again() {
    let f = fixture().await;
    let engine = FakeEngine::new(3, Outcome::Succeeds);
    test_engine::set(engine.clone());
    let journal = Journal::with_evidence();
    assert!(matches!(
        backup_step().advance(&f.ctx(&journal, 1)).await,
        Decision::Wait { .. }
    ));
    // The step's first checkpoint (after the journal's evidence).
    let first = journal.checkpoints.lock().unwrap()[1].clone();
    let name = engine.attempts.lock().unwrap()[0].clone();
    assert_eq!(
        first["starting"]["attempt"],
        name.as_str(),
        "journaled before the start: {first}"
    );
    assert!(first["operation"].is_null(), "{first}");
    // The process died right after sending: its last checkpoint is that one.
    let crashed = Arc::new(Journal::default());
    crashed.checkpoints.lock().unwrap().push(first);
    assert!(matches!(
        backup_step().advance(&f.ctx(&crashed, 1)).await,
        Decision::Wait { .. }
    ));
    assert_eq!(*engine.attempts.lock().unwrap(), vec![name.clone(), name]);
    let cp = crashed.last_checkpoint().unwrap();
    assert!(
        cp["starting"].is_null() && !cp["operation"].is_null(),
        "{cp}"
    );
}

/// While an attempt that may be running is started again after a crash, a server that
/// does not answer (a Community dump stops it) is waited for, not counted as a failed
/// attempt. A start that failed in a live process is an ordinary failure, and so is its
/// retry (green's server stopped before its restore must fail the run, not hang it).
#[tokio::test(start_paused = true)]
async fn a_start_that_may_already_run_waits_for_the_server_and_a_failed_one_does_not() {
    let f = fixture().await;
    let engine = FakeEngine::new(0, Outcome::Succeeds);
    engine.start_failures.store(3, Ordering::SeqCst);
    test_engine::set(engine.clone());
    let journal = Journal::with_evidence();
    for attempt in 1..=2 {
        match backup_step().advance(&f.ctx(&journal, attempt)).await {
            Decision::Fail(f) => assert_eq!(f.class, ErrorClass::Transient, "{}", f.message),
            other => panic!("attempt {attempt} fails: {other:?}"),
        }
        let cp = journal.last_checkpoint().unwrap();
        assert_eq!(cp["starting"]["failed"], true, "{cp}");
    }
    let crashed = Arc::new(Journal::default());
    crashed
        .checkpoints
        .lock()
        .unwrap()
        .push(serde_json::json!({ "starting": { "attempt": "attempt-7" } }));
    match backup_step().advance(&f.ctx(&crashed, 1)).await {
        Decision::Wait { reason, .. } => {
            assert!(reason.contains("may still be running"), "{reason}")
        }
        other => panic!("an attempt in flight waits: {other:?}"),
    }
    // The server answers again: the same attempt starts.
    assert!(matches!(
        backup_step().advance(&f.ctx(&crashed, 1)).await,
        Decision::Wait { .. } | Decision::Fail(_)
    ));
    let attempts = engine.attempts.lock().unwrap().clone();
    assert_eq!(
        attempts[0], attempts[1],
        "a retry after a failed start keeps its name"
    );
    assert_eq!(attempts[2..], ["attempt-7", "attempt-7"]);
    assert_eq!(engine.starts.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_command_fails_the_step_with_its_class_and_a_retry_starts_afresh() {
    for class in [
        ErrorClass::Permanent,
        ErrorClass::Transient,
        ErrorClass::Inconclusive,
    ] {
        let f = fixture().await;
        let engine = FakeEngine::new(1, Outcome::Fails(class));
        test_engine::set(engine.clone());
        let journal = Journal::with_evidence();
        let ctx = f.ctx(&journal, 1);
        let mut step = backup_step();
        assert!(matches!(step.advance(&ctx).await, Decision::Wait { .. }));
        match step.advance(&ctx).await {
            Decision::Fail(f) => assert_eq!(f.class, class, "{}", f.message),
            other => panic!("expected Fail, got {other:?}"),
        }
        let cp = journal.last_checkpoint().unwrap();
        assert!(cp["operation"].is_null(), "{cp}");
        // The executor's retry: a new instance, the same checkpoint; a new command, under
        // a new attempt name.
        let retry = f.ctx(&journal, 2);
        let _ = backup_step().advance(&retry).await;
        assert_eq!(engine.starts.load(Ordering::SeqCst), 2);
        let attempts = engine.attempts.lock().unwrap().clone();
        assert_eq!(attempts.len(), 2);
        assert_ne!(attempts[0], attempts[1], "a retry is a new attempt");
    }
}

/// `traffic.verify` goes on while the application's connection secret points at the
/// listed instance (the fake engine's URL for it), and stops, naming where the
/// application is, once something else moved it.
#[tokio::test(start_paused = true)]
async fn traffic_verify_goes_on_only_while_the_application_uses_the_listed_instance() {
    let f = fixture().await;
    test_engine::set(FakeEngine::new(0, Outcome::Succeeds));
    let secrets = f.services.providers.as_ref().unwrap().secrets.clone();
    let app = crate::ids::SecretName::new("unit/app-connection");
    let journal = Arc::new(Journal::default());
    let serde_json::Value::Object(inputs) =
        serde_json::json!({ "databases": { "ledger": "blue" } })
    else {
        unreachable!()
    };
    for (n, url) in ["bolt://127.0.0.1:1", "bolt://127.0.0.1:2"]
        .iter()
        .enumerate()
    {
        let doc = serde_json::json!({ "ledgerspacebolturl": url }).to_string();
        let v = secrets
            .put_pending(&app, &SecretString::from(doc), &format!("t{n}"))
            .await
            .unwrap();
        secrets.promote(&app, &v).await.unwrap();
        let ctx = StepContext::new(
            RunId::new("run-1"),
            StepId::new("verify"),
            1,
            inputs.clone(),
            f.services.clone(),
            journal.clone(),
            None,
        );
        let mut step = (crate::steps::find_kind("traffic.verify").unwrap().build)();
        match (n, step.advance(&ctx).await) {
            (0, Decision::Done(out)) => {
                assert_eq!(out["target"], "secret unit/app-connection");
            }
            (1, Decision::Fail(f)) => {
                assert_eq!(f.class, ErrorClass::Permanent);
                assert!(
                    f.message
                        .contains("ledger uses bolt://127.0.0.1:2, not blue (bolt://127.0.0.1:1)"),
                    "{}",
                    f.message
                );
            }
            (_, other) => panic!("{url}: {other:?}"),
        }
    }
}

/// `db.restore` downloads the artifact to check its SHA-256 only on engines that do not
/// check it where it loads. The artifact here is out of the controller's reach (not in
/// its object store, only its manifest is): an engine that verifies on the instance
/// restores without the controller reading a byte of it; one that does not fails on the
/// controller's download, before anything is started.
#[tokio::test(start_paused = true)]
async fn a_restore_downloads_the_artifact_only_for_engines_that_do_not_check_it_themselves() {
    let f = fixture().await;
    let objects = f.services.providers.as_ref().unwrap().objects.clone();
    let manifest = super::db::Manifest {
        format: super::db::MANIFEST_FORMAT.into(),
        environment: "unit".into(),
        database: "ledger".into(),
        run_id: "r1".into(),
        taken_at: "2026-12-04T10:00:00Z".into(),
        frozen: true,
        artifact: dump_artifact(ObjectKey::new("backups/unit/r1/ledger/ledger.dump")),
        fingerprint: crate::integrity::fingerprint::Fingerprint::for_tests(
            "fp".into(),
            BTreeMap::new(),
            BTreeMap::new(),
        ),
        invariants: vec![],
        answers: vec![],
    };
    objects
        .put_bytes(
            &ObjectKey::new("backups/unit/r1/ledger/manifest.json"),
            serde_json::to_vec(&manifest).unwrap(),
        )
        .await
        .unwrap();
    let app = crate::ids::SecretName::new("unit/ledger/app-password");
    let secrets = f.services.providers.as_ref().unwrap().secrets.clone();
    let v = secrets
        .put_pending(&app, &SecretString::from("app-pass".to_owned()), "a1")
        .await
        .unwrap();
    secrets.promote(&app, &v).await.unwrap();
    let serde_json::Value::Object(inputs) = serde_json::json!({
        "database": "ledger",
        "instance": "blue",
        "manifest": "backups/unit/r1/ledger/manifest.json",
    }) else {
        unreachable!()
    };
    for verifies in [true, false] {
        let engine = FakeEngine::restoring(verifies);
        test_engine::set(engine.clone());
        let ctx = StepContext::new(
            RunId::new("run-1"),
            StepId::new("restore"),
            1,
            inputs.clone(),
            f.services.clone(),
            Arc::new(Journal::default()),
            None,
        );
        let mut step = (crate::steps::find_kind("db.restore").unwrap().build)();
        let decision = step.advance(&ctx).await;
        match (verifies, decision) {
            (true, Decision::Done(out)) => assert_eq!(out["sha256"], "ab".repeat(32)),
            (false, Decision::Fail(f)) => assert!(
                f.message.contains("backups/unit/r1/ledger/ledger.dump"),
                "{}",
                f.message
            ),
            (_, other) => panic!("verifies={verifies}: {other:?}"),
        }
        assert_eq!(
            engine.restores.load(Ordering::SeqCst),
            u32::from(verifies),
            "verifies={verifies}"
        );
    }
}

/// `traffic.switch`'s compensation as the executor runs it: with no outputs (the switch
/// failed after writing the target, e.g. while the application restarted), it finds the
/// receipt in the forward step's checkpoint. Green's freeze is started once and polled
/// (`Wait` while the server restarts), also by a context rebuilt from the journal after a
/// crash; then the application is switched back, once, however often it is called again.
#[tokio::test(start_paused = true)]
async fn the_switch_is_undone_from_its_checkpoint_with_greens_freeze_polled_and_sent_once() {
    use crate::providers::traffic::TrafficValues;
    let f = fixture().await;
    let engine = FakeEngine::freezing_for(2);
    test_engine::set(engine.clone());
    let providers = f.services.providers.as_ref().unwrap();
    let app = crate::ids::SecretName::new("unit/app-connection");
    let blue = serde_json::json!({ "ledgerspacebolturl": "bolt://blue:7687" }).to_string();
    let v = providers
        .secrets
        .put_pending(&app, &SecretString::from(blue), "t0")
        .await
        .unwrap();
    providers.secrets.promote(&app, &v).await.unwrap();
    let receipt = providers
        .traffic
        .switch_to(
            &TrafficValues::from_plain([("ledgerspacebolturl", "bolt://127.0.0.1:1")]),
            "run-1/switch",
        )
        .await
        .unwrap();
    let url = || async {
        let names = ["ledgerspacebolturl".to_owned()];
        let now = providers.traffic.current(&names).await.unwrap();
        now.get("ledgerspacebolturl").map(str::to_owned)
    };
    assert_eq!(url().await.as_deref(), Some("bolt://127.0.0.1:1"));
    let forward = serde_json::json!({ "receipt": receipt });
    let serde_json::Value::Object(inputs) =
        serde_json::json!({ "databases": { "ledger": "blue" } })
    else {
        unreachable!()
    };
    let journal = Arc::new(Journal::default());
    let compensation = |attempt| {
        StepContext::new(
            RunId::new("run-1"),
            StepId::new("switch"),
            attempt,
            inputs.clone(),
            f.services.clone(),
            journal.clone(),
            journal.last_checkpoint(),
        )
        .compensating(Some(forward.clone()))
    };
    let mut decisions = Vec::new();
    for attempt in 1..=4 {
        // Each call is a new process: the step and its context rebuilt from the journal.
        let mut step = (crate::steps::find_kind("traffic.switch").unwrap().build)();
        decisions.push(step.compensate(&compensation(attempt), None).await);
    }
    assert!(
        matches!(&decisions[0], Decision::Wait { reason, .. } if reason.contains("freeze of ledger on blue: server restarting (poll 1)")),
        "{:?}",
        decisions[0]
    );
    assert!(
        matches!(decisions[1], Decision::Wait { .. }),
        "{:?}",
        decisions[1]
    );
    assert!(
        matches!(decisions[2], Decision::Done(_)),
        "{:?}",
        decisions[2]
    );
    assert!(
        matches!(decisions[3], Decision::Done(_)),
        "{:?}",
        decisions[3]
    );
    assert_eq!(
        url().await.as_deref(),
        Some("bolt://blue:7687"),
        "switched back"
    );
    assert_eq!(
        engine.freeze_starts.load(Ordering::SeqCst),
        1,
        "one freeze sent"
    );
    let intents = journal.intents.lock().unwrap().clone();
    assert_eq!(intents, ["db.freeze", "traffic.switch_back"], "each once");
    let last = journal.last_checkpoint().unwrap();
    assert_eq!(last["freeze ledger"], true);
    assert_eq!(last["green_changed"], serde_json::json!([]));
    assert_eq!(last["switched_back"], true);
}
