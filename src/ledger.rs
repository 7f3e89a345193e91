//! A realistic generated ledger (the shape of the credex LedgerSpace) for tests, demo and
//! bench.
//!
//! Everything is a pure function of `(seed, index)`: record *i* of a kind can be computed
//! without generating records before it, so loading streams in batches with bounded
//! memory, in any order, and two loads with the same spec hold identical data.
//!
//! Shape per member (defaults): 1 `Member`, 1–2 `Account`s (`OWNS`, `AUTHORIZED_FOR`),
//! `credexes_per_account` `Credex`es per account between that account and a pseudo-random
//! other one (`OWES` ×2 when accepted, `OFFERS`/`REQUESTS` ×2 when pending, `CLEARED` ×2 with
//! a `REDEEMED` to a `LoopAnchor` when cleared in a loop, `SECURES` from the issuer for some),
//! every record `CREATED_ON` a `Daynode`; `days` Daynodes in a `NEXT_DAY` chain with exactly
//! one `Active = true` (the last). That is ≈ 7.7 nodes and ≈ 21 relationships per member:
//! 131,000 members ≈ 1.0 M nodes and 2.8 M relationships ([`LedgerSpec::expected_counts`]).
//!
//! Loading runs `UNWIND $rows` statements through a [`LedgerSink`]: over Bolt (the app's
//! write path; one row per statement on ArcadeDB, see [`DEFAULT_BATCH_SIZE`]) or, for
//! large ledgers on ArcadeDB, the same statements in large batches through its HTTP
//! command API ([`LedgerSink::ArcadeHttp`]); both give the same graph, and the speeds
//! measured here are in `docs/integrity.md`. Temporal values: `createdAt` & co. are written with
//! Cypher `datetime(string)` so they are stored as zoned datetimes like the app does (ArcadeDB
//! stores a zoned datetime *parameter* as a local datetime in UTC, dropping the offset).

use crate::db::arcadedb::params::{json_param, UnsupportedParam};
use crate::db::arcadedb::ArcadeHttp;
use crate::failure::Failure;
use crate::progress::WorkMeter;
use neo4rs::{BoltList, BoltMap, BoltString, BoltType, Graph};
use std::time::{Duration, Instant};

/// Rows per statement by default. 1, because ArcadeDB 26.10 duplicates records when an
/// `UNWIND` batch of more than a few rows `MATCH`es and `CREATE`s (measured: batches of
/// 20–2,000 rows at 40–10,000 members; the unique constraint on `credexID` then refuses
/// the batch). Against Neo4j use 1,000–10,000. Every load checks its final counts.
pub const DEFAULT_BATCH_SIZE: usize = 1;

/// What to generate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerSpec {
    pub members: u64,
    pub seed: u64,
    /// Daynodes in the chain (the last one is active).
    pub days: u32,
    pub credexes_per_account: u32,
    /// Rows per `UNWIND` batch.
    pub batch_size: usize,
    /// Load every kind in reverse index order (same data, different storage order).
    pub reverse: bool,
    /// Write one record per statement with `CREATE (n:Label $props)` instead of `UNWIND`
    /// batches (same data through a different write path; slow, for small tests).
    pub one_by_one: bool,
}

impl LedgerSpec {
    /// A spec with defaults for everything but the size and seed.
    pub fn new(members: u64, seed: u64) -> Self {
        Self {
            members,
            seed,
            days: 60,
            credexes_per_account: 4,
            batch_size: 2_000,
            reverse: false,
            one_by_one: false,
        }
    }

    /// Accounts in the ledger (members with index divisible by 3 have two).
    pub fn accounts(&self) -> u64 {
        self.members + self.members.div_ceil(3)
    }

    /// Global index of member `i`'s `j`-th account.
    pub fn account_index(&self, member: u64, j: u64) -> u64 {
        member + member.div_ceil(3) + j
    }

    pub fn accounts_of(member: u64) -> u64 {
        if member % 3 == 0 {
            2
        } else {
            1
        }
    }

    fn member_of_account(&self, g: u64) -> (u64, u64) {
        // Inverse of account_index: every block of 3 members holds 4 accounts.
        let block = g / 4;
        let off = g % 4;
        let base = block * 3;
        match off {
            0 => (base, 0),
            1 => (base, 1),
            2 => (base + 1, 0),
            _ => (base + 2, 0),
        }
    }

    pub fn credexes(&self) -> u64 {
        self.accounts() * u64::from(self.credexes_per_account)
    }

    /// Exact (nodes, relationships) a load of this spec creates.
    pub fn expected_counts(&self) -> (u64, u64) {
        let days = u64::from(self.days);
        let anchors = self.anchors();
        let nodes = days + anchors + self.members + self.accounts() + self.credexes();
        let mut rels = days.saturating_sub(1) + self.members + 2 * self.accounts();
        for c in 0..self.credexes() {
            let k = self.credex(c);
            rels += 3 + u64::from(k.secured) + u64::from(k.anchor.is_some());
        }
        (nodes, rels)
    }

    fn anchors(&self) -> u64 {
        (self.members / 50).max(1)
    }
}

/// splitmix64 of a seed and two inputs: the source of every generated value.
fn mix(seed: u64, a: u64, b: u64) -> u64 {
    let mut z =
        seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn uuid(seed: u64, kind: u64, i: u64) -> String {
    let a = mix(seed, kind, i);
    let b = mix(seed, kind ^ 0xABCD, i);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

const K_MEMBER: u64 = 1;
const K_ACCOUNT: u64 = 2;
const K_CREDEX: u64 = 3;
const K_ANCHOR: u64 = 4;
const DENOMS: [&str; 5] = ["CXX", "CAD", "USD", "XAU", "ZWG"];
const FIRST: [&str; 8] = [
    "Tendai", "Rudo", "Farai", "Chipo", "Tatenda", "Nyasha", "Kuda", "Ruvimbo",
];
const LAST: [&str; 8] = [
    "Moyo", "Ncube", "Dube", "Sibanda", "Mlambo", "Chikore", "Banda", "Phiri",
];

/// The first Daynode's date.
fn start_date() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2025, 1, 1).expect("valid date")
}

fn day_date(day: u64) -> chrono::NaiveDate {
    start_date() + chrono::Duration::days(day as i64)
}

fn timestamp(day: u64, secs: u64) -> String {
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        day_date(day),
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}

/// The status a credex is in; decides its relationship types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredexState {
    Accepted,
    Offered,
    Requested,
    Cleared,
}

impl CredexState {
    /// The relationship type on both sides of the credex.
    pub fn rel_type(self) -> &'static str {
        match self {
            CredexState::Accepted => "OWES",
            CredexState::Offered => "OFFERS",
            CredexState::Requested => "REQUESTS",
            CredexState::Cleared => "CLEARED",
        }
    }
}

/// One generated credex and how it is connected.
#[derive(Clone, Debug)]
pub struct CredexRecord {
    pub index: u64,
    pub issuer: u64,
    pub counterparty: u64,
    pub state: CredexState,
    pub day: u64,
    pub secured: bool,
    pub anchor: Option<u64>,
}

impl LedgerSpec {
    /// Credex `c` (pure function of the spec's seed and `c`).
    pub fn credex(&self, c: u64) -> CredexRecord {
        let accounts = self.accounts();
        let issuer = c / u64::from(self.credexes_per_account.max(1));
        let mut counterparty = mix(self.seed, K_CREDEX, c) % accounts.max(1);
        if counterparty == issuer {
            counterparty = (issuer + 1) % accounts.max(1);
        }
        let r = mix(self.seed, K_CREDEX + 100, c) % 100;
        let state = match r {
            0..=69 => CredexState::Accepted,
            70..=84 => CredexState::Offered,
            85..=89 => CredexState::Requested,
            _ => CredexState::Cleared,
        };
        let day = mix(self.seed, K_CREDEX + 200, c) % u64::from(self.days.max(1));
        let secured = mix(self.seed, K_CREDEX + 300, c) % 5 == 0;
        let anchor = (state == CredexState::Cleared)
            .then(|| mix(self.seed, K_CREDEX + 400, c) % self.anchors());
        CredexRecord {
            index: c,
            issuer,
            counterparty,
            state,
            day,
            secured,
            anchor,
        }
    }

    /// `accountID` of account `g`.
    pub fn account_id(&self, g: u64) -> String {
        uuid(self.seed, K_ACCOUNT, g)
    }

    /// `memberID` of member `i`.
    pub fn member_id(&self, i: u64) -> String {
        uuid(self.seed, K_MEMBER, i)
    }

    /// `credexID` of credex `c`.
    pub fn credex_id(&self, c: u64) -> String {
        uuid(self.seed, K_CREDEX, c)
    }
}

/// A map literal builder for parameters.
struct Props(BoltMap);

impl Props {
    fn new() -> Self {
        Props(BoltMap::new())
    }
    fn put(mut self, k: &str, v: impl Into<BoltType>) -> Self {
        self.0.put(BoltString::from(k), v.into());
        self
    }
    fn done(self) -> BoltType {
        BoltType::Map(self.0)
    }
}

fn daynode_row(spec: &LedgerSpec, d: u64) -> BoltType {
    let m = |k: u64| (mix(spec.seed, 50 + k, d) % 10_000) as f64 / 100.0 + 0.5;
    Props::new()
        .put(
            "props",
            Props::new()
                .put("Date", day_date(d))
                .put("Active", d + 1 == u64::from(spec.days))
                .put("DCOrunningNow", false)
                .put("MTQrunningNow", false)
                .put("CXX", 1.0f64)
                .put("CAD", m(1))
                .put("USD", m(2))
                .put("XAU", m(3) / 1000.0)
                .put("ZWG", m(4) * 13.0)
                .done(),
        )
        .done()
}

fn member_row(spec: &LedgerSpec, i: u64) -> BoltType {
    let r = mix(spec.seed, K_MEMBER + 10, i);
    let day = r % u64::from(spec.days.max(1));
    Props::new()
        .put(
            "props",
            Props::new()
                .put("memberID", spec.member_id(i))
                .put("memberHandle", format!("member{i}"))
                .put("firstname", FIRST[(r >> 8) as usize % FIRST.len()])
                .put("lastname", LAST[(r >> 16) as usize % LAST.len()])
                .put("phone", format!("+2637{:08}", i))
                .put("defaultDenom", DENOMS[(r >> 24) as usize % DENOMS.len()])
                .put("memberTier", ((r >> 32) % 3 + 1) as i64)
                .done(),
        )
        .put("createdAt", timestamp(day, r % 86_400))
        .put(
            "updatedAt",
            timestamp(day, (r % 86_400 + 3_600).min(86_399)),
        )
        .put("day", day_date(day))
        .done()
}

fn account_row(spec: &LedgerSpec, g: u64) -> BoltType {
    let (member, j) = spec.member_of_account(g);
    let r = mix(spec.seed, K_ACCOUNT + 10, g);
    let kinds = [
        "PERSONAL_CONSUMPTION",
        "TRUST",
        "OPERATIONS",
        "CREDEX_FOUNDATION",
    ];
    let kind = if j == 0 {
        kinds[0]
    } else {
        kinds[1 + (r % 3) as usize]
    };
    Props::new()
        .put(
            "props",
            Props::new()
                .put("accountID", spec.account_id(g))
                .put("accountHandle", format!("acct{g}"))
                .put(
                    "accountName",
                    format!("{} account {j}", LAST[(r >> 8) as usize % LAST.len()]),
                )
                .put("accountType", kind)
                .put("defaultDenom", DENOMS[(r >> 16) as usize % DENOMS.len()])
                .put("DCOgiveInCXX", ((r >> 24) % 1000) as f64 / 4.0)
                .put("DCOdenom", DENOMS[(r >> 40) as usize % DENOMS.len()])
                .put("queueStatus", "PROCESSED")
                .done(),
        )
        .put(
            "createdAt",
            timestamp(r % u64::from(spec.days.max(1)), r % 86_400),
        )
        .put("member", spec.member_id(member))
        .done()
}

fn credex_row(spec: &LedgerSpec, k: &CredexRecord) -> BoltType {
    let r = mix(spec.seed, K_CREDEX + 10, k.index);
    let amount = ((r % 1_000_000) as f64) / 100.0 + 0.01;
    let outstanding = match k.state {
        CredexState::Cleared => 0.0,
        _ => amount,
    };
    let mut props = Props::new()
        .put("credexID", spec.credex_id(k.index))
        .put("Denomination", DENOMS[(r >> 24) as usize % DENOMS.len()])
        .put("CXXmultiplier", 1.0 + ((r >> 32) % 100) as f64 / 100.0)
        .put("InitialAmount", amount)
        .put("OutstandingAmount", outstanding)
        .put("RedeemedAmount", amount - outstanding)
        .put("DefaultedAmount", 0.0f64)
        .put("WrittenOffAmount", 0.0f64)
        .put(
            "credexType",
            ["PURCHASE", "GIFT", "DCO_GIVE", "DCO_RECEIVE"][(r >> 40) as usize % 4],
        )
        .put("dueDate", day_date(k.day + 30))
        .put("queueStatus", "PROCESSED");
    if matches!(k.state, CredexState::Accepted | CredexState::Cleared) {
        props = props.put("acceptedAt", timestamp(k.day, (r >> 8) % 86_400));
    }
    Props::new()
        .put("props", props.done())
        .put("createdAt", timestamp(k.day, (r >> 8) % 86_400))
        .put("from", spec.account_id(k.issuer))
        .put("to", spec.account_id(k.counterparty))
        .put("day", day_date(k.day))
        .put(
            "anchor",
            k.anchor
                .map(|a| uuid(spec.seed, K_ANCHOR, a))
                .map(BoltType::from)
                .unwrap_or(BoltType::Null(neo4rs::BoltNull)),
        )
        .put("amount", amount)
        .done()
}

/// Errors while loading a ledger.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("loading the ledger failed at {stage}: {source}")]
    Bolt {
        stage: String,
        #[source]
        source: neo4rs::Error,
    },
    /// A batch sent over ArcadeDB's HTTP API failed. Not retried: the server may have
    /// committed it, and a second attempt would write it twice.
    #[error("loading the ledger over HTTP failed at {stage}: {source}; the database may hold part of the ledger: load into a new, empty database")]
    Http {
        stage: String,
        #[source]
        source: Failure,
    },
    #[error("loading the ledger failed at {stage}: {source}")]
    Param {
        stage: String,
        #[source]
        source: UnsupportedParam,
    },
    /// The database holds other counts than the spec creates (the engine duplicated or
    /// dropped writes, or the database was not empty).
    #[error("the loaded ledger has {actual:?} (nodes, relationships), the spec creates {expected:?}: the database was not empty or the engine lost/duplicated writes")]
    CountMismatch {
        expected: (u64, u64),
        actual: (u64, u64),
    },
}

const COUNT_QUERIES: [&str; 2] = [
    "MATCH (n) RETURN count(n) AS c",
    "MATCH ()-[r]->() RETURN count(r) AS c",
];

/// Counts all nodes and relationships.
pub async fn count_records(graph: &Graph) -> Result<(u64, u64), LedgerError> {
    let mut out = [0u64; 2];
    for (i, q) in COUNT_QUERIES.iter().enumerate() {
        let err = |source| LedgerError::Bolt {
            stage: "count".into(),
            source,
        };
        let mut s = graph.execute(neo4rs::query(q)).await.map_err(err)?;
        if let Some(row) = s.next().await.map_err(err)? {
            out[i] = row.get::<i64>("c").unwrap_or(0).max(0) as u64;
        }
    }
    Ok((out[0], out[1]))
}

/// What a load did and how fast.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LoadStats {
    pub nodes: u64,
    pub relationships: u64,
    pub elapsed: Duration,
    pub records_per_second: f64,
}

/// How a sink's statements receive dates: as typed Bolt `Date` parameters, or as ISO
/// strings (JSON has no dates) that the statement turns back into dates with `date(…)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dates {
    Typed,
    Iso,
}

impl Dates {
    /// The Cypher expression for the date held in `expr`.
    fn of(self, expr: &str) -> String {
        match self {
            Dates::Typed => expr.to_owned(),
            Dates::Iso => format!("date({expr})"),
        }
    }

    /// After `SET var = r.props`: re-sets the date property `key` from its ISO string.
    fn restore(self, var: &str, key: &str) -> String {
        match self {
            Dates::Typed => String::new(),
            Dates::Iso => format!(", {var}.{key} = date(r.props.{key})"),
        }
    }
}

/// Cypher statements per kind. Every statement takes `$rows`.
fn q_daynodes(dates: Dates) -> String {
    format!(
        "UNWIND $rows AS r CREATE (d:Daynode) SET d = r.props{}",
        dates.restore("d", "Date")
    )
}

fn q_next_day(dates: Dates) -> String {
    format!(
        "UNWIND $rows AS r MATCH (a:Daynode {{Date: {}}}) MATCH (b:Daynode {{Date: {}}}) CREATE (a)-[:NEXT_DAY]->(b)",
        dates.of("r.from"),
        dates.of("r.to")
    )
}

const Q_ANCHORS: &str =
    "UNWIND $rows AS r CREATE (l:LoopAnchor) SET l = r.props, l.createdAt = datetime(r.createdAt)";

fn q_members(dates: Dates) -> String {
    format!(
        "UNWIND $rows AS r MATCH (d:Daynode {{Date: {}}}) \
         CREATE (m:Member) SET m = r.props, m.createdAt = datetime(r.createdAt), m.updatedAt = datetime(r.updatedAt) \
         CREATE (m)-[:CREATED_ON]->(d)",
        dates.of("r.day")
    )
}

const Q_ACCOUNTS: &str = "UNWIND $rows AS r MATCH (m:Member {memberID: r.member}) \
    CREATE (a:Account) SET a = r.props, a.createdAt = datetime(r.createdAt) \
    CREATE (m)-[:OWNS]->(a) CREATE (m)-[:AUTHORIZED_FOR]->(a)";

fn credex_query(state: CredexState, redeemed: bool, dates: Dates) -> String {
    let t = state.rel_type();
    let mut q = format!(
        "UNWIND $rows AS r MATCH (a:Account {{accountID: r.from}}) MATCH (b:Account {{accountID: r.to}}) MATCH (d:Daynode {{Date: {}}}) \
         CREATE (c:Credex) SET c = r.props, c.createdAt = datetime(r.createdAt){}",
        dates.of("r.day"),
        dates.restore("c", "dueDate")
    );
    if state == CredexState::Accepted || state == CredexState::Cleared {
        q.push_str(", c.acceptedAt = datetime(r.props.acceptedAt)");
    }
    q.push_str(&format!(
        " CREATE (a)-[:{t}]->(c) CREATE (c)-[:{t}]->(b) CREATE (c)-[:CREATED_ON]->(d)"
    ));
    if redeemed {
        q.push_str(" WITH c, r MATCH (l:LoopAnchor {loopID: r.anchor}) CREATE (c)-[:REDEEMED {amount: r.amount}]->(l)");
    }
    q
}

/// `SECURES` is created in its own pass: ArcadeDB 26.10 creates the credex node twice
/// when one `UNWIND` batch (of more than a handful of rows) creates two relationships
/// between the same pair of nodes in one statement (`(a)-[:OWES]->(c)` and
/// `(a)-[:SECURES]->(c)`); measured, see `docs/integrity.md`.
const Q_SECURES: &str =
    "UNWIND $rows AS r MATCH (a:Account {accountID: r.from}) MATCH (c:Credex {credexID: r.id}) CREATE (a)-[:SECURES]->(c)";

/// How long one HTTP batch may take (a few thousand rows take seconds; this only stops a
/// hung server from hanging the load).
pub const HTTP_BATCH_TIMEOUT: Duration = Duration::from_secs(600);

/// Where a load writes. Both sinks run the same statements and give the same graph
/// (same labels, properties with the same types, relationships); `tests/it` proves it by
/// fingerprint.
#[derive(Clone, Copy)]
pub enum LedgerSink<'a> {
    /// Cypher over Bolt with typed parameters: the app's own write path. On ArcadeDB keep
    /// the batch size at [`DEFAULT_BATCH_SIZE`] (≈ 1,400 records/s here).
    Bolt(&'a Graph),
    /// Cypher through ArcadeDB's HTTP command API (`POST /api/v1/command/<db>`), one
    /// `UNWIND` batch per request, each its own server-side transaction, rows as JSON
    /// (dates as ISO strings turned back by `date(…)`, see
    /// [`crate::db::arcadedb::params`]). Large batches are correct here (measured: the
    /// count check holds at 131,000 members with 2,000-row batches). A failed batch is
    /// not retried. The bulk path for benchmark-sized ledgers.
    ArcadeHttp {
        http: &'a ArcadeHttp,
        database: &'a str,
    },
}

impl LedgerSink<'_> {
    fn dates(&self) -> Dates {
        match self {
            LedgerSink::Bolt(_) => Dates::Typed,
            LedgerSink::ArcadeHttp { .. } => Dates::Iso,
        }
    }

    /// Runs `query`, with `$rows` bound when given, and discards its result.
    async fn run(
        &self,
        stage: &str,
        query: &str,
        rows: Option<BoltType>,
    ) -> Result<(), LedgerError> {
        match *self {
            LedgerSink::Bolt(graph) => {
                let mut q = neo4rs::query(query);
                if let Some(rows) = rows {
                    q = q.param("rows", rows);
                }
                graph.run(q).await.map_err(|source| LedgerError::Bolt {
                    stage: stage.to_owned(),
                    source,
                })
            }
            LedgerSink::ArcadeHttp { http, database } => {
                let params = match rows {
                    Some(rows) => serde_json::json!({
                        "rows": json_param(&rows).map_err(|source| LedgerError::Param {
                            stage: stage.to_owned(),
                            source,
                        })?
                    }),
                    None => serde_json::Value::Null,
                };
                http.database_command_with_params(
                    database,
                    "cypher",
                    query,
                    params,
                    HTTP_BATCH_TIMEOUT,
                )
                .await
                .map(drop)
                .map_err(|source| LedgerError::Http {
                    stage: stage.to_owned(),
                    source,
                })
            }
        }
    }

    /// Counts all nodes and relationships.
    pub async fn count_records(&self) -> Result<(u64, u64), LedgerError> {
        let (http, database) = match *self {
            LedgerSink::Bolt(graph) => return count_records(graph).await,
            LedgerSink::ArcadeHttp { http, database } => (http, database),
        };
        let mut out = [0u64; 2];
        for (i, q) in COUNT_QUERIES.iter().enumerate() {
            let rows = http
                .database_command_with_params(
                    database,
                    "cypher",
                    q,
                    serde_json::Value::Null,
                    HTTP_BATCH_TIMEOUT,
                )
                .await
                .map_err(|source| LedgerError::Http {
                    stage: "count".into(),
                    source,
                })?;
            out[i] = rows
                .get(0)
                .and_then(|row| row.get("c"))
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0);
        }
        Ok((out[0], out[1]))
    }
}

/// Creates the unique constraints of the LedgerSpace model (where the engine supports
/// them; ArcadeDB accepts `CREATE CONSTRAINT … IS UNIQUE` over Bolt and enforces it with a
/// unique index, which also makes the loader's `MATCH … {key: …}` lookups fast).
pub async fn create_constraints(sink: LedgerSink<'_>) -> Result<(), LedgerError> {
    for (label, prop) in [
        ("Daynode", "Date"),
        ("Member", "memberID"),
        ("Member", "memberHandle"),
        ("Member", "phone"),
        ("Account", "accountID"),
        ("Account", "accountHandle"),
        ("LoopAnchor", "loopID"),
        // Not in the app's LedgerSpace schema (credexID is a uuid, unique anyway); the
        // loader's SECURES pass looks credexes up by it.
        ("Credex", "credexID"),
    ] {
        let q = format!("CREATE CONSTRAINT {label}_{prop} IF NOT EXISTS FOR (n:{label}) REQUIRE n.{prop} IS UNIQUE");
        sink.run(&format!("constraint {label}.{prop}"), &q, None)
            .await?;
    }
    Ok(())
}

struct Loader<'a> {
    sink: LedgerSink<'a>,
    spec: &'a LedgerSpec,
    meter: &'a WorkMeter,
    done: u64,
    total: u64,
}

impl Loader<'_> {
    /// Runs `query` over rows produced for indices `0..n` (reversed if the spec says so),
    /// in batches; `weight` is the records (nodes + relationships) one row creates.
    async fn batches(
        &mut self,
        stage: &str,
        query: &str,
        indices: impl DoubleEndedIterator<Item = u64>,
        row: impl Fn(u64) -> Option<(BoltType, u64)>,
    ) -> Result<(), LedgerError> {
        let indices: Box<dyn Iterator<Item = u64>> = if self.spec.reverse {
            Box::new(indices.rev())
        } else {
            Box::new(indices)
        };
        let batch = if self.spec.one_by_one {
            1
        } else {
            self.spec.batch_size.max(1)
        };
        let mut rows = Vec::with_capacity(batch);
        let mut weight = 0;
        for i in indices {
            if let Some((r, w)) = row(i) {
                rows.push(r);
                weight += w;
            }
            if rows.len() == batch {
                self.flush(stage, query, &mut rows, &mut weight).await?;
            }
        }
        self.flush(stage, query, &mut rows, &mut weight).await
    }

    async fn flush(
        &mut self,
        stage: &str,
        query: &str,
        rows: &mut Vec<BoltType>,
        weight: &mut u64,
    ) -> Result<(), LedgerError> {
        if rows.is_empty() {
            return Ok(());
        }
        let list = BoltType::List(BoltList::from(std::mem::take(rows)));
        self.sink.run(stage, query, Some(list)).await?;
        self.done += *weight;
        *weight = 0;
        self.meter.update(self.done, Some(self.total));
        Ok(())
    }
}

/// Loads the ledger described by `spec` into an empty database over Bolt, creating the
/// model's unique constraints first. Reports records (nodes + relationships) created.
pub async fn load_ledger(
    graph: &Graph,
    spec: &LedgerSpec,
    meter: &WorkMeter,
) -> Result<LoadStats, LedgerError> {
    load_ledger_into(LedgerSink::Bolt(graph), spec, meter).await
}

/// Loads the ledger described by `spec` into an empty database through `sink`, creating
/// the model's unique constraints first, and checks the final counts. Reports records
/// (nodes + relationships) created.
pub async fn load_ledger_into(
    sink: LedgerSink<'_>,
    spec: &LedgerSpec,
    meter: &WorkMeter,
) -> Result<LoadStats, LedgerError> {
    let started = Instant::now();
    let (nodes, rels) = spec.expected_counts();
    let dates = sink.dates();
    create_constraints(sink).await?;
    let mut l = Loader {
        sink,
        spec,
        meter,
        done: 0,
        total: nodes + rels,
    };
    let days = u64::from(spec.days);
    l.batches("daynodes", &q_daynodes(dates), 0..days, |d| {
        Some((daynode_row(spec, d), 1))
    })
    .await?;
    l.batches(
        "next_day",
        &q_next_day(dates),
        0..days.saturating_sub(1),
        |d| {
            Some((
                Props::new()
                    .put("from", day_date(d))
                    .put("to", day_date(d + 1))
                    .done(),
                1,
            ))
        },
    )
    .await?;
    l.batches("anchors", Q_ANCHORS, 0..spec.anchors(), |a| {
        let id = uuid(spec.seed, K_ANCHOR, a);
        let props = Props::new()
            .put("loopID", id)
            .put(
                "loopedAmount",
                (mix(spec.seed, K_ANCHOR, a) % 10_000) as f64 / 10.0,
            )
            .done();
        Some((
            Props::new()
                .put("props", props)
                .put("createdAt", timestamp(a % days.max(1), a % 86_400))
                .done(),
            1,
        ))
    })
    .await?;
    l.batches("members", &q_members(dates), 0..spec.members, |i| {
        Some((member_row(spec, i), 2))
    })
    .await?;
    let members = spec.members;
    l.batches("accounts", Q_ACCOUNTS, 0..spec.accounts(), |g| {
        let (m, _) = spec.member_of_account(g);
        (m < members).then(|| (account_row(spec, g), 3))
    })
    .await?;
    for state in [
        CredexState::Accepted,
        CredexState::Offered,
        CredexState::Requested,
        CredexState::Cleared,
    ] {
        let q = credex_query(state, state == CredexState::Cleared, dates);
        l.batches(
            &format!("credexes {}", state.rel_type()),
            &q,
            0..spec.credexes(),
            |c| {
                let k = spec.credex(c);
                (k.state == state)
                    .then(|| (credex_row(spec, &k), 4 + u64::from(k.anchor.is_some())))
            },
        )
        .await?;
    }
    l.batches("secures", Q_SECURES, 0..spec.credexes(), |c| {
        let k = spec.credex(c);
        k.secured.then(|| {
            let row = Props::new()
                .put("from", spec.account_id(k.issuer))
                .put("id", spec.credex_id(c))
                .done();
            (row, 1)
        })
    })
    .await?;
    let actual = sink.count_records().await?;
    if actual != (nodes, rels) {
        return Err(LedgerError::CountMismatch {
            expected: (nodes, rels),
            actual,
        });
    }
    let elapsed = started.elapsed();
    Ok(LoadStats {
        nodes,
        relationships: rels,
        elapsed,
        records_per_second: (nodes + rels) as f64 / elapsed.as_secs_f64().max(1e-9),
    })
}

/// Loads a small SearchSpace derived from the same spec: `Account {accountID,
/// accountName}`, `Credex {credexID, outstandingAmount, Denomination, CXXmultiplier,
/// dueDate}` for every outstanding accepted credex, and one anchor node per kind
/// (`UNSECURED`, `USD_SECURED`) with that dynamic relationship type to each credex.
///
/// The app labels an anchor node with the same name as its relationship type; ArcadeDB
/// keeps vertex and edge types in one namespace and refuses that ("Type 'UNSECURED' is not
/// an edge type"), so here the anchors are `:SearchAnchor {anchorType: 'UNSECURED'}`.
pub async fn load_search_space(
    graph: &Graph,
    spec: &LedgerSpec,
    meter: &WorkMeter,
) -> Result<LoadStats, LedgerError> {
    let started = Instant::now();
    let mut l = Loader {
        sink: LedgerSink::Bolt(graph),
        spec,
        meter,
        done: 0,
        total: 0,
    };
    for (label, prop) in [("Account", "accountID"), ("Credex", "credexID")] {
        let q = format!("CREATE CONSTRAINT search_{label}_{prop} IF NOT EXISTS FOR (n:{label}) REQUIRE n.{prop} IS UNIQUE");
        graph
            .run(neo4rs::query(&q))
            .await
            .map_err(|source| LedgerError::Bolt {
                stage: "search constraints".into(),
                source,
            })?;
    }
    let mut nodes = spec.accounts();
    let mut rels = 0;
    l.batches(
        "search accounts",
        "UNWIND $rows AS r CREATE (a:Account) SET a = r",
        0..spec.accounts(),
        |g| {
            Some((
                Props::new()
                    .put("accountID", spec.account_id(g))
                    .put("accountName", format!("acct{g}"))
                    .done(),
                1,
            ))
        },
    )
    .await?;
    for (anchor, secured) in [("UNSECURED", false), ("USD_SECURED", true)] {
        let q = format!("CREATE (n:SearchAnchor {{anchorType: '{anchor}', searchAnchorID: $id, earliestDueDate: $due}})");
        graph
            .run(
                neo4rs::query(&q)
                    .param("id", uuid(spec.seed, 9, u64::from(secured)))
                    .param("due", day_date(30)),
            )
            .await
            .map_err(|source| LedgerError::Bolt {
                stage: "search anchors".into(),
                source,
            })?;
        nodes += 1;
        let q = format!(
            "UNWIND $rows AS r MATCH (n:SearchAnchor {{searchAnchorID: $id}}) CREATE (c:Credex) SET c = r.props \
             CREATE (n)-[:{anchor}]->(c)"
        );
        let id = uuid(spec.seed, 9, u64::from(secured));
        let mut count = 0u64;
        for c in 0..spec.credexes() {
            let k = spec.credex(c);
            if k.state == CredexState::Accepted && k.secured == secured {
                count += 1;
            }
        }
        nodes += count;
        rels += count;
        let mut rows = Vec::new();
        let flush = |rows: Vec<BoltType>| {
            let list = BoltType::List(BoltList::from(rows));
            graph.run(
                neo4rs::query(&q)
                    .param("rows", list)
                    .param("id", id.clone()),
            )
        };
        for c in 0..spec.credexes() {
            let k = spec.credex(c);
            if k.state != CredexState::Accepted || k.secured != secured {
                continue;
            }
            let r = mix(spec.seed, K_CREDEX + 10, c);
            let props = Props::new()
                .put("credexID", spec.credex_id(c))
                .put("outstandingAmount", ((r % 1_000_000) as f64) / 100.0 + 0.01)
                .put("Denomination", DENOMS[(r >> 24) as usize % DENOMS.len()])
                .put("CXXmultiplier", 1.0 + ((r >> 32) % 100) as f64 / 100.0)
                .put("dueDate", day_date(k.day + 30))
                .done();
            rows.push(Props::new().put("props", props).done());
            if rows.len() == spec.batch_size.max(1) {
                flush(std::mem::take(&mut rows))
                    .await
                    .map_err(|source| LedgerError::Bolt {
                        stage: "search credexes".into(),
                        source,
                    })?;
            }
        }
        if !rows.is_empty() {
            flush(rows).await.map_err(|source| LedgerError::Bolt {
                stage: "search credexes".into(),
                source,
            })?;
        }
    }
    let elapsed = started.elapsed();
    Ok(LoadStats {
        nodes,
        relationships: rels,
        elapsed,
        records_per_second: (nodes + rels) as f64 / elapsed.as_secs_f64().max(1e-9),
    })
}

/// One small ledger transaction between two existing accounts: what the app does when a
/// member offers and the counterparty accepts a credex.
#[derive(Clone, Debug)]
pub struct CredexTransaction {
    pub credex_id: String,
    pub issuer_account_id: String,
    pub counterparty_account_id: String,
    pub amount: f64,
    pub denomination: String,
}

impl LedgerSpec {
    /// The `n`-th live transaction a writer would commit against this ledger
    /// (deterministic; ids never collide with loaded credexes).
    pub fn live_transaction(&self, n: u64) -> CredexTransaction {
        let accounts = self.accounts().max(2);
        let a = mix(self.seed, 77, n) % accounts;
        let mut b = mix(self.seed, 78, n) % accounts;
        if a == b {
            b = (a + 1) % accounts;
        }
        CredexTransaction {
            credex_id: uuid(self.seed, 1_000 + K_CREDEX, n),
            issuer_account_id: self.account_id(a),
            counterparty_account_id: self.account_id(b),
            amount: (mix(self.seed, 79, n) % 100_000) as f64 / 100.0 + 0.01,
            denomination: DENOMS[(mix(self.seed, 80, n) % 5) as usize].to_owned(),
        }
    }
}

/// Commits one accepted credex between two accounts, linked to the active Daynode, in one
/// transaction. Returns an error if either account or the active Daynode is missing (the
/// statement then creates nothing).
pub async fn commit_credex(graph: &Graph, tx: &CredexTransaction) -> Result<(), LedgerError> {
    let q = neo4rs::query(
        "MATCH (a:Account {accountID: $from}), (b:Account {accountID: $to}), (d:Daynode {Active: true}) \
         CREATE (c:Credex {credexID: $id, Denomination: $denom, CXXmultiplier: 1.0, InitialAmount: $amount, \
           OutstandingAmount: $amount, RedeemedAmount: 0.0, DefaultedAmount: 0.0, WrittenOffAmount: 0.0, \
           credexType: 'PURCHASE', queueStatus: 'PENDING_CREDEX', createdAt: datetime(), acceptedAt: datetime()}) \
         CREATE (a)-[:OWES]->(c) CREATE (c)-[:OWES]->(b) CREATE (c)-[:CREATED_ON]->(d) \
         RETURN count(c) AS created",
    )
    .param("from", tx.issuer_account_id.as_str())
    .param("to", tx.counterparty_account_id.as_str())
    .param("id", tx.credex_id.as_str())
    .param("denom", tx.denomination.as_str())
    .param("amount", tx.amount);
    let mut txn = graph
        .start_txn()
        .await
        .map_err(|source| LedgerError::Bolt {
            stage: "begin credex".into(),
            source,
        })?;
    let mut stream = txn.execute(q).await.map_err(|source| LedgerError::Bolt {
        stage: "create credex".into(),
        source,
    })?;
    let mut created = 0i64;
    while let Some(row) = stream
        .next(txn.handle())
        .await
        .map_err(|source| LedgerError::Bolt {
            stage: "create credex".into(),
            source,
        })?
    {
        created = row.get("created").unwrap_or(0);
    }
    drop(stream);
    if created != 1 {
        txn.rollback().await.map_err(|source| LedgerError::Bolt {
            stage: "rollback credex".into(),
            source,
        })?;
        return Err(LedgerError::Bolt {
            stage: format!("create credex {}", tx.credex_id),
            source: neo4rs::Error::UnexpectedMessage(format!(
                "expected to create 1 credex, created {created} (missing account or active Daynode)"
            )),
        });
    }
    txn.commit().await.map_err(|source| LedgerError::Bolt {
        stage: "commit credex".into(),
        source,
    })
}

/// The SearchSpace side of a committed credex, as the app writes it after the ledger
/// commit: a `:Credex {credexID, outstandingAmount, Denomination, dueDate}` linked from the
/// `UNSECURED` anchor. Safe to call again for the same credex: it first asks whether the
/// credex is indexed already (a commit whose answer was lost), so a retry never trips the
/// `credexID` uniqueness constraint. Works on Neo4j and ArcadeDB (no `MERGE`).
pub async fn index_credex(graph: &Graph, tx: &CredexTransaction) -> Result<(), LedgerError> {
    let bolt = |stage: &str| {
        let stage = format!("{stage} {}", tx.credex_id);
        move |source| LedgerError::Bolt { stage, source }
    };
    let mut rows = graph
        .execute(
            neo4rs::query("MATCH (c:Credex {credexID: $id}) RETURN count(c) AS n")
                .param("id", tx.credex_id.as_str()),
        )
        .await
        .map_err(bolt("look up search credex"))?;
    let mut present = 0i64;
    while let Some(row) = rows.next().await.map_err(bolt("look up search credex"))? {
        present = row.get("n").unwrap_or(0);
    }
    // The stream holds its connection until dropped; the app's pool may have only one.
    drop(rows);
    if present > 0 {
        return Ok(());
    }
    let q = neo4rs::query(
        "MATCH (n:SearchAnchor {anchorType: 'UNSECURED'}) \
         CREATE (c:Credex {credexID: $id, outstandingAmount: $amount, Denomination: $denom, dueDate: $due}) \
         CREATE (n)-[:UNSECURED]->(c) RETURN count(c) AS created",
    )
    .param("id", tx.credex_id.as_str())
    .param("amount", tx.amount)
    .param("denom", tx.denomination.as_str())
    .param("due", day_date(30));
    let mut rows = graph.execute(q).await.map_err(bolt("index credex"))?;
    let mut created = 0i64;
    while let Some(row) = rows.next().await.map_err(bolt("index credex"))? {
        created = row.get("created").unwrap_or(0);
    }
    if created != 1 {
        return Err(LedgerError::Bolt {
            stage: format!("index credex {}", tx.credex_id),
            source: neo4rs::Error::UnexpectedMessage(format!(
                "expected to index 1 credex, indexed {created} (missing UNSECURED anchor)"
            )),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_index_round_trips() {
        let spec = LedgerSpec::new(100, 1);
        let mut g = 0;
        for m in 0..spec.members {
            for j in 0..LedgerSpec::accounts_of(m) {
                assert_eq!(spec.account_index(m, j), g);
                assert_eq!(spec.member_of_account(g), (m, j));
                g += 1;
            }
        }
        assert_eq!(g, spec.accounts());
    }

    #[test]
    fn generation_is_deterministic_by_seed() {
        let a = LedgerSpec::new(1000, 7);
        let b = LedgerSpec::new(1000, 7);
        let c = LedgerSpec::new(1000, 8);
        assert_eq!(a.expected_counts(), b.expected_counts());
        assert_eq!(a.account_id(5), b.account_id(5));
        assert_ne!(a.account_id(5), c.account_id(5));
        assert_eq!(member_row(&a, 3), member_row(&b, 3));
    }

    #[test]
    fn million_node_spec_has_two_million_relationships() {
        let spec = LedgerSpec::new(131_000, 1);
        let (n, r) = spec.expected_counts();
        assert!(n >= 1_000_000, "{n}");
        assert!(r >= 2_000_000, "{r}");
    }

    #[test]
    fn credexes_never_point_at_their_issuer() {
        let spec = LedgerSpec::new(300, 3);
        for c in 0..spec.credexes() {
            let k = spec.credex(c);
            assert_ne!(k.issuer, k.counterparty);
            assert!(k.counterparty < spec.accounts());
        }
    }
}
