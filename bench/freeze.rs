//! The freeze window of a real blue-green, against the same data's bare `neo4j-admin`
//! dump + load (`make bench-freeze`; issue targets: ≤ 1.2× and under 60 s).
//!
//! For each ledger size (`BENCH_FREEZE_MEMBERS`, members, comma-separated; 131,000
//! members ≈ 1M nodes and 2.8M relationships by default), in a fresh local environment
//! under `target/bench-freeze/` built from `environments/local.toml` (Neo4j Community
//! 5.26.30 servers on loopback, `BENCH_FREEZE_HEAP_MB` heap, search at
//! `BENCH_FREEZE_SEARCH_MEMBERS` members):
//!
//! 1. **load**: blue ledger and search seeded through Bolt (`UNWIND` batches), timed;
//! 2. **baseline, by hand**: on each blue, the DBMS stopped, `neo4j-admin database dump`,
//!    `neo4j-admin database load --overwrite-destination` of that dump back, the DBMS
//!    started until it takes a write; both databases at once, as the runbook does them.
//!    The baseline is the slower database's dump + load; the whole cycle (stop … writable)
//!    is recorded beside it;
//! 3. **run**: `cutover run runbooks/blue-green.toml` (bake 5 s) through the real binary,
//!    with the demo's writer committing credexes to wherever the app's settings point.
//!    The freeze window (blue frozen → green writable) and every step's time come from
//!    the run's `report.json`; the writer gives the app's view (its longest refused
//!    stretch, which also counts the Community freeze's restart) and every acknowledged
//!    write is looked up on green afterwards;
//! 4. **digest**: `cutover digest` of green's ledger afterwards (time, peak RSS).
//!
//! It is a subcommand of the `local_env` example (`local_env bench-freeze`), which holds
//! the environment code it drives, rather than a bench target of its own: each bench
//! target is one more binary that `make test` compiles and links with the whole SDK (this
//! one cost 48 s there, for code the example compiles anyway).
//!
//! Prints the tables and writes `bench/results/freeze-<date>.json` (after every size);
//! each run's journal is kept as `target/bench-freeze/journal-m<members>.jsonl`. Not a test: no
//! assertion on time. Loopback only. Every server it starts is stopped at the end of its
//! size, also when a step fails.

use crate::{measure, support};
use cutover::config::Environment;
use cutover::ledger::LedgerSpec;
use measure::{env_u64, loadavg, run_measured};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Target: freeze window / bare dump + load.
const RATIO_TARGET: f64 = 1.2;
/// Target: freeze window, seconds (RDS Blue/Green's "typically under a minute").
const WINDOW_TARGET_S: f64 = 60.0;
const ENV_NAME: &str = "bench-freeze";

/// `local_env bench-freeze`: every size, the tables, the JSON.
pub fn run() -> anyhow::Result<()> {
    // Before minutes of loading: the binary the run needs is there.
    let cutover = cutover_binary()?;
    let sizes: Vec<u64> = std::env::var("BENCH_FREEZE_MEMBERS")
        .unwrap_or_else(|_| "131000".into())
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()
        .map_err(|e| {
            anyhow::anyhow!("BENCH_FREEZE_MEMBERS: a comma-separated list of member counts ({e})")
        })?;
    let search_members = env_u64("BENCH_FREEZE_SEARCH_MEMBERS", 1_000);
    let heap_mb = env_u64("BENCH_FREEZE_HEAP_MB", 1_024);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-freeze");
    let runtime = tokio::runtime::Runtime::new()?;
    let load_before = loadavg();
    let mut figures = Vec::new();
    let mut written = None;
    for &members in &sizes {
        let dir = root.join(format!("m{members}"));
        let env = fresh_environment(&runtime, &dir, heap_mb)?;
        let measured = measure_size(
            &runtime,
            &cutover,
            &env,
            &dir,
            members,
            search_members,
            heap_mb,
        );
        let stopped = runtime.block_on(support::teardown(&env));
        // The run's journal outlives the environment, for a closer look at the window.
        let _ = std::fs::copy(
            dir.join("state/runs/bench-freeze/journal.jsonl"),
            root.join(format!("journal-m{members}.jsonl")),
        );
        let figure = measured?;
        stopped.map_err(|e| anyhow::anyhow!("teardown of {}: {e}", dir.display()))?;
        eprintln!("{}", serde_json::to_string_pretty(&figure)?);
        figures.push(figure);
        // The stores are gigabytes at the larger sizes; the figures are kept.
        std::fs::remove_dir_all(&dir)?;
        // Written after every size: a failure at a later size keeps the earlier ones.
        let result = result(&figures, &load_before, heap_mb, search_members);
        let path = measure::write_result("freeze", &result)?;
        written = Some((result, path));
    }
    if let Some((result, path)) = written {
        println!("{}", render_tables(&result));
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn result(figures: &[Value], load_before: &Value, heap_mb: u64, search_members: u64) -> Value {
    json!({
        "date": chrono::Utc::now().to_rfc3339(),
        "cutover": env!("CARGO_PKG_VERSION"),
        "profile": if cfg!(debug_assertions) { "debug (unoptimised)" } else { "optimised" },
        "machine": measure::machine(),
        "load_average": { "before": load_before, "after": loadavg() },
        "neo4j": "5.26.30 Community",
        "heap_mb": heap_mb,
        "search_members": search_members,
        "targets": { "ratio": RATIO_TARGET, "window_seconds": WINDOW_TARGET_S },
        "sizes": figures,
    })
}

/// The `cutover` binary built with this example (`target/<profile>/cutover`).
fn cutover_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("cutover"))
        .filter(|b| b.is_file())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no cutover binary beside {}: build it with the same profile (make bench-freeze does)",
                exe.display()
            )
        })?;
    Ok(bin)
}

/// A new environment in `dir` (whatever an earlier, interrupted bench left there is
/// stopped and removed first).
fn fresh_environment(
    runtime: &tokio::runtime::Runtime,
    dir: &Path,
    heap_mb: u64,
) -> anyhow::Result<Environment> {
    let file = dir.join("env.toml");
    if file.exists() {
        if let Ok(old) = load_env(&file) {
            let _ = runtime.block_on(support::teardown(&old));
        }
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    let shipped = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("environments/local.toml"),
    )?;
    let text: String = shipped
        .lines()
        .map(|line| {
            if line == "name = \"local\"" {
                format!("name = \"{ENV_NAME}\"")
            } else if line.starts_with("state_dir = ") {
                format!("state_dir = \"{}\"", dir.join("state").display())
            } else if line.starts_with("heap = ") {
                format!("heap = \"{heap_mb}m\"")
            } else {
                line.replace("credex-core/local", &format!("credex-core/{ENV_NAME}"))
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&file, text)?;
    load_env(&file)
}

fn load_env(file: &Path) -> anyhow::Result<Environment> {
    Environment::load(file.to_str().unwrap_or_default())
        .map_err(|p| anyhow::anyhow!("{}: {p:?}", file.display()))
}

fn measure_size(
    runtime: &tokio::runtime::Runtime,
    cutover: &Path,
    env: &Environment,
    dir: &Path,
    members: u64,
    search_members: u64,
    heap_mb: u64,
) -> anyhow::Result<Value> {
    let (nodes, relationships) = LedgerSpec::new(members, 1).expected_counts();
    eprintln!("== {members} members: {nodes} nodes, {relationships} relationships on blue ledger");
    let started = Instant::now();
    runtime
        .block_on(support::setup_sized(env, members, search_members, heap_mb))
        .map_err(|e| anyhow::anyhow!("setup: {e}"))?;
    let load_s = started.elapsed().as_secs_f64();
    eprintln!("loaded in {load_s:.1} s");

    let baseline = by_hand(runtime, env, dir)?;
    // The application's view: a writer commits credexes the whole time, to wherever the
    // app's settings point; its longest refused stretch is the window as the app sees it.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = runtime.spawn(support::run_writer(env.clone(), members, stop.clone()));
    std::thread::sleep(Duration::from_secs(3));
    let run = blue_green(cutover, env, dir);
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::SeqCst);
    let log = runtime.block_on(writer)?;
    let run = run?;
    let writes = verify_writes(runtime, env, &log)?;
    let digest = digest_green(runtime, cutover, env)?;

    let window = run["freeze_window_seconds"].as_f64().unwrap_or(f64::NAN);
    let base = baseline["dump_load_seconds"].as_f64().unwrap_or(f64::NAN);
    Ok(json!({
        "members": members,
        "ledger_nodes": nodes,
        "ledger_relationships": relationships,
        "ledger_records": nodes + relationships,
        "load_seconds": load_s,
        "load_records_per_second": (nodes + relationships) as f64 / load_s,
        "baseline": baseline,
        "run": run,
        "digest": digest,
        "writes": writes,
        "freeze_window_seconds": window,
        "ratio": window / base,
        "met_ratio": window / base <= RATIO_TARGET,
        "met_window": window < WINDOW_TARGET_S,
    }))
}

/// The bare `neo4j-admin` dump + load on each blue, both databases at once.
fn by_hand(
    runtime: &tokio::runtime::Runtime,
    env: &Environment,
    dir: &Path,
) -> anyhow::Result<Value> {
    let mut homes = Vec::new();
    for db in ["ledger", "search"] {
        let found = runtime
            .block_on(support::instances(env, db))
            .map_err(|e| anyhow::anyhow!("instances of {db}: {e}"))?;
        let (id, _) = found
            .into_iter()
            .find(|(_, color)| color == "blue")
            .ok_or_else(|| anyhow::anyhow!("no blue {db}"))?;
        homes.push((db, dir.join("state/instances").join(id.as_str())));
    }
    let started = Instant::now();
    let cycles: Vec<anyhow::Result<Value>> = std::thread::scope(|s| {
        let handles: Vec<_> = homes
            .iter()
            .map(|(db, home)| {
                let dumps = dir.join(format!("by-hand-{db}"));
                s.spawn(move || dump_and_load(home, &dumps))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("by-hand thread"))
            .collect()
    });
    let stopped_s = started.elapsed().as_secs_f64();
    let mut per_db = serde_json::Map::new();
    for ((db, _), cycle) in homes.iter().zip(cycles) {
        per_db.insert((*db).into(), cycle?);
    }
    // Each blue must take writes again, as the app sees it.
    for (db, _) in &homes {
        let target = runtime
            .block_on(support::app_target(env, db))
            .map_err(|e| anyhow::anyhow!("app target of {db}: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(180);
        while !runtime.block_on(support::accepts_writes(&target)) {
            anyhow::ensure!(
                Instant::now() < deadline,
                "blue {db} takes no write 180 s after its by-hand load"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let cycle_s = started.elapsed().as_secs_f64();
    let dump_load = per_db
        .values()
        .map(|v| {
            v["dump_seconds"].as_f64().unwrap_or(0.0) + v["load_seconds"].as_f64().unwrap_or(0.0)
        })
        .fold(0.0, f64::max);
    eprintln!("by hand: dump + load {dump_load:.1} s, stop … writable {cycle_s:.1} s");
    Ok(json!({
        "databases": per_db,
        "dump_load_seconds": dump_load,
        "admin_done_seconds": stopped_s,
        "stop_to_writable_seconds": cycle_s,
    }))
}

/// Stop, dump, load the dump back, start: one blue's cycle, each part timed.
fn dump_and_load(home: &Path, dumps: &Path) -> anyhow::Result<Value> {
    std::fs::create_dir_all(dumps)?;
    let systemctl = home.join("cutover-systemctl");
    let admin = home.join("bin/neo4j-admin");
    let stop_s = timed(Command::new(&systemctl).args(["stop", "neo4j"]))?;
    let dump_s = timed(
        Command::new(&admin)
            .args(["database", "dump", "neo4j"])
            .arg(format!("--to-path={}", dumps.display())),
    )?;
    let dump_bytes = std::fs::metadata(dumps.join("neo4j.dump"))?.len();
    let load_s = timed(
        Command::new(&admin)
            .args(["database", "load", "neo4j", "--overwrite-destination=true"])
            .arg(format!("--from-path={}", dumps.display())),
    )?;
    let start_s = timed(Command::new(&systemctl).args(["start", "neo4j"]))?;
    std::fs::remove_dir_all(dumps)?;
    Ok(json!({
        "stop_seconds": stop_s,
        "dump_seconds": dump_s,
        "dump_bytes": dump_bytes,
        "load_seconds": load_s,
        "start_command_seconds": start_s,
    }))
}

fn timed(command: &mut Command) -> anyhow::Result<f64> {
    let started = Instant::now();
    let out = command.output()?;
    anyhow::ensure!(
        out.status.success(),
        "{command:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(started.elapsed().as_secs_f64())
}

/// `cutover run runbooks/blue-green.toml`, and what its report says about the window.
fn blue_green(cutover: &Path, env: &Environment, dir: &Path) -> anyhow::Result<Value> {
    let runbook = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("runbooks/blue-green.toml");
    let env_file = dir.join("env.toml");
    let run = run_measured(
        Command::new(cutover)
            .arg("run")
            .arg(&runbook)
            .arg("--env")
            .arg(&env_file)
            .args(["--set", "bake=5s", "--yes", "--run-id", "bench-freeze"]),
        Duration::from_secs(3 * 3600),
    )?;
    let report_file = Path::new(&env.state_dir).join("runs/bench-freeze/report.json");
    let report: Value = serde_json::from_slice(
        &std::fs::read(&report_file)
            .map_err(|e| anyhow::anyhow!("{}: {e}", report_file.display()))?,
    )?;
    anyhow::ensure!(
        report["outcome"] == "Succeeded",
        "the blue-green did not succeed: {}",
        report["message"]
    );
    let window = &report["freeze_window"];
    let frozen = window["start_offset_seconds"].as_f64().unwrap_or(f64::NAN);
    let writable = window["end_offset_seconds"].as_f64().unwrap_or(f64::NAN);
    // Every step that ran inside the window, and the freeze steps that opened it.
    let span = |step: &Value| {
        Some((
            step["start_offset_seconds"].as_f64()?,
            step["end_offset_seconds"].as_f64()?,
        ))
    };
    let steps = report["steps"].as_array().cloned().unwrap_or_default();
    let freezing = steps
        .iter()
        .filter(|s| s["id"].as_str().is_some_and(|id| id.starts_with("freeze")))
        .filter_map(|s| span(s).map(|(start, _)| start))
        .fold(frozen, f64::min);
    let mut inside = Vec::new();
    for step in &steps {
        let Some((start, end)) = span(step) else {
            continue;
        };
        if end > freezing && start < writable {
            inside.push(json!({
                "step": step["id"],
                "from_frozen_seconds": start - frozen,
                "seconds": end - start,
            }));
        }
    }
    let output = |step: &str, key: &str| -> Value {
        report["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["id"] == step)
            .map(|s| s["outputs"][key].clone())
            .unwrap_or(Value::Null)
    };
    eprintln!(
        "blue-green: {:.1} s, freeze window {:.1} s",
        run.seconds,
        writable - frozen
    );
    Ok(json!({
        "seconds": run.seconds,
        "cutover_peak_rss_kib": run.peak_rss_kib,
        "outcome": report["outcome"],
        "freeze_window_seconds": window["seconds"],
        "green_nodes": output("compare-ledger", "nodes"),
        "green_relationships": output("compare-ledger", "relationships"),
        "steps_in_window": inside,
    }))
}

/// Every acknowledged write, looked up where the app connects now (green).
fn verify_writes(
    runtime: &tokio::runtime::Runtime,
    env: &Environment,
    log: &support::WriterLog,
) -> anyhow::Result<Value> {
    let found = runtime
        .block_on(support::present_where_the_app_connects(
            env,
            &log.acknowledged,
        ))
        .map_err(|e| anyhow::anyhow!("acknowledged writes where the app connects: {e}"))?;
    let acknowledged = log.acknowledged.len() as u64;
    let lost = found
        .iter()
        .map(|(_, _, present)| acknowledged.saturating_sub(*present))
        .max()
        .unwrap_or(0);
    let present: serde_json::Map<String, Value> = found
        .into_iter()
        .map(|(db, _, n)| (db.to_owned(), json!(n)))
        .collect();
    eprintln!(
        "writer: {acknowledged} acknowledged, {lost} lost, longest refused stretch {:.1} s",
        log.longest_gap_ms as f64 / 1000.0
    );
    Ok(json!({
        "acknowledged": acknowledged,
        "present_on_green": present,
        "lost": lost,
        "refused_and_retried": log.refused,
        "longest_refused_seconds": log.longest_gap_ms as f64 / 1000.0,
        "per_target": log.per_target,
    }))
}

/// `cutover digest` of green's ledger as the app connects to it now.
fn digest_green(
    runtime: &tokio::runtime::Runtime,
    cutover: &Path,
    env: &Environment,
) -> anyhow::Result<Value> {
    let target = runtime
        .block_on(support::app_target(env, "ledger"))
        .map_err(|e| anyhow::anyhow!("app target of ledger: {e}"))?;
    let mut command = Command::new(cutover);
    command
        .args(["digest", "--uri", &target.uri, "--user", &target.user])
        .args([
            "--password-env",
            "BENCH_FREEZE_PASSWORD",
            "--database",
            "neo4j",
        ])
        .env("BENCH_FREEZE_PASSWORD", target.password.expose_secret());
    for key in [
        "Member.memberID",
        "Account.accountID",
        "Credex.credexID",
        "Daynode.Date",
    ] {
        command.args(["--key", key]);
    }
    let digest = run_measured(&mut command, Duration::from_secs(3600))?;
    eprintln!("digest of green: {:.1} s", digest.seconds);
    Ok(json!({
        "seconds": digest.seconds,
        "peak_rss_kib": digest.peak_rss_kib,
        "partitions": 4,
    }))
}

fn render_tables(result: &Value) -> String {
    let sizes = result["sizes"].as_array().cloned().unwrap_or_default();
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let mut out = String::from(
        "| ledger records | bare dump + load s | freeze window s | ratio (≤ 1.2) | under 60 s | writer's longest refused stretch s | writes acknowledged / lost | by hand, stop → writable s | whole run s | digest of green s (records/s) | load s |\n|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for s in &sizes {
        let records = f(&s["ledger_records"]);
        out.push_str(&format!(
            "| {} | {:.1} | {:.1} | {:.2}× | {} | {:.1} | {} / {} | {:.1} | {:.1} | {:.1} ({:.0}) | {:.1} |\n",
            s["ledger_records"],
            f(&s["baseline"]["dump_load_seconds"]),
            f(&s["freeze_window_seconds"]),
            f(&s["ratio"]),
            if s["met_window"] == true { "yes" } else { "**no**" },
            f(&s["writes"]["longest_refused_seconds"]),
            s["writes"]["acknowledged"],
            s["writes"]["lost"],
            f(&s["baseline"]["stop_to_writable_seconds"]),
            f(&s["run"]["seconds"]),
            f(&s["digest"]["seconds"]),
            records / f(&s["digest"]["seconds"]),
            f(&s["load_seconds"]),
        ));
    }
    for s in &sizes {
        out.push_str(&format!(
            "\nWhere the window goes ({} ledger records; seconds from the moment blue was frozen, the report's `frozen_at`; the freeze steps start before it):\n\n| step | from s | for s |\n|---|---:|---:|\n",
            s["ledger_records"]
        ));
        for step in s["run"]["steps_in_window"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "| {} | {:.1} | {:.1} |\n",
                step["step"].as_str().unwrap_or(""),
                f(&step["from_frozen_seconds"]),
                f(&step["seconds"]),
            ));
        }
    }
    out
}
