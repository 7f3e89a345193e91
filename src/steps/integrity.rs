//! `integrity.compare`: green's fingerprint must equal the one recorded in the backup's
//! manifest (frozen blue's), the app invariants must hold on green as they did on blue, and
//! the application's own queries (`same_answers`) must answer on green as on frozen blue.

use super::db::read_manifest;
use super::db_access::DbRef;
use super::kind::{step_inputs, OutputSpec, StepKind};
use super::{Decision, Outputs, Step, StepContext};
use crate::failure::Failure;
use crate::integrity::answers::{answer_differences, replay_answers};
use crate::integrity::compare::compare;
use crate::integrity::invariants::run_invariants;
use crate::try_step;
use async_trait::async_trait;

pub static KINDS: &[StepKind] = &[StepKind {
    name: "integrity.compare",
    summary: "fingerprint an instance and compare it with the backup manifest's (frozen blue's); check app invariants and the app's queries' answers",
    inputs: CompareInputs::INPUTS,
    outputs: OutputSpec::Fixed(&["match", "source_fingerprint", "target_fingerprint", "nodes", "relationships", "findings", "answers_compared"]),
    changes: "",
    compensation: None,
    build: || Box::new(Compare),
}];

step_inputs! {
    struct CompareInputs {
        database: String = required String, "database name in the environment";
        instance: String = required String, "the instance to check (green)";
        manifest: String = required String, "manifest object key of the backup it was restored from";
    }
}

struct Compare;

#[async_trait]
impl Step for Compare {
    async fn advance(&mut self, ctx: &StepContext) -> Decision {
        let inputs: CompareInputs = try_step!(ctx.inputs());
        let manifest = try_step!(read_manifest(ctx, &inputs.manifest).await);
        let db = try_step!(DbRef::open(ctx, &inputs.database, &inputs.instance).await);
        let mut options = db.fingerprint_options();
        options.identity_keys = manifest.fingerprint.identity_keys.clone();
        let meter = ctx.work_meter("records");
        let green = try_step!(crate::integrity::fingerprint::fingerprint_target(
            &db.admin_target(),
            &options,
            &meter
        )
        .await
        .map_err(|e| Failure::from(e).context(format_args!(
            "fingerprint of {} on {}",
            inputs.database, inputs.instance
        ))));
        let mut findings = compare(&manifest.fingerprint, &green);
        let invariants = db.def.invariants.clone();
        if !invariants.is_empty() {
            let graph = try_step!(db.admin_target().connect(1).await);
            let outcomes = try_step!(run_invariants(&graph, &invariants).await.map_err(|e| {
                Failure::from(e).context(format_args!("invariants of {}", inputs.database))
            }));
            findings.add_invariants(&manifest.invariants, &outcomes);
        }
        let answers_asked: usize = manifest.answers.iter().map(|q| q.answers.len()).sum();
        if !manifest.answers.is_empty() {
            let target = db.admin_target();
            let graph = try_step!(target.connect(1).await);
            let green_answers = try_step!(replay_answers(&graph, &target.uri, &manifest.answers)
                .await
                .map_err(|e| Failure::from(e)
                    .context(format_args!("same answers of {}", inputs.database))));
            findings.add_answer_differences(&answer_differences(&manifest.answers, &green_answers));
        }
        if !findings.is_match() {
            let shown: Vec<String> = findings
                .findings
                .iter()
                .filter(|f| f.blocking)
                .take(5)
                .map(|f| f.to_string())
                .collect();
            return Decision::Fail(
                Failure::permanent(format!(
                    "{} on {} does not match its backup ({} finding(s)): {}",
                    inputs.database,
                    inputs.instance,
                    findings.findings.len(),
                    shown.join("; ")
                ))
                .with_hint(
                    "green does not take traffic; inspect with `cutover digest` on both sides",
                ),
            );
        }
        ctx.note(format!(
            "{}: fingerprint {} equals frozen blue's",
            inputs.database, green.content
        ));
        if answers_asked > 0 {
            ctx.note(format!(
                "{}: {answers_asked} answer(s) to {} application quer(ies) are the same as frozen blue's",
                inputs.database,
                manifest.answers.len()
            ));
        }
        let nodes: u64 = green.node_groups.values().map(|g| g.count).sum();
        let rels: u64 = green.relationship_groups.values().map(|g| g.count).sum();
        let mut out = Outputs::new();
        out.insert("match".into(), true.into());
        out.insert(
            "source_fingerprint".into(),
            manifest.fingerprint.content.clone().into(),
        );
        out.insert("target_fingerprint".into(), green.content.into());
        out.insert("nodes".into(), nodes.into());
        out.insert("relationships".into(), rels.into());
        out.insert("findings".into(), findings.findings.len().into());
        out.insert("answers_compared".into(), answers_asked.into());
        Decision::Done(out)
    }
}
