//! Regression: six step paths (`db.backup` fingerprint and invariants, `integrity.compare`
//! fingerprint and invariants, `health.check` invariants, `traffic.switch` fingerprint)
//! used to wrap the integrity layer's already classified errors as transient, so a
//! permanent failure (a Cypher syntax error in an invariant, a wrong password, an
//! identity key that is not `Label.property`, data that cannot be fingerprinted) was
//! retried until the step's attempts ran out. They now convert with `Failure::from(e)`
//! and add their context with `Failure::context`, which is what these tests pin.
//!
//! Where it mattered: `fingerprint_target` returns permanent errors (a refused login, a
//! value the canonical encoding does not define, an unexpected row shape, a bad identity
//! key). `run_invariants` only returns an error for a lost connection (transient either
//! way): an invariant that fails, even as a Cypher error, is a broken outcome, and
//! `health.check` / `integrity.compare` already fail those permanently.

use crate::failure::{ErrorClass, Failure};
use crate::integrity::IntegrityError;

/// What the steps do with an integrity error (the same expression at all six places).
fn as_step_failure(e: IntegrityError) -> Failure {
    Failure::from(e).context(format_args!("fingerprint of {}", "ledger"))
}

#[test]
fn a_permanent_failure_inside_a_fingerprint_or_invariant_is_not_retried() {
    let cases = [
        IntegrityError::Bolt(Failure::permanent(
            "Invalid input 'THIS': expected a clause",
        )),
        IntegrityError::Input("identity key `Member` is not Label.property".into()),
        IntegrityError::Shape {
            context: "labels".into(),
            detail: "expected a list".into(),
        },
    ];
    for e in cases {
        let text = e.to_string();
        let f = as_step_failure(e);
        assert_eq!(f.class, ErrorClass::Permanent, "{f:?}");
        assert!(!f.is_retryable(), "{f:?}");
        assert_eq!(f.message, format!("fingerprint of ledger: {text}"));
    }
}

#[test]
fn a_transient_failure_inside_a_fingerprint_is_still_retried() {
    let f = as_step_failure(IntegrityError::Bolt(Failure::transient(
        "bolt://127.0.0.1:7687: server unavailable",
    )));
    assert!(f.is_retryable(), "{f:?}");
}

#[test]
fn no_step_wraps_an_integrity_error_as_transient_again() {
    // The six places, by their source: none may go back to `Failure::transient(…{e}…)`
    // around a call that already returns a classified error.
    for (file, text) in [
        ("db.rs", include_str!("db.rs")),
        ("integrity.rs", include_str!("integrity.rs")),
        ("health.rs", include_str!("health.rs")),
        ("traffic.rs", include_str!("traffic.rs")),
    ] {
        let compact: String = text.split_whitespace().collect();
        for call in ["fingerprint_target(", "run_invariants("] {
            for (i, _) in compact.match_indices(call) {
                let window = &compact[i..(i + 400).min(compact.len())];
                let end = window.find(";").unwrap_or(window.len());
                assert!(
                    !window[..end].contains("Failure::transient("),
                    "{file}: `{call}` is wrapped as transient again: {}",
                    &window[..end]
                );
            }
        }
    }
}
