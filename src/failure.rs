//! How every fallible operation in cutover says whether trying again can help.
//!
//! The engine retries only [`ErrorClass::Transient`] failures, with backoff, up to the
//! step's limits. A permanent failure is never retried: repeating a checksum mismatch or
//! a Cypher syntax error only wastes the freeze window.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Whether an error may go away by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Throttling, 5xx, connection reset, Bolt unavailable, a server still starting.
    Transient,
    /// Validation, 4xx, checksum mismatch, Cypher syntax, missing object, wrong password.
    Permanent,
    /// The outcome of a side effect is unknown (e.g. an SSM command whose result object
    /// is missing). Must be reconciled by observing the world before any retry.
    Inconclusive,
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Permanent => "permanent",
            ErrorClass::Inconclusive => "inconclusive",
        })
    }
}

/// What a failure is about, for the few callers that react to one in particular (instead
/// of matching message text, which changes with wording and wrapping).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// A TCP port the operation needed is taken by another process.
    PortInUse,
}

/// A classified failure as steps and providers report it: what happened, to what, and
/// (in `hint`) what the operator should do next.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub class: ErrorClass,
    pub message: String,
    /// What to do next, when there is something better than "resume".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// What it is about, when a caller may want to react to it (wrapping with `..f`
    /// or [`Failure::context`] keeps it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<FailureKind>,
}

impl Failure {
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Transient,
            message: message.into(),
            hint: None,
            kind: None,
        }
    }
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Permanent,
            message: message.into(),
            hint: None,
            kind: None,
        }
    }
    pub fn inconclusive(message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Inconclusive,
            message: message.into(),
            hint: None,
            kind: None,
        }
    }
    /// Adds the operator's next action.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    /// Marks what the failure is about.
    pub fn with_kind(mut self, kind: FailureKind) -> Self {
        self.kind = Some(kind);
        self
    }
    pub fn is(&self, kind: FailureKind) -> bool {
        self.kind == Some(kind)
    }
    /// The same failure with what was being done in front of its message; the class and
    /// the hint are kept, so wrapping never turns a permanent failure into a retried one.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }
    pub fn is_retryable(&self) -> bool {
        self.class == ErrorClass::Transient
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_keeps_the_class_the_hint_and_the_kind() {
        for f in [
            Failure::permanent("checksum mismatch"),
            Failure::transient("connection reset"),
            Failure::inconclusive("result object missing"),
        ] {
            let g = f
                .clone()
                .with_hint("take a new backup")
                .with_kind(FailureKind::PortInUse)
                .context("restore of ledger");
            assert_eq!(g.class, f.class);
            assert_eq!(g.message, format!("restore of ledger: {}", f.message));
            assert_eq!(g.hint.as_deref(), Some("take a new backup"));
            assert!(g.is(FailureKind::PortInUse));
            assert_eq!(g.is_retryable(), f.is_retryable());
        }
    }

    #[test]
    fn a_failure_without_a_kind_serializes_as_before() {
        let json = serde_json::to_value(Failure::permanent("x")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({ "class": "permanent", "message": "x" })
        );
        let back: Failure = serde_json::from_value(json).unwrap();
        assert_eq!(back.kind, None);
    }
}
