//! The executor, the journal, runs (start, resume, rollback) and what they keep.

pub mod backend;
pub mod executor;
#[cfg(test)]
mod executor_tests;
pub mod gc;
pub mod journal;
pub mod rollback;
pub mod run;
pub mod state;
pub mod unconfirmed;
pub mod undo_order;
