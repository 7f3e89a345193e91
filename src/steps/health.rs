//! `health.check`: real Cypher queries as the application user, N consecutive successes.
//! The app's own `/health` never touches the database, so it proves nothing here.

use super::db_access::{current_secret, parse_duration, DbRef};
use super::kind::{step_inputs, OutputSpec, StepKind};
use super::{Decision, Outputs, Step, StepContext};
use crate::failure::{ErrorClass, Failure};
use crate::integrity::invariants::run_invariants;
use crate::try_step;
use async_trait::async_trait;

pub static KINDS: &[StepKind] = &[StepKind {
    name: "health.check",
    summary: "run real Cypher queries as the application until N consecutive rounds succeed",
    inputs: HealthInputs::INPUTS,
    outputs: OutputSpec::Fixed(&["rounds", "successes"]),
    changes: "",
    compensation: None,
    build: || {
        Box::new(Health {
            streak: 0,
            rounds: 0,
        })
    },
}];

step_inputs! {
    struct HealthInputs {
        database: String = required String, "database name in the environment";
        instance: String = required String, "instance id";
        successes: Option<u32> = optional Integer, "consecutive successful rounds needed (default 3)";
        interval: Option<String> = optional Duration, "pause between rounds (default \"1s\")";
        queries: Vec<String> = optional List, "extra read queries; the database's invariants always run";
    }
}

struct Health {
    streak: u32,
    rounds: u32,
}

/// One health round on `database` at `instance`: a login as the application user, the
/// `queries`, then the database's invariants. Also the round of `health.bake`.
pub(crate) async fn round(
    ctx: &StepContext,
    database: &str,
    instance: &str,
    extra: &[String],
) -> Result<(), Failure> {
    let db = DbRef::open(ctx, database, instance).await?;
    let user = db.def.user.clone();
    let password =
        current_secret(ctx, &db.def.app_password_secret(&ctx.environment().name)).await?;
    let target = db.engine.bolt_target(&db.handle, &user, password);
    let graph = target.connect(1).await?;
    let mut queries = vec!["MATCH (n) RETURN count(n) AS nodes".to_owned()];
    queries.extend(extra.iter().cloned());
    for q in &queries {
        crate::db::bolt::run_and_discard(&graph, &target.uri, q).await?;
    }
    let invariants = db.def.invariants.clone();
    let outcomes = run_invariants(&graph, &invariants)
        .await
        .map_err(|e| Failure::from(e).context(database))?;
    let broken: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.holds())
        .map(|o| format!("{}: {}", o.name, o.render()))
        .collect();
    if !broken.is_empty() {
        return Err(Failure::permanent(format!(
            "{database} on {instance}: invariants broken: {}",
            broken.join("; ")
        )));
    }
    Ok(())
}

#[async_trait]
impl Step for Health {
    async fn advance(&mut self, ctx: &StepContext) -> Decision {
        let inputs: HealthInputs = try_step!(ctx.inputs());
        let needed = inputs.successes.unwrap_or(3).max(1);
        let interval = try_step!(parse_duration(inputs.interval.as_deref().unwrap_or("1s")));
        self.rounds += 1;
        match round(ctx, &inputs.database, &inputs.instance, &inputs.queries).await {
            Ok(()) => self.streak += 1,
            Err(f) if f.class == ErrorClass::Transient => {
                self.streak = 0;
                return Decision::wait(
                    interval,
                    format!(
                        "health round {} failed ({}); starting the count again",
                        self.rounds, f.message
                    ),
                );
            }
            Err(f) => return Decision::Fail(f),
        }
        if self.streak >= needed {
            let mut out = Outputs::new();
            out.insert("rounds".into(), self.rounds.into());
            out.insert("successes".into(), self.streak.into());
            Decision::Done(out)
        } else {
            Decision::wait(
                interval,
                format!("{}/{needed} consecutive healthy rounds", self.streak),
            )
        }
    }
}
