//! Real services for integration tests: the moto AWS emulator (alone, or as the AWS
//! rehearsal rig with a stand-in SSM agent and rehearsal hosts) and ArcadeDB servers, all
//! run from the project's virtualenv (`make setup`), and Neo4j Community servers from
//! `.tools/neo4j` (`make setup`). A missing service is a test failure
//! that says how to install it, never a skip.
#![allow(dead_code)] // shared by every test module; each uses a part

pub mod arcade;
pub mod moto;
pub mod neo4j;
pub mod rig;

#[allow(unused_imports)]
pub use arcade::ArcadeHarness;
#[allow(unused_imports)]
pub use moto::MotoServer;

use std::path::PathBuf;
use std::time::Duration;

/// How long a service may take to become ready. Generous: the CI machine has 2 cores
/// shared with compilers.
pub const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// `<CARGO_MANIFEST_DIR>/.venv`; panics with the install command when it is missing.
pub fn venv() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv");
    assert!(
        venv.join("bin").is_dir(),
        "the project virtualenv {} is not installed: run `make setup` (or `make test`)",
        venv.display()
    );
    venv
}

/// A program from `.venv/bin`; panics with the install command when it is missing.
pub fn venv_bin(name: &str) -> PathBuf {
    let path = venv().join("bin").join(name);
    assert!(
        path.is_file(),
        "{} is not installed: run `make setup` (or `make test`)",
        path.display()
    );
    path
}

/// The last `n` lines of a log file (for failure messages).
pub fn log_tail(path: &std::path::Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
