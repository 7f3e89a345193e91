//! The executor, the journal, the lease and retry policy.

pub mod executor;
pub mod journal;
pub mod lease;
pub mod progress;
pub mod retry;
pub mod run;
pub mod state;
