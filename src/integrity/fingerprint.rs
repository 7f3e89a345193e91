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

/// A unit of reading work.
#[derive(Clone, Debug)]
pub(crate) enum Unit {
    /// Nodes of one label, optionally one `id % of = slice` slice.
    Label {
        label: String,
        slice: Option<(u64, u64)>,
    },
    /// Nodes without labels.
    Unlabelled,
    /// Relationships of one type, optionally one slice.
    Type {
        rel_type: String,
        slice: Option<(u64, u64)>,
    },
}

/// Per-unit (and then total) accumulators.
#[derive(Default, Debug)]
pub(crate) struct Partial {
    pub node_groups: HashMap<String, MultisetDigest>,
    pub rel_groups: HashMap<String, MultisetDigest>,
    pub triples: HashMap<String, u64>,
    pub node_keys: HashMap<String, BTreeSet<String>>,
    pub rel_keys: HashMap<String, BTreeSet<String>>,
    pub missing_keys: HashMap<String, u64>,
    pub nodes_read: u64,
}

impl Partial {
    fn merge(&mut self, other: Partial) {
        for (k, v) in other.node_groups {
            self.node_groups.entry(k).or_default().merge(&v);
        }
        for (k, v) in other.rel_groups {
            self.rel_groups.entry(k).or_default().merge(&v);
        }
        for (k, v) in other.triples {
            *self.triples.entry(k).or_default() += v;
        }
        for (k, v) in other.node_keys {
            self.node_keys.entry(k).or_default().extend(v);
        }
        for (k, v) in other.rel_keys {
            self.rel_keys.entry(k).or_default().extend(v);
        }
        for (k, v) in other.missing_keys {
            *self.missing_keys.entry(k).or_default() += v;
        }
        self.nodes_read += other.nodes_read;
    }
}

/// Shared read context.
pub(crate) struct Reader {
    pub graph: Graph,
    pub uri: String,
    pub keys: Vec<IdentityKey>,
    pub salt: Option<[u8; 32]>,
    pub done: AtomicU64,
    pub total: Option<u64>,
    pub meter: WorkMeter,
    /// How properties are read; set by [`Reader::detect_engine`].
    pub props: PropertyRead,
}

impl Reader {
    pub(crate) fn new(
        graph: &Graph,
        uri: &str,
        options: &FingerprintOptions,
        meter: &WorkMeter,
    ) -> Self {
        let mut keys = options.identity_keys.clone();
        keys.sort();
        keys.dedup();
        Reader {
            graph: graph.clone(),
            uri: uri.to_owned(),
            keys,
            salt: options.salt,
            done: AtomicU64::new(0),
            total: None,
            meter: meter.clone(),
            props: PropertyRead::Map,
        }
    }

    /// Resolves `hint` to the engine behind the graph (ArcadeDB element ids look like
    /// `#12:34`) and chooses how properties are read on it.
    pub(crate) async fn detect_engine(
        &mut self,
        hint: EngineHint,
    ) -> Result<EngineHint, IntegrityError> {
        let engine = match hint {
            EngineHint::Neo4j => EngineHint::Neo4j,
            EngineHint::Arcadedb => EngineHint::Arcadedb,
            EngineHint::Auto => {
                let rows = self
                    .collect("MATCH (n) RETURN elementId(n) AS e LIMIT 1", vec![])
                    .await?;
                let arcade = rows
                    .first()
                    .and_then(|r| r.get::<String>("e").ok())
                    .is_some_and(|e| looks_like_rid(&e));
                if arcade {
                    EngineHint::Arcadedb
                } else {
                    EngineHint::Neo4j
                }
            }
        };
        self.props = match engine {
            EngineHint::Arcadedb => PropertyRead::Map,
            _ => PropertyRead::TaggedPairs,
        };
        Ok(engine)
    }

    /// Runs a query and collects all rows (for small results only).
    pub(crate) async fn collect(
        &self,
        text: &str,
        params: Vec<(&str, BoltType)>,
    ) -> Result<Vec<neo4rs::Row>, IntegrityError> {
        let mut q = neo4rs::query(text);
        for (k, v) in params {
            q = q.param(k, v);
        }
        let mut s = self
            .graph
            .execute(q)
            .await
            .map_err(|e| IntegrityError::bolt(&self.uri, text, &e))?;
        let mut out = Vec::new();
        while let Some(row) = s
            .next()
            .await
            .map_err(|e| IntegrityError::bolt(&self.uri, text, &e))?
        {
            out.push(row);
        }
        Ok(out)
    }

    async fn count(&self, text: &str) -> Result<u64, IntegrityError> {
        let rows = self.collect(text, vec![]).await?;
        let row = rows.first().ok_or_else(|| shape(text, "no row"))?;
        let c: i64 = row.get("c").map_err(|e| shape(text, e))?;
        Ok(c.max(0) as u64)
    }

    fn tick(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        self.meter.update(done, self.total);
    }

    /// The Cypher text of a unit.
    pub(crate) fn unit_query(&self, unit: &Unit) -> String {
        let slice = |var: &str, s: &Option<(u64, u64)>| match s {
            Some((i, k)) => format!(" WHERE id({var}) % {k} = {i}"),
            None => String::new(),
        };
        match unit {
            Unit::Label { label, slice: s } => format!(
                "MATCH (n:{}){} RETURN labels(n) AS l, {} AS p",
                quote_name(label),
                slice("n", s),
                properties::expression(self.props, "n")
            ),
            Unit::Unlabelled => format!(
                "MATCH (n) WHERE size(labels(n)) = 0 RETURN labels(n) AS l, {} AS p",
                properties::expression(self.props, "n")
            ),
            Unit::Type { rel_type, slice: s } => {
                let endpoint = |v: &str| {
                    let props = properties::expression(self.props, v);
                    if self.keys.is_empty() {
                        format!("labels({v}) AS {v}l, {props} AS {v}p")
                    } else {
                        format!(
                            "labels({v}) AS {v}l, [k IN $keyprops | {v}[k]] AS {v}k, \
                             CASE WHEN any(x IN labels({v}) WHERE x IN $keylabels) THEN null ELSE {props} END AS {v}p"
                        )
                    }
                };
                format!(
                    "MATCH (a)-[r:{}]->(b){} RETURN {}, {} AS rp, {}",
                    quote_name(rel_type),
                    slice("r", s),
                    endpoint("a"),
                    properties::expression(self.props, "r"),
                    endpoint("b")
                )
            }
        }
    }

    fn unit_params(&self, unit: &Unit) -> Vec<(&'static str, BoltType)> {
        match unit {
            Unit::Type { .. } if !self.keys.is_empty() => {
                let props: Vec<BoltType> = self
                    .keys
                    .iter()
                    .map(|k| BoltType::from(k.property.as_str()))
                    .collect();
                let labels: Vec<BoltType> = self
                    .keys
                    .iter()
                    .map(|k| BoltType::from(k.label.as_str()))
                    .collect();
                vec![
                    ("keyprops", BoltType::List(BoltList::from(props))),
                    ("keylabels", BoltType::List(BoltList::from(labels))),
                ]
            }
            _ => vec![],
        }
    }

    /// Streams one unit, calling `on_record` with the group name and record hash of every
    /// record it owns, and filling `partial` with counts and keys.
    pub(crate) async fn read_unit(
        &self,
        unit: &Unit,
        partial: &mut Partial,
        mut on_record: impl FnMut(&str, &RecordHash, &RecordView<'_>),
    ) -> Result<(), IntegrityError> {
        let text = self.unit_query(unit);
        let mut q = neo4rs::query(&text);
        for (k, v) in self.unit_params(unit) {
            q = q.param(k, v);
        }
        let mut stream = self
            .graph
            .execute(q)
            .await
            .map_err(|e| IntegrityError::bolt(&self.uri, &text, &e))?;
        let mut buf = Vec::with_capacity(1024);
        let mut pending = 0u64;
        while let Some(row) = stream
            .next()
            .await
            .map_err(|e| IntegrityError::bolt(&self.uri, &text, &e))?
        {
            match unit {
                Unit::Label { .. } | Unit::Unlabelled => {
                    let labels: BoltList = row.get("l").map_err(|e| shape(&text, e))?;
                    let labels = strings(&labels, &text)?;
                    if let Unit::Label { label, .. } = unit {
                        // Owned by the unit of its smallest label.
                        if labels.iter().min().is_some_and(|m| *m != label.as_str()) {
                            continue;
                        }
                    }
                    let props =
                        properties::decode(self.props, &row, "p").map_err(|e| shape(&text, e))?;
                    let hash = canonical::node_hash(self.salt.as_ref(), &labels, &props, &mut buf)
                        .map_err(|e| unsupported(&text, e))?;
                    let group = label_set_name(&labels);
                    for l in &labels {
                        let set = partial.node_keys.entry((*l).to_owned()).or_default();
                        for k in props.value.keys() {
                            if !set.contains(&k.value) {
                                set.insert(k.value.clone());
                            }
                        }
                    }
                    on_record(
                        &group,
                        &hash,
                        &RecordView::Node {
                            labels: &labels,
                            props: &props,
                        },
                    );
                    partial.node_groups.entry(group).or_default().add(&hash);
                    partial.nodes_read += 1;
                }
                Unit::Type { rel_type, .. } => {
                    let al: BoltList = row.get("al").map_err(|e| shape(&text, e))?;
                    let bl: BoltList = row.get("bl").map_err(|e| shape(&text, e))?;
                    let al = strings(&al, &text)?;
                    let bl = strings(&bl, &text)?;
                    let rp =
                        properties::decode(self.props, &row, "rp").map_err(|e| shape(&text, e))?;
                    let start = self.endpoint(&row, "a", &al, &text, partial, &mut buf)?;
                    let end = self.endpoint(&row, "b", &bl, &text, partial, &mut buf)?;
                    let hash = canonical::relationship_hash(
                        self.salt.as_ref(),
                        rel_type,
                        &rp,
                        &start,
                        &end,
                        &mut buf,
                    )
                    .map_err(|e| unsupported(&text, e))?;
                    let set = partial.rel_keys.entry(rel_type.clone()).or_default();
                    for k in rp.value.keys() {
                        if !set.contains(&k.value) {
                            set.insert(k.value.clone());
                        }
                    }
                    let triple = triple_name(&label_set_name(&al), rel_type, &label_set_name(&bl));
                    *partial.triples.entry(triple).or_default() += 1;
                    on_record(
                        rel_type,
                        &hash,
                        &RecordView::Relationship {
                            rel_type,
                            props: &rp,
                            start: &start,
                            end: &end,
                        },
                    );
                    match partial.rel_groups.get_mut(rel_type.as_str()) {
                        Some(g) => g.add(&hash),
                        None => partial
                            .rel_groups
                            .entry(rel_type.clone())
                            .or_default()
                            .add(&hash),
                    }
                }
            }
            pending += 1;
            if pending == 10_000 {
                self.tick(pending);
                pending = 0;
            }
        }
        self.tick(pending);
        Ok(())
    }

    /// The identity of endpoint `v` (`a` or `b`) of a relationship row.
    fn endpoint(
        &self,
        row: &neo4rs::Row,
        v: &str,
        labels: &[&str],
        text: &str,
        partial: &mut Partial,
        buf: &mut Vec<u8>,
    ) -> Result<EndpointIdentity, IntegrityError> {
        buf.clear();
        if !self.keys.is_empty() {
            if let Some((i, key)) = self
                .keys
                .iter()
                .enumerate()
                .find(|(_, k)| labels.contains(&k.label.as_str()))
            {
                let values: BoltList = row.get(&format!("{v}k")).map_err(|e| shape(text, e))?;
                let value = values
                    .value
                    .get(i)
                    .ok_or_else(|| shape(text, "key list too short"))?;
                if matches!(value, BoltType::Null(_)) {
                    *partial.missing_keys.entry(key.to_string()).or_default() += 1;
                }
                let mut enc = Vec::with_capacity(32);
                canonical::encode_value(value, &mut enc).map_err(|e| unsupported(text, e))?;
                return Ok(EndpointIdentity::Key {
                    label: key.label.clone(),
                    property: key.property.clone(),
                    value: enc,
                });
            }
        }
        let props =
            properties::decode(self.props, row, &format!("{v}p")).map_err(|e| shape(text, e))?;
        let h = canonical::node_hash(self.salt.as_ref(), labels, &props, buf)
            .map_err(|e| unsupported(text, e))?;
        Ok(EndpointIdentity::Content(h))
    }
}

/// A record as streamed, for callers that look at records (diff mode).
pub(crate) enum RecordView<'a> {
    Node {
        labels: &'a [&'a str],
        props: &'a BoltMap,
    },
    Relationship {
        rel_type: &'a str,
        props: &'a BoltMap,
        start: &'a EndpointIdentity,
        end: &'a EndpointIdentity,
    },
}

fn strings<'a>(list: &'a BoltList, text: &str) -> Result<Vec<&'a str>, IntegrityError> {
    list.value
        .iter()
        .map(|v| match v {
            BoltType::String(s) => Ok(s.value.as_str()),
            other => Err(shape(text, format!("label is not a string: {other:?}"))),
        })
        .collect()
}

pub(crate) fn shape(text: &str, detail: impl std::fmt::Display) -> IntegrityError {
    IntegrityError::Shape {
        context: text.split_whitespace().collect::<Vec<_>>().join(" "),
        detail: detail.to_string(),
    }
}

fn unsupported(text: &str, e: canonical::UnsupportedValue) -> IntegrityError {
    IntegrityError::Unsupported {
        context: text.split_whitespace().collect::<Vec<_>>().join(" "),
        source: e,
    }
}

/// Lists labels or relationship types through the `db.*` procedures.
pub(crate) async fn list_names(
    reader: &Reader,
    procedure: &str,
    column: &str,
) -> Result<Vec<String>, IntegrityError> {
    let text = format!("CALL {procedure}() YIELD {column} RETURN {column} AS name");
    let rows = reader.collect(&text, vec![]).await?;
    let mut names: Vec<String> = rows
        .iter()
        .map(|r| r.get::<String>("name").map_err(|e| shape(&text, e)))
        .collect::<Result<_, _>>()?;
    names.sort();
    names.dedup();
    Ok(names)
}

/// Plans the work units: one per label and per type, big ones split into slices.
async fn plan_units(
    reader: &Reader,
    options: &FingerprintOptions,
) -> Result<(Vec<Unit>, u64, u64), IntegrityError> {
    let labels = list_names(reader, "db.labels", "label").await?;
    let types = list_names(reader, "db.relationshipTypes", "relationshipType").await?;
    let mut units = Vec::new();
    let mut rel_total = 0;
    let split = |n: u64| -> u64 {
        if n > options.split_threshold && options.split_threshold > 0 {
            n.div_ceil(options.split_threshold).min(64)
        } else {
            1
        }
    };
    let mut sized: Vec<(u64, Unit)> = Vec::new();
    for label in labels {
        let n = reader
            .count(&format!(
                "MATCH (n:{}) RETURN count(n) AS c",
                quote_name(&label)
            ))
            .await?;
        if n == 0 {
            continue;
        }
        let k = split(n);
        for i in 0..k {
            let slice = (k > 1).then_some((i, k));
            sized.push((
                n / k,
                Unit::Label {
                    label: label.clone(),
                    slice,
                },
            ));
        }
    }
    for t in types {
        let n = reader
            .count(&format!(
                "MATCH ()-[r:{}]->() RETURN count(r) AS c",
                quote_name(&t)
            ))
            .await?;
        if n == 0 {
            continue;
        }
        rel_total += n;
        let k = split(n);
        for i in 0..k {
            let slice = (k > 1).then_some((i, k));
            sized.push((
                n / k,
                Unit::Type {
                    rel_type: t.clone(),
                    slice,
                },
            ));
        }
    }
    // Largest first, so the long units start early and the tail is short.
    sized.sort_by_key(|s| std::cmp::Reverse(s.0));
    units.extend(sized.into_iter().map(|(_, u)| u));
    let node_total = reader.count("MATCH (n) RETURN count(n) AS c").await?;
    Ok((units, node_total, rel_total))
}

/// Aborts a spawned task when dropped (an error elsewhere stops all readers).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);
impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs units in parallel (one tokio task per unit, at most `parallelism` at once) and
/// merges their partials.
pub(crate) async fn run_units(
    reader: Arc<Reader>,
    units: Vec<Unit>,
    parallelism: usize,
) -> Result<Partial, IntegrityError> {
    let mut total = Partial::default();
    let mut results = futures::stream::iter(units.into_iter().map(|unit| {
        let reader = reader.clone();
        let handle = tokio::spawn(async move {
            let mut p = Partial::default();
            reader.read_unit(&unit, &mut p, |_, _, _| {}).await?;
            Ok::<_, IntegrityError>(p)
        });
        let mut guard = AbortOnDrop(handle);
        async move {
            match (&mut guard.0).await {
                Ok(r) => r,
                Err(e) => Err(IntegrityError::Input(format!(
                    "a digest reader task failed: {e}"
                ))),
            }
        }
    }))
    .buffer_unordered(parallelism.max(1));
    while let Some(r) = results.next().await {
        total.merge(r?);
    }
    Ok(total)
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

/// Reads constraints and indexes where the engine (as detected) lists them.
async fn read_schema(
    reader: &Reader,
    engine: EngineHint,
) -> Result<(String, SchemaInfo), IntegrityError> {
    if engine == EngineHint::Arcadedb {
        return Ok((
            "arcadedb".into(),
            SchemaInfo::NotAvailable {
                reason: "schema: not available from this engine (ArcadeDB accepts SHOW CONSTRAINTS / SHOW INDEXES \
                         over Bolt but returns no rows even when constraints exist)"
                    .into(),
            },
        ));
    }
    let constraints = reader
        .collect("SHOW CONSTRAINTS YIELD type, entityType, labelsOrTypes, properties RETURN type, entityType, labelsOrTypes, properties", vec![])
        .await;
    let indexes = reader
        .collect("SHOW INDEXES YIELD type, entityType, labelsOrTypes, properties RETURN type, entityType, labelsOrTypes, properties", vec![])
        .await;
    match (constraints, indexes) {
        (Ok(c), Ok(i)) => {
            let render = |rows: Vec<neo4rs::Row>| {
                let mut out: Vec<String> = rows
                    .iter()
                    .map(|r| {
                        let t: String = r.get("type").unwrap_or_default();
                        let e: String = r.get("entityType").unwrap_or_default();
                        let l: Vec<String> = r.get("labelsOrTypes").unwrap_or_default();
                        let p: Vec<String> = r.get("properties").unwrap_or_default();
                        format!("{t} {e} {}({})", l.join(":"), p.join(","))
                    })
                    .collect();
                out.sort();
                out
            };
            Ok((
                "neo4j".into(),
                SchemaInfo::Available {
                    constraints: render(c),
                    indexes: render(i),
                },
            ))
        }
        (Err(e), _) | (_, Err(e)) => Ok((
            "neo4j".into(),
            SchemaInfo::NotAvailable {
                reason: format!("schema: not available from this engine ({e})"),
            },
        )),
    }
}

/// ArcadeDB record ids look like `#12:345`.
fn looks_like_rid(s: &str) -> bool {
    s.strip_prefix('#')
        .and_then(|r| r.split_once(':'))
        .is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        })
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
    fn arcadedb_rids_are_recognised() {
        assert!(looks_like_rid("#1:0"));
        assert!(!looks_like_rid("4:5f1c:12"));
        assert!(!looks_like_rid("#1:"));
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
