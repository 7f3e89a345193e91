//! Which undos must wait for which: the order of a rollback as a graph, so independent
//! compensations can run side by side.
//!
//! A step's undo may start only once every step that (transitively) needs it has been
//! undone: the switch is undone before the freezes it came after, a freeze before the
//! provision it needed. Two steps neither of which needs the other (the freezes of two
//! databases) are undone concurrently. The relation is taken through steps that have
//! nothing to undo: when `c` needs `b` needs `a` and only `a` and `c` are undone, `a`
//! still waits for `c`.

use crate::ids::StepId;
use std::collections::{BTreeSet, HashMap, HashSet};

/// For each step of `to_undo`, the steps of `to_undo` that must be undone before it (its
/// nearest dependents among them; waiting for those orders it after the farther ones too,
/// since they wait in turn). `needs(step)` gives a step's direct needs.
///
/// Guarantee: for any two steps `s`, `t` of `to_undo` where `t` transitively needs `s`,
/// `t` is undone before `s` by any schedule that honours the returned waits. Cost: linear
/// in the plan's edges times the number of nearest undone ancestors per step (small in
/// real runbooks).
pub fn undo_waits<'a>(
    to_undo: &[StepId],
    needs: impl Fn(&StepId) -> &'a [StepId],
) -> HashMap<StepId, BTreeSet<StepId>> {
    let undone: HashSet<&StepId> = to_undo.iter().collect();
    let mut nearest = NearestUndone {
        needs,
        undone: &undone,
        memo: HashMap::new(),
    };
    let mut waits: HashMap<StepId, BTreeSet<StepId>> = to_undo
        .iter()
        .map(|s| (s.clone(), BTreeSet::new()))
        .collect();
    for step in to_undo {
        for ancestor in nearest.of_needs(step) {
            if let Some(w) = waits.get_mut(&ancestor) {
                w.insert(step.clone());
            }
        }
    }
    waits
}

/// Nearest undone ancestors, memoised per step.
struct NearestUndone<'u, 'a, F: Fn(&StepId) -> &'a [StepId]> {
    needs: F,
    undone: &'u HashSet<&'u StepId>,
    /// For a step: the undone steps reached from its needs, stopping at each one reached.
    memo: HashMap<StepId, BTreeSet<StepId>>,
}

impl<'a, F: Fn(&StepId) -> &'a [StepId]> NearestUndone<'_, 'a, F> {
    /// The undone steps reached from `step`'s needs, stopping at each one reached.
    /// Iterative post-order (runbooks may chain 10,000 steps); each step is resolved once.
    fn of_needs(&mut self, step: &StepId) -> BTreeSet<StepId> {
        let mut stack = vec![(step.clone(), false)];
        while let Some((next, expanded)) = stack.pop() {
            if self.memo.contains_key(&next) {
                continue;
            }
            let parents = (self.needs)(&next);
            if expanded {
                let mut found = BTreeSet::new();
                for parent in parents {
                    if self.undone.contains(parent) {
                        found.insert(parent.clone());
                    } else if let Some(known) = self.memo.get(parent) {
                        found.extend(known.iter().cloned());
                    }
                }
                self.memo.insert(next, found);
            } else {
                stack.push((next.clone(), true));
                for parent in parents {
                    if !self.undone.contains(parent) && !self.memo.contains_key(parent) {
                        stack.push((parent.clone(), false));
                    }
                }
            }
        }
        self.memo.get(step).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::undo_waits;
    use crate::ids::StepId;
    use std::collections::{BTreeSet, HashMap};

    fn graph(edges: &[(&str, &[&str])]) -> HashMap<StepId, Vec<StepId>> {
        edges
            .iter()
            .map(|(s, n)| (StepId::new(*s), n.iter().map(|x| StepId::new(*x)).collect()))
            .collect()
    }

    fn waits(edges: &[(&str, &[&str])], to_undo: &[&str]) -> Vec<(String, Vec<String>)> {
        let g = graph(edges);
        let to_undo: Vec<StepId> = to_undo.iter().map(|s| StepId::new(*s)).collect();
        let w = undo_waits(&to_undo, |s| g.get(s).map(Vec::as_slice).unwrap_or(&[]));
        let mut out: Vec<(String, Vec<String>)> = w
            .into_iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    v.into_iter().map(|s| s.to_string()).collect(),
                )
            })
            .collect();
        out.sort();
        out
    }

    fn set(v: &[&str]) -> Vec<String> {
        v.iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    #[test]
    fn independent_freezes_wait_for_nothing_and_their_provisions_wait_for_both() {
        let edges: &[(&str, &[&str])] = &[
            ("provision-a", &[]),
            ("provision-b", &[]),
            ("freeze-a", &["provision-a", "provision-b"]),
            ("freeze-b", &["provision-a", "provision-b"]),
        ];
        let all = ["freeze-a", "freeze-b", "provision-a", "provision-b"];
        assert_eq!(
            waits(edges, &all),
            vec![
                ("freeze-a".into(), set(&[])),
                ("freeze-b".into(), set(&[])),
                ("provision-a".into(), set(&["freeze-a", "freeze-b"])),
                ("provision-b".into(), set(&["freeze-a", "freeze-b"])),
            ]
        );
    }

    #[test]
    fn the_order_holds_through_steps_with_nothing_to_undo() {
        // a ← b ← c ← d, only a and d undone: a waits for d.
        let edges: &[(&str, &[&str])] = &[("a", &[]), ("b", &["a"]), ("c", &["b"]), ("d", &["c"])];
        assert_eq!(
            waits(edges, &["d", "a"]),
            vec![("a".into(), set(&["d"])), ("d".into(), set(&[]))]
        );
    }

    #[test]
    fn a_step_waits_only_for_its_nearest_undone_dependents() {
        // a ← b ← c, all undone: a waits for b (which waits for c), not for c directly.
        let chain: &[(&str, &[&str])] = &[("a", &[]), ("b", &["a"]), ("c", &["b"])];
        assert_eq!(
            waits(chain, &["a", "b", "c"]),
            vec![
                ("a".into(), set(&["b"])),
                ("b".into(), set(&["c"])),
                ("c".into(), set(&[])),
            ]
        );
        // When c also needs a directly, c is one of a's nearest dependents too.
        let direct: &[(&str, &[&str])] = &[("a", &[]), ("b", &["a"]), ("c", &["b", "a"])];
        assert_eq!(
            waits(direct, &["a", "b", "c"]),
            vec![
                ("a".into(), set(&["b", "c"])),
                ("b".into(), set(&["c"])),
                ("c".into(), set(&[])),
            ]
        );
    }

    #[test]
    fn a_chain_of_ten_thousand_steps_resolves_without_recursion() {
        let names: Vec<String> = (0..10_000).map(|i| format!("s{i}")).collect();
        let g: HashMap<StepId, Vec<StepId>> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let needs = if i == 0 {
                    vec![]
                } else {
                    vec![StepId::new(&names[i - 1])]
                };
                (StepId::new(n), needs)
            })
            .collect();
        let to_undo = vec![StepId::new("s9999"), StepId::new("s0")];
        let w = undo_waits(&to_undo, |s| g.get(s).map(Vec::as_slice).unwrap_or(&[]));
        assert_eq!(
            w[&StepId::new("s0")]
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
            vec!["s9999"]
        );
        assert!(w[&StepId::new("s9999")].is_empty());
    }
}
