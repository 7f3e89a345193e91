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
//! Prints a table and writes `bench/results/digest-<date>.json`. Not a test: no
//! assertions on timings. `BENCH_DIR=<dir>` keeps the server's instance directory so a
//! second run skips loading.

use cutover::db::arcadedb::{free_loopback_port, ArcadeInstall, ArcadeServer, ArcadeServerConfig};
use cutover::db::bolt::BoltTarget;
use cutover::engine::progress::WorkMeter;
use cutover::integrity::{connect_for_reading, fingerprint, FingerprintOptions};
use cutover::ledger::{load_ledger, LedgerSpec};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const PASSWORD: &str = "cutover-bench-password";
const CHILD_FLAG: &str = "--digest-child";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

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
        args: cutover::cli::digest::DigestArgs,
    }
    let cli =
        Cli::try_parse_from(std::iter::once("digest".to_owned()).chain(args.iter().cloned()))?;
    let code = cutover::cli::digest::run(
        cli.args,
        cutover::cli::OutputFormat::Json,
        cutover::engine::progress::no_progress(),
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
    let members = env_u64("BENCH_SIZE", 131_000);
    let small_members = env_u64("BENCH_SMALL_SIZE", (members / 4).max(1));
    let parallel = env_u64("BENCH_PARTITIONS", 4) as usize;
    let heap_mb = env_u64("BENCH_HEAP_MB", 6144) as u32;
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
        let spec = LedgerSpec::new(m, 42);
        let created = server
            .http()
            .ensure_database(&name)
            .await
            .map_err(|f| anyhow::anyhow!(f.message))?;
        let target = server.bolt_target(&name);
        let graph = connect_for_reading(&target, 2).await?;
        let load = if created || count(&graph).await? != spec.expected_counts() {
            eprintln!("loading {name} ({m} members) …");
            let stats = load_ledger(&graph, &spec, &WorkMeter::silent()).await?;
            eprintln!(
                "loaded {} nodes + {} relationships in {:.1}s ({:.0} records/s)",
                stats.nodes,
                stats.relationships,
                stats.elapsed.as_secs_f64(),
                stats.records_per_second
            );
            json!({"nodes": stats.nodes, "relationships": stats.relationships, "seconds": stats.elapsed.as_secs_f64(), "records_per_second": stats.records_per_second})
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

    let raw = time(|| raw_stream(&graph)).await?;
    eprintln!("raw neo4rs single stream: {raw:.2}s");
    let serial_opts = FingerprintOptions {
        parallelism: 1,
        split_threshold: 0,
        ..Default::default()
    };
    let digest_serial = time(|| async {
        fingerprint(&graph, &big.target.uri, &serial_opts, &WorkMeter::silent())
            .await
            .map(|_| ())
    })
    .await?;
    eprintln!("digest, 1 session: {digest_serial:.2}s");
    let par_opts = FingerprintOptions {
        parallelism: parallel,
        ..Default::default()
    };
    let digest_parallel = time(|| async {
        fingerprint(&graph, &big.target.uri, &par_opts, &WorkMeter::silent())
            .await
            .map(|_| ())
    })
    .await?;
    eprintln!("digest, {parallel} sessions: {digest_parallel:.2}s");

    let (exe, exe_kind) = digest_command();
    let mut cli = Vec::new();
    for db in &dbs {
        let r = run_digest_child(&exe, &db.target, parallel)?;
        eprintln!(
            "cutover digest {}: {:.2}s, peak RSS {} KiB",
            db.name, r.0, r.1
        );
        let records = {
            let (n, r) = db.spec.expected_counts();
            n + r
        };
        cli.push(json!({"database": db.name, "members": db.spec.members, "records": records, "seconds": r.0, "peak_rss_kib": r.1}));
    }
    let cli_big = cli[0]["seconds"].as_f64().unwrap_or(f64::NAN);

    let python = root.join(".venv/bin/python");
    let started = Instant::now();
    let out = Command::new(&python)
        .arg(root.join("bench/digest_baseline.py"))
        .arg(&big.target.uri)
        .arg(&big.target.user)
        .arg(&big.name)
        .env("BENCH_PASSWORD", big.target.password.expose_secret())
        .output()?;
    let py_seconds = started.elapsed().as_secs_f64();
    let py: serde_json::Value = if out.status.success() {
        serde_json::from_slice(&out.stdout).unwrap_or(json!(null))
    } else {
        json!({"error": String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("").to_owned()})
    };
    eprintln!("python neo4j driver: {py_seconds:.2}s");

    let result = json!({
        "date": chrono::Utc::now().to_rfc3339(),
        "arcadedb": install.version,
        "machine": {"cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)},
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
            "hashing_overhead_digest_1_session_over_raw": digest_serial / raw,
            "raw_single_stream_over_parallel_digest": raw / digest_parallel,
            "python_over_cutover_digest_cli": py_seconds / cli_big,
        },
        "records_per_second": {"raw": records / raw, "digest_1_session": records / digest_serial, "digest_parallel": records / digest_parallel},
        "cutover_digest_runs": cli,
        "cutover_digest_binary": exe_kind,
        "python": py,
    });
    let table = render_table(&result, parallel);
    println!("{table}");
    let dir = root.join("bench/results");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!(
        "digest-{}.json",
        chrono::Utc::now().format("%Y-%m-%d")
    ));
    std::fs::write(&path, serde_json::to_string_pretty(&result)?)?;
    eprintln!("wrote {}", path.display());
    server
        .stop(Duration::from_secs(20))
        .await
        .map_err(|f| anyhow::anyhow!(f.message))?;
    Ok(())
}

async fn count(graph: &neo4rs::Graph) -> anyhow::Result<(u64, u64)> {
    let mut out = [0u64; 2];
    for (i, q) in [
        "MATCH (n) RETURN count(n) AS c",
        "MATCH ()-[r]->() RETURN count(r) AS c",
    ]
    .iter()
    .enumerate()
    {
        let mut s = graph.execute(neo4rs::query(q)).await?;
        if let Some(row) = s.next().await? {
            out[i] = row.get::<i64>("c")?.max(0) as u64;
        }
    }
    Ok((out[0], out[1]))
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
/// as the digest child (same library entry point, `cutover::cli::digest::run`).
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
        (vec![me, CHILD_FLAG.into()], "bench child running cutover::cli::digest::run (the binary had no digest subcommand yet)")
    }
}

/// Runs the digest as a child process; returns (wall seconds, peak RSS in KiB) from
/// `wait4`'s rusage of that child.
fn run_digest_child(
    exe: &[String],
    target: &BoltTarget,
    partitions: usize,
) -> anyhow::Result<(f64, i64)> {
    let started = Instant::now();
    let child = Command::new(&exe[0])
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
        .env("BENCH_PASSWORD", target.password.expose_secret())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: plain FFI call with valid pointers; the child is ours and not yet reaped.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        r == pid,
        "wait4 failed: {}",
        std::io::Error::last_os_error()
    );
    anyhow::ensure!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "digest child failed with status {status}"
    );
    std::mem::forget(child);
    Ok((seconds, usage.ru_maxrss))
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
    out.push_str("\n| graph | records | peak RSS (MiB) |\n|---|---:|---:|\n");
    for run in r["cutover_digest_runs"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "| {} | {} | {:.1} |\n",
            run["database"].as_str().unwrap_or(""),
            run["records"],
            f(&run["peak_rss_kib"]) / 1024.0
        ));
    }
    let _ = Path::new("");
    out
}
