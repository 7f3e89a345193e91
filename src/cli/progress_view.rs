//! Rendering progress events: indicatif bars on a terminal, log lines otherwise, JSON
//! lines with `--output json`. Log lines printed by `tracing` pause the bars.

use cutover::ids::StepId;
use cutover::progress::{Progress, ProgressEvent};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The bars every renderer and the tracing writer share.
pub fn multi_progress() -> &'static MultiProgress {
    static MP: OnceLock<MultiProgress> = OnceLock::new();
    MP.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

/// A `tracing` writer that suspends the bars while a log line is written.
#[derive(Clone, Copy, Default)]
pub struct SuspendingStderr;

impl Write for SuspendingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        multi_progress().suspend(|| std::io::stderr().write_all(buf))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for SuspendingStderr {
    type Writer = SuspendingStderr;
    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

/// One spinner per running step.
pub struct BarsProgress {
    bars: Mutex<HashMap<StepId, ProgressBar>>,
}

impl BarsProgress {
    pub fn new() -> Self {
        Self {
            bars: Mutex::new(HashMap::new()),
        }
    }

    fn bar(&self, step: &StepId) -> ProgressBar {
        let mut bars = self.bars.lock().expect("bars lock");
        bars.entry(step.clone())
            .or_insert_with(|| {
                let bar = multi_progress().add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template(
                        "{spinner} {prefix:<24.bold} {elapsed:>5} {wide_msg}",
                    )
                    .expect("valid template"),
                );
                bar.set_prefix(step.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            })
            .clone()
    }

    fn finish(&self, step: &StepId, symbol: &str, message: String) {
        let bar = self.bar(step);
        bar.set_style(
            ProgressStyle::with_template("{prefix:<26.bold} {elapsed:>5} {wide_msg}")
                .expect("valid template"),
        );
        bar.set_prefix(format!("{symbol} {step}"));
        bar.finish_with_message(message);
        self.bars.lock().expect("bars lock").remove(step);
    }
}

impl Default for BarsProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for BarsProgress {
    fn report(&self, event: ProgressEvent) {
        match event {
            ProgressEvent::RunStarted {
                run_id,
                runbook,
                environment,
                steps,
            } => {
                let _ = multi_progress().println(format!(
                    "run {run_id}: {runbook} on {environment} ({steps} steps)"
                ));
            }
            ProgressEvent::StepStarted {
                step,
                kind,
                attempt,
            } => {
                let suffix = if attempt > 1 {
                    format!(" (attempt {attempt})")
                } else {
                    String::new()
                };
                self.bar(&step).set_message(format!("{kind}{suffix}"));
            }
            ProgressEvent::StepWaiting { step, reason, .. } => self.bar(&step).set_message(reason),
            ProgressEvent::StepWork {
                step,
                done,
                total,
                unit,
            } => {
                let bar = self.bar(&step);
                match total {
                    Some(total) if total > 0 => {
                        bar.set_length(total);
                        bar.set_style(ProgressStyle::with_template("{spinner} {prefix:<24.bold} {elapsed:>5} [{bar:30}] {pos}/{len} {msg} ({per_sec}, eta {eta})").expect("valid template").progress_chars("=> "));
                        bar.set_position(done);
                        bar.set_message(unit);
                    }
                    _ => bar.set_message(format!("{done} {unit}")),
                }
            }
            ProgressEvent::StepRetrying {
                step,
                attempt,
                delay,
                error,
            } => {
                self.bar(&step).set_message(format!(
                    "retry after attempt {attempt} in {:.1}s: {error}",
                    delay.as_secs_f64()
                ));
            }
            ProgressEvent::StepSucceeded { step, .. } => self.finish(&step, "✔", "done".into()),
            ProgressEvent::StepSkipped { step, reason } => {
                self.finish(&step, "○", format!("skipped: {reason}"))
            }
            ProgressEvent::StepFailed { step, error } => self.finish(&step, "✘", error),
            ProgressEvent::StepInterrupted { step } => {
                self.finish(&step, "‖", "interrupted".into())
            }
            ProgressEvent::CompensationStarted { step } => self.bar(&step).set_message("undoing"),
            ProgressEvent::CompensationSucceeded { step } => {
                self.finish(&step, "↺", "undone".into())
            }
            ProgressEvent::CompensationFailed { step, error } => {
                self.finish(&step, "✘", format!("undo failed: {error}"))
            }
            ProgressEvent::Note { step, message } => {
                let prefix = step.map(|s| format!("{s}: ")).unwrap_or_default();
                let _ = multi_progress().println(format!("  {prefix}{message}"));
            }
            ProgressEvent::RunFinished { run_id, outcome } => {
                let _ = multi_progress().println(format!("run {run_id}: {outcome}"));
            }
        }
    }
}

/// Plain log lines on stderr (not a terminal: CI, SSM, pipes).
pub struct LinesProgress;

impl Progress for LinesProgress {
    fn report(&self, event: ProgressEvent) {
        let line = match event {
            ProgressEvent::StepWork { .. } => return,
            ProgressEvent::StepWaiting {
                step,
                reason,
                next_poll,
            } if next_poll >= Duration::from_secs(5) => {
                format!(
                    "{step}: {reason} (next check in {:.0}s)",
                    next_poll.as_secs_f64()
                )
            }
            ProgressEvent::StepWaiting { .. } => return,
            ProgressEvent::RunStarted {
                run_id,
                runbook,
                environment,
                steps,
            } => format!("run {run_id}: {runbook} on {environment} ({steps} steps)"),
            ProgressEvent::StepStarted {
                step,
                kind,
                attempt,
            } => format!("{step}: started ({kind}, attempt {attempt})"),
            ProgressEvent::StepRetrying {
                step,
                attempt,
                delay,
                error,
            } => format!(
                "{step}: attempt {attempt} failed, retrying in {:.1}s: {error}",
                delay.as_secs_f64()
            ),
            ProgressEvent::StepSucceeded { step, elapsed } => {
                format!("{step}: succeeded in {:.1}s", elapsed.as_secs_f64())
            }
            ProgressEvent::StepSkipped { step, reason } => format!("{step}: skipped ({reason})"),
            ProgressEvent::StepFailed { step, error } => format!("{step}: FAILED: {error}"),
            ProgressEvent::StepInterrupted { step } => format!("{step}: interrupted"),
            ProgressEvent::CompensationStarted { step } => format!("{step}: undoing"),
            ProgressEvent::CompensationSucceeded { step } => format!("{step}: undone"),
            ProgressEvent::CompensationFailed { step, error } => {
                format!("{step}: UNDO FAILED: {error}")
            }
            ProgressEvent::Note { step, message } => format!(
                "{}{message}",
                step.map(|s| format!("{s}: ")).unwrap_or_default()
            ),
            ProgressEvent::RunFinished { run_id, outcome } => format!("run {run_id}: {outcome}"),
        };
        let now = chrono::Utc::now().format("%H:%M:%S");
        eprintln!("[{now}] {line}");
    }
}

/// JSON lines on stderr, one per event, for machines.
pub struct JsonProgress;

impl Progress for JsonProgress {
    fn report(&self, event: ProgressEvent) {
        if let Ok(line) = serde_json::to_string(&event) {
            eprintln!("{line}");
        }
    }
}
