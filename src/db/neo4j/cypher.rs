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
    check_password(user, &password)?;
    let mut stmt = CypherStatement::system(format!(
        "ALTER USER {} SET PASSWORD $password CHANGE NOT REQUIRED",
        quote_identifier(user)
    ));
    stmt.secret_params.push(("password".to_owned(), password));
    Ok(stmt)
}

fn check_password(user: &str, password: &SecretString) -> Result<(), Failure> {
    if password.expose_secret().chars().count() < 8 {
        return Err(Failure::permanent(format!(
            "the new password for {user} is shorter than 8 characters (dbms.security.auth_minimum_password_length)"
        )));
    }
    Ok(())
}

/// `CREATE USER x IF NOT EXISTS SET PASSWORD $password CHANGE NOT REQUIRED` (both
/// editions), the password a parameter. Followed by [`alter_user_password`], this sets
/// the password whether or not the user existed.
pub fn create_user_if_not_exists(
    user: &str,
    password: SecretString,
) -> Result<CypherStatement, Failure> {
    if user.is_empty() {
        return Err(Failure::permanent("user name is empty"));
    }
    check_password(user, &password)?;
    let mut stmt = CypherStatement::system(format!(
        "CREATE USER {} IF NOT EXISTS SET PASSWORD $password CHANGE NOT REQUIRED",
        quote_identifier(user)
    ));
    stmt.secret_params.push(("password".to_owned(), password));
    Ok(stmt)
}

/// `GRANT ROLE r TO u` — Enterprise only (Community has no roles).
pub fn grant_role(info: &ServerInfo, role: &str, user: &str) -> Result<CypherStatement, Failure> {
    if info.edition != Edition::Enterprise {
        return Err(Failure::permanent(format!(
            "roles need Neo4j Enterprise; this server is Community {}",
            info.version
        )));
    }
    if role.is_empty() || user.is_empty() {
        return Err(Failure::permanent("role and user names must not be empty"));
    }
    Ok(CypherStatement::system(format!(
        "GRANT ROLE {} TO {}",
        quote_identifier(role),
        quote_identifier(user)
    )))
}

/// `STOP DATABASE x [WAIT n SECONDS]` — Enterprise: `neo4j-admin database dump`, `load`
/// and `restore` need the database stopped.
pub fn stop_database(
    info: &ServerInfo,
    database: &str,
    wait: Duration,
) -> Result<CypherStatement, Failure> {
    lifecycle(info, database, "STOP DATABASE", wait)
}

/// `START DATABASE x [WAIT n SECONDS]` — Enterprise.
pub fn start_database(
    info: &ServerInfo,
    database: &str,
    wait: Duration,
) -> Result<CypherStatement, Failure> {
    lifecycle(info, database, "START DATABASE", wait)
}

/// `CREATE DATABASE x IF NOT EXISTS [WAIT n SECONDS]` — Enterprise: after a load or
/// restore of a database the DBMS does not know yet, this registers the restored store.
pub fn create_database_if_not_exists(
    info: &ServerInfo,
    database: &str,
    wait: Duration,
) -> Result<CypherStatement, Failure> {
    let mut stmt = lifecycle(info, database, "CREATE DATABASE", Duration::ZERO)?;
    stmt.text.push_str(" IF NOT EXISTS");
    stmt.text
        .push_str(&format!(" WAIT {} SECONDS", wait.as_secs().max(1)));
    Ok(stmt)
}

fn lifecycle(
    info: &ServerInfo,
    database: &str,
    command: &str,
    wait: Duration,
) -> Result<CypherStatement, Failure> {
    validate_database_name(database)?;
    if info.edition != Edition::Enterprise {
        return Err(Failure::permanent(format!(
            "{command} needs Neo4j Enterprise; this server is Community {}",
            info.version
        ))
        .with_hint("Community stops and starts the whole DBMS instead"));
    }
    if database == "system" {
        return Err(Failure::permanent(format!(
            "cutover never runs {command} on the system database"
        )));
    }
    let mut text = format!("{command} {}", quote_identifier(database));
    if !wait.is_zero() {
        text.push_str(&format!(" WAIT {} SECONDS", wait.as_secs().max(1)));
    }
    Ok(CypherStatement::system(text))
}

/// The running value of `server.databases.read_only` (both editions; the Community
/// freeze sets it): `CALL dbms.listConfig(…)`. It runs on `system`, which allows only
/// `CALL … YIELD … RETURN` (a `WHERE` after `YIELD` is refused as a `WITH`, verified on
/// 5.26.30): the caller picks the row whose `name` is exactly the setting.
pub const READ_ONLY_SETTING_QUERY: &str =
    "CALL dbms.listConfig('server.databases.read_only') YIELD name, value RETURN name, value";
/// The setting [`READ_ONLY_SETTING_QUERY`] reads.
pub const READ_ONLY_SETTING: &str = "server.databases.read_only";

/// Whether `database` is in a `server.databases.read_only` value (a comma-separated list).
pub fn read_only_setting_lists(value: &str, database: &str) -> bool {
    value
        .split(',')
        .map(str::trim)
        .any(|d| d.eq_ignore_ascii_case(database))
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
    fn user_creation_lifecycle_and_roles_render_per_the_manual() {
        let ee = info("5.26.0", Edition::Enterprise);
        let ce = info("5.26.0", Edition::Community);
        let s = create_user_if_not_exists(
            "cutover_app",
            SecretString::from("correct horse battery".to_owned()),
        )
        .unwrap();
        assert_eq!(
            s.text,
            "CREATE USER `cutover_app` IF NOT EXISTS SET PASSWORD $password CHANGE NOT REQUIRED"
        );
        assert!(!s.text.contains("horse"));
        assert_eq!(
            grant_role(&ee, "publisher", "cutover_app").unwrap().text,
            "GRANT ROLE `publisher` TO `cutover_app`"
        );
        assert!(grant_role(&ce, "publisher", "cutover_app").is_err());
        let wait = Duration::from_secs(120);
        assert_eq!(
            stop_database(&ee, "neo4j", wait).unwrap().text,
            "STOP DATABASE `neo4j` WAIT 120 SECONDS"
        );
        assert_eq!(
            start_database(&ee, "neo4j", wait).unwrap().text,
            "START DATABASE `neo4j` WAIT 120 SECONDS"
        );
        assert_eq!(
            create_database_if_not_exists(&ee, "ledger", wait)
                .unwrap()
                .text,
            "CREATE DATABASE `ledger` IF NOT EXISTS WAIT 120 SECONDS"
        );
        assert!(stop_database(&ce, "neo4j", wait).is_err());
        assert!(stop_database(&ee, "system", wait).is_err());
        assert!(read_only_setting_lists("ledger, neo4j", "neo4j"));
        assert!(!read_only_setting_lists("", "neo4j"));
        assert!(!read_only_setting_lists("neo4j2", "neo4j"));
    }

    #[test]
    fn show_database_observes_access() {
        assert_eq!(
            show_database("neo4j").unwrap().text,
            "SHOW DATABASE `neo4j` YIELD name, access, currentStatus RETURN name, access, currentStatus"
        );
    }
}
