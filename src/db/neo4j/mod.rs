//! The `neo4j` engine: the production engine. Typed builders for everything cutover runs
//! on a Neo4j 5.x / 2025.x server, Community and Enterprise:
//!
//! - [`version`]: version/edition detection (`CALL dbms.components()`), compatibility
//!   rules (never restore into an older version; 4.x → 2025.x must pass 5.26 LTS).
//! - [`admin`]: `neo4j-admin` argv builders (dump, load, backup, restore, check,
//!   set-initial-password), each refusing what its edition or version cannot do.
//! - [`cypher`]: administration Cypher (read-only access, password rotation with
//!   parameters, database status), run over Bolt.
//! - [`engine`]: [`Neo4jEngine`], the `DatabaseEngine` over the exec channel (scripts on
//!   the instance, driven by [`script_runner`]) and Bolt ([`bolt_admin`]), configured by
//!   [`settings`].
//! - [`scripts`]: the shell scripts run on the instance (through the exec provider) that
//!   stream dumps to and from S3 with SHA-256, read passwords from Secrets Manager, and
//!   freeze Community servers through configuration.

pub mod admin;
pub mod bolt_admin;
pub mod cypher;
pub mod engine;
#[cfg(test)]
mod engine_tests;
pub mod script_runner;
pub mod scripts;
pub mod settings;
pub mod version;

pub use engine::Neo4jEngine;
pub use settings::{BackupMethod, Neo4jSettings};
pub use version::{Edition, Neo4jVersion, ServerInfo};
