//! What the neo4j engine asks of a server over Bolt, as a small trait: version and
//! edition, administration statements, database status, the read-only setting and a
//! real query. [`BoltAdmin`] is the implementation over `neo4rs`; tests put a stand-in
//! behind the same trait because no Neo4j server runs here.

use super::cypher::{self, CypherStatement};
use super::version::{self, ServerInfo};
use crate::db::bolt::{classify_bolt_error, run_and_discard, short_call, BoltTarget};
use crate::failure::Failure;
use async_trait::async_trait;

/// One row of `SHOW DATABASE x` (one per server hosting it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseStatus {
    /// `read-write` or `read-only`.
    pub access: String,
    /// `online`, `offline`, `starting`, ...
    pub current_status: String,
}

#[async_trait]
pub trait Neo4jBolt: Send + Sync {
    /// `CALL dbms.components()`.
    async fn server_info(&self, target: &BoltTarget) -> Result<ServerInfo, Failure>;
    /// Runs an administration statement on its database (`system`), parameters bound.
    async fn execute(
        &self,
        target: &BoltTarget,
        statement: &CypherStatement,
    ) -> Result<(), Failure>;
    /// `SHOW DATABASE x`; empty when the database does not exist.
    async fn show_database(
        &self,
        target: &BoltTarget,
        database: &str,
    ) -> Result<Vec<DatabaseStatus>, Failure>;
    /// The running value of `server.databases.read_only` (`None` when not listed).
    async fn read_only_setting(&self, target: &BoltTarget) -> Result<Option<String>, Failure>;
    /// A real read query on `target.database`.
    async fn probe(&self, target: &BoltTarget) -> Result<(), Failure>;
}

/// [`Neo4jBolt`] over `neo4rs`: one short-lived connection per call.
#[derive(Clone, Copy, Debug, Default)]
pub struct BoltAdmin;

fn row_string(row: &neo4rs::Row, column: &str, uri: &str) -> Result<String, Failure> {
    row.get::<Option<String>>(column)
        .map(Option::unwrap_or_default)
        .map_err(|e| Failure::permanent(format!("{uri}: column {column}: {e}")))
}

#[async_trait]
impl Neo4jBolt for BoltAdmin {
    async fn server_info(&self, target: &BoltTarget) -> Result<ServerInfo, Failure> {
        short_call(&target.uri, async {
            let graph = target.connect(1).await?;
            version::detect(&graph, &target.uri).await
        })
        .await
    }

    async fn execute(
        &self,
        target: &BoltTarget,
        statement: &CypherStatement,
    ) -> Result<(), Failure> {
        let graph = target.connect(1).await?;
        statement.run(&graph, &target.uri).await
    }

    async fn show_database(
        &self,
        target: &BoltTarget,
        database: &str,
    ) -> Result<Vec<DatabaseStatus>, Failure> {
        let statement = cypher::show_database(database)?;
        let uri = &target.uri;
        short_call(uri, async {
            let graph = target.connect(1).await?;
            let mut rows = graph
                .execute_on(statement.database, statement.query())
                .await
                .map_err(|e| classify_bolt_error(uri, &e))?;
            let mut out = Vec::new();
            while let Some(row) = rows
                .next()
                .await
                .map_err(|e| classify_bolt_error(uri, &e))?
            {
                out.push(DatabaseStatus {
                    access: row_string(&row, "access", uri)?,
                    current_status: row_string(&row, "currentStatus", uri)?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn read_only_setting(&self, target: &BoltTarget) -> Result<Option<String>, Failure> {
        let uri = &target.uri;
        short_call(uri, async {
            let graph = target.connect(1).await?;
            let mut rows = graph
                .execute_on("system", neo4rs::query(cypher::READ_ONLY_SETTING_QUERY))
                .await
                .map_err(|e| classify_bolt_error(uri, &e))?;
            let mut found = None;
            while let Some(row) = rows
                .next()
                .await
                .map_err(|e| classify_bolt_error(uri, &e))?
            {
                if row_string(&row, "name", uri)? == cypher::READ_ONLY_SETTING {
                    found = Some(row_string(&row, "value", uri)?);
                }
            }
            Ok(found)
        })
        .await
    }

    async fn probe(&self, target: &BoltTarget) -> Result<(), Failure> {
        let graph = target.connect(1).await?;
        run_and_discard(
            &graph,
            &target.uri,
            "MATCH (n) WITH n LIMIT 1 RETURN count(n) AS c",
        )
        .await
    }
}
