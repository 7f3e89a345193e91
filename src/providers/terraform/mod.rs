//! Running the real `terraform` (or OpenTofu's `tofu`) for the `terraform.*` steps.
//!
//! Everything a run needs lives in its own directory `<run dir>/terraform/<component>/`:
//! Terraform's data dir (`TF_DATA_DIR`), an empty CLI config (`TF_CLI_CONFIG_FILE`, so a
//! user's or machine's config never changes what runs), the backend settings file, the
//! variables file, the saved plan and `terraform.log` with everything Terraform printed.
//! Nothing Terraform prints reaches cutover's terminal. Credentials come from the
//! environment (the standard AWS variables, a profile, an instance role), never argv.
//!
//! The backend is S3 with S3-native locking (`use_lockfile`), one workspace per
//! `<component>_<env>`; its state object is `<key_prefix>/<workspace>/<component>.tfstate`.

pub mod plan_json;

use crate::config::toml_read::TomlReader;
use crate::failure::Failure;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use toml_edit::Item;

/// Keys of the environment's `[terraform]` table.
pub const TERRAFORM_SECTION_KEYS: &[&str] = &[
    "bucket",
    "key_prefix",
    "region",
    "endpoint",
    "binary",
    "protect",
];

/// The environment's `[terraform]` table, read at load by [`TerraformSettings::read`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TerraformSettings {
    /// The state bucket.
    pub bucket: String,
    /// Prefix of every state key in the bucket (default `terraform`).
    pub key_prefix: String,
    pub region: String,
    /// An S3 endpoint (an emulator such as moto); path-style, and the backend skips
    /// the AWS-only checks (credentials, account id, region, metadata API).
    pub endpoint: Option<String>,
    /// The program to run; default: `terraform` on PATH, else `tofu`.
    pub binary: Option<String>,
    /// Resource types or addresses a plan must never destroy or replace unless the
    /// step lists them in `allow_destroy`.
    pub protect: Vec<String>,
}

impl TerraformSettings {
    /// Reads `[terraform]`: the state backend of the Terraform stages (S3, or an emulator
    /// at `endpoint`), the binary, and resources no plan may destroy. Every problem is
    /// recorded in `r` with its file:line:col; `None` when there was any.
    pub fn read(r: &mut TomlReader<'_>, terraform: &Item) -> Option<Self> {
        let t = terraform.as_table_like()?; // not a table: reported by the loader
        let before = r.problems.len();
        let context = "[terraform]";
        r.check_keys(t, TERRAFORM_SECTION_KEYS, context);
        let bucket = r.string(t, "bucket", true, context, terraform.span());
        let region = r.string(t, "region", true, context, terraform.span());
        let binary = r.string(t, "binary", false, context, None).map(|b| b.value);
        let key_prefix = match r.string(t, "key_prefix", false, context, None) {
            None => Some("terraform".to_owned()),
            Some(prefix) if prefix.value.trim_matches('/').is_empty() => {
                r.problem_with_hint(
                    prefix.span,
                    "[terraform] key_prefix is empty",
                    "name the folder of the state objects, e.g. key_prefix = \"terraform\"",
                );
                None
            }
            Some(prefix) => Some(prefix.value),
        };
        let endpoint = match r.string(t, "endpoint", false, context, None) {
            Some(e) if !(e.value.starts_with("http://") || e.value.starts_with("https://")) => {
                r.problem_with_hint(
                    e.span,
                    format!("[terraform] endpoint `{}` is not a URL", e.value),
                    "write it as http://HOST:PORT (an emulator) or https://…, or remove it for AWS",
                );
                None
            }
            other => other.map(|e| e.value),
        };
        let protect = r
            .string_list(t, "protect", context)
            .into_iter()
            .map(|p| p.value)
            .collect();
        if r.problems.len() != before {
            return None;
        }
        Some(TerraformSettings {
            bucket: bucket?.value,
            key_prefix: key_prefix?,
            region: region?.value,
            endpoint,
            binary,
            protect,
        })
    }

    /// The S3 backend settings, as an HCL file for `init -backend-config=FILE`.
    pub fn backend_hcl(&self, component: &str) -> String {
        let prefix = self.key_prefix.trim_matches('/');
        let mut hcl = format!(
            "bucket = {}\nkey = {}\nworkspace_key_prefix = {}\nregion = {}\nuse_lockfile = true\nencrypt = true\n",
            hcl_str(&self.bucket),
            hcl_str(&format!("{component}.tfstate")),
            hcl_str(prefix),
            hcl_str(&self.region),
        );
        if let Some(endpoint) = &self.endpoint {
            hcl.push_str(&format!(
                "endpoints = {{ s3 = {} }}\nuse_path_style = true\nskip_credentials_validation = true\nskip_requesting_account_id = true\nskip_region_validation = true\nskip_metadata_api_check = true\n",
                hcl_str(endpoint)
            ));
        }
        hcl
    }

    /// Where a workspace's state lives in the bucket.
    pub fn state_key(&self, component: &str, workspace: &str) -> String {
        format!(
            "{}/{workspace}/{component}.tfstate",
            self.key_prefix.trim_matches('/')
        )
    }
}

fn hcl_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// `<component>_<env>`.
pub fn workspace_name(component: &str, env: &str) -> String {
    format!("{component}_{env}")
}

/// The program to run: the configured one, else `terraform` on PATH, else `tofu`.
pub fn find_binary(configured: Option<&str>) -> Result<PathBuf, Failure> {
    let not_found = |what: String| {
        Failure::permanent(what).with_hint(
            "install Terraform 1.11 or OpenTofu: `scripts/setup.sh` builds one into .tools/bin \
             (put it on PATH), or set `binary` in the environment's [terraform] table",
        )
    };
    if let Some(path) = configured {
        let p = PathBuf::from(path);
        if p.components().count() > 1 {
            return if is_executable(&p) {
                Ok(p)
            } else {
                Err(not_found(format!(
                    "the Terraform binary {} does not exist or is not executable",
                    p.display()
                )))
            };
        }
        return search_path(path).ok_or_else(|| {
            not_found(format!(
                "`{path}` (the configured Terraform binary) is not on PATH"
            ))
        });
    }
    search_path("terraform")
        .or_else(|| search_path("tofu"))
        .ok_or_else(|| not_found("neither `terraform` nor `tofu` is on PATH".into()))
}

fn search_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A component's working directory inside the run directory.
pub struct Workdir {
    pub binary: PathBuf,
    pub module: PathBuf,
    pub dir: PathBuf,
}

impl Workdir {
    /// Creates `<run_dir>/terraform/<component>/` (mode 0700: the saved plan may hold
    /// sensitive values) with the empty CLI config.
    pub fn prepare(
        binary: PathBuf,
        module: &Path,
        run_dir: &Path,
        component: &str,
    ) -> Result<Self, Failure> {
        use std::os::unix::fs::PermissionsExt;
        let module = std::path::absolute(module).unwrap_or_else(|_| module.to_path_buf());
        if !module.is_dir() {
            return Err(Failure::permanent(format!(
                "the Terraform module {} is not a directory",
                module.display()
            ))
            .with_hint(
                "check the step's `module` (relative paths are relative to where cutover runs)",
            ));
        }
        let dir = run_dir.join("terraform").join(component);
        let io = |e: std::io::Error| {
            Failure::permanent(format!("cannot prepare {}: {e}", dir.display()))
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        let rc = dir.join("terraformrc");
        if !rc.exists() {
            std::fs::write(&rc, "").map_err(io)?;
        }
        Ok(Self {
            binary,
            module,
            dir,
        })
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("terraform.log")
    }

    pub fn plan_path(&self) -> PathBuf {
        self.dir.join("plan.tfplan")
    }

    /// Writes a file of the work dir with mode 0600.
    pub fn write_file(&self, name: &str, contents: &[u8]) -> Result<PathBuf, Failure> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.dir.join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(contents).map(|_| f))
            .map_err(|e| Failure::permanent(format!("cannot write {}: {e}", path.display())))?;
        f.flush()
            .map_err(|e| Failure::permanent(format!("cannot write {}: {e}", path.display())))?;
        Ok(path)
    }

    /// Starts `terraform -chdir=MODULE ARGS...`. Stderr (and stdout unless `capture`)
    /// is appended to the log, after a header line naming the command.
    pub fn start(
        &self,
        args: &[String],
        workspace: Option<&str>,
        capture: bool,
    ) -> Result<Started, Failure> {
        let log_path = self.log_path();
        let io = |e: std::io::Error| {
            Failure::permanent(format!("cannot write {}: {e}", log_path.display()))
        };
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io)?;
        let offset = log.metadata().map_err(io)?.len();
        writeln!(log, "\n$ {} {}", self.binary.display(), args.join(" ")).map_err(io)?;
        let mut cmd = tokio::process::Command::new(&self.binary);
        cmd.arg(format!("-chdir={}", self.module.display()))
            .args(args)
            .env("TF_DATA_DIR", self.dir.join("data"))
            .env("TF_CLI_CONFIG_FILE", self.dir.join("terraformrc"))
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("CHECKPOINT_DISABLE", "1")
            .env_remove("TF_LOG")
            .env_remove("TF_CLI_ARGS")
            .env_remove("TF_WORKSPACE")
            .stdin(Stdio::null())
            .stderr(log.try_clone().map_err(io)?)
            .kill_on_drop(true);
        if let Some(ws) = workspace {
            cmd.env("TF_WORKSPACE", ws);
        }
        if capture {
            cmd.stdout(Stdio::piped());
        } else {
            cmd.stdout(log);
        }
        // Terraform dies with cutover: a killed run leaves no apply running unobserved.
        // A killed apply leaves its S3 lock file; the next command reports the lock as
        // held (transient, with the `force-unlock` hint).
        crate::providers::die_with_parent(&mut cmd);
        let child = cmd.spawn().map_err(|e| {
            Failure::permanent(format!("cannot run {}: {e}", self.binary.display())).with_hint(
                "install Terraform or OpenTofu (scripts/setup.sh says how) or fix `binary` in [terraform]",
            )
        })?;
        Ok(Started {
            child,
            log_offset: offset,
            what: args.first().cloned().unwrap_or_default(),
        })
    }

    /// What the command wrote to the log since it started.
    pub fn log_since(&self, offset: u64) -> String {
        let text = std::fs::read(self.log_path()).unwrap_or_default();
        let start = (offset as usize).min(text.len());
        String::from_utf8_lossy(&text[start..]).into_owned()
    }
}

/// A running Terraform command.
pub struct Started {
    pub child: tokio::process::Child,
    pub log_offset: u64,
    /// The subcommand (`init`, `plan`, ...), for messages.
    pub what: String,
}

/// Why a command failed, as a classified failure with the operator's next step.
pub fn classify(what: &str, code: i32, log: &str, log_path: &Path, workspace: &str) -> Failure {
    let errors: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("Error:") || l.starts_with("│ Error:"))
        .map(|l| l.trim_start_matches("│ ").trim())
        .collect();
    // `Error:` lines when Terraform prints diagnostics; else its first line (some commands,
    // e.g. `workspace select` on a held lock, print a bare message).
    let first = errors
        .first()
        .copied()
        .or_else(|| {
            log.lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with("$ "))
        })
        .unwrap_or("no error message (see the log)");
    let first: String = first.chars().take(300).collect();
    let message =
        format!("terraform {what} failed in workspace {workspace} (exit {code}): {first}");
    let lower = log.to_ascii_lowercase();
    let see = format!("Terraform's output is in {}", log_path.display());
    let lock_held = lower.contains("error acquiring the state lock")
        || (lower.contains("lock info")
            && [
                "failed to lock",
                "preconditionfailed",
                "conditionalcheckfailed",
            ]
            .iter()
            .any(|m| lower.contains(m)));
    if lock_held {
        return Failure::transient(message).with_hint(format!(
            "another Terraform run holds the state lock of {workspace}; it is retried. If its holder died, \
             check the lock info in the log and run `terraform force-unlock LOCK_ID` in that workspace. {see}"
        ));
    }
    if lower.contains("saved plan is stale") {
        return Failure::permanent(message).with_hint(format!(
            "the state changed since this plan was made (another apply, or a part-applied earlier attempt); \
             run the runbook again to make a new plan. {see}"
        ));
    }
    let transient_markers = [
        "connection refused",
        "connection reset",
        "i/o timeout",
        "tls handshake timeout",
        "send request failed",
        "slowdown",
        "throttl",
        "service unavailable",
        "internal error",
        "status code: 5",
        "statuscode: 5",
    ];
    if transient_markers.iter().any(|m| lower.contains(m)) {
        return Failure::transient(message).with_hint(format!(
            "the state backend or an API did not answer; it is retried. {see}"
        ));
    }
    let config_markers = [
        "invalid",
        "unsupported argument",
        "unsupported block",
        "reference to undeclared",
        "missing required argument",
        "argument or block definition required",
        "no value for required variable",
        "duplicate",
        "module not installed",
    ];
    let hint = if config_markers.iter().any(|m| lower.contains(m)) {
        format!("the Terraform configuration or its variables are invalid; fix the module and run again. {see}")
    } else {
        format!("read the error in the log, fix the cause and run again. {see}")
    };
    Failure::permanent(message).with_hint(hint)
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String, Failure> {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path)
        .map_err(|e| Failure::permanent(format!("cannot read {}: {e}", path.display())))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(endpoint: Option<&str>) -> TerraformSettings {
        TerraformSettings {
            bucket: "b".into(),
            key_prefix: "/tf/".into(),
            region: "af-south-1".into(),
            endpoint: endpoint.map(str::to_owned),
            binary: None,
            protect: vec![],
        }
    }

    #[test]
    fn backend_settings_name_the_workspace_key_and_the_lock_file() {
        let hcl = settings(None).backend_hcl("app");
        assert!(hcl.contains("key = \"app.tfstate\""), "{hcl}");
        assert!(hcl.contains("workspace_key_prefix = \"tf\""), "{hcl}");
        assert!(hcl.contains("use_lockfile = true"), "{hcl}");
        assert!(!hcl.contains("endpoints"), "{hcl}");
        let emu = settings(Some("http://127.0.0.1:5000")).backend_hcl("app");
        assert!(
            emu.contains("endpoints = { s3 = \"http://127.0.0.1:5000\" }"),
            "{emu}"
        );
        assert!(emu.contains("use_path_style = true"), "{emu}");
        assert_eq!(
            settings(None).state_key("app", "app_dev"),
            "tf/app_dev/app.tfstate"
        );
    }

    #[test]
    fn a_held_lock_is_transient_and_bad_config_permanent() {
        let p = Path::new("/r/terraform.log");
        let lock = classify(
            "plan",
            1,
            "│ Error: Error acquiring the state lock\n│ Lock Info:\n",
            p,
            "app_dev",
        );
        assert!(lock.is_retryable(), "{lock:?}");
        assert!(lock.hint.unwrap().contains("force-unlock"));
        // `workspace select -or-create` on a held S3 lock file prints no `Error:` line.
        let bare = classify(
            "workspace",
            1,
            "$ terraform workspace select\nfailed to lock s3 state: operation error S3: PutObject, \
             StatusCode: 412, api error PreconditionFailed\nLock Info:\n  ID: x\n",
            p,
            "app_dev",
        );
        assert!(bare.is_retryable(), "{bare:?}");
        assert!(
            bare.message.contains("failed to lock s3 state"),
            "{}",
            bare.message
        );
        let bad = classify(
            "plan",
            1,
            "│ Error: Unsupported argument\n│ An argument named \"x\" is not expected here.\n",
            p,
            "app_dev",
        );
        assert!(!bad.is_retryable());
        assert!(
            bad.message.contains("Unsupported argument"),
            "{}",
            bad.message
        );
        assert!(bad.hint.unwrap().contains("invalid"));
    }

    #[test]
    fn a_missing_configured_binary_names_the_fix() {
        let f = find_binary(Some("/nonexistent/terraform")).unwrap_err();
        assert!(f.message.contains("/nonexistent/terraform"));
        assert!(f.hint.unwrap().contains("scripts/setup.sh"));
    }
}
