//! `cutover gc`: find (and, only when told to, remove) resources tagged by runs that no
//! longer exist. Instances are terminated; S3 run prefixes are listed but never deleted
//! here (backups and journals follow the retention policy, not gc).

use super::ec2_compute::Ec2Compute;
use super::journal_mirror::JournalMirror;
use crate::failure::Failure;
use crate::ids::RunId;
use crate::providers::{tag, Compute, Instance};
use std::collections::BTreeSet;

/// What gc found.
#[derive(Clone, Debug, Default)]
pub struct Orphans {
    /// Live instances whose `cutover:run-id` names no known run.
    pub instances: Vec<Instance>,
    /// Run prefixes in S3 that name no known run (reported only).
    pub run_prefixes: Vec<RunId>,
}

/// Whether gc may change anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Confirm {
    /// List only.
    DryRun,
    /// The operator confirmed removal.
    Remove,
}

/// The instances `instances` whose run is not in `known_runs` (pure).
pub fn orphaned_instances(instances: Vec<Instance>, known_runs: &BTreeSet<RunId>) -> Vec<Instance> {
    instances
        .into_iter()
        .filter(|i| {
            i.tags
                .get(tag::RUN_ID)
                .is_some_and(|r| !known_runs.contains(&RunId::new(r.as_str())))
        })
        .collect()
}

/// Lists orphans: instances tagged with a run id not in `known_runs`, and S3 run
/// prefixes (when a mirror is given) likewise.
pub async fn find_orphans(
    compute: &Ec2Compute,
    mirror: Option<&JournalMirror>,
    known_runs: &BTreeSet<RunId>,
) -> Result<Orphans, Failure> {
    let instances = orphaned_instances(compute.find_tagged_by_any_run().await?, known_runs);
    let run_prefixes = match mirror {
        Some(m) => m
            .runs()
            .await?
            .into_iter()
            .filter(|r| !known_runs.contains(r))
            .collect(),
        None => Vec::new(),
    };
    Ok(Orphans {
        instances,
        run_prefixes,
    })
}

/// Terminates the orphaned instances when `confirm` is [`Confirm::Remove`]; returns the
/// ids it terminated (none on a dry run).
pub async fn remove_orphans(
    compute: &Ec2Compute,
    orphans: &Orphans,
    confirm: Confirm,
) -> Result<Vec<crate::ids::InstanceId>, Failure> {
    if confirm == Confirm::DryRun {
        return Ok(Vec::new());
    }
    let mut removed = Vec::new();
    for i in &orphans.instances {
        compute.terminate(&i.id).await?;
        tracing::info!(instance_id = %i.id, run_id = i.tags.get(tag::RUN_ID).map(String::as_str).unwrap_or("-"), "gc terminated orphan");
        removed.push(i.id.clone());
    }
    Ok(removed)
}
