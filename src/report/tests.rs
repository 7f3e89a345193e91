//! Reports built from hand-written journals.

use super::model::{SegmentEnd, SessionEnd, REDACTED};
use super::*;
use crate::engine::journal::{Event, Outcome};
use crate::engine::state::{CompensationStatus, StepStatus};
use crate::failure::ErrorClass;
use crate::ids::{RunId, StepId};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};

const RUN: &str = "20261121-0000abcd";

/// A journal written by hand, with times in seconds from a fixed start.
struct Journal {
    t0: DateTime<Utc>,
    records: Vec<Record>,
}

impl Journal {
    fn new() -> Self {
        Journal {
            t0: Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap(),
            records: Vec::new(),
        }
    }

    fn at(mut self, seconds: f64, event: Event) -> Self {
        let at = self.t0 + chrono::Duration::milliseconds((seconds * 1000.0) as i64);
        self.records.push(Record {
            seq: self.records.len() as u64 + 1,
            at,
            event,
        });
        self
    }

    fn run_started(self, seconds: f64) -> Self {
        self.at(
            seconds,
            Event::RunStarted {
                run_id: RunId::new(RUN),
                plan_hash: "sha256:plan".into(),
                runbook: "runbooks/blue-green.toml".into(),
                environment: "envs/staging.toml".into(),
                environment_name: "staging".into(),
                params: Default::default(),
                sets: vec![],
                cutover_version: "0.1.0".into(),
                host: "ops-1".into(),
                pid: 4242,
            },
        )
    }

    fn started(self, s: f64, step: &str, attempt: u32) -> Self {
        self.at(
            s,
            Event::StepStarted {
                step: StepId::new(step),
                attempt,
                kind: None,
            },
        )
    }

    /// A step start as this version journals it: with the step's kind.
    fn started_as(self, s: f64, step: &str, kind: &str) -> Self {
        self.at(
            s,
            Event::StepStarted {
                step: StepId::new(step),
                attempt: 1,
                kind: Some(kind.into()),
            },
        )
    }

    fn succeeded(self, s: f64, step: &str, outputs: Value) -> Self {
        let Value::Object(outputs) = outputs else {
            panic!("outputs must be an object")
        };
        self.at(
            s,
            Event::StepSucceeded {
                step: StepId::new(step),
                outputs,
            },
        )
    }

    fn step(self, from: f64, to: f64, step: &str, outputs: Value) -> Self {
        self.started(from, step, 1).succeeded(to, step, outputs)
    }

    fn retrying(self, s: f64, step: &str, attempt: u32, error: &str) -> Self {
        self.at(
            s,
            Event::StepRetrying {
                step: StepId::new(step),
                attempt,
                class: ErrorClass::Transient,
                error: error.into(),
                delay_ms: 2000,
            },
        )
    }

    fn failed(self, s: f64, step: &str, error: &str) -> Self {
        self.at(
            s,
            Event::StepFailed {
                step: StepId::new(step),
                class: ErrorClass::Permanent,
                error: error.into(),
                hint: Some("take a new backup".into()),
            },
        )
    }

    fn compensated(self, from: f64, to: f64, step: &str, error: Option<&str>) -> Self {
        let step = StepId::new(step);
        let end = match error {
            None => Event::CompensationSucceeded { step: step.clone() },
            Some(e) => Event::CompensationFailed {
                step: step.clone(),
                error: e.into(),
            },
        };
        self.at(from, Event::CompensationStarted { step })
            .at(to, end)
    }

    fn finished(self, s: f64, outcome: Outcome, message: &str) -> Self {
        self.at(
            s,
            Event::RunFinished {
                outcome,
                message: message.into(),
            },
        )
    }
}

/// The first 50 seconds of a blue-green migration, up to the restore.
fn up_to_restore() -> Journal {
    Journal::new()
        .run_started(0.0)
        .step(
            0.5,
            4.0,
            "preflight",
            json!({"blue_version": "5.26.0", "green_version": "5.26.1"}),
        )
        .step(
            4.0,
            10.0,
            "provision-green",
            json!({"instance_id": "i-0abc", "admin_password": "hunter2"}),
        )
        .step(10.0, 30.0, "freeze-blue", json!({}))
        .step(
            30.0,
            42.0,
            "final-backup",
            json!({"sha256": "ab12", "manifest": {"fingerprint": "fp-blue"}}),
        )
        .started(42.0, "restore-green", 1)
}

fn succeeded_run() -> Vec<Record> {
    up_to_restore()
        .retrying(44.0, "restore-green", 1, "Bolt unavailable")
        .started(46.0, "restore-green", 2)
        .succeeded(50.0, "restore-green", json!({"digest": "fp-green"}))
        .step(50.0, 53.0, "switch-traffic", json!({"rto_seconds": 23.0}))
        .finished(55.0, Outcome::Succeeded, "green is the writer")
        .records
}

fn rolled_back_run() -> Vec<Record> {
    up_to_restore()
        .failed(
            45.0,
            "restore-green",
            "checksum mismatch for s3://bucket/dump",
        )
        .compensated(45.5, 47.0, "freeze-blue", None)
        .compensated(47.0, 52.0, "provision-green", None)
        .finished(
            52.0,
            Outcome::RolledBack,
            "restore-green failed; every change was undone",
        )
        .records
}

fn needs_attention_run() -> Vec<Record> {
    up_to_restore()
        .failed(
            45.0,
            "restore-green",
            "checksum mismatch for s3://bucket/dump",
        )
        .compensated(
            45.5,
            47.0,
            "freeze-blue",
            Some("blue refused the unfreeze: Bolt unavailable"),
        )
        .compensated(47.0, 52.0, "provision-green", None)
        .finished(52.0, Outcome::NeedsAttention, "a compensation failed")
        .records
}

/// First session: a done, b started, then the process died; resumed at 100s.
fn resumed_run() -> Vec<Record> {
    Journal::new()
        .run_started(0.0)
        .step(0.0, 10.0, "a", json!({}))
        .started(10.0, "b", 1)
        .at(
            20.0,
            Event::StepCheckpoint {
                step: StepId::new("b"),
                state: json!({"copied": 3}),
            },
        )
        .at(
            100.0,
            Event::RunResumed {
                pid: 7,
                host: "ops-2".into(),
                forced: false,
                plan_hash: "sha256:plan".into(),
            },
        )
        .started(101.0, "b", 2)
        .succeeded(111.0, "b", json!({}))
        .finished(112.0, Outcome::Succeeded, "done")
        .records
}

/// A tiny XML well-formedness check: balanced tags, quoted unique attributes, known
/// entities only. Enough to catch an unescaped `<` or `&` or a missing close tag.
fn assert_well_formed(xml: &str) {
    fn check_text(text: &str) {
        let mut rest = text;
        while let Some(i) = rest.find('&') {
            rest = &rest[i + 1..];
            let end = rest
                .find(';')
                .unwrap_or_else(|| panic!("bare & in {text:?}"));
            let entity = &rest[..end];
            assert!(
                ["amp", "lt", "gt", "quot", "apos"].contains(&entity) || entity.starts_with('#'),
                "unknown entity &{entity}; in {text:?}"
            );
        }
        assert!(!text.contains('<'), "bare < in {text:?}");
    }
    let mut stack: Vec<String> = Vec::new();
    let mut rest = xml.trim();
    assert!(rest.starts_with("<svg"), "not an SVG document");
    while let Some(i) = rest.find('<') {
        check_text(&rest[..i]);
        rest = &rest[i + 1..];
        let end = rest.find('>').expect("unclosed tag");
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(
                stack.pop().as_deref(),
                Some(name.trim()),
                "mismatched close tag"
            );
            continue;
        }
        let self_closing = tag.ends_with('/');
        let body = tag.trim_end_matches('/');
        let (name, mut attrs) = body.split_once(char::is_whitespace).unwrap_or((body, ""));
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':'),
            "bad tag {name:?}"
        );
        let mut seen = Vec::new();
        loop {
            attrs = attrs.trim_start();
            if attrs.is_empty() {
                break;
            }
            let (key, after) = attrs
                .split_once("=\"")
                .unwrap_or_else(|| panic!("unquoted attribute in <{tag}>"));
            assert!(
                !key.contains(char::is_whitespace),
                "bad attribute name {key:?}"
            );
            assert!(!seen.contains(&key), "duplicate attribute {key} in <{tag}>");
            seen.push(key);
            let close = after.find('"').expect("unterminated attribute");
            check_text(&after[..close]);
            attrs = &after[close + 1..];
        }
        if !self_closing {
            stack.push(name.to_string());
        }
        if stack.is_empty() {
            break;
        }
    }
    assert!(stack.is_empty(), "unclosed elements: {stack:?}");
    assert!(rest.trim().is_empty(), "content after the root element");
}

/// Each `<g class="step" …>` group with the number of bars in it.
fn bars_per_step(svg: &str) -> Vec<(String, usize)> {
    svg.split(r#"<g class="step" data-step=""#)
        .skip(1)
        .map(|group| {
            let (step, body) = group.split_once('"').unwrap();
            let body = &body[..body.find("\n</g>").unwrap()];
            (
                step.to_string(),
                body.matches(r#"<rect class="bar""#).count(),
            )
        })
        .collect()
}

fn ids(report: &Report) -> Vec<&str> {
    report.steps.iter().map(|s| s.id.as_str()).collect()
}

fn row<'a>(report: &'a Report, id: &str) -> &'a StepRow {
    report.steps.iter().find(|s| s.id.as_str() == id).unwrap()
}

/// The Markdown with the run id and timestamps replaced.
fn stable_markdown(report: &Report) -> String {
    let mut md = report.to_markdown().replace(RUN, "[run_id]");
    while let Some(i) = md.find("2026-11-21T") {
        md.replace_range(i..i + "2026-11-21T10:00:00.000Z".len(), "[time]");
    }
    md
}

macro_rules! assert_report_json {
    ($name:expr, $report:expr) => {
        insta::assert_json_snapshot!($name, $report.resolved(), {
            ".run_id" => "[run_id]",
            ".started_at" => "[time]",
            ".finished_at" => "[time]",
            ".duration_seconds" => "[duration]",
            ".steps[].duration_seconds" => "[duration]",
            ".freeze_window.frozen_at" => "[time]",
            ".freeze_window.writable_at" => "[time]",
            ".freeze_window.seconds" => "[duration]",
        })
    };
}

#[test]
fn a_succeeded_run_reports_steps_in_order_with_durations_and_measures() {
    let report = Report::from_journal(&succeeded_run());
    assert_eq!(report.outcome, Some(Outcome::Succeeded));
    assert_eq!(report.run_id.as_ref().map(RunId::as_str), Some(RUN));
    assert_eq!(
        ids(&report),
        [
            "preflight",
            "provision-green",
            "freeze-blue",
            "final-backup",
            "restore-green",
            "switch-traffic"
        ]
    );
    assert_eq!(report.duration_seconds, Some(55.0));
    assert!(report.next_steps.is_empty());

    let restore = row(&report, "restore-green");
    assert_eq!(
        (restore.attempts, restore.retries, restore.status),
        (2, 1, StepStatus::Succeeded)
    );
    assert_eq!(restore.start_offset_seconds, Some(42.0));
    assert_eq!(restore.duration_seconds, Some(8.0));
    assert_eq!(restore.error, None);
    assert_eq!(row(&report, "freeze-blue").duration_seconds, Some(20.0));

    // Freeze window: the freeze succeeded at 30s, traffic switched at 53s.
    let w = report.freeze_window.as_ref().unwrap();
    assert_eq!(
        (w.start_offset_seconds, w.end_offset_seconds, w.seconds),
        (30.0, Some(53.0), Some(23.0))
    );
    assert_eq!(w.frozen_source, "step `freeze-blue` succeeded");
    assert_eq!(
        w.writable_source.as_deref(),
        Some("step `switch-traffic` succeeded")
    );

    assert_eq!(report.checksums.len(), 1);
    assert_eq!(
        (
            report.checksums[0].step.as_str(),
            report.checksums[0].key.as_str()
        ),
        ("final-backup", "sha256")
    );
    let fps: Vec<_> = report
        .fingerprints
        .iter()
        .map(|f| (f.key.as_str(), f.value.as_str().unwrap()))
        .collect();
    assert_eq!(
        fps,
        [("manifest.fingerprint", "fp-blue"), ("digest", "fp-green")]
    );
    let versions: Vec<_> = report.versions.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(versions, ["blue_version", "green_version"]);
    assert_eq!(report.rto_seconds, Some(23.0));

    let md = report.to_markdown();
    assert!(
        md.starts_with(&format!("# Run {RUN}: ✅ Succeeded\n")),
        "{md}"
    );
    assert!(!md.contains("What to do next"));
    assert!(md.contains("![Timeline of run 20261121-0000abcd](timeline.svg)"));
    let table: Vec<_> = md
        .lines()
        .filter(|l| l.starts_with("| ") && l.contains("| `"))
        .collect();
    assert!(
        table
            .iter()
            .any(|l| l.starts_with("| 5 | `restore-green` | ✅ succeeded | 2 | 1 | 42.0 | 8.0 |")),
        "{md}"
    );

    insta::assert_snapshot!("succeeded_markdown", stable_markdown(&report));
    assert_report_json!("succeeded_json", report);
}

#[test]
fn a_secret_looking_output_is_redacted_everywhere() {
    let report = Report::from_journal(&succeeded_run())
        .with_extra("load_generator_credential", json!("k-123"));
    assert_eq!(
        row(&report, "provision-green").outputs["admin_password"],
        json!(REDACTED)
    );
    for text in [report.to_json(), report.to_markdown(), report.to_svg()] {
        assert!(
            !text.contains("hunter2") && !text.contains("k-123"),
            "a secret leaked:\n{text}"
        );
    }
    assert!(report
        .to_json()
        .contains(r#""admin_password": "[redacted]""#));
    assert!(
        model::is_secret_key("DB_Secret_Arn")
            && model::is_secret_key("private_key")
            && !model::is_secret_key("sha256")
    );
}

#[test]
fn a_rolled_back_run_says_the_environment_is_as_it_was_and_shows_the_undo() {
    let report = Report::from_journal(&rolled_back_run());
    assert_eq!(report.outcome, Some(Outcome::RolledBack));
    let failed = report.failed_step().unwrap();
    assert_eq!(failed.id.as_str(), "restore-green");
    assert_eq!(failed.hint.as_deref(), Some("take a new backup"));
    assert_eq!(
        row(&report, "freeze-blue").compensation,
        Some(CompensationStatus::Succeeded)
    );
    // The unfreeze (the freeze step's compensation) ends the freeze window.
    let w = report.freeze_window.as_ref().unwrap();
    assert_eq!(w.seconds, Some(17.0));
    assert_eq!(
        w.writable_source.as_deref(),
        Some("compensation of `freeze-blue` (unfreeze) succeeded")
    );
    assert!(report.next_steps[0].contains("as it was before the run"));
    assert!(
        report.next_steps[1].contains("checksum mismatch")
            && report.next_steps[1].contains("take a new backup")
    );

    let md = report.to_markdown();
    assert!(
        md.starts_with(&format!(
            "# Run {RUN}: ↩️ Rolled back — the environment is as it was\n"
        )),
        "{md}"
    );
    assert!(md.contains("## What to do next"));
    let svg = report.to_svg();
    assert_well_formed(&svg);
    assert_eq!(svg.matches(r#"<rect class="compensation""#).count(), 2);
    insta::assert_snapshot!("rolled_back_markdown", stable_markdown(&report));
    assert_report_json!("rolled_back_json", report);
}

#[test]
fn a_needs_attention_run_names_the_failed_undo_and_the_resume_command() {
    let report = Report::from_journal(&needs_attention_run());
    assert_eq!(report.outcome_label(), "NeedsAttention");
    assert!(
        matches!(row(&report, "freeze-blue").compensation, Some(CompensationStatus::Failed(ref e)) if e.contains("refused the unfreeze"))
    );
    let w = report.freeze_window.as_ref().unwrap();
    assert_eq!((w.writable_at, w.seconds), (None, None));
    let next = report.next_steps.join("\n");
    assert!(next.contains("Undoing step `freeze-blue` failed"), "{next}");
    assert!(
        next.contains(&format!("`cutover resume {RUN} --env staging`")),
        "{next}"
    );
    assert!(next.contains("Blue is still frozen"), "{next}");
    let md = report.to_markdown();
    assert!(md.starts_with(&format!(
        "# Run {RUN}: ⚠️ Needs attention — partly applied\n"
    )));
    assert!(md.contains("**not yet: writes are still refused**"));
    assert!(md.contains("**undo failed**: blue refused the unfreeze"));
    assert!(report.to_svg().contains("writes refused (still frozen)"));
    insta::assert_snapshot!("needs_attention_markdown", stable_markdown(&report));
}

#[test]
fn a_resumed_run_counts_only_running_time_and_shows_both_sessions() {
    let report = Report::from_journal(&resumed_run());
    assert_eq!(report.outcome, Some(Outcome::Succeeded));
    assert_eq!(ids(&report), ["a", "b"]);
    let b = row(&report, "b");
    assert_eq!(
        (b.attempts, b.start_offset_seconds, b.end_offset_seconds),
        (2, Some(10.0), Some(111.0))
    );
    // 10s before the crash (to the last record at 20s) + 10s after the resume.
    assert_eq!(b.duration_seconds, Some(20.0));
    let sessions: Vec<_> = report
        .timeline
        .sessions
        .iter()
        .map(|s| (s.start_seconds, s.end_seconds, s.ended))
        .collect();
    assert_eq!(
        sessions,
        [
            (0.0, 20.0, SessionEnd::Crashed),
            (100.0, 112.0, SessionEnd::Finished)
        ]
    );
    let ends: Vec<_> = report.timeline.rows[1]
        .segments
        .iter()
        .map(|s| s.ended)
        .collect();
    assert_eq!(ends, [SegmentEnd::Cut, SegmentEnd::Succeeded]);
    assert!(report.freeze_window.is_none());

    let svg = report.to_svg();
    assert_well_formed(&svg);
    assert_eq!(
        bars_per_step(&svg),
        [("a".to_string(), 1), ("b".to_string(), 2)]
    );
    assert_eq!(svg.matches(r#"<g class="resume">"#).count(), 1);
    assert_eq!(svg.matches(r#"<rect class="gap""#).count(), 1);
    assert!(report.to_markdown().contains("| Sessions | 2 |"));
}

#[test]
fn the_svg_is_well_formed_with_one_bar_group_per_step_and_retries_marked() {
    let report = Report::from_journal(&succeeded_run());
    let svg = report.to_svg();
    assert_well_formed(&svg);
    let bars = bars_per_step(&svg);
    assert_eq!(
        bars.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(),
        ids(&report)
    );
    assert!(bars.iter().all(|(_, n)| *n == 1), "{bars:?}");
    assert_eq!(svg.matches(r#"<g class="retry">"#).count(), 1);
    assert_eq!(svg.matches(r#"<rect class="freeze""#).count(), 1);
    assert!(
        !svg.contains("href") && !svg.contains("@import") && !svg.contains("<script"),
        "not self-contained"
    );
}

#[test]
fn markup_in_step_ids_and_errors_is_escaped() {
    let records = Journal::new()
        .run_started(0.0)
        .started(1.0, "x<y>&\"z'", 1)
        .failed(2.0, "x<y>&\"z'", "bad | <input> & more\nsecond line")
        .finished(3.0, Outcome::Failed, "failed")
        .records;
    let report = Report::from_journal(&records);
    let svg = report.to_svg();
    assert_well_formed(&svg);
    assert!(svg.contains("x&lt;y&gt;&amp;&quot;z&apos;"));
    let md = report.to_markdown();
    assert!(
        md.contains(r"bad \| &lt;input&gt; & more second line"),
        "{md}"
    );
    assert!(report.next_steps[0].starts_with("Nothing needed undoing"));
}

#[test]
fn step_outputs_and_extra_override_what_the_journal_says() {
    let records = Journal::new()
        .run_started(0.0)
        .step(
            1.0,
            5.0,
            "freeze-blue",
            json!({"frozen_at": "2026-11-21T10:00:02Z"}),
        )
        .step(
            5.0,
            9.0,
            "switch-traffic",
            json!({"writable_at": "2026-11-21T10:00:08.500Z"}),
        )
        .step(
            9.0,
            10.0,
            "drill",
            json!({"rto_seconds": 40, "rpo_seconds": 0, "writes_acknowledged": 10}),
        )
        .finished(10.0, Outcome::Succeeded, "ok")
        .records;
    let report = Report::from_journal(&records)
        .with_extra("writes_acknowledged", json!(1200))
        .with_extra("writes_lost", json!(0));
    let w = report.freeze_window.as_ref().unwrap();
    assert_eq!((w.start_offset_seconds, w.seconds), (2.0, Some(6.5)));
    assert_eq!(w.frozen_source, "output `frozen_at` of step `freeze-blue`");
    let r = report.resolved();
    assert_eq!(
        (
            r.rto_seconds,
            r.rpo_seconds,
            r.writes_acknowledged,
            r.writes_lost
        ),
        (Some(40.0), Some(0.0), Some(1200), Some(0))
    );
    let md = report.to_markdown();
    assert!(
        md.contains("| Writes acknowledged | 1200 |")
            && md.contains("| Writes lost | 0 |")
            && md.contains("| RTO | 40 s |"),
        "{md}"
    );
    // Shown once, in the Measures table, not again as extra values.
    assert!(
        !md.contains("## Extra") && !md.contains("`writes_acknowledged`"),
        "{md}"
    );
    let md = report
        .clone()
        .with_extra("operator", json!("night shift"))
        .to_markdown();
    assert!(
        md.contains("## Extra") && md.contains("| `operator` |"),
        "{md}"
    );
    assert!(!md.contains("`writes_lost`"), "{md}");
    let json: Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["writes_acknowledged"], json!(1200));
}

#[test]
fn an_interrupted_run_says_how_to_resume() {
    let records = Journal::new()
        .run_started(0.0)
        .started(1.0, "a", 1)
        .at(
            2.0,
            Event::StepInterrupted {
                step: StepId::new("a"),
            },
        )
        .at(
            2.0,
            Event::RunInterrupted {
                reason: "SIGINT".into(),
            },
        )
        .records;
    let report = Report::from_journal(&records);
    assert_eq!(report.outcome_label(), "Interrupted");
    assert!(report.next_steps[0].contains(&format!("cutover resume {RUN} --env staging")));
    assert!(report.to_markdown().contains("⏸ Interrupted"));
}

#[test]
fn write_reports_writes_three_files_into_the_run_directory() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("runs").join(RUN);
    let paths = write_reports(&run_dir, &rolled_back_run()).unwrap();
    assert_eq!(paths.json, run_dir.join("report.json"));
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&paths.json).unwrap()).unwrap();
    assert_eq!(json["outcome"], json!("RolledBack"));
    assert!(std::fs::read_to_string(&paths.markdown)
        .unwrap()
        .contains("(timeline.svg)"));
    assert_well_formed(&std::fs::read_to_string(&paths.timeline).unwrap());
    let mut names: Vec<_> = std::fs::read_dir(&run_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["report.json", "report.md", "timeline.svg"]);
}

#[test]
fn an_empty_journal_still_renders_every_format() {
    let report = Report::from_journal(&[]);
    assert_eq!(report.outcome_label(), "Unfinished");
    assert!(report.steps.is_empty() && report.freeze_window.is_none());
    let svg = report.to_svg();
    assert_well_formed(&svg);
    assert!(svg.contains("no step started"));
    assert!(report.to_markdown().contains("No step started."));
    assert!(report.next_steps[0].contains("cutover resume RUN_ID --env ENV"));
    let json: Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["outcome"], Value::Null);
}

#[test]
fn the_freeze_window_follows_the_journaled_step_kinds_not_the_step_ids() {
    // `warm-freezer` is not a freeze and `lock-ledger` is; `cut-over` is the switch.
    let records = Journal::new()
        .run_started(0.0)
        .started_as(1.0, "warm-freezer", "util.wait")
        .succeeded(2.0, "warm-freezer", json!({}))
        .started_as(3.0, "lock-ledger", "db.freeze")
        .succeeded(5.0, "lock-ledger", json!({}))
        .started_as(6.0, "cut-over", "traffic.switch")
        .succeeded(9.0, "cut-over", json!({}))
        .finished(10.0, Outcome::Succeeded, "")
        .records;
    let report = Report::from_journal(&records);
    let w = report.freeze_window.as_ref().expect("a freeze window");
    assert_eq!(w.frozen_source, "step `lock-ledger` succeeded");
    assert_eq!(
        w.writable_source.as_deref(),
        Some("step `cut-over` succeeded")
    );
    assert_eq!(w.seconds, Some(4.0));
}
