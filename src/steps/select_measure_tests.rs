//! `backup.select` and `drill.measure` on their own, against the local object store:
//! which backup a restore or a drill gets (the latest complete one by its manifests'
//! `taken_at`, or the one named), and the RTO and RPO a drill reports.

use super::context::{Services, StepContext, StepRecorder};
use super::db::{Manifest, MANIFEST_FORMAT};
use super::{Decision, Outputs};
use crate::db::{BackupArtifact, EngineKind};
use crate::failure::{ErrorClass, Failure};
use crate::ids::{ObjectKey, RunId, StepId};
use crate::integrity::fingerprint::Fingerprint;
use crate::providers::local::LocalProvider;
use crate::providers::ObjectInfo;
use std::collections::BTreeMap;
use std::sync::Arc;

struct NoJournal;

impl StepRecorder for NoJournal {
    fn intent(&self, _: &StepId, _: &str, _: &str, _: serde_json::Value) -> Result<(), Failure> {
        Ok(())
    }
    fn checkpoint(&self, _: &StepId, _: serde_json::Value) -> Result<(), Failure> {
        Ok(())
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    services: Arc<Services>,
}

const ENV: &str = "name = \"unit\"\nprovider = \"local\"\nstate_dir = \"state\"\n\
[databases.ledger]\nengine = \"arcadedb\"\nedition = \"community\"\nversion = \"26.10\"\n\
[databases.search]\nengine = \"arcadedb\"\nedition = \"community\"\nversion = \"26.10\"\n";

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let providers = LocalProvider::open(&dir.path().join("state"))
        .provider_set(&Default::default(), "unit")
        .unwrap();
    let services = Services::for_tests(dir.path(), ENV, providers);
    Fixture {
        _dir: dir,
        services,
    }
}

impl Fixture {
    /// Writes the manifest of `database`'s backup in run `run`, taken at `taken_at`.
    async fn backup(&self, run: &str, database: &str, taken_at: &str) {
        let key = format!("backups/unit/{run}/{database}/manifest.json");
        let manifest = Manifest {
            format: MANIFEST_FORMAT.into(),
            environment: "unit".into(),
            database: database.into(),
            run_id: run.into(),
            taken_at: taken_at.into(),
            frozen: true,
            artifact: BackupArtifact {
                object: ObjectInfo {
                    key: ObjectKey::new(format!("backups/unit/{run}/{database}/{database}.zip")),
                    size: 1,
                    sha256: Some("a".repeat(64)),
                    last_modified: None,
                },
                engine: EngineKind::Arcadedb,
                engine_version: "26.10".into(),
                format: "zip".into(),
            },
            fingerprint: Fingerprint::for_tests(
                format!("{run}-{database}"),
                BTreeMap::new(),
                BTreeMap::new(),
            ),
            invariants: vec![],
            answers: vec![],
        };
        let objects = &self.services.providers.as_ref().unwrap().objects;
        objects
            .put_bytes(&ObjectKey::new(key), serde_json::to_vec(&manifest).unwrap())
            .await
            .unwrap();
    }

    async fn advance(&self, kind: &str, inputs: serde_json::Value) -> Decision {
        let serde_json::Value::Object(inputs) = inputs else {
            unreachable!()
        };
        let ctx = StepContext::new(
            RunId::new("drill-1"),
            StepId::new(kind.replace('.', "-")),
            1,
            inputs,
            self.services.clone(),
            Arc::new(NoJournal),
            None,
        );
        let mut step = (crate::steps::find_kind(kind).unwrap().build)();
        step.advance(&ctx).await
    }
}

fn done(decision: Decision) -> Outputs {
    match decision {
        Decision::Done(out) => out,
        other => panic!("expected Done, got {other:?}"),
    }
}

fn failed(decision: Decision) -> Failure {
    match decision {
        Decision::Fail(f) => f,
        other => panic!("expected Fail, got {other:?}"),
    }
}

#[tokio::test]
async fn select_takes_the_latest_backup_that_holds_every_database_or_the_one_named() {
    let f = fixture();
    let both = serde_json::json!({ "databases": ["ledger", "search"] });
    let none = failed(f.advance("backup.select", both.clone()).await);
    assert_eq!(none.class, ErrorClass::Permanent);
    assert!(
        none.message
            .contains("no backup of ledger, search found in environment unit"),
        "{}",
        none.message
    );
    assert!(none.hint.unwrap().contains("runbooks/backup.toml"));

    f.backup("r1", "ledger", "2026-12-01T10:00:00Z").await;
    f.backup("r1", "search", "2026-12-01T10:00:02Z").await;
    f.backup("r2", "ledger", "2026-12-02T10:00:01Z").await;
    f.backup("r2", "search", "2026-12-02T10:00:00Z").await;
    // The newest, but search is missing: not a point in time for both.
    f.backup("r3", "ledger", "2026-12-03T10:00:00Z").await;

    let latest = done(f.advance("backup.select", both.clone()).await);
    assert_eq!(latest["backup_run"], "r2");
    assert_eq!(
        latest["ledger_manifest"],
        "backups/unit/r2/ledger/manifest.json"
    );
    assert_eq!(latest["search_fingerprint"], "r2-search");
    // The backup's age is its oldest database's.
    assert_eq!(latest["taken_at"], "2026-12-02T10:00:00Z");

    let named = done(
        f.advance(
            "backup.select",
            serde_json::json!({ "databases": ["ledger", "search"], "backup": "r1" }),
        )
        .await,
    );
    assert_eq!(named["backup_run"], "r1");
    assert_eq!(named["ledger_fingerprint"], "r1-ledger");

    let incomplete = failed(
        f.advance(
            "backup.select",
            serde_json::json!({ "databases": ["ledger", "search"], "backup": "r3" }),
        )
        .await,
    );
    assert!(
        incomplete
            .message
            .contains("backup r3 does not hold all of ledger, search"),
        "{}",
        incomplete.message
    );
    // Only ledger: r3 is complete for it and the latest.
    let ledger = done(
        f.advance(
            "backup.select",
            serde_json::json!({ "databases": ["ledger"] }),
        )
        .await,
    );
    assert_eq!(ledger["backup_run"], "r3");
}

#[tokio::test]
async fn measure_reports_rto_from_the_drill_start_and_rpo_as_the_backups_age_then() {
    let f = fixture();
    let now = chrono::Utc::now();
    let started = now - chrono::Duration::seconds(90);
    let taken = started - chrono::Duration::seconds(3600);
    let out = done(
        f.advance(
            "drill.measure",
            serde_json::json!({
                "started_at": started.to_rfc3339(),
                "backup_taken_at": taken.to_rfc3339(),
            }),
        )
        .await,
    );
    assert_eq!(out["rpo_seconds"].as_f64(), Some(3600.0));
    let rto = out["rto_seconds"].as_f64().unwrap();
    // 90 s before this test's own `now`, read again inside the step.
    assert!((90.0..90.0 + 60.0).contains(&rto), "{rto}");

    let bad = failed(
        f.advance(
            "drill.measure",
            serde_json::json!({ "started_at": "yesterday", "backup_taken_at": taken.to_rfc3339() }),
        )
        .await,
    );
    assert_eq!(bad.class, ErrorClass::Permanent);
    assert!(
        bad.message.contains("`yesterday` is not an RFC 3339 time"),
        "{}",
        bad.message
    );
}
