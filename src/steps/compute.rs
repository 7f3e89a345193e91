//! `compute.provision` and `compute.decommission`: instances for a database, tagged with
//! env, database, color and run id; provisioning is idempotent by the step's token.

use super::db_access::{
    database_def, engine_for, instance_settings, parse_duration, DbRef, ADMIN_SECRET_TAG,
};
use super::kind::{step_inputs, OutputSpec, StepKind};
use super::{Decision, Outputs, Step, StepContext};
use crate::db::{DbOperation, EngineKind, OpPoll};
use crate::failure::{ErrorClass, Failure};
use crate::ids::{InstanceId, SecretName};
use crate::providers::{tag, Instance, ProvisionRequest, Readiness, Tags};
use crate::try_step;
use async_trait::async_trait;
use std::time::Duration;

pub static KINDS: &[StepKind] = &[
    StepKind {
        name: "compute.provision",
        summary: "create an instance for a database from an image and wait until it serves",
        inputs: ProvisionInputs::INPUTS,
        outputs: OutputSpec::Fixed(&["instance_id", "bolt_uri", "address", "ready_after_ms"]),
        changes: "creates an instance (a server process locally, an EC2 instance on AWS)",
        compensation: Some("terminates the instance"),
        build: || {
            Box::new(Provision {
                started: None,
                instance: None,
            })
        },
    },
    StepKind {
        name: "compute.decommission",
        summary:
            "after a bake window, terminate an instance (blue stays frozen and alive until then)",
        inputs: DecommissionInputs::INPUTS,
        outputs: OutputSpec::Fixed(&["terminated", "terminated_at"]),
        changes: "terminates the instance",
        compensation: None,
        build: || Box::new(Decommission { until: None }),
    },
];

step_inputs! {
    struct ProvisionInputs {
        database: String = required String, "database name in the environment";
        color: Option<String> = optional String, "blue | green (default green)";
        image: Option<String> = optional String, "image (default: the database's `image` setting)";
    }
}

struct Provision {
    started: Option<std::time::Instant>,
    instance: Option<Instance>,
}

/// The secret holding the administrator's password of `def`'s new instances
/// (`admin_secret = …`). Neo4j needs it: a new instance gets its initial password from it
/// before it first serves. Engines whose provider keeps its own (ArcadeDB locally) may
/// leave it unset.
fn admin_secret_setting(
    ctx: &StepContext,
    def: &crate::config::environment::DatabaseDef,
) -> Result<Option<SecretName>, Failure> {
    match (&def.admin_secret, def.kind()) {
        (Some(s), _) => Ok(Some(s.clone())),
        (None, EngineKind::Neo4j) => Err(Failure::permanent(format!(
            "step {}: database `{}` has no `admin_secret`: a new Neo4j instance needs its administrator password before it first serves",
            ctx.step_id, def.name
        ))
        .with_hint(format!(
            "add admin_secret = \"<Secrets Manager secret>\" to [databases.{}] in {} (create the secret first, e.g. with Terraform)",
            def.name,
            ctx.environment().source.path.display()
        ))),
        (None, _) => Ok(None),
    }
}

fn run_tags(ctx: &StepContext) -> Tags {
    let mut tags = Tags::new();
    tags.insert(tag::RUN_ID.into(), ctx.run_id.as_str().into());
    tags.insert(tag::STEP_ID.into(), ctx.step_id.as_str().into());
    tags
}

fn instance_outputs(instance: &Instance, ready_after: Duration) -> Outputs {
    let mut out = Outputs::new();
    out.insert("instance_id".into(), instance.id.as_str().into());
    out.insert(
        "bolt_uri".into(),
        instance
            .endpoints
            .get("bolt")
            .cloned()
            .unwrap_or_default()
            .into(),
    );
    out.insert(
        "address".into(),
        instance.address.clone().unwrap_or_default().into(),
    );
    out.insert(
        "ready_after_ms".into(),
        (ready_after.as_millis() as u64).into(),
    );
    out
}

#[async_trait]
impl Step for Provision {
    async fn advance(&mut self, ctx: &StepContext) -> Decision {
        let inputs: ProvisionInputs = try_step!(ctx.inputs());
        let def = try_step!(database_def(ctx, &inputs.database)).clone();
        let providers = try_step!(ctx.providers());
        let started = *self.started.get_or_insert_with(std::time::Instant::now);
        if self.instance.is_none() {
            let color = inputs.color.clone().unwrap_or_else(|| "green".into());
            let image = inputs
                .image
                .clone()
                .or_else(|| def.image.clone())
                .unwrap_or_else(|| "default".into());
            let mut tags = run_tags(ctx);
            if let Some(secret) = try_step!(admin_secret_setting(ctx, &def)) {
                tags.insert(ADMIN_SECRET_TAG.into(), secret.as_str().into());
            }
            tags.insert(tag::ENV.into(), ctx.environment().name.clone());
            tags.insert(tag::DATABASE.into(), inputs.database.clone());
            tags.insert(tag::COLOR.into(), color.clone());
            let name = format!(
                "{}-{}-{}-{}",
                ctx.environment().name,
                inputs.database,
                color,
                ctx.run_id
            );
            tags.insert(tag::NAME.into(), name.clone());
            let request = ProvisionRequest {
                image: image.clone(),
                name,
                tags,
                idempotency_token: ctx.idempotency_token.clone(),
                settings: instance_settings(&def),
            };
            try_step!(ctx.record_intent(
                "compute.provision",
                serde_json::json!({ "database": inputs.database, "color": color, "image": image })
            ));
            let instance = try_step!(providers.compute.provision(&request).await);
            try_step!(ctx.save_checkpoint(serde_json::json!({ "instance_id": instance.id })));
            ctx.note(format!(
                "instance {} provisioned for {}; waiting until it serves",
                instance.id, inputs.database
            ));
            self.instance = Some(instance);
        }
        let id = self.instance.as_ref().expect("set above").id.clone();
        match try_step!(providers.compute.readiness(&id).await) {
            Readiness::NotYet(why) => Decision::wait(
                Duration::from_millis(500),
                format!("instance {id} not ready: {why}"),
            ),
            Readiness::Ready => {
                // Re-describe: endpoints may only be known once it runs.
                let instance = try_step!(providers.compute.describe(&id).await)
                    .or_else(|| self.instance.clone())
                    .expect("instance known");
                if let Some(secret) = try_step!(admin_secret_setting(ctx, &def)) {
                    if let Some(wait) = try_step!(prepare(ctx, &def, &instance, &secret).await) {
                        return wait;
                    }
                    // Serving means the server answers a query with the administrator's
                    // password from the secret (on Neo4j this also proves the initial
                    // password took). The `system` database: the data database may only
                    // appear with the restore.
                    let db = try_step!(DbRef::open(ctx, &inputs.database, id.as_str()).await);
                    let mut target = db.admin_target();
                    target.database = Some("system".into());
                    // Neo4j's `system` database runs administration commands only (it
                    // refuses `RETURN 1`).
                    let probe = match def.kind() {
                        crate::db::EngineKind::Neo4j => "SHOW CURRENT USER",
                        crate::db::EngineKind::Arcadedb => "RETURN 1 AS one",
                    };
                    if let Err(f) = target.check_login_with(probe).await {
                        if f.class == ErrorClass::Permanent {
                            return Decision::Fail(f.with_hint(format!(
                                "the instance does not accept the password in {secret}; if it was started before cutover set it, terminate it and provision again"
                            )));
                        }
                        return Decision::wait(
                            Duration::from_secs(1),
                            format!("instance {id} runs but the database server does not answer yet: {}", f.message),
                        );
                    }
                }
                Decision::Done(instance_outputs(&instance, started.elapsed()))
            }
        }
    }

    async fn postcondition(&mut self, ctx: &StepContext, outputs: &Outputs) -> Result<(), Failure> {
        let id = outputs
            .get("instance_id")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        match ctx
            .providers()?
            .compute
            .describe(&InstanceId::new(id))
            .await?
        {
            Some(_) => Ok(()),
            None => Err(Failure::permanent(format!(
                "instance {id} created by step {} no longer exists",
                ctx.step_id
            ))),
        }
    }

    /// Terminates what this step created: by its outputs, by its checkpoint, and by
    /// the run and step tags (an instance created before a crash that journaled nothing).
    async fn compensate(&mut self, ctx: &StepContext, outputs: Option<&Outputs>) -> Decision {
        let providers = try_step!(ctx.providers());
        let mut ids: Vec<InstanceId> = Vec::new();
        if let Some(id) = ctx.recorded_str(outputs, "instance_id") {
            ids.push(InstanceId::new(id));
        }
        for found in try_step!(providers.compute.find_by_tags(&run_tags(ctx)).await) {
            ids.push(found.id);
        }
        ids.sort();
        ids.dedup();
        for id in ids {
            try_step!(ctx.record_intent(
                "compute.terminate",
                serde_json::json!({ "instance_id": id })
            ));
            try_step!(providers.compute.terminate(&id).await);
            ctx.note(format!("terminated instance {id}"));
        }
        Decision::done()
    }
}

/// Prepares a new `instance` (on Neo4j: its initial password, then the start) as a
/// journaled operation: intent, start (saved in the checkpoint under `preparing`, so a
/// resumed run polls the script a crashed one sent), polls. `Some(decision)` while it
/// runs (wait) or when it failed (the step's retry sends a new script); `None` once the
/// instance is prepared (checkpointed `prepared`, so it is never sent again).
async fn prepare(
    ctx: &StepContext,
    def: &crate::config::environment::DatabaseDef,
    instance: &Instance,
    secret: &SecretName,
) -> Result<Option<Decision>, Failure> {
    if ctx.checkpoint_flag("prepared") {
        return Ok(None);
    }
    let id = &instance.id;
    let engine = engine_for(ctx, def)?;
    let journaled = ctx
        .checkpoint()
        .and_then(|c| c.get("preparing").cloned())
        .and_then(|op| serde_json::from_value::<DbOperation>(op).ok());
    let mut op = match journaled {
        Some(op) => op,
        None => {
            ctx.record_intent(
                "db.prepare_instance",
                serde_json::json!({ "instance_id": id, "admin_secret": secret.as_str() }),
            )?;
            let op = engine.start_prepare_instance(instance, secret).await?;
            ctx.save_checkpoint(serde_json::json!({ "instance_id": id, "preparing": op }))?;
            op
        }
    };
    let before = op.clone();
    match engine.poll_prepare_instance(&mut op).await {
        OpPoll::Running { after, what } => {
            if op != before {
                ctx.save_checkpoint(serde_json::json!({ "instance_id": id, "preparing": op }))?;
            }
            Ok(Some(Decision::wait(after, what)))
        }
        OpPoll::Failed(f) => {
            ctx.save_checkpoint(serde_json::json!({ "instance_id": id }))?;
            Ok(Some(Decision::Fail(f)))
        }
        OpPoll::Done(()) => {
            ctx.save_checkpoint(serde_json::json!({ "instance_id": id, "prepared": true }))?;
            Ok(None)
        }
    }
}

step_inputs! {
    struct DecommissionInputs {
        instance: String = required String, "instance id";
        bake: Option<String> = optional Duration, "how long to keep it first (default 0s)";
    }
}

struct Decommission {
    until: Option<std::time::Instant>,
}

#[async_trait]
impl Step for Decommission {
    async fn advance(&mut self, ctx: &StepContext) -> Decision {
        let inputs: DecommissionInputs = try_step!(ctx.inputs());
        let bake = try_step!(parse_duration(inputs.bake.as_deref().unwrap_or("0s")));
        let until = *self
            .until
            .get_or_insert_with(|| std::time::Instant::now() + bake);
        let now = std::time::Instant::now();
        if now < until {
            return Decision::wait(
                (until - now).min(Duration::from_secs(5)),
                format!(
                    "baking: instance {} kept (frozen) for {:?}",
                    inputs.instance,
                    until - now
                ),
            );
        }
        let providers = try_step!(ctx.providers());
        let id = InstanceId::new(&inputs.instance);
        try_step!(ctx.record_intent(
            "compute.terminate",
            serde_json::json!({ "instance_id": id })
        ));
        try_step!(providers.compute.terminate(&id).await);
        let mut out = Outputs::new();
        out.insert("terminated".into(), inputs.instance.into());
        out.insert(
            "terminated_at".into(),
            super::db_access::now_rfc3339().into(),
        );
        Decision::Done(out)
    }
}
