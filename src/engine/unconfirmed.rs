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
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::time::Instant;

/// How long a step may wait for an earlier step's effect to be confirmed.
pub const CONFIRM_LIMIT: Duration = Duration::from_secs(600);

/// How soon a check that gave no verdict is made again.
pub const RECHECK_EVERY: Duration = Duration::from_secs(5);

/// One unconfirmed step: when a step first waited for it, and when it may be checked
/// again (`None`: now). Steps waiting for the same one share its checks.
#[derive(Debug, Default)]
struct Waiting {
    since: Option<Instant>,
    next_check: Option<Instant>,
}

/// The unconfirmed steps.
#[derive(Debug, Default)]
pub struct Unconfirmed {
    steps: BTreeMap<StepId, Waiting>,
}

impl Unconfirmed {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    pub fn insert(&mut self, step: StepId) {
        self.steps.insert(step, Waiting::default());
    }

    pub fn confirmed(&mut self, step: &StepId) {
        self.steps.remove(step);
    }

    /// The unconfirmed steps among `ancestors` (what a step needs, directly or not:
    /// [`crate::plan::Plan::ancestors`]), in id order.
    pub fn needed_by(&self, ancestors: &BTreeSet<StepId>) -> Vec<StepId> {
        self.steps
            .keys()
            .filter(|u| ancestors.contains(*u))
            .cloned()
            .collect()
    }

    /// Whether `step` may be checked again at `now`.
    pub fn due(&self, step: &StepId, now: Instant) -> bool {
        self.steps
            .get(step)
            .and_then(|w| w.next_check)
            .is_none_or(|at| at <= now)
    }

    /// A check of `step` at `now`, made for a step waiting on it, gave no verdict: the
    /// next is due [`RECHECK_EVERY`] later. Returns whether a step has now waited for it
    /// longer than [`CONFIRM_LIMIT`].
    pub fn no_verdict(&mut self, step: &StepId, now: Instant) -> bool {
        match self.steps.get_mut(step) {
            Some(w) => {
                w.next_check = Some(now + RECHECK_EVERY);
                now.duration_since(*w.since.get_or_insert(now)) > CONFIRM_LIMIT
            }
            None => false,
        }
    }

    /// When the earliest unconfirmed step may be checked again.
    pub fn next_check(&self) -> Option<Instant> {
        self.steps.values().filter_map(|w| w.next_check).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> BTreeSet<StepId> {
        names.iter().map(|n| StepId::new(*n)).collect()
    }

    #[test]
    fn a_step_waits_only_for_the_unconfirmed_steps_among_its_ancestors() {
        let mut u = Unconfirmed::default();
        u.insert(StepId::new("freeze"));
        assert_eq!(
            u.needed_by(&ids(&["backup", "freeze"])),
            vec![StepId::new("freeze")]
        );
        assert!(u.needed_by(&ids(&["other"])).is_empty());
        u.confirmed(&StepId::new("freeze"));
        assert!(u.needed_by(&ids(&["backup", "freeze"])).is_empty());
    }

    #[test]
    fn a_check_without_verdict_is_made_again_after_the_interval_only() {
        let mut u = Unconfirmed::default();
        let freeze = StepId::new("freeze");
        u.insert(freeze.clone());
        let t0 = Instant::now();
        assert!(u.due(&freeze, t0), "a new one may be checked at once");
        assert_eq!(u.next_check(), None);
        u.no_verdict(&freeze, t0);
        assert!(!u.due(&freeze, t0 + RECHECK_EVERY / 2));
        assert!(u.due(&freeze, t0 + RECHECK_EVERY));
        assert_eq!(u.next_check(), Some(t0 + RECHECK_EVERY));
    }

    #[test]
    fn the_wait_is_measured_from_the_first_check_without_verdict() {
        let mut u = Unconfirmed::default();
        let freeze = StepId::new("freeze");
        u.insert(freeze.clone());
        let t0 = Instant::now();
        assert!(!u.no_verdict(&freeze, t0 + Duration::from_secs(3600)));
        assert!(!u.no_verdict(&freeze, t0 + Duration::from_secs(3600) + CONFIRM_LIMIT));
        assert!(u.no_verdict(&freeze, t0 + Duration::from_secs(3601) + CONFIRM_LIMIT));
        assert!(!u.no_verdict(&StepId::new("unknown"), t0));
    }
}
