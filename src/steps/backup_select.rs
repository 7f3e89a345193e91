//! `backup.select`: the latest backup (or one run's) holding every listed database from
//! one point in time, read from the manifests under `backups/<env>/`.

use super::db::read_manifest;
use super::db_access::now_rfc3339;
use super::kind::{step_inputs, OutputSpec, StepKind};
use super::{Decision, Outputs, Step, StepContext};
use crate::failure::Failure;
use crate::try_step;
use async_trait::async_trait;

pub static KINDS: &[StepKind] = &[StepKind {
    name: "backup.select",
    summary:
        "pick a backup (latest, or one run's) holding every listed database from one point in time",
    inputs: SelectInputs::INPUTS,
    outputs: OutputSpec::Dynamic,
    changes: "",
    compensation: None,
    build: || Box::new(Select),
}];

step_inputs! {
    struct SelectInputs {
        databases: Vec<String> = required List, "database names";
        backup: Option<String> = optional String, "`latest` (default) or a backup run id";
    }
}

struct Select;

#[async_trait]
impl Step for Select {
    async fn advance(&mut self, ctx: &StepContext) -> Decision {
        let inputs: SelectInputs = try_step!(ctx.inputs());
        let providers = try_step!(ctx.providers());
        let env = ctx.environment().name.clone();
        let wanted = inputs.backup.clone().filter(|b| b != "latest");
        let objects = try_step!(providers.objects.list(&format!("backups/{env}/")).await);
        // backups/ENV/RUN/DB/manifest.json → RUN → set of DBs
        let mut runs: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for o in &objects {
            let parts: Vec<&str> = o.key.as_str().split('/').collect();
            if parts.len() == 5 && parts[4] == "manifest.json" {
                runs.entry(parts[2].to_owned())
                    .or_default()
                    .push(parts[3].to_owned());
            }
        }
        let complete: Vec<&String> = runs
            .iter()
            .filter(|(_, dbs)| inputs.databases.iter().all(|d| dbs.contains(d)))
            .map(|(r, _)| r)
            .collect();
        let chosen = match &wanted {
            Some(run) if complete.contains(&run) => run.clone(),
            Some(run) => {
                return Decision::Fail(Failure::permanent(format!(
                    "backup {run} does not hold all of {} in environment {env}",
                    inputs.databases.join(", ")
                )))
            }
            None => {
                // Latest by the manifests' taken_at.
                let mut best: Option<(String, String)> = None;
                for run in complete {
                    let key = format!("backups/{env}/{run}/{}/manifest.json", inputs.databases[0]);
                    let m = try_step!(read_manifest(ctx, &key).await);
                    if best.as_ref().map(|(t, _)| m.taken_at > *t).unwrap_or(true) {
                        best = Some((m.taken_at, run.clone()));
                    }
                }
                match best {
                    Some((_, run)) => run,
                    None => {
                        return Decision::Fail(
                            Failure::permanent(format!(
                                "no backup of {} found in environment {env}",
                                inputs.databases.join(", ")
                            ))
                            .with_hint(format!(
                                "take one: cutover run runbooks/backup.toml --env {env}"
                            )),
                        )
                    }
                }
            }
        };
        let mut out = Outputs::new();
        let mut taken = String::new();
        for d in &inputs.databases {
            let key = format!("backups/{env}/{chosen}/{d}/manifest.json");
            let m = try_step!(read_manifest(ctx, &key).await);
            if taken.is_empty() || m.taken_at < taken {
                taken = m.taken_at.clone();
            }
            out.insert(format!("{d}_manifest"), key.into());
            out.insert(
                format!("{d}_fingerprint"),
                m.fingerprint.content.clone().into(),
            );
        }
        out.insert("backup_run".into(), chosen.into());
        out.insert("taken_at".into(), taken.into());
        out.insert("selected_at".into(), now_rfc3339().into());
        Decision::Done(out)
    }
}
