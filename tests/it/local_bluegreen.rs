//! The blue-green runbook on the local provider, for real: real Neo4j Community servers
//! (environments/local.toml) and ArcadeDB servers (environments/local-arcadedb.toml) as
//! blue and green, a writer committing ledger transactions the whole time to wherever the
//! app connection secret points, and the real `cutover` binary migrating underneath it.

#[path = "../../examples/local_env/support.rs"]
pub(crate) mod support;

use crate::harness::neo4j::{LTS, NEXT};
use cutover::config::Environment;
use cutover::engine::state::StepStatus;
use cutover::ids::{RunId, StepId};
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MEMBERS: u64 = 40;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A temp environment modelled on environments/local-arcadedb.toml, with its own state
/// directory.
fn environment(dir: &Path, name: &str) -> Environment {
    environment_from("local-arcadedb", dir, name)
}

/// A temp environment modelled on environments/`file`.toml (whose `name` is `file`).
fn environment_from(file: &str, dir: &Path, name: &str) -> Environment {
    let text = std::fs::read_to_string(repo().join(format!("environments/{file}.toml"))).unwrap();
    let text = text
        .replace(&format!("name = \"{file}\""), &format!("name = \"{name}\""))
        .replace(
            &format!("state_dir = \"../.cutover/{file}\""),
            "state_dir = \"state\"",
        )
        .replace(
            &format!("credex-core/{file}"),
            &format!("credex-core/{name}"),
        )
        .replace("heap = \"320m\"", "heap = \"256m\"");
    let path = dir.join("env.toml");
    std::fs::write(&path, text).unwrap();
    Environment::load(path.to_str().unwrap()).unwrap_or_else(|p| panic!("test environment: {p:?}"))
}

/// The same environment (name, state) with every database on Neo4j `version`, as an AMI
/// update would set it: green is provisioned from `neo4j-<version>`.
fn on_version(env: &Environment, version: &str) -> Environment {
    let text = std::fs::read_to_string(&env.source.path).unwrap();
    let text = text
        .replace("\"5.26.30\"", &format!("\"{version}\""))
        .replace("\"neo4j-5.26.30\"", &format!("\"neo4j-{version}\""));
    assert!(text.contains(&format!("version = \"{version}\"")), "{text}");
    let path = std::path::Path::new(&env.source.path).with_file_name(format!("env-{version}.toml"));
    std::fs::write(&path, text).unwrap();
    Environment::load(path.to_str().unwrap())
        .unwrap_or_else(|p| panic!("{version} environment: {p:?}"))
}

/// The Neo4j version the app's `db` answers with (`dbms.components()`).
async fn serving_version(env: &Environment, db: &str) -> String {
    let graph = support::app_target(env, db)
        .await
        .unwrap()
        .connect(1)
        .await
        .unwrap();
    let mut rows = graph
        .execute(neo4rs::query(
            "CALL dbms.components() YIELD versions RETURN versions[0] AS v",
        ))
        .await
        .unwrap();
    let row = rows.next().await.unwrap().expect("a component row");
    row.get::<String>("v").unwrap()
}

async fn cutover_run(env: &Environment, failpoint: Option<&str>) -> Output {
    cutover_run_with(env, failpoint, &[]).await
}

/// `cutover run runbooks/blue-green.toml` on `env` (bake 1 s, 2 health rounds), with
/// `vars` added to its environment.
async fn cutover_run_with(
    env: &Environment,
    failpoint: Option<&str>,
    vars: &[(&str, String)],
) -> Output {
    // A failure is injected by the test build of the CLI; a clean run is the real binary.
    let mut cmd = match failpoint {
        Some(_) => tokio::process::Command::new(crate::engine_cli::cutover_faults_path()),
        None => tokio::process::Command::new(env!("CARGO_BIN_EXE_cutover")),
    };
    cmd.envs(vars.iter().map(|(k, v)| (*k, v.as_str())));
    cmd.current_dir(repo())
        .args(["run", "runbooks/blue-green.toml", "--env"])
        .arg(&env.source.path)
        .args(["--set", "bake=1s", "--set", "bake_interval=500ms"])
        .args(["--set", "health_successes=2", "--yes"])
        .env("CUTOVER_STATE_DIR", &env.state_dir)
        .env_remove("CUTOVER_FAILPOINTS")
        .kill_on_drop(true);
    if let Some(f) = failpoint {
        cmd.env("CUTOVER_FAILPOINTS", f);
    }
    // Bounded: 25 minutes (four Neo4j JVMs, their restarts and neo4j-admin JVMs share
    // two cores with other builds here; at a load average of 25 a run took over 15).
    tokio::time::timeout(Duration::from_secs(1500), cmd.output())
        .await
        .expect("cutover run finished within 25 minutes")
        .unwrap()
}

pub(crate) fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub(crate) struct Writer {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<support::WriterLog>,
}

impl Writer {
    pub(crate) fn start(env: &Environment) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(support::run_writer(env.clone(), MEMBERS, stop.clone()));
        Self { stop, task }
    }
    pub(crate) async fn finish(self) -> support::WriterLog {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap()
    }
}

/// Waits until the app's ledger target accepts writes and has taken `n` more of them.
pub(crate) async fn writes_flow(env: &Environment) {
    let target = support::app_target(env, "ledger").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !support::accepts_writes(&target).await {
        assert!(
            Instant::now() < deadline,
            "the app's ledger ({}) refuses writes",
            target.uri
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every acknowledged write is on both databases the app points at now: committed on
/// ledger and indexed on search, one point in time for both.
pub(crate) async fn assert_no_write_lost(env: &Environment, log: &support::WriterLog) {
    assert!(
        !log.acknowledged.is_empty(),
        "the writer never got a write acknowledged: {log:?}"
    );
    for db in ["ledger", "search"] {
        let target = support::app_target(env, db).await.unwrap();
        let present = support::count_present(&target, &log.acknowledged)
            .await
            .unwrap();
        assert_eq!(
            present,
            log.acknowledged.len() as u64,
            "acknowledged writes missing on {db} ({})",
            target.uri
        );
    }
}

/// Blue ledger and search with the app user and connection secret; on failure removes
/// what it started.
pub(crate) async fn set_up(env: &Environment) {
    if let Err(e) = support::setup(env, MEMBERS, 256).await {
        let _ = support::teardown(env).await;
        panic!("setting up blue: {e}");
    }
}

/// Runs `body`, then removes every instance of the environment whatever happened, then
/// re-raises a failure: a failed test leaves no server running.
pub(crate) async fn with_teardown<F: std::future::Future<Output = ()> + Send + 'static>(
    env: &Environment,
    body: F,
) {
    let result = tokio::spawn(body).await;
    let _ = support::teardown(env).await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

// The happy path runs on Neo4j (the main engine, with the upgrade to 2026.08.1) below; on
// ArcadeDB the rollback test's runs go forward through the same steps to the bake, so a
// separate ArcadeDB happy-path run (about 100 s of CI) is not repeated here.

async fn happy(env: Environment) -> Passed {
    happy_path(env, &[]).await
}

/// A blue-green run that succeeded under the live writer.
pub(crate) struct Passed {
    pub run_id: String,
    /// Green's ledger Bolt URI, where the app points now.
    pub green: String,
    pub log: support::WriterLog,
}

/// `cutover run` of blue-green under a live writer, `vars` in its environment: exit 0,
/// the app moved to green, no acknowledged write lost, blue decommissioned, no password
/// in the output.
pub(crate) async fn happy_path(env: Environment, vars: &[(&str, String)]) -> Passed {
    let blue = support::app_target(&env, "ledger").await.unwrap().uri;
    let writer = Writer::start(&env);
    writes_flow(&env).await;
    let out = cutover_run_with(&env, None, vars).await;
    writes_flow(&env).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = writer.finish().await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let green = support::app_target(&env, "ledger").await.unwrap().uri;
    assert_ne!(green, blue, "the app still points at blue");
    assert_no_write_lost(&env, &log).await;
    assert!(
        log.switches >= 1,
        "the writer never moved to green: {log:?}"
    );
    // Both databases: blue decommissioned after the bake window, only green left.
    for db in ["ledger", "search"] {
        let left = support::instances(&env, db).await.unwrap();
        assert_eq!(left.len(), 1, "{db}: {left:?}");
        assert_eq!(left[0].1, "green", "{db}: {left:?}");
    }
    // green's fingerprint equalled frozen blue's: integrity.compare said so in the journal.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stdout.contains("pass\":") && !stderr.contains("pass\":"),
        "a password reached the output"
    );
    attach_writer_figures(&env, &out, &log).await;
    same_answers_were_compared(&env, &out);
    Passed {
        run_id: printed_runs(&out)[0].0.clone(),
        green,
        log,
    }
}

/// Each compare step asked green the environment's application queries (`same_answers`)
/// and found blue's answers: it succeeded and counted them (none where none are listed).
fn same_answers_were_compared(env: &Environment, out: &Output) {
    let runs = printed_runs(out);
    let view =
        cutover::engine::run::load_view(&env.state_dir, &RunId::new(runs[0].0.as_str())).unwrap();
    for (name, def) in &env.databases {
        let listed = !def.same_answers.is_empty();
        let step = view
            .steps
            .get(&StepId::new(format!("compare-{name}")))
            .unwrap_or_else(|| panic!("no compare-{name}"));
        assert_eq!(step.status, StepStatus::Succeeded, "compare-{name}");
        let compared = step.outputs.as_ref().unwrap()["answers_compared"]
            .as_u64()
            .unwrap();
        assert_eq!(
            compared > 0,
            listed,
            "compare-{name}: {compared} answers compared"
        );
    }
}

/// What the demo does after its run: the writer's figures (every acknowledged write was
/// found on green above, so none lost) attached with `cutover report --measure`, and the
/// report then states them instead of saying why it has none.
async fn attach_writer_figures(env: &Environment, out: &Output, log: &support::WriterLog) {
    let runs = printed_runs(out);
    let [(run, outcome)] = runs.as_slice() else {
        panic!(
            "expected one `run ID: OUTCOME` line: {runs:?}\n{}",
            text(out)
        );
    };
    assert_eq!(outcome, "Succeeded", "{}", text(out));
    let acknowledged = format!("writes_acknowledged={}", log.acknowledged.len());
    let report = cutover_cmd(
        env,
        &[
            "report",
            run,
            "--output",
            "json",
            "--measure",
            &acknowledged,
            "--measure",
            "writes_lost=0",
        ],
    )
    .await;
    assert_eq!(report.status.code(), Some(0), "{}", text(&report));
    let json: serde_json::Value = serde_json::from_slice(&report.stdout)
        .unwrap_or_else(|e| panic!("report JSON: {e}\n{}", text(&report)));
    assert_eq!(
        json["writes_acknowledged"],
        log.acknowledged.len() as u64,
        "{json}"
    );
    assert_eq!(json["writes_lost"], 0, "{json}");
    assert!(json["writes_note"].is_null(), "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_at_any_step_leaves_blue_serving_green_removed_and_no_write_lost() {
    let dir = tempfile::tempdir().unwrap();
    let env = environment(dir.path(), "bgfail");
    set_up(&env).await;
    with_teardown(&env, failures(env.clone(), &ARCADEDB_FAILURES)).await;
}

/// The injected failures run on ArcadeDB, one `cutover run` each, in order, on the same
/// blue: green's ledger server stopped before its load, the artifact corrupted after its
/// manifest (refused by its SHA-256 before any engine touches it), and the two that come
/// after the load and compare. The one failure only a real Neo4j can show (an artifact
/// whose checksum is right but whose store is not) runs on Neo4j ([`NEO4J_FAILURES`]).
/// Each pairs the failure point with what the outcome line must name.
const ARCADEDB_FAILURES: [Injected; 4] = [
    (
        "kill-green@restore-ledger",
        "restore-ledger",
        "Connection refused",
    ),
    (
        "corrupt-artifact@backup-search",
        "restore-search",
        "checksum mismatch",
    ),
    (
        "fail-health@health-ledger",
        "health-ledger",
        "authentication failed",
    ),
    (
        "fail-secret-test@rotate-search",
        "rotate-search",
        "authentication failed",
    ),
];

/// A failure point, the step the outcome line must name as failed, and a phrase of its
/// reason.
type Injected = (&'static str, &'static str, &'static str);

async fn failures(env: Environment, failpoints: &[Injected]) {
    let blue = support::app_target(&env, "ledger").await.unwrap().uri;
    let writer = Writer::start(&env);
    writes_flow(&env).await;
    for &(failpoint, step, reason) in failpoints {
        let out = cutover_run(&env, Some(failpoint)).await;
        assert_eq!(out.status.code(), Some(1), "{failpoint}: {}", text(&out));
        let outcome = String::from_utf8_lossy(&out.stdout);
        let outcome = outcome.split("\njournal:").next().unwrap_or_default();
        assert!(
            outcome.contains(&format!(": RolledBack: step {step} failed: "))
                && outcome.contains(reason),
            "{failpoint}: the outcome does not name {step} and `{reason}`: {}",
            text(&out)
        );
        // Blue is unfrozen and the app still points at it.
        let now = support::app_target(&env, "ledger").await.unwrap().uri;
        assert_eq!(now, blue, "{failpoint}: the app no longer points at blue");
        writes_flow(&env).await;
        for db in ["ledger", "search"] {
            let left = support::instances(&env, db).await.unwrap();
            assert!(
                left.iter().all(|(_, color)| color == "blue"),
                "{failpoint}: green {db} left behind: {left:?}"
            );
            assert_eq!(left.len(), 1, "{failpoint}: {db}: {left:?}");
        }
    }
    let log = writer.finish().await;
    assert_no_write_lost(&env, &log).await;
}

/// Both rollbacks on one blue (one set of servers, to keep CI lean): first a run killed
/// during its bake, rolled back by hand with no write on green (straight switch back),
/// then a bake that fails under the live writer after green took writes, rolled back by
/// the run itself (reverse migration) because the application's own health endpoint
/// (`[traffic] health_url`, a loopback stand-in) turned unhealthy during the bake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_moves_the_app_back_to_blue_straight_or_by_reverse_migration_losing_no_write() {
    let dir = tempfile::tempdir().unwrap();
    let app = AppHealth::start().await;
    let env = environment(dir.path(), "bgback");
    let env = with_health_url(&env, &app.url);
    set_up(&env).await;
    let body = {
        let env = env.clone();
        async move {
            killed_in_bake(env.clone()).await;
            // Healthy for the bake's first round, unhealthy from its second on.
            app.healthy_answers.store(1, Ordering::SeqCst);
            bake_failure(env).await;
            assert!(
                app.unhealthy_answered.load(Ordering::SeqCst) > 0,
                "the app was never unhealthy"
            );
        }
    };
    with_teardown(&env, body).await;
}

/// The application's health endpoint, on loopback: `200 OK` while `healthy_answers` is
/// above zero (each answer takes one), `503` after. Stops with the test.
struct AppHealth {
    url: String,
    healthy_answers: Arc<std::sync::atomic::AtomicU64>,
    unhealthy_answered: Arc<std::sync::atomic::AtomicU64>,
}

impl AppHealth {
    async fn start() -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/health", listener.local_addr().unwrap());
        let healthy_answers = Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));
        let unhealthy_answered = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (healthy, unhealthy) = (healthy_answers.clone(), unhealthy_answered.clone());
        tokio::spawn(async move {
            // Bounded: a bake round every 500 ms for the test's few minutes.
            for _ in 0..100_000 {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = [0u8; 2048];
                let _ = conn.read(&mut buf).await;
                let ok = healthy
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if !ok {
                    unhealthy.fetch_add(1, Ordering::SeqCst);
                }
                let status = if ok {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                };
                let reply =
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = conn.write_all(reply.as_bytes()).await;
            }
        });
        Self {
            url,
            healthy_answers,
            unhealthy_answered,
        }
    }
}

/// `env` with `[traffic] health_url = url`.
fn with_health_url(env: &Environment, url: &str) -> Environment {
    let text = std::fs::read_to_string(&env.source.path).unwrap();
    let text = text.replacen(
        "[traffic]\n",
        &format!("[traffic]\nhealth_url = \"{url}\"\n"),
        1,
    );
    std::fs::write(&env.source.path, text).unwrap();
    Environment::load(env.source.path.to_str().unwrap()).unwrap()
}

/// Each step of the rollback run `view` ended as listed.
fn assert_steps(view: &cutover::engine::state::RunView, expected: &[(&str, StepStatus)]) {
    for (step, status) in expected {
        assert_eq!(
            view.steps.get(&StepId::new(*step)).map(|s| s.status),
            Some(*status),
            "{step}"
        );
    }
}

/// The run ids `cutover` printed (`run ID: OUTCOME: …` lines), in order.
fn printed_runs(out: &Output) -> Vec<(String, String)> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("run "))
        .filter_map(|l| {
            let (id, rest) = l.split_once(": ")?;
            let (outcome, _) = rest.split_once(": ")?;
            Some((id.to_string(), outcome.to_string()))
        })
        .collect()
}

async fn bake_failure(env: Environment) {
    let blue = support::app_target(&env, "ledger").await.unwrap().uri;
    let blue_ids = instances_of_both(&env).await;
    let writer = Writer::start(&env);
    writes_flow(&env).await;
    // The bake fails from its second round on (one 500 ms interval into the bake, after
    // health-after-switch's rounds: the app's health endpoint answers 503): the writer (a write every ~20 ms) has moved to green
    // by then, so green holds writes blue does not have. The run's own compensation
    // refuses to switch back over them; the rollback run it chains migrates them back.
    let out = cutover_run(&env, None).await;
    // 1: the run failed and the environment is back on blue (with green's writes).
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let now = support::app_target(&env, "ledger").await.unwrap().uri;
    assert_eq!(now, blue, "the app is not back on blue: {}", text(&out));
    writes_flow(&env).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = writer.finish().await;
    // Every acknowledged write — before the switch (blue), on green, after the switch
    // back (blue) — is on blue now.
    assert_no_write_lost(&env, &log).await;
    let carried: u64 = log
        .per_target
        .iter()
        .filter(|(uri, _)| **uri != blue)
        .map(|(_, n)| n)
        .sum();
    assert!(
        carried > 0,
        "green took no write before the bake failed, so the reverse migration was not exercised: {log:?}"
    );
    // Green removed; blue's instances are the ones it had before.
    let left = instances_of_both(&env).await;
    assert_eq!(left, blue_ids, "green left behind, or blue replaced");
    // Two runs: the blue-green (needs attention: green took writes) and its rollback.
    let runs = printed_runs(&out);
    let [(bluegreen, first), (rollback, second)] = runs.as_slice() else {
        panic!(
            "expected the run and its rollback: {runs:?}\n{}",
            text(&out)
        );
    };
    assert_eq!(first, "NeedsAttention", "{}", text(&out));
    assert_eq!(second, "Succeeded", "{}", text(&out));
    let undone =
        cutover::engine::run::load_view(&env.state_dir, &RunId::new(bluegreen.as_str())).unwrap();
    let view =
        cutover::engine::run::load_view(&env.state_dir, &RunId::new(rollback.as_str())).unwrap();
    assert_eq!(
        view.rollback_of().map(|r| r.as_str()),
        Some(bluegreen.as_str())
    );
    let link = undone
        .rolled_back_by()
        .expect("the undone run names its rollback");
    assert_eq!(link.run_id.as_str(), rollback);
    // The reverse migration ran, the straight switch back was skipped.
    assert_steps(
        &view,
        &[
            ("assess", StepStatus::Succeeded),
            ("backup-green-ledger", StepStatus::Succeeded),
            ("restore-blue-search", StepStatus::Succeeded),
            ("compare-blue-ledger", StepStatus::Succeeded),
            ("switch-back-migrated", StepStatus::Succeeded),
            ("remove-migrated-green-search", StepStatus::Succeeded),
            ("switch-back", StepStatus::Skipped),
        ],
    );
    let took = &view.steps[&StepId::new("assess")]
        .outputs
        .clone()
        .unwrap_or_default();
    assert_eq!(took.get("took_writes"), Some(&serde_json::json!(true)));
    // The reports tell the story, and `cutover status` shows the pair.
    let report = std::fs::read_to_string(
        cutover::engine::run::run_dir(&env.state_dir, &RunId::new(bluegreen.as_str()))
            .join("report.md"),
    )
    .unwrap();
    assert!(
        report.contains(&format!("rolled back by run {rollback} (Succeeded)"))
            && report.contains(&format!("Run {rollback} rolled this run back")),
        "{report}"
    );
    status_shows_the_pair(&env, bluegreen, rollback).await;
    let seconds = view
        .finished_at
        .zip(view.started_at)
        .map(|(b, a)| (b - a).num_milliseconds() as f64 / 1000.0)
        .unwrap_or_default();
    eprintln!(
        "rollback {rollback}: {seconds:.1} s, {carried} writes green acknowledged carried back to blue, {} acknowledged in all",
        log.acknowledged.len()
    );
}

/// `cutover status` lists run `undone` as rolled back by `rollback` (Succeeded), and
/// `rollback` as the rollback of `undone`.
async fn status_shows_the_pair(env: &Environment, undone: &str, rollback: &str) {
    let status = cutover_cmd(env, &["status"]).await;
    let listed = String::from_utf8_lossy(&status.stdout);
    assert!(
        listed.contains(&format!("[rolled back by run {rollback} (Succeeded)]"))
            && listed.contains(&format!("[rollback of run {undone}]")),
        "{listed}"
    );
}

/// `cutover` with `args` in the test environment, bounded like [`cutover_run`].
async fn cutover_cmd(env: &Environment, args: &[&str]) -> Output {
    cutover_cmd_with(env, &[], args).await
}

/// [`cutover_cmd`] with `vars` added to its environment.
async fn cutover_cmd_with(env: &Environment, vars: &[(&str, String)], args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_cutover"));
    cmd.envs(vars.iter().map(|(k, v)| (*k, v.as_str())));
    cmd.current_dir(repo())
        .args(args)
        .arg("--env")
        .arg(&env.source.path)
        .env("CUTOVER_STATE_DIR", &env.state_dir)
        .env_remove("CUTOVER_FAILPOINTS")
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(900), cmd.output())
        .await
        .expect("cutover finished within 15 minutes")
        .unwrap()
}

async fn killed_in_bake(env: Environment) {
    let blue = support::app_target(&env, "ledger").await.unwrap().uri;
    let blue_ids = instances_of_both(&env).await;
    // No writer: green takes no write while it bakes.
    let mut run = cutover_child(
        &env,
        &[
            "run",
            "runbooks/blue-green.toml",
            "--set",
            "bake=30m",
            "--set",
            "health_successes=2",
            "--yes",
            "--run-id",
            "bake-killed",
        ],
    );
    let id = RunId::new("bake-killed");
    let bake = StepId::new("bake");
    // Bounded: 10 minutes for the migration up to the bake.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let view = cutover::engine::run::load_view(&env.state_dir, &id).ok();
        let baking = view
            .as_ref()
            .and_then(|v| v.steps.get(&bake))
            .is_some_and(|s| {
                s.status == StepStatus::Running
                    && s.checkpoint
                        .as_ref()
                        .is_some_and(|c| c.get("deadline").is_some())
            });
        if baking {
            break;
        }
        assert!(
            view.as_ref().and_then(|v| v.outcome).is_none(),
            "the run ended before its bake: {view:?}"
        );
        assert!(Instant::now() < deadline, "the run never reached its bake");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The operator's process dies mid-bake (SIGKILL): the lease goes stale, blue stays
    // frozen and alive, the app is on green.
    run.start_kill().unwrap();
    let _ = run.wait().await;
    assert_ne!(support::app_target(&env, "ledger").await.unwrap().uri, blue);

    let out = cutover_cmd(&env, &["rollback", "bake-killed"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        support::app_target(&env, "ledger").await.unwrap().uri,
        blue,
        "the app is not back on blue"
    );
    writes_flow(&env).await;
    let left = instances_of_both(&env).await;
    assert_eq!(left, blue_ids, "green left behind, or blue replaced");
    let runs = printed_runs(&out);
    let [(rollback, outcome)] = runs.as_slice() else {
        panic!("expected the rollback run: {runs:?}");
    };
    assert_eq!(outcome, "Succeeded");
    let view =
        cutover::engine::run::load_view(&env.state_dir, &RunId::new(rollback.as_str())).unwrap();
    // Green took no write: the straight switch back ran, the reverse migration did not.
    assert_steps(
        &view,
        &[
            ("switch-back", StepStatus::Succeeded),
            ("remove-green-ledger", StepStatus::Succeeded),
            ("backup-green-ledger", StepStatus::Skipped),
            ("switch-back-migrated", StepStatus::Skipped),
        ],
    );
    // The undone run is linked to its rollback and can no longer be resumed.
    let resumed = cutover_cmd(&env, &["resume", "bake-killed"]).await;
    assert_eq!(resumed.status.code(), Some(2), "{}", text(&resumed));
    assert!(
        text(&resumed).contains(&format!("rolled back by run {rollback}")),
        "{}",
        text(&resumed)
    );
}

// Real Neo4j Community 5.26.30 (environments/local.toml): blue and green are Neo4j servers,
// the neo4j engine's scripts run on them through the local exec channel.

/// The upgrade path, as an AMI update runs it: blue on 5.26.30, green provisioned from the
/// 2026.08.1 image (Java 25), the dump of 5.26 loaded and store-upgraded by 2026.08.1,
/// under the live writer; green's fingerprint must equal frozen blue's (compare).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neo4j_blue_green_onto_2026_under_a_live_writer_loses_no_write_and_green_matches_frozen_blue(
) {
    let dir = tempfile::tempdir().unwrap();
    let env = environment_from("local", dir.path(), "n4ok");
    set_up(&env).await;
    let upgraded = on_version(&env, NEXT);
    with_teardown(&env, async move {
        for db in ["ledger", "search"] {
            assert_eq!(serving_version(&upgraded, db).await, LTS, "{db}: blue");
        }
        let passed = happy(upgraded.clone()).await;
        for db in ["ledger", "search"] {
            assert_eq!(serving_version(&upgraded, db).await, NEXT, "{db}: green");
        }
        refuses_to_roll_back_onto_an_older_version(&upgraded, &passed).await;
    })
    .await;
}

/// After the upgrade passed its bake (blue removed), `cutover rollback` would rebuild blue
/// on 5.26 and load green's 2026.08 store into it, which 5.26 cannot read: refused with
/// exit 2, nothing provisioned, the app still on green and writable.
async fn refuses_to_roll_back_onto_an_older_version(env: &Environment, passed: &Passed) {
    let before = instances_of_both(env).await;
    let out = cutover_cmd(env, &["rollback", &passed.run_id]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "rebuilding blue would load green's {NEXT} store into {LTS}, which cannot read a newer store"
        )),
        "{}",
        text(&out)
    );
    assert_eq!(
        instances_of_both(env).await,
        before,
        "the refusal changed instances"
    );
    let app = support::app_target(env, "ledger").await.unwrap();
    assert_eq!(app.uri, passed.green);
    assert!(support::accepts_writes(&app).await);
}

/// (instance id, color) of every instance of ledger and search.
async fn instances_of_both(env: &Environment) -> Vec<(cutover::ids::InstanceId, String)> {
    let mut all = Vec::new();
    for db in ["ledger", "search"] {
        all.extend(support::instances(env, db).await.unwrap());
    }
    all
}

/// A same-version blue-green (an AMI update that keeps Neo4j 5.26.30) passes its bake and
/// removes blue; the writer goes on writing to green; a day later the operator runs
/// `cutover rollback`: a new blue is built from the old blue's image, green's writes are
/// migrated onto it (dump of frozen green, load, compare), and the app moves back. Every
/// write acknowledged before, during and after both moves is on the new blue, green is
/// removed, and both journals and `cutover status` link the pair.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neo4j_rollback_after_a_passed_bake_rebuilds_blue_and_carries_every_write_back() {
    let dir = tempfile::tempdir().unwrap();
    let env = environment_from("local", dir.path(), "n4back");
    set_up(&env).await;
    let run = env.clone();
    with_teardown(&run, async move {
        let blue_before = instances_of_both(&env).await;
        let passed = happy(env.clone()).await;
        let writer = Writer::start(&env);
        writes_flow(&env).await;
        let started = Instant::now();
        let out = cutover_cmd(&env, &["rollback", &passed.run_id]).await;
        let took = started.elapsed();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        writes_flow(&env).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let log = writer.finish().await;
        let now = support::app_target(&env, "ledger").await.unwrap().uri;
        assert_ne!(now, passed.green, "the app is still on green");
        // Every acknowledged write of both writers (the blue-green's: blue, then green;
        // this one's: green, then the new blue) is on the new blue.
        assert_no_write_lost(&env, &passed.log).await;
        assert_no_write_lost(&env, &log).await;
        let carried = log.per_target.get(&passed.green).copied().unwrap_or(0);
        assert!(
            carried > 0,
            "green took no write before the rollback froze it: {log:?}"
        );
        // One new blue per database, not the old one; green removed.
        let after = instances_of_both(&env).await;
        assert_eq!(after.len(), 2, "{after:?}");
        assert!(after.iter().all(|(_, color)| color == "blue"), "{after:?}");
        assert!(
            after.iter().all(|i| !blue_before.contains(i)),
            "the old blue is back: {after:?} {blue_before:?}"
        );
        let runs = printed_runs(&out);
        let [(rollback, outcome)] = runs.as_slice() else {
            panic!("expected the rollback run: {runs:?}\n{}", text(&out));
        };
        assert_eq!(outcome, "Succeeded");
        let view = cutover::engine::run::load_view(&env.state_dir, &RunId::new(rollback.as_str()))
            .unwrap();
        assert_eq!(view.rollback_of().map(|r| r.as_str()), Some(passed.run_id.as_str()));
        assert_steps(
            &view,
            &[
                ("verify-on-green", StepStatus::Succeeded),
                ("provision-blue-ledger", StepStatus::Succeeded),
                ("backup-green-search", StepStatus::Succeeded),
                ("compare-blue-ledger", StepStatus::Succeeded),
                ("switch-back", StepStatus::Succeeded),
                ("remove-green-search", StepStatus::Succeeded),
            ],
        );
        let undone =
            cutover::engine::run::load_view(&env.state_dir, &RunId::new(passed.run_id.as_str()))
                .unwrap();
        assert_eq!(
            undone.rolled_back_by().map(|l| l.run_id.as_str()),
            Some(rollback.as_str())
        );
        status_shows_the_pair(&env, &passed.run_id, rollback).await;
        // A second rollback of the same run is refused: it is rolled back already.
        let again = cutover_cmd(&env, &["rollback", &passed.run_id]).await;
        assert_eq!(again.status.code(), Some(2), "{}", text(&again));
        eprintln!(
            "rollback onto a new blue {rollback}: {:.1} s, {carried} writes green acknowledged carried back, {} acknowledged during it",
            took.as_secs_f64(),
            log.acknowledged.len()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neo4j_a_failure_at_any_step_leaves_blue_serving_green_removed_and_no_write_lost() {
    let dir = tempfile::tempdir().unwrap();
    let env = environment_from("local", dir.path(), "n4fail");
    set_up(&env).await;
    let run = env.clone();
    with_teardown(&env, async move {
        refuses_an_older_green(&run).await;
        refuses_an_app_query_that_does_not_plan(&run).await;
        failures(run, &neo4j_failures()).await;
    })
    .await;
}

/// Green on an older Neo4j than blue (5.25.1 < 5.26.30, as blue itself reports over Bolt)
/// is refused by the first step, before anything is provisioned or frozen.
async fn refuses_an_older_green(env: &Environment) {
    let older = on_version(env, "5.25.1");
    let out = cutover_run(&older, None).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("older than blue's 5.26.30") && all.contains("refused"),
        "{all}"
    );
    assert_blue_alone_and_writable(env).await;
}

/// A `same_answers` query with a typo (environments/local.toml's MTQ queue, RETURN
/// misspelt) is refused by preflight's EXPLAIN on blue, before anything is provisioned or
/// frozen: the run fails with nothing to undo and blue keeps taking writes.
async fn refuses_an_app_query_that_does_not_plan(env: &Environment) {
    let original = std::fs::read_to_string(&env.source.path).unwrap();
    let broken = original.replacen(
        "RETURN labels(n)[0] AS kind",
        "RETRUN labels(n)[0] AS kind",
        1,
    );
    assert_ne!(
        broken, original,
        "the MTQ queue query is in the environment"
    );
    let path = env.source.path.with_file_name("env-typo.toml");
    std::fs::write(&path, broken).unwrap();
    let typo = Environment::load(path.to_str().unwrap()).unwrap();
    let out = cutover_run(&typo, None).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let outcome = String::from_utf8_lossy(&out.stdout);
    assert!(
        outcome.contains(": Failed: step preflight-ledger failed: ledger: same_answers `MTQ queue` does not plan on blue")
            && outcome.contains("SyntaxError")
            && outcome.contains("nothing needed undoing"),
        "{}",
        text(&out)
    );
    assert_blue_alone_and_writable(env).await;
}

/// Each database has one instance, blue, and the app's target accepts writes.
async fn assert_blue_alone_and_writable(env: &Environment) {
    for db in ["ledger", "search"] {
        let left = support::instances(env, db).await.unwrap();
        assert_eq!(left.len(), 1, "{db}: {left:?}");
        assert_eq!(left[0].1, "blue", "{db}: {left:?}");
        assert!(support::accepts_writes(&support::app_target(env, db).await.unwrap()).await);
    }
}

/// [`NEO4J_FAILURES`]; with `CUTOVER_IT_NEO4J_ALL_FAILURES` set (`make failures-neo4j`,
/// about 5 minutes more) the ArcadeDB ones too, so every injected failure runs on Neo4j.
fn neo4j_failures() -> Vec<Injected> {
    let mut all = NEO4J_FAILURES.to_vec();
    if std::env::var_os("CUTOVER_IT_NEO4J_ALL_FAILURES").is_some() {
        all.extend(ARCADEDB_FAILURES);
    }
    all
}

/// On Neo4j every `cutover run` up to the injected failure costs a minute of JVM restarts
/// on CI (provision, the Community freeze, the dump with the DBMS stopped, the undo of the
/// freeze), so this test runs the one failure that needs the real `neo4j-admin`: search's
/// dump damaged before its manifest recorded its SHA-256, so the checksum matches and
/// `neo4j-admin database check` refuses it before the load. The others run on ArcadeDB
/// ([`ARCADEDB_FAILURES`]; see docs/neo4j.md).
const NEO4J_FAILURES: [Injected; 1] = [(
    "inconsistent-artifact@backup-search",
    "restore-search",
    "neo4j-admin database check found",
)];

/// The freeze checks credex's DCO/MTQ flags again right before freezing (provisioning
/// sits between the preflight's check and the freeze): with the DCO flag set on blue's
/// active Daynode it waits, blue still taking writes, and proceeds once the flag clears;
/// held past `jobs_timeout`, the run fails naming the job, blue never frozen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_freeze_waits_while_the_dco_job_runs_then_proceeds_or_gives_up_with_blue_unfrozen() {
    let dir = tempfile::tempdir().unwrap();
    let env = environment(dir.path(), "bgjobs");
    set_up(&env).await;
    let root = dir.path().to_owned();
    let run = env.clone();
    with_teardown(&env, async move {
        let env = run;
        let blue = support::app_target(&env, "ledger").await.unwrap();
        set_dco_flag(&blue, true).await;
        // 1. The job finishes while the freeze waits: the run goes on and freezes.
        let book = freeze_runbook(&root, "10m");
        let mut child = cutover_child(&env, &["run", book.to_str().unwrap(), "--yes"]);
        let waiting_since = wait_for_journal(&env, "jobs_waiting_since").await;
        assert!(
            support::accepts_writes(&blue).await,
            "blue frozen while the job ran"
        );
        set_dco_flag(&blue, false).await;
        let out = tokio::time::timeout(Duration::from_secs(180), child.wait())
            .await
            .expect("the run went on within 3 minutes once the job had finished")
            .unwrap();
        assert!(out.success(), "the run failed after the job finished");
        let journal = std::fs::read_to_string(&waiting_since).unwrap();
        assert!(
            journal.contains("\"step_succeeded\",\"step\":\"freeze\""),
            "{journal}"
        );
        assert!(support::accepts_writes(&blue).await, "unfreeze at the end");

        // 2. The job never finishes: the freeze gives up after jobs_timeout.
        set_dco_flag(&blue, true).await;
        let out = cutover_cmd(
            &env,
            &[
                "run",
                freeze_runbook(&root, "3s").to_str().unwrap(),
                "--yes",
            ],
        )
        .await;
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let all = text(&out);
        assert!(
            all.contains("ledger: the DCO job has been running for")
                && all.contains("was not frozen"),
            "{all}"
        );
        assert!(
            support::accepts_writes(&blue).await,
            "blue frozen after the timeout"
        );
        set_dco_flag(&blue, false).await;
    })
    .await;
}

/// A runbook of preflight (not waiting for jobs itself) → freeze → unfreeze of ledger.
fn freeze_runbook(dir: &Path, jobs_timeout: &str) -> std::path::PathBuf {
    let path = dir.join(format!("freeze-{jobs_timeout}.toml"));
    let blue = "${{ steps.preflight.outputs.instance_id }}";
    std::fs::write(
        &path,
        format!(
            "name = \"freeze-when-idle\"\n\
             [[step]]\nid = \"preflight\"\nuses = \"db.preflight\"\nwith = {{ database = \"ledger\", wait_for_jobs = false }}\n\
             [[step]]\nid = \"freeze\"\nuses = \"db.freeze\"\nneeds = [\"preflight\"]\nwith = {{ database = \"ledger\", instance = \"{blue}\", jobs_timeout = \"{jobs_timeout}\" }}\n\
             [[step]]\nid = \"unfreeze\"\nuses = \"db.unfreeze\"\nneeds = [\"freeze\"]\nwith = {{ database = \"ledger\", instance = \"{blue}\" }}\n"
        ),
    )
    .unwrap();
    path
}

/// `cutover ARGS --env ENV` started in the background, its output discarded.
fn cutover_child(env: &Environment, args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .current_dir(repo())
        .args(args)
        .arg("--env")
        .arg(&env.source.path)
        .env("CUTOVER_STATE_DIR", &env.state_dir)
        .env_remove("CUTOVER_FAILPOINTS")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// The journal (of the one run in `env`) once it contains `needle`; at most 60 s.
async fn wait_for_journal(env: &Environment, needle: &str) -> std::path::PathBuf {
    let runs = env.state_dir.join("runs");
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        for entry in std::fs::read_dir(&runs).into_iter().flatten().flatten() {
            let journal = entry.path().join("journal.jsonl");
            if std::fs::read_to_string(&journal).is_ok_and(|j| j.contains(needle)) {
                return journal;
            }
        }
        assert!(
            Instant::now() < until,
            "no journal mentioned {needle} within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sets or clears `DCOrunningNow` on the active Daynode, as credex's DCO job does.
async fn set_dco_flag(blue: &cutover::db::bolt::BoltTarget, running: bool) {
    let graph = blue.connect(1).await.unwrap();
    graph
        .run(
            neo4rs::query("MATCH (d:Daynode) WHERE d.Active = true SET d.DCOrunningNow = $running")
                .param("running", running),
        )
        .await
        .unwrap();
}

/// The other shipped runbooks, end to end on one blue (ArcadeDB): two backups with a
/// credex written between them; `restore --set backup=FIRST` rebuilds the first point in
/// time in new instances (backup.select took the named run: one node fewer than blue);
/// `dr-drill` restores the latest into throw-away instances, verifies them against the
/// manifests, measures RTO/RPO from real timestamps and removes them. Blue serves
/// throughout and is never changed by a restore.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_restore_and_dr_drill_run_end_to_end_and_leave_blue_serving() {
    let dir = tempfile::tempdir().unwrap();
    let env = environment(dir.path(), "bgdrill");
    set_up(&env).await;
    let run = env.clone();
    with_teardown(&env, async move {
        backup_restore_and_drill(run, Vec::new()).await;
    })
    .await;
}

/// Two backups with a credex written between them, `restore --set backup=FIRST` (the
/// named run), then `dr-drill` on the latest, through `cutover` with `vars` in its
/// environment: each exits 0, the restore took the first backup and the drill the
/// second, the drill's instances are gone and the restore's stay, blue serves
/// throughout. Returns the drill's RTO and RPO in seconds.
pub(crate) async fn backup_restore_and_drill(
    env: Environment,
    vars: Vec<(&'static str, String)>,
) -> (f64, f64) {
    {
        let blue = support::app_target(&env, "ledger").await.unwrap();
        let runbook = |name: &str, id: &str, extra: &[&str]| {
            let mut args = vec!["run".to_owned(), format!("runbooks/{name}.toml")];
            args.extend(["--yes", "--run-id", id].map(String::from));
            args.extend(extra.iter().map(|s| s.to_string()));
            args
        };
        let run_ok = |args: Vec<String>| {
            let env = env.clone();
            let vars = vars.clone();
            async move {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let out = cutover_cmd_with(&env, &vars, &args).await;
                assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
                cutover::engine::run::load_view(&env.state_dir, &RunId::new(args[4])).unwrap()
            }
        };
        let output = |view: &cutover::engine::state::RunView, step: &str, key: &str| {
            view.steps[&StepId::new(step)].outputs.as_ref().unwrap()[key].clone()
        };

        run_ok(runbook("backup", "backup-1", &[])).await;
        assert!(
            support::accepts_writes(&blue).await,
            "blue frozen after the backup"
        );
        blue.connect(1)
            .await
            .unwrap()
            .run(neo4rs::query(
                "CREATE (:Credex {credexID: 'after-the-first-backup'})",
            ))
            .await
            .unwrap();
        let second = run_ok(runbook("backup", "backup-2", &[])).await;
        // The point in time of a backup run: its earliest database backup.
        let taken_at = ["backup-ledger", "backup-search"]
            .map(|step| {
                output(&second, step, "taken_at")
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .into_iter()
            .min()
            .unwrap();

        let restored = run_ok(runbook(
            "restore",
            "restore-1",
            &["--set", "backup=backup-1"],
        ))
        .await;
        let drill = run_ok(runbook("dr-drill", "drill-1", &[])).await;
        let nodes = |view, step| output(view, step, "nodes").as_u64().unwrap();
        assert_eq!(
            nodes(&restored, "compare-ledger") + 1,
            nodes(&drill, "verify-ledger"),
            "restore took backup-1, the drill the latest (backup-2)"
        );
        assert_eq!(
            output(&drill, "select", "taken_at"),
            taken_at.as_str(),
            "the drill's backup"
        );
        for (view, run) in [(&restored, "backup-1"), (&drill, "backup-2")] {
            let manifest = output(view, "select", "ledger_manifest");
            assert!(
                manifest.as_str().unwrap().contains(&format!("/{run}/")),
                "{manifest}"
            );
        }
        let rto = output(&drill, "measure", "rto_seconds").as_f64().unwrap();
        let rpo = output(&drill, "measure", "rpo_seconds").as_f64().unwrap();
        eprintln!(
            "dr-drill on {} ({:?}): RTO {rto:.1} s, RPO {rpo:.1} s",
            env.name, env.provider
        );
        assert!(rto > 0.0 && rto < 600.0, "RTO {rto} s");
        assert!(rpo > 0.0 && rpo < 600.0, "RPO {rpo} s");
        // The drill's instances are gone; the restore's stay (they are the point of it).
        for db in ["ledger", "search"] {
            let mut colors: Vec<String> = support::instances(&env, db)
                .await
                .unwrap()
                .into_iter()
                .map(|(_, color)| color)
                .collect();
            colors.sort();
            assert_eq!(colors, ["blue", "restore"], "{db}");
        }
        assert_eq!(
            support::app_target(&env, "ledger").await.unwrap().uri,
            blue.uri
        );
        assert!(
            support::accepts_writes(&blue).await,
            "blue no longer serving"
        );
        (rto, rpo)
    }
}
