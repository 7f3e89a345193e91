//! Step kinds: the contract between the executor and everything that changes the world.
//!
//! A step never sleeps and never retries by itself. Each call to [`Step::advance`] does a
//! bounded amount of work and returns a [`Decision`]: done (with outputs), wait (the
//! engine polls again after a delay, within the step's deadline), or failed with an
//! [`ErrorClass`](crate::failure::ErrorClass) that tells the engine whether a retry can
//! help. Steps that change the world record their intent (with the idempotency token)
//! through [`StepContext::record_intent`] *before* the side effect, and adopt what an
//! earlier attempt created when the same token shows up again.

pub mod ami;
pub mod app_health;
pub mod assess;
pub mod aws_needs;
pub mod backup_select;
pub mod bake;
pub mod catalogue;
pub mod changes;
pub mod compute;
pub mod context;
pub mod db;
pub mod db_access;
#[cfg(test)]
mod db_poll_tests;
pub mod drill;
#[cfg(test)]
mod failure_class_tests;
pub mod git;
pub mod health;
pub mod hooks;
pub mod integrity;
pub mod kind;
pub mod preflight;
pub mod recipe;
pub mod secret;
#[cfg(test)]
mod select_measure_tests;
pub mod terraform;
pub mod traffic;
pub mod utility;

pub use catalogue::{find_kind, kinds};
pub use context::{Services, StepContext, StepRecorder};
pub use kind::{InputSpec, OutputSpec, StepKind, ValueType};

use crate::failure::Failure;
use async_trait::async_trait;
use std::time::Duration;

/// A step's named outputs. Never put a secret here: outputs are journaled and reported.
pub type Outputs = serde_json::Map<String, serde_json::Value>;

/// What a step says after one call.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    Done(Outputs),
    /// Not finished; call again after `after`. `reason` is shown to the operator.
    Wait {
        after: Duration,
        reason: String,
    },
    Fail(Failure),
}

impl Decision {
    pub fn done() -> Self {
        Decision::Done(Outputs::new())
    }
    pub fn wait(after: Duration, reason: impl Into<String>) -> Self {
        Decision::Wait {
            after,
            reason: reason.into(),
        }
    }
}

impl From<Failure> for Decision {
    fn from(f: Failure) -> Self {
        Decision::Fail(f)
    }
}

/// One execution of a step kind. The engine creates it, calls [`Step::advance`] until it
/// is done, and keeps it across polls (so it may hold in-memory state such as a child
/// process); anything needed after a crash goes into [`StepContext::save_checkpoint`].
#[async_trait]
pub trait Step: Send {
    async fn advance(&mut self, ctx: &StepContext) -> Decision;

    /// On resume, a step that had already succeeded is not run again; instead this
    /// re-checks that its effect still holds. The default trusts the journal.
    async fn postcondition(
        &mut self,
        _ctx: &StepContext,
        _outputs: &Outputs,
    ) -> Result<(), Failure> {
        Ok(())
    }

    /// Undoes the step's effect when a run fails. Must work whether or not the effect
    /// happened (or happened partly), and be idempotent. `outputs` is `None` when the
    /// step did not finish. The default has nothing to undo.
    async fn compensate(&mut self, _ctx: &StepContext, _outputs: Option<&Outputs>) -> Decision {
        Decision::done()
    }
}

/// Helper for steps: turns a `Result` into a decision.
#[macro_export]
macro_rules! try_step {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(f) => return $crate::steps::Decision::Fail(f.into()),
        }
    };
}
