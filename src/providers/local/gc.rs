//! Garbage collection of local instances that no run owns.
//!
//! An instance is garbage when its `cutover:run-id` tag names a run that has no journal
//! in `<state_dir>/runs/`, or a run that finished `Failed` or `RolledBack` (its
//! compensations should have removed it). Instances of a run that is still going (no
//! `run_finished` event), that needs attention, or that `Succeeded` are kept: after a
//! successful blue-green run the green instance is the live database. Instances without a
//! run-id tag were not created by a run and are never touched.

use super::compute::LocalCompute;
use crate::engine::journal::{read_records, Event, Outcome};
use crate::engine::run::journal_path;
use crate::failure::Failure;
use crate::ids::{InstanceId, RunId};
use crate::providers::{tag, Compute};
use std::path::Path;

/// One instance `gc` considers garbage, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GcCandidate {
    pub instance: InstanceId,
    pub run_id: String,
    pub reason: String,
    /// Whether this call removed it.
    pub removed: bool,
}

/// What a run's journal says about ownership.
fn run_owner_state(state_dir: &Path, run_id: &str) -> Option<String> {
    let path = journal_path(state_dir, &RunId::new(run_id));
    if !path.exists() {
        return Some(format!("run {run_id} does not exist"));
    }
    let Ok((records, _)) = read_records(&path) else {
        return None; // unreadable journal: keep, a human should look
    };
    records.iter().rev().find_map(|r| match &r.event {
        Event::RunFinished {
            outcome: o @ (Outcome::Failed | Outcome::RolledBack),
            ..
        } => Some(format!("run {run_id} finished {o}")),
        _ => None,
    })
}

/// Lists garbage instances; terminates them when `remove` is true. Every failure to
/// remove is reported (the first one as the error) after trying all of them.
pub async fn gc(
    state_dir: &Path,
    compute: &LocalCompute,
    remove: bool,
) -> Result<Vec<GcCandidate>, Failure> {
    let instances = compute
        .records()?
        .into_iter()
        .map(|rec| (InstanceId::new(rec.name.clone()), rec.tags))
        .collect();
    collect(state_dir, instances, compute, remove).await
}

/// The provider-independent part of gc: of `instances` (id and tags, from any
/// provider), those whose run does not own them any more by the journals in
/// `state_dir`; terminated through `compute` when `remove`.
pub async fn collect(
    state_dir: &Path,
    instances: Vec<(InstanceId, crate::providers::Tags)>,
    compute: &dyn Compute,
    remove: bool,
) -> Result<Vec<GcCandidate>, Failure> {
    let mut out = Vec::new();
    let mut first_error = None;
    for (id, tags) in instances {
        let Some(run_id) = tags.get(tag::RUN_ID) else {
            continue;
        };
        let Some(reason) = run_owner_state(state_dir, run_id) else {
            continue;
        };
        let mut removed = false;
        if remove {
            match compute.terminate(&id).await {
                Ok(()) => removed = true,
                Err(f) => {
                    first_error.get_or_insert(f);
                }
            }
        }
        out.push(GcCandidate {
            instance: id,
            run_id: run_id.clone(),
            reason,
            removed,
        });
    }
    match first_error {
        Some(f) => Err(f),
        None => Ok(out),
    }
}
