//! Building a [`Report`] from a run's journal records: steps, sessions, retries,
//! compensations, the freeze window and what to do next.

use super::model::*;
use super::redact::{redact_entry, redact_map};
use crate::engine::journal::{Event, Outcome, Record, RunRelation};
use crate::engine::state::{replay, CompensationStatus, StepStatus};
use crate::ids::StepId;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Seconds between two instants, at millisecond precision.
fn secs(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds() as f64 / 1000.0
}

/// The step froze a database: its journaled kind is `db.freeze`. Journals written before
/// kinds were journaled fall back to the step id.
fn is_freeze_step(id: &str, kind: Option<&str>) -> bool {
    match kind {
        Some(kind) => kind == "db.freeze",
        None => {
            let id = id.to_ascii_lowercase();
            id.contains("freeze") && !id.contains("unfreeze")
        }
    }
}

/// The step made a database writable for the application again: an unfreeze, or the
/// traffic switch to green (by kind; by step id in journals without kinds).
fn is_writable_step(id: &str, kind: Option<&str>) -> bool {
    match kind {
        Some(kind) => matches!(kind, "db.unfreeze" | "traffic.switch"),
        None => {
            let id = id.to_ascii_lowercase();
            id.contains("unfreeze") || id.contains("switch") || id.contains("traffic")
        }
    }
}

#[derive(Default)]
struct StepScan {
    segments: Vec<Segment>,
    open: Option<f64>,
    retries: Vec<RetryMark>,
    compensation: Option<CompensationSpan>,
    hint: Option<String>,
    postcondition_failures: Vec<String>,
}

impl StepScan {
    fn close(&mut self, at: f64, ended: SegmentEnd) {
        if let Some(start) = self.open.take() {
            self.segments.push(Segment {
                start_seconds: start,
                end_seconds: at,
                ended,
            });
        } else if matches!(ended, SegmentEnd::Skipped | SegmentEnd::Failed)
            && self.segments.is_empty()
        {
            // Skipped (or failed in planning) without ever starting: a zero-length mark.
            self.segments.push(Segment {
                start_seconds: at,
                end_seconds: at,
                ended,
            });
        }
    }
}

impl Report {
    /// Builds the report from a run's journal records (in journal order).
    pub fn from_journal(records: &[Record]) -> Report {
        let view = replay(records);
        let origin = records.first().map(|r| r.at);
        let last_at = records.last().map(|r| r.at);
        let off = |at: DateTime<Utc>| origin.map_or(0.0, |o| secs(o, at));

        let mut order: Vec<StepId> = Vec::new();
        let mut scans: BTreeMap<StepId, StepScan> = BTreeMap::new();
        let mut sessions: Vec<Session> = Vec::new();
        let mut cutover_version = None;
        let mut kinds: BTreeMap<StepId, String> = BTreeMap::new();
        let mut freeze_step: Option<(StepId, DateTime<Utc>)> = None;
        let mut writable_journal: Option<(String, DateTime<Utc>)> = None;
        let mut prev_at = origin;

        for record in records {
            let at = off(record.at);
            if let Some(step) = event_step(&record.event) {
                if !scans.contains_key(step) {
                    order.push(step.clone());
                }
                scans.entry(step.clone()).or_default();
            }
            match &record.event {
                Event::RunStarted {
                    cutover_version: v, ..
                } => {
                    cutover_version = Some(v.clone());
                    sessions.push(Session {
                        start_seconds: at,
                        end_seconds: at,
                        resumed: false,
                        ended: SessionEnd::Open,
                    });
                }
                Event::RunResumed { .. } => {
                    // Whatever was open when the previous session stopped was cut there.
                    let cut = prev_at.map_or(at, off);
                    for scan in scans.values_mut() {
                        scan.close(cut, SegmentEnd::Cut);
                    }
                    if let Some(s) = sessions.last_mut() {
                        if s.ended == SessionEnd::Open {
                            s.ended = SessionEnd::Crashed;
                            s.end_seconds = cut;
                        }
                    }
                    sessions.push(Session {
                        start_seconds: at,
                        end_seconds: at,
                        resumed: true,
                        ended: SessionEnd::Open,
                    });
                }
                Event::StepStarted { step, kind, .. } => {
                    if let Some(kind) = kind {
                        kinds.insert(step.clone(), kind.clone());
                    }
                    let scan = scans.get_mut(step).expect("inserted above");
                    if scan.open.is_none() {
                        scan.open = Some(at);
                    }
                }
                Event::StepRetrying {
                    step,
                    attempt,
                    error,
                    delay_ms,
                    ..
                } => {
                    scans
                        .get_mut(step)
                        .expect("inserted above")
                        .retries
                        .push(RetryMark {
                            at_seconds: at,
                            attempt: *attempt,
                            error: error.clone(),
                            delay_ms: *delay_ms,
                        });
                }
                Event::StepSucceeded { step, .. } => {
                    scans
                        .get_mut(step)
                        .expect("inserted above")
                        .close(at, SegmentEnd::Succeeded);
                    let kind = kinds.get(step).map(String::as_str);
                    if freeze_step.is_none() && is_freeze_step(step.as_str(), kind) {
                        freeze_step = Some((step.clone(), record.at));
                    } else if freeze_step.is_some()
                        && writable_journal.is_none()
                        && is_writable_step(step.as_str(), kind)
                    {
                        writable_journal = Some((format!("step `{step}` succeeded"), record.at));
                    }
                }
                Event::StepSkipped { step, .. } => scans
                    .get_mut(step)
                    .expect("inserted above")
                    .close(at, SegmentEnd::Skipped),
                Event::StepFailed { step, hint, .. } => {
                    let scan = scans.get_mut(step).expect("inserted above");
                    scan.close(at, SegmentEnd::Failed);
                    scan.hint = hint.clone();
                }
                Event::StepInterrupted { step } => scans
                    .get_mut(step)
                    .expect("inserted above")
                    .close(at, SegmentEnd::Interrupted),
                Event::PostconditionChecked { step, ok, detail } => {
                    if !ok {
                        scans
                            .get_mut(step)
                            .expect("inserted above")
                            .postcondition_failures
                            .push(detail.clone());
                    }
                }
                Event::CompensationStarted { step } => {
                    scans.get_mut(step).expect("inserted above").compensation =
                        Some(CompensationSpan {
                            start_seconds: at,
                            end_seconds: None,
                            status: CompensationStatus::Running,
                        });
                }
                Event::CompensationSucceeded { step } | Event::CompensationFailed { step, .. } => {
                    let status = match &record.event {
                        Event::CompensationFailed { error, .. } => {
                            CompensationStatus::Failed(error.clone())
                        }
                        _ => CompensationStatus::Succeeded,
                    };
                    let ok = status == CompensationStatus::Succeeded;
                    let scan = scans.get_mut(step).expect("inserted above");
                    let start = scan.compensation.as_ref().map_or(at, |c| c.start_seconds);
                    scan.compensation = Some(CompensationSpan {
                        start_seconds: start,
                        end_seconds: Some(at),
                        status,
                    });
                    if ok
                        && writable_journal.is_none()
                        && freeze_step.as_ref().is_some_and(|(f, _)| f == step)
                    {
                        writable_journal = Some((
                            format!("compensation of `{step}` (unfreeze) succeeded"),
                            record.at,
                        ));
                    }
                }
                Event::RunInterrupted { .. } | Event::RunFinished { .. } => {
                    let (seg, ses) = match &record.event {
                        Event::RunInterrupted { .. } => (SegmentEnd::Cut, SessionEnd::Interrupted),
                        _ => (SegmentEnd::Cut, SessionEnd::Finished),
                    };
                    for scan in scans.values_mut() {
                        scan.close(at, seg);
                    }
                    if let Some(s) = sessions.last_mut() {
                        s.ended = ses;
                        s.end_seconds = at;
                    }
                }
                Event::LeaseTakenOver { .. }
                | Event::RunLinked { .. }
                | Event::StepIntent { .. }
                | Event::StepCheckpoint { .. }
                | Event::CompensationCheckpoint { .. } => {}
            }
            prev_at = Some(record.at);
        }

        let end = last_at.map_or(0.0, off);
        for scan in scans.values_mut() {
            scan.close(end, SegmentEnd::Running);
            if let Some(c) = scan.compensation.as_mut() {
                if c.end_seconds.is_none() && view.outcome.is_some() {
                    c.end_seconds = Some(end);
                }
            }
        }
        if let Some(s) = sessions.last_mut() {
            if s.ended == SessionEnd::Open {
                s.end_seconds = end;
            }
        }

        let mut steps = Vec::new();
        let mut rows = Vec::new();
        for id in &order {
            let scan = scans.remove(id).unwrap_or_default();
            let sv = view.steps.get(id).cloned().unwrap_or_default();
            let running: f64 = scan
                .segments
                .iter()
                .map(|s| s.end_seconds - s.start_seconds)
                .sum();
            steps.push(StepRow {
                id: id.clone(),
                status: sv.status,
                attempts: sv.attempts,
                retries: sv.retries,
                start_offset_seconds: sv
                    .first_started_at
                    .map(off)
                    .or(scan.segments.first().map(|s| s.start_seconds)),
                end_offset_seconds: scan.segments.last().map(|s| s.end_seconds),
                duration_seconds: (!scan.segments.is_empty()).then_some(round_ms(running)),
                error: sv.error.clone(),
                hint: scan.hint.clone(),
                compensation: sv.compensation.clone(),
                postcondition_failures: scan.postcondition_failures.clone(),
                outputs: sv.outputs.as_ref().map(redact_map).unwrap_or_default(),
            });
            rows.push(TimelineRow {
                step: id.clone(),
                segments: scan.segments,
                retries: scan.retries,
                compensation: scan.compensation,
            });
        }

        let mut report = Report {
            run_id: view.run_id.clone(),
            runbook: view.runbook.clone(),
            environment: view.environment.clone(),
            environment_name: view.environment_name.clone(),
            plan_hash: view.plan_hash.clone(),
            cutover_version,
            outcome: view.outcome,
            message: view.message.clone(),
            next_steps: Vec::new(),
            started_at: view.started_at.or(origin),
            finished_at: view.finished_at,
            duration_seconds: origin
                .zip(view.finished_at.or(last_at))
                .map(|(a, b)| secs(a, b)),
            interrupted: view.interrupted,
            checksums: Vec::new(),
            fingerprints: Vec::new(),
            versions: Vec::new(),
            rto_seconds: None,
            rpo_seconds: None,
            writes_acknowledged: None,
            writes_lost: None,
            writes_note: None,
            freeze_window: None,
            steps,
            timeline: Timeline {
                span_seconds: end,
                sessions,
                rows,
            },
            extra: BTreeMap::new(),
            links: view.links.clone(),
        };
        report.gather_well_known();
        report.freeze_window = report.find_freeze_window(origin, freeze_step, writable_journal);
        report.next_steps = report.compute_next_steps();
        report
    }

    /// Adds a caller-provided value (e.g. `writes_acknowledged` from a load generator).
    pub fn with_extra(mut self, key: impl Into<String>, value: Value) -> Report {
        self.extra.insert(key.into(), value);
        self
    }

    /// Adds the figures attached with `cutover report --measure` (see
    /// [`super::measures`]).
    pub fn with_measures(mut self, measures: &super::measures::Measures) -> Report {
        for (k, v) in &measures.0 {
            self.extra.insert(k.clone(), Value::from(*v));
        }
        self
    }

    /// The report with [`Report::extra`] applied over the well-known measures; what the
    /// renderers show.
    pub fn resolved(&self) -> Report {
        let mut r = self.clone();
        let num = |k: &str| r.extra.get(k).and_then(Value::as_f64);
        let int = |k: &str| r.extra.get(k).and_then(Value::as_u64);
        r.rto_seconds = num(EXTRA_RTO).or(r.rto_seconds);
        r.rpo_seconds = num(EXTRA_RPO).or(r.rpo_seconds);
        r.writes_acknowledged = int(EXTRA_WRITES_ACKNOWLEDGED).or(r.writes_acknowledged);
        r.writes_lost = int(EXTRA_WRITES_LOST).or(r.writes_lost);
        if r.writes_acknowledged.is_none() && r.writes_lost.is_none() {
            r.writes_note = Some(NO_WRITE_FIGURES.to_owned());
        }
        r.extra = r
            .extra
            .iter()
            .map(|(k, v)| (k.clone(), redact_entry(k, v)))
            .collect();
        r
    }

    /// The step that made the run fail: the first failed one.
    pub fn failed_step(&self) -> Option<&StepRow> {
        self.steps.iter().find(|s| s.status == StepStatus::Failed)
    }

    /// The headline: `Succeeded`, `RolledBack`, … or `Interrupted`/`Unfinished`.
    pub fn outcome_label(&self) -> &'static str {
        match self.outcome {
            Some(Outcome::Succeeded) => "Succeeded",
            Some(Outcome::Failed) => "Failed",
            Some(Outcome::RolledBack) => "RolledBack",
            Some(Outcome::NeedsAttention) => "NeedsAttention",
            None if self.interrupted => "Interrupted",
            None => "Unfinished",
        }
    }

    fn gather_well_known(&mut self) {
        for step in &self.steps {
            let mut found = Vec::new();
            walk(&step.outputs, "", &mut found);
            for (key, value) in found {
                let leaf = key.rsplit('.').next().unwrap_or(&key).to_ascii_lowercase();
                let finding = || Finding {
                    step: step.id.clone(),
                    key: key.clone(),
                    value: value.clone(),
                };
                if leaf == "sha256" || leaf.ends_with("_sha256") {
                    self.checksums.push(finding());
                } else if ["fingerprint", "digest"]
                    .iter()
                    .any(|w| leaf == *w || leaf.ends_with(&format!("_{w}")))
                {
                    self.fingerprints.push(finding());
                } else if leaf == "version" || leaf.ends_with("_version") {
                    self.versions.push(finding());
                } else if leaf == EXTRA_RTO && self.rto_seconds.is_none() {
                    self.rto_seconds = value.as_f64();
                } else if leaf == EXTRA_RPO && self.rpo_seconds.is_none() {
                    self.rpo_seconds = value.as_f64();
                } else if leaf == EXTRA_WRITES_ACKNOWLEDGED && self.writes_acknowledged.is_none() {
                    self.writes_acknowledged = value.as_u64();
                } else if leaf == EXTRA_WRITES_LOST && self.writes_lost.is_none() {
                    self.writes_lost = value.as_u64();
                }
            }
        }
    }

    fn find_freeze_window(
        &self,
        origin: Option<DateTime<Utc>>,
        freeze_step: Option<(StepId, DateTime<Utc>)>,
        writable_journal: Option<(String, DateTime<Utc>)>,
    ) -> Option<FreezeWindow> {
        let output_time = |name: &str| -> Vec<(String, DateTime<Utc>)> {
            self.steps
                .iter()
                .filter_map(|s| {
                    let t = s.outputs.get(name)?.as_str()?;
                    let t = DateTime::parse_from_rfc3339(t).ok()?.with_timezone(&Utc);
                    Some((format!("output `{name}` of step `{}`", s.id), t))
                })
                .collect()
        };
        let frozen = output_time("frozen_at")
            .into_iter()
            .min_by_key(|(_, t)| *t)
            .or(freeze_step.map(|(id, t)| (format!("step `{id}` succeeded"), t)))?;
        let writable = output_time("writable_at")
            .into_iter()
            .filter(|(_, t)| *t >= frozen.1)
            .min_by_key(|(_, t)| *t)
            .or(writable_journal.filter(|(_, t)| *t >= frozen.1));
        let origin = origin.unwrap_or(frozen.1);
        Some(FreezeWindow {
            frozen_at: frozen.1,
            writable_at: writable.as_ref().map(|w| w.1),
            seconds: writable.as_ref().map(|w| secs(frozen.1, w.1)),
            start_offset_seconds: secs(origin, frozen.1),
            end_offset_seconds: writable.as_ref().map(|w| secs(origin, w.1)),
            frozen_source: frozen.0,
            writable_source: writable.map(|w| w.0),
        })
    }

    fn compute_next_steps(&self) -> Vec<String> {
        let run = self
            .run_id
            .as_ref()
            .map_or_else(|| "RUN_ID".to_string(), |r| r.to_string());
        let env = if self.environment_name.is_empty() {
            "ENV"
        } else {
            &self.environment_name
        };
        let resume = format!("`cutover resume {run} --env {env}`");
        if let Some(link) = self
            .links
            .iter()
            .rev()
            .find(|l| l.relation == RunRelation::RolledBackBy)
        {
            let by = &link.run_id;
            return vec![match link.outcome {
                Some(Outcome::Succeeded) => format!("Run {by} rolled this run back: the application is on blue with every write green took, and green is removed. Nothing is left to undo; fix the cause before migrating again."),
                Some(Outcome::Failed | Outcome::RolledBack) => format!("Run {by} tried to roll this run back and was undone: the application is on green, which holds every write. Fix the cause, then `cutover rollback {run} --env {env}`."),
                Some(Outcome::NeedsAttention) | None => format!("Run {by} is rolling this run back and has not finished: `cutover resume {by} --env {env}`."),
            }];
        }
        let cause = self.failed_step().map(|s| {
            let mut c = format!(
                "step `{}` failed: {}",
                s.id,
                s.error.as_deref().unwrap_or("no error recorded")
            );
            if let Some(h) = &s.hint {
                c.push_str(&format!(" — {h}"));
            }
            c
        });
        let mut next = Vec::new();
        match self.outcome {
            Some(Outcome::Succeeded) => {}
            Some(Outcome::Failed) => {
                next.push("Nothing needed undoing: no step had changed the environment.".to_string());
                if let Some(c) = cause {
                    next.push(format!("Fix the cause ({c}), then run the runbook again."));
                }
            }
            Some(Outcome::RolledBack) => {
                next.push("Every change was undone: the environment is as it was before the run.".to_string());
                if let Some(c) = cause {
                    next.push(format!("Fix the cause ({c}), then run the runbook again."));
                }
            }
            Some(Outcome::NeedsAttention) => {
                next.push("The environment is partly changed.".to_string());
                for s in &self.steps {
                    if let Some(CompensationStatus::Failed(e)) = &s.compensation {
                        next.push(format!("Undoing step `{}` failed ({e}): undo it by hand or fix the cause.", s.id));
                    }
                    for p in &s.postcondition_failures {
                        next.push(format!("Step `{}` no longer holds: {p}.", s.id));
                    }
                }
                if let Some(c) = cause {
                    next.push(format!("The run stopped because {c}."));
                }
                next.push(format!("Then resume with {resume} (it retries the undo), or roll back."));
            }
            None if self.interrupted => next.push(format!("The run was interrupted. Continue it with {resume}.")),
            None => next.push(format!(
                "The journal ends without a finish: the run is still going, or its process died. Check `cutover status {run} --env {env}`; if no process holds the lock, {resume}."
            )),
        }
        if self.outcome != Some(Outcome::Succeeded) {
            if let Some(w) = self
                .freeze_window
                .as_ref()
                .filter(|w| w.writable_at.is_none())
            {
                next.push(format!(
                    "Blue is still frozen: writes have been refused since {}.",
                    w.frozen_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ));
            }
        }
        next
    }
}

fn round_ms(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn walk(map: &Map<String, Value>, prefix: &str, out: &mut Vec<(String, Value)>) {
    for (k, v) in map {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Object(inner) => walk(inner, &key, out),
            other => out.push((key, other.clone())),
        }
    }
}

fn event_step(event: &Event) -> Option<&StepId> {
    match event {
        Event::StepStarted { step, .. }
        | Event::StepIntent { step, .. }
        | Event::StepCheckpoint { step, .. }
        | Event::CompensationCheckpoint { step, .. }
        | Event::StepRetrying { step, .. }
        | Event::StepSucceeded { step, .. }
        | Event::StepSkipped { step, .. }
        | Event::StepFailed { step, .. }
        | Event::StepInterrupted { step }
        | Event::PostconditionChecked { step, .. }
        | Event::CompensationStarted { step }
        | Event::CompensationSucceeded { step }
        | Event::CompensationFailed { step, .. } => Some(step),
        _ => None,
    }
}
