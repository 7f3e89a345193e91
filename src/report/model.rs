//! The report model: everything a run's journal says, arranged for people.
//!
//! Built only from journal records (plus what the caller adds to [`Report::extra`]), so a
//! report can be regenerated at any time, by any machine that has the journal.

pub use super::redact::{is_secret_key, redact, REDACTED};
use crate::engine::journal::Outcome;
use crate::engine::state::{CompensationStatus, StepStatus};
use crate::ids::{RunId, StepId};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Keys of [`Report::extra`] that override the well-known measures found in step outputs.
pub const EXTRA_RTO: &str = "rto_seconds";
pub const EXTRA_RPO: &str = "rpo_seconds";
pub const EXTRA_WRITES_ACKNOWLEDGED: &str = "writes_acknowledged";
pub const EXTRA_WRITES_LOST: &str = "writes_lost";

/// What a report says when no writer's figures reached it.
pub const NO_WRITE_FIGURES: &str = "no figure: cutover does not see the application's writes, and no load generator attached its count to this run (`cutover report RUN_ID --measure writes_acknowledged=N --measure writes_lost=M`)";

/// A run, as its report tells it. Field names are part of the JSON contract.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub run_id: Option<RunId>,
    pub runbook: String,
    pub environment: String,
    pub environment_name: String,
    pub plan_hash: String,
    pub cutover_version: Option<String>,
    /// `None` while the run has not finished (running, interrupted or crashed).
    pub outcome: Option<Outcome>,
    pub message: Option<String>,
    /// What the operator should do next; empty when the run succeeded.
    pub next_steps: Vec<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Wall-clock time from the first record to the last (finish, or latest event).
    pub duration_seconds: Option<f64>,
    pub interrupted: bool,
    /// Steps in the order they first appeared in the journal.
    pub steps: Vec<StepRow>,
    pub timeline: Timeline,
    pub freeze_window: Option<FreezeWindow>,
    /// `sha256` outputs (and keys ending in `_sha256`).
    pub checksums: Vec<Finding>,
    /// `fingerprint`/`digest` outputs (and keys ending in `_fingerprint`/`_digest`).
    pub fingerprints: Vec<Finding>,
    /// `version` outputs (and keys ending in `_version`), e.g. engine versions.
    pub versions: Vec<Finding>,
    pub rto_seconds: Option<f64>,
    pub rpo_seconds: Option<f64>,
    pub writes_acknowledged: Option<u64>,
    pub writes_lost: Option<u64>,
    /// Why there are no write figures, when there are none (set by [`Report::resolved`]):
    /// cutover does not see the application's writes; a load generator attaches them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub writes_note: Option<String>,
    /// Runs linked to this one: the run a rollback undoes, or the rollback of this run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<crate::engine::state::RunLink>,
    /// Anything the caller adds. The keys `rto_seconds`, `rpo_seconds`,
    /// `writes_acknowledged` and `writes_lost` override the values found in step outputs.
    pub extra: BTreeMap<String, Value>,
}

/// One row of the step table.
#[derive(Clone, Debug, Serialize)]
pub struct StepRow {
    pub id: StepId,
    pub status: StepStatus,
    /// Attempts started, across sessions.
    pub attempts: u32,
    pub retries: u32,
    /// Seconds from the run start to the step's first start.
    pub start_offset_seconds: Option<f64>,
    /// Seconds from the run start to the step's end (success, failure, skip, interruption).
    pub end_offset_seconds: Option<f64>,
    /// Time the step was actually running, summed over sessions (gaps between sessions
    /// are not counted).
    pub duration_seconds: Option<f64>,
    /// Why it failed, or why it was skipped; the last retry error while running.
    pub error: Option<String>,
    pub hint: Option<String>,
    pub compensation: Option<CompensationStatus>,
    /// Postconditions re-checked on resume that no longer held.
    pub postcondition_failures: Vec<String>,
    /// Outputs with secret-looking keys redacted.
    pub outputs: Map<String, Value>,
}

/// A well-known output found in a step's outputs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    pub step: StepId,
    /// Dotted path of the key inside the outputs, e.g. `manifest.sha256`.
    pub key: String,
    pub value: Value,
}

/// The window during which blue refused writes and green did not accept them yet:
/// from the first moment writes were refused to the first moment green (or, after a
/// rollback, unfrozen blue) was writable.
///
/// Each end comes from a step output (`frozen_at`, `writable_at`, RFC 3339) when one is
/// present, otherwise from the journal: the success of the freeze step (a step whose id
/// contains `freeze`), and the first later success of a traffic-switch/unfreeze step
/// (id containing `switch`, `traffic` or `unfreeze`) or of the freeze step's
/// compensation.
#[derive(Clone, Debug, Serialize)]
pub struct FreezeWindow {
    pub frozen_at: DateTime<Utc>,
    /// `None`: writes were still refused when the journal ended.
    pub writable_at: Option<DateTime<Utc>>,
    pub seconds: Option<f64>,
    pub start_offset_seconds: f64,
    pub end_offset_seconds: Option<f64>,
    /// Where `frozen_at` came from, in words.
    pub frozen_source: String,
    pub writable_source: Option<String>,
}

/// The picture of the run, in seconds from its start.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Timeline {
    /// Seconds from the first record to the last.
    pub span_seconds: f64,
    pub sessions: Vec<Session>,
    pub rows: Vec<TimelineRow>,
}

/// One process working on the run: the first start, or a resume.
#[derive(Clone, Debug, Serialize)]
pub struct Session {
    pub start_seconds: f64,
    pub end_seconds: f64,
    pub resumed: bool,
    pub ended: SessionEnd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionEnd {
    Finished,
    Interrupted,
    /// The next record is a resume without an interruption record: the process died.
    Crashed,
    /// The journal ends without a finish: still running, or died without a resume yet.
    Open,
}

/// One step's bars.
#[derive(Clone, Debug, Serialize)]
pub struct TimelineRow {
    pub step: StepId,
    pub segments: Vec<Segment>,
    pub retries: Vec<RetryMark>,
    pub compensation: Option<CompensationSpan>,
}

/// A stretch of time in which the step was running.
#[derive(Clone, Debug, Serialize)]
pub struct Segment {
    pub start_seconds: f64,
    pub end_seconds: f64,
    pub ended: SegmentEnd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentEnd {
    Succeeded,
    Failed,
    Skipped,
    Interrupted,
    /// Its session ended without saying what happened to the step.
    Cut,
    /// Still running when the journal ended.
    Running,
}

#[derive(Clone, Debug, Serialize)]
pub struct RetryMark {
    pub at_seconds: f64,
    /// The attempt that failed.
    pub attempt: u32,
    pub error: String,
    pub delay_ms: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct CompensationSpan {
    pub start_seconds: f64,
    /// `None` while running.
    pub end_seconds: Option<f64>,
    pub status: CompensationStatus,
}
