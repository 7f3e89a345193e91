//! cutover: blue-green migrations of Neo4j databases that prove nothing was lost.
//!
//! The library holds the whole engine; the binary (`src/main.rs` + [`cli`]) only parses
//! arguments, calls the library and renders. See `DESIGN.md` in the repository for the map.

pub mod cli;
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
