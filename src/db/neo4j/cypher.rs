//! Administration Cypher (Cypher manual, "Database management" and "User management"),
//! run over Bolt against the `system` database. Values go in parameters, never in the
//! statement text; identifiers are backtick-quoted.

use super::admin::validate_database_name;
use super::version::{Edition, ServerInfo};
use crate::failure::Failure;
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

/// A statement with its target database and parameters. `Debug` never shows a secret.
#[derive(Clone, Debug)]
pub struct CypherStatement {
    pub text: String,
    /// `system` for administration commands.
    pub database: &'static str,
    pub string_params: Vec<(String, String)>,
    pub secret_params: Vec<(String, SecretString)>,
}

impl CypherStatement {
    fn system(text: String) -> Self {
        Self {
            text,
            database: "system",
            string_params: Vec::new(),
            secret_params: Vec::new(),
        }
    }

    /// The `neo4rs` query with all parameters bound.
    pub fn query(&self) -> neo4rs::Query {
        let mut q = neo4rs::query(&self.text);
        for (k, v) in &self.string_params {
            q = q.param(k, v.as_str());
        }
        for (k, v) in &self.secret_params {
            q = q.param(k, v.expose_secret());
        }
        q
    }

    /// Runs it on `graph` (connected with an administrator's credentials).
    pub async fn run(&self, graph: &neo4rs::Graph, uri: &str) -> Result<(), Failure> {
        graph
            .run_on(self.database, self.query())
            .await
            .map_err(|e| crate::db::bolt::classify_bolt_error(uri, &e))
    }
}

/// Backtick-quotes an identifier (backticks doubled).
pub fn quote_identifier(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

/// `ALTER DATABASE x SET ACCESS READ ONLY|READ WRITE [WAIT n SECONDS]` — Enterprise
/// only. Community has no `ALTER DATABASE`: its freeze is the configuration path in
/// [`super::scripts::community_freeze`].
pub fn set_access(
    info: &ServerInfo,
    database: &str,
    access: Access,
    wait: Option<Duration>,
) -> Result<CypherStatement, Failure> {
    validate_database_name(database)?;
    if info.edition != Edition::Enterprise {
        return Err(Failure::permanent(format!(
            "ALTER DATABASE needs Neo4j Enterprise; {database} runs on Community {}",
            info.version
        ))
        .with_hint("cutover freezes Community through server.databases.read_only and a restart"));
    }
    if database == "system" {
        return Err(Failure::permanent(
            "the system database cannot be made read-only",
        ));
    }
    let mode = match access {
        Access::ReadOnly => "READ ONLY",
        Access::ReadWrite => "READ WRITE",
    };
    let mut text = format!(
        "ALTER DATABASE {} SET ACCESS {mode}",
        quote_identifier(database)
    );
    if let Some(w) = wait {
        if info.version.supports_alter_wait() {
            text.push_str(&format!(" WAIT {} SECONDS", w.as_secs().max(1)));
        }
    }
    Ok(CypherStatement::system(text))
}

/// `SHOW DATABASE x YIELD name, access, currentStatus`: observes the freeze.
pub fn show_database(database: &str) -> Result<CypherStatement, Failure> {
    validate_database_name(database)?;
    Ok(CypherStatement::system(format!(
        "SHOW DATABASE {} YIELD name, access, currentStatus RETURN name, access, currentStatus",
        quote_identifier(database)
    )))
}

/// `ALTER USER x SET PASSWORD $password CHANGE NOT REQUIRED`, the password a parameter.
pub fn alter_user_password(user: &str, password: SecretString) -> Result<CypherStatement, Failure> {
    if user.is_empty() {
        return Err(Failure::permanent("user name is empty"));
    }
    if password.expose_secret().chars().count() < 8 {
        return Err(Failure::permanent(format!(
            "the new password for {user} is shorter than 8 characters (dbms.security.auth_minimum_password_length)"
        )));
    }
    let mut stmt = CypherStatement::system(format!(
        "ALTER USER {} SET PASSWORD $password CHANGE NOT REQUIRED",
        quote_identifier(user)
    ));
    stmt.secret_params.push(("password".to_owned(), password));
    Ok(stmt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(v: &str, e: Edition) -> ServerInfo {
        ServerInfo {
            version: v.parse().unwrap(),
            edition: e,
        }
    }

    #[test]
    fn freeze_is_alter_database_on_enterprise_only() {
        let ee = info("5.26.0", Edition::Enterprise);
        let s = set_access(
            &ee,
            "neo4j",
            Access::ReadOnly,
            Some(Duration::from_secs(30)),
        )
        .unwrap();
        assert_eq!(
            s.text,
            "ALTER DATABASE `neo4j` SET ACCESS READ ONLY WAIT 30 SECONDS"
        );
        assert_eq!(s.database, "system");
        let s = set_access(
            &info("5.6.0", Edition::Enterprise),
            "neo4j",
            Access::ReadWrite,
            Some(Duration::from_secs(30)),
        )
        .unwrap();
        assert_eq!(s.text, "ALTER DATABASE `neo4j` SET ACCESS READ WRITE");
        assert!(set_access(
            &info("5.26.0", Edition::Community),
            "neo4j",
            Access::ReadOnly,
            None
        )
        .is_err());
        assert!(set_access(&ee, "system", Access::ReadOnly, None).is_err());
    }

    #[test]
    fn password_rotation_uses_a_parameter() {
        let s = alter_user_password(
            "neo4j",
            SecretString::from("correct horse battery".to_owned()),
        )
        .unwrap();
        assert_eq!(
            s.text,
            "ALTER USER `neo4j` SET PASSWORD $password CHANGE NOT REQUIRED"
        );
        assert!(!format!("{s:?}").contains("horse"));
        assert!(alter_user_password("neo4j", SecretString::from("short".to_owned())).is_err());
        assert_eq!(quote_identifier("we`ird"), "`we``ird`");
    }

    #[test]
    fn show_database_observes_access() {
        assert_eq!(
            show_database("neo4j").unwrap().text,
            "SHOW DATABASE `neo4j` YIELD name, access, currentStatus RETURN name, access, currentStatus"
        );
    }
}
