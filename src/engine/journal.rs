//! The run journal: append-only JSON Lines, one file per run, every record flushed and
//! fsynced before the call returns.
//!
//! # Guarantees
//! - A record returned by [`Journal::append`] is on disk: a crash (even `kill -9` or a
//!   power cut on a filesystem that honours fsync) after it returns cannot lose it.
//! - Intent is journaled before a side effect, so a resumed run knows which effects
//!   may have happened and with which idempotency token.
//! - A crash while writing leaves at most one torn last line; [`Journal::open`] drops it
//!   (the event it described had not been acknowledged to anyone) and appends after it.
//! - Records never contain secrets: steps put only non-secret outputs and details here.

use crate::failure::{ErrorClass, Failure};
use crate::ids::{RunId, StepId};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// One line of the journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// 1-based position in the journal.
    pub seq: u64,
    /// RFC 3339 UTC.
    pub at: chrono::DateTime<chrono::Utc>,
    #[serde(flatten)]
    pub event: Event,
}

/// Everything that happens in a run, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        run_id: RunId,
        plan_hash: String,
        runbook: PathBuf,
        environment: PathBuf,
        environment_name: String,
        params: serde_json::Map<String, serde_json::Value>,
        /// The `--set` overrides as given, so resume rebuilds the same plan.
        sets: Vec<(String, String)>,
        cutover_version: String,
        host: String,
        pid: u32,
    },
    RunResumed {
        pid: u32,
        host: String,
        forced: bool,
        plan_hash: String,
    },
    LeaseTakenOver {
        previous_owner: String,
        previous_run_id: String,
        previous_pid: u32,
        reason: String,
    },
    StepStarted {
        step: StepId,
        attempt: u32,
        /// The step's kind (`db.freeze`), so readers of the journal (the report) need
        /// not guess it from the step id. Absent in journals of earlier versions.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kind: Option<String>,
    },
    StepIntent {
        step: StepId,
        action: String,
        token: String,
        detail: serde_json::Value,
    },
    StepCheckpoint {
        step: StepId,
        state: serde_json::Value,
    },
    StepRetrying {
        step: StepId,
        attempt: u32,
        class: ErrorClass,
        error: String,
        delay_ms: u64,
    },
    StepSucceeded {
        step: StepId,
        outputs: serde_json::Map<String, serde_json::Value>,
    },
    StepSkipped {
        step: StepId,
        reason: String,
    },
    StepFailed {
        step: StepId,
        class: ErrorClass,
        error: String,
        hint: Option<String>,
    },
    /// The step was stopped by an interruption before it finished; it will re-run.
    StepInterrupted {
        step: StepId,
    },
    /// On resume: a finished step's effect was re-checked.
    PostconditionChecked {
        step: StepId,
        ok: bool,
        detail: String,
    },
    CompensationStarted {
        step: StepId,
    },
    /// A compensation's own progress (the command it started, what it decided), kept
    /// apart from the forward step's [`Event::StepCheckpoint`]: a compensation reads the
    /// forward step's last checkpoint (what it did) and never overwrites it, and a
    /// resumed rollback continues from this one.
    CompensationCheckpoint {
        step: StepId,
        state: serde_json::Value,
    },
    CompensationSucceeded {
        step: StepId,
    },
    CompensationFailed {
        step: StepId,
        error: String,
    },
    RunInterrupted {
        reason: String,
    },
    RunFinished {
        outcome: Outcome,
        message: String,
    },
    /// This run is linked to another run: a rollback names the run it undoes
    /// (`rollback_of`), and the undone run records its rollback (`rolled_back_by`), again
    /// with the rollback's outcome once it ended.
    RunLinked {
        relation: RunRelation,
        run_id: RunId,
        #[serde(default)]
        outcome: Option<Outcome>,
    },
}

/// How a [`Event::RunLinked`] run relates to the journal's own run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunRelation {
    /// The journal's run is a rollback of the linked run.
    RollbackOf,
    /// The linked run is a rollback of the journal's run.
    RolledBackBy,
}

impl std::fmt::Display for RunRelation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RunRelation::RollbackOf => "rollback of",
            RunRelation::RolledBackBy => "rolled back by",
        })
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Every step succeeded (or was skipped by its `when`).
    Succeeded,
    /// A step failed and there was nothing to undo.
    Failed,
    /// A step failed and every compensation succeeded: the environment is as it was.
    RolledBack,
    /// Partly applied: a compensation failed or a postcondition no longer holds.
    NeedsAttention,
}

impl Outcome {
    /// The CLI exit code for this outcome (see DESIGN.md).
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Succeeded => 0,
            Outcome::Failed | Outcome::RolledBack => 1,
            Outcome::NeedsAttention => 3,
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// An open journal, positioned at its end.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    next_seq: u64,
    /// Told after each record is on disk (the aws journal mirror uploads on it).
    on_append: Option<std::sync::Arc<tokio::sync::Notify>>,
}

fn io_failure(path: &Path, what: &str, e: std::io::Error) -> Failure {
    Failure::permanent(format!("cannot {what} journal {}: {e}", path.display()))
        .with_hint("check free space and permissions of the state directory")
}

impl Journal {
    /// Creates a new journal; fails if one already exists at `path`.
    pub fn create(path: &Path) -> Result<Journal, Failure> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| io_failure(path, "create the directory of", e))?;
        }
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(path)
            .map_err(|e| io_failure(path, "create", e))?;
        sync_dir(path);
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            next_seq: 1,
            on_append: None,
        })
    }

    /// Opens an existing journal for appending and returns its records. A torn last
    /// line (no newline, unparsable) is truncated away.
    pub fn open(path: &Path) -> Result<(Journal, Vec<Record>), Failure> {
        let (records, valid_len) = read_records(path)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| io_failure(path, "open", e))?;
        file.set_len(valid_len)
            .map_err(|e| io_failure(path, "repair", e))?;
        let mut file = file;
        file.seek(SeekFrom::End(0))
            .map_err(|e| io_failure(path, "open", e))?;
        let next_seq = records.last().map_or(1, |r| r.seq + 1);
        Ok((
            Journal {
                path: path.to_path_buf(),
                file,
                next_seq,
                on_append: None,
            },
            records,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `notify` is told after every record this journal writes from now on.
    pub fn notify_on_append(&mut self, notify: std::sync::Arc<tokio::sync::Notify>) {
        self.on_append = Some(notify);
    }

    /// Writes, flushes and fsyncs one record.
    pub fn append(&mut self, event: Event) -> Result<Record, Failure> {
        self.write(event, true)
    }

    /// Writes and flushes one record without waiting for the disk. It survives the
    /// process (a `kill -9`: the kernel has it), but a power cut may lose it until the next
    /// [`append`](Journal::append), whose fsync makes it durable too. Only for records whose
    /// loss is harmless: a postcondition re-check (the next resume checks again). A resume
    /// of 3,000 finished steps writes one per step; fsyncing each took most of its time.
    pub fn append_unsynced(&mut self, event: Event) -> Result<Record, Failure> {
        self.write(event, false)
    }

    fn write(&mut self, event: Event, sync: bool) -> Result<Record, Failure> {
        let record = Record {
            seq: self.next_seq,
            at: chrono::Utc::now(),
            event,
        };
        let mut line = serde_json::to_vec(&record)
            .map_err(|e| Failure::permanent(format!("cannot encode journal record: {e}")))?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .map_err(|e| io_failure(&self.path, "write", e))?;
        self.file
            .flush()
            .map_err(|e| io_failure(&self.path, "flush", e))?;
        if sync {
            self.file
                .sync_data()
                .map_err(|e| io_failure(&self.path, "sync", e))?;
        }
        self.next_seq += 1;
        if let Some(notify) = &self.on_append {
            notify.notify_one();
        }
        if let Some(hooks) = crate::steps::hooks::installed() {
            hooks.journaled(&self.path, record.seq);
        }
        Ok(record)
    }
}

/// Reads every complete record; returns them and the byte length they occupy.
pub fn read_records(path: &Path) -> Result<(Vec<Record>, u64), Failure> {
    let file = File::open(path).map_err(|e| io_failure(path, "open", e))?;
    let mut reader = BufReader::new(file);
    let mut records = Vec::new();
    let mut valid_len = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| io_failure(path, "read", e))?;
        if n == 0 {
            break;
        }
        let complete = line.ends_with(b"\n");
        match serde_json::from_slice::<Record>(&line) {
            Ok(record) if complete => {
                records.push(record);
                valid_len += n as u64;
            }
            // A torn final write: the record was never acknowledged.
            _ if !complete => break,
            Err(e) => {
                return Err(Failure::permanent(format!(
                    "journal {} is corrupt at record {}: {e}",
                    path.display(),
                    records.len() + 1
                ))
                .with_hint("the journal is append-only; do not edit it by hand"))
            }
            Ok(_) => unreachable!("complete checked above"),
        }
    }
    Ok((records, valid_len))
}

fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started() -> Event {
        Event::StepStarted {
            step: StepId::new("a"),
            attempt: 1,
            kind: None,
        }
    }

    #[test]
    fn records_round_trip_and_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let mut j = Journal::create(&path).unwrap();
        j.append(started()).unwrap();
        j.append(Event::StepSucceeded {
            step: StepId::new("a"),
            outputs: Default::default(),
        })
        .unwrap();
        drop(j);
        let (mut j, records) = Journal::open(&path).unwrap();
        assert_eq!(
            records.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(records[0].event, started());
        assert_eq!(j.append(started()).unwrap().seq, 3);
    }

    #[test]
    fn an_unsynced_record_is_written_in_sequence_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let mut j = Journal::create(&path).unwrap();
        j.append(started()).unwrap();
        let check = Event::PostconditionChecked {
            step: StepId::new("a"),
            ok: true,
            detail: "still frozen".into(),
        };
        assert_eq!(j.append_unsynced(check.clone()).unwrap().seq, 2);
        // Another process reads it at once (the kernel has it).
        let (records, _) = read_records(&path).unwrap();
        assert_eq!(records.last().map(|r| &r.event), Some(&check));
        assert_eq!(j.append(started()).unwrap().seq, 3);
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let mut j = Journal::create(&path).unwrap();
        j.append(started()).unwrap();
        drop(j);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"seq":2,"at":"2026-"#).unwrap();
        drop(f);
        let (mut j, records) = Journal::open(&path).unwrap();
        assert_eq!(records.len(), 1);
        j.append(started()).unwrap();
        let (records, _) = read_records(&path).unwrap();
        assert_eq!(
            records.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![1, 2]
        );
    }

    #[test]
    fn a_corrupt_complete_line_is_an_error_not_silently_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        std::fs::write(&path, b"not json\n").unwrap();
        let err = read_records(&path).unwrap_err();
        assert!(
            err.message.contains("corrupt at record 1"),
            "{}",
            err.message
        );
    }
}
