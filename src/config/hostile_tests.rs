//! Mutated shipped runbooks and environments (characters deleted, inserted, replaced,
//! lines swapped) must be parsed and planned without a panic: every input either
//! validates or comes back as located problems. A property test, not a coverage-guided
//! fuzzer: it covers the shapes the shipped files reach.

use super::{Environment, Runbook, SourceFile};
use crate::plan::Plan;
use proptest::prelude::*;
use std::sync::Arc;

const RUNBOOKS: &[&str] = &[
    include_str!("../../runbooks/blue-green.toml"),
    include_str!("../../runbooks/backup.toml"),
    include_str!("../../runbooks/restore.toml"),
    include_str!("../../runbooks/dr-drill.toml"),
];
const ENVIRONMENTS: &[&str] = &[
    include_str!("../../environments/local.toml"),
    include_str!("../../environments/staging.toml"),
    include_str!("../../environments/production.toml"),
];

/// Characters that matter to TOML and to references.
const ALPHABET: &[char] = &[
    '[', ']', '{', '}', '"', '\'', '=', ',', '.', '\n', '#', '$', '1', '-', 'e', ' ', '\\', 'é',
    '\0', '\u{7f}', 't',
];

#[derive(Clone, Debug)]
enum Edit {
    Delete(usize),
    Insert(usize, char),
    Replace(usize, char),
    SwapLines(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let c = prop::sample::select(ALPHABET.to_vec());
    prop_oneof![
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), c.clone()).prop_map(|(i, c)| Edit::Insert(i, c)),
        (any::<usize>(), c).prop_map(|(i, c)| Edit::Replace(i, c)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for e in edits {
        match *e {
            Edit::Delete(i) if !chars.is_empty() => {
                chars.remove(i % chars.len());
            }
            Edit::Insert(i, c) => chars.insert(i % (chars.len() + 1), c),
            Edit::Replace(i, c) if !chars.is_empty() => {
                let n = chars.len();
                chars[i % n] = c;
            }
            Edit::SwapLines(a, b) => {
                let s: String = chars.iter().collect();
                let mut lines: Vec<&str> = s.lines().collect();
                if !lines.is_empty() {
                    let n = lines.len();
                    lines.swap(a % n, b % n);
                }
                chars = lines.join("\n").chars().collect();
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

fn local_env() -> Arc<Environment> {
    Arc::new(Environment::parse(SourceFile::new("env.toml", ENVIRONMENTS[0])).expect("local.toml"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn a_mutated_runbook_is_planned_or_refused_with_located_problems(
        book in 0..RUNBOOKS.len(),
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        let text = apply(RUNBOOKS[book], &edits);
        match Runbook::parse(SourceFile::new("book.toml", text)) {
            Ok(runbook) => {
                if let Err(problems) = Plan::build(&runbook, local_env(), &[]) {
                    prop_assert!(!problems.is_empty());
                }
            }
            Err(problems) => {
                prop_assert!(!problems.is_empty());
                prop_assert!(problems.0.iter().all(|p| p.location.is_some()), "{}", problems);
            }
        }
    }

    #[test]
    fn a_mutated_environment_is_loaded_or_refused_with_located_problems(
        env in 0..ENVIRONMENTS.len(),
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        let text = apply(ENVIRONMENTS[env], &edits);
        if let Err(problems) = Environment::parse(SourceFile::new("env.toml", text)) {
            prop_assert!(!problems.is_empty());
            prop_assert!(problems.0.iter().all(|p| p.location.is_some()), "{}", problems);
        }
    }
}
