//! `cutover gc`: instances that no run owns any more, on any provider.
//!
//! An instance is garbage when its `cutover:run-id` tag names a run that has no journal
//! in `<state_dir>/runs/`, or a run that finished `Failed` or `RolledBack` (its
//! compensations should have removed it). Instances of a run that is still going (no
//! `run_finished` event), that needs attention, or that `Succeeded` are kept: after a
//! successful blue-green run the green instance is the live database. Instances without a
//! run-id tag were not created by a run and are never touched. On aws every mirrored
//! journal is fetched first, so runs from every machine count: without them a live run's
//! instance could look orphaned, so gc does nothing when the mirror cannot be read.

use super::journal::{read_records, Event, Outcome};
use super::run::{journal_path, Backend};
use crate::config::Environment;
use crate::failure::Failure;
use crate::ids::{InstanceId, RunId};
use crate::providers::{tag, Compute, Tags};
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

/// The garbage instances of `env`; terminated when `remove`.
pub async fn collect_garbage(env: &Environment, remove: bool) -> Result<Vec<GcCandidate>, Failure> {
    let backend = Backend::open(env).await?;
    backend.fetch_runs(&env.state_dir).await?;
    let compute = backend.compute();
    let mut of_env = Tags::new();
    of_env.insert(tag::ENV.into(), env.name.clone());
    collect(&env.state_dir, compute.as_ref(), &of_env, remove).await
}

/// Of the instances of `compute` carrying every tag in `filter`, those whose run does not
/// own them any more by the journals in `state_dir`; terminated when `remove`. Every
/// failure to remove is reported (the first one as the error) after trying all of them.
pub async fn collect(
    state_dir: &Path,
    compute: &dyn Compute,
    filter: &Tags,
    remove: bool,
) -> Result<Vec<GcCandidate>, Failure> {
    let mut out = Vec::new();
    let mut first_error = None;
    for instance in compute.find_by_tags(filter).await? {
        let Some(run_id) = instance.tags.get(tag::RUN_ID) else {
            continue;
        };
        let Some(reason) = run_owner_state(state_dir, run_id) else {
            continue;
        };
        let mut removed = false;
        if remove {
            match compute.terminate(&instance.id).await {
                Ok(()) => {
                    tracing::info!(instance_id = %instance.id, run_id = %run_id, "gc terminated an instance no run owns");
                    removed = true
                }
                Err(f) => {
                    first_error.get_or_insert(f);
                }
            }
        }
        out.push(GcCandidate {
            instance: instance.id,
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

/// Why `run_id` no longer owns its instances, or `None` when it does (or its journal
/// cannot be read: a human should look).
fn run_owner_state(state_dir: &Path, run_id: &str) -> Option<String> {
    let path = journal_path(state_dir, &RunId::new(run_id));
    if !path.exists() {
        return Some(format!("run {run_id} does not exist"));
    }
    let Ok((records, _)) = read_records(&path) else {
        return None;
    };
    records.iter().rev().find_map(|r| match &r.event {
        Event::RunFinished {
            outcome: o @ (Outcome::Failed | Outcome::RolledBack),
            ..
        } => Some(format!("run {run_id} finished {o}")),
        _ => None,
    })
}
