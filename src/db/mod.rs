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

/// A database's engine, with the settings the environment gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineSettings {
    /// `engine = "neo4j"`, with its `neo4j = { … }` table applied to the edition's defaults.
    Neo4j(neo4j::Neo4jSettings),
    /// `engine = "arcadedb"`: the local rehearsal engine has no settings.
    Arcadedb,
}

impl EngineSettings {
    pub fn kind(&self) -> EngineKind {
        match self {
            EngineSettings::Neo4j(_) => EngineKind::Neo4j,
            EngineSettings::Arcadedb => EngineKind::Arcadedb,
        }
    }
}

/// Which edition of its engine a database runs: the environment's `edition` (default
/// community), and what a Neo4j server reports about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Edition {
    Community,
    Enterprise,
}

impl Edition {
    /// `community` / `enterprise`: the environment's spelling, the AMI recipe's file name
    /// and tag value.
    pub fn as_str(self) -> &'static str {
        match self {
            Edition::Community => "community",
            Edition::Enterprise => "enterprise",
        }
    }
}

impl std::str::FromStr for Edition {
    type Err = crate::failure::Failure;
    /// Accepts any case and surrounding space (servers answer `community`, people write
    /// `Community`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "community" => Ok(Edition::Community),
            "enterprise" => Ok(Edition::Enterprise),
            other => Err(
                crate::failure::Failure::permanent(format!("unknown edition `{other}`"))
                    .with_hint("use \"community\" or \"enterprise\""),
            ),
        }
    }
}

impl fmt::Display for Edition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EngineKind::Neo4j => "neo4j",
            EngineKind::Arcadedb => "arcadedb",
        })
    }
}
