//! `cutover_faults`: the cutover CLI with failure injection, for tests only. It is an
//! example of the package, so `cargo build --release` and `cargo install` never build it
//! and the `cutover` binary contains none of this (a test checks that the `cutover`
//! binary ignores both variables below).
//!
//! ```text
//! CUTOVER_FAILPOINTS=NAME@STEP-ID,…   only the named step is affected; unknown names exit 2
//!   kill-green             the engine stops the instance just before it starts a restore
//!   inconsistent-artifact  when a backup finishes, 4 KiB in the middle of the stored
//!                          artifact are zeroed before the manifest records its SHA-256
//!                          (the checksum matches; the store check must refuse it)
//!   corrupt-artifact       after the manifest is stored, one byte in the middle of the
//!                          artifact it names is flipped (the SHA-256 check must refuse it)
//!   fail-health            every Bolt target the step's engine hands out carries a wrong
//!   fail-secret-test       password (a health round, a login test: authentication fails)
//! CUTOVER_FAULT_PAUSE_AFTER_EVENT=N   after journal record N is on disk, touch
//!                          `<run dir>/paused-at-N` and stop making progress (abort after
//!                          300 s), so a test can `kill -9` at exactly that point
//! ```
//!
//! Each fault is a wrapper around a trait object the step uses
//! (`cutover::steps::hooks`): the steps themselves have no failure points.

// The CLI is the binary's module, not the library's: the test build compiles the same
// source.
#[path = "../../src/cli/mod.rs"]
mod cli;
mod engine;
mod store;

use cutover::db::DatabaseEngine;
use cutover::ids::StepId;
use cutover::providers::ProviderSet;
use cutover::steps::hooks::ServiceHooks;
use engine::{EngineFault, FaultyEngine};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

const FAILPOINTS_ENV: &str = "CUTOVER_FAILPOINTS";
const PAUSE_ENV: &str = "CUTOVER_FAULT_PAUSE_AFTER_EVENT";

/// What the variables asked for.
struct Faults {
    /// (fault name, step id)
    points: Vec<(String, String)>,
    pause_after: Option<u64>,
}

const KNOWN: &[&str] = &[
    "kill-green",
    "inconsistent-artifact",
    "corrupt-artifact",
    "fail-health",
    "fail-secret-test",
];

impl Faults {
    fn from_env() -> Result<Faults, String> {
        let mut points = Vec::new();
        if let Ok(spec) = std::env::var(FAILPOINTS_ENV) {
            for point in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let Some((name, step)) = point.split_once('@') else {
                    return Err(format!("{FAILPOINTS_ENV}: `{point}` is not NAME@STEP-ID"));
                };
                if !KNOWN.contains(&name) {
                    return Err(format!(
                        "{FAILPOINTS_ENV}: unknown failure point `{name}` (known: {})",
                        KNOWN.join(", ")
                    ));
                }
                points.push((name.to_owned(), step.to_owned()));
            }
        }
        let pause_after = match std::env::var(PAUSE_ENV) {
            Ok(n) => Some(
                n.trim()
                    .parse()
                    .map_err(|_| format!("{PAUSE_ENV}: `{n}` is not a record number"))?,
            ),
            Err(_) => None,
        };
        Ok(Faults {
            points,
            pause_after,
        })
    }

    /// The faults armed for `step`.
    fn at(&self, step: &StepId) -> Vec<&str> {
        self.points
            .iter()
            .filter(|(_, s)| s == step.as_str())
            .map(|(name, _)| name.as_str())
            .collect()
    }
}

impl ServiceHooks for Faults {
    fn providers(&self, step: &StepId, mut providers: ProviderSet) -> ProviderSet {
        if self.at(step).contains(&"corrupt-artifact") {
            providers.objects = Arc::new(store::CorruptAfterManifest {
                inner: providers.objects,
            });
        }
        providers
    }

    fn engine(
        &self,
        step: &StepId,
        mut engine: Arc<dyn DatabaseEngine>,
        providers: Option<&ProviderSet>,
    ) -> Arc<dyn DatabaseEngine> {
        for fault in self.at(step) {
            let fault = match fault {
                "kill-green" => EngineFault::StopBeforeRestore,
                "inconsistent-artifact" => EngineFault::DamageFinishedBackup,
                "fail-health" | "fail-secret-test" => EngineFault::WrongPassword,
                _ => continue,
            };
            engine = Arc::new(FaultyEngine {
                inner: engine,
                fault,
                compute: providers.map(|p| p.compute.clone()),
            });
        }
        engine
    }

    fn journaled(&self, journal: &Path, seq: u64) {
        if self.pause_after != Some(seq) {
            return;
        }
        if let Some(dir) = journal.parent() {
            let _ = std::fs::write(dir.join(format!("paused-at-{seq}")), b"");
        }
        // Bounded: a test that forgets to kill us does not leave a process forever.
        std::thread::sleep(std::time::Duration::from_secs(300));
        std::process::abort();
    }
}

fn main() -> ExitCode {
    match Faults::from_env() {
        Ok(faults) => {
            let armed = !faults.points.is_empty() || faults.pause_after.is_some();
            if armed && cutover::steps::hooks::install(Arc::new(faults)).is_err() {
                eprintln!("error: service hooks were installed twice");
                return ExitCode::from(2);
            }
            cli::main()
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
