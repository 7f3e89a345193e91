//! Exec through SSM Run Command (`AWS-RunShellScript`).
//!
//! The command text is a rendered wrapper ([`render_command`]): `set -euo pipefail`, the
//! script's non-secret variables, the script itself as a quoted here-document, and a
//! trailer that writes a JSON result object `{exit_code, outputs, output_tail, nonce, …}`
//! and the full log to S3 under `runs/<run>/exec/<nonce>/`. That object is the only
//! source of truth: SSM's status can say `Success` for a script that never reported
//! (the emulator always does), `DeliveryTimedOut` for one that completed, and its stdout
//! stops at 24,000 characters. A terminal status without the object is
//! [`ExecStatus::Inconclusive`]; a result object with the right nonce is believed
//! whatever SSM says.
//!
//! Secrets never appear in the command text: scripts read them on the instance with
//! `aws secretsmanager get-secret-value`.

use super::errors::{classify, error_code, Effect};
use super::s3_store::S3Store;
use crate::failure::Failure;
use crate::ids::{InstanceId, ObjectKey, RunId};
use crate::providers::{Exec, ExecHandle, ExecResult, ExecStatus, ObjectStore, Script};
use async_trait::async_trait;
use aws_sdk_ssm::types::CommandInvocationStatus;
use std::time::Duration;

/// The wrapper's fixed part (result object, log upload), shellcheck-clean on its own.
pub const WRAPPER: &str = include_str!("exec_wrapper.sh");
/// SendCommand parameters are limited in size; stay well below.
pub const MAX_COMMAND_BYTES: usize = 60 * 1024;

/// Exec on EC2 instances through SSM, with results in S3. One per run: result keys are
/// derived from the run id and the attempt nonce.
#[derive(Clone, Debug)]
pub struct SsmExec {
    ssm: aws_sdk_ssm::Client,
    store: S3Store,
    run_id: RunId,
    delivery_timeout: Duration,
}

/// One poll's findings, with the delay the caller should wait before the next poll.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SsmPoll {
    pub status: ExecStatus,
    /// SSM's own status and details, for logs (e.g. `Success/Success`,
    /// `TimedOut/DeliveryTimedOut`). Never the source of truth.
    pub ssm_status: String,
    /// `Some` while the command runs: poll again after this long.
    pub retry_after: Option<Duration>,
}

/// SSM's limit on a command's comment.
const COMMENT_LIMIT: usize = 100;
/// At most this many pages of ListCommands are read when looking for a sent command.
const LIST_PAGES: usize = 20;

/// `cutover <script> <nonce> <run id>`, cut at SSM's 100 characters: the script name and
/// the nonce (which [`SsmExec::start`] looks for) come first, so only the run id is ever
/// cut.
fn command_comment(script: &Script, run_id: &RunId) -> String {
    format!("cutover {} {} {run_id}", script.name, script.nonce)
        .chars()
        .take(COMMENT_LIMIT)
        .collect()
}

/// Whether `comment` (a [`command_comment`]) names `nonce`.
fn comment_names(comment: &str, nonce: &str) -> bool {
    comment.split(' ').nth(2) == Some(nonce)
}

impl SsmExec {
    /// The id of a command with `script`'s nonce sent to `instance` recently enough to
    /// still run (within the script's timeout, SSM's delivery timeout and 10 minutes).
    /// Older commands have ended: a new one cannot overlap them.
    async fn sent_before(
        &self,
        instance: &InstanceId,
        script: &Script,
    ) -> Result<Option<String>, Failure> {
        let window = script.timeout + self.delivery_timeout + Duration::from_secs(600);
        let after = chrono::Utc::now()
            - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::days(3));
        let filter = aws_sdk_ssm::types::CommandFilter::builder()
            .key(aws_sdk_ssm::types::CommandFilterKey::InvokedAfter)
            .value(after.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .build()
            .map_err(|e| Failure::permanent(format!("cannot build a ListCommands filter: {e}")))?;
        let mut token: Option<String> = None;
        for _ in 0..LIST_PAGES {
            let out = self
                .ssm
                .list_commands()
                .instance_id(instance.as_str())
                .filters(filter.clone())
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| {
                    classify(
                        &format!("ListCommands of {instance} (looking for {})", script.nonce),
                        Effect::Read,
                        &e,
                    )
                })?;
            if let Some(found) = out
                .commands()
                .iter()
                .find(|c| comment_names(c.comment().unwrap_or_default(), &script.nonce))
            {
                return Ok(found.command_id().map(str::to_owned));
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => return Ok(None),
            }
        }
        Ok(None)
    }

    pub fn new(ssm: aws_sdk_ssm::Client, store: S3Store, run_id: RunId) -> Self {
        Self {
            ssm,
            store,
            run_id,
            delivery_timeout: Duration::from_secs(600),
        }
    }

    /// How long SSM may take to deliver the command to the agent (SendCommand
    /// `TimeoutSeconds`, 30 s – 48 h). Default 600 s.
    pub fn with_delivery_timeout(mut self, timeout: Duration) -> Self {
        self.delivery_timeout =
            timeout.clamp(Duration::from_secs(30), Duration::from_secs(172_800));
        self
    }

    fn exec_dir(&self, nonce: &str) -> String {
        format!("runs/{}/exec/{}", self.run_id, nonce)
    }

    /// Where the script's result object lives.
    pub fn result_key(&self, nonce: &str) -> ObjectKey {
        ObjectKey::new(format!("{}/result.json", self.exec_dir(nonce)))
    }

    /// Where the script's full log lives.
    pub fn log_key(&self, nonce: &str) -> ObjectKey {
        ObjectKey::new(format!("{}/log.txt", self.exec_dir(nonce)))
    }

    /// The command text sent to the instance.
    pub fn render(&self, script: &Script) -> Result<String, Failure> {
        render_command(
            script,
            &self.store.location(&self.result_key(&script.nonce)),
            &self.store.location(&self.log_key(&script.nonce)),
            self.store.settings().kms_key_id.as_deref(),
        )
    }

    /// Reads the result object of the attempt `nonce`. `Ok(None)` when it does not exist.
    pub async fn read_result(&self, nonce: &str) -> Result<Option<ExecResult>, Failure> {
        let key = self.result_key(nonce);
        let Some(value) = self.store.get_json::<serde_json::Value>(&key).await? else {
            return Ok(None);
        };
        let result: ExecResult = serde_json::from_value(value).map_err(|e| {
            Failure::permanent(format!(
                "{} is not a cutover result object: {e}",
                self.store.location(&key)
            ))
        })?;
        if result.nonce != nonce {
            return Err(Failure::inconclusive(format!(
                "{} carries nonce {} but attempt {nonce} was expected; it is not this attempt's result",
                self.store.location(&key),
                result.nonce
            )));
        }
        Ok(Some(result))
    }

    /// Polls once: SSM's view, then the result object (which wins).
    pub async fn poll_detailed(
        &self,
        handle: &ExecHandle,
        attempt: u32,
    ) -> Result<SsmPoll, Failure> {
        let what = format!("GetCommandInvocation {} on {}", handle.id, handle.instance);
        let invocation = self
            .ssm
            .get_command_invocation()
            .command_id(&handle.id)
            .instance_id(handle.instance.as_str())
            .send()
            .await;
        let (status, details) = match invocation {
            Ok(out) => (
                out.status().cloned(),
                out.status_details().unwrap_or_default().to_owned(),
            ),
            // Right after SendCommand the invocation may not be visible yet.
            Err(e) if error_code(&e) == Some("InvocationDoesNotExist") => {
                (None, "InvocationDoesNotExist".to_owned())
            }
            Err(e) => return Err(classify(&what, Effect::Read, &e)),
        };
        let ssm_status = format!(
            "{}/{details}",
            status
                .as_ref()
                .map(|s| s.as_str())
                .unwrap_or("NotVisibleYet")
        );
        if let Some(result) = self.read_result(&handle.nonce).await? {
            return Ok(SsmPoll {
                status: ExecStatus::Finished(result),
                ssm_status,
                retry_after: None,
            });
        }
        let running = matches!(
            status,
            None | Some(CommandInvocationStatus::Pending)
                | Some(CommandInvocationStatus::InProgress)
                | Some(CommandInvocationStatus::Delayed)
                | Some(CommandInvocationStatus::Cancelling)
        );
        if running {
            return Ok(SsmPoll {
                status: ExecStatus::Running,
                ssm_status,
                retry_after: Some(poll_backoff(attempt)),
            });
        }
        let message = format!(
            "SSM reports {ssm_status} for command {} on {}, but the result object {} does not exist: \
             the script may not have run, may still be running, or stopped before reporting",
            handle.id,
            handle.instance,
            self.store.location(&self.result_key(&handle.nonce)),
        );
        Ok(SsmPoll {
            status: ExecStatus::Inconclusive(message),
            ssm_status,
            retry_after: None,
        })
    }
}

/// The delay before poll `attempt` (0-based): 2 s doubling to a 30 s cap.
pub fn poll_backoff(attempt: u32) -> Duration {
    Duration::from_secs(2u64.saturating_mul(1u64 << attempt.min(5)).min(30))
}

fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Names that look like they carry a secret value. Scripts get secret *ids* and fetch the
/// values themselves.
fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    upper == "PASSWORD"
        || upper.ends_with("_PASSWORD")
        || upper.ends_with("_PASS")
        || upper.ends_with("_SECRET_VALUE")
}

/// Renders the full command text for `script`: header, body, wrapper.
pub fn render_command(
    script: &Script,
    result_uri: &str,
    log_uri: &str,
    kms_key_id: Option<&str>,
) -> Result<String, Failure> {
    if script.nonce.len() < 8
        || script.nonce.len() > 128
        || !script
            .nonce
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Failure::permanent(format!(
            "script {}: nonce must be 8–128 characters of [A-Za-z0-9_-]",
            script.name
        )));
    }
    let mut header = String::from("#!/usr/bin/env bash\nset -euo pipefail\numask 077\n");
    let reserved = [
        ("CUTOVER_NONCE", script.nonce.as_str()),
        ("CUTOVER_SCRIPT_NAME", script.name.as_str()),
        ("CUTOVER_RESULT_URI", result_uri),
        ("CUTOVER_LOG_URI", log_uri),
        ("CUTOVER_KMS_KEY_ID", kms_key_id.unwrap_or("")),
    ];
    for (k, v) in reserved {
        header.push_str(&format!("export {k}={}\n", shell_quote(v)));
    }
    for (k, v) in &script.env {
        if !valid_env_name(k)
            || k.starts_with("CUTOVER_NONCE")
            || reserved.iter().any(|(r, _)| r == k)
        {
            return Err(Failure::permanent(format!(
                "script {}: invalid or reserved variable name {k:?}",
                script.name
            )));
        }
        if looks_secret(k) {
            return Err(Failure::permanent(format!(
                "script {}: variable {k} looks like a secret value; pass the secret's id and let the script read it from Secrets Manager",
                script.name
            )));
        }
        header.push_str(&format!("export {k}={}\n", shell_quote(v)));
    }
    let delimiter = format!("CUTOVER_BODY_{}", script.nonce.replace('-', "_"));
    if script.body.lines().any(|l| l.trim() == delimiter) {
        return Err(Failure::permanent(format!(
            "script {} contains its own here-document delimiter",
            script.name
        )));
    }
    let mut text = header;
    text.push_str("cutover_write_body() {\n");
    text.push_str(&format!("cat <<'{delimiter}'\n"));
    text.push_str(&script.body);
    if !script.body.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!("{delimiter}\n}}\n"));
    text.push_str(WRAPPER);
    if text.len() > MAX_COMMAND_BYTES {
        return Err(Failure::permanent(format!(
            "script {}: the command is {} bytes, more than SSM accepts ({MAX_COMMAND_BYTES}); ship large scripts in the AMI",
            script.name,
            text.len()
        )));
    }
    Ok(text)
}

#[async_trait]
impl Exec for SsmExec {
    /// Sends the command, unless one with this attempt's nonce was already sent to the
    /// instance (by a process that crashed before journaling its handle): that command is
    /// adopted, so the same attempt never runs twice.
    async fn start(&self, instance: &InstanceId, script: &Script) -> Result<ExecHandle, Failure> {
        if let Some(id) = self.sent_before(instance, script).await? {
            tracing::info!(instance_id = %instance, command_id = %id, script = %script.name, nonce = %script.nonce, "adopting the command this attempt already sent");
            return Ok(ExecHandle {
                id,
                instance: instance.clone(),
                nonce: script.nonce.clone(),
            });
        }
        let command = self.render(script)?;
        let execution_timeout = script.timeout.as_secs().clamp(1, 172_800);
        let output_prefix = self
            .store
            .settings()
            .full_key(&format!("{}/ssm", self.exec_dir(&script.nonce)));
        let comment = command_comment(script, &self.run_id);
        let out = self
            .ssm
            .send_command()
            .instance_ids(instance.as_str())
            .document_name("AWS-RunShellScript")
            .parameters("commands", vec![command])
            .parameters("executionTimeout", vec![execution_timeout.to_string()])
            .timeout_seconds(self.delivery_timeout.as_secs() as i32)
            .output_s3_bucket_name(self.store.bucket())
            .output_s3_key_prefix(output_prefix)
            .comment(comment)
            .send()
            .await
            .map_err(|e| {
                classify(
                    &format!("SendCommand {} to {instance}", script.name),
                    Effect::Write,
                    &e,
                )
                .with_hint("before sending again, cutover reads this attempt's result object")
            })?;
        let id = out.command().and_then(|c| c.command_id()).ok_or_else(|| {
            Failure::inconclusive(format!(
                "SendCommand {} to {instance} returned no command id",
                script.name
            ))
        })?;
        tracing::info!(instance_id = %instance, command_id = id, script = %script.name, nonce = %script.nonce, "command sent");
        Ok(ExecHandle {
            id: id.to_owned(),
            instance: instance.clone(),
            nonce: script.nonce.clone(),
        })
    }

    async fn poll(&self, handle: &ExecHandle) -> Result<ExecStatus, Failure> {
        Ok(self.poll_detailed(handle, 0).await?.status)
    }

    async fn cancel(&self, handle: &ExecHandle) -> Result<(), Failure> {
        match self
            .ssm
            .cancel_command()
            .command_id(&handle.id)
            .instance_ids(handle.instance.as_str())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Already finished or gone: nothing left to cancel.
            Err(e) if error_code(&e) == Some("InvalidCommandId") => Ok(()),
            Err(e) => Err(classify(
                &format!("CancelCommand {} on {}", handle.id, handle.instance),
                Effect::Write,
                &e,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn script(env: &[(&str, &str)]) -> Script {
        Script {
            name: "neo4j-dump".into(),
            body: "echo hello\ncutover_output size 3\n".into(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            timeout: Duration::from_secs(60),
            nonce: "attempt-0001".into(),
        }
    }

    #[test]
    fn the_comment_keeps_the_nonce_whole_and_only_it_is_recognised() {
        let mut s = script(&[]);
        s.nonce = format!("neo4j-backup-{}", "a".repeat(32));
        let run = RunId::new("20261206T212200Z-with-a-very-long-run-identifier-that-overflows");
        let comment = command_comment(&s, &run);
        assert_eq!(comment.chars().count(), COMMENT_LIMIT, "{comment}");
        assert!(comment_names(&comment, &s.nonce), "{comment}");
        assert!(
            !comment_names(&comment, "neo4j-backup-aaaa"),
            "a prefix is not the nonce"
        );
        assert!(!comment_names("cutover 20261206 neo4j-dump", &s.nonce));
    }

    #[test]
    fn rendered_command_quotes_values_and_embeds_the_body_verbatim() {
        let text = render_command(
            &script(&[("NEO4J_DATABASE", "it's $HOME")]),
            "s3://b/r.json",
            "s3://b/l.txt",
            None,
        )
        .unwrap();
        assert!(text.starts_with("#!/usr/bin/env bash\nset -euo pipefail\n"));
        assert!(text.contains(r"export NEO4J_DATABASE='it'\''s $HOME'"));
        assert!(text.contains("cat <<'CUTOVER_BODY_attempt_0001'\necho hello\ncutover_output size 3\nCUTOVER_BODY_attempt_0001\n"));
        assert!(text.contains("export CUTOVER_RESULT_URI='s3://b/r.json'"));
    }

    #[test]
    fn secret_looking_variables_and_bad_nonces_are_refused() {
        assert!(render_command(&script(&[("NEO4J_PASSWORD", "x")]), "a", "b", None).is_err());
        assert!(render_command(&script(&[("LEDGER_PASS", "x")]), "a", "b", None).is_err());
        assert!(render_command(
            &script(&[("NEO4J_SECRET_ID", "neo4j_prod_secrets")]),
            "a",
            "b",
            None
        )
        .is_ok());
        assert!(render_command(&script(&[("1BAD", "x")]), "a", "b", None).is_err());
        assert!(render_command(&script(&[("CUTOVER_NONCE", "x")]), "a", "b", None).is_err());
        let mut s = script(&[]);
        s.nonce = "short".into();
        assert!(render_command(&s, "a", "b", None).is_err());
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(poll_backoff(0), Duration::from_secs(2));
        assert_eq!(poll_backoff(1), Duration::from_secs(4));
        assert_eq!(poll_backoff(10), Duration::from_secs(30));
    }
}
