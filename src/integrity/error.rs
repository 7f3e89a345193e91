//! What can go wrong while fingerprinting, comparing or diffing a graph.

use crate::db::bolt::classify_bolt_error;
use crate::failure::Failure;

/// Errors of the integrity module. Convert into a classified [`Failure`] with `From`.
#[derive(Debug, thiserror::Error)]
pub enum IntegrityError {
    /// The Bolt connection or a query failed; already classified.
    #[error("{0}")]
    Bolt(Failure),
    /// The server returned something the canonical encoding does not define.
    #[error("{context}: {source}")]
    Unsupported {
        context: String,
        #[source]
        source: super::canonical::UnsupportedValue,
    },
    /// A row did not have the expected shape (a server speaking a Cypher dialect we do not
    /// understand).
    #[error("{context}: unexpected row shape: {detail}")]
    Shape { context: String, detail: String },
    /// Bad input (an identity key that is not `Label.property`, ...).
    #[error("{0}")]
    Input(String),
}

impl IntegrityError {
    pub(crate) fn bolt(uri: &str, query: &str, e: &neo4rs::Error) -> Self {
        IntegrityError::Bolt(bolt_failure(uri, query, e))
    }
}

/// `e` classified, its message naming the query that was running.
pub(crate) fn bolt_failure(uri: &str, query: &str, e: &neo4rs::Error) -> Failure {
    let mut f = classify_bolt_error(uri, e);
    f.message = format!("{} (while running `{}`)", f.message, short(query));
    f
}

fn short(query: &str) -> String {
    let q: String = query.split_whitespace().collect::<Vec<_>>().join(" ");
    if q.chars().count() > 80 {
        format!("{}…", q.chars().take(80).collect::<String>())
    } else {
        q
    }
}

impl From<IntegrityError> for Failure {
    fn from(e: IntegrityError) -> Self {
        match e {
            IntegrityError::Bolt(f) => f,
            IntegrityError::Unsupported { .. } | IntegrityError::Shape { .. } => Failure::permanent(e.to_string())
                .with_hint("the server returned data cutover cannot fingerprint; report it with the server version"),
            IntegrityError::Input(m) => Failure::permanent(m),
        }
    }
}
