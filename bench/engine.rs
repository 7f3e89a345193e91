//! Engine overhead, measured through the real `cutover` binary (`make bench-engine`).
//!
//! - `run` of a 100-step no-op runbook (fan-out then fan-in, every journal event fsynced)
//!   against `run` of a 1-step runbook;
//! - `status` and `resume` of a run whose journal holds ≥ 10,000 events, against the same
//!   binary's `--version` process start; `resume` continues a copy of the journal with its
//!   final record cut off (so it replays every event, re-checks each finished step and
//!   finishes the run), restored before every sample;
//! - `plan` of 10,000-step runbooks of every shape (chain, fan-out, fan-in, fan-out-in,
//!   diamond lattice; each step refers to an output of each step it needs), against
//!   `--version`.
//!
//! The machine is shared, so each figure is the median of several samples taken
//! interleaved with its baseline, and the load average is recorded before and after.
//! Prints a table and writes `bench/results/engine-<date>.json`. Not a test: no
//! assertions on time. Loopback only: nothing here opens a socket.

#[allow(dead_code)]
#[path = "measure.rs"]
mod measure;

use cutover::plan::synthetic::{runbook, Body, Shape};
use measure::{loadavg, median};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Instant;

const ENV: &str = "name = \"bench\"\nprovider = \"local\"\nstate_dir = \"state\"\n";

fn main() -> anyhow::Result<()> {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_cutover"));
    let samples: usize = std::env::var("BENCH_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let load_before = loadavg();
    let work = tempfile::tempdir()?;
    let dir = work.path();
    std::fs::write(dir.join("env.toml"), ENV)?;

    let version = |_: usize| timed(Command::new(&exe).arg("--version"));

    // Runs: 1 step (baseline) and 100 steps, each in a fresh state directory.
    std::fs::write(dir.join("one.toml"), runbook(Shape::Chain, 1, Body::NoOp))?;
    std::fs::write(
        dir.join("hundred.toml"),
        runbook(Shape::FanOutIn, 100, Body::NoOp),
    )?;
    let run = |book: &str, i: usize| {
        let ws = dir.join(format!("run-{book}-{i}"));
        std::fs::create_dir_all(&ws).expect("workspace");
        std::fs::write(ws.join("env.toml"), ENV).expect("env");
        std::fs::copy(dir.join(book), ws.join("book.toml")).expect("book");
        let (s, out) = timed(Command::new(&exe).current_dir(&ws).args([
            "run",
            "book.toml",
            "--env",
            "env.toml",
            "--yes",
        ]));
        expect_ok(&out, &format!("run {book}"));
        s
    };
    let mut run_one = Vec::new();
    let mut run_hundred = Vec::new();
    for i in 0..samples {
        run_one.push(run("one.toml", i));
        run_hundred.push(run("hundred.toml", i));
    }
    eprintln!(
        "run: 1 step {:.3}s, 100 steps {:.3}s",
        median(&run_one),
        median(&run_hundred)
    );

    // A journal of at least 10,000 events.
    let big = dir.join("journal-run");
    std::fs::create_dir_all(&big)?;
    std::fs::write(big.join("env.toml"), ENV)?;
    let mut steps = 2_500;
    let (run_id, journal, events) = loop {
        std::fs::write(
            big.join("book.toml"),
            runbook(Shape::FanOut, steps, Body::NoOp),
        )?;
        let _ = std::fs::remove_dir_all(big.join("state"));
        let run_id = format!("bench-{steps}");
        let (_, out) = timed(Command::new(&exe).current_dir(&big).args([
            "run",
            "book.toml",
            "--env",
            "env.toml",
            "--yes",
            "--run-id",
            &run_id,
        ]));
        expect_ok(&out, "run of the journal runbook");
        let journal = big.join("state/runs").join(&run_id).join("journal.jsonl");
        let events = std::fs::read_to_string(&journal)?.lines().count();
        if events >= 10_000 {
            break (run_id, journal, events);
        }
        steps = steps * 10_000 / events.max(1) + 10;
    };
    eprintln!("journal: {events} events from {steps} steps");
    let full = std::fs::read(&journal)?;
    let text = String::from_utf8_lossy(&full);
    let cut = text.trim_end_matches('\n').rfind('\n').map_or(0, |i| i + 1);
    let unfinished = full[..cut].to_vec();
    let last_record: Value = serde_json::from_str(text[cut..].trim()).unwrap_or(Value::Null);

    let mut base = Vec::new();
    let mut status = Vec::new();
    let mut resume = Vec::new();
    let mut status_out = None;
    for i in 0..samples {
        base.push(version(i).0);
        std::fs::write(&journal, &full)?;
        let (s, out) = timed(
            Command::new(&exe)
                .current_dir(&big)
                .args(["status", &run_id, "--env", "env.toml"]),
        );
        expect_ok(&out, "status");
        status_out.get_or_insert(out);
        status.push(s);
        std::fs::write(&journal, &unfinished)?;
        let (s, out) = timed(
            Command::new(&exe)
                .current_dir(&big)
                .args(["resume", &run_id, "--env", "env.toml"]),
        );
        expect_ok(&out, "resume");
        resume.push(s);
    }
    let resumed_events = std::fs::read_to_string(&journal)?.lines().count();

    // Plans of 10,000 steps.
    let mut plans = serde_json::Map::new();
    let mut plan_base = Vec::new();
    for shape in Shape::ALL {
        let file = format!("plan-{}.toml", shape.name());
        std::fs::write(
            dir.join(&file),
            runbook(shape, 10_000, Body::ReferencesNeeds),
        )?;
        let mut times = Vec::new();
        for i in 0..samples {
            plan_base.push(version(i).0);
            let (s, out) = timed(
                Command::new(&exe)
                    .current_dir(dir)
                    .args(["plan", &file, "--env", "env.toml"]),
            );
            expect_ok(&out, &format!("plan {file}"));
            times.push(s);
        }
        eprintln!("plan {}: {:.3}s", shape.name(), median(&times));
        plans.insert(shape.name().into(), json!(times));
    }
    base.extend(plan_base);
    let version_s = median(&base);

    let mut rows = Vec::new();
    let mut figure = |name: &str, times: &[f64], baseline: &str, base_s: f64, target: f64| {
        let m = median(times);
        rows.push(json!({
            "measurement": name,
            "median_seconds": m,
            "samples_seconds": times,
            "baseline": baseline,
            "baseline_seconds": base_s,
            "ratio": m / base_s,
            "target_seconds": target,
            "met": m < target,
        }));
    };
    figure(
        "run, 100 no-op steps (fan-out, fan-in), every fsync",
        &run_hundred,
        "run, 1 no-op step",
        median(&run_one),
        0.2,
    );
    figure(
        &format!("status of a {events}-event journal"),
        &status,
        "cutover --version",
        version_s,
        0.1,
    );
    figure(
        &format!("resume of a {events}-event journal (final record cut)"),
        &resume,
        "cutover --version",
        version_s,
        0.1,
    );
    for shape in Shape::ALL {
        let times: Vec<f64> = serde_json::from_value(plans[shape.name()].clone())?;
        figure(
            &format!("plan, 10,000 steps, {}", shape.name()),
            &times,
            "cutover --version",
            version_s,
            1.0,
        );
    }

    let result = json!({
        "date": chrono::Utc::now().to_rfc3339(),
        "cutover": env!("CARGO_PKG_VERSION"),
        "profile": if cfg!(debug_assertions) { "debug (unoptimised)" } else { "optimised" },
        "machine": measure::machine(),
        "load_average": { "before": load_before, "after": loadavg() },
        "samples": samples,
        "journal": {
            "steps": steps,
            "events": events,
            "events_after_resume": resumed_events,
            "cut_record": last_record,
            "status_stdout_bytes": status_out.map(|o| o.stdout.len()),
        },
        "version_samples_seconds": base,
        "figures": rows,
    });
    println!("{}", render_table(&result));
    let path = measure::write_result("engine", &result)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

fn timed(command: &mut Command) -> (f64, Output) {
    let start = Instant::now();
    let out = command.output().expect("cutover starts");
    (start.elapsed().as_secs_f64(), out)
}

fn expect_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn render_table(result: &Value) -> String {
    let mut out = String::from(
        "| measurement | median s | baseline | baseline s | ratio | target | met |\n|---|---:|---|---:|---:|---:|---|\n",
    );
    for row in result["figures"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "| {} | {:.3} | {} | {:.3} | {:.2}× | < {} s | {} |\n",
            row["measurement"].as_str().unwrap_or(""),
            row["median_seconds"].as_f64().unwrap_or(f64::NAN),
            row["baseline"].as_str().unwrap_or(""),
            row["baseline_seconds"].as_f64().unwrap_or(f64::NAN),
            row["ratio"].as_f64().unwrap_or(f64::NAN),
            row["target_seconds"],
            if row["met"].as_bool() == Some(true) {
                "yes"
            } else {
                "**no**"
            },
        ));
    }
    out
}
