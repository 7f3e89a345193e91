//! cutover: blue-green migrations of Neo4j databases that prove nothing was lost.
//!
//! The library holds the whole engine and no terminal code: the binary (`src/main.rs`
//! with its `cli` module) parses arguments, calls the library and renders; the library
//! cannot reach the CLI, because the CLI is not in it. See `DESIGN.md` in the repository for the map.

pub mod config;
pub mod db;
pub mod engine;
pub mod failure;
pub mod ids;
pub mod integrity;
pub mod ledger;
pub mod plan;
pub mod progress;
pub mod providers;
pub mod report;
pub mod retry;
pub mod steps;
