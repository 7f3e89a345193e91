//! Failure injection exists only in the test build of the CLI (`examples/cutover_faults/`):
//! the `cutover` binary contains none of it and ignores its variables.

use crate::engine_cli::{
    cutover_faults, cutover_faults_path, kill_9, run_args, text, wait_for, Workspace,
};
use std::time::Duration;

const RUNBOOK: &str = "name = \"chain\"\n\
[[step]]\nid = \"a\"\nuses = \"util.wait\"\nwith = { duration = \"10ms\" }\n\
[[step]]\nid = \"b\"\nuses = \"util.wait\"\nneeds = [\"a\"]\nwith = { duration = \"10ms\" }\n\
[[step]]\nid = \"c\"\nuses = \"util.wait\"\nneeds = [\"b\"]\nwith = { duration = \"10ms\" }\n";

const VARIABLES: [&str; 2] = ["CUTOVER_FAILPOINTS", "CUTOVER_FAULT_PAUSE_AFTER_EVENT"];

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn the_cutover_binary_holds_no_failure_injection_and_ignores_its_variables() {
    // The names are in the test build, so finding none in `cutover` means something.
    let production = std::fs::read(env!("CARGO_BIN_EXE_cutover")).unwrap();
    let test_build = std::fs::read(cutover_faults_path()).unwrap();
    for name in VARIABLES {
        assert!(
            contains(&test_build, name),
            "the test build does not read {name}"
        );
        assert!(
            !contains(&production, name),
            "the cutover binary contains {name}"
        );
    }

    // With both set, `cutover` runs the runbook to the end: no pause, nothing injected
    // (a paused process would abort after 300 s and fail the exit-code check).
    let ws = Workspace::new(RUNBOOK);
    let out = ws
        .command(&run_args("prod"))
        .env("CUTOVER_FAULT_PAUSE_AFTER_EVENT", "2")
        .env("CUTOVER_FAILPOINTS", "kill-green@b,corrupt-artifact@c")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!ws.state().join("runs/prod/paused-at-2").exists());
    let events = ws.journal("prod");
    let succeeded = events
        .iter()
        .filter(|e| e["event"] == "step_succeeded")
        .count();
    assert_eq!(succeeded, 3, "every step ran: {events:?}");
    assert!(
        events.iter().any(|e| e["event"] == "run_finished"),
        "{events:?}"
    );

    // The same pause in the test build stops right after record 2.
    let mut paused = ws.spawn_run("faults", Some(2));
    assert!(
        wait_for(
            &ws.state().join("runs/faults/paused-at-2"),
            Duration::from_secs(60)
        ),
        "the test build did not pause after record 2"
    );
    kill_9(&mut paused);
    assert_eq!(ws.journal("faults").len(), 2, "records after the pause");
}

#[test]
fn the_test_build_refuses_a_failure_point_it_does_not_know() {
    let ws = Workspace::new(RUNBOOK);
    for (spec, says) in [
        ("kill-gren@b", "unknown failure point `kill-gren`"),
        ("kill-green", "`kill-green` is not NAME@STEP-ID"),
    ] {
        let out = cutover_faults()
            .current_dir(ws.path())
            .args(run_args("refused"))
            .env("CUTOVER_FAILPOINTS", spec)
            .env_remove("CUTOVER_STATE_DIR")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{spec}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{spec}: {}",
            text(&out)
        );
        assert!(
            !ws.state().join("runs/refused").exists(),
            "{spec}: a run was started"
        );
    }
}
