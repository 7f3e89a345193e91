//! Comparing two fingerprints: every difference, named by label set, type or schema item.

use super::answers::AnswerDifference;
use super::fingerprint::{Fingerprint, SchemaInfo};
use super::invariants::InvariantOutcome;
use super::multiset::MultisetDigest;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// What kind of difference a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// The fingerprints were read differently (format, identity keys, salt): digests are
    /// not comparable.
    Incomparable,
    NodeCount,
    NodeContent,
    RelationshipCount,
    RelationshipContent,
    Triple,
    NodePropertyKeys,
    RelationshipPropertyKeys,
    Schema,
    /// A side could not list its schema; the comparison cannot vouch for it.
    SchemaUnverified,
    Invariant,
    /// An application query answered differently (`same_answers`).
    Answer,
    /// Something noticed while reading one side (e.g. the graph changed during the read).
    ReadWarning,
}

/// One difference between the source (e.g. frozen blue) and the target (green).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    /// The label set, relationship type, triple, schema item or invariant concerned.
    pub subject: String,
    pub source: String,
    pub target: String,
    /// Whether this finding by itself means the target must not take traffic.
    pub blocking: bool,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{:?} {}: source {} / target {}",
            if self.blocking { "" } else { "(note) " },
            self.kind,
            self.subject,
            self.source,
            self.target
        )
    }
}

/// The result of a comparison: all findings, in a stable order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Findings {
    pub findings: Vec<Finding>,
}

impl Findings {
    /// True when nothing blocks: the target holds the same data.
    pub fn is_match(&self) -> bool {
        !self.findings.iter().any(|f| f.blocking)
    }

    /// Label sets whose content differs (count or digest); candidates for `diff`.
    pub fn mismatched_node_groups(&self) -> BTreeSet<String> {
        self.findings
            .iter()
            .filter(|f| matches!(f.kind, FindingKind::NodeCount | FindingKind::NodeContent))
            .map(|f| f.subject.clone())
            .collect()
    }

    /// Relationship types whose content differs.
    pub fn mismatched_relationship_types(&self) -> BTreeSet<String> {
        self.findings
            .iter()
            .filter(|f| {
                matches!(
                    f.kind,
                    FindingKind::RelationshipCount | FindingKind::RelationshipContent
                )
            })
            .map(|f| f.subject.clone())
            .collect()
    }

    fn push(
        &mut self,
        kind: FindingKind,
        subject: impl Into<String>,
        source: impl Into<String>,
        target: impl Into<String>,
    ) {
        self.add(kind, subject.into(), source.into(), target.into(), true);
    }

    fn note(
        &mut self,
        kind: FindingKind,
        subject: impl Into<String>,
        source: impl Into<String>,
        target: impl Into<String>,
    ) {
        self.add(kind, subject.into(), source.into(), target.into(), false);
    }

    fn add(
        &mut self,
        kind: FindingKind,
        subject: String,
        source: String,
        target: String,
        blocking: bool,
    ) {
        self.findings.push(Finding {
            kind,
            subject,
            source,
            target,
            blocking,
        });
    }

    /// Adds the outcome of the app invariants run on both sides: an invariant that fails
    /// on either side, or gives different results on the two sides, is a finding.
    pub fn add_invariants(&mut self, source: &[InvariantOutcome], target: &[InvariantOutcome]) {
        let by_name = |v: &[InvariantOutcome]| -> BTreeMap<String, InvariantOutcome> {
            v.iter().map(|o| (o.name.clone(), o.clone())).collect()
        };
        let (s, t) = (by_name(source), by_name(target));
        let names: BTreeSet<&String> = s.keys().chain(t.keys()).collect();
        for name in names {
            let (a, b) = (s.get(name), t.get(name));
            let render = |o: Option<&InvariantOutcome>| match o {
                None => "not run".to_owned(),
                Some(o) => o.render(),
            };
            let ok = |o: Option<&InvariantOutcome>| o.is_some_and(|o| o.holds());
            let same = match (a, b) {
                (Some(a), Some(b)) => a.actual == b.actual,
                _ => false,
            };
            if !ok(a) || !ok(b) || !same {
                self.push(FindingKind::Invariant, name.clone(), render(a), render(b));
            }
        }
    }
}

impl Findings {
    /// Adds every difference between blue's and green's answers to the application's
    /// queries (`same_answers`), each blocking.
    pub fn add_answer_differences(&mut self, differences: &[AnswerDifference]) {
        for d in differences {
            self.push(
                FindingKind::Answer,
                d.subject(),
                d.blue.clone(),
                d.green.clone(),
            );
        }
    }
}

fn group_text(g: Option<&MultisetDigest>) -> (String, String) {
    match g {
        None => ("0".into(), "absent".into()),
        Some(g) => (g.count.to_string(), format!("{}…", &g.sum.to_hex()[..16])),
    }
}

fn compare_groups(
    findings: &mut Findings,
    a: &BTreeMap<String, MultisetDigest>,
    b: &BTreeMap<String, MultisetDigest>,
    count: FindingKind,
    content: FindingKind,
) {
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for name in names {
        let (ga, gb) = (a.get(name), b.get(name));
        if ga == gb {
            continue;
        }
        let (ca, da) = group_text(ga);
        let (cb, db) = group_text(gb);
        if ca != cb {
            findings.push(count, name.clone(), ca, cb);
        } else {
            findings.push(
                content,
                name.clone(),
                format!("digest {da}"),
                format!("digest {db}"),
            );
        }
    }
}

fn compare_sets(
    findings: &mut Findings,
    kind: FindingKind,
    a: &BTreeMap<String, BTreeSet<String>>,
    b: &BTreeMap<String, BTreeSet<String>>,
) {
    let empty = BTreeSet::new();
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for name in names {
        let (sa, sb) = (a.get(name).unwrap_or(&empty), b.get(name).unwrap_or(&empty));
        if sa != sb {
            let only = |x: &BTreeSet<String>, y: &BTreeSet<String>| {
                let v: Vec<&str> = x.difference(y).map(String::as_str).collect();
                if v.is_empty() {
                    "-".to_owned()
                } else {
                    format!("only here: {}", v.join(", "))
                }
            };
            findings.push(kind, name.clone(), only(sa, sb), only(sb, sa));
        }
    }
}

/// Compares a source fingerprint (the reference, e.g. frozen blue) with a target (green).
/// Reports every difference: incomparable settings, counts and digests per label set and
/// per relationship type, triples, property keys, schema, and read warnings.
pub fn compare(source: &Fingerprint, target: &Fingerprint) -> Findings {
    let mut f = Findings::default();
    if source.format != target.format || source.encoding != target.encoding {
        f.push(
            FindingKind::Incomparable,
            "format",
            format!("{} {}", source.format, source.encoding),
            format!("{} {}", target.format, target.encoding),
        );
    }
    if source.identity_keys != target.identity_keys {
        let k = |fp: &Fingerprint| {
            fp.identity_keys
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        f.push(
            FindingKind::Incomparable,
            "identity keys",
            k(source),
            k(target),
        );
    }
    if source.salted != target.salted {
        f.push(
            FindingKind::Incomparable,
            "salt",
            source.salted.to_string(),
            target.salted.to_string(),
        );
    }
    compare_groups(
        &mut f,
        &source.node_groups,
        &target.node_groups,
        FindingKind::NodeCount,
        FindingKind::NodeContent,
    );
    compare_groups(
        &mut f,
        &source.relationship_groups,
        &target.relationship_groups,
        FindingKind::RelationshipCount,
        FindingKind::RelationshipContent,
    );
    let names: BTreeSet<&String> = source.triples.keys().chain(target.triples.keys()).collect();
    for name in names {
        let (a, b) = (
            source.triples.get(name).copied().unwrap_or(0),
            target.triples.get(name).copied().unwrap_or(0),
        );
        if a != b {
            f.push(
                FindingKind::Triple,
                name.clone(),
                a.to_string(),
                b.to_string(),
            );
        }
    }
    compare_sets(
        &mut f,
        FindingKind::NodePropertyKeys,
        &source.node_property_keys,
        &target.node_property_keys,
    );
    compare_sets(
        &mut f,
        FindingKind::RelationshipPropertyKeys,
        &source.relationship_property_keys,
        &target.relationship_property_keys,
    );
    match (&source.schema, &target.schema) {
        (
            SchemaInfo::Available {
                constraints: ca,
                indexes: ia,
            },
            SchemaInfo::Available {
                constraints: cb,
                indexes: ib,
            },
        ) => {
            for (what, a, b) in [("constraint", ca, cb), ("index", ia, ib)] {
                let (sa, sb): (BTreeSet<&String>, BTreeSet<&String>) =
                    (a.iter().collect(), b.iter().collect());
                for x in sa.difference(&sb) {
                    f.push(
                        FindingKind::Schema,
                        format!("{what} {x}"),
                        "present",
                        "missing",
                    );
                }
                for x in sb.difference(&sa) {
                    f.push(
                        FindingKind::Schema,
                        format!("{what} {x}"),
                        "missing",
                        "present",
                    );
                }
            }
        }
        (a, b) => {
            let r = |s: &SchemaInfo| match s {
                SchemaInfo::Available {
                    constraints,
                    indexes,
                } => format!(
                    "{} constraints, {} indexes",
                    constraints.len(),
                    indexes.len()
                ),
                SchemaInfo::NotAvailable { reason } => reason.clone(),
            };
            f.note(FindingKind::SchemaUnverified, "schema", r(a), r(b));
        }
    }
    for w in &source.warnings {
        f.push(FindingKind::ReadWarning, "source", w.clone(), "-");
    }
    for w in &target.warnings {
        f.push(FindingKind::ReadWarning, "target", "-", w.clone());
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrity::fingerprint::content_digest;

    fn fp(nodes: &[(&str, u64, u8)], rels: &[(&str, u64, u8)]) -> Fingerprint {
        let mk = |v: &[(&str, u64, u8)]| -> BTreeMap<String, MultisetDigest> {
            v.iter()
                .map(|(n, c, h)| {
                    let mut d = MultisetDigest::default();
                    for _ in 0..*c {
                        d.add(&[*h; 32]);
                    }
                    (n.to_string(), d)
                })
                .collect()
        };
        let (ng, rg) = (mk(nodes), mk(rels));
        Fingerprint::for_tests(content_digest(&ng, &rg), ng, rg)
    }

    #[test]
    fn reports_every_difference_not_just_the_first() {
        let a = fp(&[(":A", 2, 1), (":B", 1, 2), (":C", 1, 3)], &[("R", 1, 4)]);
        let b = fp(&[(":A", 3, 1), (":B", 1, 9)], &[("R", 1, 5), ("S", 1, 1)]);
        let f = compare(&a, &b);
        let kinds: Vec<(FindingKind, &str)> = f
            .findings
            .iter()
            .filter(|x| x.blocking)
            .map(|x| (x.kind, x.subject.as_str()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (FindingKind::NodeCount, ":A"),
                (FindingKind::NodeContent, ":B"),
                (FindingKind::NodeCount, ":C"),
                (FindingKind::RelationshipContent, "R"),
                (FindingKind::RelationshipCount, "S"),
            ]
        );
        assert!(!f.is_match());
        assert_eq!(f.mismatched_node_groups().len(), 3);
    }

    #[test]
    fn equal_fingerprints_match_with_only_a_schema_note() {
        let a = fp(&[(":A", 2, 1)], &[]);
        let f = compare(&a, &a.clone());
        assert!(f.is_match(), "{f:?}");
        assert!(f
            .findings
            .iter()
            .all(|x| x.kind == FindingKind::SchemaUnverified));
    }
}
