//! The executor, the journal, the lease and retry policy.

pub mod backend;
pub mod env_lease;
pub mod executor;
#[cfg(test)]
mod executor_tests;
pub mod gc;
pub mod journal;
pub mod lease;
pub mod rollback;
pub mod run;
pub mod state;
pub mod unconfirmed;
pub mod undo_order;
