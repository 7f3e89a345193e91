//! One run per environment: two real processes race for the lease, and stale leases
//! are reported and taken over only when asked.

use super::engine_cli::{kill_9, run_args, text, wait_for, Workspace};
use std::time::Duration;

const SLOW: &str = "name = \"slow\"\n[[step]]\nid = \"hold\"\nuses = \"util.wait\"\nwith = { duration = \"2s\" }\n";

#[test]
fn two_processes_racing_for_one_environment_exactly_one_runs() {
    let ws = Workspace::new(SLOW);
    let a = ws.spawn_run("racer-a", None);
    let b = ws.spawn_run("racer-b", None);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let mut codes = vec![a.status.code(), b.status.code()];
    codes.sort();
    assert_eq!(
        codes,
        vec![Some(0), Some(3)],
        "a: {}\nb: {}",
        text(&a),
        text(&b)
    );
    let loser = if a.status.code() == Some(3) { &a } else { &b };
    let stderr = String::from_utf8_lossy(&loser.stderr);
    assert!(stderr.contains("is locked by run racer-"), "{stderr}");
    assert!(
        !ws.state().join("lease.json").exists(),
        "the winner released the lease"
    );
}

#[test]
fn a_stale_lease_blocks_new_runs_until_taken_over_explicitly() {
    let ws = Workspace::new(SLOW);
    let mut child = ws.spawn_run("dies", None);
    let journal = ws.state().join("runs/dies/journal.jsonl");
    assert!(wait_for(&journal, Duration::from_secs(30)));
    // The file exists before its first record is written: a kill in between leaves a run
    // that cannot be resumed (no run_started), which is not what this test is about.
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(30)
        && !std::fs::read_to_string(&journal)
            .is_ok_and(|t| t.contains("\"run_started\"") && t.ends_with('\n'))
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    kill_9(&mut child);

    let out = ws.run(&run_args("next"));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("stale lease") && stderr.contains("run dies") && stderr.contains("is gone"),
        "{stderr}"
    );
    assert!(
        !ws.state().join("runs/next").exists(),
        "nothing was started"
    );

    let out = ws.run(&[
        "run",
        "book.toml",
        "--env",
        "env.toml",
        "--yes",
        "--run-id",
        "next",
        "--take-over-lease",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let journal = ws.journal("next");
    let takeover = journal
        .iter()
        .find(|e| e["event"] == "lease_taken_over")
        .expect("take-over journaled");
    assert_eq!(takeover["previous_run_id"], "dies");

    // The crashed run can still be resumed afterwards (the lease is free again).
    let out = ws.run(&["resume", "dies", "--env", "env.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn the_first_interrupt_stops_cleanly_and_resume_finishes() {
    let book = "name = \"int\"\n[[step]]\nid = \"first\"\nuses = \"util.wait\"\nwith = { duration = \"20s\" }\n[[step]]\nid = \"second\"\nuses = \"util.shell\"\nneeds = [\"first\"]\nwith = { run = \"echo done > ../../../second-ran\" }\n";
    let ws = Workspace::new(book);
    let child = ws.spawn_run("int", None);
    let journal = ws.state().join("runs/int/journal.jsonl");
    assert!(wait_for(&journal, Duration::from_secs(30)));
    // Wait until the step is journaled as started, then interrupt once.
    let start = std::time::Instant::now();
    while !std::fs::read_to_string(&journal)
        .unwrap_or_default()
        .contains("step_started")
    {
        assert!(start.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("cutover resume int"),
        "{}",
        text(&out)
    );
    let events: Vec<String> = ws
        .journal("int")
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        events.last().map(String::as_str),
        Some("run_interrupted"),
        "{events:?}"
    );
    assert!(events.contains(&"step_interrupted".to_string()));
    assert!(!ws.path().join("second-ran").exists());

    let out = ws.run(&["status", "int", "--env", "env.toml"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Interrupted"),
        "{}",
        text(&out)
    );

    let out = ws.run(&["resume", "int", "--env", "env.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(ws.path().join("second-ran").exists());
}

#[test]
fn resume_refuses_a_changed_runbook_unless_forced() {
    let ws = Workspace::new(
        "name = \"c\"\n[[step]]\nid = \"a\"\nuses = \"util.wait\"\nwith = { duration = \"10s\" }\n",
    );
    let mut child = ws.spawn_run("chg", Some(2));
    assert!(wait_for(
        &ws.state().join("runs/chg/paused-at-2"),
        Duration::from_secs(30)
    ));
    kill_9(&mut child);
    std::fs::write(
        ws.path().join("book.toml"),
        "name = \"c\"\n[[step]]\nid = \"a\"\nuses = \"util.wait\"\nwith = { duration = \"1s\" }\n",
    )
    .unwrap();
    let out = ws.run(&["resume", "chg", "--env", "env.toml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the plan changed since run chg started"),
        "{}",
        text(&out)
    );
    let out = ws.run(&["resume", "chg", "--env", "env.toml", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let resumed = ws
        .journal("chg")
        .into_iter()
        .find(|e| e["event"] == "run_resumed")
        .unwrap();
    assert_eq!(resumed["forced"], true);
}
