//! Executor tests with scripted step kinds and paused tokio time: retry, backoff,
//! deadlines, compensation order, and a property test over random DAGs.

use super::executor::{Executor, SessionEnd};
use super::journal::{read_records, Event, Journal, Outcome};
use super::state::{replay, RunView};
use crate::config::{Environment, SourceFile};
use crate::failure::Failure;
use crate::ids::{RunId, StepId};
use crate::plan::{Plan, PlannedStep};
use crate::progress::no_progress;
use crate::retry::RetryPolicy;
use crate::steps::{Decision, OutputSpec, Outputs, Services, Step, StepContext, StepKind};
use async_trait::async_trait;
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// What scripted steps did, per run: `"start:a"`, `"done:a"`, `"undo:a"`, `"undone:a"`,
/// with the time in milliseconds since that run's first event (each test has its own
/// paused clock, so times are only comparable within one run).
type EventLog = Mutex<HashMap<String, (tokio::time::Instant, Vec<(u64, String)>)>>;

fn log() -> &'static EventLog {
    static LOG: OnceLock<EventLog> = OnceLock::new();
    LOG.get_or_init(Default::default)
}

fn record(ctx: &StepContext, what: &str) {
    let now = tokio::time::Instant::now();
    let mut log = log().lock().unwrap();
    let (origin, events) = log
        .entry(ctx.run_id.to_string())
        .or_insert_with(|| (now, Vec::new()));
    let at = now.saturating_duration_since(*origin).as_millis() as u64;
    events.push((at, format!("{what}:{}", ctx.step_id)));
}

fn timed_events(run: &RunId) -> Vec<(u64, String)> {
    log()
        .lock()
        .unwrap()
        .get(run.as_str())
        .map(|(_, events)| events.clone())
        .unwrap_or_default()
}

fn events(run: &RunId) -> Vec<String> {
    log()
        .lock()
        .unwrap()
        .get(run.as_str())
        .map(|(_, v)| v.iter().map(|(_, e)| e.clone()).collect())
        .unwrap_or_default()
}

/// Behaviour from inputs: `fail_times` (fail the first N attempts), `class`
/// (`transient`|`permanent`), `polls` (wait this many times before done),
/// `poll_ms`, `undo_fails`, `undo_ms` (the undo waits this long once, then is done),
/// `post_unknown` (its postcondition cannot be checked the first N times: a transient
/// failure), then `post_violated` (it fails permanently) or holds.
struct Scripted {
    polls_left: Option<u64>,
    undo_waited: bool,
}

fn input_u64(ctx: &StepContext, name: &str) -> u64 {
    ctx.inputs.get(name).and_then(|v| v.as_u64()).unwrap_or(0)
}

#[async_trait]
impl Step for Scripted {
    async fn advance(&mut self, ctx: &StepContext) -> Decision {
        if self.polls_left.is_none() {
            record(ctx, "start");
            self.polls_left = Some(input_u64(ctx, "polls"));
        }
        if u64::from(ctx.attempt) <= input_u64(ctx, "fail_times") {
            let permanent = ctx.inputs.get("class").and_then(|v| v.as_str()) == Some("permanent");
            return Decision::Fail(if permanent {
                Failure::permanent("scripted")
            } else {
                Failure::transient("scripted")
            });
        }
        let left = self.polls_left.as_mut().unwrap();
        if *left > 0 {
            *left -= 1;
            return Decision::wait(
                Duration::from_millis(input_u64(ctx, "poll_ms").max(1)),
                "polling",
            );
        }
        record(ctx, "done");
        let mut out = Outputs::new();
        out.insert("step".into(), ctx.step_id.to_string().into());
        Decision::Done(out)
    }

    async fn postcondition(
        &mut self,
        ctx: &StepContext,
        _outputs: &Outputs,
    ) -> Result<(), Failure> {
        record(ctx, "post");
        let checked = events(&ctx.run_id)
            .iter()
            .filter(|e| **e == format!("post:{}", ctx.step_id))
            .count() as u64;
        if checked <= input_u64(ctx, "post_unknown") {
            return Err(Failure::transient("server unavailable"));
        }
        if ctx.inputs.get("post_violated").and_then(|v| v.as_bool()) == Some(true) {
            return Err(Failure::permanent("no longer frozen"));
        }
        Ok(())
    }

    async fn compensate(&mut self, ctx: &StepContext, _outputs: Option<&Outputs>) -> Decision {
        let undo_ms = input_u64(ctx, "undo_ms");
        if !self.undo_waited {
            record(ctx, "undo");
            if ctx.inputs.get("undo_fails").and_then(|v| v.as_bool()) == Some(true) {
                return Decision::Fail(Failure::permanent("undo scripted to fail"));
            }
            if undo_ms > 0 {
                self.undo_waited = true;
                return Decision::wait(Duration::from_millis(undo_ms), "undoing");
            }
        }
        record(ctx, "undone");
        Decision::done()
    }
}

static SCRIPTED: StepKind = StepKind {
    name: "test.scripted",
    summary: "scripted test step",
    inputs: &[],
    outputs: OutputSpec::Dynamic,
    changes: "test effects",
    compensation: Some("test undo"),
    build: || {
        Box::new(Scripted {
            polls_left: None,
            undo_waited: false,
        })
    },
};

fn step(id: &str, needs: &[&str], inputs: serde_json::Value) -> PlannedStep {
    PlannedStep {
        id: StepId::new(id),
        kind: &SCRIPTED,
        description: None,
        needs: needs.iter().map(|n| StepId::new(*n)).collect(),
        inputs: inputs.as_object().cloned().unwrap_or_default(),
        retry: RetryPolicy {
            attempts: 4,
            backoff: Duration::from_secs(1),
            max_delay: Duration::from_secs(8),
        },
        timeout: None,
        when: None,
        compensate: None,
        location: SourceFile::new("t.toml", "").locate(None),
    }
}

fn environment(dir: &std::path::Path) -> Arc<Environment> {
    let text = format!(
        "name = \"t\"\nprovider = \"local\"\nstate_dir = \"{}\"\n",
        dir.display()
    );
    Arc::new(Environment::parse(SourceFile::new(dir.join("env.toml"), text)).unwrap())
}

struct Harness {
    _dir: tempfile::TempDir,
    run_id: RunId,
    journal_path: std::path::PathBuf,
    executor: Executor,
}

fn harness(name: &str, steps: Vec<PlannedStep>, concurrency: usize) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let run_id = RunId::new(format!("{name}-{}", rand::random::<u32>()));
    let env = environment(dir.path());
    let plan = Plan {
        name: name.into(),
        runbook_path: "t.toml".into(),
        environment: env.clone(),
        params: Default::default(),
        steps,
        concurrency,
        deadline: None,
        hash: "h".into(),
        step_index: Default::default(),
    };
    let journal_path = dir.path().join("journal.jsonl");
    let journal = Arc::new(Mutex::new(Journal::create(&journal_path).unwrap()));
    let services = Arc::new(Services {
        environment: env,
        run_dir: dir.path().to_path_buf(),
        progress: no_progress(),
        providers: None,
    });
    let (_tx, stop) = tokio::sync::watch::channel(false);
    std::mem::forget(_tx);
    let executor = Executor {
        plan: Arc::new(plan),
        run_id: run_id.clone(),
        journal,
        services,
        progress: no_progress(),
        stop,
    };
    Harness {
        _dir: dir,
        run_id,
        journal_path,
        executor,
    }
}

fn journal_view(h: &Harness) -> RunView {
    replay(&read_records(&h.journal_path).unwrap().0)
}

#[tokio::test(start_paused = true)]
async fn transient_failures_are_retried_with_growing_delays_until_success() {
    let h = harness(
        "retry",
        vec![step("a", &[], serde_json::json!({ "fail_times": 3 }))],
        1,
    );
    let started = tokio::time::Instant::now();
    let end = h.executor.run(&RunView::default()).await.unwrap();
    assert!(
        matches!(end, SessionEnd::Finished(Outcome::Succeeded, _)),
        "{end:?}"
    );
    let (records, _) = read_records(&h.journal_path).unwrap();
    let delays: Vec<u64> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::StepRetrying { delay_ms, .. } => Some(*delay_ms),
            _ => None,
        })
        .collect();
    assert_eq!(delays.len(), 3, "three failures, three retries");
    // Equal jitter: attempt n waits within [base/2, base] with base 1s, 2s, 4s.
    for (delay, base) in delays.iter().zip([1000u64, 2000, 4000]) {
        assert!(
            *delay >= base / 2 && *delay <= base,
            "delay {delay} outside [{}, {base}]",
            base / 2
        );
    }
    let elapsed = started.elapsed().as_millis() as u64;
    assert!(
        elapsed >= delays.iter().sum::<u64>(),
        "the engine slept the delays (paused clock): {elapsed}"
    );
    assert_eq!(journal_view(&h).steps[&StepId::new("a")].attempts, 4);
}

#[tokio::test(start_paused = true)]
async fn permanent_failures_are_never_retried() {
    let h = harness(
        "permanent",
        vec![step(
            "a",
            &[],
            serde_json::json!({ "fail_times": 1, "class": "permanent" }),
        )],
        1,
    );
    let end = h.executor.run(&RunView::default()).await.unwrap();
    assert!(
        matches!(end, SessionEnd::Finished(Outcome::RolledBack, _)),
        "{end:?}"
    );
    let view = journal_view(&h);
    assert_eq!(view.steps[&StepId::new("a")].attempts, 1);
    assert_eq!(view.steps[&StepId::new("a")].retries, 0);
}

#[tokio::test(start_paused = true)]
async fn retries_stop_at_the_attempt_limit() {
    let h = harness(
        "limit",
        vec![step("a", &[], serde_json::json!({ "fail_times": 10 }))],
        1,
    );
    let end = h.executor.run(&RunView::default()).await.unwrap();
    assert!(
        matches!(end, SessionEnd::Finished(Outcome::RolledBack, _)),
        "{end:?}"
    );
    assert_eq!(
        journal_view(&h).steps[&StepId::new("a")].attempts,
        4,
        "policy allows 4 attempts"
    );
}

#[tokio::test(start_paused = true)]
async fn a_step_deadline_fails_a_step_that_keeps_waiting() {
    let mut s = step(
        "slow",
        &[],
        serde_json::json!({ "polls": 1000, "poll_ms": 1000 }),
    );
    s.timeout = Some(Duration::from_secs(30));
    let h = harness("deadline", vec![s], 1);
    let started = tokio::time::Instant::now();
    let end = h.executor.run(&RunView::default()).await.unwrap();
    let SessionEnd::Finished(Outcome::RolledBack, message) = end else {
        panic!("{end:?}")
    };
    assert!(message.contains("timed out while polling"), "{message}");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(30) && elapsed < Duration::from_secs(32),
        "{elapsed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_run_deadline_stops_everything_and_rolls_back() {
    let mut h = harness(
        "run-deadline",
        vec![
            step("a", &[], serde_json::json!({})),
            step(
                "b",
                &["a"],
                serde_json::json!({ "polls": 1000, "poll_ms": 1000 }),
            ),
        ],
        2,
    );
    Arc::get_mut(&mut h.executor.plan).unwrap().deadline = Some(Duration::from_secs(10));
    let end = h.executor.run(&RunView::default()).await.unwrap();
    let SessionEnd::Finished(Outcome::RolledBack, message) = end else {
        panic!("{end:?}")
    };
    assert!(
        message.contains("timed out") || message.contains("deadline"),
        "{message}"
    );
    assert!(events(&h.run_id).contains(&"undo:a".to_string()));
}

#[tokio::test(start_paused = true)]
async fn compensation_runs_in_reverse_completion_order_with_unfinished_steps_first() {
    // a → b → c, a → d; c fails permanently after b and d are done.
    let h = harness(
        "order",
        vec![
            step("a", &[], serde_json::json!({})),
            step("b", &["a"], serde_json::json!({})),
            step(
                "d",
                &["a"],
                serde_json::json!({ "polls": 1, "poll_ms": 10 }),
            ),
            step(
                "c",
                &["b", "d"],
                serde_json::json!({ "fail_times": 1, "class": "permanent" }),
            ),
        ],
        1,
    );
    let end = h.executor.run(&RunView::default()).await.unwrap();
    assert!(
        matches!(end, SessionEnd::Finished(Outcome::RolledBack, _)),
        "{end:?}"
    );
    let undo: Vec<String> = events(&h.run_id)
        .into_iter()
        .filter(|e| e.starts_with("undo:"))
        .collect();
    assert_eq!(undo, vec!["undo:c", "undo:d", "undo:b", "undo:a"]);
}

/// p → a, p → b, (a, b) → c, concurrency 2; c fails permanently. a's undo takes 1 s;
/// b behaves as `b_inputs` say.
fn diamond(name: &str, b_inputs: serde_json::Value) -> Harness {
    harness(
        name,
        vec![
            step("p", &[], serde_json::json!({})),
            step("a", &["p"], serde_json::json!({ "undo_ms": 1000 })),
            step("b", &["p"], b_inputs),
            step(
                "c",
                &["a", "b"],
                serde_json::json!({ "fail_times": 1, "class": "permanent" }),
            ),
        ],
        2,
    )
}

#[tokio::test(start_paused = true)]
async fn independent_undos_run_side_by_side_and_a_shared_need_is_undone_after_both() {
    // a's and b's undos take 1 s each.
    let h = diamond("undo-parallel", serde_json::json!({ "undo_ms": 1000 }));
    let end = h.executor.run(&RunView::default()).await.unwrap();
    assert!(
        matches!(end, SessionEnd::Finished(Outcome::RolledBack, _)),
        "{end:?}"
    );
    let at = |what: &str| -> u64 {
        let all = timed_events(&h.run_id);
        all.iter()
            .find(|(_, e)| e == what)
            .map(|(t, _)| *t)
            .unwrap_or_else(|| panic!("no {what} in {all:?}"))
    };
    assert_eq!(at("undo:a"), at("undo:b"), "a and b are undone together");
    assert!(at("undone:a") >= at("undo:a") + 1000);
    assert!(at("undo:a") >= at("undone:c"), "c first: it needs a and b");
    assert!(
        at("undo:p") >= at("undone:a").max(at("undone:b")),
        "p waits for both: {:?}",
        timed_events(&h.run_id)
    );
}

#[tokio::test(start_paused = true)]
async fn after_a_failed_undo_the_running_ones_finish_and_nothing_new_starts() {
    // b's undo fails at once while a's takes 1 s.
    let h = diamond(
        "undo-parallel-fails",
        serde_json::json!({ "undo_fails": true }),
    );
    let end = h.executor.run(&RunView::default()).await.unwrap();
    let SessionEnd::Finished(Outcome::NeedsAttention, message) = end else {
        panic!("{end:?}")
    };
    assert!(message.contains("undoing step b then failed"), "{message}");
    let all = events(&h.run_id);
    assert!(all.contains(&"undone:a".to_string()), "{all:?}");
    assert!(!all.contains(&"undo:p".to_string()), "{all:?}");
}

#[tokio::test(start_paused = true)]
async fn a_failed_compensation_stops_the_rollback_and_needs_attention() {
    let h = harness(
        "undo-fails",
        vec![
            step("a", &[], serde_json::json!({})),
            step("b", &["a"], serde_json::json!({ "undo_fails": true })),
            step(
                "c",
                &["b"],
                serde_json::json!({ "fail_times": 1, "class": "permanent" }),
            ),
        ],
        1,
    );
    let end = h.executor.run(&RunView::default()).await.unwrap();
    let SessionEnd::Finished(Outcome::NeedsAttention, message) = end else {
        panic!("{end:?}")
    };
    assert!(
        message.contains("undoing step b then failed") && message.contains("cutover resume"),
        "{message}"
    );
    let undo: Vec<String> = events(&h.run_id)
        .into_iter()
        .filter(|e| e.starts_with("undo:"))
        .collect();
    assert_eq!(
        undo,
        vec!["undo:c", "undo:b"],
        "a is not undone after b's undo failed"
    );
}

#[tokio::test(start_paused = true)]
async fn a_resumed_run_does_not_rerun_finished_steps() {
    let h = harness(
        "resume",
        vec![
            step("a", &[], serde_json::json!({})),
            step("b", &["a"], serde_json::json!({})),
        ],
        1,
    );
    let mut prior = RunView::default();
    let mut a = super::state::StepView {
        status: super::state::StepStatus::Succeeded,
        attempts: 1,
        ..Default::default()
    };
    a.outputs = Some(Outputs::new());
    prior.steps.insert(StepId::new("a"), a);
    prior.completion_order.push(StepId::new("a"));
    prior.start_order.push(StepId::new("a"));
    let end = h.executor.run(&prior).await.unwrap();
    assert!(matches!(end, SessionEnd::Finished(Outcome::Succeeded, _)));
    // a's postcondition is checked instead of running it again.
    assert_eq!(events(&h.run_id), vec!["post:a", "start:b", "done:b"]);
}

/// A random DAG: step i may need any step j < i.
fn dag_strategy() -> impl Strategy<Value = (Vec<Vec<usize>>, usize)> {
    (1usize..12, 1usize..5).prop_flat_map(|(n, concurrency)| {
        let needs = (0..n)
            .map(|i| {
                proptest::collection::vec(0..i.max(1), 0..=i.min(3)).prop_map(move |v| {
                    if i == 0 {
                        vec![]
                    } else {
                        v
                    }
                })
            })
            .collect::<Vec<_>>();
        (needs, Just(concurrency))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn random_dags_run_every_step_once_after_its_needs((needs, concurrency) in dag_strategy()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
        rt.block_on(async {
            let steps: Vec<PlannedStep> = needs.iter().enumerate().map(|(i, ns)| {
                let mut ns: Vec<String> = ns.iter().map(|j| format!("s{j}")).collect();
                ns.sort();
                ns.dedup();
                let refs: Vec<&str> = ns.iter().map(String::as_str).collect();
                step(&format!("s{i}"), &refs, serde_json::json!({ "polls": (i % 3) as u64, "poll_ms": 5 + i as u64 }))
            }).collect();
            let h = harness("prop", steps.clone(), concurrency);
            let end = h.executor.run(&RunView::default()).await.unwrap();
            prop_assert!(matches!(end, SessionEnd::Finished(Outcome::Succeeded, _)));
            let log = timed_events(&h.run_id);
            for s in &steps {
                let starts: Vec<u64> = log.iter().filter(|(_, e)| *e == format!("start:{}", s.id)).map(|(t, _)| *t).collect();
                prop_assert_eq!(starts.len(), 1, "step {} started once", s.id);
                for need in &s.needs {
                    let done = log.iter().find(|(_, e)| *e == format!("done:{need}")).map(|(t, _)| *t);
                    prop_assert!(done.is_some_and(|d| d <= starts[0]), "{} started before its need {} finished", s.id, need);
                }
            }
            // Never more than `concurrency` running at once.
            let mut running = 0i64;
            let mut peak = 0i64;
            let mut ordered = log.clone();
            ordered.sort_by_key(|(t, e)| (*t, e.starts_with("start:")));
            for (_, e) in &ordered {
                if e.starts_with("start:") { running += 1; peak = peak.max(running); } else if e.starts_with("done:") { running -= 1; }
            }
            prop_assert!(peak as usize <= concurrency, "peak {} > {}", peak, concurrency);
            Ok(())
        })?;
    }
}

/// A view in which `done` succeeded in an earlier session (as a resume reads it).
fn succeeded_earlier(done: &[&str]) -> RunView {
    started_earlier(done, &[])
}

/// A view in which `done` succeeded and `unfinished` had started in an earlier session.
fn started_earlier(done: &[&str], unfinished: &[&str]) -> RunView {
    let mut records = Vec::new();
    let events = done
        .iter()
        .flat_map(|id| {
            [
                Event::StepStarted {
                    step: StepId::new(*id),
                    attempt: 1,
                    kind: None,
                },
                Event::StepSucceeded {
                    step: StepId::new(*id),
                    outputs: Outputs::new(),
                },
            ]
        })
        .chain(unfinished.iter().map(|id| Event::StepStarted {
            step: StepId::new(*id),
            attempt: 1,
            kind: None,
        }));
    for event in events {
        records.push(super::journal::Record {
            seq: records.len() as u64 + 1,
            at: chrono::Utc::now(),
            event,
        });
    }
    replay(&records)
}

fn postcondition_details(h: &Harness) -> Vec<(String, bool, String)> {
    read_records(&h.journal_path)
        .unwrap()
        .0
        .into_iter()
        .filter_map(|r| match r.event {
            Event::PostconditionChecked { step, ok, detail } => {
                Some((step.to_string(), ok, detail))
            }
            _ => None,
        })
        .collect()
}

/// `freeze` succeeded before the crash and `backup` (its dump) was under way; on resume
/// freeze's postcondition cannot be checked twice (the server is down for that dump),
/// then holds. `backup` goes on at once (it adopts its command); `restore`, which needs
/// freeze through it, waits for the confirmation; `side`, which does not, starts at once.
#[tokio::test(start_paused = true)]
async fn a_resumed_step_waits_until_an_unconfirmed_effect_it_needs_is_confirmed() {
    let h = harness(
        "unconfirmed",
        vec![
            step("freeze", &[], serde_json::json!({ "post_unknown": 2 })),
            step("backup", &["freeze"], serde_json::json!({})),
            step("restore", &["backup"], serde_json::json!({})),
            // Busy for 30 s: the re-check comes from the timer, not from a step ending.
            step(
                "side",
                &[],
                serde_json::json!({ "polls": 1, "poll_ms": 30_000 }),
            ),
        ],
        4,
    );
    let prior = started_earlier(&["freeze"], &["backup"]);
    let end = h.executor.run(&prior).await.unwrap();
    assert!(
        matches!(end, SessionEnd::Finished(Outcome::Succeeded, _)),
        "{end:?}"
    );
    let timed = timed_events(&h.run_id);
    let at = |what: &str| timed.iter().find(|(_, e)| e == what).map(|(t, _)| *t);
    assert_eq!(at("start:side"), Some(0), "{timed:?}");
    assert_eq!(at("start:backup"), Some(0), "{timed:?}");
    // Checked at resume and when restore was first ready (t = 0), then 5 s later: holds.
    let restore = at("start:restore").expect("restore ran");
    assert_eq!(
        restore, 5000,
        "restore started on the confirmation: {timed:?}"
    );
    assert!(at("done:side").unwrap() > restore, "{timed:?}");
    assert_eq!(
        events(&h.run_id)
            .iter()
            .filter(|e| *e == "post:freeze")
            .count(),
        3,
        "one check at resume, two before restore"
    );
    let details = postcondition_details(&h);
    assert!(
        details.contains(&(
            "freeze".into(),
            false,
            "not confirmed yet (server unavailable); checked again before a step that needs it starts".into()
        )),
        "{details:?}"
    );
    assert!(
        details.contains(&(
            "freeze".into(),
            true,
            "holds (confirmed before restore started)".into()
        )),
        "{details:?}"
    );
}

/// An unconfirmed effect that turns out violated, or that cannot be confirmed within
/// the limit, ends the run NeedsAttention; the step that needed it never starts and
/// nothing is undone.
#[tokio::test(start_paused = true)]
async fn an_unconfirmed_effect_found_violated_or_never_confirmed_needs_attention() {
    for (name, inputs, says) in [
        (
            "violated",
            serde_json::json!({ "post_unknown": 1, "post_violated": true }),
            "effect no longer holds: no longer frozen",
        ),
        (
            "never",
            serde_json::json!({ "post_unknown": 100_000 }),
            "could not be checked for 10 minutes: server unavailable",
        ),
    ] {
        let h = harness(
            name,
            vec![
                step("freeze", &[], inputs),
                step("backup", &["freeze"], serde_json::json!({})),
            ],
            2,
        );
        let end = h
            .executor
            .run(&succeeded_earlier(&["freeze"]))
            .await
            .unwrap();
        match &end {
            SessionEnd::Finished(Outcome::NeedsAttention, message) => {
                assert!(message.contains(says), "{name}: {message}")
            }
            other => panic!("{name}: {other:?}"),
        }
        let seen = events(&h.run_id);
        assert!(
            !seen.iter().any(|e| e == "start:backup"),
            "{name}: {seen:?}"
        );
        assert!(
            !seen.iter().any(|e| e.starts_with("undo")),
            "{name}: {seen:?}"
        );
    }
}

/// A step that checkpoints `{"made": "thing-1"}` and then fails; its compensation
/// records what it was handed (`recorded:…`, `own:…`), checkpoints `{"undone": "half"}`
/// and fails once (transient), then finishes.
struct Remembers;

#[async_trait]
impl Step for Remembers {
    async fn advance(&mut self, ctx: &StepContext) -> Decision {
        ctx.save_checkpoint(serde_json::json!({ "made": "thing-1" }))
            .unwrap();
        Decision::Fail(Failure::permanent("failed after making thing-1"))
    }

    async fn compensate(&mut self, ctx: &StepContext, outputs: Option<&Outputs>) -> Decision {
        let recorded = ctx.recorded_str(outputs, "made").unwrap_or_default();
        let own = ctx.checkpoint_str("undone").unwrap_or_default();
        record(ctx, &format!("recorded={recorded},own={own}"));
        if own.is_empty() {
            ctx.update_checkpoint("undone", "half".into()).unwrap();
            return Decision::Fail(Failure::transient("undo interrupted halfway"));
        }
        Decision::done()
    }
}

static REMEMBERS: StepKind = StepKind {
    name: "test.remembers",
    summary: "checkpoints, then fails",
    inputs: &[],
    outputs: OutputSpec::Dynamic,
    changes: "test effects",
    compensation: Some("test undo"),
    build: || Box::new(Remembers),
};

/// A compensation sees what its forward step checkpointed before it failed (the
/// instance it created, the switch it made): before, compensations were handed no
/// checkpoint, so a step that failed after its side effect but before finishing was
/// "undone" without undoing it. The compensation's own checkpoint is journaled apart
/// (the forward one stays as it was) and carries over to its next attempt.
#[tokio::test(start_paused = true)]
async fn a_compensation_reads_the_forward_checkpoint_and_keeps_its_own_apart() {
    let mut s = step("make", &[], serde_json::json!({}));
    s.kind = &REMEMBERS;
    let h = harness("remembers", vec![s], 1);
    let end = h.executor.run(&RunView::default()).await.unwrap();
    assert!(
        matches!(end, SessionEnd::Finished(Outcome::RolledBack, _)),
        "{end:?}"
    );
    assert_eq!(
        events(&h.run_id),
        [
            "recorded=thing-1,own=:make",
            "recorded=thing-1,own=half:make"
        ]
    );
    let view = journal_view(&h);
    let make = &view.steps[&StepId::new("make")];
    assert_eq!(
        make.checkpoint,
        Some(serde_json::json!({ "made": "thing-1" }))
    );
    assert_eq!(
        make.compensation_checkpoint,
        Some(serde_json::json!({ "undone": "half" }))
    );
}
