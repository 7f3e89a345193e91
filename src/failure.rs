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
}

impl Failure {
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Transient,
            message: message.into(),
            hint: None,
        }
    }
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Permanent,
            message: message.into(),
            hint: None,
        }
    }
    pub fn inconclusive(message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Inconclusive,
            message: message.into(),
            hint: None,
        }
    }
    /// Adds the operator's next action.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn is_retryable(&self) -> bool {
        self.class == ErrorClass::Transient
    }
}
