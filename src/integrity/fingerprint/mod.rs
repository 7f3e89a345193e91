//! Reading a graph's fingerprint over Bolt: counts, property keys, schema and the
//! order-independent content digest with per-label-set and per-type sub-digests.
//!
//! How it reads (read-only, bounded memory):
//! 1. `CALL db.labels()` / `CALL db.relationshipTypes()` and one count per label and per
//!    type plan the work units. A unit is one label (nodes) or one relationship type; a
//!    unit with more than `split_threshold` records is split into `id(x) % k = i` slices.
//! 2. Units are streamed in parallel (`parallelism` Bolt sessions, one tokio task each),
//!    every record hashed and added to its group's [`MultisetDigest`]; nothing but the
//!    per-group accumulators is kept, so memory does not grow with the graph.
//!    A node with several labels is returned by every one of its labels; it is counted
//!    only in the unit of its smallest label. Label-less nodes are read by one extra unit
//!    when the total node count says they exist.
//! 3. A relationship names its endpoints by identity key (`Member.memberID`) when one is
//!    configured for one of their labels, else by the endpoint's content hash; the query
//!    returns just what is needed for that (keys, or the endpoint's properties).

use super::canonical::{self, EndpointIdentity, RecordHash};
use super::error::IntegrityError;
use super::multiset::MultisetDigest;
use super::properties::{self, PropertyRead};
use crate::db::bolt::BoltTarget;
use crate::progress::WorkMeter;
use futures::StreamExt;
use neo4rs::{BoltList, BoltMap, BoltType, Graph};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

mod reader;
mod schema;
mod units;

pub(crate) use reader::*;
use schema::read_schema;
pub(crate) use units::*;

/// Format tag written into every fingerprint.
pub const FINGERPRINT_FORMAT: &str = "cutover-fingerprint/v1";

/// A node identity key: nodes with `label` are identified by their `property` value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IdentityKey {
    pub label: String,
    pub property: String,
}

impl FromStr for IdentityKey {
    type Err = IntegrityError;
    /// Parses `Label.property`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('.') {
            Some((l, p)) if !l.is_empty() && !p.is_empty() => Ok(IdentityKey {
                label: l.to_owned(),
                property: p.to_owned(),
            }),
            _ => Err(IntegrityError::Input(format!(
                "identity key {s:?} is not LABEL.PROPERTY (e.g. Member.memberID)"
            ))),
        }
    }
}

impl std::fmt::Display for IdentityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.label, self.property)
    }
}

/// Which engine serves the graph, for what only differs between engines (schema listing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineHint {
    /// Detect: ArcadeDB element ids look like `#12:34`.
    #[default]
    Auto,
    Neo4j,
    Arcadedb,
}

/// How to read a fingerprint.
#[derive(Clone, Debug)]
pub struct FingerprintOptions {
    /// Identity keys; relationships name keyed endpoints by key instead of content.
    pub identity_keys: Vec<IdentityKey>,
    /// Bolt sessions read in parallel (≥ 1).
    pub parallelism: usize,
    /// Units larger than this many records are split into slices by `id() % k`.
    pub split_threshold: u64,
    /// Optional secret salt mixed into every record hash (see [`super::multiset`]).
    /// Both sides of a comparison must use the same salt.
    pub salt: Option<[u8; 32]>,
    pub engine: EngineHint,
}

impl Default for FingerprintOptions {
    fn default() -> Self {
        Self {
            identity_keys: Vec::new(),
            parallelism: 4,
            split_threshold: 250_000,
            salt: None,
            engine: EngineHint::Auto,
        }
    }
}

/// Records and sub-digests of one group (a label set or a relationship type).
pub type GroupDigest = MultisetDigest;

/// Constraints and indexes, or why they could not be read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SchemaInfo {
    Available {
        constraints: Vec<String>,
        indexes: Vec<String>,
    },
    NotAvailable {
        reason: String,
    },
}

/// What the fingerprint saw while reading that is worth a human's attention.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadStats {
    pub elapsed_ms: u64,
    pub units: usize,
    pub parallelism: usize,
    pub records_per_second: u64,
}

/// A graph's fingerprint. Two graphs hold the same data iff their fingerprints are equal
/// (ignoring `stats`); [`super::compare::compare`] says where they differ.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub format: String,
    pub encoding: String,
    /// `neo4j` or `arcadedb` (detected or given).
    pub engine: String,
    pub identity_keys: Vec<IdentityKey>,
    /// Whether a salt was used (the salt itself is never written).
    pub salted: bool,
    /// SHA-256 over all group digests: equal iff every group is equal.
    pub content: String,
    pub nodes: MultisetDigest,
    pub relationships: MultisetDigest,
    /// Per label set (`:Account:Member`, or `(no labels)`).
    pub node_groups: BTreeMap<String, GroupDigest>,
    /// Per relationship type.
    pub relationship_groups: BTreeMap<String, GroupDigest>,
    /// Counts per `(:Start)-[:TYPE]->(:End)` label-set triple.
    pub triples: BTreeMap<String, u64>,
    pub node_property_keys: BTreeMap<String, BTreeSet<String>>,
    pub relationship_property_keys: BTreeMap<String, BTreeSet<String>>,
    pub schema: SchemaInfo,
    /// Nodes with a keyed label but no value for the key, per key (they are identified by
    /// a null key, so relationships to them are less precisely pinned).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub missing_identity_keys: BTreeMap<String, u64>,
    /// Things noticed while reading (e.g. counts that moved: the graph was not frozen).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Timing; never compared.
    pub stats: ReadStats,
}

#[cfg(test)]
impl Fingerprint {
    /// A fingerprint with these groups and `content`, everything else empty (tests).
    pub fn for_tests(
        content: String,
        node_groups: BTreeMap<String, GroupDigest>,
        relationship_groups: BTreeMap<String, GroupDigest>,
    ) -> Self {
        Fingerprint {
            format: FINGERPRINT_FORMAT.into(),
            encoding: super::canonical::ENCODING_VERSION.into(),
            engine: "arcadedb".into(),
            identity_keys: vec![],
            salted: false,
            content,
            nodes: MultisetDigest::default(),
            relationships: MultisetDigest::default(),
            node_groups,
            relationship_groups,
            triples: BTreeMap::new(),
            node_property_keys: BTreeMap::new(),
            relationship_property_keys: BTreeMap::new(),
            schema: SchemaInfo::NotAvailable { reason: "x".into() },
            missing_identity_keys: BTreeMap::new(),
            warnings: vec![],
            stats: ReadStats::default(),
        }
    }
}

/// Renders a label set as `:A:B` (sorted), backtick-quoting labels that need it.
pub fn label_set_name(labels: &[&str]) -> String {
    if labels.is_empty() {
        return "(no labels)".to_owned();
    }
    let mut sorted = labels.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    sorted
        .iter()
        .map(|l| format!(":{}", quote_name(l)))
        .collect()
}

/// `name` as a Cypher identifier, backtick-quoted unless it is plain.
pub fn quote_name(name: &str) -> String {
    let plain = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        name.to_owned()
    } else {
        format!("`{}`", name.replace('`', "``"))
    }
}

/// The triple name `(:A)-[:T]->(:B)`.
pub fn triple_name(start: &str, rel_type: &str, end: &str) -> String {
    let s = |x: &str| {
        if x == "(no labels)" {
            String::new()
        } else {
            x.to_owned()
        }
    };
    format!("({})-[:{}]->({})", s(start), quote_name(rel_type), s(end))
}

/// Opens a connection pool tuned for streaming (large fetch size). Same error
/// classification as [`BoltTarget::connect`].
pub async fn connect_for_reading(
    target: &BoltTarget,
    max_connections: usize,
) -> Result<Graph, IntegrityError> {
    let mut config = neo4rs::ConfigBuilder::default()
        .uri(target.uri.as_str())
        .user(target.user.as_str())
        .password(target.password.expose_secret())
        .max_connections(max_connections.max(1))
        .fetch_size(FETCH_SIZE);
    if let Some(db) = &target.database {
        config = config.db(db.as_str());
    }
    let config = config.build().map_err(|e| {
        IntegrityError::Bolt(crate::failure::Failure::permanent(format!(
            "invalid Bolt settings for {}: {e}",
            target.uri
        )))
    })?;
    let graph = Graph::connect(config)
        .await
        .map_err(|e| IntegrityError::Bolt(crate::db::bolt::classify_bolt_error(&target.uri, &e)))?;
    // neo4rs connects lazily; prove the login and the database now, within the short-call
    // limit (a refused port would otherwise be retried by neo4rs for up to 60 s).
    crate::db::bolt::run_and_discard(&graph, &target.uri, "RETURN 1 AS one")
        .await
        .map_err(IntegrityError::Bolt)?;
    Ok(graph)
}

/// Rows fetched per Bolt PULL while streaming.
pub const FETCH_SIZE: usize = 5_000;

/// Reads the fingerprint of the graph behind `target`.
pub async fn fingerprint_target(
    target: &BoltTarget,
    options: &FingerprintOptions,
    meter: &WorkMeter,
) -> Result<Fingerprint, IntegrityError> {
    let graph = connect_for_reading(target, options.parallelism.max(1) + 1).await?;
    fingerprint(&graph, &target.uri, options, meter).await
}

/// Reads the fingerprint of `graph` (reached at `uri`, used in messages only).
pub async fn fingerprint(
    graph: &Graph,
    uri: &str,
    options: &FingerprintOptions,
    meter: &WorkMeter,
) -> Result<Fingerprint, IntegrityError> {
    let started = Instant::now();
    let mut reader = Reader::new(graph, uri, options, meter);
    let engine = reader.detect_engine(options.engine).await?;
    let (units, node_total, rel_total) = plan_units(&reader, options).await?;
    reader.total = Some(node_total + rel_total);
    let reader = Arc::new(reader);
    let unit_count = units.len();
    let mut partial = run_units(reader.clone(), units, options.parallelism).await?;
    let mut warnings = Vec::new();
    if partial.nodes_read < node_total {
        // Label-less nodes exist (or nodes appeared while reading).
        let extra = run_units(reader.clone(), vec![Unit::Unlabelled], 1).await?;
        partial.merge(extra);
    }
    if partial.nodes_read != node_total {
        warnings.push(format!(
            "node count moved while reading ({} counted before, {} read): is the database frozen?",
            node_total, partial.nodes_read
        ));
    }
    let rels_read: u64 = partial.rel_groups.values().map(|g| g.count).sum();
    if rels_read != rel_total {
        warnings.push(format!(
            "relationship count moved while reading ({rel_total} counted before, {rels_read} read): is the database frozen?"
        ));
    }
    let (engine, schema) = read_schema(&reader, engine).await?;
    let elapsed = started.elapsed();
    let records = partial.nodes_read + rels_read;
    Ok(assemble(
        partial,
        options,
        engine,
        schema,
        warnings,
        ReadStats {
            elapsed_ms: elapsed.as_millis() as u64,
            units: unit_count,
            parallelism: options.parallelism,
            records_per_second: (records as f64 / elapsed.as_secs_f64().max(1e-9)) as u64,
        },
    ))
}

fn assemble(
    partial: Partial,
    options: &FingerprintOptions,
    engine: String,
    schema: SchemaInfo,
    warnings: Vec<String>,
    stats: ReadStats,
) -> Fingerprint {
    let node_groups: BTreeMap<_, _> = partial.node_groups.into_iter().collect();
    let relationship_groups: BTreeMap<_, _> = partial.rel_groups.into_iter().collect();
    let mut nodes = MultisetDigest::default();
    node_groups.values().for_each(|g| nodes.merge(g));
    let mut relationships = MultisetDigest::default();
    relationship_groups
        .values()
        .for_each(|g| relationships.merge(g));
    let mut keys = options.identity_keys.clone();
    keys.sort();
    keys.dedup();
    let content = content_digest(&node_groups, &relationship_groups);
    Fingerprint {
        format: FINGERPRINT_FORMAT.to_owned(),
        encoding: canonical::ENCODING_VERSION.to_owned(),
        engine,
        identity_keys: keys,
        salted: options.salt.is_some(),
        content,
        nodes,
        relationships,
        node_groups,
        relationship_groups,
        triples: partial.triples.into_iter().collect(),
        node_property_keys: partial.node_keys.into_iter().collect(),
        relationship_property_keys: partial.rel_keys.into_iter().collect(),
        schema,
        missing_identity_keys: partial.missing_keys.into_iter().collect(),
        warnings,
        stats,
    }
}

/// SHA-256 over every group's name, count and sum, node groups then relationship groups,
/// each in name order. Equal iff all groups are equal.
pub fn content_digest(
    nodes: &BTreeMap<String, GroupDigest>,
    rels: &BTreeMap<String, GroupDigest>,
) -> String {
    let mut h = Sha256::new();
    h.update(b"cutover/content/v1\0");
    for (tag, groups) in [(b'n', nodes), (b'r', rels)] {
        for (name, g) in groups {
            h.update([tag]);
            h.update((name.len() as u64).to_be_bytes());
            h.update(name.as_bytes());
            h.update(g.count.to_be_bytes());
            h.update(g.sum.to_be_bytes());
        }
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_sets_are_sorted_and_quoted() {
        assert_eq!(label_set_name(&["Member", "Account"]), ":Account:Member");
        assert_eq!(label_set_name(&[]), "(no labels)");
        assert_eq!(label_set_name(&["USD SECURED"]), ":`USD SECURED`");
        assert_eq!(triple_name(":A", "OWES", "(no labels)"), "(:A)-[:OWES]->()");
    }

    #[test]
    fn identity_keys_parse() {
        let k: IdentityKey = "Member.memberID".parse().unwrap();
        assert_eq!(
            k,
            IdentityKey {
                label: "Member".into(),
                property: "memberID".into()
            }
        );
        assert!("Member".parse::<IdentityKey>().is_err());
        assert!(".x".parse::<IdentityKey>().is_err());
    }

    #[test]
    fn content_digest_depends_on_every_group() {
        let mut n = BTreeMap::new();
        n.insert(":A".to_owned(), MultisetDigest::default());
        let r = BTreeMap::new();
        let a = content_digest(&n, &r);
        n.get_mut(":A").unwrap().add(&[1u8; 32]);
        assert_ne!(a, content_digest(&n, &r));
        // Moving a group between nodes and relationships changes the digest.
        assert_ne!(content_digest(&n, &r), content_digest(&r, &n));
    }
}
