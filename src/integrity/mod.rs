//! Integrity: graph fingerprints over Bolt and their comparison.
//!
//! - [`canonical`]: the canonical encoding of values and the per-record hashes;
//! - [`multiset`]: the order-independent multiset digest (AdHash mod 2^256 + count);
//! - [`fingerprint`]: reading a graph's fingerprint over Bolt, in parallel, read-only;
pub mod canonical;
pub mod error;
pub mod fingerprint;
pub mod multiset;

pub use error::IntegrityError;
pub use fingerprint::{
    connect_for_reading, fingerprint, fingerprint_target, EngineHint, Fingerprint,
    FingerprintOptions, IdentityKey, SchemaInfo,
};
pub use multiset::MultisetDigest;
