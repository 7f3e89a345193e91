//! `make bench`: how fast is `cutover digest`, and how much memory does it use?
//!
//! On a generated ledger served by ArcadeDB (default 131,000 members ≈ 1.0 M nodes and
//! 2.8 M relationships; `BENCH_SIZE=<members>` for another size), in one run:
//! 1. digest vs raw `neo4rs` streaming of the same records, discarded (one stream), and
//!    digest with parallel partitions vs that single raw stream;
//! 2. `cutover digest` vs the official Python `neo4j` driver streaming and hashing
//!    everything (`bench/digest_baseline.py`);
//! 3. peak RSS of `cutover digest` at two graph sizes (the second is `BENCH_SIZE / 4`).
//!
//! The machine may be shared: each measurement but the Python baseline runs
//! `BENCH_ROUNDS` times (default 2), interleaved; ratios use the best time of each, and
//! the JSON keeps every sample.
//!
//! The ledgers are loaded through ArcadeDB's HTTP command API in `UNWIND` batches
//! ([`LedgerSink::ArcadeHttp`], `BENCH_BATCH=<rows>`, default 2,000): the same statements
//! and the same graph as the Bolt loader, which must write one row per statement here.
//!
//! Prints a table and writes `bench/results/digest-<date>.json`. Not a test: no
//! assertions on timings. Everything runs on loopback. `BENCH_DIR=<dir>` keeps the
//! server's instance directory so a second run skips loading.

// `cutover digest` is the binary's CLI, not the library's: the bench compiles the same
// source and calls its digest entry point (the rest of the CLI is unused here).
#[allow(dead_code)]
#[path = "../src/cli/mod.rs"]
mod cli;
#[allow(dead_code)]
#[path = "measure.rs"]
mod measure;

use cutover::db::arcadedb::{free_loopback_port, ArcadeInstall, ArcadeServer, ArcadeServerConfig};
use cutover::db::bolt::BoltTarget;
use cutover::integrity::{connect_for_reading, fingerprint, FingerprintOptions};
use cutover::ledger::{count_records, load_ledger_into, LedgerSink, LedgerSpec};
use cutover::progress::WorkMeter;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const PASSWORD: &str = "cutover-bench-password";
const CHILD_FLAG: &str = "--digest-child";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if args.get(1).map(String::as_str) == Some(CHILD_FLAG) {
        // Re-executed as the digest child when the `cutover` binary has no `digest` yet:
        // runs exactly the code behind `cutover digest`.
        let code = rt.block_on(child_digest(&args[2..]))?;
        std::process::exit(code);
    }
    rt.block_on(bench())
}

async fn child_digest(args: &[String]) -> anyhow::Result<i32> {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: cli::digest::DigestArgs,
    }
    let cli =
        Cli::try_parse_from(std::iter::once("digest".to_owned()).chain(args.iter().cloned()))?;
    let code = cli::digest::run(
        cli.args,
        cli::OutputFormat::Json,
        cutover::progress::no_progress(),
    )
    .await?;
    Ok(if code == std::process::ExitCode::SUCCESS {
        0
    } else {
        1
    })
}

struct Db {
    name: String,
    spec: LedgerSpec,
    target: BoltTarget,
    load: serde_json::Value,
}

async fn bench() -> anyhow::Result<()> {
    let members = measure::env_u64("BENCH_SIZE", 131_000);
    let small_members = measure::env_u64("BENCH_SMALL_SIZE", (members / 4).max(1));
    let parallel = measure::env_u64("BENCH_PARTITIONS", 4) as usize;
    let heap_mb = measure::env_u64("BENCH_HEAP_MB", 6144) as u32;
    let batch = measure::env_u64("BENCH_BATCH", 2_000).max(1) as usize;
    let rounds = measure::env_u64("BENCH_ROUNDS", 2).max(1);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));

    let install =
        ArcadeInstall::discover().map_err(|f| anyhow::anyhow!("{} ({:?})", f.message, f.hint))?;
    let (dir, _tmp) = match std::env::var_os("BENCH_DIR") {
        Some(d) => (PathBuf::from(d), None),
        None => {
            let t = tempfile::Builder::new()
                .prefix("cutover-bench-")
                .tempdir()?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let mut config = ArcadeServerConfig::new(
        install.clone(),
        dir.join("instance"),
        free_loopback_port().map_err(|f| anyhow::anyhow!(f.message))?,
        free_loopback_port().map_err(|f| anyhow::anyhow!(f.message))?,
        SecretString::from(PASSWORD.to_owned()),
    );
    config.heap_mb = heap_mb;
    config.kill_on_drop = true;
    let mut server = ArcadeServer::start(config)
        .await
        .map_err(|f| anyhow::anyhow!(f.message))?;
    server
        .wait_ready(Duration::from_secs(180))
        .await
        .map_err(|f| anyhow::anyhow!(f.message))?;
    eprintln!(
        "ArcadeDB {} ready on bolt port {}",
        install.version,
        server.bolt_port()
    );

    let mut dbs = Vec::new();
    for (name, m) in [
        (format!("ledger{members}"), members),
        (format!("ledger{small_members}"), small_members),
    ] {
        let spec = LedgerSpec {
            batch_size: batch,
            ..LedgerSpec::new(m, 42)
        };
        let http = server.http();
        let fail = |f: cutover::failure::Failure| anyhow::anyhow!(f.message);
        let mut created = http.ensure_database(&name).await.map_err(fail)?;
        let target = server.bolt_target(&name);
        if !created
            && count_records(&connect_for_reading(&target, 1).await?).await?
                != spec.expected_counts()
        {
            // A kept BENCH_DIR with a partial or different ledger: start it afresh.
            eprintln!("{name} holds another ledger; dropping it");
            server
                .http_command(&format!("drop database {name}"))
                .await
                .map_err(fail)?;
            created = http.ensure_database(&name).await.map_err(fail)?;
        }
        let load = if created {
            eprintln!("loading {name} ({m} members) over HTTP in batches of {batch} …");
            let sink = LedgerSink::ArcadeHttp {
                http,
                database: &name,
            };
            let stats = load_ledger_into(sink, &spec, &WorkMeter::silent()).await?;
            eprintln!(
                "loaded {} nodes + {} relationships in {:.1}s ({:.0} records/s)",
                stats.nodes,
                stats.relationships,
                stats.elapsed.as_secs_f64(),
                stats.records_per_second
            );
            json!({"path": "ArcadeDB HTTP command API, Cypher UNWIND batches", "batch_rows": batch, "nodes": stats.nodes, "relationships": stats.relationships, "seconds": stats.elapsed.as_secs_f64(), "records_per_second": stats.records_per_second})
        } else {
            json!({"reused": true})
        };
        dbs.push(Db {
            name,
            spec,
            target,
            load,
        });
    }

    let big = &dbs[0];
    let (nodes, rels) = big.spec.expected_counts();
    let records = (nodes + rels) as f64;
    let graph = connect_for_reading(&big.target, parallel + 1).await?;

    // Warm the server's caches once so the first measurement is not penalised.
    raw_stream(&graph).await?;

    // The machine is shared and noisy (other builds come and go), so every measurement
    // is taken `rounds` times, interleaved, and the ratios use each one's best time
    // (all samples are in the JSON).
    let serial_opts = FingerprintOptions {
        parallelism: 1,
        split_threshold: 0,
        ..Default::default()
    };
    let par_opts = FingerprintOptions {
        parallelism: parallel,
        ..Default::default()
    };
    let (exe, exe_kind) = digest_command();
    let mut samples: [Vec<f64>; 3] = Default::default();
    let mut cli_samples: Vec<Vec<(f64, i64)>> = vec![Vec::new(); dbs.len()];
    for round in 1..=rounds {
        let raw = time(|| raw_stream(&graph)).await?;
        eprintln!("round {round}: raw neo4rs single stream: {raw:.2}s");
        let serial = time(|| async {
            fingerprint(&graph, &big.target.uri, &serial_opts, &WorkMeter::silent())
                .await
                .map(|_| ())
        })
        .await?;
        eprintln!("round {round}: digest, 1 session: {serial:.2}s");
        let par = time(|| async {
            fingerprint(&graph, &big.target.uri, &par_opts, &WorkMeter::silent())
                .await
                .map(|_| ())
        })
        .await?;
        eprintln!("round {round}: digest, {parallel} sessions: {par:.2}s");
        for (s, v) in samples.iter_mut().zip([raw, serial, par]) {
            s.push(v);
        }
        for (db, runs) in dbs.iter().zip(cli_samples.iter_mut()) {
            let r = run_digest_child(&exe, &db.target, parallel)?;
            eprintln!(
                "round {round}: cutover digest {}: {:.2}s, peak RSS {} KiB",
                db.name, r.0, r.1
            );
            runs.push(r);
        }
    }
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let (raw, digest_serial, digest_parallel) =
        (best(&samples[0]), best(&samples[1]), best(&samples[2]));
    let mut cli = Vec::new();
    for (db, runs) in dbs.iter().zip(&cli_samples) {
        let (n, r) = db.spec.expected_counts();
        let seconds: Vec<f64> = runs.iter().map(|r| r.0).collect();
        let rss = runs.iter().map(|r| r.1).max().unwrap_or(0);
        cli.push(json!({"database": db.name, "members": db.spec.members, "records": n + r, "seconds": best(&seconds), "seconds_samples": seconds, "peak_rss_kib": rss, "peak_rss_kib_samples": runs.iter().map(|r| r.1).collect::<Vec<_>>()}));
    }
    let cli_big = cli[0]["seconds"].as_f64().unwrap_or(f64::NAN);
    let cli_big_worst = cli_samples[0].iter().map(|r| r.0).fold(f64::NAN, f64::max);

    let python = root.join(".venv/bin/python");
    let started = Instant::now();
    let out = Command::new(&python)
        .arg(root.join("bench/digest_baseline.py"))
        .arg(&big.target.uri)
        .arg(&big.target.user)
        .arg(&big.name)
        .env("BENCH_PASSWORD", big.target.password.expose_secret())
        .output()?;
    // A failed baseline has no time (NaN → null in the JSON), not the time to fail.
    let (py_seconds, py) = if out.status.success() {
        (
            started.elapsed().as_secs_f64(),
            serde_json::from_slice(&out.stdout).unwrap_or(json!(null)),
        )
    } else {
        let last = String::from_utf8_lossy(&out.stderr);
        let last = last.lines().last().unwrap_or("").to_owned();
        eprintln!("python baseline failed: {last}");
        (f64::NAN, json!({ "error": last }))
    };
    eprintln!("python neo4j driver: {py_seconds:.2}s");

    let rss = |i: usize| cli[i]["peak_rss_kib"].as_f64().unwrap_or(f64::NAN);
    let overhead = digest_serial / raw;
    let parallel_speedup = raw / digest_parallel;
    let python_ratio = py_seconds / cli_big;
    let rss_growth = rss(0) / rss(1);
    let result = json!({
        "date": chrono::Utc::now().to_rfc3339(),
        "arcadedb": install.version,
        "machine": measure::machine(),
        "graph": {"members": big.spec.members, "nodes": nodes, "relationships": rels},
        "load": dbs.iter().map(|d| json!({"database": d.name, "load": d.load})).collect::<Vec<_>>(),
        "seconds": {
            "raw_neo4rs_single_stream": raw,
            "digest_1_session": digest_serial,
            format!("digest_{parallel}_sessions"): digest_parallel,
            "cutover_digest_cli": cli_big,
            "python_neo4j_driver": py_seconds,
        },
        "ratios": {
            "hashing_overhead_digest_1_session_over_raw": overhead,
            "raw_single_stream_over_parallel_digest": parallel_speedup,
            "python_over_cutover_digest_cli": python_ratio,
            "python_over_cutover_digest_cli_slowest_run": py_seconds / cli_big_worst,
            "peak_rss_big_over_small": rss_growth,
        },
        // The targets, and whether this run met them (no fudging: a miss is a miss).
        "targets": {
            "hashing_overhead_at_most_1_10": overhead <= 1.10,
            "parallel_digest_faster_than_raw_single_stream": parallel_speedup > 1.0,
            "at_least_5x_faster_than_python": python_ratio >= 5.0,
            "peak_rss_does_not_grow_with_size_within_10_percent": rss_growth <= 1.10,
        },
        "rounds": rounds,
        "samples_seconds": {
            "raw_neo4rs_single_stream": samples[0],
            "digest_1_session": samples[1],
            format!("digest_{parallel}_sessions"): samples[2],
        },
        "records_per_second": {"raw": records / raw, "digest_1_session": records / digest_serial, "digest_parallel": records / digest_parallel},
        "cutover_digest_runs": cli,
        "cutover_digest_binary": exe_kind,
        "python": py,
    });
    let table = render_table(&result, parallel);
    println!("{table}");
    let path = measure::write_result("digest", &result)?;
    eprintln!("wrote {}", path.display());
    server
        .stop(Duration::from_secs(20))
        .await
        .map_err(|f| anyhow::anyhow!(f.message))?;
    Ok(())
}

async fn time<F, Fut, E>(f: F) -> anyhow::Result<f64>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: Into<anyhow::Error>,
{
    let t = Instant::now();
    f().await.map_err(Into::into)?;
    Ok(t.elapsed().as_secs_f64())
}

/// The digest's own queries (no identity keys), one after the other, rows discarded.
async fn raw_stream(graph: &neo4rs::Graph) -> anyhow::Result<()> {
    let mut queries = Vec::new();
    for (proc_, col, is_label) in [
        ("db.labels", "label", true),
        ("db.relationshipTypes", "relationshipType", false),
    ] {
        let mut s = graph
            .execute(neo4rs::query(&format!(
                "CALL {proc_}() YIELD {col} RETURN {col} AS name"
            )))
            .await?;
        while let Some(row) = s.next().await? {
            let name: String = row.get("name")?;
            queries.push(if is_label {
                format!("MATCH (n:`{name}`) RETURN labels(n) AS l, properties(n) AS p")
            } else {
                format!(
                    "MATCH (a)-[r:`{name}`]->(b) RETURN labels(a) AS al, properties(a) AS ap, properties(r) AS rp, labels(b) AS bl, properties(b) AS bp"
                )
            });
        }
    }
    for q in queries {
        let mut s = graph.execute(neo4rs::query(&q)).await?;
        while let Some(row) = s.next().await? {
            drop(row);
        }
    }
    Ok(())
}

/// The `cutover` binary when it has a `digest` subcommand, else this bench re-executed
/// as the digest child (same entry point, `cli::digest::run`, compiled from `src/cli`).
fn digest_command() -> (Vec<String>, &'static str) {
    let bin = env!("CARGO_BIN_EXE_cutover");
    let wired = Command::new(bin)
        .args(["digest", "--help"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if wired {
        (vec![bin.to_owned(), "digest".into()], "cutover digest")
    } else {
        let me = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        (
            vec![me, CHILD_FLAG.into()],
            "bench child running cli::digest::run (the binary had no digest subcommand yet)",
        )
    }
}

/// Runs the digest as a child process; returns (wall seconds, peak RSS in KiB).
fn run_digest_child(
    exe: &[String],
    target: &BoltTarget,
    partitions: usize,
) -> anyhow::Result<(f64, i64)> {
    const LIMIT: Duration = Duration::from_secs(3 * 3600);
    let measured = measure::run_measured(
        Command::new(&exe[0])
            .args(&exe[1..])
            .args([
                "--uri",
                &target.uri,
                "--user",
                &target.user,
                "--password-env",
                "BENCH_PASSWORD",
            ])
            .args(["--database", target.database.as_deref().unwrap_or("")])
            .args(["--partitions", &partitions.to_string()])
            .env("BENCH_PASSWORD", target.password.expose_secret()),
        LIMIT,
    )?;
    Ok((measured.seconds, measured.peak_rss_kib))
}

fn render_table(r: &serde_json::Value, parallel: usize) -> String {
    let s = &r["seconds"];
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    let mut out = String::new();
    out.push_str(&format!(
        "graph: {} nodes, {} relationships ({} members)\n\n",
        r["graph"]["nodes"], r["graph"]["relationships"], r["graph"]["members"]
    ));
    out.push_str("| measurement | seconds | records/s |\n|---|---:|---:|\n");
    let records = f(&r["graph"]["nodes"]) + f(&r["graph"]["relationships"]);
    for (name, key) in [
        (
            "raw neo4rs, 1 stream, rows discarded",
            "raw_neo4rs_single_stream".to_owned(),
        ),
        ("digest (library), 1 session", "digest_1_session".to_owned()),
        (
            &*format!("digest (library), {parallel} sessions"),
            format!("digest_{parallel}_sessions"),
        ),
        ("`cutover digest` process", "cutover_digest_cli".to_owned()),
        (
            "Python neo4j driver + hashlib",
            "python_neo4j_driver".to_owned(),
        ),
    ] {
        out.push_str(&format!(
            "| {name} | {:.2} | {:.0} |\n",
            f(&s[&key]),
            records / f(&s[&key])
        ));
    }
    let ra = &r["ratios"];
    out.push_str(&format!(
        "\nhashing overhead (digest 1 session / raw): {:.3}\nraw single stream / parallel digest: {:.2}×\nPython / cutover digest: {:.2}×\n",
        f(&ra["hashing_overhead_digest_1_session_over_raw"]),
        f(&ra["raw_single_stream_over_parallel_digest"]),
        f(&ra["python_over_cutover_digest_cli"])
    ));
    out.push_str(&format!(
        "peak RSS big / small graph: {:.2}\ntargets met: {}\n",
        f(&ra["peak_rss_big_over_small"]),
        r["targets"]
    ));
    out.push_str("\n| graph | records | peak RSS (MiB) |\n|---|---:|---:|\n");
    for run in r["cutover_digest_runs"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "| {} | {} | {:.1} |\n",
            run["database"].as_str().unwrap_or(""),
            run["records"],
            f(&run["peak_rss_kib"]) / 1024.0
        ));
    }
    out
}
