//! `secret.rotate`: a new application password for green — stored as pending, set on
//! green, proven by a Bolt login, then made current (the old one kept as previous).

use super::db_access::{now_rfc3339, DbRef};
use super::kind::{step_inputs, OutputSpec, StepKind};
use super::{Decision, Outputs, Step, StepContext};
use crate::failure::Failure;
use crate::providers::SecretStage;
use crate::try_step;
use async_trait::async_trait;
use secrecy::SecretString;

pub static KINDS: &[StepKind] = &[StepKind {
    name: "secret.rotate",
    summary:
        "rotate the application password: pending → test a Bolt login on the instance → current",
    inputs: RotateInputs::INPUTS,
    outputs: OutputSpec::Fixed(&["version_id", "rotated_at", "secret"]),
    changes:
        "sets a new application password on the instance and makes it the secret's current version",
    compensation: Some("moves the secret back to the previous version"),
    build: || Box::new(Rotate),
}];

step_inputs! {
    struct RotateInputs {
        database: String = required String, "database name in the environment";
        instance: String = required String, "the instance whose login is tested (green)";
    }
}

fn new_password() -> SecretString {
    use rand::distr::{Alphanumeric, SampleString};
    SecretString::from(Alphanumeric.sample_string(&mut rand::rng(), 32))
}

struct Rotate;

#[async_trait]
impl Step for Rotate {
    async fn advance(&mut self, ctx: &StepContext) -> Decision {
        let inputs: RotateInputs = try_step!(ctx.inputs());
        let db = try_step!(DbRef::open(ctx, &inputs.database, &inputs.instance).await);
        let providers = try_step!(ctx.providers());
        let name = db.def.app_password_secret(&ctx.environment().name);
        try_step!(ctx.record_intent("secret.put_pending", serde_json::json!({ "secret": name })));
        let version = try_step!(
            providers
                .secrets
                .put_pending(&name, &new_password(), &ctx.idempotency_token)
                .await
        );
        try_step!(ctx.save_checkpoint(serde_json::json!({ "version_id": version })));
        // The pending value as stored (an earlier attempt's, when the token adopted it).
        let pending = try_step!(providers.secrets.get(&name, SecretStage::Pending).await)
            .filter(|v| v.version_id == version)
            .map(|v| v.value);
        let Some(pending) = pending else {
            // Already promoted by an earlier attempt?
            let current = try_step!(providers.secrets.get(&name, SecretStage::Current).await);
            if current
                .as_ref()
                .map(|c| c.version_id == version)
                .unwrap_or(false)
            {
                return Decision::Done(outputs(&name, &version));
            }
            return Decision::Fail(Failure::inconclusive(format!(
                "secret {name}: version {version} is neither pending nor current"
            )));
        };
        let user = db.def.user.clone();
        try_step!(
            db.engine
                .set_user_password(&db.handle, &user, &pending)
                .await
        );
        let target = db.engine.bolt_target(&db.handle, &user, pending.clone());
        let login = target.check_login();
        if let Err(f) = login.await {
            return Decision::Fail(Failure {
                message: format!(
                    "secret {name}: a Bolt login as {user} with the pending password failed: {}",
                    f.message
                ),
                hint: Some(
                    "the old password stays current; check the application user on the instance"
                        .into(),
                ),
                ..f
            });
        }
        try_step!(ctx.record_intent(
            "secret.promote",
            serde_json::json!({ "secret": name, "version_id": version })
        ));
        try_step!(providers.secrets.promote(&name, &version).await);
        Decision::Done(outputs(&name, &version))
    }

    async fn compensate(&mut self, ctx: &StepContext, outputs: Option<&Outputs>) -> Decision {
        let inputs: RotateInputs = try_step!(ctx.inputs());
        let def = try_step!(super::db_access::database_def(ctx, &inputs.database)).clone();
        let providers = try_step!(ctx.providers());
        let name = def.app_password_secret(&ctx.environment().name);
        let version = ctx.recorded_str(outputs, "version_id");
        let Some(version) = version else {
            return Decision::done();
        };
        let current = try_step!(providers.secrets.get(&name, SecretStage::Current).await);
        if current.map(|c| c.version_id == version).unwrap_or(false) {
            try_step!(ctx.record_intent(
                "secret.rollback",
                serde_json::json!({ "secret": name, "version_id": version })
            ));
            try_step!(providers.secrets.rollback(&name).await);
        }
        Decision::done()
    }
}

fn outputs(name: &crate::ids::SecretName, version: &str) -> Outputs {
    let mut out = Outputs::new();
    out.insert("version_id".into(), version.into());
    out.insert("rotated_at".into(), now_rfc3339().into());
    out.insert("secret".into(), name.as_str().into());
    out
}
