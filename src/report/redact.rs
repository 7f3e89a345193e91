//! Redaction: secret-looking keys (containing `password`, `secret`, `credential` or
//! `private`) lose their values, at any depth, before anything is rendered.

use serde_json::{Map, Value};

/// What replaces the value of a secret-looking output key.
pub const REDACTED: &str = "[redacted]";

/// Output keys containing any of these (case-insensitive) are never shown.
const SECRET_KEY_PARTS: [&str; 4] = ["password", "secret", "credential", "private"];

/// Whether an output key looks like it holds a secret.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEY_PARTS.iter().any(|part| key.contains(part))
}

/// Replaces the values of secret-looking keys, at any depth.
pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(redact_map(map)),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

pub(super) fn redact_entry(key: &str, value: &Value) -> Value {
    if is_secret_key(key) {
        Value::String(REDACTED.into())
    } else {
        redact(value)
    }
}

pub(super) fn redact_map(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .map(|(k, v)| (k.clone(), redact_entry(k, v)))
        .collect()
}
