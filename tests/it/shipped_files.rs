//! Every shipped environment parses, and every shipped runbook validates against the
//! local environment: a typo in a file we ship is a test failure, not a 00:30 surprise.

use cutover::config::{Environment, Runbook};
use cutover::plan::Plan;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
    {
        let path = entry.path();
        if path.is_dir() {
            out.extend(toml_files(&path));
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_shipped_environment_parses() {
    let files = toml_files(&root().join("environments"));
    assert!(!files.is_empty(), "environments/ ships at least local.toml");
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| {
            Environment::load(f.to_str().unwrap())
                .err()
                .map(|p| format!("{}:\n{p}", f.display()))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_shipped_runbook_validates_against_the_local_environment() {
    let local = root().join("environments/local.toml");
    let env =
        Arc::new(Environment::load(local.to_str().unwrap()).unwrap_or_else(|p| panic!("{p}")));
    let files = toml_files(&root().join("runbooks"));
    assert!(!files.is_empty());
    let mut failures = Vec::new();
    for file in &files {
        match Runbook::load(file) {
            Ok(book) => {
                if let Err(p) = Plan::build(&book, env.clone(), &[]) {
                    failures.push(format!("{}:\n{p}", file.display()));
                }
            }
            Err(p) => failures.push(format!("{}:\n{p}", file.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
