//! `terraform.plan` and `terraform.apply`: a Terraform stage of a deploy, in two steps so
//! that what is applied is exactly what was planned and checked.
//!
//! `terraform.plan` runs init (the environment's S3 backend), selects or creates the
//! workspace `<component>_<env>`, saves a plan in the run directory, summarises it
//! (add / change / destroy) into its outputs, and fails before anything is applied when
//! the plan would destroy or replace a protected resource that `allow_destroy` does not
//! name. `terraform.apply` applies that saved plan file only if its SHA-256 is the one
//! the plan step recorded, and turns Terraform's outputs into step outputs (sensitive ones
//! redacted). Each Terraform command is started and polled; its output goes to
//! `<run dir>/terraform/<component>/terraform.log`.

use super::kind::{step_inputs, OutputSpec, StepKind};
use super::{Decision, Outputs, Step, StepContext};
use crate::failure::Failure;
use crate::providers::terraform::{self as tf, plan_json, Workdir};
use crate::try_step;
use async_trait::async_trait;
use std::path::PathBuf;
use std::time::Duration;

pub static KINDS: &[StepKind] = &[
    StepKind {
        name: "terraform.plan",
        summary: "plan a Terraform module into a saved plan file and summarise it",
        inputs: PlanInputs::INPUTS,
        outputs: OutputSpec::Fixed(&[
            "workspace",
            "state_key",
            "plan_file",
            "plan_sha256",
            "summary",
            "add",
            "change",
            "destroy",
            "replace",
            "changes",
            "log",
        ]),
        changes: "creates the Terraform workspace <component>_<env> in the state bucket if it is missing, \
                  and takes the state lock while planning; changes no infrastructure. Stops the run if the \
                  plan destroys or replaces a protected resource",
        compensation: None,
        build: || Box::new(Runner::new(Mode::Plan)),
    },
    StepKind {
        name: "terraform.apply",
        summary: "apply exactly the plan file a terraform.plan step saved",
        inputs: ApplyInputs::INPUTS,
        outputs: OutputSpec::Dynamic,
        changes: "applies the saved plan to the workspace <component>_<env> (creates, changes or destroys what \
                  the plan summary lists). Not undone automatically: a later failure leaves it applied; \
                  undo it by deploying the previous revision of the module",
        compensation: None,
        build: || Box::new(Runner::new(Mode::Apply)),
    },
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plan,
    Apply,
}

step_inputs! {
    struct PlanInputs {
        module: String = required String, "the module directory (relative to where cutover runs), e.g. \"terraform/app\"";
        component: String = required String, "the component name; the workspace is <component>_<env>";
        vars: serde_json::Map<String, serde_json::Value> = optional Map, "input variables (written to a 0600 var file in the run directory; never secrets)";
        protect: Vec<String> = optional List, "resource types or addresses never to destroy, besides the environment's [terraform] protect";
        allow_destroy: Vec<String> = optional List, "protected types or addresses this run may destroy or replace";
    }
}

step_inputs! {
    struct ApplyInputs {
        module: String = required String, "the module directory (relative to where cutover runs), e.g. \"terraform/app\"";
        component: String = required String, "the component name; the workspace is <component>_<env>";
        plan_file: String = required String, "the plan step's `plan_file` output";
        plan_sha256: String = required String, "the plan step's `plan_sha256` output: a changed plan file is refused";
    }
}

/// One Terraform command of the sequence.
struct Command {
    args: Vec<String>,
    /// Run with `TF_WORKSPACE` set (after the workspace is selected).
    in_workspace: bool,
    /// Keep stdout in memory instead of the log (JSON that may hold sensitive values).
    capture: bool,
}

struct Running {
    started: tf::Started,
    stdout: Option<tokio::task::JoinHandle<std::io::Result<Vec<u8>>>>,
}

struct Runner {
    mode: Mode,
    workdir: Option<Workdir>,
    workspace: String,
    state_key: String,
    commands: Vec<Command>,
    next: usize,
    running: Option<Running>,
    captured: Vec<u8>,
    protect: Vec<String>,
    allow_destroy: Vec<String>,
}

impl Runner {
    fn new(mode: Mode) -> Self {
        Self {
            mode,
            workdir: None,
            workspace: String::new(),
            state_key: String::new(),
            commands: Vec::new(),
            next: 0,
            running: None,
            captured: Vec::new(),
            protect: Vec::new(),
            allow_destroy: Vec::new(),
        }
    }

    /// Resolves settings, binary and work dir, and lays out the commands to run.
    fn prepare(&mut self, ctx: &StepContext) -> Result<(), Failure> {
        let env = ctx.environment();
        let settings = env.terraform_section()?.clone();
        let (module, component) = match self.mode {
            Mode::Plan => {
                let i: PlanInputs = ctx.inputs()?;
                self.protect = settings.protect.iter().chain(&i.protect).cloned().collect();
                self.allow_destroy = i.allow_destroy;
                (i.module, i.component)
            }
            Mode::Apply => {
                let i: ApplyInputs = ctx.inputs()?;
                (i.module, i.component)
            }
        };
        check_component(&component)?;
        let binary = tf::find_binary(settings.binary.as_deref())?;
        let workdir = Workdir::prepare(
            binary,
            &PathBuf::from(&module),
            &ctx.services.run_dir,
            &component,
        )?;
        self.workspace = tf::workspace_name(&component, &env.name);
        self.state_key = settings.state_key(&component, &self.workspace);
        let backend =
            workdir.write_file("backend.hcl", settings.backend_hcl(&component).as_bytes())?;
        let mut commands = vec![
            Command {
                args: vec![
                    "init".into(),
                    "-input=false".into(),
                    "-no-color".into(),
                    "-reconfigure".into(),
                    format!("-backend-config={}", backend.display()),
                ],
                in_workspace: false,
                capture: false,
            },
            Command {
                args: vec![
                    "workspace".into(),
                    "select".into(),
                    "-or-create=true".into(),
                    "-no-color".into(),
                    self.workspace.clone(),
                ],
                in_workspace: false,
                capture: false,
            },
        ];
        match self.mode {
            Mode::Plan => {
                let i: PlanInputs = ctx.inputs()?;
                ctx.record_intent(
                    "terraform.plan",
                    serde_json::json!({ "workspace": self.workspace, "state_key": self.state_key }),
                )?;
                let plan = workdir.plan_path();
                let mut args = vec![
                    "plan".into(),
                    "-input=false".into(),
                    "-no-color".into(),
                    "-lock-timeout=0s".into(),
                    format!("-out={}", plan.display()),
                ];
                if !i.vars.is_empty() {
                    let json = serde_json::to_vec_pretty(&serde_json::Value::Object(i.vars))
                        .expect("JSON values serialize");
                    let vars = workdir.write_file("inputs.tfvars.json", &json)?;
                    args.push(format!("-var-file={}", vars.display()));
                }
                commands.push(Command {
                    args,
                    in_workspace: true,
                    capture: false,
                });
                commands.push(Command {
                    args: vec![
                        "show".into(),
                        "-json".into(),
                        "-no-color".into(),
                        plan.display().to_string(),
                    ],
                    in_workspace: true,
                    capture: true,
                });
            }
            Mode::Apply => {
                let i: ApplyInputs = ctx.inputs()?;
                let plan = PathBuf::from(&i.plan_file);
                if !plan.is_file() {
                    return Err(Failure::permanent(format!(
                        "step {}: the saved plan {} does not exist; nothing was applied",
                        ctx.step_id,
                        plan.display()
                    ))
                    .with_hint(
                        "run the runbook again so its terraform.plan step makes a new plan",
                    ));
                }
                let sha = tf::sha256_file(&plan)?;
                if sha != i.plan_sha256 {
                    return Err(Failure::permanent(format!(
                        "step {}: the saved plan {} changed since it was planned (SHA-256 {sha}, planned {}); \
                         nothing was applied",
                        ctx.step_id,
                        plan.display(),
                        i.plan_sha256
                    ))
                    .with_hint(
                        "something rewrote the plan file; find out what, then run the runbook again to plan anew",
                    ));
                }
                ctx.record_intent(
                    "terraform.apply",
                    serde_json::json!({ "workspace": self.workspace, "plan_sha256": sha }),
                )?;
                commands.push(Command {
                    args: vec![
                        "apply".into(),
                        "-input=false".into(),
                        "-no-color".into(),
                        "-lock-timeout=0s".into(),
                        plan.display().to_string(),
                    ],
                    in_workspace: true,
                    capture: false,
                });
                commands.push(Command {
                    args: vec!["output".into(), "-json".into(), "-no-color".into()],
                    in_workspace: true,
                    capture: true,
                });
            }
        }
        self.commands = commands;
        self.next = 0;
        self.workdir = Some(workdir);
        Ok(())
    }

    fn start_next(&mut self) -> Result<(), Failure> {
        let workdir = self.workdir.as_ref().expect("prepared");
        let command = &self.commands[self.next];
        let mut started = workdir.start(
            &command.args,
            command.in_workspace.then_some(self.workspace.as_str()),
            command.capture,
        )?;
        let stdout = started.child.stdout.take().map(|mut out| {
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut buf = Vec::new();
                out.read_to_end(&mut buf).await.map(|_| buf)
            })
        });
        self.running = Some(Running { started, stdout });
        Ok(())
    }

    /// Polls the running command; `Ok(true)` when it finished successfully.
    async fn poll(&mut self) -> Result<bool, Failure> {
        let running = self.running.as_mut().expect("a command runs");
        let status = match running.started.child.try_wait() {
            Ok(None) => return Ok(false),
            Ok(Some(status)) => status,
            Err(e) => {
                return Err(Failure::transient(format!(
                    "cannot wait for terraform: {e}"
                )))
            }
        };
        let running = self.running.take().expect("a command runs");
        let workdir = self.workdir.as_ref().expect("prepared");
        let captured = match running.stdout {
            Some(handle) => handle
                .await
                .map_err(|e| Failure::transient(format!("reading terraform's output: {e}")))?
                .map_err(|e| Failure::transient(format!("reading terraform's output: {e}")))?,
            None => Vec::new(),
        };
        if !status.success() {
            let log = workdir.log_since(running.started.log_offset);
            return Err(tf::classify(
                &running.started.what,
                status.code().unwrap_or(-1),
                &log,
                &workdir.log_path(),
                &self.workspace,
            ));
        }
        self.captured = captured;
        self.next += 1;
        Ok(true)
    }

    fn finish(&mut self, ctx: &StepContext) -> Result<Outputs, Failure> {
        let workdir = self.workdir.as_ref().expect("prepared");
        let mut out = Outputs::new();
        let log = workdir.log_path().display().to_string();
        match self.mode {
            Mode::Plan => {
                let summary = plan_json::summarize(&self.captured)?;
                self.captured.clear();
                let plan = workdir.plan_path();
                let hits = summary.protected_destroys(&self.protect, &self.allow_destroy);
                if !hits.is_empty() {
                    let list: Vec<String> = hits
                        .iter()
                        .map(|c| format!("{} ({})", c.address, c.action))
                        .collect();
                    let _ = std::fs::remove_file(&plan);
                    return Err(Failure::permanent(format!(
                        "step {}: the plan for {} would destroy protected resources: {}; nothing was applied",
                        ctx.step_id,
                        self.workspace,
                        list.join(", ")
                    ))
                    .with_hint(format!(
                        "if that is intended, add allow_destroy = [{}] to the step's `with` and run again; \
                         otherwise fix the module or its variables",
                        hits.iter()
                            .map(|c| format!("\"{}\"", c.address))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                ctx.note(format!("{}: {}", self.workspace, summary.line()));
                out.insert("workspace".into(), self.workspace.clone().into());
                out.insert("state_key".into(), self.state_key.clone().into());
                out.insert("plan_file".into(), plan.display().to_string().into());
                out.insert("plan_sha256".into(), tf::sha256_file(&plan)?.into());
                out.insert("summary".into(), summary.line().into());
                out.insert("add".into(), summary.add.into());
                out.insert("change".into(), summary.change.into());
                out.insert("destroy".into(), summary.destroy.into());
                out.insert("replace".into(), summary.replace.into());
                out.insert("changes".into(), (!summary.is_empty()).into());
                out.insert("log".into(), log.into());
            }
            Mode::Apply => {
                let (outputs, redacted) = plan_json::redacted_outputs(&self.captured)?;
                self.captured.clear();
                out = outputs;
                for (key, value) in [
                    ("workspace", serde_json::Value::from(self.workspace.clone())),
                    ("state_key", self.state_key.clone().into()),
                    ("log", log.into()),
                    ("redacted_outputs", redacted.into()),
                ] {
                    out.entry(key).or_insert(value);
                }
            }
        }
        Ok(out)
    }
}

/// Components become workspace names and directory names: keep them plain.
fn check_component(component: &str) -> Result<(), Failure> {
    let ok = !component.is_empty()
        && component
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Failure::permanent(format!(
            "component `{component}` must be letters, digits, `-` or `_`"
        )))
    }
}

#[async_trait]
impl Step for Runner {
    async fn advance(&mut self, ctx: &StepContext) -> Decision {
        if self.workdir.is_none() {
            try_step!(self.prepare(ctx));
        }
        loop {
            if self.running.is_none() {
                if self.next >= self.commands.len() {
                    let outputs = self.finish(ctx);
                    self.workdir = None;
                    return Decision::Done(try_step!(outputs));
                }
                if let Err(f) = self.start_next() {
                    self.workdir = None;
                    return Decision::Fail(f);
                }
            }
            match self.poll().await {
                Ok(true) => continue,
                Ok(false) => {
                    let what = &self.commands[self.next].args[0];
                    return Decision::wait(
                        Duration::from_millis(200),
                        format!("terraform {what} ({})", self.workspace),
                    );
                }
                Err(f) => {
                    // A retry starts over from init: every command here is repeatable.
                    self.workdir = None;
                    return Decision::Fail(f);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_plain_names() {
        assert!(check_component("app").is_ok());
        assert!(check_component("db-2_x").is_ok());
        assert!(check_component("../x").is_err());
        assert!(check_component("").is_err());
    }
}
