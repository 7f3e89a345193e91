//! `traffic.switch`: point the application at green — every listed database in one
//! change, because the app reads all its connection settings at start-up.
//!
//! Where the application reads its settings is the provider's
//! [`crate::providers::TrafficTarget`], chosen by `[traffic] kind`: a JSON secret with
//! credex's keys (`ledgerspacebolturl`, `ledgerspaceuser`, `ledgerspacepass`,
//! `searchspace…`; every provider), an ECS task definition's environment replaced by name
//! (`NEO_4J_LEDGER_SPACE_BOLT_URL`, …; aws), or SSM parameters (aws). The step writes
//! each database's three settings under the names `[traffic]` gives them, the password
//! marked as a secret.
//!
//! Switching back is only safe while green has taken no write: the compensation freezes
//! green, re-reads its fingerprint and switches back only if it still equals frozen
//! blue's. Otherwise the run needs attention and `cutover rollback` moves the writes back
//! by reverse migration (never a silent revert that drops green's writes). The step's
//! outputs (`from`, `to`, `fingerprints`) are what that rollback reads from the journal.

use super::db_access::{current_secret, now_rfc3339, DbRef};
use super::kind::{step_inputs, OutputSpec, StepKind};
use super::{Decision, Outputs, Step, StepContext};
use crate::failure::Failure;
use crate::providers::traffic::{ConnectionNames, SwitchReceipt, TrafficValues};
use crate::try_step;
use async_trait::async_trait;
use secrecy::SecretString;
use std::collections::BTreeMap;

pub static KINDS: &[StepKind] = &[
    StepKind {
        name: "traffic.switch",
        summary: "point the application at green (all listed databases at once)",
        inputs: SwitchInputs::INPUTS,
        outputs: OutputSpec::Fixed(&[
            "switched_at",
            "version_id",
            "receipt",
            "target",
            "from",
            "to",
            "fingerprints",
        ]),
        changes: "changes where the application connects",
        compensation: Some(
            "switches back to blue if green has taken no write; otherwise stops for attention",
        ),
        build: || Box::new(Switch),
    },
    StepKind {
        name: "traffic.verify",
        summary:
            "check that the application uses the listed instances now (a stale rollback stops here)",
        inputs: VerifyInputs::INPUTS,
        outputs: OutputSpec::Fixed(&["target"]),
        changes: "",
        compensation: None,
        build: || Box::new(Verify),
    },
];

/// The names under which the application reads `database`'s settings.
fn names_for(ctx: &StepContext, database: &str) -> ConnectionNames {
    let env = ctx.environment();
    env.traffic.names_for(&env.name, database)
}

/// The Bolt URL the application reads for `database` now, if it has one.
pub async fn app_url(ctx: &StepContext, database: &str) -> Result<Option<String>, Failure> {
    let url_name = names_for(ctx, database).url;
    let now = ctx
        .providers()?
        .traffic
        .current(std::slice::from_ref(&url_name))
        .await?;
    Ok(now.get(&url_name).map(str::to_owned))
}

/// What the switch handed back: its receipt, in its outputs when it finished, else in
/// its checkpoint. A journal from before receipts existed has only `version_id` (a
/// secret version), which is the secret target's whole receipt.
fn recorded_switch(ctx: &StepContext, outputs: Option<&Outputs>) -> Option<SwitchReceipt> {
    let from = |v: Option<&serde_json::Value>| {
        v.and_then(|r| serde_json::from_value::<SwitchReceipt>(r.clone()).ok())
    };
    from(outputs.and_then(|o| o.get("receipt")))
        .or_else(|| from(ctx.recorded("receipt").as_ref()))
        .or_else(|| {
            ctx.recorded_str(outputs, "version_id")
                .map(|version| SwitchReceipt {
                    version,
                    detail: Default::default(),
                })
        })
}

/// The compensation's checkpoint key for what the fingerprints showed: the green
/// databases that took writes since the switch (empty: none did).
const VERDICT: &str = "green_changed";

/// The verdict an earlier attempt or session of the compensation journaled, if any.
fn journaled_verdict(ctx: &StepContext) -> Option<Result<Vec<String>, Failure>> {
    let value = ctx.checkpoint()?.get(VERDICT)?.clone();
    Some(serde_json::from_value(value).map_err(|e| {
        Failure::permanent(format!(
            "step {}: the journaled {VERDICT} cannot be read: {e}",
            ctx.step_id
        ))
    }))
}

step_inputs! {
    struct VerifyInputs {
        databases: BTreeMap<String, String> = required Map, "database name → the instance the application must be using";
    }
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
        let target = &try_step!(ctx.providers()).traffic;
        // One read of the target for every database (an ECS target describes the service
        // and its task definition per read).
        let url_names: BTreeMap<&String, String> = inputs
            .databases
            .keys()
            .map(|database| (database, names_for(ctx, database).url))
            .collect();
        let wanted: Vec<String> = url_names.values().cloned().collect();
        let now = try_step!(target.current(&wanted).await);
        let mut elsewhere = Vec::new();
        for (database, instance) in &inputs.databases {
            let db = try_step!(DbRef::open(ctx, database, instance).await);
            let expected = db.bolt_uri();
            match now.get(&url_names[database]) {
                Some(url) if url == expected => {}
                other => elsewhere.push(format!(
                    "{database} uses {}, not {instance} ({expected})",
                    other.unwrap_or("nothing")
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

step_inputs! {
    struct SwitchInputs {
        databases: BTreeMap<String, String> = required Map, "database name → green instance id";
        fingerprints: BTreeMap<String, String> = optional Map, "database name → frozen blue's fingerprint; switching back is refused once green differs";
        from: BTreeMap<String, String> = optional Map, "database name → the instance the application used before (blue), recorded for `cutover rollback`";
    }
}

struct Switch;

#[async_trait]
impl Step for Switch {
    /// Switches once (checkpointed). Then the application must read green: a target
    /// that rolls the application itself (an ECS task definition) is polled until its
    /// deployment settled; otherwise, when the provider has an application service (ECS
    /// on aws), it is restarted once (checkpointed) and polled the same way.
    async fn advance(&mut self, ctx: &StepContext) -> Decision {
        let inputs: SwitchInputs = try_step!(ctx.inputs());
        let providers = try_step!(ctx.providers());
        let target = &providers.traffic;
        let restarted = ctx.checkpoint_flag("restarted");
        let record = match recorded_switch(ctx, None) {
            Some(record) => record,
            None => {
                let mut values = TrafficValues::default();
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
                    let names = names_for(ctx, database);
                    values.insert(names.url, SecretString::from(url));
                    values.insert(names.user, SecretString::from(user));
                    values.insert_secret(names.password, password);
                }
                try_step!(ctx.record_intent(
                    "traffic.switch",
                    serde_json::json!({ "target": target.describe(), "databases": inputs.databases })
                ));
                let record = try_step!(target.switch_to(&values, &ctx.idempotency_token).await);
                try_step!(ctx.save_checkpoint(serde_json::json!({ "receipt": record })));
                record
            }
        };
        let rolling = if target.restarts_application() {
            Some((target.describe(), target.settled().await))
        } else if let Some(app) = &providers.app {
            if !restarted {
                try_step!(ctx.record_intent(
                    "traffic.restart_app",
                    serde_json::json!({ "service": app.describe(), "version_id": record.version })
                ));
                try_step!(app.restart().await);
                try_step!(ctx
                    .save_checkpoint(serde_json::json!({ "receipt": record, "restarted": true })));
                ctx.note(format!(
                    "{} restarting so it reads the new settings",
                    app.describe()
                ));
            }
            Some((app.describe(), app.settled().await))
        } else {
            None
        };
        if let Some((service, settled)) = rolling {
            if let crate::providers::Readiness::NotYet(why) = try_step!(settled) {
                return Decision::wait(
                    std::time::Duration::from_secs(5),
                    format!("waiting for {service} to restart: {why}"),
                );
            }
        }
        let mut out = Outputs::new();
        out.insert("switched_at".into(), now_rfc3339().into());
        out.insert("version_id".into(), record.version.clone().into());
        out.insert("receipt".into(), serde_json::json!(record));
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

    /// A checkpointed state machine (its own checkpoint, apart from the switch's): each
    /// green database's freeze is started and polled (`freeze DB`); the fingerprints'
    /// verdict is journaled (`green_changed`) so a resumed rollback never reverses it;
    /// then either every green is unfrozen again (`unfreeze DB`) and the step stops for
    /// attention, or the application is switched back (`switched_back`) and restarted
    /// (`restarted`), each once.
    async fn compensate(&mut self, ctx: &StepContext, outputs: Option<&Outputs>) -> Decision {
        let inputs: SwitchInputs = try_step!(ctx.inputs());
        let providers = try_step!(ctx.providers());
        let target = &providers.traffic;
        let Some(record) = recorded_switch(ctx, outputs) else {
            // Never switched (or the switch left no trace): nothing to undo.
            return Decision::done();
        };
        // Green may have taken writes since the switch: stop them, then prove it has none.
        let mut greens = Vec::new();
        for (database, instance) in &inputs.databases {
            let db = try_step!(DbRef::open(ctx, database, instance).await);
            if let Some(wait) = try_step!(
                db.set_frozen(ctx, &format!("freeze {database}"), true)
                    .await
            ) {
                return wait;
            }
            greens.push((database, db));
        }
        let changed = match journaled_verdict(ctx) {
            Some(changed) => try_step!(changed),
            None => {
                let mut changed = Vec::new();
                for (database, db) in &greens {
                    let Some(expected) = inputs.fingerprints.get(*database) else {
                        continue;
                    };
                    let fp = try_step!(db.fingerprint(ctx, &format!("green {database}")).await);
                    if &fp.content != expected {
                        changed.push(format!(
                            "{database} (fingerprint {} ≠ frozen blue's {expected})",
                            fp.content
                        ));
                    }
                }
                try_step!(ctx.update_checkpoint(VERDICT, serde_json::json!(changed)));
                changed
            }
        };
        if !changed.is_empty() {
            // Switching back would drop green's writes. Keep the application where it
            // is and let green take writes again; blue stays frozen (this stops the
            // rollback before blue's unfreeze).
            for (database, db) in &greens {
                if let Some(wait) = try_step!(
                    db.set_frozen(ctx, &format!("unfreeze {database}"), false)
                        .await
                ) {
                    return wait;
                }
            }
            return Decision::Fail(
                Failure::permanent(format!(
                    "green has taken writes since the switch: {}; switching back would drop them, so the application stays on green",
                    changed.join(", ")
                ))
                .with_hint(format!("green serves and holds every write; blue is frozen and alive. Move back by reverse migration: `cutover rollback {} --env {}`", ctx.run_id, ctx.environment().source.path.display())),
            );
        }
        if !ctx.checkpoint_flag("switched_back") {
            try_step!(ctx.record_intent(
                "traffic.switch_back",
                serde_json::json!({ "target": target.describe(), "version_id": record.version })
            ));
            try_step!(target.switch_back(&record, &ctx.idempotency_token).await);
            try_step!(ctx.update_checkpoint("switched_back", true.into()));
        }
        // The application reads the restored settings only when it restarts (a task
        // definition target restarted it by switching back). Green is frozen above, so
        // tasks still on it cannot write while the restart rolls.
        if let (false, Some(app)) = (target.restarts_application(), &providers.app) {
            if !ctx.checkpoint_flag("restarted") {
                try_step!(ctx.record_intent(
                    "traffic.restart_app",
                    serde_json::json!({ "service": app.describe(), "switched_back": record.version })
                ));
                try_step!(app.restart().await);
                try_step!(ctx.update_checkpoint("restarted", true.into()));
            }
        }
        Decision::done()
    }
}
