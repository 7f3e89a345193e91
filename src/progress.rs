//! The one channel through which the library tells a human what is happening.
//!
//! Nothing under `engine`, `steps`, `providers`, `db` or `integrity` prints. They send
//! [`ProgressEvent`]s to a [`Progress`] sink; the CLI decides whether that becomes
//! indicatif bars, plain log lines or JSON lines. Events must never carry secrets.

use crate::ids::{RunId, StepId};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// Something worth showing to the operator. Cheap to clone, serialisable as JSON.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ProgressEvent {
    RunStarted {
        run_id: RunId,
        runbook: String,
        environment: String,
        steps: usize,
    },
    StepStarted {
        step: StepId,
        kind: String,
        attempt: u32,
    },
    /// A step is waiting for a condition and will be polled again.
    StepWaiting {
        step: StepId,
        reason: String,
        next_poll: Duration,
    },
    /// Measurable work inside a step (records hashed, bytes uploaded).
    StepWork {
        step: StepId,
        done: u64,
        total: Option<u64>,
        unit: String,
    },
    StepRetrying {
        step: StepId,
        attempt: u32,
        delay: Duration,
        error: String,
    },
    StepSucceeded {
        step: StepId,
        elapsed: Duration,
    },
    StepSkipped {
        step: StepId,
        reason: String,
    },
    StepFailed {
        step: StepId,
        error: String,
    },
    StepInterrupted {
        step: StepId,
    },
    CompensationStarted {
        step: StepId,
    },
    CompensationSucceeded {
        step: StepId,
    },
    CompensationFailed {
        step: StepId,
        error: String,
    },
    /// A free-form note from a step (already free of secrets).
    Note {
        step: Option<StepId>,
        message: String,
    },
    RunFinished {
        run_id: RunId,
        outcome: String,
    },
}

/// A sink for progress events. Implementations must be cheap and never block for long:
/// they are called from inside running steps.
pub trait Progress: Send + Sync {
    fn report(&self, event: ProgressEvent);
}

/// A progress sink that discards everything (tests, library callers that do not care).
pub struct NoProgress;

impl Progress for NoProgress {
    fn report(&self, _event: ProgressEvent) {}
}

/// Shared handle to a progress sink.
pub type ProgressHandle = Arc<dyn Progress>;

/// Convenience: a handle to [`NoProgress`].
pub fn no_progress() -> ProgressHandle {
    Arc::new(NoProgress)
}

/// Reports measurable work for one step; used by long loops (digest, upload) so they do
/// not need to know about steps.
#[derive(Clone)]
pub struct WorkMeter {
    sink: ProgressHandle,
    step: StepId,
    unit: String,
}

impl WorkMeter {
    pub fn new(sink: ProgressHandle, step: StepId, unit: impl Into<String>) -> Self {
        Self {
            sink,
            step,
            unit: unit.into(),
        }
    }
    /// A meter that goes nowhere.
    pub fn silent() -> Self {
        Self::new(no_progress(), StepId::new("-"), "")
    }
    /// Reports `done` of `total` units.
    pub fn update(&self, done: u64, total: Option<u64>) {
        self.sink.report(ProgressEvent::StepWork {
            step: self.step.clone(),
            done,
            total,
            unit: self.unit.clone(),
        });
    }
}
