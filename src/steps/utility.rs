//! Utility step kinds: `util.wait`, `util.assert`, `util.shell`. They let runbooks (and
//! tests) exercise the engine without any database.

use super::kind::{step_inputs, OutputSpec, StepKind};
use super::{Decision, Outputs, Step, StepContext};
use crate::failure::Failure;
use crate::try_step;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub static KINDS: &[StepKind] = &[
    StepKind {
        name: "util.wait",
        summary: "wait for a fixed duration",
        inputs: WaitInputs::INPUTS,
        outputs: OutputSpec::Fixed(&[]),
        changes: "",
        compensation: None,
        build: || Box::new(Wait { until: None }),
    },
    StepKind {
        name: "util.assert",
        summary: "fail unless a condition over params and outputs holds",
        inputs: AssertInputs::INPUTS,
        outputs: OutputSpec::Fixed(&[]),
        changes: "",
        compensation: None,
        build: || Box::new(Assert),
    },
    StepKind {
        name: "util.shell",
        summary: "run a bash script on this machine",
        inputs: ShellInputs::INPUTS,
        outputs: OutputSpec::Dynamic,
        changes: "runs a local script",
        compensation: None,
        build: || Box::new(Shell { child: None }),
    },
];

struct Wait {
    until: Option<tokio::time::Instant>,
}

step_inputs! {
    struct WaitInputs {
        duration: String = required Duration, "how long, e.g. \"30s\"";
    }
}

#[async_trait]
impl Step for Wait {
    async fn advance(&mut self, ctx: &StepContext) -> Decision {
        let inputs: WaitInputs = try_step!(ctx.inputs());
        let duration =
            try_step!(crate::config::toml_read::parse_duration(&inputs.duration)
                .map_err(Failure::permanent));
        let until = *self
            .until
            .get_or_insert_with(|| tokio::time::Instant::now() + duration);
        let now = tokio::time::Instant::now();
        if now >= until {
            Decision::done()
        } else {
            Decision::wait(until - now, format!("waiting {}", inputs.duration))
        }
    }
}

struct Assert;

step_inputs! {
    struct AssertInputs {
        that: bool = required Condition, "e.g. \"steps.count.outputs.n == 3\"";
        message: Option<String> = optional String, "what it means when it fails";
    }
}

#[async_trait]
impl Step for Assert {
    async fn advance(&mut self, ctx: &StepContext) -> Decision {
        let inputs: AssertInputs = try_step!(ctx.inputs());
        if inputs.that {
            Decision::done()
        } else {
            let message = inputs
                .message
                .unwrap_or_else(|| "the condition is false".into());
            Decision::Fail(Failure::permanent(format!(
                "assertion {} failed: {message}",
                ctx.step_id
            )))
        }
    }
}

/// Runs `bash -c` with `set -euo pipefail`. The script sees `CUTOVER_RUN_ID`,
/// `CUTOVER_STEP_ID`, `CUTOVER_IDEMPOTENCY_TOKEN`, `CUTOVER_RUN_DIR` and
/// `CUTOVER_OUTPUTS` (a file: each `key=value` line becomes an output).
/// Exit code 75 (EX_TEMPFAIL) is a transient failure; any other non-zero is permanent.
/// The child dies with cutover (PR_SET_PDEATHSIG), so a killed run leaves no script
/// running; scripts must still be idempotent because a resumed run re-runs an
/// unfinished one (use `CUTOVER_IDEMPOTENCY_TOKEN` or `creates`).
struct Shell {
    child: Option<tokio::process::Child>,
}

step_inputs! {
    struct ShellInputs {
        run: String = required String, "the script (bash, set -euo pipefail)";
        creates: Option<String> = optional String, "a path the script creates: skip if it exists, and re-check on resume";
        workdir: Option<String> = optional String, "working directory (default: the run directory)";
        env: BTreeMap<String, serde_json::Value> = optional Map, "extra environment variables (never secrets)";
    }
}

impl Shell {
    fn outputs_file(ctx: &StepContext) -> PathBuf {
        ctx.services
            .run_dir
            .join(format!("outputs-{}.env", ctx.step_id))
    }

    fn start(ctx: &StepContext, inputs: &ShellInputs) -> Result<tokio::process::Child, Failure> {
        let outputs = Self::outputs_file(ctx);
        let _ = std::fs::remove_file(&outputs);
        let workdir = inputs
            .workdir
            .as_ref()
            .map(PathBuf::from)
            .unwrap_or_else(|| ctx.services.run_dir.clone());
        let mut cmd = tokio::process::Command::new("bash");
        cmd.arg("-c")
            .arg(format!("set -euo pipefail\n{}", inputs.run))
            .current_dir(&workdir)
            .env("CUTOVER_RUN_ID", ctx.run_id.as_str())
            .env("CUTOVER_STEP_ID", ctx.step_id.as_str())
            .env("CUTOVER_IDEMPOTENCY_TOKEN", &ctx.idempotency_token)
            .env("CUTOVER_RUN_DIR", &ctx.services.run_dir)
            .env("CUTOVER_OUTPUTS", &outputs)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in &inputs.env {
            cmd.env(k, crate::config::expr::display_value(v));
        }
        die_with_parent(&mut cmd);
        cmd.spawn().map_err(|e| {
            Failure::permanent(format!("cannot start bash in {}: {e}", workdir.display()))
        })
    }
}

#[cfg(target_os = "linux")]
fn die_with_parent(cmd: &mut tokio::process::Command) {
    // SAFETY: prctl is async-signal-safe and touches only the child being created.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut tokio::process::Command) {}

fn read_outputs(path: &std::path::Path) -> Outputs {
    let mut outputs = Outputs::new();
    if let Ok(text) = std::fs::read_to_string(path) {
        for line in text.lines() {
            if let Some((k, v)) = line.split_once('=') {
                outputs.insert(
                    k.trim().to_string(),
                    serde_json::Value::String(v.to_string()),
                );
            }
        }
    }
    outputs
}

fn tail(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let start = text.len().saturating_sub(max);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    text[start..].trim().to_string()
}

#[async_trait]
impl Step for Shell {
    async fn advance(&mut self, ctx: &StepContext) -> Decision {
        let inputs: ShellInputs = try_step!(ctx.inputs());
        if self.child.is_none() {
            if let Some(path) = &inputs.creates {
                if std::path::Path::new(path).exists() {
                    ctx.note(format!("{path} exists; not running the script again"));
                    return Decision::Done(read_outputs(&Self::outputs_file(ctx)));
                }
            }
            try_step!(ctx.record_intent(
                "shell.run",
                serde_json::json!({ "creates": inputs.creates })
            ));
            self.child = Some(try_step!(Self::start(ctx, &inputs)));
        }
        let child = self.child.as_mut().expect("child started above");
        match child.try_wait() {
            Ok(None) => Decision::wait(Duration::from_millis(100), "script running"),
            Err(e) => Decision::Fail(Failure::transient(format!(
                "cannot wait for the script: {e}"
            ))),
            Ok(Some(_)) => {
                let child = self.child.take().expect("child present");
                let output =
                    try_step!(child
                        .wait_with_output()
                        .await
                        .map_err(|e| Failure::transient(format!(
                            "cannot read the script's output: {e}"
                        ))));
                let code = output.status.code().unwrap_or(-1);
                if code == 0 {
                    let mut outputs = read_outputs(&Self::outputs_file(ctx));
                    outputs.insert("exit_code".into(), 0.into());
                    Decision::Done(outputs)
                } else {
                    let message =
                        format!("script exited with {code}: {}", tail(&output.stderr, 400));
                    Decision::Fail(if code == 75 {
                        Failure::transient(message)
                    } else {
                        Failure::permanent(message)
                    })
                }
            }
        }
    }

    async fn postcondition(
        &mut self,
        ctx: &StepContext,
        _outputs: &Outputs,
    ) -> Result<(), Failure> {
        let inputs: ShellInputs = ctx.inputs()?;
        match inputs.creates {
            Some(path) if !std::path::Path::new(&path).exists() => {
                Err(Failure::permanent(format!(
                    "step {} finished earlier but {path} no longer exists",
                    ctx.step_id
                )))
            }
            _ => Ok(()),
        }
    }
}
