//! `traffic.switch`: point the application at green — every listed database in one
//! change, because the app reads all its connection settings at start-up.
//!
//! Where the application reads its settings is a [`TrafficTarget`]. The local target is
//! a JSON secret in the provider's secret store with credex's keys
//! (`ledgerspacebolturl`, `ledgerspaceuser`, `ledgerspacepass`, `searchspace…`). AWS
//! targets (Secrets Manager JSON, SSM parameters, an ECS task definition's environment
//! replaced by name) implement the same trait.
//!
//! Switching back is only safe while green has taken no write: the compensation freezes
//! green, re-reads its fingerprint and switches back only if it still equals frozen
//! blue's. Otherwise the run needs attention and `cutover rollback` moves the writes back
//! by reverse migration (never a silent revert that drops green's writes). The step's
//! outputs (`from`, `to`, `fingerprints`) are what that rollback reads from the journal.

use super::db_access::{current_secret, now_rfc3339, DbRef};
use super::kind::{InputSpec, OutputSpec, StepKind, ValueType};
use super::{Decision, Outputs, Step, StepContext};
use crate::failure::Failure;
use crate::ids::SecretName;
use crate::providers::SecretStage;
use crate::try_step;
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::BTreeMap;

pub static KINDS: &[StepKind] = &[StepKind {
    name: "traffic.switch",
    summary: "point the application at green (all listed databases at once)",
    inputs: &[
        InputSpec { name: "databases", ty: ValueType::Map, required: true, doc: "database name → green instance id" },
        InputSpec {
            name: "fingerprints",
            ty: ValueType::Map,
            required: false,
            doc: "database name → frozen blue's fingerprint; switching back is refused once green differs",
        },
        InputSpec {
            name: "from",
            ty: ValueType::Map,
            required: false,
            doc: "database name → the instance the application used before (blue), recorded for `cutover rollback`",
        },
    ],
    outputs: OutputSpec::Fixed(&["switched_at", "version_id", "target", "from", "to", "fingerprints"]),
    changes: "changes where the application connects",
    compensation: Some("switches back to blue if green has taken no write; otherwise stops for attention"),
    build: || Box::new(Switch),
}, StepKind {
    name: "traffic.verify",
    summary: "check that the application uses the listed instances now (a stale rollback stops here)",
    inputs: &[InputSpec { name: "databases", ty: ValueType::Map, required: true, doc: "database name → the instance the application must be using" }],
    outputs: OutputSpec::Fixed(&["target"]),
    changes: "",
    compensation: None,
    build: || Box::new(Verify),
}];

/// One database's connection as the application sees it. `Debug` hides the password.
#[derive(Clone, Debug)]
pub struct AppConnection {
    pub database: String,
    pub url: String,
    pub user: String,
    pub password: SecretString,
}

/// Where the application reads its database connection settings.
#[async_trait]
pub trait TrafficTarget: Send + Sync {
    /// For messages, e.g. `secret credex-core/local`.
    fn describe(&self) -> String;
    /// The Bolt URL the application currently uses for `database`.
    async fn current_url(
        &self,
        ctx: &StepContext,
        database: &str,
    ) -> Result<Option<String>, Failure>;
    /// Points the application at `to` in one change; returns the change's version id.
    /// The same token adopts an earlier attempt's change.
    async fn switch(
        &self,
        ctx: &StepContext,
        to: &[AppConnection],
        token: &str,
    ) -> Result<String, Failure>;
    /// Undoes the change `version` made, if it is still in effect. Idempotent.
    async fn switch_back(&self, ctx: &StepContext, version: &str) -> Result<(), Failure>;
}

/// The local target: a JSON secret (`[traffic] secret = …`), keys `<prefix>bolturl`,
/// `<prefix>user`, `<prefix>pass`; the prefix is `[traffic.keys] DB = …`, default `DBspace`.
pub struct LocalSecretTarget {
    pub secret: SecretName,
    pub prefixes: BTreeMap<String, String>,
}

impl LocalSecretTarget {
    pub fn from_env(ctx: &StepContext) -> Result<Self, Failure> {
        let env = ctx.environment();
        Ok(Self {
            secret: env.traffic.secret_name(&env.name),
            prefixes: env.traffic.key_prefixes.clone(),
        })
    }

    pub fn prefix(&self, database: &str) -> String {
        self.prefixes
            .get(database)
            .cloned()
            .unwrap_or_else(|| format!("{database}space"))
    }

    async fn current_doc(
        &self,
        ctx: &StepContext,
    ) -> Result<serde_json::Map<String, serde_json::Value>, Failure> {
        let providers = ctx.providers()?;
        match providers
            .secrets
            .get(&self.secret, SecretStage::Current)
            .await?
        {
            None => Ok(Default::default()),
            Some(v) => serde_json::from_str(v.value.expose_secret()).map_err(|_| {
                Failure::permanent(format!(
                    "secret {} does not hold a JSON object",
                    self.secret
                ))
            }),
        }
    }
}

#[async_trait]
impl TrafficTarget for LocalSecretTarget {
    fn describe(&self) -> String {
        format!("secret {}", self.secret)
    }

    async fn current_url(
        &self,
        ctx: &StepContext,
        database: &str,
    ) -> Result<Option<String>, Failure> {
        let doc = self.current_doc(ctx).await?;
        Ok(doc
            .get(&format!("{}bolturl", self.prefix(database)))
            .and_then(|v| v.as_str())
            .map(str::to_owned))
    }

    async fn switch(
        &self,
        ctx: &StepContext,
        to: &[AppConnection],
        token: &str,
    ) -> Result<String, Failure> {
        let providers = ctx.providers()?;
        let mut doc = self.current_doc(ctx).await?;
        for c in to {
            let p = self.prefix(&c.database);
            doc.insert(format!("{p}bolturl"), c.url.clone().into());
            doc.insert(format!("{p}user"), c.user.clone().into());
            doc.insert(format!("{p}pass"), c.password.expose_secret().into());
        }
        let value = SecretString::from(serde_json::Value::Object(doc).to_string());
        let version = providers
            .secrets
            .put_pending(&self.secret, &value, token)
            .await?;
        providers.secrets.promote(&self.secret, &version).await?;
        Ok(version)
    }

    async fn switch_back(&self, ctx: &StepContext, version: &str) -> Result<(), Failure> {
        let providers = ctx.providers()?;
        let current = providers.secrets.versions(&self.secret).await?;
        let ours_current = current
            .iter()
            .any(|v| v.version_id == version && v.stages.contains(&SecretStage::Current));
        if ours_current {
            providers.secrets.rollback(&self.secret).await?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyInputs {
    databases: BTreeMap<String, String>,
}

/// `traffic.verify`: the application's connection for every listed database points at
/// the listed instance (the URL a `traffic.switch` to it writes). A rollback started
/// long after its run starts with this, so it never moves the application away from
/// instances a later run switched to.
struct Verify;

#[async_trait]
impl Step for Verify {
    async fn advance(&mut self, ctx: &StepContext) -> Decision {
        let inputs: VerifyInputs = try_step!(ctx.inputs());
        let target = try_step!(target_for(ctx));
        let mut elsewhere = Vec::new();
        for (database, instance) in &inputs.databases {
            let db = try_step!(DbRef::open(ctx, database, instance).await);
            let expected = db.bolt_uri();
            match try_step!(target.current_url(ctx, database).await) {
                Some(url) if url == expected => {}
                other => elsewhere.push(format!(
                    "{database} uses {}, not {instance} ({expected})",
                    other.as_deref().unwrap_or("nothing")
                )),
            }
        }
        if !elsewhere.is_empty() {
            return Decision::Fail(
                Failure::permanent(format!(
                    "the application ({}) is not where this step expects it: {}",
                    target.describe(),
                    elsewhere.join("; ")
                ))
                .with_hint("another run moved it since; see `cutover status` and roll back the latest run instead"),
            );
        }
        let mut out = Outputs::new();
        out.insert("target".into(), target.describe().into());
        Decision::Done(out)
    }
}

/// The traffic target the environment configures.
pub fn target_for(ctx: &StepContext) -> Result<Box<dyn TrafficTarget>, Failure> {
    // `[traffic] kind` is checked at load: "secret" is the only kind.
    Ok(Box::new(LocalSecretTarget::from_env(ctx)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SwitchInputs {
    databases: BTreeMap<String, String>,
    #[serde(default)]
    fingerprints: BTreeMap<String, String>,
    #[serde(default)]
    from: BTreeMap<String, String>,
}

struct Switch;

#[async_trait]
impl Step for Switch {
    /// Switches once (checkpointed), then, when the provider has an application
    /// service (ECS on aws), restarts it once (checkpointed) and waits until the new
    /// deployment is the only one running: only then does the application read green.
    async fn advance(&mut self, ctx: &StepContext) -> Decision {
        let inputs: SwitchInputs = try_step!(ctx.inputs());
        let target = try_step!(target_for(ctx));
        let restarted = ctx.checkpoint_flag("restarted");
        let version = match ctx.checkpoint_str("version_id") {
            Some(version) => version,
            None => {
                let mut to = Vec::new();
                for (database, instance) in &inputs.databases {
                    let db = try_step!(DbRef::open(ctx, database, instance).await);
                    let user = db.def.user.clone();
                    let password = try_step!(
                        current_secret(ctx, &db.def.app_password_secret(&ctx.environment().name))
                            .await
                    );
                    let url = db
                        .engine
                        .bolt_target(&db.handle, &user, password.clone())
                        .uri;
                    to.push(AppConnection {
                        database: database.clone(),
                        url,
                        user,
                        password,
                    });
                }
                try_step!(ctx.record_intent(
                    "traffic.switch",
                    serde_json::json!({ "target": target.describe(), "databases": inputs.databases })
                ));
                let version = try_step!(target.switch(ctx, &to, &ctx.idempotency_token).await);
                try_step!(ctx.save_checkpoint(serde_json::json!({ "version_id": version })));
                version
            }
        };
        if let Some(app) = try_step!(ctx.providers()).app.clone() {
            if !restarted {
                try_step!(ctx.record_intent(
                    "traffic.restart_app",
                    serde_json::json!({ "service": app.describe(), "version_id": version })
                ));
                try_step!(app.restart().await);
                try_step!(ctx.save_checkpoint(
                    serde_json::json!({ "version_id": version, "restarted": true })
                ));
                ctx.note(format!(
                    "{} restarting so it reads the new settings",
                    app.describe()
                ));
            }
            if let crate::providers::Readiness::NotYet(why) = try_step!(app.settled().await) {
                return Decision::wait(
                    std::time::Duration::from_secs(5),
                    format!("waiting for {} to restart: {why}", app.describe()),
                );
            }
        }
        let mut out = Outputs::new();
        out.insert("switched_at".into(), now_rfc3339().into());
        out.insert("version_id".into(), version.into());
        out.insert("target".into(), target.describe().into());
        // What `cutover rollback` needs to move back: where the app was, where it is now,
        // and what green held at the switch (frozen blue's content).
        out.insert("from".into(), serde_json::json!(inputs.from));
        out.insert("to".into(), serde_json::json!(inputs.databases));
        out.insert(
            "fingerprints".into(),
            serde_json::json!(inputs.fingerprints),
        );
        Decision::Done(out)
    }

    async fn compensate(&mut self, ctx: &StepContext, outputs: Option<&Outputs>) -> Decision {
        let inputs: SwitchInputs = try_step!(ctx.inputs());
        let target = try_step!(target_for(ctx));
        let version = ctx.recorded_str(outputs, "version_id");
        let Some(version) = version else {
            // Never switched (or the switch left no trace): nothing to undo.
            return Decision::done();
        };
        // Green may have taken writes since the switch: stop them, then prove it has none.
        let mut greens = Vec::new();
        let mut changed = Vec::new();
        for (database, instance) in &inputs.databases {
            let db = try_step!(DbRef::open(ctx, database, instance).await);
            try_step!(db.engine.freeze(&db.handle).await);
            if let Some(expected) = inputs.fingerprints.get(database) {
                let fp = try_step!(db.fingerprint(ctx, &format!("green {database}")).await);
                if &fp.content != expected {
                    changed.push(format!(
                        "{database} (fingerprint {} ≠ frozen blue's {expected})",
                        fp.content
                    ));
                }
            }
            greens.push(db);
        }
        if !changed.is_empty() {
            // Switching back would drop green's writes. Keep the application where it
            // is and let green take writes again; blue stays frozen (this stops the
            // rollback before blue's unfreeze).
            for db in &greens {
                try_step!(db.engine.unfreeze(&db.handle).await);
            }
            return Decision::Fail(
                Failure::permanent(format!(
                    "green has taken writes since the switch: {}; switching back would drop them, so the application stays on green",
                    changed.join(", ")
                ))
                .with_hint(format!("green serves and holds every write; blue is frozen and alive. Move back by reverse migration: `cutover rollback {} --env {}`", ctx.run_id, ctx.environment().source.path.display())),
            );
        }
        try_step!(ctx.record_intent(
            "traffic.switch_back",
            serde_json::json!({ "target": target.describe(), "version_id": version })
        ));
        try_step!(target.switch_back(ctx, &version).await);
        // The application reads the restored settings only when it restarts. Green is
        // frozen above, so tasks still on it cannot write while the restart rolls.
        if let Some(app) = try_step!(ctx.providers()).app.clone() {
            try_step!(ctx.record_intent(
                "traffic.restart_app",
                serde_json::json!({ "service": app.describe(), "switched_back": version })
            ));
            try_step!(app.restart().await);
        }
        Decision::done()
    }
}
