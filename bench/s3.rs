//! `make bench-s3`: does cutover's object store stream an artifact to and from S3, with
//! its SHA-256, as fast as `aws s3 cp` followed by `sha256sum`, in bounded memory?
//!
//! Against the moto server on loopback, with one artifact of `BENCH_S3_MIB` MiB (default
//! 1,024) of incompressible bytes, in one run:
//! 1. **upload:** `S3Store::put_file` (multipart, SHA-256 of the whole stream and of every
//!    part, the `cutover-sha256` tag) vs `aws s3 cp FILE s3://…` then `sha256sum FILE`;
//! 2. **download:** `S3Store::get_file_verified` (hashed on the way, renamed only when it
//!    matches the expected SHA-256) vs `aws s3 cp s3://… FILE` then `sha256sum FILE`;
//! 3. the peak RSS of the cutover side of each.
//!
//! The cutover side runs as a child process (this bench re-executed with `--s3-child`)
//! so its start, its memory and its time are measured as the CLI's are. Each pair runs
//! `BENCH_ROUNDS` times (default 2), interleaved; ratios use the best time of each, and
//! the JSON keeps every sample. Both sides pay moto's own cost, which dominates on this
//! machine: the ratio says whether cutover adds anything to it, not what S3 would give.
//!
//! Prints a table and writes `bench/results/s3-<date>.json`. Not a test: no assertions on
//! timings. Everything runs on loopback.

#[path = "../tests/it/harness/mod.rs"]
mod harness;
#[allow(dead_code)]
#[path = "measure.rs"]
mod measure;

use aws_sdk_s3::config::Credentials;
use cutover::ids::ObjectKey;
use cutover::providers::aws::s3_store::{DEFAULT_PARTS_IN_FLIGHT, DEFAULT_PART_SIZE};
use cutover::providers::aws::{AwsClients, AwsSettings, S3Store};
use cutover::providers::ObjectStore;
use harness::moto::{MotoServer, ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const CHILD_FLAG: &str = "--s3-child";
const BUCKET: &str = "cutover-bench";
/// No single transfer of this bench may take longer (then the bench fails).
const LIMIT: Duration = Duration::from_secs(1800);
/// The target for the cutover side's peak RSS (issue: ≤ 64 MiB).
const RSS_TARGET_MIB: f64 = 64.0;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if args.get(1).map(String::as_str) == Some(CHILD_FLAG) {
        let report = rt.block_on(child(&args[2..]))?;
        println!("{report}");
        return Ok(());
    }
    rt.block_on(bench())
}

/// The settings of the bench's store on `endpoint`.
fn settings(endpoint: &str) -> AwsSettings {
    AwsSettings {
        region: REGION.into(),
        endpoint_url: Some(endpoint.into()),
        profile: None,
        bucket: BUCKET.into(),
        prefix: "bench".into(),
        kms_key_id: None,
    }
}

async fn clients(endpoint: &str) -> AwsClients {
    let sdk = cutover::providers::aws::config::sdk_defaults(REGION)
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
            None,
            None,
            "bench",
        ))
        .load()
        .await;
    AwsClients::new(&sdk, &settings(endpoint))
}

/// The store's part size (bytes) and parts in flight: its defaults, or
/// `BENCH_S3_PARTS=<MiB>,<parts>`.
fn parts() -> (usize, usize) {
    let given = std::env::var("BENCH_S3_PARTS").ok().and_then(|v| {
        let (mib, n) = v.split_once(',')?;
        Some((
            mib.trim().parse::<usize>().ok()? << 20,
            n.trim().parse().ok()?,
        ))
    });
    given.unwrap_or((DEFAULT_PART_SIZE, DEFAULT_PARTS_IN_FLIGHT))
}

/// The cutover side: `upload ENDPOINT KEY FILE` or `download ENDPOINT KEY FILE SHA256`,
/// with the store's default part size and parts in flight. Prints one JSON line.
async fn child(args: &[String]) -> anyhow::Result<Value> {
    let [op, endpoint, key, file, rest @ ..] = args else {
        anyhow::bail!("usage: {CHILD_FLAG} upload|download ENDPOINT KEY FILE [SHA256]");
    };
    let (part_size, in_flight) = parts();
    let store = S3Store::new(clients(endpoint).await.s3, settings(endpoint))
        .with_parts(part_size, in_flight);
    let key = ObjectKey::new(key);
    let info = match (op.as_str(), rest) {
        ("upload", []) => store.put_file(&key, Path::new(file)).await?,
        ("download", [sha]) => {
            store
                .get_file_verified(&key, Path::new(file), Some(sha))
                .await?
        }
        _ => anyhow::bail!("unknown child operation {op:?} {rest:?}"),
    };
    Ok(json!({
        "size": info.size,
        "sha256": info.sha256,
        "peak_rss_kib": measure::own_peak_rss_kib(),
    }))
}

async fn bench() -> anyhow::Result<()> {
    let mib = measure::env_u64("BENCH_S3_MIB", 1024);
    let rounds = measure::env_u64("BENCH_ROUNDS", 2).max(1) as usize;
    let load_before = measure::loadavg();
    let work = tempfile::Builder::new()
        .prefix("cutover-s3-bench-")
        .tempdir()?;
    let artifact = work.path().join("artifact.dump");
    let expected = write_artifact(&artifact, mib)?;
    eprintln!("artifact: {mib} MiB, sha256 {expected}");

    let moto = MotoServer::start().await;
    let endpoint = moto.endpoint_url();
    create_bucket(&endpoint).await?;
    let aws = harness::venv_bin("aws");
    let exe = std::env::current_exe()?;
    let cli = |args: &[&str]| {
        let mut c = Command::new(&aws);
        c.args(args)
            .args(["--endpoint-url", &endpoint])
            .envs(moto.env());
        c
    };
    let sha256sum = |path: &Path| -> anyhow::Result<measure::Measured> {
        let m = measure::run_measured(Command::new("sha256sum").arg(path), LIMIT)?;
        let printed = m.stdout.split_whitespace().next().unwrap_or_default();
        anyhow::ensure!(
            printed == expected,
            "sha256sum printed {printed}, not {expected}"
        );
        Ok(m)
    };
    let child = |args: &[&str]| -> anyhow::Result<(measure::Measured, Value)> {
        let m = measure::run_measured(
            Command::new(&exe)
                .arg(CHILD_FLAG)
                .args(args)
                .env("AWS_CONFIG_FILE", "/dev/null")
                .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
            LIMIT,
        )?;
        let report: Value = serde_json::from_str(m.stdout.trim())?;
        anyhow::ensure!(
            report["sha256"].as_str() == Some(expected.as_str()),
            "the store reported sha256 {}, not {expected}",
            report["sha256"]
        );
        Ok((m, report))
    };

    let mut samples = Vec::new();
    for round in 0..rounds {
        let base_key = format!("bench/base-{round}.dump");
        let s3_url = format!("s3://{BUCKET}/{base_key}");
        let file = artifact.display().to_string();
        let base_up = measure::run_measured(
            &mut cli(&["s3", "cp", &file, &s3_url, "--only-show-errors"]),
            LIMIT,
        )?;
        let base_up_hash = sha256sum(&artifact)?;
        let got = work.path().join(format!("base-{round}.dump"));
        let got_s = got.display().to_string();
        let base_down = measure::run_measured(
            &mut cli(&["s3", "cp", &s3_url, &got_s, "--only-show-errors"]),
            LIMIT,
        )?;
        let base_down_hash = sha256sum(&got)?;
        std::fs::remove_file(&got)?;
        // One GET, no ranges: `aws s3 cp` downloads in parallel ranged GETs, which moto
        // answers slowly for large objects, so the single stream is the fairer baseline.
        let whole = measure::run_measured(
            &mut cli(&[
                "s3api",
                "get-object",
                "--bucket",
                BUCKET,
                "--key",
                &base_key,
                &got_s,
            ]),
            LIMIT,
        )?;
        let whole_hash = sha256sum(&got)?;
        std::fs::remove_file(&got)?;
        measure::run_measured(
            &mut cli(&["s3", "rm", &s3_url, "--only-show-errors"]),
            LIMIT,
        )?;

        let key = format!("store-{round}.dump");
        let (up, up_report) = child(&["upload", &endpoint, &key, &file])?;
        let got = work.path().join(format!("store-{round}.dump"));
        let got_s = got.display().to_string();
        let (down, down_report) = child(&["download", &endpoint, &key, &got_s, &expected])?;
        std::fs::remove_file(&got)?;
        let stored = format!("s3://{BUCKET}/bench/{key}");
        measure::run_measured(
            &mut cli(&["s3", "rm", &stored, "--only-show-errors"]),
            LIMIT,
        )?;

        let sample = json!({
            "round": round,
            "baseline_upload_seconds": {"aws_s3_cp": base_up.seconds, "sha256sum": base_up_hash.seconds},
            "baseline_download_seconds": {"aws_s3_cp": base_down.seconds, "sha256sum": base_down_hash.seconds},
            "baseline_single_get_seconds": {"aws_s3api_get_object": whole.seconds, "sha256sum": whole_hash.seconds},
            "baseline_peak_rss_kib": {"aws_s3_cp_upload": base_up.peak_rss_kib, "aws_s3_cp_download": base_down.peak_rss_kib},
            "cutover_upload": {"seconds": up.seconds, "peak_rss_kib": up.peak_rss_kib, "self_reported_peak_rss_kib": up_report["peak_rss_kib"]},
            "cutover_download": {"seconds": down.seconds, "peak_rss_kib": down.peak_rss_kib, "self_reported_peak_rss_kib": down_report["peak_rss_kib"]},
        });
        eprintln!("round {round}: {sample}");
        samples.push(sample);
    }

    let best = |f: &dyn Fn(&Value) -> f64| samples.iter().map(f).fold(f64::INFINITY, f64::min);
    let secs = |v: &Value, a: &str, b: &str| v[a][b].as_f64().unwrap_or(f64::NAN);
    let base_up = best(&|s| {
        secs(s, "baseline_upload_seconds", "aws_s3_cp")
            + secs(s, "baseline_upload_seconds", "sha256sum")
    });
    let base_down = best(&|s| {
        secs(s, "baseline_download_seconds", "aws_s3_cp")
            + secs(s, "baseline_download_seconds", "sha256sum")
    });
    let base_get = best(&|s| {
        secs(s, "baseline_single_get_seconds", "aws_s3api_get_object")
            + secs(s, "baseline_single_get_seconds", "sha256sum")
    });
    let up = best(&|s| secs(s, "cutover_upload", "seconds"));
    let down = best(&|s| secs(s, "cutover_download", "seconds"));
    let peak = |op: &str| {
        samples
            .iter()
            .filter_map(|s| s[op]["peak_rss_kib"].as_i64())
            .max()
            .unwrap_or(0) as f64
            / 1024.0
    };
    let mib_f = mib as f64;
    let figures = json!([
        figure(
            "upload",
            "aws s3 cp + sha256sum",
            mib_f,
            up,
            base_up,
            peak("cutover_upload")
        ),
        figure(
            "download",
            "aws s3 cp + sha256sum",
            mib_f,
            down,
            base_down,
            peak("cutover_download")
        ),
        figure(
            "download",
            "aws s3api get-object (one GET) + sha256sum",
            mib_f,
            down,
            base_get,
            peak("cutover_download")
        ),
    ]);
    let result = json!({
        "date": chrono::Utc::now().to_rfc3339(),
        "cutover": env!("CARGO_PKG_VERSION"),
        "profile": if cfg!(debug_assertions) { "debug (unoptimised)" } else { "optimised" },
        "machine": measure::machine(),
        "load_average": { "before": load_before, "after": measure::loadavg() },
        "artifact_mib": mib,
        "store": {
            "part_size_mib": parts().0 >> 20,
            "parts_in_flight": parts().1,
        },
        "endpoint": "moto server on 127.0.0.1 (HTTP)",
        "rounds": rounds,
        "figures": figures,
        "samples": samples,
    });
    println!("{}", render_table(&result));
    let path = measure::write_result("s3", &result)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// One row: throughput of each side, their ratio (≥ 1 meets the target) and the peak RSS.
fn figure(
    op: &str,
    baseline: &str,
    mib: f64,
    cutover_s: f64,
    baseline_s: f64,
    peak_mib: f64,
) -> Value {
    let ratio = baseline_s / cutover_s;
    json!({
        "operation": op,
        "cutover_seconds": cutover_s,
        "cutover_mib_per_s": mib / cutover_s,
        "baseline": baseline,
        "baseline_seconds": baseline_s,
        "baseline_mib_per_s": mib / baseline_s,
        "throughput_ratio": ratio,
        "throughput_met": ratio >= 1.0,
        "peak_rss_mib": peak_mib,
        "peak_rss_target_mib": RSS_TARGET_MIB,
        "peak_rss_met": peak_mib <= RSS_TARGET_MIB,
    })
}

fn render_table(result: &Value) -> String {
    let mut out = String::from(
        "| transfer | cutover s (MiB/s) | baseline | baseline s (MiB/s) | throughput ratio (≥ 1) | cutover peak RSS (≤ 64 MiB) |\n|---|---:|---|---:|---:|---:|\n",
    );
    let met = |v: &Value| {
        if v.as_bool() == Some(true) {
            ""
        } else {
            " **missed**"
        }
    };
    for row in result["figures"].as_array().into_iter().flatten() {
        let f = |k: &str| row[k].as_f64().unwrap_or(f64::NAN);
        out.push_str(&format!(
            "| {} {} MiB | {:.1} ({:.0}) | {} | {:.1} ({:.0}) | {:.2}×{} | {:.1} MiB{} |\n",
            row["operation"].as_str().unwrap_or(""),
            result["artifact_mib"],
            f("cutover_seconds"),
            f("cutover_mib_per_s"),
            row["baseline"].as_str().unwrap_or(""),
            f("baseline_seconds"),
            f("baseline_mib_per_s"),
            f("throughput_ratio"),
            met(&row["throughput_met"]),
            f("peak_rss_mib"),
            met(&row["peak_rss_met"]),
        ));
    }
    out
}

/// Writes `mib` MiB of incompressible bytes (xorshift) to `path`; returns their SHA-256.
fn write_artifact(path: &PathBuf, mib: u64) -> anyhow::Result<String> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut hasher = Sha256::new();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..mib {
        for word in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        hasher.update(&block);
        file.write_all(&block)?;
    }
    file.flush()?;
    Ok(hex::encode(hasher.finalize()))
}

async fn create_bucket(endpoint: &str) -> anyhow::Result<()> {
    harness::moto::create_bucket(&clients(endpoint).await.s3, BUCKET).await?;
    Ok(())
}
