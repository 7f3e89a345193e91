//! `rollback.assess`: did green take a write since the switch?
//!
//! The rollback decides between switching straight back (green took no write) and a
//! reverse migration (it did) with this step, and the decision must never drop a write.
//!
//! # How it decides, and why it is sound
//! At the switch green's fingerprint equalled frozen blue's (`integrity.compare` proved
//! it before `traffic.switch` ran), and `traffic.switch` journaled that fingerprint. This
//! step requires green to be **frozen** (it refuses otherwise: a database that still
//! accepts writes could take one right after it was read), reads green's fingerprint
//! again and compares the content digest with the journaled one:
//! - equal: green holds exactly the content frozen blue holds (the digest covers every
//!   node, relationship, label, type and property, independent of ids and order), so
//!   pointing the application back at blue loses nothing — also when writes were made
//!   and then undone;
//! - different (or a database without a journaled fingerprint): green holds something
//!   blue does not, so the rollback must carry it back by reverse migration.
//!
//! A difference in the schema alone (an index created on green) counts as a write too.

use super::db_access::DbRef;
use super::kind::{step_inputs, OutputSpec, StepKind};
use super::{Decision, Outputs, Step, StepContext};
use crate::failure::Failure;
use crate::try_step;
use async_trait::async_trait;
use std::collections::BTreeMap;

pub static KINDS: &[StepKind] = &[StepKind {
    name: "rollback.assess",
    summary: "decide whether frozen green took a write since the switch (its fingerprint against the one journaled at the switch)",
    inputs: AssessInputs::INPUTS,
    outputs: OutputSpec::Fixed(&["took_writes", "changed", "fingerprints"]),
    changes: "",
    compensation: None,
    build: || Box::new(Assess),
}];

step_inputs! {
    struct AssessInputs {
        databases: BTreeMap<String, String> = required Map, "database name → green's instance id (frozen)";
        fingerprints: BTreeMap<String, String> = required Map, "database name → the content fingerprint journaled at the switch";
    }
}

struct Assess;

#[async_trait]
impl Step for Assess {
    async fn advance(&mut self, ctx: &StepContext) -> Decision {
        let inputs: AssessInputs = try_step!(ctx.inputs());
        if inputs.databases.is_empty() {
            return Decision::Fail(Failure::permanent(format!(
                "step {}: `databases` names no database",
                ctx.step_id
            )));
        }
        let mut changed = Vec::new();
        let mut now = serde_json::Map::new();
        for (database, instance) in &inputs.databases {
            let db = try_step!(DbRef::open(ctx, database, instance).await);
            if !try_step!(db.engine.is_frozen(&db.handle).await) {
                return Decision::Fail(
                    Failure::permanent(format!(
                        "green {database} on {instance} still accepts writes; whether it took one can only be decided frozen"
                    ))
                    .with_hint("freeze it first (a db.freeze step before this one)"),
                );
            }
            let fp = try_step!(db.fingerprint(ctx, &format!("green {database}")).await);
            match inputs.fingerprints.get(database) {
                Some(at_switch) if *at_switch == fp.content => {}
                Some(at_switch) => {
                    ctx.note(format!(
                        "green {database} took writes since the switch: fingerprint {} ≠ {at_switch} at the switch",
                        fp.content
                    ));
                    changed.push(database.clone());
                }
                None => {
                    ctx.note(format!(
                        "no fingerprint of {database} was journaled at the switch: counted as written"
                    ));
                    changed.push(database.clone());
                }
            }
            now.insert(database.clone(), fp.content.into());
        }
        let mut out = Outputs::new();
        out.insert("took_writes".into(), (!changed.is_empty()).into());
        out.insert("changed".into(), serde_json::json!(changed));
        out.insert("fingerprints".into(), now.into());
        Decision::Done(out)
    }
}
