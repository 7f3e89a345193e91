//! Neo4j versions and editions, and the compatibility rules cutover enforces before it
//! touches anything.

pub use crate::db::Edition;
use crate::failure::Failure;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// `5.26.3`, or calendar versions `2025.01.0` (major = year).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Neo4jVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Neo4jVersion {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// Calendar-versioned releases (2025.01 onward).
    pub fn is_calver(&self) -> bool {
        self.major >= 2025
    }

    /// `neo4j-admin database dump --to-stdout` / `load --from-stdin` are safe to stream:
    /// before 5.19 diagnostics could end up in the dump on stdout (neo4j/neo4j#13397).
    pub fn supports_streamed_dump(&self) -> bool {
        *self >= Neo4jVersion::new(5, 19, 0)
    }

    /// `ALTER DATABASE … SET ACCESS … WAIT` (5.7+).
    pub fn supports_alter_wait(&self) -> bool {
        *self >= Neo4jVersion::new(5, 7, 0)
    }

    /// `neo4j-admin database backup --temp-path` (5.24+).
    pub fn supports_backup_temp_path(&self) -> bool {
        *self >= Neo4jVersion::new(5, 24, 0)
    }
}

impl fmt::Display for Neo4jVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_calver() {
            write!(f, "{}.{:02}.{}", self.major, self.minor, self.patch)
        } else {
            write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
        }
    }
}

impl FromStr for Neo4jVersion {
    type Err = Failure;
    fn from_str(s: &str) -> Result<Self, Failure> {
        let core = s.trim().split(['-', '+']).next().unwrap_or_default();
        let parts: Vec<&str> = core.split('.').collect();
        let num = |i: usize| -> Result<u32, Failure> {
            match parts.get(i) {
                None if i == 2 => Ok(0),
                Some(p) => p
                    .parse()
                    .map_err(|_| Failure::permanent(format!("{s:?} is not a Neo4j version"))),
                None => Err(Failure::permanent(format!("{s:?} is not a Neo4j version"))),
            }
        };
        if parts.len() > 3 {
            return Err(Failure::permanent(format!("{s:?} is not a Neo4j version")));
        }
        Ok(Self {
            major: num(0)?,
            minor: num(1)?,
            patch: num(2)?,
        })
    }
}

/// What a server says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    pub version: Neo4jVersion,
    pub edition: Edition,
}

/// The detection query (documented procedure, both editions).
pub const COMPONENTS_QUERY: &str =
    "CALL dbms.components() YIELD name, versions, edition WHERE name = 'Neo4j Kernel' RETURN versions[0] AS version, edition";

/// Interprets one row of [`COMPONENTS_QUERY`].
pub fn parse_components(version: &str, edition: &str) -> Result<ServerInfo, Failure> {
    Ok(ServerInfo {
        version: version.parse()?,
        edition: edition.parse()?,
    })
}

/// Runs [`COMPONENTS_QUERY`] over Bolt.
pub async fn detect(graph: &neo4rs::Graph, uri: &str) -> Result<ServerInfo, Failure> {
    let mut rows = graph
        .execute(neo4rs::query(COMPONENTS_QUERY))
        .await
        .map_err(|e| crate::db::bolt::classify_bolt_error(uri, &e))?;
    let row = rows
        .next()
        .await
        .map_err(|e| crate::db::bolt::classify_bolt_error(uri, &e))?
        .ok_or_else(|| {
            Failure::permanent(format!(
                "{uri}: dbms.components() returned no Neo4j Kernel row"
            ))
        })?;
    let version: String = row
        .get("version")
        .map_err(|e| Failure::permanent(format!("{uri}: {e}")))?;
    let edition: String = row
        .get("edition")
        .map_err(|e| Failure::permanent(format!("{uri}: {e}")))?;
    parse_components(&version, &edition)
}

/// Refuses, before anything is touched, a restore that Neo4j does not support: into an
/// older version (stores are only readable by the same or newer binaries), or from 4.x
/// (or 5.x before 5.26 LTS) straight into a 2025.x calendar release.
pub fn check_restore_compatible(
    artifact: Neo4jVersion,
    target: Neo4jVersion,
) -> Result<(), Failure> {
    if target < artifact {
        return Err(Failure::permanent(format!(
            "refusing to restore a Neo4j {artifact} artifact into Neo4j {target}: Neo4j restores only into the same or a newer version"
        ))
        .with_hint(format!("build green from an image with Neo4j {artifact} or newer")));
    }
    if target.is_calver() && !artifact.is_calver() && artifact < Neo4jVersion::new(5, 26, 0) {
        return Err(Failure::permanent(format!(
            "refusing to restore a Neo4j {artifact} artifact into Neo4j {target}: upgrades to 2025.x must pass through 5.26 LTS"
        ))
        .with_hint("migrate to a 5.26 image first, then to 2025.x"));
    }
    if artifact.major < 5 {
        return Err(Failure::permanent(format!(
            "refusing to restore a Neo4j {artifact} artifact: 4.x stores need `neo4j-admin database migrate` on 5.26, which cutover does not run"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Neo4jVersion {
        s.parse().unwrap()
    }

    #[test]
    fn versions_parse_and_order_across_calver() {
        assert_eq!(v("5.26.3"), Neo4jVersion::new(5, 26, 3));
        assert_eq!(v("2025.01.0"), Neo4jVersion::new(2025, 1, 0));
        assert_eq!(v("5.26"), Neo4jVersion::new(5, 26, 0));
        assert_eq!(v("5.26.0-enterprise"), Neo4jVersion::new(5, 26, 0));
        assert!(v("5.26.10") > v("5.26.9"));
        assert!(v("2025.01.0") > v("5.26.10"));
        assert_eq!(v("2025.01.0").to_string(), "2025.01.0");
        assert!("five".parse::<Neo4jVersion>().is_err());
        assert!("5.1.2.3".parse::<Neo4jVersion>().is_err());
    }

    #[test]
    fn restore_into_an_older_version_is_refused() {
        assert!(check_restore_compatible(v("5.26.3"), v("5.26.3")).is_ok());
        assert!(check_restore_compatible(v("5.26.3"), v("2025.06.0")).is_ok());
        let err = check_restore_compatible(v("5.22.0"), v("5.21.0")).unwrap_err();
        assert_eq!(err.class, crate::failure::ErrorClass::Permanent);
        assert!(err.message.contains("older") || err.message.contains("same or a newer"));
        assert!(check_restore_compatible(v("2025.01.0"), v("5.26.9")).is_err());
        assert!(check_restore_compatible(v("5.20.0"), v("2025.01.0")).is_err());
        assert!(check_restore_compatible(v("4.4.30"), v("5.26.0")).is_err());
    }

    #[test]
    fn components_rows_parse() {
        let info = parse_components("5.26.3", "enterprise").unwrap();
        assert_eq!(info.edition, Edition::Enterprise);
        assert!(parse_components("5.26.3", "aura").is_err());
    }

    #[test]
    fn streaming_only_where_stdout_is_clean() {
        assert!(!v("5.16.0").supports_streamed_dump());
        assert!(v("5.19.0").supports_streamed_dump());
        assert!(v("2025.01.0").supports_streamed_dump());
    }
}
