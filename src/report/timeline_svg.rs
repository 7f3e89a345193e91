//! The picture of a run: a Gantt-like SVG, one row per step. Self-contained (no fonts,
//! scripts or links), every text escaped.
//!
//! Per row: the step's running time as bars colored by how each stretch ended (a run
//! resumed after a crash shows one bar per session), a tick for each retry, and a thin
//! bar under it for the step's compensation (undo). Behind the rows: the freeze window
//! as a blue band, gaps between sessions greyed out, and resumes as dashed lines.

use super::model::{Report, SegmentEnd, TimelineRow};
use crate::engine::state::CompensationStatus;
use std::fmt::Write;

const WIDTH: f64 = 1000.0;
const LABEL_W: f64 = 220.0;
const RIGHT: f64 = 40.0;
const TOP: f64 = 86.0;
const ROW_H: f64 = 30.0;
const BAR_H: f64 = 14.0;
const COMP_H: f64 = 6.0;
const FONT: &str = "font-family=\"sans-serif\"";

/// Escapes text for SVG element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 does not allow at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn segment_color(end: SegmentEnd) -> (&'static str, &'static str) {
    match end {
        SegmentEnd::Succeeded => ("#2e7d32", "succeeded"),
        SegmentEnd::Failed => ("#c62828", "failed"),
        SegmentEnd::Skipped => ("#9e9e9e", "skipped"),
        SegmentEnd::Interrupted => ("#ef6c00", "interrupted"),
        SegmentEnd::Cut => ("#ffb74d", "cut short"),
        SegmentEnd::Running => ("#1565c0", "running"),
    }
}

/// A tick step of 1, 2 or 5 × 10^n giving about 8 ticks.
fn tick_step(span: f64) -> f64 {
    let raw = (span / 8.0).max(0.001);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

fn fmt_secs(s: f64) -> String {
    if s >= 120.0 && s % 60.0 == 0.0 {
        format!("{}m", s / 60.0)
    } else if s.fract() == 0.0 {
        format!("{s:.0}s")
    } else {
        format!("{s}s")
    }
}

struct Scale {
    span: f64,
}

impl Scale {
    fn x(&self, s: f64) -> f64 {
        LABEL_W + (s.clamp(0.0, self.span) / self.span) * (WIDTH - LABEL_W - RIGHT)
    }
}

fn row(out: &mut String, i: usize, row: &TimelineRow, scale: &Scale) {
    let y = TOP + i as f64 * ROW_H;
    let step = escape(row.step.as_str());
    let _ = writeln!(out, r#"<g class="step" data-step="{step}">"#);
    let _ = writeln!(
        out,
        r##"<text x="{}" y="{}" text-anchor="end" font-size="12" {FONT} fill="#212121">{step}</text>"##,
        LABEL_W - 10.0,
        y + 4.0 + BAR_H - 3.0
    );
    for seg in &row.segments {
        let (color, word) = segment_color(seg.ended);
        let x0 = scale.x(seg.start_seconds);
        let w = (scale.x(seg.end_seconds) - x0).max(2.0);
        let dur = seg.end_seconds - seg.start_seconds;
        let _ = writeln!(
            out,
            r#"<rect class="bar" x="{x0:.1}" y="{}" width="{w:.1}" height="{BAR_H}" rx="2" fill="{color}"><title>{step}: {word} after {dur:.1}s (from {:.1}s to {:.1}s)</title></rect>"#,
            y + 4.0,
            seg.start_seconds,
            seg.end_seconds
        );
    }
    for r in &row.retries {
        let x = scale.x(r.at_seconds);
        let _ = writeln!(
            out,
            r##"<g class="retry"><line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="#b71c1c" stroke-width="2"/><circle cx="{x:.1}" cy="{}" r="3" fill="#ffffff" stroke="#b71c1c" stroke-width="1.5"/><title>{step}: attempt {} failed, retry in {} ms: {}</title></g>"##,
            y + 1.0,
            y + 4.0 + BAR_H + 3.0,
            y + 2.0,
            r.attempt,
            r.delay_ms,
            escape(&r.error)
        );
    }
    if let Some(c) = &row.compensation {
        let (color, dash, word) = match &c.status {
            CompensationStatus::Succeeded => ("#6a1b9a", "", "undone".to_string()),
            CompensationStatus::Running => ("#ba68c8", "", "undo running".to_string()),
            CompensationStatus::Failed(e) => (
                "#c62828",
                r##" stroke="#7f0000" stroke-width="1""##,
                format!("undo failed: {e}"),
            ),
        };
        let x0 = scale.x(c.start_seconds);
        let w = (scale.x(c.end_seconds.unwrap_or(scale.span)) - x0).max(2.0);
        let _ = writeln!(
            out,
            r#"<rect class="compensation" x="{x0:.1}" y="{}" width="{w:.1}" height="{COMP_H}" fill="{color}"{dash}><title>{step}: {}</title></rect>"#,
            y + 4.0 + BAR_H + 2.0,
            escape(&word)
        );
    }
    let _ = writeln!(out, "</g>");
}

/// Renders the timeline.
pub fn render(report: &Report) -> String {
    let t = &report.timeline;
    let scale = Scale {
        span: t.span_seconds.max(1.0),
    };
    let rows = t.rows.len().max(1);
    let chart_bottom = TOP + rows as f64 * ROW_H;
    let height = chart_bottom + 66.0;
    let mut out = String::new();
    let run = report
        .run_id
        .as_ref()
        .map_or_else(|| "(unknown run)".into(), |r| r.to_string());
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img">"#
    );
    let _ = writeln!(
        out,
        "<title>Timeline of run {}: {}</title>",
        escape(&run),
        report.outcome_label()
    );
    let _ = writeln!(
        out,
        r##"<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>"##
    );
    let outcome_color = match report.outcome_label() {
        "Succeeded" => "#2e7d32",
        "Failed" | "NeedsAttention" => "#c62828",
        "RolledBack" => "#6a1b9a",
        _ => "#ef6c00",
    };
    let _ = writeln!(
        out,
        r##"<text x="16" y="26" font-size="16" font-weight="bold" {FONT} fill="#212121">Run {} — <tspan fill="{outcome_color}">{}</tspan></text>"##,
        escape(&run),
        report.outcome_label()
    );
    let duration = report
        .duration_seconds
        .map_or_else(|| "—".into(), |d| format!("{d:.1}s"));
    let _ = writeln!(
        out,
        r##"<text x="16" y="46" font-size="12" {FONT} fill="#616161">{} · {} · {} · {} session{}</text>"##,
        escape(&report.runbook),
        escape(&report.environment_name),
        duration,
        t.sessions.len(),
        if t.sessions.len() == 1 { "" } else { "s" }
    );

    // Row stripes, gaps between sessions, the freeze window, the grid and axis: all
    // behind the bars.
    for i in (1..t.rows.len()).step_by(2) {
        let _ = writeln!(
            out,
            r##"<rect x="0" y="{}" width="{WIDTH}" height="{ROW_H}" fill="#f5f5f5"/>"##,
            TOP + i as f64 * ROW_H
        );
    }
    for pair in t.sessions.windows(2) {
        let (x0, x1) = (scale.x(pair[0].end_seconds), scale.x(pair[1].start_seconds));
        if x1 > x0 {
            let _ = writeln!(
                out,
                r##"<rect class="gap" x="{x0:.1}" y="{TOP}" width="{:.1}" height="{}" fill="#e0e0e0"><title>no process running</title></rect>"##,
                x1 - x0,
                chart_bottom - TOP
            );
            if x1 - x0 > 70.0 {
                let _ = writeln!(
                    out,
                    r##"<text x="{:.1}" y="{}" text-anchor="middle" font-size="10" {FONT} fill="#616161">no process running</text>"##,
                    (x0 + x1) / 2.0,
                    chart_bottom - 4.0
                );
            }
        }
    }
    if let Some(w) = &report.freeze_window {
        let x0 = scale.x(w.start_offset_seconds);
        let x1 = scale.x(w.end_offset_seconds.unwrap_or(scale.span));
        let label = w.seconds.map_or_else(
            || "writes refused (still frozen)".into(),
            |s| format!("writes refused {s:.1}s"),
        );
        let _ = writeln!(
            out,
            r##"<rect class="freeze" x="{x0:.1}" y="{}" width="{:.1}" height="{}" fill="#1e88e5" fill-opacity="0.12" stroke="#1e88e5" stroke-opacity="0.5"><title>{}</title></rect>"##,
            TOP - 16.0,
            (x1 - x0).max(2.0),
            chart_bottom - TOP + 16.0,
            escape(&label)
        );
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{}" font-size="10" {FONT} fill="#1565c0">{}</text>"##,
            x0 + 3.0,
            TOP - 5.0,
            escape(&label)
        );
    }
    let step = tick_step(scale.span);
    let mut s = 0.0;
    while s <= scale.span + 1e-9 {
        let x = scale.x(s);
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{chart_bottom}" stroke="#e0e0e0" stroke-width="1"/><text x="{x:.1}" y="{}" text-anchor="middle" font-size="10" {FONT} fill="#757575">{}</text>"##,
            chart_bottom + 14.0,
            fmt_secs((s * 1000.0).round() / 1000.0)
        );
        s += step;
    }
    let _ = writeln!(
        out,
        r##"<line x1="{LABEL_W}" y1="{chart_bottom}" x2="{}" y2="{chart_bottom}" stroke="#9e9e9e"/>"##,
        WIDTH - RIGHT
    );
    for session in t.sessions.iter().filter(|s| s.resumed) {
        let x = scale.x(session.start_seconds);
        let _ = writeln!(
            out,
            r##"<g class="resume"><line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{chart_bottom}" stroke="#424242" stroke-dasharray="4 3"/><text x="{:.1}" y="{}" font-size="10" {FONT} fill="#424242">resumed</text></g>"##,
            TOP - 16.0,
            x + 3.0,
            TOP - 18.0
        );
    }

    for (i, r) in t.rows.iter().enumerate() {
        row(&mut out, i, r, &scale);
    }
    if t.rows.is_empty() {
        let _ = writeln!(
            out,
            r##"<text x="{LABEL_W}" y="{}" font-size="12" {FONT} fill="#757575">no step started</text>"##,
            TOP + 18.0
        );
    }

    // Legend.
    let ly = chart_bottom + 48.0;
    let items: [(&str, &str); 9] = [
        ("#2e7d32", "succeeded"),
        ("#c62828", "failed"),
        ("#ef6c00", "interrupted"),
        ("#ffb74d", "cut short"),
        ("#9e9e9e", "skipped"),
        ("#1565c0", "running"),
        ("#6a1b9a", "undone"),
        ("#c62828", "undo failed"),
        ("#1e88e5", "freeze window"),
    ];
    let mut x = 16.0;
    for (color, label) in items {
        let opacity = if label == "freeze window" {
            r#" fill-opacity="0.25""#
        } else {
            ""
        };
        // Undo bars are thin in the chart, so in the legend too.
        let (top, h) = if label.starts_with("undo") {
            (ly - 6.0, COMP_H)
        } else {
            (ly - 10.0, 12.0)
        };
        let _ = writeln!(
            out,
            r##"<rect x="{x}" y="{top}" width="12" height="{h}" fill="{color}"{opacity}/><text x="{}" y="{}" font-size="11" {FONT} fill="#424242">{label}</text>"##,
            x + 16.0,
            ly
        );
        x += 18.0 + label.len() as f64 * 6.5 + 14.0;
    }
    let _ = writeln!(
        out,
        r##"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="#b71c1c" stroke-width="2"/><circle cx="{x}" cy="{}" r="3" fill="#ffffff" stroke="#b71c1c" stroke-width="1.5"/><text x="{}" y="{ly}" font-size="11" {FONT} fill="#424242">retry</text>"##,
        ly - 12.0,
        ly + 2.0,
        ly - 11.0,
        x + 8.0
    );
    let _ = writeln!(
        out,
        r##"<text x="{}" y="{}" font-size="10" text-anchor="end" {FONT} fill="#757575">seconds since the run started</text>"##,
        WIDTH - RIGHT,
        chart_bottom + 28.0
    );
    out.push_str("</svg>\n");
    out
}
