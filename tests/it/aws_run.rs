//! `cutover run`, `resume`, `status` and `gc` on an `aws` environment, against the
//! harness's moto server: the lease is the S3 object every machine sees, the journal is
//! mirrored to S3 so a run killed on one machine resumes on another, and gc removes only
//! this environment's instances whose run does not own them.
//!
//! "Machines" are two workspaces with their own state directories: nothing but S3 is
//! shared between them, as between two CI runners.

use crate::aws_support::{aws_env_toml, setup};
use crate::engine_cli::{kill_9, run_args, text, Workspace};
use cutover::ids::RunId;
use cutover::providers::aws::{AwsSettings, S3JournalMirror, S3Lease, S3Store};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

/// A runbook whose first step leaves a mark on the host (so a re-run would show) and
/// whose second step takes long enough to be killed in.
fn runbook(counter: &std::path::Path, wait: &str) -> String {
    format!(
        "name = \"cloud-hello\"\n\
         [[step]]\nid = \"mark\"\nuses = \"util.shell\"\nwith = {{ run = \"echo ran >> {}\" }}\n\
         [[step]]\nid = \"hold\"\nuses = \"util.wait\"\nneeds = [\"mark\"]\nwith = {{ duration = \"{wait}\" }}\n",
        counter.display()
    )
}

/// A workspace whose `env.toml` is an aws environment on the emulator.
struct Machine {
    ws: Workspace,
    env: Vec<(&'static str, String)>,
}

impl Machine {
    fn new(runbook: &str, settings: &AwsSettings, env: Vec<(&'static str, String)>) -> Self {
        Self::with_databases(runbook, settings, env, "")
    }

    /// `databases`: TOML appended to the environment file.
    fn with_databases(
        runbook: &str,
        settings: &AwsSettings,
        env: Vec<(&'static str, String)>,
        databases: &str,
    ) -> Self {
        let ws = Workspace::new(runbook);
        std::fs::write(
            ws.path().join("env.toml"),
            aws_env_toml(settings, databases),
        )
        .unwrap();
        Self { ws, env }
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut c = self.ws.command(args);
        c.envs(self.env.iter().map(|(k, v)| (*k, v.as_str())));
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn spawn_run(&self, run_id: &str) -> Child {
        self.command(&run_args(run_id))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn journal_bytes(&self, run_id: &str) -> Vec<u8> {
        std::fs::read(
            self.ws
                .state()
                .join("runs")
                .join(run_id)
                .join("journal.jsonl"),
        )
        .unwrap_or_default()
    }
}

/// Polls (bounded) until `check` holds.
async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_lives_in_s3_and_other_machines_see_the_run() {
    let (moto, settings, clients) = setup("cutover-runs").await;
    let marks = tempfile::tempdir().unwrap();
    let book = runbook(&marks.path().join("count"), "3s");
    let a = Machine::new(&book, &settings, moto.cli_env());
    let b = Machine::new(&book, &settings, moto.cli_env());
    let lease = S3Lease::new(clients.s3.clone(), settings.clone());

    let running = a.spawn_run("r1");
    assert!(
        eventually(Duration::from_secs(60), || async {
            lease.current().await.unwrap().is_some()
        })
        .await,
        "the run took the S3 lease"
    );
    let held = lease.current().await.unwrap().unwrap();
    assert_eq!(held.info.run_id, RunId::new("r1"));

    // Another machine, with nothing local, is refused by the lease it can only see in S3.
    let out = b.run(&run_args("r2"));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is locked by run r1"),
        "{}",
        text(&out)
    );
    assert!(
        !b.ws.state().join("runs/r2").exists(),
        "nothing was started"
    );

    let out = running.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        lease.current().await.unwrap().is_none(),
        "a finished run releases the lease"
    );
    // The mirror holds exactly the local journal.
    let mirror = S3JournalMirror::new(S3Store::new(clients.s3.clone(), settings.clone()));
    let mirrored = mirror
        .head(&RunId::new("r1"))
        .await
        .unwrap()
        .expect("mirrored");
    let local = a.journal_bytes("r1");
    assert_eq!(mirrored.size, local.len() as u64);

    // The other machine sees the run, its outcome and its steps through the mirror.
    let out = b.run(&["status", "--env", "env.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains("r1") && listing.contains("Succeeded"),
        "{}",
        text(&out)
    );
    assert_eq!(b.journal_bytes("r1"), local);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_on_one_machine_resumes_on_another_from_the_mirror() {
    let (moto, settings, clients) = setup("cutover-resume").await;
    let marks = tempfile::tempdir().unwrap();
    let counter = marks.path().join("count");
    let book = runbook(&counter, "20s");
    let a = Machine::new(&book, &settings, moto.cli_env());
    let b = Machine::new(&book, &settings, moto.cli_env());
    let mirror = S3JournalMirror::new(S3Store::new(clients.s3.clone(), settings.clone()));
    let store = S3Store::new(clients.s3.clone(), settings.clone());
    let key = S3JournalMirror::key(&RunId::new("r3"));

    let mut child = a.spawn_run("r3");
    // Kill machine A once the mirror shows the long step under way.
    let started = eventually(Duration::from_secs(60), || async {
        use cutover::providers::ObjectStore;
        match store.get_bytes(&key).await {
            Ok(bytes) => String::from_utf8_lossy(&bytes).contains("\"hold\""),
            Err(_) => false,
        }
    })
    .await;
    assert!(started, "the mirror shows the run under way");
    kill_9(&mut child);
    assert_eq!(
        std::fs::read_to_string(&counter).unwrap().lines().count(),
        1
    );
    let mirrored_at_kill = {
        use cutover::providers::ObjectStore;
        store.get_bytes(&key).await.unwrap()
    };

    // A new run on machine B is refused while the dead run's lease is there; the dead
    // run itself is resumed on B from the mirror, with the runbook where B keeps it.
    let out = b.run(&run_args("r4"));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let out = b.run(&[
        "resume",
        "r3",
        "--env",
        "env.toml",
        "--runbook",
        "book.toml",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let journal: Vec<serde_json::Value> = String::from_utf8_lossy(&b.journal_bytes("r3"))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let takeover = journal
        .iter()
        .find(|e| e["event"] == "lease_taken_over")
        .expect("the stale lease's take-over is journaled");
    assert_eq!(takeover["previous_run_id"], "r3");
    assert!(journal.iter().any(|e| e["event"] == "run_resumed"));
    assert_eq!(
        std::fs::read_to_string(&counter).unwrap().lines().count(),
        1,
        "the step finished on machine A did not run again on B"
    );
    // The mirror now holds B's journal, which extends what A had mirrored when it died.
    let mirrored = mirror.head(&RunId::new("r3")).await.unwrap().unwrap();
    let resumed = b.journal_bytes("r3");
    assert_eq!(mirrored.size, resumed.len() as u64);
    assert!(
        resumed.len() > mirrored_at_kill.len() && resumed.starts_with(&mirrored_at_kill),
        "B's journal extends A's mirrored journal"
    );

    // Machine A's stale local copy is behind the mirror: status brings it up to date
    // rather than showing the run as still going.
    let out = a.run(&["status", "r3", "--env", "env.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(a.journal_bytes("r3"), b.journal_bytes("r3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_removes_only_this_environments_instances_that_no_run_owns() {
    let (moto, settings, clients) = setup("cutover-gc").await;
    let marks = tempfile::tempdir().unwrap();
    let book = runbook(&marks.path().join("count"), "1s");
    let m = Machine::new(&book, &settings, moto.cli_env());
    let out = m.run(&run_args("owner"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let launch = |env: &'static str, run: &'static str| {
        let ec2 = clients.ec2.clone();
        async move {
            let tags = aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key("cutover:env")
                        .value(env)
                        .build(),
                )
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key("cutover:run-id")
                        .value(run)
                        .build(),
                )
                .build();
            ec2.run_instances()
                .image_id("ami-12c6146b")
                .min_count(1)
                .max_count(1)
                .tag_specifications(tags)
                .send()
                .await
                .unwrap()
                .instances()[0]
                .instance_id()
                .unwrap()
                .to_owned()
        }
    };
    let orphan = launch("cloud", "ghost").await;
    let owned = launch("cloud", "owner").await;
    let elsewhere = launch("production", "ghost").await;

    let out = m.run(&["gc", "--env", "env.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let listed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        listed.contains(&format!("would remove {orphan}")),
        "{listed}"
    );
    assert!(
        !listed.contains(&owned) && !listed.contains(&elsewhere),
        "{listed}"
    );

    let out = m.run(&["gc", "--env", "env.toml", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let state = |id: String| {
        let ec2 = clients.ec2.clone();
        async move {
            ec2.describe_instances()
                .instance_ids(id)
                .send()
                .await
                .unwrap()
                .reservations()[0]
                .instances()[0]
                .state()
                .unwrap()
                .name()
                .unwrap()
                .as_str()
                .to_owned()
        }
    };
    assert!(["terminated", "shutting-down"].contains(&state(orphan).await.as_str()));
    assert_eq!(state(owned).await, "running");
    assert_eq!(state(elsewhere).await, "running");
}

/// A Neo4j instance must never serve with a default password: without an `admin_secret`
/// the provision step refuses before anything is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_neo4j_without_an_admin_secret_creates_nothing() {
    let (moto, settings, clients) = setup("cutover-provision").await;
    let book = "name = \"provision\"\n[[step]]\nid = \"green\"\nuses = \"compute.provision\"\nwith = { database = \"ledger\" }\n";
    let m = Machine::with_databases(
        book,
        &settings,
        moto.cli_env(),
        "[databases.ledger]\nengine = \"neo4j\"\nimage = \"ami-12c6146b\"\ninstance = { type = \"t3.medium\" }\n",
    );
    let out = m.run(&run_args("p1"));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("has no `admin_secret`"),
        "{}",
        text(&out)
    );
    let found = clients
        .ec2
        .describe_instances()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:cutover:run-id")
                .values("p1")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(found.reservations().is_empty(), "no instance was created");
}
