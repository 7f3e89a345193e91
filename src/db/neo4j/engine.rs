//! The `neo4j` database engine: scripts on the instance through the [`Exec`] channel (SSM
//! on AWS) for everything that touches files or the service, Bolt from cutover's host
//! for everything Cypher.
//!
//! | operation | Enterprise | Community |
//! |---|---|---|
//! | version | `dbms.components()` over Bolt; the edition must match the environment | same |
//! | health | a read query on the database over Bolt | same |
//! | freeze / unfreeze | `ALTER DATABASE x SET ACCESS READ ONLY / READ WRITE WAIT` on `system` | `community-freeze.sh`: `server.databases.read_only` in a marked block of neo4j.conf + restart (only when the file changed), then wait until Bolt serves again |
//! | is_frozen | `SHOW DATABASE x`: every row `read-only` | `dbms.listConfig('server.databases.read_only')` lists x |
//! | backup (`online`) | `backup-to-s3.sh`: FULL online backup, one artifact to the key | refused (needs Enterprise) |
//! | backup (`dump`) | `STOP DATABASE`, `dump-to-s3.sh`, `START DATABASE` (always) | `dump-to-s3.sh` with the DBMS stopped around the dump, then wait for Bolt |
//! | restore `dump` | `STOP DATABASE` (if it exists), `load-from-s3.sh`, `CREATE DATABASE IF NOT EXISTS`, `START DATABASE` | `load-from-s3.sh` with the DBMS stopped around the load, then wait for Bolt |
//! | restore `online-full` | as `dump` with `restore-from-s3.sh` | refused |
//! | set_user_password | `CREATE USER … IF NOT EXISTS`, `ALTER USER … SET PASSWORD $password`, `GRANT ROLE` | the same without roles |
//!
//! After every backup script the object is checked from cutover's side: it exists, its
//! size is the script's, a recorded SHA-256 tag (if any) is the script's, and (unless
//! `verify_readback = false`) its bytes, read back, hash to the script's SHA-256. A
//! restore refuses an artifact from a newer Neo4j, or without a SHA-256, before any
//! script is sent; the script verifies the SHA-256 of the bytes it loads.
//!
//! Backups, restores and Community freezes are started and then polled, one bounded look
//! per call ([`DatabaseEngine::start_backup`] / [`DatabaseEngine::poll_backup`], …): the
//! command, then (offline scripts and freezes) whether Neo4j serves again; the handle is
//! serialisable so a resumed run polls the same command. See docs/engine.md.
//!
//! Passwords never travel in a script: the initial password is read from Secrets
//! Manager by the script itself (`DatabaseEngine::start_prepare_instance`); user
//! passwords go over Bolt as parameters.

use super::bolt_admin::{BoltAdmin, Neo4jBolt};
use super::cypher::{self, Access};
use super::script_runner::{poll_script, start_script, ScriptPoll, ScriptRun};
use super::scripts::{self, Attempt, ChainArtifact};
use super::settings::{BackupMethod, Neo4jSettings};
use super::version::{check_restore_compatible, Edition, Neo4jVersion, ServerInfo};
use crate::db::bolt::BoltTarget;
use crate::db::engine::{drive, BackupArtifact, DatabaseEngine, DbHandle, DbOperation, OpPoll};
use crate::db::EngineKind;
use crate::failure::{ErrorClass, Failure};
use crate::ids::{ObjectKey, SecretName};
use crate::providers::{Exec, ExecHandle, ExecResult, ObjectInfo, ObjectStore, Script};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// How long Neo4j may take for `ALTER`/`STOP`/`START DATABASE … WAIT`.
const CYPHER_WAIT: Duration = Duration::from_secs(120);

/// The neo4j engine. See the module documentation.
pub struct Neo4jEngine {
    exec: Arc<dyn Exec>,
    bolt: Arc<dyn Neo4jBolt>,
    settings: Neo4jSettings,
}

impl Neo4jEngine {
    /// The production engine: scripts through `exec`, Cypher over Bolt with `neo4rs`.
    pub fn new(exec: Arc<dyn Exec>, settings: Neo4jSettings) -> Self {
        Self::with_bolt(exec, Arc::new(BoltAdmin), settings)
    }

    /// With another implementation of the Bolt side (tests: a stand-in server).
    pub fn with_bolt(
        exec: Arc<dyn Exec>,
        bolt: Arc<dyn Neo4jBolt>,
        settings: Neo4jSettings,
    ) -> Self {
        Self {
            exec,
            bolt,
            settings,
        }
    }

    pub fn settings(&self) -> &Neo4jSettings {
        &self.settings
    }

    fn admin_target(&self, db: &DbHandle) -> BoltTarget {
        self.bolt_target(db, &db.admin_user, db.admin_password.clone())
    }

    /// Version and edition as the server reports them; the edition must be the
    /// environment's (cutover picks Enterprise or Community paths from it).
    async fn server(&self, db: &DbHandle) -> Result<ServerInfo, Failure> {
        let info = self.bolt.server_info(&self.admin_target(db)).await?;
        if info.edition != self.settings.edition {
            return Err(Failure::permanent(format!(
                "instance {} runs Neo4j {} {}, but the environment says edition = \"{}\"",
                db.instance.id, info.edition, info.version, self.settings.edition
            ))
            .with_hint("fix `edition` in the environment file, or the image"));
        }
        Ok(info)
    }

    fn attempt(operation: &str, timeout: Duration) -> Attempt {
        Attempt {
            nonce: format!("{operation}-{}", uuid::Uuid::new_v4().simple()),
            timeout,
        }
    }

    /// The attempt the caller named (see [`DatabaseEngine::start_backup`]): its nonce is
    /// `<operation>-<name>`, the same for every start of that attempt, so the exec channel
    /// adopts a command it already sent.
    fn named_attempt(operation: &str, name: &str, timeout: Duration) -> Result<Attempt, Failure> {
        if name.is_empty()
            || name.len() > 64
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(Failure::permanent(format!(
                "attempt name {name:?} is not 1-64 letters, digits or `-`"
            )));
        }
        Ok(Attempt {
            nonce: format!("{operation}-{name}"),
            timeout,
        })
    }

    /// The URI the instance writes `key` to: `s3://…` (aws), or `file://…` (the local
    /// provider's object store, a directory on the same machine).
    fn artifact_uri(objects: &dyn ObjectStore, key: &ObjectKey) -> Result<String, Failure> {
        let uri = objects.location(key);
        if uri.starts_with("s3://") || uri.starts_with("file:///") {
            Ok(uri)
        } else {
            Err(Failure::permanent(format!(
                "the neo4j engine has the instance write backups to S3 or a local directory, but the object store puts {key} at {uri}"
            ))
            .with_hint("use the aws or the local provider for neo4j databases"))
        }
    }

    /// Starts a `neo4j-admin` script and returns its handle. `offline`: on Enterprise the
    /// database is stopped first (and started again by the poll that sees the script end,
    /// also when it failed); on Community the script stops the DBMS itself and starts it
    /// afterwards. Offline scripts end only when the database serves again.
    async fn start_op(
        &self,
        db: &DbHandle,
        info: &ServerInfo,
        script: Script,
        offline: bool,
        create_if_missing: bool,
        purpose: Purpose,
    ) -> Result<DbOperation, Failure> {
        let mut restart_database = false;
        let script = match (offline, info.edition) {
            (false, _) => script,
            (true, Edition::Community) => scripts::stopping_dbms(script),
            (true, Edition::Enterprise) => {
                let target = self.admin_target(db);
                let exists = !self
                    .bolt
                    .show_database(&target, &db.database)
                    .await?
                    .is_empty();
                if exists {
                    self.bolt
                        .execute(
                            &target,
                            &cypher::stop_database(info, &db.database, CYPHER_WAIT)?,
                        )
                        .await?;
                } else if !create_if_missing {
                    return Err(Failure::permanent(format!(
                        "instance {}: database `{}` does not exist",
                        db.instance.id, db.database
                    )));
                }
                restart_database = true;
                script
            }
        };
        let started = start_script(self.exec.as_ref(), &db.instance.id, &script).await;
        let (handle, run) = match started {
            Ok(s) => s,
            Err(f) if restart_database => {
                return Err(self
                    .restart_database(db, info, create_if_missing, &script.name, Err(f))
                    .await
                    .expect_err("a failed outcome stays failed"))
            }
            Err(f) => return Err(f),
        };
        let state = OpState {
            info: info.clone(),
            restart_database,
            create_if_missing,
            // Offline scripts restart the database; the freeze script restarts the server.
            wait_serving: offline || matches!(purpose, Purpose::Freeze),
            script: run,
            phase: Phase::Script,
            purpose,
        };
        Ok(DbOperation {
            operation: script.name.clone(),
            command: Some(handle),
            state: serde_json::to_value(&state).expect("the state serializes"),
        })
    }

    /// Enterprise, after an offline script ended (either way): creates the database if
    /// asked and starts it. Combines the script's outcome with the restart's.
    async fn restart_database(
        &self,
        db: &DbHandle,
        info: &ServerInfo,
        create_if_missing: bool,
        script_name: &str,
        outcome: Result<ExecResult, Failure>,
    ) -> Result<ExecResult, Failure> {
        let target = self.admin_target(db);
        let restart = async {
            if create_if_missing {
                self.bolt
                    .execute(
                        &target,
                        &cypher::create_database_if_not_exists(info, &db.database, CYPHER_WAIT)?,
                    )
                    .await?;
            }
            self.bolt
                .execute(
                    &target,
                    &cypher::start_database(info, &db.database, CYPHER_WAIT)?,
                )
                .await
        }
        .await;
        let hint = Some(format!(
            "start it: START DATABASE `{}` (on system)",
            db.database
        ));
        match (outcome, restart) {
            (Ok(result), Ok(())) => Ok(result),
            (Err(f), Ok(())) => Err(f),
            (Ok(_), Err(r)) => Err(Failure {
                message: format!(
                    "script {script_name} succeeded, but database `{}` on {} did not start again: {}",
                    db.database, db.instance.id, r.message
                ),
                hint,
                ..r
            }),
            (Err(f), Err(r)) => Err(Failure {
                message: format!(
                    "{}; and database `{}` did not start again: {}",
                    f.message, db.database, r.message
                ),
                hint,
                ..f
            }),
        }
    }

    /// One look at an operation started by [`Neo4jEngine::start_op`]: the script's
    /// command, then (offline scripts) whether the database serves queries again, within
    /// `restart_timeout`. `Done` carries the script's result.
    async fn poll_op(&self, db: &DbHandle, op: &mut DbOperation) -> OpPoll<(OpState, ExecResult)> {
        let mut st: OpState = match serde_json::from_value(op.state.clone()) {
            Ok(st) => st,
            Err(e) => {
                return OpPoll::Failed(Failure::permanent(format!(
                    "the journaled handle of {} is not a neo4j operation: {e}",
                    op.operation
                )))
            }
        };
        let Some(handle) = op.command.clone() else {
            return OpPoll::Failed(Failure::permanent(format!(
                "the journaled handle of {} names no command",
                op.operation
            )));
        };
        let status = self.advance_op(db, &handle, &mut st).await;
        op.state = serde_json::to_value(&st).expect("the state serializes");
        match status {
            OpPoll::Done(result) => OpPoll::Done((st, result)),
            OpPoll::Running { after, what } => OpPoll::Running { after, what },
            OpPoll::Failed(f) => OpPoll::Failed(f),
        }
    }

    async fn advance_op(
        &self,
        db: &DbHandle,
        handle: &ExecHandle,
        st: &mut OpState,
    ) -> OpPoll<ExecResult> {
        let policy = &self.settings.poll;
        let now = chrono::Utc::now().timestamp_millis();
        if let Phase::Script = st.phase {
            let past = st.script.past_deadline(policy, now);
            let outcome =
                match poll_script(self.exec.as_ref(), handle, &mut st.script, policy, past).await {
                    ScriptPoll::Running(after) => {
                        return OpPoll::Running {
                            after,
                            what: format!(
                                "script {} running on {} (command {})",
                                st.script.name, handle.instance, handle.id
                            ),
                        }
                    }
                    ScriptPoll::Succeeded(result) => Ok(result),
                    ScriptPoll::Failed(f) => Err(f),
                };
            let outcome = if st.restart_database {
                self.restart_database(db, &st.info, st.create_if_missing, &st.script.name, outcome)
                    .await
            } else {
                outcome
            };
            let result = match outcome {
                Ok(result) => result,
                Err(f) => return OpPoll::Failed(f),
            };
            // The freeze script reports `restarted=false` when neo4j.conf already said so.
            let restarted = result.outputs.get("restarted").map(String::as_str) != Some("false");
            if !st.wait_serving || (matches!(st.purpose, Purpose::Freeze) && !restarted) {
                return OpPoll::Done(result);
            }
            st.phase = Phase::Serving {
                since_ms: now,
                result,
            };
        }
        let Phase::Serving { since_ms, result } = &mut st.phase else {
            unreachable!("the script phase moved on above")
        };
        match self.bolt.probe(&self.admin_target(db)).await {
            Ok(()) => OpPoll::Done(result.clone()),
            Err(f) if f.class == ErrorClass::Permanent => OpPoll::Failed(f),
            Err(f) => {
                let timeout = self.settings.restart_timeout;
                if now > since_ms.saturating_add(timeout.as_millis() as i64) {
                    return OpPoll::Failed(
                        Failure::transient(format!(
                            "{} ({}) did not serve queries within {timeout:?} after script {}: {}",
                            db.instance.id, db.database, st.script.name, f.message
                        ))
                        .with_hint("check the neo4j service on the instance (journalctl -u neo4j)"),
                    );
                }
                let after = policy.delay_since(*since_ms, now);
                OpPoll::Running {
                    after,
                    what: format!(
                        "waiting for Neo4j on {} to serve after script {}: {}",
                        db.instance.id, st.script.name, f.message
                    ),
                }
            }
        }
    }

    /// Checks the uploaded object against what the script reported: it exists, size and
    /// recorded SHA-256 agree, and (with `verify_readback`) its bytes hash to the script's
    /// SHA-256. Any disagreement is permanent: the backup is not trustworthy.
    pub async fn verify_upload(
        &self,
        objects: &dyn ObjectStore,
        key: &ObjectKey,
        script: &ScriptRun,
        result: &ExecResult,
    ) -> Result<ObjectInfo, Failure> {
        let location = objects.location(key);
        let bad = |what: String| {
            Failure::permanent(format!(
                "backup {location} (script {}, attempt {}): {what}",
                script.name, script.nonce
            ))
            .with_hint("do not use this backup; take a new one")
        };
        let sha = result
            .outputs
            .get("sha256")
            .filter(|s| s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()))
            .map(|s| s.to_ascii_lowercase())
            .ok_or_else(|| bad("the script reported no SHA-256".into()))?;
        let size: u64 = result
            .outputs
            .get("size_bytes")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("the script reported no size".into()))?;
        if let Some(reported) = result.outputs.get("artifact_uri") {
            if reported != &location {
                return Err(bad(format!("the script uploaded to {reported}")));
            }
        }
        let head = objects.head(key).await?.ok_or_else(|| {
            bad("the script reported an upload, but the object does not exist".into())
        })?;
        if head.size != size {
            return Err(bad(format!(
                "size mismatch: the script streamed {size} bytes, the stored object has {}",
                head.size
            )));
        }
        if let Some(recorded) = &head.sha256 {
            if !recorded.eq_ignore_ascii_case(&sha) {
                return Err(bad(format!(
                    "checksum mismatch: the script computed sha256 {sha}, the object records {recorded}"
                )));
            }
        }
        if self.settings.verify_readback {
            let (actual, read) = hash_stream(objects, key).await?;
            if read != size || actual != sha {
                return Err(bad(format!(
                    "checksum mismatch: the script computed sha256 {sha} over {size} bytes, the stored object reads back as sha256 {actual} over {read} bytes"
                )));
            }
        }
        if head.sha256.is_none() {
            // Uploaded by the instance (`aws s3 cp`): the object gets the SHA-256 the
            // store's own uploads carry (on S3 the `cutover-sha256` tag), beside the
            // manifest's copy, so `head` and a restore's check can read it.
            objects.record_sha256(key, &sha).await?;
        }
        Ok(ObjectInfo {
            key: key.clone(),
            size,
            sha256: Some(sha),
            last_modified: head.last_modified,
        })
    }
}

/// What a started neo4j operation journals in [`DbOperation::state`].
#[derive(Clone, Debug, Serialize, Deserialize)]
struct OpState {
    info: ServerInfo,
    /// Enterprise offline scripts: the database was stopped and is started again when
    /// the script ends.
    restart_database: bool,
    create_if_missing: bool,
    /// Offline scripts end only when the database serves again.
    wait_serving: bool,
    script: ScriptRun,
    phase: Phase,
    purpose: Purpose,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
enum Phase {
    /// The command runs.
    Script,
    /// The command succeeded; the database restarts.
    /// (No probe count: the delay follows the time since `since_ms`, so a probe that
    /// finds the server still starting changes nothing the step must journal.)
    Serving { since_ms: i64, result: ExecResult },
}

/// What the end of the operation checks.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Purpose {
    /// The uploaded object against the script's report.
    Backup { key: ObjectKey, format: String },
    /// The script's report of a verified load.
    Restore { format: String, sha256: String },
    /// Nothing beyond the script (and the restart it caused).
    Freeze,
}

/// SHA-256 and length of an object, streamed (bounded memory).
async fn hash_stream(objects: &dyn ObjectStore, key: &ObjectKey) -> Result<(String, u64), Failure> {
    let mut stream = objects.get_stream(key).await?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total: u64 = 0;
    loop {
        let n = stream.read(&mut buf).await.map_err(|e| {
            Failure::transient(format!("reading back {}: {e}", objects.location(key)))
        })?;
        if n == 0 {
            break;
        }
        total += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((hex::encode(hasher.finalize()), total))
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit())
}

#[async_trait]
impl DatabaseEngine for Neo4jEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Neo4j
    }

    /// `load-from-s3.sh` and `restore-from-s3.sh` download the artifact on the instance,
    /// compare its SHA-256 with the manifest's and stop before loading on a mismatch.
    fn verifies_artifact_where_it_loads(&self) -> bool {
        true
    }

    async fn version(&self, db: &DbHandle) -> Result<String, Failure> {
        Ok(self.server(db).await?.version.to_string())
    }

    async fn health(&self, db: &DbHandle) -> Result<(), Failure> {
        self.bolt.probe(&self.admin_target(db)).await
    }

    async fn freeze(&self, db: &DbHandle) -> Result<(), Failure> {
        let op = self.start_set_frozen(db, true).await?;
        drive(op, |mut op| async move {
            let status = self.poll_set_frozen(db, &mut op).await;
            (op, status)
        })
        .await
    }

    async fn unfreeze(&self, db: &DbHandle) -> Result<(), Failure> {
        let op = self.start_set_frozen(db, false).await?;
        drive(op, |mut op| async move {
            let status = self.poll_set_frozen(db, &mut op).await;
            (op, status)
        })
        .await
    }

    /// Enterprise: `ALTER DATABASE … SET ACCESS`, done at once. Community: freezing an
    /// already frozen database does nothing; otherwise `community-freeze.sh` is started
    /// (unfreeze always runs it: it removes cutover's block even if an earlier freeze
    /// wrote it but its restart failed; it restarts only when the file changes) and
    /// polled until the restarted server serves.
    async fn start_set_frozen(&self, db: &DbHandle, frozen: bool) -> Result<DbOperation, Failure> {
        let info = self.server(db).await?;
        let operation = if frozen {
            "neo4j-freeze"
        } else {
            "neo4j-unfreeze"
        };
        let done = DbOperation {
            operation: operation.into(),
            command: None,
            state: serde_json::Value::Null,
        };
        match info.edition {
            Edition::Enterprise => {
                let access = if frozen {
                    Access::ReadOnly
                } else {
                    Access::ReadWrite
                };
                let stmt = cypher::set_access(&info, &db.database, access, Some(CYPHER_WAIT))?;
                self.bolt.execute(&self.admin_target(db), &stmt).await?;
                Ok(done)
            }
            Edition::Community => {
                if frozen && self.is_frozen(db).await? {
                    return Ok(done);
                }
                let attempt = Self::attempt(operation, self.settings.command_timeout);
                let script = scripts::community_freeze(&info, &db.database, frozen, &attempt)?;
                self.start_op(db, &info, script, false, false, Purpose::Freeze)
                    .await
            }
        }
    }

    async fn poll_set_frozen(&self, db: &DbHandle, op: &mut DbOperation) -> OpPoll<()> {
        if op.command.is_none() {
            return OpPoll::Done(());
        }
        match self.poll_op(db, op).await {
            OpPoll::Done(_) => OpPoll::Done(()),
            OpPoll::Running { after, what } => OpPoll::Running { after, what },
            OpPoll::Failed(f) => OpPoll::Failed(f),
        }
    }

    async fn is_frozen(&self, db: &DbHandle) -> Result<bool, Failure> {
        let info = self.server(db).await?;
        let target = self.admin_target(db);
        match info.edition {
            Edition::Enterprise => {
                let rows = self.bolt.show_database(&target, &db.database).await?;
                if rows.is_empty() {
                    return Err(Failure::permanent(format!(
                        "instance {}: database `{}` does not exist",
                        db.instance.id, db.database
                    )));
                }
                Ok(rows.iter().all(|r| r.access == "read-only"))
            }
            Edition::Community => Ok(self
                .bolt
                .read_only_setting(&target)
                .await?
                .map(|v| cypher::read_only_setting_lists(&v, &db.database))
                .unwrap_or(false)),
        }
    }

    async fn start_backup(
        &self,
        db: &DbHandle,
        objects: &dyn ObjectStore,
        key: &ObjectKey,
        attempt: &str,
    ) -> Result<DbOperation, Failure> {
        let uri = Self::artifact_uri(objects, key)?;
        let info = self.server(db).await?;
        let method = self.settings.backup;
        let attempt = Self::named_attempt("neo4j-backup", attempt, self.settings.backup_timeout)?;
        let purpose = Purpose::Backup {
            key: key.clone(),
            format: method.format().into(),
        };
        match method {
            BackupMethod::OnlineFull => {
                let script =
                    scripts::online_full_backup_to_s3(&info, &db.database, &uri, &attempt)?;
                self.start_op(db, &info, script, false, false, purpose)
                    .await
            }
            BackupMethod::Dump => {
                let script = scripts::dump_to_s3(&info, &db.database, &uri, &attempt)?;
                self.start_op(db, &info, script, true, false, purpose).await
            }
        }
    }

    async fn poll_backup(
        &self,
        db: &DbHandle,
        objects: &dyn ObjectStore,
        op: &mut DbOperation,
    ) -> OpPoll<BackupArtifact> {
        let (st, result) = match self.poll_op(db, op).await {
            OpPoll::Done(done) => done,
            OpPoll::Running { after, what } => return OpPoll::Running { after, what },
            OpPoll::Failed(f) => return OpPoll::Failed(f),
        };
        let Purpose::Backup { key, format } = &st.purpose else {
            return OpPoll::Failed(Failure::permanent(format!(
                "{} is not a backup",
                op.operation
            )));
        };
        match self.verify_upload(objects, key, &st.script, &result).await {
            Ok(object) => OpPoll::Done(BackupArtifact {
                object,
                engine: EngineKind::Neo4j,
                engine_version: st.info.version.to_string(),
                format: format.clone(),
            }),
            Err(f) => OpPoll::Failed(f),
        }
    }

    async fn start_restore(
        &self,
        db: &DbHandle,
        objects: &dyn ObjectStore,
        artifact: &BackupArtifact,
        attempt_name: &str,
    ) -> Result<DbOperation, Failure> {
        let location = objects.location(&artifact.object.key);
        if artifact.engine != EngineKind::Neo4j {
            return Err(Failure::permanent(format!(
                "{location} is an {} backup; the neo4j engine restores only neo4j backups",
                artifact.engine
            )));
        }
        let expected = artifact
            .object
            .sha256
            .clone()
            .filter(|s| is_sha256(s))
            .ok_or_else(|| {
                Failure::permanent(format!(
                    "{location}: the artifact records no SHA-256; refusing to restore an unverifiable backup"
                ))
            })?;
        let artifact_version: Neo4jVersion = artifact
            .engine_version
            .parse()
            .map_err(|e: Failure| Failure::permanent(format!("{location}: {}", e.message)))?;
        // Everything below is refused before a single script is sent.
        let info = self.server(db).await?;
        check_restore_compatible(artifact_version, info.version).map_err(|f| Failure {
            message: format!("instance {}: {}", db.instance.id, f.message),
            ..f
        })?;
        let uri = Self::artifact_uri(objects, &artifact.object.key)?;
        let attempt =
            Self::named_attempt("neo4j-restore", attempt_name, self.settings.restore_timeout)?;
        let script = match artifact.format.as_str() {
            "dump" => scripts::load_from_s3(
                &info,
                artifact_version,
                &db.database,
                &uri,
                &expected,
                &Self::artifact_uri(objects, &check_report_key(&artifact.object.key, &attempt))?,
                &attempt,
            )?,
            "online-full" => scripts::restore_from_s3(
                &info,
                artifact_version,
                &db.database,
                &[ChainArtifact {
                    uri: uri.clone(),
                    sha256: expected.clone(),
                }],
                &attempt,
            )?,
            other => {
                return Err(Failure::permanent(format!(
                "{location} is a neo4j `{other}` backup; cutover restores `dump` and `online-full`"
            )))
            }
        };
        let purpose = Purpose::Restore {
            format: artifact.format.clone(),
            sha256: expected,
        };
        self.start_op(db, &info, script, true, true, purpose).await
    }

    async fn poll_restore(
        &self,
        db: &DbHandle,
        objects: &dyn ObjectStore,
        artifact: &BackupArtifact,
        op: &mut DbOperation,
    ) -> OpPoll<()> {
        let (st, result) = match self.poll_op(db, op).await {
            OpPoll::Done(done) => done,
            OpPoll::Running { after, what } => return OpPoll::Running { after, what },
            OpPoll::Failed(f) => return OpPoll::Failed(f),
        };
        let location = objects.location(&artifact.object.key);
        let Purpose::Restore { format, sha256 } = &st.purpose else {
            return OpPoll::Failed(Failure::permanent(format!(
                "{} is not a restore",
                op.operation
            )));
        };
        // The script verified the bytes it loaded and checked them; make sure it says so.
        let verified = match format.as_str() {
            "dump" => {
                result
                    .outputs
                    .get("sha256")
                    .is_some_and(|s| s.eq_ignore_ascii_case(sha256))
                    && result.outputs.get("consistent").map(String::as_str) == Some("true")
                    && result.outputs.get("loaded").map(String::as_str) == Some("true")
            }
            _ => {
                result.outputs.get("artifacts_verified").map(String::as_str) == Some("1")
                    && result.outputs.get("restored").map(String::as_str) == Some("true")
            }
        };
        if !verified {
            return OpPoll::Failed(Failure::permanent(format!(
                "script {} on {} exited 0 but did not report a verified load of {location} (outputs: {:?})",
                st.script.name, db.instance.id, result.outputs
            ))
            .with_hint("treat the restored database as untrusted; restore into a new instance"));
        }
        OpPoll::Done(())
    }

    async fn set_user_password(
        &self,
        db: &DbHandle,
        user: &str,
        password: &SecretString,
    ) -> Result<(), Failure> {
        if user == db.admin_user {
            if password.expose_secret() == db.admin_password.expose_secret() {
                return Ok(());
            }
            return Err(Failure::permanent(format!(
                "the application user `{user}` on {} is cutover's administrator; changing its password would lock cutover out",
                db.instance.id
            ))
            .with_hint("give the application its own user (`user = \"…\"` in the environment), or point the instance's cutover:admin-secret tag at the application's secret"));
        }
        let info = self.server(db).await?;
        let target = self.admin_target(db);
        self.bolt
            .execute(
                &target,
                &cypher::create_user_if_not_exists(user, password.clone())?,
            )
            .await?;
        match self
            .bolt
            .execute(
                &target,
                &cypher::alter_user_password(user, password.clone())?,
            )
            .await
        {
            Ok(()) => {}
            // Neo4j refuses to "change" a password to the one the user already has (the
            // user was just created with it, or a retry): that is the state wanted.
            Err(f)
                if f.message
                    .contains("Old password and new password cannot be the same") => {}
            Err(f) => return Err(f),
        }
        if info.edition == Edition::Enterprise {
            for role in &self.settings.app_roles {
                self.bolt
                    .execute(&target, &cypher::grant_role(&info, role, user)?)
                    .await?;
            }
        }
        Ok(())
    }

    /// Sends the script that sets the built-in `neo4j` user's initial password before Neo4j
    /// first starts, and starts it: the script reads the password from Secrets Manager
    /// (`admin_secret`, stage AWSCURRENT, JSON key `admin_secret_key` when set), so it is
    /// never in anything cutover sends.
    async fn start_prepare_instance(
        &self,
        instance: &crate::providers::Instance,
        admin_secret: &SecretName,
    ) -> Result<DbOperation, Failure> {
        let attempt = Self::attempt("neo4j-initial-password", self.settings.command_timeout);
        let script = scripts::set_initial_password(
            admin_secret.as_str(),
            "AWSCURRENT",
            self.settings.admin_secret_key.as_deref(),
            &attempt,
        )?;
        let (handle, run) = start_script(self.exec.as_ref(), &instance.id, &script).await?;
        Ok(DbOperation {
            operation: "neo4j-initial-password".into(),
            command: Some(handle),
            state: serde_json::json!({ "script": run }),
        })
    }

    async fn poll_prepare_instance(&self, op: &mut DbOperation) -> OpPoll<()> {
        let Some(handle) = op.command.clone() else {
            return OpPoll::Done(());
        };
        let mut run: ScriptRun = match serde_json::from_value(op.state["script"].clone()) {
            Ok(run) => run,
            Err(e) => {
                return OpPoll::Failed(Failure::permanent(format!(
                    "the journaled {} operation cannot be read: {e}",
                    op.operation
                )))
            }
        };
        let policy = &self.settings.poll;
        let late = run.past_deadline(policy, chrono::Utc::now().timestamp_millis());
        let polled = poll_script(self.exec.as_ref(), &handle, &mut run, policy, late).await;
        op.state = serde_json::json!({ "script": run });
        let instance = &handle.instance;
        match polled {
            ScriptPoll::Running(after) => OpPoll::Running {
                after,
                what: format!("setting the initial password on {instance} and starting Neo4j"),
            },
            ScriptPoll::Failed(f) => OpPoll::Failed(f),
            ScriptPoll::Succeeded(result) => {
                match result.outputs.get("password_set").map(String::as_str) {
                    Some("true") => OpPoll::Done(()),
                    // Neo4j already had users (a retry after success): the caller's login
                    // proves it holds this secret's password, or fails saying it does not.
                    Some("already") => {
                        tracing::info!(instance = %instance, "neo4j already had its initial password; the login check decides");
                        OpPoll::Done(())
                    }
                    _ => OpPoll::Failed(Failure::permanent(format!(
                        "script {} on {instance} finished without reporting password_set",
                        run.name
                    ))),
                }
            }
        }
    }

    fn bolt_target(&self, db: &DbHandle, user: &str, password: SecretString) -> BoltTarget {
        let uri = db
            .instance
            .endpoints
            .get("bolt")
            .cloned()
            .unwrap_or_else(|| {
                // `.invalid` never resolves (RFC 2606): a missing address fails loudly
                // instead of reaching some other server.
                let host = db
                    .instance
                    .address
                    .clone()
                    .unwrap_or_else(|| format!("{}.no-address.invalid", db.instance.id));
                format!(
                    "{}://{host}:{}",
                    self.settings.bolt_scheme, self.settings.bolt_port
                )
            });
        BoltTarget {
            uri,
            user: user.to_owned(),
            password,
            database: Some(db.database.clone()),
        }
    }
}

/// Where the consistency check of a restore attempt puts its reports: beside the artifact,
/// `…/<database>/check-reports/<attempt nonce>/` (never `manifest.json`, so backup
/// selection ignores it).
fn check_report_key(artifact: &ObjectKey, attempt: &Attempt) -> ObjectKey {
    let dir = artifact
        .as_str()
        .rsplit_once('/')
        .map_or("", |(dir, _)| dir);
    ObjectKey::new(format!("{dir}/check-reports/{}", attempt.nonce))
}
