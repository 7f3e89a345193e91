//! The local exec channel: runs a step's script on a local Neo4j instance, the way SSM
//! Run Command does on EC2, with the same contract (`cutover_output`, result with the
//! attempt's nonce, standard input closed).
//!
//! `start` writes `<home>/exec/<nonce>/body.sh` and starts [`WRAPPER`] in its own session
//! (so a Ctrl-C of cutover does not kill a dump half-way), with the script's variables and
//! the instance's: `NEO4J_HOME`, `NEO4J_CONF` (the conf *file*, as on the AMI),
//! `NEO4J_DATA`, `NEO4J_ADMIN` (that version's `neo4j-admin` for this home),
//! `CUTOVER_SYSTEMCTL` (the instance's service shim), `CUTOVER_LOCK_FILE` and
//! `CUTOVER_SECRETS_DIR` (scripts read secrets from the local secret store). The handle
//! is the attempt's directory; `poll` reads `result.json` there, so a resumed cutover
//! (another process) can poll a command a crashed one started.

use super::compute::LocalCompute;
use super::files::{create_dir_all, io_failure, write_atomic};
use crate::failure::Failure;
use crate::ids::InstanceId;
use crate::providers::{Exec, ExecHandle, ExecResult, ExecStatus, Script};
use async_trait::async_trait;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The wrapper every local script runs in; see its header.
pub const WRAPPER: &str = include_str!("exec_wrapper.sh");
const RUNNER_PID: &str = "runner.pid";
const RESULT: &str = "result.json";

/// Scripts on local Neo4j instances.
#[derive(Debug)]
pub struct LocalExec {
    compute: Arc<LocalCompute>,
    secrets_dir: PathBuf,
}

impl LocalExec {
    pub fn new(compute: Arc<LocalCompute>, secrets_dir: impl Into<PathBuf>) -> Self {
        Self {
            compute,
            secrets_dir: secrets_dir.into(),
        }
    }
}

fn valid_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce.len() <= 120
        && nonce
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Whether the wrapper of the attempt in `dir` still runs.
fn runner_alive(dir: &Path) -> bool {
    let Some(pid) = std::fs::read_to_string(dir.join(RUNNER_PID))
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
    else {
        return false;
    };
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let want = dir.join("wrapper.sh").display().to_string();
    cmdline.split(|b| *b == 0).any(|a| a == want.as_bytes())
}

#[async_trait]
impl Exec for LocalExec {
    async fn start(&self, instance: &InstanceId, script: &Script) -> Result<ExecHandle, Failure> {
        if !valid_nonce(&script.nonce) {
            return Err(Failure::permanent(format!(
                "script {}: invalid nonce {:?}",
                script.name, script.nonce
            )));
        }
        let home = self.compute.neo4j_instance_home(instance)?;
        let dir = home.exec_dir().join(&script.nonce);
        if dir.join(RESULT).exists() || runner_alive(&dir) {
            // The same attempt again (a retried start): adopt it.
            return Ok(ExecHandle {
                id: dir.display().to_string(),
                instance: instance.clone(),
                nonce: script.nonce.clone(),
            });
        }
        create_dir_all(&dir)?;
        write_atomic(&dir.join("body.sh"), script.body.as_bytes(), 0o700)?;
        write_atomic(&dir.join("wrapper.sh"), WRAPPER.as_bytes(), 0o700)?;
        let mut cmd = tokio::process::Command::new("bash");
        cmd.arg(dir.join("wrapper.sh"))
            .current_dir(&home.dir)
            .envs(&script.env)
            .env("CUTOVER_NONCE", &script.nonce)
            .env("CUTOVER_SCRIPT_NAME", &script.name)
            .env("CUTOVER_EXEC_DIR", &dir)
            .env("NEO4J_HOME", &home.dir)
            .env("NEO4J_CONF", home.conf_file())
            .env("NEO4J_DATA", home.data())
            .env("NEO4J_ADMIN", home.admin())
            .env("CUTOVER_SYSTEMCTL", home.systemctl())
            .env("CUTOVER_LOCK_FILE", home.lock_file())
            .env("CUTOVER_SECRETS_DIR", &self.secrets_dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0);
        let child = cmd.spawn().map_err(|e| {
            io_failure(
                &format!("cannot start script {} on {instance}", script.name),
                &e,
            )
        })?;
        let pid = child.id().unwrap_or_default();
        // Dropping the child does not kill it; tokio reaps it when it exits.
        drop(child);
        write_atomic(&dir.join(RUNNER_PID), format!("{pid}\n").as_bytes(), 0o644)?;
        tracing::debug!(instance_id = %instance, script = %script.name, pid, "local script started");
        Ok(ExecHandle {
            id: dir.display().to_string(),
            instance: instance.clone(),
            nonce: script.nonce.clone(),
        })
    }

    async fn poll(&self, handle: &ExecHandle) -> Result<ExecStatus, Failure> {
        let dir = PathBuf::from(&handle.id);
        match std::fs::read(dir.join(RESULT)) {
            Ok(bytes) => {
                let result: ExecResult = serde_json::from_slice(&bytes).map_err(|e| {
                    Failure::permanent(format!(
                        "{}: malformed result: {e}",
                        dir.join(RESULT).display()
                    ))
                })?;
                if result.nonce != handle.nonce {
                    return Ok(ExecStatus::Inconclusive(format!(
                        "{} belongs to attempt {}, not {}",
                        dir.join(RESULT).display(),
                        result.nonce,
                        handle.nonce
                    )));
                }
                Ok(ExecStatus::Finished(result))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if runner_alive(&dir) {
                    Ok(ExecStatus::Running)
                } else {
                    Ok(ExecStatus::Inconclusive(format!(
                        "the script in {} is not running and left no result (killed?)",
                        dir.display()
                    )))
                }
            }
            Err(e) => Err(io_failure(
                &format!("cannot read {}", dir.join(RESULT).display()),
                &e,
            )),
        }
    }

    async fn cancel(&self, handle: &ExecHandle) -> Result<(), Failure> {
        let dir = PathBuf::from(&handle.id);
        if runner_alive(&dir) {
            if let Some(pid) = std::fs::read_to_string(dir.join(RUNNER_PID))
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok())
            {
                // SAFETY: kill(2) on the runner's process group; no memory is involved.
                unsafe {
                    libc::kill(-pid, libc::SIGTERM);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_path_safe() {
        assert!(valid_nonce("neo4j-dump-0123abcd"));
        assert!(!valid_nonce("../x"));
        assert!(!valid_nonce(""));
    }
}
