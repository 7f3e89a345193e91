//! Postconditions a resume could not check yet.
//!
//! On resume the executor re-checks that every finished step's effect still holds. A
//! check can fail without saying anything about the effect: the database is down because
//! the run's own dump stopped it (Neo4j Community stops the DBMS around `neo4j-admin
//! database dump`), or the network blinked. Such a check (a failure that is not
//! permanent) is not a violation and not a pass: the step stays *unconfirmed*, and no
//! step that needs it, directly or through other steps, starts until a later check
//! confirms it. Steps the crashed session had started (the dump itself, whose command
//! the resumed step adopts) go on: they started while the effect held, and waiting for
//! them to end is what brings the server back.
//!
//! # Guarantees
//! - A step that needs an unconfirmed step and had not started before the crash never
//!   starts before the effect is confirmed.
//! - A confirmation that still cannot be made [`CONFIRM_LIMIT`] after a step first waited
//!   for it ends the run `NeedsAttention`, as a violation does; nothing is undone.
//! - Steps that do not need an unconfirmed step are not held up.

use crate::ids::StepId;
use crate::plan::PlannedStep;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;
use tokio::time::Instant;

/// How long a step may wait for an earlier step's effect to be confirmed.
pub const CONFIRM_LIMIT: Duration = Duration::from_secs(600);

/// How soon a blocked step asks again.
pub const RECHECK_EVERY: Duration = Duration::from_secs(5);

/// The unconfirmed steps, each with when a step first waited for it.
#[derive(Debug, Default)]
pub struct Unconfirmed {
    steps: BTreeMap<StepId, Option<Instant>>,
}

impl Unconfirmed {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    pub fn insert(&mut self, step: StepId) {
        self.steps.insert(step, None);
    }

    pub fn confirmed(&mut self, step: &StepId) {
        self.steps.remove(step);
    }

    /// The unconfirmed steps `step` needs, directly or transitively, in id order.
    pub fn needed_by(&self, step: &PlannedStep, plan: &[PlannedStep]) -> Vec<StepId> {
        if self.steps.is_empty() {
            return Vec::new();
        }
        let by_id: HashMap<&StepId, &PlannedStep> = plan.iter().map(|s| (&s.id, s)).collect();
        let mut seen: BTreeSet<&StepId> = BTreeSet::new();
        let mut todo: Vec<&StepId> = step.needs.iter().collect();
        while let Some(id) = todo.pop() {
            if !seen.insert(id) {
                continue;
            }
            if let Some(s) = by_id.get(id) {
                todo.extend(s.needs.iter());
            }
        }
        self.steps
            .keys()
            .filter(|u| seen.contains(u))
            .cloned()
            .collect()
    }

    /// Records that a step waits for `step` now; whether it has waited past the limit.
    pub fn waited_too_long(&mut self, step: &StepId, now: Instant) -> bool {
        match self.steps.get_mut(step) {
            Some(first) => now.duration_since(*first.get_or_insert(now)) > CONFIRM_LIMIT,
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceFile;
    use crate::engine::retry::RetryPolicy;

    fn step(id: &str, needs: &[&str]) -> PlannedStep {
        PlannedStep {
            id: StepId::new(id),
            kind: crate::steps::find_kind("util.wait").unwrap(),
            description: None,
            needs: needs.iter().map(|n| StepId::new(*n)).collect(),
            inputs: Default::default(),
            retry: RetryPolicy::default(),
            timeout: None,
            when: None,
            compensate: None,
            location: SourceFile::new("t.toml", "").locate(None),
        }
    }

    #[test]
    fn a_step_waits_only_for_the_unconfirmed_steps_it_needs_transitively() {
        let plan = vec![
            step("freeze", &[]),
            step("other", &[]),
            step("backup", &["freeze"]),
            step("restore", &["backup"]),
            step("side", &["other"]),
        ];
        let mut u = Unconfirmed::default();
        u.insert(StepId::new("freeze"));
        assert_eq!(u.needed_by(&plan[3], &plan), vec![StepId::new("freeze")]);
        assert!(u.needed_by(&plan[4], &plan).is_empty());
        u.confirmed(&StepId::new("freeze"));
        assert!(u.needed_by(&plan[3], &plan).is_empty());
    }

    #[test]
    fn the_wait_is_measured_from_the_first_step_that_waited() {
        let mut u = Unconfirmed::default();
        let freeze = StepId::new("freeze");
        u.insert(freeze.clone());
        let t0 = Instant::now();
        assert!(!u.waited_too_long(&freeze, t0 + Duration::from_secs(3600)));
        assert!(!u.waited_too_long(&freeze, t0 + Duration::from_secs(3600) + CONFIRM_LIMIT));
        assert!(u.waited_too_long(&freeze, t0 + Duration::from_secs(3601) + CONFIRM_LIMIT));
        assert!(!u.waited_too_long(&StepId::new("unknown"), t0));
    }
}
