//! The report as JSON: the [`Report`] fields, serde names, extra values applied.

use super::model::Report;

/// Pretty JSON with a trailing newline. Field names are stable; see [`Report`].
pub fn render(report: &Report) -> String {
    let mut text = serde_json::to_string_pretty(&report.resolved())
        .expect("a report is plain data and always serialises");
    text.push('\n');
    text
}
