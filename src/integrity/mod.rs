//! Integrity: graph fingerprints over Bolt and their comparison.
//!
//! - [`canonical`]: the canonical encoding of values and the per-record hashes;
//! - [`multiset`]: the order-independent multiset digest (AdHash mod 2^256 + count);
//! - [`fingerprint`]: reading a graph's fingerprint over Bolt, in parallel, read-only;
//! - [`compare`]: every difference between two fingerprints;
//! - [`invariants`]: app invariants (Cypher checks with expected results);
//! - [`answers`]: the application's own queries, same answers on blue and green;
//! - [`diff`]: the records behind a small mismatch;
//! - [`properties`]: reading property values exactly (points and durations on Neo4j).
pub mod answers;
pub mod canonical;
pub mod compare;
pub mod diff;
pub mod error;
pub mod fingerprint;
pub mod invariants;
pub mod multiset;
pub mod properties;

pub use answers::{AnswerDifference, QueryAnswers, SameAnswersQuery};
pub use compare::{compare, Finding, FindingKind, Findings};
pub use diff::{diff, DiffOptions, DiffReport, RecordDiff, Side};
pub use error::IntegrityError;
pub use fingerprint::{
    connect_for_reading, fingerprint, fingerprint_target, EngineHint, Fingerprint,
    FingerprintOptions, IdentityKey, SchemaInfo,
};
pub use invariants::{ledger_invariants, run_invariants, Invariant, InvariantOutcome};
pub use multiset::MultisetDigest;
