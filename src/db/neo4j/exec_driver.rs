//! Driving one script on an instance through the [`Exec`] channel to a result the engine
//! can believe: start, poll with backoff until the script reports, within a deadline.
//!
//! - A finished script with exit code 0 and this attempt's nonce is the only success.
//! - A non-zero exit is a classified failure naming the script and its output tail: the
//!   scripts' deliberate refusals (exit 3: checksum mismatch, precondition; exit 4: a
//!   consistency finding) and "command not found" (126/127) are permanent, anything else
//!   transient (every script is safe to run again; the executor bounds the retries).
//!   Exit 75 is the prelude's "another cutover script holds this instance's lock" (a
//!   script a crashed cutover left running): transient, with a hint saying so.
//! - [`ExecStatus::Inconclusive`] is never success: it is polled again a bounded number
//!   of times (the result object may simply be late); then the command is cancelled and
//!   the failure says the outcome is unknown and what to check.
//! - Past the deadline the command is cancelled and the outcome is unknown, too.
//!
//! The engine trait is a plain async call, so the waiting happens here, with tokio's
//! timer (tests run it on paused time).

use crate::failure::{ErrorClass, Failure};
use crate::ids::InstanceId;
use crate::providers::{Exec, ExecHandle, ExecResult, ExecStatus, Script};
use std::time::Duration;

/// How patiently a script is waited for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollPolicy {
    /// Delay before the first poll; doubles up to `max_delay`.
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// Added to the script's own timeout to get the deadline (delivery to the agent, the
    /// upload of the result object).
    pub grace: Duration,
    /// How many Inconclusive answers in a row are polled again before giving up.
    pub inconclusive_repolls: u32,
    /// How many transient poll errors in a row are tolerated.
    pub poll_error_tolerance: u32,
}

impl Default for PollPolicy {
    fn default() -> Self {
        Self {
            first_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(30),
            grace: Duration::from_secs(600),
            inconclusive_repolls: 3,
            poll_error_tolerance: 5,
        }
    }
}

impl PollPolicy {
    /// For scripts on this machine (the local provider): results are local files.
    pub fn local() -> Self {
        Self {
            first_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(1),
            grace: Duration::from_secs(60),
            ..Self::default()
        }
    }

    /// The delay before poll `n` (0-based).
    pub fn delay(&self, n: u32) -> Duration {
        self.first_delay
            .saturating_mul(1u32 << n.min(16))
            .min(self.max_delay)
    }
}

/// Classifies a finished script's exit code. See the module documentation.
pub fn classify_exit(script: &Script, instance: &InstanceId, result: &ExecResult) -> Failure {
    let tail = tail(&result.output_tail, 1500);
    let message = format!(
        "script {} on {instance} exited with code {} (attempt {}); last output:\n{tail}",
        script.name, result.exit_code, script.nonce
    );
    match result.exit_code {
        3 | 4 => Failure::permanent(message)
            .with_hint("the script refused on purpose; read its output above and fix the cause before running again"),
        126 | 127 => Failure::permanent(message)
            .with_hint("a program the script needs is missing on the instance; check the image (ami/)"),
        75 => Failure::transient(message).with_hint(
            "an earlier cutover script (perhaps from a crashed session) is still running on the instance; this retries after it finishes",
        ),
        _ => Failure::transient(message),
    }
}

/// The last `max` characters of `text`, on a character boundary.
fn tail(text: &str, max: usize) -> &str {
    let text = text.trim_end();
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Runs `script` on `instance` and returns its result when it exited 0. See the module
/// documentation for every other outcome.
pub async fn run_script(
    exec: &dyn Exec,
    instance: &InstanceId,
    script: &Script,
    policy: &PollPolicy,
) -> Result<ExecResult, Failure> {
    let deadline = tokio::time::Instant::now() + script.timeout + policy.grace;
    let handle = exec.start(instance, script).await.map_err(|f| Failure {
        message: format!(
            "starting script {} on {instance} (attempt {}): {}",
            script.name, script.nonce, f.message
        ),
        ..f
    })?;
    tracing::info!(instance_id = %instance, script = %script.name, nonce = %script.nonce, command_id = %handle.id, "script started");
    let mut polls: u32 = 0;
    let mut inconclusive: u32 = 0;
    let mut poll_errors: u32 = 0;
    loop {
        let delay = policy.delay(polls);
        polls = polls.saturating_add(1);
        if tokio::time::Instant::now() + delay > deadline {
            return Err(give_up(
                exec,
                &handle,
                script,
                format!(
                    "script {} on {instance} did not report within {:?} (its timeout plus {:?} grace)",
                    script.name, script.timeout, policy.grace
                ),
            )
            .await);
        }
        tokio::time::sleep(delay).await;
        let why = match exec.poll(&handle).await {
            Ok(ExecStatus::Running) => {
                inconclusive = 0;
                poll_errors = 0;
                continue;
            }
            Ok(ExecStatus::Finished(result)) if result.nonce == script.nonce => {
                if result.exit_code == 0 {
                    return Ok(result);
                }
                return Err(classify_exit(script, instance, &result));
            }
            // Another attempt's result is no evidence about this one.
            Ok(ExecStatus::Finished(other)) => format!(
                "the result object carries nonce {} instead of {}",
                other.nonce, script.nonce
            ),
            Ok(ExecStatus::Inconclusive(why)) => why,
            Err(f) if f.class == ErrorClass::Transient => {
                poll_errors += 1;
                tracing::warn!(script = %script.name, "polling failed, retrying: {}", f.message);
                if poll_errors > policy.poll_error_tolerance {
                    return Err(give_up(exec, &handle, script, f.message).await);
                }
                continue;
            }
            Err(f) => return Err(give_up(exec, &handle, script, f.message).await),
        };
        inconclusive += 1;
        tracing::warn!(script = %script.name, nonce = %script.nonce, repoll = inconclusive, "inconclusive, polling again: {why}");
        if inconclusive > policy.inconclusive_repolls {
            return Err(give_up(exec, &handle, script, why).await);
        }
    }
}

/// Cancels the command (best effort) and says the outcome is unknown.
async fn give_up(exec: &dyn Exec, handle: &ExecHandle, script: &Script, why: String) -> Failure {
    let cancelled = match exec.cancel(handle).await {
        Ok(()) => "cutover cancelled the command".to_owned(),
        Err(f) => format!("cancelling the command failed too ({})", f.message),
    };
    Failure::inconclusive(format!(
        "the outcome of script {} on {} is unknown (command {}, attempt {}): {why}; {cancelled}",
        script.name, handle.instance, handle.id, script.nonce
    ))
    .with_hint(format!(
        "check the command's output on the instance and the result object of attempt {}; \
         the script is safe to run again once it is no longer running",
        script.nonce
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_and_cap() {
        let p = PollPolicy::default();
        assert_eq!(p.delay(0), Duration::from_secs(2));
        assert_eq!(p.delay(1), Duration::from_secs(4));
        assert_eq!(p.delay(40), Duration::from_secs(30));
    }

    #[test]
    fn tails_cut_on_character_boundaries() {
        assert_eq!(tail("abc\n", 10), "abc");
        assert_eq!(tail("ééé", 3), "é");
    }
}
