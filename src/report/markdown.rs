//! The report as a Markdown page: headline, what to do next, steps, freeze window,
//! checksums and fingerprints, and the timeline picture by file name.

use super::model::{
    Finding, Report, StepRow, EXTRA_RPO, EXTRA_RTO, EXTRA_WRITES_ACKNOWLEDGED, EXTRA_WRITES_LOST,
};
use super::TIMELINE_FILE;
use crate::engine::state::{CompensationStatus, StepStatus};
use chrono::{DateTime, SecondsFormat, Utc};
use std::fmt::Write;

/// Text safe inside a Markdown table cell or a line: no pipes, no line breaks, no HTML.
fn cell(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace(['\r', '\n'], " ")
}

/// Text inside backticks: a backtick would end the span early.
fn code(text: &str) -> String {
    format!("`{}`", cell(text).replace('`', "'"))
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "—".into(),
        |t| t.to_rfc3339_opts(SecondsFormat::Millis, true),
    )
}

fn seconds(s: Option<f64>) -> String {
    s.map_or_else(|| "—".into(), |s| format!("{s:.1}"))
}

fn status(s: StepStatus) -> &'static str {
    match s {
        StepStatus::Pending => "pending",
        StepStatus::Running => "running",
        StepStatus::Succeeded => "✅ succeeded",
        StepStatus::Failed => "❌ failed",
        StepStatus::Skipped => "⏭ skipped",
        StepStatus::Interrupted => "⏸ interrupted",
    }
}

fn compensation(c: &Option<CompensationStatus>) -> String {
    match c {
        None => "—".into(),
        Some(CompensationStatus::Running) => "running".into(),
        Some(CompensationStatus::Succeeded) => "undone".into(),
        Some(CompensationStatus::Failed(e)) => format!("**undo failed**: {}", cell(e)),
    }
}

fn headline(report: &Report) -> &'static str {
    match report.outcome_label() {
        "Succeeded" => "✅ Succeeded",
        "Failed" => "❌ Failed — nothing to undo",
        "RolledBack" => "↩️ Rolled back — the environment is as it was",
        "NeedsAttention" => "⚠️ Needs attention — partly applied",
        "Interrupted" => "⏸ Interrupted — resumable",
        _ => "⏳ Unfinished",
    }
}

fn findings(out: &mut String, title: &str, items: &[Finding]) {
    if items.is_empty() {
        return;
    }
    let _ = writeln!(out, "## {title}\n\n| Step | Key | Value |\n|---|---|---|");
    for f in items {
        let value = f
            .value
            .as_str()
            .map_or_else(|| f.value.to_string(), str::to_string);
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            code(f.step.as_str()),
            code(&f.key),
            code(&value)
        );
    }
    out.push('\n');
}

fn step_row(out: &mut String, i: usize, s: &StepRow) {
    let _ = writeln!(
        out,
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        i + 1,
        code(s.id.as_str()),
        status(s.status),
        s.attempts,
        s.retries,
        seconds(s.start_offset_seconds),
        seconds(s.duration_seconds),
        compensation(&s.compensation),
        s.error.as_deref().map_or_else(|| "".into(), cell),
    );
}

/// Renders the page. Extra values are applied first (see [`Report::resolved`]).
pub fn render(report: &Report) -> String {
    let r = report.resolved();
    let mut out = String::new();
    let run = r
        .run_id
        .as_ref()
        .map_or_else(|| "(unknown run)".to_string(), |id| id.to_string());
    let _ = writeln!(out, "# Run {}: {}\n", cell(&run), headline(&r));
    if let Some(m) = &r.message {
        let _ = writeln!(out, "> {}\n", cell(m));
    }
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| Outcome | **{}** |", r.outcome_label());
    let _ = writeln!(out, "| Runbook | {} |", code(&r.runbook));
    let _ = writeln!(
        out,
        "| Environment | {} ({}) |",
        code(&r.environment_name),
        code(&r.environment)
    );
    let _ = writeln!(out, "| Started | {} |", time(r.started_at));
    let _ = writeln!(out, "| Finished | {} |", time(r.finished_at));
    let _ = writeln!(out, "| Duration | {} s |", seconds(r.duration_seconds));
    let _ = writeln!(out, "| Sessions | {} |", r.timeline.sessions.len());
    if let Some(v) = &r.cutover_version {
        let _ = writeln!(out, "| cutover | {} |", code(v));
    }
    for link in &r.links {
        let _ = writeln!(out, "| Linked run | {} |", cell(&link.to_string()));
    }
    let _ = writeln!(out, "| Plan hash | {} |\n", code(&r.plan_hash));

    if !r.next_steps.is_empty() {
        let _ = writeln!(out, "## What to do next\n");
        for n in &r.next_steps {
            let _ = writeln!(out, "- {}", cell(n));
        }
        out.push('\n');
    }

    let _ = writeln!(out, "## Steps\n");
    if r.steps.is_empty() {
        let _ = writeln!(out, "No step started.\n");
    } else {
        let _ = writeln!(
            out,
            "| # | Step | Status | Attempts | Retries | Start (s) | Duration (s) | Undo | Error |\n|---:|---|---|---:|---:|---:|---:|---|---|"
        );
        for (i, s) in r.steps.iter().enumerate() {
            step_row(&mut out, i, s);
        }
        out.push('\n');
    }

    let _ = writeln!(out, "## Freeze window\n");
    match &r.freeze_window {
        None => {
            let _ = writeln!(out, "Blue was not frozen in this run.\n");
        }
        Some(w) => {
            let _ = writeln!(
                out,
                "From the first moment blue refused writes to the first moment green (or unfrozen blue) accepted them.\n"
            );
            let _ = writeln!(out, "| | |\n|---|---|");
            let _ = writeln!(
                out,
                "| Writes refused from | {} ({}) |",
                time(Some(w.frozen_at)),
                cell(&w.frozen_source)
            );
            match (&w.writable_at, &w.writable_source) {
                (Some(t), Some(src)) => {
                    let _ = writeln!(
                        out,
                        "| Writable again at | {} ({}) |",
                        time(Some(*t)),
                        cell(src)
                    );
                }
                _ => {
                    let _ = writeln!(
                        out,
                        "| Writable again at | **not yet: writes are still refused** |"
                    );
                }
            }
            let _ = writeln!(out, "| Window | {} s |\n", seconds(w.seconds));
        }
    }

    let measures = [
        ("RTO", r.rto_seconds.map(|v| format!("{v} s"))),
        ("RPO", r.rpo_seconds.map(|v| format!("{v} s"))),
        (
            "Writes acknowledged",
            r.writes_acknowledged.map(|v| v.to_string()),
        ),
        ("Writes lost", r.writes_lost.map(|v| v.to_string())),
    ];
    if measures.iter().any(|(_, v)| v.is_some()) || r.writes_note.is_some() {
        let _ = writeln!(out, "## Measures\n\n| | |\n|---|---|");
        for (name, v) in measures {
            if let Some(v) = v {
                let _ = writeln!(out, "| {name} | {v} |");
            }
        }
        if let Some(note) = &r.writes_note {
            let _ = writeln!(out, "| Writes | {} |", cell(note));
        }
        out.push('\n');
    }

    findings(&mut out, "Checksums", &r.checksums);
    findings(&mut out, "Fingerprints", &r.fingerprints);
    findings(&mut out, "Versions", &r.versions);

    let with_outputs: Vec<_> = r.steps.iter().filter(|s| !s.outputs.is_empty()).collect();
    if !with_outputs.is_empty() {
        let _ = writeln!(
            out,
            "## Step outputs\n\nSecret-looking keys are redacted.\n"
        );
        for s in with_outputs {
            let _ = writeln!(
                out,
                "- {}: {}",
                code(s.id.as_str()),
                code(&serde_json::Value::Object(s.outputs.clone()).to_string())
            );
        }
        out.push('\n');
    }

    // The well-known measures are in the Measures table already; the rest here.
    let well_known = [
        EXTRA_RTO,
        EXTRA_RPO,
        EXTRA_WRITES_ACKNOWLEDGED,
        EXTRA_WRITES_LOST,
    ];
    let other: Vec<_> = r
        .extra
        .iter()
        .filter(|(k, _)| !well_known.contains(&k.as_str()))
        .collect();
    if !other.is_empty() {
        let _ = writeln!(out, "## Extra\n\n| Key | Value |\n|---|---|");
        for (k, v) in other {
            let _ = writeln!(out, "| {} | {} |", code(k), code(&v.to_string()));
        }
        out.push('\n');
    }

    let _ = writeln!(
        out,
        "## Timeline\n\n![Timeline of run {}]({TIMELINE_FILE})",
        cell(&run)
    );
    out
}
