//! Run reports: JSON, Markdown, timeline.
//!
//! A report is built only from the run's journal ([`Report::from_journal`]), so it can be
//! written at the end of every session and regenerated later from the journal alone.
//! Secret-looking output keys (containing `password`, `secret`, `credential` or
//! `private`) are redacted before anything is rendered.

mod build;
mod json;
mod markdown;
pub mod measures;
pub mod model;
mod redact;
#[cfg(test)]
mod tests;
mod timeline_svg;

pub use model::{Finding, FreezeWindow, Report, StepRow, Timeline};
pub use timeline_svg::escape as escape_xml;

use crate::engine::journal::Record;
use crate::failure::Failure;
use std::path::{Path, PathBuf};

pub const JSON_FILE: &str = "report.json";
pub const MARKDOWN_FILE: &str = "report.md";
pub const TIMELINE_FILE: &str = "timeline.svg";

/// Where [`write_reports`] put the three files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportPaths {
    pub json: PathBuf,
    pub markdown: PathBuf,
    pub timeline: PathBuf,
}

impl Report {
    /// The report as pretty JSON (stable field names).
    pub fn to_json(&self) -> String {
        json::render(self)
    }

    /// The report as a Markdown page; embeds the timeline as `timeline.svg`.
    pub fn to_markdown(&self) -> String {
        markdown::render(self)
    }

    /// The run's timeline as a self-contained SVG.
    pub fn to_svg(&self) -> String {
        timeline_svg::render(self)
    }

    /// Writes `report.json`, `report.md` and `timeline.svg` into `run_dir`, each
    /// atomically (a reader never sees half a report).
    pub fn write(&self, run_dir: &Path) -> Result<ReportPaths, Failure> {
        std::fs::create_dir_all(run_dir).map_err(|e| write_failure(run_dir, e))?;
        let paths = ReportPaths {
            json: run_dir.join(JSON_FILE),
            markdown: run_dir.join(MARKDOWN_FILE),
            timeline: run_dir.join(TIMELINE_FILE),
        };
        write_atomic(&paths.json, &self.to_json())?;
        write_atomic(&paths.markdown, &self.to_markdown())?;
        write_atomic(&paths.timeline, &self.to_svg())?;
        Ok(paths)
    }
}

/// Builds the report from the journal and the measures attached to the run, and writes
/// it into the run directory.
pub fn write_reports(run_dir: &Path, records: &[Record]) -> Result<ReportPaths, Failure> {
    Report::for_run(run_dir, records)?.write(run_dir)
}

impl Report {
    /// The report of the run in `run_dir`: its journal `records` and the figures
    /// attached to it (`measures.json`).
    pub fn for_run(run_dir: &Path, records: &[Record]) -> Result<Report, Failure> {
        let measures = measures::Measures::load(run_dir)?;
        Ok(Report::from_journal(records).with_measures(&measures))
    }
}

fn write_failure(path: &Path, e: std::io::Error) -> Failure {
    Failure::permanent(format!("cannot write the run report {}: {e}", path.display()))
        .with_hint("check free space and permissions of the state directory; the journal is intact, so `cutover report` can write it again")
}

fn write_atomic(path: &Path, text: &str) -> Result<(), Failure> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|e| write_failure(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| write_failure(path, e))
}
