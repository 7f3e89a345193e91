//! Database engines. `neo4j` is the production engine; `arcadedb` is the local rehearsal
//! engine (a real graph database that speaks Bolt and Cypher). Both are read through Bolt
//! with `neo4rs` (see [`bolt`]), so integrity code is the same for both.

pub mod arcadedb;
pub mod bolt;
pub mod engine;
pub mod neo4j;

use serde::{Deserialize, Serialize};
use std::fmt;

pub use engine::{BackupArtifact, DatabaseEngine, DbHandle, DbOperation, OpPoll};

/// Which database engine an environment's database runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    Neo4j,
    Arcadedb,
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EngineKind::Neo4j => "neo4j",
            EngineKind::Arcadedb => "arcadedb",
        })
    }
}
