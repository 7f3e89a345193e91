//! Diff mode: for a small mismatch, find the differing records themselves.
//!
//! For every label set and relationship type that [`super::compare::compare`] reported,
//! both sides are streamed again (only that group) and their record hashes counted as a
//! multiset (source +1, target −1); a second pass renders a handful of the records whose
//! count is not zero. Memory is proportional to the size of the mismatching *group* (one
//! 40-byte entry per distinct record), capped by `DiffOptions::max_group_records`: diff mode
//! is for localised mismatches, the fingerprint itself stays bounded.

use super::canonical::RecordHash;
use super::compare::Findings;
use super::error::IntegrityError;
use super::fingerprint::{FingerprintOptions, Partial, Reader, RecordView, Unit};
use super::invariants::bolt_to_json;
use crate::progress::WorkMeter;
use neo4rs::{BoltMap, BoltType, Graph};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Limits of diff mode.
#[derive(Clone, Debug)]
pub struct DiffOptions {
    /// Records shown per group and side.
    pub show: usize,
    /// Refuse groups with more distinct records than this (memory bound).
    pub max_group_records: usize,
}

impl Default for DiffOptions {
    fn default() -> Self {
        Self {
            show: 5,
            max_group_records: 2_000_000,
        }
    }
}

/// Which side holds a record the other lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    OnlyInSource,
    OnlyInTarget,
}

/// One record present (more often) on one side.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordDiff {
    /// Label set or relationship type.
    pub group: String,
    pub side: Side,
    /// How many more copies this side has.
    pub extra_copies: u64,
    /// Identity (`Member.memberID="…"`) when a key is configured, else the content hash.
    pub identity: String,
    /// The record as JSON (labels/type, properties, endpoints).
    pub record: serde_json::Value,
}

/// All differing records found (at most `show` per group and side).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DiffReport {
    pub records: Vec<RecordDiff>,
    /// Differing records per group and side, including those not shown.
    pub totals: BTreeMap<String, (u64, u64)>,
}

/// Finds the records behind the mismatching groups of `findings`.
#[allow(clippy::too_many_arguments)]
pub async fn diff(
    source: &Graph,
    source_uri: &str,
    target: &Graph,
    target_uri: &str,
    findings: &Findings,
    options: &FingerprintOptions,
    diff_options: &DiffOptions,
) -> Result<DiffReport, IntegrityError> {
    let meter = WorkMeter::silent();
    let mut rs = Reader::new(source, source_uri, options, &meter);
    let mut rt = Reader::new(target, target_uri, options, &meter);
    rs.detect_engine(options.engine).await?;
    rt.detect_engine(options.engine).await?;
    let mut report = DiffReport::default();
    let mut groups: Vec<(String, Unit)> = Vec::new();
    for g in findings.mismatched_node_groups() {
        groups.push((g.clone(), node_unit(&g)));
    }
    for t in findings.mismatched_relationship_types() {
        groups.push((
            t.clone(),
            Unit::Type {
                rel_type: t.clone(),
                slice: None,
            },
        ));
    }
    for (group, unit) in groups {
        let mut counts: HashMap<RecordHash, i64> = HashMap::new();
        for (reader, delta) in [(&rs, 1i64), (&rt, -1i64)] {
            let mut too_big = false;
            let mut p = Partial::default();
            reader
                .read_unit(&unit, &mut p, |g, h, _| {
                    if g == group && !too_big {
                        *counts.entry(*h).or_default() += delta;
                        too_big = counts.len() > diff_options.max_group_records;
                    }
                })
                .await?;
            if too_big {
                return Err(IntegrityError::Input(format!(
                    "{group} has more than {} distinct records: too large for diff mode; compare the sub-digests instead",
                    diff_options.max_group_records
                )));
            }
        }
        counts.retain(|_, c| *c != 0);
        let src_total: i64 = counts.values().filter(|c| **c > 0).sum();
        let tgt_total: i64 = -counts.values().filter(|c| **c < 0).sum::<i64>();
        report
            .totals
            .insert(group.clone(), (src_total as u64, tgt_total as u64));
        for (reader, side) in [(&rs, Side::OnlyInSource), (&rt, Side::OnlyInTarget)] {
            let mut shown = 0usize;
            let mut seen: HashMap<RecordHash, ()> = HashMap::new();
            let mut p = Partial::default();
            let mut out = Vec::new();
            reader
                .read_unit(&unit, &mut p, |g, h, view| {
                    if g != group || shown >= diff_options.show || seen.contains_key(h) {
                        return;
                    }
                    let c = counts.get(h).copied().unwrap_or(0);
                    let ours = match side {
                        Side::OnlyInSource => c > 0,
                        Side::OnlyInTarget => c < 0,
                    };
                    if ours {
                        seen.insert(*h, ());
                        shown += 1;
                        out.push(RecordDiff {
                            group: group.clone(),
                            side,
                            extra_copies: c.unsigned_abs(),
                            identity: identity_of(view, h, &options.identity_keys),
                            record: render(view),
                        });
                    }
                })
                .await?;
            report.records.extend(out);
        }
    }
    Ok(report)
}

/// The unit that reads a label set: the unit of its smallest label, or the label-less one.
fn node_unit(group: &str) -> Unit {
    // Names are `:A:B` with backtick quoting; the first label is the smallest.
    let rest = group.strip_prefix(':').unwrap_or("");
    if rest.is_empty() {
        return Unit::Unlabelled;
    }
    let first = if let Some(q) = rest.strip_prefix('`') {
        let mut out = String::new();
        let mut chars = q.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '`' {
                if chars.peek() == Some(&'`') {
                    chars.next();
                    out.push('`');
                } else {
                    break;
                }
            } else {
                out.push(c);
            }
        }
        out
    } else {
        rest.split(':').next().unwrap_or("").to_owned()
    };
    Unit::Label {
        label: first,
        slice: None,
    }
}

fn props_json(p: &BoltMap) -> serde_json::Value {
    bolt_to_json(&BoltType::Map(p.clone()))
}

fn render(view: &RecordView<'_>) -> serde_json::Value {
    match view {
        RecordView::Node { labels, props } => {
            serde_json::json!({"labels": labels, "properties": props_json(props)})
        }
        RecordView::Relationship {
            rel_type,
            props,
            start,
            end,
        } => serde_json::json!({
            "type": rel_type,
            "properties": props_json(props),
            "start": start.to_string(),
            "end": end.to_string(),
        }),
    }
}

fn identity_of(
    view: &RecordView<'_>,
    hash: &RecordHash,
    keys: &[super::fingerprint::IdentityKey],
) -> String {
    if let RecordView::Node { labels, props } = view {
        for k in keys {
            if labels.contains(&k.label.as_str()) {
                if let Some(v) = props
                    .value
                    .iter()
                    .find(|(n, _)| n.value == k.property)
                    .map(|(_, v)| v)
                {
                    return format!("{k}={}", bolt_to_json(v));
                }
            }
        }
    }
    format!("content#{}", &hex::encode(hash)[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_units_come_from_the_smallest_label() {
        assert!(
            matches!(node_unit(":Account:Member"), Unit::Label { label, .. } if label == "Account")
        );
        assert!(
            matches!(node_unit(":`USD SECURED`:X"), Unit::Label { label, .. } if label == "USD SECURED")
        );
        assert!(matches!(node_unit("(no labels)"), Unit::Unlabelled));
    }
}
