//! `health.bake`: the watched bake window after the switch.
//!
//! Blue stays frozen and alive while green serves; this step health-checks every listed
//! green database with the application's own login, the runbook's queries and the
//! database's invariants (the same round as `health.check`), once per `interval`, until
//! the bake `duration` has passed. When the environment names the application's own
//! health endpoint (`[traffic] health_url`), each round asks it too (`app_health`).
//!
//! # Guarantees
//! - It never sleeps: each call runs one round and returns `Wait` until the next.
//! - The deadline is a wall-clock time journaled in the step's checkpoint on the first
//!   call. A resumed run (after a crash or Ctrl-C) continues the same window: it never
//!   starts the bake over, and a window that ran out while nobody watched still needs one
//!   healthy round before it passes.
//! - It passes only when the deadline has passed *and* the last round was healthy.
//! - A permanent failure (a query error, a broken invariant, a refused login) fails the
//!   bake at once; transient ones (the server does not answer) are tolerated up to
//!   `tolerate` rounds in a row, then fail it. A failed bake fails the run with a
//!   failure whose hint names the rollback (`cutover rollback RUN_ID --env ENV`).
//!
//! Caveat: the clock is the controller's; a wall-clock jump moves the deadline with it.

use super::db_access::parse_duration;
use super::health::round;
use super::kind::{step_inputs, OutputSpec, StepKind};
use super::{Decision, Outputs, Step, StepContext};
use crate::failure::{ErrorClass, Failure};
use crate::try_step;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::time::Duration;

pub static KINDS: &[StepKind] = &[StepKind {
    name: "health.bake",
    summary: "watch green for the bake window: health rounds at an interval until the deadline (journaled) passes",
    inputs: BakeInputs::INPUTS,
    outputs: OutputSpec::Fixed(&["rounds", "deadline", "passed_at"]),
    changes: "",
    compensation: None,
    build: || {
        Box::new(Bake {
            rounds: 0,
            unanswered: 0,
            app_health: None,
        })
    },
}];

step_inputs! {
    struct BakeInputs {
        databases: BTreeMap<String, String> = required Map, "database name → the instance to watch (green)";
        duration: String = required Duration, "how long the bake lasts";
        interval: Option<String> = optional Duration, "time between health rounds (default \"5s\")";
        tolerate: Option<u32> = optional Integer, "unanswered rounds in a row that are tolerated before the bake fails (default 3)";
        queries: Vec<String> = optional List, "extra read queries per round; the database's invariants always run";
    }
}

struct Bake {
    /// Rounds run in this session (the failure points count on it).
    rounds: u32,
    /// Transient failures in a row.
    unanswered: u32,
    /// The application's health endpoint, built on the first round that needs it.
    app_health: Option<super::app_health::AppHealth>,
}

/// The bake's deadline: the journaled one, or now + `duration` (journaled first).
fn deadline(ctx: &StepContext, duration: Duration) -> Result<DateTime<Utc>, Failure> {
    let chrono_duration = chrono::Duration::from_std(duration).map_err(|_| {
        Failure::permanent(format!(
            "step {}: the bake duration is too long",
            ctx.step_id
        ))
    })?;
    ctx.checkpointed_time("deadline", || Utc::now() + chrono_duration)
}

/// "1m 05s"-style remaining time for progress lines.
fn left(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m {s:02}s"),
        (h, m, _) => format!("{h}h {m:02}m"),
    }
}

fn rollback_hint(ctx: &StepContext) -> String {
    format!(
        "green failed its bake; roll back with `cutover rollback {} --env {}` (blue is frozen and alive; a rollback carries every write green took back to blue)",
        ctx.run_id,
        ctx.environment().source.path.display()
    )
}

/// The application's service in one round (the ECS service on aws: one deployment, every
/// desired task running, none pending). Not fully running is transient, tolerated like an
/// unanswered database round (a task replaced after a crash comes back); a failed
/// deployment is permanent: the bake fails and rolls back.
async fn app_service_round(app: &dyn crate::providers::AppService) -> Result<(), Failure> {
    match app.settled().await? {
        crate::providers::Readiness::Ready => Ok(()),
        crate::providers::Readiness::NotYet(why) => Err(Failure::transient(format!(
            "{} is not fully running: {why}",
            app.describe()
        ))),
    }
}

/// A permanent failure of round `round` (what failed, and why), with the rollback hint.
fn failed_round(ctx: &StepContext, round: u32, what: &str) -> Decision {
    Decision::Fail(
        Failure::permanent(format!("bake failed in round {round}: {what}"))
            .with_hint(rollback_hint(ctx)),
    )
}

#[async_trait]
impl Step for Bake {
    async fn advance(&mut self, ctx: &StepContext) -> Decision {
        let inputs: BakeInputs = try_step!(ctx.inputs());
        let duration = try_step!(parse_duration(&inputs.duration));
        let interval = try_step!(parse_duration(inputs.interval.as_deref().unwrap_or("5s")));
        let tolerate = inputs.tolerate.unwrap_or(3);
        if inputs.databases.is_empty() {
            return Decision::Fail(Failure::permanent(format!(
                "step {}: `databases` names no database to watch",
                ctx.step_id
            )));
        }
        let deadline = try_step!(deadline(ctx, duration));
        self.rounds += 1;
        let mut unanswered = Vec::new();
        for (database, instance) in &inputs.databases {
            match round(ctx, database, instance, &inputs.queries).await {
                Ok(()) => {}
                Err(f) if f.class == ErrorClass::Transient => {
                    unanswered.push(format!("{database}: {}", f.message))
                }
                Err(f) => {
                    return failed_round(
                        ctx,
                        self.rounds,
                        &format!("{database} on {instance}: {}", f.message),
                    )
                }
            }
        }
        if let Some(url) = super::app_health::health_url(ctx.environment()) {
            let health = match self.app_health.take() {
                Some(health) => health,
                None => try_step!(super::app_health::AppHealth::new(url)),
            };
            let answer = health.check().await;
            self.app_health = Some(health);
            match answer {
                Ok(()) => {}
                Err(f) if f.class == ErrorClass::Transient => unanswered.push(f.message),
                Err(f) => return failed_round(ctx, self.rounds, &f.message),
            }
        }
        if let Some(app) = try_step!(ctx.providers()).app.clone() {
            match app_service_round(app.as_ref()).await {
                Ok(()) => {}
                Err(f) if f.class == ErrorClass::Transient => unanswered.push(f.message),
                Err(f) => return failed_round(ctx, self.rounds, &f.message),
            }
        }
        let remaining = deadline - Utc::now();
        if !unanswered.is_empty() {
            self.unanswered += 1;
            if self.unanswered > tolerate {
                return Decision::Fail(
                    Failure::permanent(format!(
                        "bake failed: green or the application did not answer {} rounds in a row ({})",
                        self.unanswered,
                        unanswered.join("; ")
                    ))
                    .with_hint(rollback_hint(ctx)),
                );
            }
            return Decision::wait(
                interval,
                format!(
                    "baking, {} left: round {} unanswered ({}/{tolerate} tolerated): {}",
                    left(remaining),
                    self.rounds,
                    self.unanswered,
                    unanswered.join("; ")
                ),
            );
        }
        self.unanswered = 0;
        if remaining <= chrono::Duration::zero() {
            let mut out = Outputs::new();
            out.insert("rounds".into(), self.rounds.into());
            out.insert(
                "deadline".into(),
                deadline
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                    .into(),
            );
            out.insert("passed_at".into(), super::db_access::now_rfc3339().into());
            return Decision::Done(out);
        }
        let until_deadline = remaining.to_std().unwrap_or_default();
        Decision::wait(
            interval.min(until_deadline).max(Duration::from_millis(50)),
            format!(
                "baking, {} left: round {} healthy ({})",
                left(remaining),
                self.rounds,
                inputs
                    .databases
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{app_service_round, deadline, left};
    use crate::config::source::SourceFile;
    use crate::config::Environment;
    use crate::failure::ErrorClass;
    use crate::failure::Failure;
    use crate::ids::{RunId, StepId};
    use crate::progress::no_progress;
    use crate::providers::{AppService, Readiness};
    use crate::steps::context::{Services, StepContext, StepRecorder};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    #[derive(Default)]
    struct Checkpoints(Mutex<Vec<serde_json::Value>>);

    impl StepRecorder for Checkpoints {
        fn intent(
            &self,
            _: &StepId,
            _: &str,
            _: &str,
            _: serde_json::Value,
        ) -> Result<(), Failure> {
            Ok(())
        }
        fn checkpoint(&self, _: &StepId, state: serde_json::Value) -> Result<(), Failure> {
            self.0.lock().unwrap().push(state);
            Ok(())
        }
    }

    fn ctx(
        dir: &std::path::Path,
        journal: &Arc<Checkpoints>,
        checkpoint: Option<serde_json::Value>,
    ) -> StepContext {
        let env = Environment::parse(SourceFile::new(
            dir.join("unit.toml"),
            "name = \"unit\"\nprovider = \"local\"\nstate_dir = \"state\"\n",
        ))
        .unwrap_or_else(|p| panic!("{p:?}"));
        let services = Arc::new(Services {
            environment: Arc::new(env),
            run_dir: dir.to_path_buf(),
            progress: no_progress(),
            providers: None,
        });
        StepContext::new(
            RunId::new("run-1"),
            StepId::new("bake"),
            1,
            serde_json::Map::new(),
            services,
            journal.clone(),
            checkpoint,
        )
    }

    #[test]
    fn the_deadline_is_journaled_once_and_a_resumed_bake_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(Checkpoints::default());
        let first = deadline(&ctx(dir.path(), &journal, None), Duration::from_secs(3600)).unwrap();
        let journaled = journal
            .0
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("journaled");
        assert!(first > chrono::Utc::now() + chrono::Duration::minutes(59));
        // Resumed (the executor hands the journaled checkpoint back): the same deadline,
        // not a new hour, and nothing journaled again.
        let again = deadline(
            &ctx(dir.path(), &journal, Some(journaled)),
            Duration::from_secs(3600),
        )
        .unwrap();
        assert_eq!(again, first);
        assert_eq!(journal.0.lock().unwrap().len(), 1);
        // A window that ran out while nobody watched stays run out.
        let past = serde_json::json!({ "deadline": "2026-01-01T00:00:00.000Z" });
        let d = deadline(
            &ctx(dir.path(), &journal, Some(past)),
            Duration::from_secs(60),
        )
        .unwrap();
        assert!(d < chrono::Utc::now());
        let bad = serde_json::json!({ "deadline": "tomorrow" });
        let err = deadline(
            &ctx(dir.path(), &journal, Some(bad)),
            Duration::from_secs(60),
        )
        .unwrap_err();
        assert!(err.message.contains("cannot be read"), "{}", err.message);
    }

    #[test]
    fn time_left_reads_as_minutes_and_seconds() {
        assert_eq!(left(chrono::Duration::seconds(0)), "0s");
        assert_eq!(left(chrono::Duration::seconds(-5)), "0s");
        assert_eq!(left(chrono::Duration::seconds(65)), "1m 05s");
        assert_eq!(left(chrono::Duration::seconds(7260)), "2h 01m");
    }

    /// An application service that answers `settled` with each of `answers` in turn.
    struct Service(Mutex<Vec<Result<Readiness, Failure>>>);

    #[async_trait::async_trait]
    impl AppService for Service {
        fn describe(&self) -> String {
            "ECS service c/credex".into()
        }
        async fn restart(&self) -> Result<(), Failure> {
            Ok(())
        }
        async fn settled(&self) -> Result<Readiness, Failure> {
            self.0.lock().unwrap().remove(0)
        }
    }

    #[tokio::test]
    async fn the_app_service_is_healthy_when_settled_tolerated_when_not_and_fatal_when_failed() {
        let app = Service(Mutex::new(vec![
            Ok(Readiness::Ready),
            Ok(Readiness::NotYet("primary 1 running of 2 desired".into())),
            Err(Failure::permanent(
                "deployment ecs-svc/1 failed: tasks failed to start",
            )),
        ]));
        app_service_round(&app).await.unwrap();
        let short = app_service_round(&app).await.unwrap_err();
        assert_eq!(short.class, ErrorClass::Transient);
        assert_eq!(
            short.message,
            "ECS service c/credex is not fully running: primary 1 running of 2 desired"
        );
        let failed = app_service_round(&app).await.unwrap_err();
        assert_eq!(failed.class, ErrorClass::Permanent);
        assert!(
            failed.message.contains("tasks failed to start"),
            "{}",
            failed.message
        );
    }
}
