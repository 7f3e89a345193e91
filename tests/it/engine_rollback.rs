//! `cutover rollback` refuses, with exit 2 and nothing done, when there is nothing a
//! rollback may move back. (The rollback itself runs against real ArcadeDB servers in
//! local_bluegreen.rs.)

use super::engine_cli::{text, Workspace};

const BOOK: &str = r#"name = "plain"

[params.ok]
type = "bool"
default = true

[[step]]
id = "check"
uses = "util.assert"
with = { that = "params.ok", message = "asked to fail" }
"#;

#[test]
fn a_rollback_of_a_run_that_never_switched_or_does_not_exist_is_refused_and_changes_nothing() {
    let ws = Workspace::new(BOOK);
    let out = ws.run(&["rollback", "nope", "--env", "env.toml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no run nope"), "{}", text(&out));

    let ran = ws.run(&super::engine_cli::run_args("ok1"));
    assert_eq!(ran.status.code(), Some(0), "{}", text(&ran));
    let out = ws.run(&["rollback", "ok1", "--env", "env.toml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // Succeeded, but it never switched traffic: nothing to move back.
    assert!(
        text(&out).contains("never switched traffic"),
        "{}",
        text(&out)
    );

    let mut args = super::engine_cli::run_args("bad1").to_vec();
    args.extend(["--set", "ok=false"]);
    let failed = ws.run(&args);
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    let out = ws.run(&["rollback", "bad1", "--env", "env.toml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("undone already"), "{}", text(&out));
    // Nothing was started: still only the two runs.
    let runs: Vec<_> = std::fs::read_dir(ws.state().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(runs.len(), 2, "{runs:?}");
}

#[test]
fn rollback_help_names_the_exit_codes_and_the_runbook_page() {
    let out = super::engine_cli::cutover()
        .args(["rollback", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{help}");
    for needle in [
        "RUN_ID",
        "--env",
        "reverse",
        "runbooks/rollback.md",
        "0 rolled back",
    ] {
        assert!(help.contains(needle), "`{needle}` missing from:\n{help}");
    }
}
