//! Connecting to a graph database over Bolt with `neo4rs`.

use crate::failure::Failure;
use secrecy::{ExposeSecret, SecretString};
use std::future::Future;
use std::time::Duration;

/// How long one short Bolt call may take: a login check, a probe, a health query, an
/// administration query such as `SHOW DATABASE` or the server's version. The vendored
/// neo4rs no longer retries by itself (PATCHED.md), so this bounds a server that accepts
/// the connection but does not answer. The engine owns retrying and pacing (the step's
/// retry policy, the poll delays), so a short call gives up here and its failure is
/// transient; a server that is merely restarting is asked again by the step or poll that
/// called.
pub const SHORT_CALL_LIMIT: Duration = Duration::from_secs(20);

/// `call` bounded by [`SHORT_CALL_LIMIT`].
pub async fn short_call<T>(
    uri: &str,
    call: impl Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    bounded_call(SHORT_CALL_LIMIT, uri, call).await
}

/// `call` bounded by `limit`: past it, a transient failure that names `uri` and the limit.
pub async fn bounded_call<T>(
    limit: Duration,
    uri: &str,
    call: impl Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
        Err(Failure::transient(format!(
            "{uri}: server unavailable: no answer within {limit:?}"
        )))
    })
}

/// Where and how to reach a database over Bolt. `Debug` never shows the password.
#[derive(Clone, Debug)]
pub struct BoltTarget {
    /// `bolt://host:port` (or `neo4j://`, `bolt+s://`).
    pub uri: String,
    pub user: String,
    pub password: SecretString,
    /// Database name; `None` means the server's default database.
    pub database: Option<String>,
}

impl BoltTarget {
    /// Opens a connection pool of at most `max_connections`. Errors are classified:
    /// refused/unavailable is transient, authentication and unknown database permanent.
    pub async fn connect(&self, max_connections: usize) -> Result<neo4rs::Graph, Failure> {
        let mut config = neo4rs::ConfigBuilder::default()
            .uri(self.uri.as_str())
            .user(self.user.as_str())
            .password(self.password.expose_secret())
            .max_connections(max_connections.max(1));
        if let Some(db) = &self.database {
            config = config.db(db.as_str());
        }
        let config = config.build().map_err(|e| {
            Failure::permanent(format!("invalid Bolt settings for {}: {e}", self.uri))
        })?;
        neo4rs::Graph::connect(config)
            .await
            .map_err(|e| classify_bolt_error(&self.uri, &e))
    }

    /// Connects and runs `RETURN 1`: the server answers and these credentials log in.
    pub async fn check_login(&self) -> Result<(), Failure> {
        self.check_login_with("RETURN 1 AS one").await
    }

    /// Connects and runs `cypher` (e.g. `SHOW CURRENT USER` on Neo4j's `system` database,
    /// which refuses `RETURN 1`).
    pub async fn check_login_with(&self, cypher: &str) -> Result<(), Failure> {
        // `connect` opens no connection (neo4rs connects lazily); the query is bounded.
        let graph = self.connect(1).await?;
        run_and_discard(&graph, &self.uri, cypher).await
    }
}

/// Runs one statement and reads every row, discarding them, within [`SHORT_CALL_LIMIT`].
/// Errors are classified and name `uri`. Used for probes, health queries and
/// administration statements.
pub async fn run_and_discard(
    graph: &neo4rs::Graph,
    uri: &str,
    cypher: &str,
) -> Result<(), Failure> {
    short_call(uri, run_and_discard_unbounded(graph, uri, cypher)).await
}

async fn run_and_discard_unbounded(
    graph: &neo4rs::Graph,
    uri: &str,
    cypher: &str,
) -> Result<(), Failure> {
    let mut rows = graph
        .execute(neo4rs::query(cypher))
        .await
        .map_err(|e| classify_bolt_error(uri, &e))?;
    while rows
        .next()
        .await
        .map_err(|e| classify_bolt_error(uri, &e))?
        .is_some()
    {}
    Ok(())
}

/// Turns a `neo4rs` error into a classified failure whose message names the server and
/// never contains the password.
pub fn classify_bolt_error(uri: &str, error: &neo4rs::Error) -> Failure {
    let text = error.to_string();
    let lower = text.to_lowercase();
    // What the server itself calls transient (`Neo.TransientError.*`: a database still
    // starting, a deadlock, exhausted resources) or an expired session: worth asking
    // again. (neo4rs retried these itself; cutover's engine does, see PATCHED.md.)
    if let neo4rs::Error::Neo4j(e) = error {
        if matches!(
            e.kind(),
            neo4rs::Neo4jErrorKind::Transient
                | neo4rs::Neo4jErrorKind::Client(
                    neo4rs::Neo4jClientErrorKind::SessionExpired
                        | neo4rs::Neo4jClientErrorKind::Security(
                            neo4rs::Neo4jSecurityErrorKind::AuthorizationExpired
                        )
                )
        ) {
            return Failure::transient(format!("{uri}: {text}"));
        }
    }
    if lower.contains("authentication")
        || lower.contains("unauthorized")
        || lower.contains("credentials")
    {
        Failure::permanent(format!(
            "{uri}: authentication failed (wrong user or password)"
        ))
        .with_hint("check the user name and the password variable")
    } else if lower.contains("database")
        && (lower.contains("not found") || lower.contains("does not exist"))
    {
        Failure::permanent(format!("{uri}: unknown database: {text}"))
    } else if lower.contains("connection refused")
        || lower.contains("connection reset")
        || lower.contains("broken pipe")
        || lower.contains("unexpected eof")
        || matches!(
            error,
            neo4rs::Error::IOError { .. } | neo4rs::Error::ConnectionError
        )
    {
        Failure::transient(format!("{uri}: server unavailable: {text}"))
    } else {
        Failure::permanent(format!("{uri}: {text}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::ErrorClass;

    #[tokio::test]
    async fn a_call_that_never_answers_is_a_transient_failure_naming_the_server() {
        let f = bounded_call(
            Duration::from_millis(20),
            "bolt://127.0.0.1:7687",
            std::future::pending::<Result<(), Failure>>(),
        )
        .await
        .unwrap_err();
        assert_eq!(f.class, ErrorClass::Transient);
        assert!(
            f.message
                .starts_with("bolt://127.0.0.1:7687: server unavailable"),
            "{}",
            f.message
        );
        assert!(f.message.contains("20ms"), "{}", f.message);
    }

    #[tokio::test]
    async fn a_call_within_the_limit_keeps_its_own_result() {
        let ok = bounded_call(Duration::from_secs(5), "bolt://x", async { Ok(7) }).await;
        assert_eq!(ok.unwrap(), 7);
        let err = bounded_call(Duration::from_secs(5), "bolt://x", async {
            Err::<(), _>(Failure::permanent("bolt://x: authentication failed"))
        })
        .await
        .unwrap_err();
        assert_eq!(err.class, ErrorClass::Permanent);
    }
}
