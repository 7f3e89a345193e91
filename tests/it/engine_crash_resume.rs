//! Crash and resume: a 12-step runbook with fan-out and fan-in is killed with a real
//! `kill -9` right after each journal event in turn, then resumed. Every resumed run
//! must reach the same end state as an uninterrupted one, no finished step may run
//! again, and no step's effect may happen twice.

use super::engine_cli::{kill_9, run_args, text, wait_for, Workspace};
use std::collections::BTreeMap;
use std::time::Duration;

/// Each step records every execution in `executions`, and applies its effect once,
/// guarded by the effect's existence: the effect is a file renamed into place whole
/// (written beside it first, then `mv`: a kill between the shell creating a file and
/// writing to it once left an empty effect that the guard then took as done), so
/// `effect-STEP` exists only with its content, and its number of lines is the number of
/// times the effect happened.
fn runbook() -> String {
    let script = r#"run = '''
echo "$CUTOVER_STEP_ID" >> ../../../effects/executions
effect="../../../effects/effect-$CUTOVER_STEP_ID"
if [ ! -e "$effect" ]; then
  echo "$CUTOVER_IDEMPOTENCY_TOKEN" > "../../../effects/partial.$CUTOVER_STEP_ID.$$"
  mv "../../../effects/partial.$CUTOVER_STEP_ID.$$" "$effect"
fi
echo "value=$CUTOVER_STEP_ID" >> "$CUTOVER_OUTPUTS"
'''"#;
    // prepare → {a1, a2, a3} → merge-a → {b1, b2} → merge-b → {c1, c2} → final → report
    let steps: &[(&str, &[&str])] = &[
        ("prepare", &[]),
        ("a1", &["prepare"]),
        ("a2", &["prepare"]),
        ("a3", &["prepare"]),
        ("merge-a", &["a1", "a2", "a3"]),
        ("b1", &["merge-a"]),
        ("b2", &["merge-a"]),
        ("merge-b", &["b1", "b2"]),
        ("c1", &["merge-b"]),
        ("c2", &["merge-b", "a3"]),
        ("final", &["c1", "c2"]),
        ("report", &["final"]),
    ];
    let mut out = String::from("name = \"crash\"\nconcurrency = 3\n");
    for (id, needs) in steps {
        let needs: Vec<String> = needs.iter().map(|n| format!("\"{n}\"")).collect();
        out.push_str(&format!("\n[[step]]\nid = \"{id}\"\nuses = \"util.shell\"\nneeds = [{}]\n[step.with]\n{script}\n", needs.join(", ")));
    }
    out
}

const RUN_ID: &str = "crash-test";

struct EndState {
    outcome: String,
    /// effect file → content (the idempotency token)
    effects: BTreeMap<String, String>,
    executions: BTreeMap<String, usize>,
    outputs: BTreeMap<String, serde_json::Value>,
}

fn end_state(ws: &Workspace) -> EndState {
    let effects_dir = ws.path().join("effects");
    let mut effects = BTreeMap::new();
    for entry in std::fs::read_dir(&effects_dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with("effect-") {
            effects.insert(name, std::fs::read_to_string(entry.path()).unwrap());
        }
    }
    let count = |file: &str| {
        let mut m = BTreeMap::new();
        for line in std::fs::read_to_string(effects_dir.join(file))
            .unwrap_or_default()
            .lines()
        {
            *m.entry(line.to_string()).or_insert(0) += 1;
        }
        m
    };
    let journal = ws.journal(RUN_ID);
    let outcome = journal
        .iter()
        .rev()
        .find(|e| e["event"] == "run_finished")
        .map(|e| e["outcome"].as_str().unwrap().to_string())
        .unwrap_or_default();
    let mut outputs = BTreeMap::new();
    for e in &journal {
        if e["event"] == "step_succeeded" {
            let mut o = e["outputs"].clone();
            o.as_object_mut().unwrap().remove("exit_code");
            outputs.insert(e["step"].as_str().unwrap().to_string(), o);
        }
    }
    EndState {
        outcome,
        effects,
        executions: count("executions"),
        outputs,
    }
}

fn fresh_workspace() -> Workspace {
    let ws = Workspace::new(&runbook());
    std::fs::create_dir_all(ws.path().join("effects")).unwrap();
    ws
}

#[test]
fn kill_9_after_every_journal_event_then_resume_reaches_the_same_end_state() {
    // Reference: an uninterrupted run.
    let reference_ws = fresh_workspace();
    let out = reference_ws.run(&run_args(RUN_ID));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let reference = end_state(&reference_ws);
    assert_eq!(reference.outcome, "Succeeded");
    assert_eq!(reference.effects.len(), 12);
    let total_events = reference_ws.journal(RUN_ID).len();
    assert!(
        total_events >= 12 * 3 + 2,
        "journal has {total_events} events"
    );

    for kill_after in 1..=total_events {
        let ws = fresh_workspace();
        let mut child = ws.spawn_run(RUN_ID, Some(kill_after));
        let marker = ws
            .state()
            .join("runs")
            .join(RUN_ID)
            .join(format!("paused-at-{kill_after}"));
        assert!(
            wait_for(&marker, Duration::from_secs(60)),
            "run never reached event {kill_after}"
        );
        // The real thing: SIGKILL, no chance to clean up.
        kill_9(&mut child);

        // What had finished before the kill must never run again.
        let journal = ws.journal(RUN_ID);
        assert_eq!(
            journal.len(),
            kill_after,
            "exactly {kill_after} events were on disk"
        );
        let finished_before: Vec<String> = journal
            .iter()
            .filter(|e| e["event"] == "step_succeeded")
            .map(|e| e["step"].as_str().unwrap().to_string())
            .collect();
        let run_finished = journal.iter().any(|e| e["event"] == "run_finished");

        if !run_finished {
            let out = ws.run(&["resume", RUN_ID, "--env", "env.toml"]);
            assert_eq!(
                out.status.code(),
                Some(0),
                "resume after event {kill_after}: {}",
                text(&out)
            );
        }
        let state = end_state(&ws);
        assert_eq!(state.outcome, "Succeeded", "after event {kill_after}");
        assert_eq!(
            state.effects, reference.effects,
            "effects differ after a kill at event {kill_after}"
        );
        assert_eq!(
            state.outputs, reference.outputs,
            "outputs differ after a kill at event {kill_after}"
        );
        for (file, content) in &state.effects {
            assert_eq!(
                content.lines().count(),
                1,
                "{file} happened {} times (kill at event {kill_after})",
                content.lines().count()
            );
        }
        assert_eq!(state.effects.len(), 12);
        for step in &finished_before {
            assert_eq!(
                state.executions.get(step),
                Some(&1),
                "{step} finished before the kill at event {kill_after} but ran again"
            );
        }
        // The resumed journal checks finished steps instead of re-running them.
        if !run_finished && !finished_before.is_empty() {
            let journal = ws.journal(RUN_ID);
            let checked = journal
                .iter()
                .filter(|e| e["event"] == "postcondition_checked")
                .count();
            assert_eq!(
                checked,
                finished_before.len(),
                "every finished step's postcondition is re-checked once"
            );
        }
    }
}
