//! The executor, the journal, the lease and retry policy.

pub mod progress;
pub mod retry;
