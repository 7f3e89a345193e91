//! What the database steps share: finding a database's settings in the environment,
//! building a [`DbHandle`] for an instance (the administrator's password comes from the
//! secret store, never from inputs), picking the engine, and failure points for tests.

use super::StepContext;
use crate::config::environment::DatabaseDef;
use crate::db::bolt::BoltTarget;
use crate::db::{DatabaseEngine, DbHandle, EngineKind};
use crate::failure::Failure;
use crate::ids::{DatabaseName, InstanceId, SecretName};
use crate::integrity::answers::SameAnswersQuery;
use crate::integrity::fingerprint::{FingerprintOptions, IdentityKey};
use crate::integrity::invariants::Invariant;
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

pub fn setting_str<'a>(def: &'a DatabaseDef, key: &str) -> Option<&'a str> {
    def.settings.get(key).and_then(|v| v.as_str())
}

/// The database's name inside the server (`database = …`, default: its name in the
/// environment).
pub fn inner_name(def: &DatabaseDef) -> String {
    setting_str(def, "database")
        .map(str::to_owned)
        .unwrap_or_else(|| def.name.as_str().to_owned())
}

/// The application's user for this database (`user = …`, default `cutover_app`).
pub fn app_user(def: &DatabaseDef) -> String {
    setting_str(def, "user")
        .map(str::to_owned)
        .unwrap_or_else(|| "cutover_app".into())
}

/// The secret holding the application's password (`password_secret`).
pub fn app_password_secret(ctx: &StepContext, def: &DatabaseDef) -> SecretName {
    SecretName::new(
        setting_str(def, "password_secret")
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{}/{}/app-password", ctx.environment().name, def.name)),
    )
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
    #[cfg(test)]
    if let Some(engine) = test_engine::get() {
        return Ok(engine);
    }
    match def.engine {
        EngineKind::Arcadedb => Ok(Arc::new(crate::db::arcadedb::ArcadeEngine::new())),
        EngineKind::Neo4j => {
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
            let mut settings = neo4j_settings(def).map_err(|f| {
                f.with_hint(format!(
                    "fix [databases.{}] in {}",
                    def.name,
                    ctx.environment().source.path.display()
                ))
            })?;
            if ctx.environment().provider == crate::config::ProviderKind::Local {
                // Scripts run on this machine: their results are files, polled quickly.
                settings.poll = crate::db::neo4j::exec_driver::PollPolicy::local();
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

/// The neo4j engine's settings for `def`: its `edition` and its `neo4j` table.
pub fn neo4j_settings(def: &DatabaseDef) -> Result<crate::db::neo4j::Neo4jSettings, Failure> {
    let edition = match def.edition {
        crate::config::environment::Edition::Community => crate::db::neo4j::Edition::Community,
        crate::config::environment::Edition::Enterprise => crate::db::neo4j::Edition::Enterprise,
    };
    crate::db::neo4j::Neo4jSettings::from_table(
        edition,
        def.settings.get("neo4j"),
        def.name.as_str(),
    )
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
    let name = admin_secret_for(instance, def.engine)?;
    let value = current_secret(ctx, &name).await?;
    let key = def
        .settings
        .get("neo4j")
        .and_then(|n| n.get("admin_secret_key"))
        .and_then(|k| k.as_str());
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
    pub async fn open(
        ctx: &StepContext,
        database: &str,
        instance_id: &str,
    ) -> Result<DbRef, Failure> {
        let def = database_def(ctx, database)?.clone();
        let engine = engine_for(ctx, &def)?;
        let instance = instance(ctx, instance_id).await?;
        let admin_password = admin_password(ctx, &def, &instance).await?;
        let admin_user = admin_user(&instance, def.engine);
        let handle = DbHandle {
            instance,
            database: inner_name(&def),
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
        let options = self.fingerprint_options()?;
        crate::integrity::fingerprint::fingerprint_target(&self.admin_target(), &options, &meter)
            .await
            .map_err(|e| Failure::from(e).context(format_args!("fingerprint of {what}")))
    }

    pub fn fingerprint_options(&self) -> Result<FingerprintOptions, Failure> {
        let mut options = FingerprintOptions {
            parallelism: 2,
            ..FingerprintOptions::default()
        };
        if let Some(keys) = self
            .def
            .settings
            .get("identity_keys")
            .and_then(|v| v.as_array())
        {
            for k in keys {
                let text = k.as_str().unwrap_or_default();
                let key: IdentityKey = text
                    .parse()
                    .map_err(|e| Failure::permanent(format!("database {}: {e}", self.def.name)))?;
                options.identity_keys.push(key);
            }
        }
        Ok(options)
    }

    /// The environment's app invariants for this database (`invariants = [{name, cypher,
    /// expect}]`); the credex ledger invariants when the database has `Daynode`s is a
    /// runbook decision, not a default.
    pub fn invariants(&self) -> Result<Vec<Invariant>, Failure> {
        self.query_list("invariants", "[{name, cypher, expect}]")
    }

    /// The application's queries whose answers must be the same on blue and green
    /// (`same_answers`).
    pub fn same_answers(&self) -> Result<Vec<SameAnswersQuery>, Failure> {
        self.query_list("same_answers", "[{name, cypher, params?, ordered?}]")
    }

    /// The list `key` of this database's table (empty when absent). The environment
    /// loader has checked its shape, so an error here means the two disagree.
    fn query_list<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
        shape: &str,
    ) -> Result<Vec<T>, Failure> {
        match self.def.settings.get(key) {
            None => Ok(Vec::new()),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
                Failure::permanent(format!(
                    "database {}: {key} must be {shape}: {e}",
                    self.def.name
                ))
            }),
        }
    }
}

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

/// Test failure points: `CUTOVER_FAILPOINTS=name@step-id,…`. Only the named step of a
/// run that was started with the variable is affected; the injected failure says so.
pub fn failpoint(ctx: &StepContext, name: &str) -> bool {
    std::env::var("CUTOVER_FAILPOINTS")
        .map(|v| {
            v.split(',')
                .any(|p| p.trim() == format!("{name}@{}", ctx.step_id))
        })
        .unwrap_or(false)
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Provider settings for a new instance of `def`: its `instance` table, plus (locally)
/// `heap_mb` from `heap` ("320m", "1g").
pub fn instance_settings(def: &DatabaseDef) -> serde_json::Value {
    let mut settings = def
        .settings
        .get("instance")
        .and_then(|v| v.as_object())
        .cloned()
        .unwrap_or_default();
    if let Some(heap) = setting_str(def, "heap") {
        let h = heap.trim().to_ascii_lowercase();
        let mb = if let Some(g) = h.strip_suffix('g') {
            g.parse::<u64>().ok().map(|g| g * 1024)
        } else {
            h.trim_end_matches('m').parse::<u64>().ok()
        };
        if let Some(mb) = mb {
            settings.insert("heap_mb".into(), mb.into());
        }
    }
    serde_json::Value::Object(settings)
}

pub fn parse_duration(text: &str) -> Result<std::time::Duration, Failure> {
    crate::config::toml_read::parse_duration(text).map_err(Failure::permanent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::environment::Edition;

    fn def(settings: serde_json::Value) -> DatabaseDef {
        DatabaseDef {
            name: DatabaseName::new("ledger"),
            engine: EngineKind::Arcadedb,
            edition: Edition::Community,
            settings,
        }
    }

    #[test]
    fn heap_becomes_heap_mb_and_the_instance_table_is_kept() {
        let s = instance_settings(&def(
            serde_json::json!({ "heap": "320m", "instance": { "type": "t3.medium" } }),
        ));
        assert_eq!(
            s,
            serde_json::json!({ "heap_mb": 320, "type": "t3.medium" })
        );
        let s = instance_settings(&def(serde_json::json!({ "heap": "1g" })));
        assert_eq!(s["heap_mb"], 1024);
        assert_eq!(
            instance_settings(&def(serde_json::json!({}))),
            serde_json::json!({})
        );
    }

    #[test]
    fn app_user_and_inner_name_default_sensibly() {
        let d = def(serde_json::json!({}));
        assert_eq!(inner_name(&d), "ledger");
        assert_eq!(app_user(&d), "cutover_app");
        let d = def(serde_json::json!({ "database": "neo4j", "user": "credex" }));
        assert_eq!(inner_name(&d), "neo4j");
        assert_eq!(app_user(&d), "credex");
    }
}
