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
//! Every script is driven by [`start_script`] + [`poll_script`], which look once and
//! return: the engine's operations journal the [`ExecHandle`] and the [`ScriptRun`] and
//! the steps return `Wait`, so a resumed run polls the same command instead of sending it
//! again. (The tests drive the same two with a loop on paused time, `run_script`.)

use crate::failure::{ErrorClass, Failure};
use crate::ids::InstanceId;
use crate::providers::{Exec, ExecHandle, ExecResult, ExecStatus, Script};
use serde::{Deserialize, Serialize};
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

    /// The delay before the next poll of an operation started at `since_ms` (Unix ms),
    /// at `now_ms`: as long as it has run so far, within `first_delay..=max_delay`. A
    /// doubling schedule read off the clock instead of counted, so nothing about it needs
    /// journaling on each poll, and a resumed run keeps the same pace.
    pub fn delay_since(&self, since_ms: i64, now_ms: i64) -> Duration {
        let elapsed = Duration::from_millis(now_ms.saturating_sub(since_ms).max(0) as u64);
        elapsed.clamp(self.first_delay, self.max_delay.max(self.first_delay))
    }
}

/// Classifies a finished script's exit code. See the module documentation.
pub fn classify_exit(script: &ScriptRun, instance: &InstanceId, result: &ExecResult) -> Failure {
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

/// A started script as a step journals it, beside its [`ExecHandle`]: enough for another
/// process to go on polling it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptRun {
    pub name: String,
    pub nonce: String,
    pub timeout_ms: u64,
    /// Unix milliseconds when it was sent (wall clock: a resumed process shares it).
    pub started_at_ms: i64,
    /// Inconclusive answers in a row. With `poll_errors`, the only state a poll changes,
    /// and only on trouble: a healthy poll leaves the journaled run as it was, so a
    /// step checkpoints once per change, not once per poll. (Journals written before
    /// this carry a `polls` count too; it is ignored.)
    #[serde(default)]
    pub inconclusive: u32,
    #[serde(default)]
    pub poll_errors: u32,
}

impl ScriptRun {
    /// Whether `now_ms` is past the script's timeout plus the policy's grace.
    pub fn past_deadline(&self, policy: &PollPolicy, now_ms: i64) -> bool {
        let limit = self.timeout_ms as i64 + policy.grace.as_millis() as i64;
        now_ms > self.started_at_ms.saturating_add(limit)
    }
}

/// What one poll of a script found.
#[derive(Clone, Debug, PartialEq)]
pub enum ScriptPoll {
    /// Poll again after this delay.
    Running(Duration),
    /// Exit code 0 with this attempt's nonce.
    Succeeded(ExecResult),
    /// Over: a classified exit, or an unknown outcome after the command was cancelled.
    Failed(Failure),
}

/// Sends `script` to `instance` and returns at once.
pub async fn start_script(
    exec: &dyn Exec,
    instance: &InstanceId,
    script: &Script,
) -> Result<(ExecHandle, ScriptRun), Failure> {
    let handle = exec.start(instance, script).await.map_err(|f| Failure {
        message: format!(
            "starting script {} on {instance} (attempt {}): {}",
            script.name, script.nonce, f.message
        ),
        ..f
    })?;
    tracing::info!(instance_id = %instance, script = %script.name, nonce = %script.nonce, command_id = %handle.id, "script started");
    let run = ScriptRun {
        name: script.name.clone(),
        nonce: script.nonce.clone(),
        timeout_ms: script.timeout.as_millis() as u64,
        started_at_ms: chrono::Utc::now().timestamp_millis(),
        inconclusive: 0,
        poll_errors: 0,
    };
    Ok((handle, run))
}

/// Looks at a started script once (never waits). `past_deadline`: the caller's clock
/// says the script's time is up; a script still running is then cancelled and the
/// outcome is unknown. Updates the counters in `run`: journal it again afterwards.
pub async fn poll_script(
    exec: &dyn Exec,
    handle: &ExecHandle,
    run: &mut ScriptRun,
    policy: &PollPolicy,
    past_deadline: bool,
) -> ScriptPoll {
    let instance = &handle.instance;
    let next = policy.delay_since(run.started_at_ms, chrono::Utc::now().timestamp_millis());
    let why = match exec.poll(handle).await {
        Ok(ExecStatus::Running) if past_deadline => {
            return ScriptPoll::Failed(
                give_up(
                    exec,
                    handle,
                    run,
                    format!(
                        "script {} on {instance} did not report within {:?} (its timeout plus {:?} grace)",
                        run.name,
                        Duration::from_millis(run.timeout_ms),
                        policy.grace
                    ),
                )
                .await,
            )
        }
        Ok(ExecStatus::Running) => {
            run.inconclusive = 0;
            run.poll_errors = 0;
            return ScriptPoll::Running(next);
        }
        Ok(ExecStatus::Finished(result)) if result.nonce == run.nonce => {
            if result.exit_code == 0 {
                return ScriptPoll::Succeeded(result);
            }
            return ScriptPoll::Failed(classify_exit(run, instance, &result));
        }
        // Another attempt's result is no evidence about this one.
        Ok(ExecStatus::Finished(other)) => format!(
            "the result object carries nonce {} instead of {}",
            other.nonce, run.nonce
        ),
        Ok(ExecStatus::Inconclusive(why)) => why,
        Err(f) if f.class == ErrorClass::Transient => {
            run.poll_errors += 1;
            tracing::warn!(script = %run.name, "polling failed, retrying: {}", f.message);
            if run.poll_errors > policy.poll_error_tolerance {
                return ScriptPoll::Failed(give_up(exec, handle, run, f.message).await);
            }
            return ScriptPoll::Running(next);
        }
        Err(f) => return ScriptPoll::Failed(give_up(exec, handle, run, f.message).await),
    };
    run.inconclusive += 1;
    tracing::warn!(script = %run.name, nonce = %run.nonce, repoll = run.inconclusive, "inconclusive, polling again: {why}");
    if run.inconclusive > policy.inconclusive_repolls {
        return ScriptPoll::Failed(give_up(exec, handle, run, why).await);
    }
    ScriptPoll::Running(next)
}

/// Runs `script` on `instance` and returns its result when it exited 0, waiting with
/// tokio's timer: the tests' driver of [`start_script`] + [`poll_script`]. See the module
/// documentation for every other outcome.
#[cfg(test)]
pub async fn run_script(
    exec: &dyn Exec,
    instance: &InstanceId,
    script: &Script,
    policy: &PollPolicy,
) -> Result<ExecResult, Failure> {
    let deadline = tokio::time::Instant::now() + script.timeout + policy.grace;
    let (handle, mut run) = start_script(exec, instance, script).await?;
    let mut delay = policy.first_delay;
    loop {
        if tokio::time::Instant::now() + delay > deadline {
            return Err(give_up(
                exec,
                &handle,
                &run,
                format!(
                    "script {} on {instance} did not report within {:?} (its timeout plus {:?} grace)",
                    script.name, script.timeout, policy.grace
                ),
            )
            .await);
        }
        tokio::time::sleep(delay).await;
        match poll_script(exec, &handle, &mut run, policy, false).await {
            ScriptPoll::Running(next) => delay = next,
            ScriptPoll::Succeeded(result) => return Ok(result),
            ScriptPoll::Failed(f) => return Err(f),
        }
    }
}

/// Cancels the command (best effort) and says the outcome is unknown.
async fn give_up(exec: &dyn Exec, handle: &ExecHandle, script: &ScriptRun, why: String) -> Failure {
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
        let at = |secs: i64| p.delay_since(1_000_000, 1_000_000 + secs * 1000);
        assert_eq!(at(0), Duration::from_secs(2));
        assert_eq!(at(2), Duration::from_secs(2));
        assert_eq!(at(4), Duration::from_secs(4));
        assert_eq!(at(9), Duration::from_secs(9));
        assert_eq!(at(3600), Duration::from_secs(30));
        // A clock that went backwards waits the first delay, never less.
        assert_eq!(at(-5), Duration::from_secs(2));
    }

    #[test]
    fn tails_cut_on_character_boundaries() {
        assert_eq!(tail("abc\n", 10), "abc");
        assert_eq!(tail("ééé", 3), "é");
    }
}
