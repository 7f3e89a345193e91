//! Integrity: graph fingerprints over Bolt and their comparison.
//!
//! - [`canonical`]: the canonical encoding of values and the per-record hashes;
//! - [`multiset`]: the order-independent multiset digest (AdHash mod 2^256 + count);
pub mod canonical;
pub mod multiset;
