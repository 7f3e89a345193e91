//! The `arcadedb` database engine: the local rehearsal engine, over ArcadeDB's HTTP API
//! (as root) and Bolt. Checked against ArcadeDB 26.10.2:
//!
//! - **Freeze** uses the database's open mode. ArcadeDB has no per-database read-only
//!   setting (`ALTER DATABASE` knows no such key) but opens databases in the mode of the
//!   server setting `arcadedb.server.defaultDatabaseMode`. Freezing runs the server
//!   commands `set server setting arcadedb.server.defaultDatabaseMode READ_ONLY`,
//!   `close database X`, `open database X`, and sets the server default back to
//!   `READ_WRITE` (also when a step in between fails). A frozen database serves reads
//!   over Bolt and `POST /api/v1/query`; every write fails with "Cannot execute command on
//!   a read only database" (Bolt) or `DatabaseIsReadOnlyException` (HTTP), for every
//!   user, root included. Unfreeze is the same with `READ_WRITE`. Closing the database
//!   interrupts what runs on it at that moment: clients see an error and retry.
//!   `is_frozen` reads `mode` from `SELECT FROM schema:database`.
//!   Not covered: a server restart opens the database read-write again (the mode is not
//!   persisted), so a restarted blue is no longer frozen.
//! - **Backup**: `BACKUP DATABASE` (SQL) through `POST /api/v1/query/X` — the
//!   `/command` endpoint opens a transaction, which a frozen (read-only) database refuses;
//!   `/query` works on both. ArcadeDB writes `backups/X/X-backup-<time>.zip` under the
//!   server's root path (it refuses a target outside it), so the engine needs the
//!   instance's `home` endpoint (the local provider sets it). The zip is streamed into the
//!   object store (SHA-256 on write) and then deleted.
//! - **Restore**: downloads the artifact to `<home>/restore/`, checks its SHA-256 against
//!   `artifact.object.sha256` *before* loading (a mismatch is refused and the file
//!   removed), then `restore database X file://…` (needs the server started with
//!   `arcadedb.server.restoreImportAllowLocalUrls=true`, which the local provider does).
//!   ArcadeDB refuses to restore over an existing database: an existing *empty* database
//!   is dropped first, one with data is refused (a rollback's restore onto blue drops it
//!   through `clear_for_restore`, after proving its content is in the backup). A zip that is not a backup fails in
//!   ArcadeDB with "zip END header not found".
//! - **Users**: `PUT /api/v1/server/users?name=U` changes a password (404 if the user is
//!   missing), `POST /api/v1/server/users` creates one. The user gets ArcadeDB's `admin`
//!   group on the database (read + write + schema; ArcadeDB's only built-in group with
//!   write access), other databases the user had are kept. ArcadeDB wants user names of at
//!   least 4 characters. Users live in the server's `config/server-users.jsonl`, not in
//!   the backup: a restored database has no application user until this is called.
//! - **Version**: `GET /api/v1/server?mode=basic` (e.g. `26.10.2`). **Health**: a Cypher
//!   query over Bolt as the administrator.

use super::server::DEFAULT_COMMAND_TIMEOUT;
use super::ArcadeHttp;
use crate::db::bolt::BoltTarget;
use crate::db::engine::{BackupArtifact, DatabaseEngine, DbHandle, DbOperation, OpPoll};
use crate::db::EngineKind;
use crate::failure::Failure;
use crate::ids::ObjectKey;
use crate::providers::ObjectStore;
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// How long a backup or a restore may take.
pub const LONG_COMMAND_TIMEOUT: Duration = Duration::from_secs(3600);
/// The server setting that decides the mode databases open in.
const MODE_SETTING: &str = "arcadedb.server.defaultDatabaseMode";
/// ArcadeDB's minimum user name length.
pub const MIN_USER_LEN: usize = 4;

/// The ArcadeDB engine. Needs the instance endpoints `http` and `bolt` (and `home` for
/// backup and restore), as the local provider sets them.
#[derive(Clone, Debug)]
pub struct ArcadeEngine {
    client: reqwest::Client,
}

impl Default for ArcadeEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl ArcadeEngine {
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(2))
            .build()
            .expect("a plain-HTTP reqwest client always builds");
        Self { client }
    }

    fn endpoint<'a>(db: &'a DbHandle, name: &str) -> Result<&'a str, Failure> {
        db.instance.endpoints.get(name).map(String::as_str).ok_or_else(|| {
            Failure::permanent(format!(
                "instance {} has no `{name}` endpoint; the arcadedb engine runs on the local provider",
                db.instance.id
            ))
        })
    }

    fn http_base(db: &DbHandle) -> Result<String, Failure> {
        Ok(Self::endpoint(db, "http")?
            .trim_end_matches('/')
            .to_string())
    }

    fn http_port(db: &DbHandle) -> Result<u16, Failure> {
        let base = Self::http_base(db)?;
        base.rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| {
                Failure::permanent(format!(
                    "instance {}: bad http endpoint `{base}`",
                    db.instance.id
                ))
            })
    }

    fn admin(db: &DbHandle) -> Result<ArcadeHttp, Failure> {
        Ok(ArcadeHttp::new(
            Self::http_port(db)?,
            db.admin_password.clone(),
        ))
    }

    fn home(db: &DbHandle) -> Result<PathBuf, Failure> {
        Ok(PathBuf::from(Self::endpoint(db, "home")?))
    }

    /// An HTTP request as the administrator; `what` names it in errors (never the body).
    async fn request(
        &self,
        db: &DbHandle,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
        what: &str,
        timeout: Duration,
    ) -> Result<(u16, serde_json::Value), Failure> {
        let url = format!("{}{path}", Self::http_base(db)?);
        let mut req = self
            .client
            .request(method, &url)
            .basic_auth(&db.admin_user, Some(db.admin_password.expose_secret()))
            .timeout(timeout);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let what = format!("ArcadeDB {} ({}): {what}", db.instance.id, db.database);
        let response = req
            .send()
            .await
            .map_err(|e| Failure::transient(format!("{what}: {}", e.describe())))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| Failure::transient(format!("{what}: {}", e.describe())))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        if (200..300).contains(&status) {
            return Ok((status, json));
        }
        if status == 404 {
            return Ok((status, json));
        }
        let detail = super::http::error_detail(&json, &text);
        let message = format!("{what} failed with HTTP {status}: {detail}");
        Err(match status {
            401 | 403 => Failure::permanent(message)
                .with_hint("check the administrator password of this instance"),
            500..=599 if !detail.contains("read only") && !detail.contains("already exists") => {
                Failure::transient(message)
            }
            _ => Failure::permanent(message),
        })
    }

    /// `POST /api/v1/query/<db>`: read-only statements (and `BACKUP DATABASE`); works on a
    /// frozen database.
    async fn query(
        &self,
        db: &DbHandle,
        language: &str,
        command: &str,
        timeout: Duration,
    ) -> Result<serde_json::Value, Failure> {
        let body = serde_json::json!({ "language": language, "command": command });
        let (status, json) = self
            .request(
                db,
                reqwest::Method::POST,
                &format!("/api/v1/query/{}", db.database),
                Some(body),
                command,
                timeout,
            )
            .await?;
        if status == 404 {
            return Err(Failure::permanent(format!(
                "ArcadeDB {}: database `{}` does not exist",
                db.instance.id, db.database
            )));
        }
        Ok(json
            .get("result")
            .cloned()
            .unwrap_or(serde_json::Value::Null))
    }

    async fn set_mode(&self, db: &DbHandle, mode: &str) -> Result<(), Failure> {
        let http = Self::admin(db)?;
        http.server_command(
            &format!("set server setting {MODE_SETTING} {mode}"),
            DEFAULT_COMMAND_TIMEOUT,
        )
        .await?;
        let reopen = async {
            http.server_command(
                &format!("close database {}", db.database),
                DEFAULT_COMMAND_TIMEOUT,
            )
            .await?;
            http.server_command(
                &format!("open database {}", db.database),
                DEFAULT_COMMAND_TIMEOUT,
            )
            .await?;
            Ok::<(), Failure>(())
        }
        .await;
        // Whatever happened, new databases open read-write again.
        let reset = http
            .server_command(
                &format!("set server setting {MODE_SETTING} READ_WRITE"),
                DEFAULT_COMMAND_TIMEOUT,
            )
            .await;
        reopen?;
        reset?;
        Ok(())
    }

    /// Counts the nodes of the database (over HTTP, works frozen).
    pub async fn node_count(&self, db: &DbHandle) -> Result<u64, Failure> {
        let result = self
            .query(
                db,
                "cypher",
                "MATCH (n) RETURN count(n) AS c",
                DEFAULT_COMMAND_TIMEOUT,
            )
            .await?;
        Ok(result
            .get(0)
            .and_then(|r| r.get("c"))
            .and_then(|c| c.as_u64())
            .unwrap_or(0))
    }

    async fn run_bolt(&self, target: &BoltTarget, cypher: &str) -> Result<(), Failure> {
        let graph = target.connect(1).await?;
        crate::db::bolt::run_and_discard(&graph, &target.uri, cypher).await
    }
}

/// An error text without the URL, with its sources.
trait Describe {
    fn describe(&self) -> String;
}

impl Describe for reqwest::Error {
    fn describe(&self) -> String {
        super::http::without_url(self)
    }
}

/// `26.10.2` ≥ `26.9.1`, numerically per component.
fn version_at_least(have: &str, need: &str) -> bool {
    let parse = |v: &str| -> Vec<u64> {
        v.split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap_or(0))
            .collect()
    };
    parse(have) >= parse(need)
}

async fn sha256_file(path: &std::path::Path) -> Result<String, Failure> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| Failure::permanent(format!("cannot read {}: {e}", path.display())))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .await
            .map_err(|e| Failure::transient(format!("cannot read {}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

impl ArcadeEngine {
    async fn backup_now(
        &self,
        db: &DbHandle,
        objects: &dyn ObjectStore,
        key: &ObjectKey,
    ) -> Result<BackupArtifact, Failure> {
        let home = Self::home(db)?;
        let version = self.version(db).await?;
        let result = self
            .query(db, "sql", "BACKUP DATABASE", LONG_COMMAND_TIMEOUT)
            .await?;
        let file = result
            .get(0)
            .and_then(|r| r.get("backupFile"))
            .and_then(|f| f.as_str())
            .filter(|f| !f.contains('/') && !f.starts_with('.'))
            .ok_or_else(|| {
                Failure::permanent(format!(
                    "ArcadeDB {}: BACKUP DATABASE returned no file: {result}",
                    db.instance.id
                ))
            })?;
        let path = home.join("backups").join(&db.database).join(file);
        let uploaded = objects.put_file(key, &path).await;
        let _ = tokio::fs::remove_file(&path).await;
        let object = uploaded?;
        Ok(BackupArtifact {
            object,
            engine: EngineKind::Arcadedb,
            engine_version: version,
            format: "zip".into(),
        })
    }

    async fn restore_now(
        &self,
        db: &DbHandle,
        objects: &dyn ObjectStore,
        artifact: &BackupArtifact,
    ) -> Result<(), Failure> {
        let location = objects.location(&artifact.object.key);
        if artifact.engine != EngineKind::Arcadedb || artifact.format != "zip" {
            return Err(Failure::permanent(format!(
                "{location} is a {} {} backup; the arcadedb engine restores only arcadedb zip backups",
                artifact.engine, artifact.format
            )));
        }
        let expected = artifact.object.sha256.clone().ok_or_else(|| {
            Failure::permanent(format!("{location}: the artifact has no SHA-256; refusing to restore an unverifiable backup"))
        })?;
        let version = self.version(db).await?;
        if !version_at_least(&version, &artifact.engine_version) {
            return Err(Failure::permanent(format!(
                "{location} was written by ArcadeDB {} but instance {} runs {version}; never restore into an older version",
                artifact.engine_version, db.instance.id
            )));
        }
        let dir = Self::home(db)?.join("restore");
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| Failure::permanent(format!("cannot create {}: {e}", dir.display())))?;
        let short: String = expected.chars().take(12).collect();
        let path = dir.join(format!("{}-{short}.zip", db.database));
        let result = async {
            objects.get_file(&artifact.object.key, &path).await?;
            // Verify the bytes we are about to load, against the manifest's checksum.
            let actual = sha256_file(&path).await?;
            if !actual.eq_ignore_ascii_case(&expected) {
                return Err(Failure::permanent(format!(
                    "checksum mismatch for {location}: the manifest says sha256 {expected}, the downloaded file has {actual}; refusing to restore"
                ))
                .with_hint("the backup is corrupt — take a new backup (cutover run runbooks/backup.toml --env …)"));
            }
            let http = Self::admin(db)?;
            if http.list_databases().await?.iter().any(|d| d == &db.database) {
                let nodes = self.node_count(db).await?;
                if nodes > 0 {
                    return Err(Failure::permanent(format!(
                        "ArcadeDB {}: database `{}` already exists with {nodes} nodes; restore needs a fresh database",
                        db.instance.id, db.database
                    ))
                    .with_hint("restore into a new instance"));
                }
                http.server_command(&format!("drop database {}", db.database), DEFAULT_COMMAND_TIMEOUT)
                    .await?;
            }
            http.server_command(
                &format!("restore database {} file://{}", db.database, path.display()),
                LONG_COMMAND_TIMEOUT,
            )
            .await?;
            Ok(())
        }
        .await;
        let _ = tokio::fs::remove_file(&path).await;
        result
    }
}

#[async_trait]
impl DatabaseEngine for ArcadeEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Arcadedb
    }

    async fn version(&self, db: &DbHandle) -> Result<String, Failure> {
        let (_, json) = self
            .request(
                db,
                reqwest::Method::GET,
                "/api/v1/server?mode=basic",
                None,
                "server info",
                DEFAULT_COMMAND_TIMEOUT,
            )
            .await?;
        json.get("version")
            .and_then(|v| v.as_str())
            .and_then(|v| v.split_whitespace().next())
            .map(str::to_string)
            .ok_or_else(|| {
                Failure::permanent(format!(
                    "ArcadeDB {}: the server did not report a version",
                    db.instance.id
                ))
            })
    }

    async fn health(&self, db: &DbHandle) -> Result<(), Failure> {
        let target = self.bolt_target(db, &db.admin_user, db.admin_password.clone());
        self.run_bolt(&target, "MATCH (n) WITH n LIMIT 1 RETURN count(n) AS c")
            .await
    }

    async fn freeze(&self, db: &DbHandle) -> Result<(), Failure> {
        if self.is_frozen(db).await? {
            return Ok(());
        }
        self.set_mode(db, "READ_ONLY").await?;
        if !self.is_frozen(db).await? {
            return Err(Failure::inconclusive(format!(
                "ArcadeDB {} ({}): reopened read-only but the database reports read-write",
                db.instance.id, db.database
            )));
        }
        Ok(())
    }

    async fn unfreeze(&self, db: &DbHandle) -> Result<(), Failure> {
        if !self.is_frozen(db).await? {
            return Ok(());
        }
        self.set_mode(db, "READ_WRITE").await?;
        if self.is_frozen(db).await? {
            return Err(Failure::inconclusive(format!(
                "ArcadeDB {} ({}): reopened read-write but the database still reports read-only",
                db.instance.id, db.database
            )));
        }
        Ok(())
    }

    async fn is_frozen(&self, db: &DbHandle) -> Result<bool, Failure> {
        let result = self
            .query(
                db,
                "sql",
                "SELECT mode FROM schema:database",
                DEFAULT_COMMAND_TIMEOUT,
            )
            .await?;
        let mode = result
            .get(0)
            .and_then(|r| r.get("mode"))
            .and_then(|m| m.as_str())
            .unwrap_or("");
        match mode {
            "READ_ONLY" => Ok(true),
            "READ_WRITE" => Ok(false),
            other => Err(Failure::permanent(format!(
                "ArcadeDB {} ({}): unexpected database mode `{other}`",
                db.instance.id, db.database
            ))),
        }
    }

    /// ArcadeDB's backup is one HTTP command: it completes here, and the handle carries
    /// the artifact for the first poll.
    async fn start_backup(
        &self,
        db: &DbHandle,
        objects: &dyn ObjectStore,
        key: &ObjectKey,
        _attempt: &str,
    ) -> Result<DbOperation, Failure> {
        let artifact = self.backup_now(db, objects, key).await?;
        Ok(DbOperation {
            operation: "arcadedb-backup".into(),
            command: None,
            state: serde_json::json!({ "artifact": artifact }),
        })
    }

    async fn poll_backup(
        &self,
        _db: &DbHandle,
        _objects: &dyn ObjectStore,
        op: &mut DbOperation,
    ) -> OpPoll<BackupArtifact> {
        match op
            .state
            .get("artifact")
            .cloned()
            .map(serde_json::from_value::<BackupArtifact>)
        {
            Some(Ok(artifact)) => OpPoll::Done(artifact),
            _ => OpPoll::Failed(Failure::permanent(format!(
                "the {} handle carries no artifact; take the backup again",
                op.operation
            ))),
        }
    }

    /// Drops the database (ArcadeDB refuses to restore over one that holds data). The
    /// step proved its content is in the backup before calling this. A frozen
    /// (read-only) database cannot be dropped ("Cannot drop database"), so it is opened
    /// read-write first; it is the instance the application does not use.
    async fn clear_for_restore(&self, db: &DbHandle) -> Result<(), Failure> {
        let http = Self::admin(db)?;
        if http
            .list_databases()
            .await?
            .iter()
            .any(|d| d == &db.database)
        {
            self.unfreeze(db).await?;
            http.server_command(
                &format!("drop database {}", db.database),
                DEFAULT_COMMAND_TIMEOUT,
            )
            .await?;
        }
        Ok(())
    }

    /// ArcadeDB's restore is one HTTP command: it completes here.
    async fn start_restore(
        &self,
        db: &DbHandle,
        objects: &dyn ObjectStore,
        artifact: &BackupArtifact,
        _attempt: &str,
    ) -> Result<DbOperation, Failure> {
        self.restore_now(db, objects, artifact).await?;
        Ok(DbOperation {
            operation: "arcadedb-restore".into(),
            command: None,
            state: serde_json::json!({ "restored": true }),
        })
    }

    async fn poll_restore(
        &self,
        _db: &DbHandle,
        _objects: &dyn ObjectStore,
        _artifact: &BackupArtifact,
        op: &mut DbOperation,
    ) -> OpPoll<()> {
        if op.state.get("restored").and_then(|v| v.as_bool()) == Some(true) {
            OpPoll::Done(())
        } else {
            OpPoll::Failed(Failure::permanent(format!(
                "the {} handle does not record a finished restore; restore into a new instance",
                op.operation
            )))
        }
    }

    async fn set_user_password(
        &self,
        db: &DbHandle,
        user: &str,
        password: &SecretString,
    ) -> Result<(), Failure> {
        if user.chars().count() < MIN_USER_LEN
            || !user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(Failure::permanent(format!(
                "invalid ArcadeDB user name `{user}`: at least {MIN_USER_LEN} letters, digits, `_` or `-`"
            )));
        }
        if user == db.admin_user {
            return Err(Failure::permanent(format!(
                "refusing to change the administrator `{user}` as an application user"
            )));
        }
        let (_, users) = self
            .request(
                db,
                reqwest::Method::GET,
                "/api/v1/server/users",
                None,
                "list users",
                DEFAULT_COMMAND_TIMEOUT,
            )
            .await?;
        let existing = users
            .get("result")
            .and_then(|r| r.as_array())
            .and_then(|a| {
                a.iter()
                    .find(|u| u.get("name").and_then(|n| n.as_str()) == Some(user))
            })
            .cloned();
        let mut databases = existing
            .as_ref()
            .and_then(|u| u.get("databases"))
            .and_then(|d| d.as_object())
            .cloned()
            .unwrap_or_default();
        databases.insert(db.database.clone(), serde_json::json!(["admin"]));
        let body = serde_json::json!({
            "name": user,
            "password": password.expose_secret(),
            "databases": databases,
        });
        let (status, _) = if existing.is_some() {
            self.request(
                db,
                reqwest::Method::PUT,
                &format!("/api/v1/server/users?name={user}"),
                Some(body),
                &format!("update user {user}"),
                DEFAULT_COMMAND_TIMEOUT,
            )
            .await?
        } else {
            self.request(
                db,
                reqwest::Method::POST,
                "/api/v1/server/users",
                Some(body),
                &format!("create user {user}"),
                DEFAULT_COMMAND_TIMEOUT,
            )
            .await?
        };
        if status == 404 {
            return Err(Failure::transient(format!(
                "ArcadeDB {}: user {user} disappeared while changing its password",
                db.instance.id
            )));
        }
        Ok(())
    }

    fn bolt_target(&self, db: &DbHandle, user: &str, password: SecretString) -> BoltTarget {
        BoltTarget {
            uri: db
                .instance
                .endpoints
                .get("bolt")
                .cloned()
                .unwrap_or_else(|| {
                    format!(
                        "bolt://{}:7687",
                        db.instance.address.as_deref().unwrap_or("127.0.0.1")
                    )
                }),
            user: user.to_string(),
            password,
            database: Some(db.database.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert!(version_at_least("26.10.2", "26.9.1"));
        assert!(version_at_least("26.10.2", "26.10.2"));
        assert!(!version_at_least("26.9.1", "26.10.2"));
    }
}
