//! The reading side of a fingerprint: the work units, the per-unit accumulators, and the
//! shared reader that streams one unit's records over Bolt and hashes each one.

use super::schema::looks_like_rid;
use super::*;

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
    pub(super) fn merge(&mut self, other: Partial) {
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

    pub(super) async fn count(&self, text: &str) -> Result<u64, IntegrityError> {
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
