//! Snapshots of what operators read: `cutover plan` (text) and `cutover graph` (Mermaid
//! and DOT) of every shipped runbook against `environments/local.toml`, through the real
//! binary. The plan hash is redacted (it changes with any edit to a runbook or the
//! environment, which the hash tests cover); everything else must match the committed
//! `.snap` file. After an intended change: `INSTA_UPDATE=always cargo test --test it
//! render_snapshots::`, then review the diff of `tests/it/snapshots/`.

use std::path::Path;
use std::process::Command;

const RUNBOOKS: &[&str] = &[
    "backup",
    "blue-green",
    "dr-drill",
    "restore",
    "rollback",
    "rollback-fresh-blue",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn cutover(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .current_dir(root())
        .args(args)
        .env_remove("CUTOVER_ENV")
        .env_remove("CUTOVER_STATE_DIR")
        .output()
        .expect("cutover starts");
    assert!(
        out.status.success(),
        "cutover {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Replaces the values that change without the output's meaning changing.
fn redact(text: &str) -> String {
    text.lines()
        .map(|line| match line.strip_prefix("plan hash: ") {
            Some(hash) if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
                "plan hash: [sha256]".to_string()
            }
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path(root().join("tests/it/snapshots"));
    s.set_prepend_module_to_snapshot(false);
    s
}

#[test]
fn plan_text_of_every_shipped_runbook_matches_its_snapshot() {
    for book in RUNBOOKS {
        let path = format!("runbooks/{book}.toml");
        let text = cutover(&["plan", &path, "--env", "environments/local.toml"]);
        assert!(text.contains("plan hash: "), "{text}");
        settings().bind(|| insta::assert_snapshot!(format!("plan-{book}"), redact(&text)));
    }
}

#[test]
fn mermaid_and_dot_graphs_of_every_shipped_runbook_match_their_snapshots() {
    for book in RUNBOOKS {
        let path = format!("runbooks/{book}.toml");
        for format in ["mermaid", "dot"] {
            let text = cutover(&["graph", &path, "--format", format]);
            settings().bind(|| insta::assert_snapshot!(format!("graph-{book}-{format}"), text));
        }
    }
}
