//! Shared helpers for tests that drive the real `cutover` binary.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub fn cutover() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cutover"))
}

/// The test build of the CLI with failure injection (`examples/cutover_faults/`), which
/// `cargo test` builds beside the `cutover` binary. Only tests that inject a failure run
/// it; everything else runs the production binary.
pub fn cutover_faults_path() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_cutover"))
        .parent()
        .expect("the cutover binary is in a directory")
        .join("examples")
        .join(format!("cutover_faults{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: it is built by `cargo test` (an example of the package); run `make test`",
        path.display()
    );
    path
}

pub fn cutover_faults() -> Command {
    Command::new(cutover_faults_path())
}

/// A scratch directory with `env.toml` (state under `state/`) and `book.toml`.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new(runbook: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("env.toml"),
            "name = \"test\"\nprovider = \"local\"\nstate_dir = \"state\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("book.toml"), runbook).unwrap();
        Self { dir }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_of(cutover(), args)
    }
    fn command_of(&self, mut c: Command, args: &[&str]) -> Command {
        c.current_dir(self.path())
            .args(args)
            .env_remove("CUTOVER_FAULT_PAUSE_AFTER_EVENT")
            .env_remove("CUTOVER_STATE_DIR");
        c
    }
    /// Starts `cutover run book.toml --run-id RUN_ID` in the background with its output
    /// captured. `pause_after` runs the test build instead, with its journal hook armed
    /// so a test can kill the process right after that event.
    pub fn spawn_run(&self, run_id: &str, pause_after: Option<usize>) -> Child {
        let mut c = match pause_after {
            Some(n) => {
                let mut c = self.command_of(cutover_faults(), &run_args(run_id));
                c.env("CUTOVER_FAULT_PAUSE_AFTER_EVENT", n.to_string());
                c
            }
            None => self.command(&run_args(run_id)),
        };
        c.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }
    pub fn journal(&self, run_id: &str) -> Vec<serde_json::Value> {
        let text =
            std::fs::read_to_string(self.state().join("runs").join(run_id).join("journal.jsonl"))
                .unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// `cutover run book.toml --env env.toml --yes --run-id RUN_ID`, as a workspace runs it.
pub fn run_args(run_id: &str) -> [&str; 7] {
    [
        "run",
        "book.toml",
        "--env",
        "env.toml",
        "--yes",
        "--run-id",
        run_id,
    ]
}

pub fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Waits (bounded) for a path to exist.
pub fn wait_for(path: &Path, limit: std::time::Duration) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if path.exists() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

/// Sends a real SIGKILL and reaps the process.
pub fn kill_9(child: &mut Child) {
    // SAFETY: signalling a child process we own.
    let rc = unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    assert_eq!(rc, 0);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), None, "killed by a signal");
}
