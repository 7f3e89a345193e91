//! What the database steps share: finding a database's settings in the environment,
//! building a [`DbHandle`] for an instance (the administrator's password comes from the
//! secret store, never from inputs) and picking the engine.

use super::{Decision, StepContext};
use crate::config::environment::DatabaseDef;
use crate::db::bolt::BoltTarget;
use crate::db::{DatabaseEngine, DbHandle, DbOperation, EngineKind, OpPoll};
use crate::failure::Failure;
use crate::ids::{DatabaseName, InstanceId, SecretName};
use crate::integrity::fingerprint::FingerprintOptions;
use crate::providers::{Instance, SecretStage};
use secrecy::SecretString;
use std::sync::Arc;

/// Tag (or endpoint) naming the secret that holds an instance's administrator password.
pub const ADMIN_SECRET_TAG: &str = "cutover:admin-secret";
/// Tag naming an instance's administrator user.
pub const ADMIN_USER_TAG: &str = "cutover:admin-user";

/// The environment's definition of `database`, or a permanent failure naming the fix.
pub fn database_def<'a>(ctx: &'a StepContext, database: &str) -> Result<&'a DatabaseDef, Failure> {
    ctx.environment()
        .databases
        .get(&DatabaseName::new(database))
        .ok_or_else(|| {
            let known: Vec<&str> = ctx
                .environment()
                .databases
                .keys()
                .map(|d| d.as_str())
                .collect();
            Failure::permanent(format!(
                "step {}: environment `{}` has no database `{database}` (it has: {})",
                ctx.step_id,
                ctx.environment().name,
                known.join(", ")
            ))
            .with_hint(format!(
                "add [databases.{database}] to {} or fix the runbook",
                ctx.environment().source.path.display()
            ))
        })
}

/// The engine for `def`, built from the run's providers and the database's settings.
///
/// - `arcadedb`: the local rehearsal engine (no settings).
/// - `neo4j`: needs the provider's exec channel (`aws`: SSM Run Command; `local`: a shell
///   on this machine, [`crate::providers::local::LocalExec`]) and reads the
///   environment's `edition` and optional `neo4j = { … }` table
///   ([`crate::db::neo4j::Neo4jSettings`]).
pub fn engine_for(
    ctx: &StepContext,
    def: &DatabaseDef,
) -> Result<Arc<dyn DatabaseEngine>, Failure> {
    let engine = engine_of(ctx, def)?;
    Ok(match super::hooks::installed() {
        Some(hooks) => hooks.engine(&ctx.step_id, engine, ctx.providers().ok()),
        None => engine,
    })
}

fn engine_of(ctx: &StepContext, def: &DatabaseDef) -> Result<Arc<dyn DatabaseEngine>, Failure> {
    #[cfg(test)]
    if let Some(engine) = test_engine::get() {
        return Ok(engine);
    }
    match &def.engine {
        crate::db::EngineSettings::Arcadedb => {
            Ok(Arc::new(crate::db::arcadedb::ArcadeEngine::new()))
        }
        crate::db::EngineSettings::Neo4j(settings) => {
            let exec = ctx.providers()?.exec.clone().ok_or_else(|| {
                Failure::permanent(format!(
                    "step {}: database `{}` runs neo4j, which cutover drives through the provider's exec channel, but environment `{}` (provider {:?}) has none",
                    ctx.step_id,
                    def.name,
                    ctx.environment().name,
                    ctx.environment().provider
                ))
                .with_hint(format!(
                    "use provider = \"aws\" for neo4j databases, or engine = \"arcadedb\" to rehearse locally ({})",
                    ctx.environment().source.path.display()
                ))
            })?;
            let mut settings = settings.clone();
            if ctx.environment().provider == crate::config::ProviderKind::Local {
                // Scripts run on this machine: their results are files, polled quickly.
                settings.poll = crate::db::neo4j::script_runner::PollPolicy::local();
            }
            Ok(Arc::new(crate::db::neo4j::Neo4jEngine::new(exec, settings)))
        }
    }
}

/// Unit tests of the steps put a fake engine here (per thread: a `#[tokio::test]` runs
/// on its own thread); compiled into test builds only.
#[cfg(test)]
pub mod test_engine {
    use crate::db::DatabaseEngine;
    use std::cell::RefCell;
    use std::sync::Arc;

    thread_local! {
        static ENGINE: RefCell<Option<Arc<dyn DatabaseEngine>>> = const { RefCell::new(None) };
    }

    pub fn set(engine: Arc<dyn DatabaseEngine>) {
        ENGINE.with(|e| *e.borrow_mut() = Some(engine));
    }

    pub fn get() -> Option<Arc<dyn DatabaseEngine>> {
        ENGINE.with(|e| e.borrow().clone())
    }
}

/// The administrator's user name: the instance's `cutover:admin-user` tag, else the
/// engine's built-in administrator (`neo4j` for Neo4j, `root` for ArcadeDB).
pub fn admin_user(instance: &Instance, engine: EngineKind) -> String {
    instance
        .tags
        .get(ADMIN_USER_TAG)
        .cloned()
        .unwrap_or_else(|| match engine {
            EngineKind::Neo4j => "neo4j".into(),
            EngineKind::Arcadedb => "root".into(),
        })
}

/// Looks an instance up; a missing one is permanent (it was removed behind our back).
pub async fn instance(ctx: &StepContext, id: &str) -> Result<Instance, Failure> {
    let providers = ctx.providers()?;
    providers
        .compute
        .describe(&InstanceId::new(id))
        .await?
        .ok_or_else(|| {
            Failure::permanent(format!(
                "step {}: instance {id} does not exist",
                ctx.step_id
            ))
            .with_hint("the instance was removed; run the runbook again to create a new one")
        })
}

/// The secret naming an instance's administrator password.
pub fn admin_secret_name(instance: &Instance) -> SecretName {
    instance
        .tags
        .get(ADMIN_SECRET_TAG)
        .or_else(|| instance.endpoints.get("admin_secret"))
        .map(|s| SecretName::new(s.clone()))
        .unwrap_or_else(|| crate::providers::local::root_secret_name(&instance.id))
}

/// [`admin_secret_name`], but a Neo4j instance must carry the tag: there is no
/// provider-made default secret for it.
pub fn admin_secret_for(instance: &Instance, engine: EngineKind) -> Result<SecretName, Failure> {
    if engine == EngineKind::Neo4j
        && !instance.tags.contains_key(ADMIN_SECRET_TAG)
        && !instance.endpoints.contains_key("admin_secret")
    {
        return Err(Failure::permanent(format!(
            "instance {} has no {ADMIN_SECRET_TAG} tag naming the secret with its Neo4j administrator password",
            instance.id
        ))
        .with_hint(format!(
            "tag the instance with {ADMIN_SECRET_TAG}=<Secrets Manager secret name>"
        )));
    }
    Ok(admin_secret_name(instance))
}

pub async fn current_secret(ctx: &StepContext, name: &SecretName) -> Result<SecretString, Failure> {
    let providers = ctx.providers()?;
    providers
        .secrets
        .get(name, SecretStage::Current)
        .await?
        .map(|v| v.value)
        .ok_or_else(|| {
            Failure::permanent(format!("secret {name} has no current version"))
                .with_hint("create it, or check the environment's secret names")
        })
}

/// The administrator's password of `instance`: its admin secret's current value, or one
/// key of it when the secret is JSON (`neo4j = { admin_secret_key = … }`, the same key
/// the instance's own scripts read).
async fn admin_password(
    ctx: &StepContext,
    def: &DatabaseDef,
    instance: &Instance,
) -> Result<SecretString, Failure> {
    use secrecy::ExposeSecret;
    let name = admin_secret_for(instance, def.kind())?;
    let value = current_secret(ctx, &name).await?;
    let key = match &def.engine {
        crate::db::EngineSettings::Neo4j(settings) => settings.admin_secret_key.as_deref(),
        crate::db::EngineSettings::Arcadedb => None,
    };
    let Some(key) = key else {
        return Ok(value);
    };
    serde_json::from_str::<serde_json::Value>(value.expose_secret())
        .ok()
        .and_then(|doc| doc.get(key).and_then(|v| v.as_str()).map(str::to_owned))
        .map(SecretString::from)
        .ok_or_else(|| {
            Failure::permanent(format!(
                "secret {name} is not a JSON object with a string `{key}` (admin_secret_key)"
            ))
            .with_hint("fix the secret or the database's neo4j.admin_secret_key setting")
        })
}

/// Everything a step needs to talk to one database on one instance.
pub struct DbRef {
    pub def: DatabaseDef,
    pub engine: Arc<dyn DatabaseEngine>,
    pub handle: DbHandle,
}

impl DbRef {
    /// Freezes or unfreezes the database as a journaled operation under `key` of the
    /// step's checkpoint (other fields are kept): intent, start (the engine's handle
    /// saved), polls. `Some(wait)` while the engine's command runs; `None` once it is
    /// done, which is recorded as `key: true` so a step that goes on to other work (the
    /// next database) never sends it again. A resumed step polls the recorded command
    /// instead of sending another. A failed command leaves `key: null`: the next
    /// attempt starts afresh; so must a caller whose own check finds the database in
    /// the wrong state ([`DbRef::forget_set_frozen`]).
    pub async fn set_frozen(
        &self,
        ctx: &StepContext,
        key: &str,
        frozen: bool,
    ) -> Result<Option<Decision>, Failure> {
        let (database, instance) = (&self.def.name, &self.handle.instance.id);
        let recorded = ctx
            .checkpoint()
            .and_then(|c| c.get(key).cloned())
            .filter(|v| !v.is_null());
        let mut op: DbOperation = match recorded {
            Some(serde_json::Value::Bool(true)) => return Ok(None),
            Some(v) => serde_json::from_value(v).map_err(|e| {
                Failure::permanent(format!(
                    "step {}: the journaled {key} command cannot be read: {e}",
                    ctx.step_id
                ))
            })?,
            None => {
                let action = if frozen { "db.freeze" } else { "db.unfreeze" };
                ctx.record_intent(
                    action,
                    serde_json::json!({ "database": database, "instance": instance }),
                )?;
                let op = self.engine.start_set_frozen(&self.handle, frozen).await?;
                ctx.update_checkpoint(key, serde_json::json!(op))?;
                op
            }
        };
        let before = op.clone();
        match self.engine.poll_set_frozen(&self.handle, &mut op).await {
            OpPoll::Running { after, what } => {
                if op != before {
                    ctx.update_checkpoint(key, serde_json::json!(op))?;
                }
                let doing = if frozen { "freeze" } else { "unfreeze" };
                Ok(Some(Decision::wait(
                    after,
                    format!("{doing} of {database} on {instance}: {what}"),
                )))
            }
            OpPoll::Done(()) => {
                ctx.update_checkpoint(key, serde_json::Value::Bool(true))?;
                Ok(None)
            }
            OpPoll::Failed(f) => {
                self.forget_set_frozen(ctx, key)?;
                Err(f)
            }
        }
    }

    /// Forgets the freeze or unfreeze recorded under `key`, so the next
    /// [`DbRef::set_frozen`] sends it again.
    pub fn forget_set_frozen(&self, ctx: &StepContext, key: &str) -> Result<(), Failure> {
        ctx.update_checkpoint(key, serde_json::Value::Null)
    }

    pub async fn open(
        ctx: &StepContext,
        database: &str,
        instance_id: &str,
    ) -> Result<DbRef, Failure> {
        let def = database_def(ctx, database)?.clone();
        let engine = engine_for(ctx, &def)?;
        let instance = instance(ctx, instance_id).await?;
        let admin_password = admin_password(ctx, &def, &instance).await?;
        let admin_user = admin_user(&instance, def.kind());
        let handle = DbHandle {
            instance,
            database: def.database.clone(),
            admin_user,
            admin_password,
        };
        Ok(DbRef {
            def,
            engine,
            handle,
        })
    }

    /// The administrator's Bolt target (for fingerprints and checks).
    pub fn admin_target(&self) -> BoltTarget {
        self.engine.bolt_target(
            &self.handle,
            &self.handle.admin_user,
            self.handle.admin_password.clone(),
        )
    }

    pub fn bolt_uri(&self) -> String {
        self.admin_target().uri
    }

    /// The graph fingerprint of this database as the administrator reads it now, with
    /// the environment's identity keys; `what` names it in errors ("green ledger").
    pub async fn fingerprint(
        &self,
        ctx: &StepContext,
        what: &str,
    ) -> Result<crate::integrity::fingerprint::Fingerprint, Failure> {
        let meter = ctx.work_meter("records");
        let options = self.fingerprint_options();
        crate::integrity::fingerprint::fingerprint_target(&self.admin_target(), &options, &meter)
            .await
            .map_err(|e| Failure::from(e).context(format_args!("fingerprint of {what}")))
    }

    /// How this database's fingerprints are read: two sessions, the environment's
    /// identity keys.
    /// Read with [`FINGERPRINT_SESSIONS`] Bolt sessions and the database's identity keys.
    pub fn fingerprint_options(&self) -> FingerprintOptions {
        FingerprintOptions {
            parallelism: FINGERPRINT_SESSIONS,
            identity_keys: self.def.identity_keys.clone(),
            ..FingerprintOptions::default()
        }
    }
}

/// Bolt sessions a step's fingerprint reads in parallel: `cutover digest`'s default. The
/// fingerprints of frozen blue and of green are most of a freeze window (`make
/// bench-freeze`); frozen blue's 1M-record ledger took 54.3 s with 2 sessions and 48.2 s
/// with 4 (one run each, on 2 cores).
pub const FINGERPRINT_SESSIONS: usize = 4;

/// The app's job running on `db` now, if any: `"DCO"` or `"MTQ"`, from the flags on the
/// active Daynode (credex's daily jobs; CREDEX-MODEL.md). A database without Daynodes has
/// no such jobs.
pub async fn running_job(db: &DbRef) -> Result<Option<&'static str>, Failure> {
    let uri = db.bolt_uri();
    let graph = db.admin_target().connect(1).await?;
    crate::db::bolt::short_call(&uri, async {
        let q = neo4rs::query(
            "MATCH (d:Daynode) WHERE d.Active = true RETURN coalesce(d.DCOrunningNow, false) AS dco, coalesce(d.MTQrunningNow, false) AS mtq",
        );
        let classify = |e: neo4rs::Error| crate::db::bolt::classify_bolt_error(&uri, &e);
        let mut rows = graph.execute(q).await.map_err(classify)?;
        while let Some(row) = rows.next().await.map_err(classify)? {
            if row.get("dco").unwrap_or(false) {
                return Ok(Some("DCO"));
            }
            if row.get("mtq").unwrap_or(false) {
                return Ok(Some("MTQ"));
            }
        }
        Ok(None)
    })
    .await
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Provider settings for a new instance of `def`: its `instance` table, plus (locally)
/// `heap_mb` from `heap`.
pub fn instance_settings(def: &DatabaseDef) -> serde_json::Value {
    let mut settings = def.instance.clone();
    if let Some(mb) = def.heap_mb {
        settings.insert("heap_mb".into(), mb.into());
    }
    serde_json::Value::Object(settings)
}

pub fn parse_duration(text: &str) -> Result<std::time::Duration, Failure> {
    crate::config::toml_read::parse_duration(text).map_err(Failure::permanent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Environment, SourceFile};

    fn def(table: &str) -> DatabaseDef {
        let text = format!("name = \"t\"\nprovider = \"local\"\n[databases.ledger]\nengine = \"arcadedb\"\n{table}\n");
        let env = Environment::parse(SourceFile::new("t.toml", text)).expect("valid environment");
        env.databases[&DatabaseName::new("ledger")].clone()
    }

    #[test]
    fn heap_becomes_heap_mb_and_the_instance_table_is_kept() {
        let s = instance_settings(&def("heap = \"320m\"\ninstance = { bolt_port = 7700 }"));
        assert_eq!(s, serde_json::json!({ "heap_mb": 320, "bolt_port": 7700 }));
        let s = instance_settings(&def("heap = \"1g\""));
        assert_eq!(s["heap_mb"], 1024);
        assert_eq!(instance_settings(&def("")), serde_json::json!({}));
    }
}
