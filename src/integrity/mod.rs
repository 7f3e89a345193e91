//! Integrity: graph fingerprints over Bolt and their comparison.
