//! What every benchmark records beside its figures: the machine, its load, a child
//! process's wall time and peak memory, and where the JSON goes. Included by each bench
//! with `#[path]` (a bench is its own crate).

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A child process measured by [`run_measured`].
pub struct Measured {
    pub seconds: f64,
    /// The child's peak resident set (`VmHWM`), KiB.
    pub peak_rss_kib: i64,
    pub stdout: String,
}

/// Runs `command` to the end (its stderr goes to ours); returns its wall time, its peak
/// RSS and its stdout. Fails when it exits unsuccessfully or outlives `limit` (then it is
/// killed).
///
/// Peak RSS is the child's `VmHWM` from `/proc/<pid>/status`, read every 10 ms until it
/// exits (the high-water mark only grows, so the last reading is the peak up to the last
/// 10 ms). Not `wait4`'s `ru_maxrss`: Linux carries the parent's RSS across fork/exec into
/// it, so it reports this bench process's own size for every child.
pub fn run_measured(command: &mut Command, limit: Duration) -> anyhow::Result<Measured> {
    let started = Instant::now();
    let stdout_file = tempfile::tempfile()?;
    let mut child = command
        .stdout(stdout_file.try_clone()?)
        .stderr(Stdio::inherit())
        .spawn()?;
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_rss_kib = 0i64;
    let status = loop {
        if let Some(kib) = std::fs::read_to_string(&status_path)
            .ok()
            .and_then(|s| vm_hwm_kib(&s))
        {
            peak_rss_kib = peak_rss_kib.max(kib);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > limit {
            child.kill()?;
            child.wait()?;
            anyhow::bail!("{command:?} still running after {limit:?}; killed");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(status.success(), "{command:?} failed: {status}");
    let mut stdout = String::new();
    use std::io::{Read, Seek};
    let mut file = stdout_file;
    file.rewind()?;
    file.read_to_string(&mut stdout)?;
    Ok(Measured {
        seconds,
        peak_rss_kib,
        stdout,
    })
}

/// `VmHWM` (peak resident set) in KiB from a `/proc/<pid>/status` text.
pub fn vm_hwm_kib(status: &str) -> Option<i64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// This process's own peak resident set, KiB (0 when unreadable).
pub fn own_peak_rss_kib() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| vm_hwm_kib(&s))
        .unwrap_or(0)
}

/// The machine as a JSON object: cores, CPU model, memory, and `BENCH_NOTE`.
pub fn machine() -> Value {
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu_model(),
        "memory_gib": memory_gib(),
        "note": std::env::var("BENCH_NOTE").unwrap_or_default(),
    })
}

/// The 1, 5 and 15-minute load averages.
pub fn loadavg() -> Value {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let v: Vec<f64> = text
        .split_whitespace()
        .take(3)
        .filter_map(|s| s.parse().ok())
        .collect();
    json!(v)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default()
}

/// Total memory from /proc/meminfo, in GiB (0 when unreadable).
fn memory_gib() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map(|kib| (kib / 1024.0 / 1024.0 * 10.0).round() / 10.0)
        .unwrap_or(0.0)
}

/// The median (NaN for no samples).
pub fn median(samples: &[f64]) -> f64 {
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Writes `result` as `bench/results/<name>-<UTC date>.json`; returns the path.
pub fn write_result(name: &str, result: &Value) -> anyhow::Result<PathBuf> {
    let out_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/results");
    std::fs::create_dir_all(&out_dir)?;
    let path = out_dir.join(format!(
        "{name}-{}.json",
        chrono::Utc::now().format("%Y-%m-%d")
    ));
    std::fs::write(&path, serde_json::to_string_pretty(result)?)?;
    Ok(path)
}

/// An unsigned setting from the environment, `default` when unset or not a number.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
