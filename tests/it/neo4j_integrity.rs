//! Integrity against real Neo4j Community servers (`make setup`): every type Neo4j
//! returns over Bolt reaches the fingerprint exactly; equal graphs (another load order,
//! `neo4j-admin` dump → load, an upgrade 5.26 → 2026.08) give equal fingerprints; every
//! single-value change, a type change, an added label, a reversed or a missing parallel
//! relationship, a missing constraint or index is caught and named; `cutover digest`
//! agrees with the library.

use crate::harness::neo4j::{shared, Neo4jServer, LTS, NEXT};
use cutover::db::bolt::BoltTarget;
use cutover::db::neo4j::admin::{self, CheckSource};
use cutover::integrity::canonical::node_hash;
use cutover::integrity::{
    compare, connect_for_reading, fingerprint, FindingKind, Fingerprint, FingerprintOptions,
    MultisetDigest, SchemaInfo,
};
use cutover::progress::WorkMeter;
use neo4rs::{
    BoltDuration, BoltFloat, BoltList, BoltMap, BoltPoint2D, BoltPoint3D, BoltString, BoltType,
};
use secrecy::ExposeSecret;
use std::collections::BTreeSet;

/// One node per type: `(:<label> {v: <expr>})`. `$bytes` is a byte-array parameter.
const TYPES: &[(&str, &str)] = &[
    ("TDate", "date('2024-02-29')"),
    ("TDateMin", "date('-999999999-01-01')"),
    ("TTime", "time('12:34:56.123456789+01:00')"),
    ("TLocalTime", "localtime('12:34:56.5')"),
    (
        "TLocalDateTime",
        "localdatetime('2024-01-02T03:04:05.000000007')",
    ),
    ("TDateTimeOffset", "datetime('2024-01-02T03:04:05.5+02:00')"),
    (
        "TDateTimeZone",
        "datetime('2024-07-02T03:04:05[Europe/Berlin]')",
    ),
    ("TDuration", "duration('P1Y2M3DT4H5M6.7S')"),
    ("TDurationNeg", "duration({seconds: -1, nanoseconds: 5})"),
    ("TPoint2D", "point({x: 1.5, y: -2.0})"),
    ("TPoint3D", "point({x: 1.0, y: 2.0, z: 3.0})"),
    ("TWgs84", "point({longitude: 13.4, latitude: 52.5})"),
    (
        "TWgs843D",
        "point({longitude: 13.4, latitude: 52.5, height: 10.0})",
    ),
    ("TBytes", "$bytes"),
    ("TListDate", "[date('2024-01-01'), date('2024-01-02')]"),
    ("TListTime", "[time('12:00+01:00'), time('11:00Z')]"),
    ("TListLocalTime", "[localtime('01:02')]"),
    ("TListLocalDateTime", "[localdatetime('2024-01-01T00:00')]"),
    ("TListDateTime", "[datetime('2024-01-01T00:00Z')]"),
    (
        "TListZoned",
        "[datetime('2024-01-01T00:00[Europe/Berlin]')]",
    ),
    (
        "TListDuration",
        "[duration('P1M'), duration('P30D'), duration('PT2629800S')]",
    ),
    (
        "TListPoint",
        "[point({x: 1.0, y: 2.0}), point({x: 3.0, y: 4.0})]",
    ),
    ("TListPoint3D", "[point({x: 1.0, y: 2.0, z: 3.0})]"),
    ("TListWgs84", "[point({longitude: 1.0, latitude: 2.0})]"),
    ("TMax", "9223372036854775807"),
    ("TMin", "-9223372036854775808"),
    ("TNaN", "0.0 / 0.0"),
    ("TInf", "1.0 / 0.0"),
    ("TNegInf", "-1.0 / 0.0"),
    ("TNegZero", "-0.0"),
    ("TEmpty", "[]"),
    ("TListInt", "[1, 2, 3]"),
    ("TSmallNeg", "-1"),
    ("TListSmallNeg", "[-16, -1, 0, 127]"),
    ("TListFloat", "[1.0, -0.0]"),
    ("TListStr", "['a', 'b']"),
    ("TBool", "true"),
    ("TStr", "'2024-02-29'"),
];

const BYTES: [u8; 4] = [0, 1, 254, 255];

/// The values the server must hand back for the types whose Bolt fields we can build.
fn expected(label: &str) -> Option<BoltType> {
    use chrono::{NaiveDate, NaiveTime};
    let l = |v: Vec<BoltType>| BoltType::List(BoltList::from(v));
    let p2 = |srid: i64, x: f64, y: f64| {
        BoltType::Point2D(BoltPoint2D {
            sr_id: srid.into(),
            x: BoltFloat::new(x),
            y: BoltFloat::new(y),
        })
    };
    let p3 = |srid: i64, x: f64, y: f64, z: f64| {
        BoltType::Point3D(BoltPoint3D {
            sr_id: srid.into(),
            x: BoltFloat::new(x),
            y: BoltFloat::new(y),
            z: BoltFloat::new(z),
        })
    };
    let du = |m: i64, d: i64, s: i64, n: i64| {
        BoltType::Duration(BoltDuration::new(m.into(), d.into(), s.into(), n.into()))
    };
    let date = |y, m, d| BoltType::from(NaiveDate::from_ymd_opt(y, m, d).unwrap());
    Some(match label {
        "TDate" => date(2024, 2, 29),
        "TLocalTime" => BoltType::from(NaiveTime::from_hms_milli_opt(12, 34, 56, 500).unwrap()),
        "TLocalDateTime" => BoltType::from(
            NaiveDate::from_ymd_opt(2024, 1, 2)
                .unwrap()
                .and_hms_nano_opt(3, 4, 5, 7)
                .unwrap(),
        ),
        "TDuration" => du(14, 3, 4 * 3600 + 5 * 60 + 6, 700_000_000),
        // PackStream tiny ints -16..-1 (neo4rs 0.8.0 read them as 240..255; patched in
        // vendor/neo4rs-0.8.0).
        "TDurationNeg" => du(0, 0, -1, 5),
        "TSmallNeg" => BoltType::from(-1i64),
        "TListSmallNeg" => l(vec![(-16i64).into(), (-1i64).into(), 0.into(), 127.into()]),
        "TPoint2D" => p2(7203, 1.5, -2.0),
        "TPoint3D" => p3(9157, 1.0, 2.0, 3.0),
        "TWgs84" => p2(4326, 13.4, 52.5),
        "TWgs843D" => p3(4979, 13.4, 52.5, 10.0),
        "TBytes" => BoltType::from(BYTES.to_vec()),
        "TListDate" => l(vec![date(2024, 1, 1), date(2024, 1, 2)]),
        "TListDuration" => l(vec![
            du(1, 0, 0, 0),
            du(0, 30, 0, 0),
            du(0, 0, 2_629_800, 0),
        ]),
        "TListPoint" => l(vec![p2(7203, 1.0, 2.0), p2(7203, 3.0, 4.0)]),
        "TListPoint3D" => l(vec![p3(9157, 1.0, 2.0, 3.0)]),
        "TListWgs84" => l(vec![p2(4326, 1.0, 2.0)]),
        "TMax" => BoltType::from(i64::MAX),
        "TMin" => BoltType::from(i64::MIN),
        "TNaN" => BoltType::from(f64::NAN),
        "TInf" => BoltType::from(f64::INFINITY),
        "TNegInf" => BoltType::from(f64::NEG_INFINITY),
        "TNegZero" => BoltType::from(-0.0f64),
        "TEmpty" => l(vec![]),
        "TListInt" => l(vec![1.into(), 2.into(), 3.into()]),
        "TListFloat" => l(vec![1.0f64.into(), (-0.0f64).into()]),
        "TListStr" => l(vec!["a".into(), "b".into()]),
        "TBool" => BoltType::from(true),
        "TStr" => BoltType::from("2024-02-29"),
        _ => return None,
    })
}

async fn run(graph: &neo4rs::Graph, cypher: &str) {
    graph
        .run(neo4rs::query(cypher).param("bytes", BYTES.to_vec()))
        .await
        .unwrap_or_else(|e| panic!("{cypher}: {e}"));
}

/// Every type, a node with no properties beside one with an empty list, a node with
/// three labels, parallel relationships, a keyed pair, a constraint and an index.
/// `reverse` creates everything in the opposite order.
async fn seed(graph: &neo4rs::Graph, reverse: bool) {
    let mut statements: Vec<String> = TYPES
        .iter()
        .map(|(label, expr)| format!("CREATE (:{label} {{v: {expr}}})"))
        .collect();
    statements.extend(
        [
            "CREATE (:Absent {name: 'x'})",
            "CREATE (:Empty {name: 'x', v: []})",
            "CREATE (:A:B:C {k: 1})",
            "CREATE (:Num {v: 2}), (:Day {d: date('2024-01-01')}), (:Zero {f: -0.0})",
            "CREATE (:Geo {p: point({x: 1.0, y: 2.0})}), (:Span {d: duration('P1M')})",
            "CREATE (:Zone {t: datetime('2024-07-02T03:04:05[Europe/Berlin]')}), (:Lst {name: 'l'})",
            "CREATE (a:P {id: 1}), (b:P {id: 2}) CREATE (a)-[:KNOWS {since: 2020}]->(b) \
             CREATE (a)-[:LIKES {w: 1}]->(b) CREATE (a)-[:LIKES {w: 1}]->(b)",
            "CREATE CONSTRAINT p_id IF NOT EXISTS FOR (p:P) REQUIRE p.id IS UNIQUE",
            "CREATE INDEX day_d IF NOT EXISTS FOR (n:Day) ON (n.d)",
        ]
        .map(String::from),
    );
    if reverse {
        statements.reverse();
    }
    for s in statements {
        run(graph, &s).await;
    }
}

async fn fp_with(target: &BoltTarget, parallelism: usize) -> Fingerprint {
    let graph = connect_for_reading(target, parallelism + 1)
        .await
        .expect("connect");
    let options = FingerprintOptions {
        parallelism,
        split_threshold: 20,
        ..Default::default()
    };
    fingerprint(&graph, &target.uri, &options, &WorkMeter::silent())
        .await
        .expect("fingerprint")
}

async fn fp(target: &BoltTarget) -> Fingerprint {
    fp_with(target, 3).await
}

async fn connect(target: &BoltTarget) -> neo4rs::Graph {
    connect_for_reading(target, 2).await.expect("connect")
}

fn single_node_digest(label: &str, value: BoltType) -> MultisetDigest {
    let mut props = BoltMap::new();
    props.put(BoltString::from("v"), value);
    let hash = node_hash(None, &[label], &props, &mut Vec::new()).expect("hash");
    let mut d = MultisetDigest::default();
    d.add(&hash);
    d
}

fn assert_same(a: &Fingerprint, b: &Fingerprint, what: &str) {
    let findings = compare(a, b);
    assert!(findings.is_match(), "{what}: {findings:#?}");
    assert_eq!(a.content, b.content, "{what}");
    assert_eq!(a.schema, b.schema, "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_neo4j_type_reaches_the_fingerprint_exactly_whatever_the_load_order() {
    let neo = shared(LTS).await;
    let target = neo.bolt_target();
    let graph = connect(&target).await;
    seed(&graph, false).await;
    let a = fp(&target).await;
    assert_eq!(a.engine, "neo4j");
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
    let mut problems = Vec::new();
    for (label, _) in TYPES {
        let group = a
            .node_groups
            .get(&format!(":{label}"))
            .unwrap_or_else(|| panic!("no group :{label} in {:?}", a.node_groups.keys()));
        assert_eq!(group.count, 1, ":{label}");
        if let Some(value) = expected(label) {
            if *group != single_node_digest(label, value.clone()) {
                problems.push(format!(":{label} did not decode as {value:?}"));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    // The three durations of TListDuration are one month, 30 days and 2,629,800 s: a
    // decoder that folds them into seconds would make its digest equal to this one.
    let folded = single_node_digest(
        "TListDuration",
        BoltType::List(BoltList::from(vec![
            BoltType::Duration(BoltDuration::new(
                0.into(),
                0.into(),
                2_629_800.into(),
                0.into()
            ));
            3
        ])),
    );
    assert_ne!(a.node_groups[":TListDuration"], folded);
    // An empty list is a property; an absent one is not.
    assert_eq!(
        a.node_property_keys["Empty"],
        BTreeSet::from(["name".to_owned(), "v".to_owned()])
    );
    assert_eq!(
        a.node_property_keys["Absent"],
        BTreeSet::from(["name".to_owned()])
    );
    assert_ne!(
        a.node_groups[":Empty"].sum, a.node_groups[":Absent"].sum,
        "an empty list hashed like an absent property"
    );
    assert_eq!(
        a.node_groups[":A:B:C"].count, 1,
        "a 3-label node counted once"
    );
    assert_eq!(
        a.relationship_groups["LIKES"].count, 2,
        "parallel relationships"
    );
    assert_eq!(a.triples["(:P)-[:LIKES]->(:P)"], 2);
    let SchemaInfo::Available {
        constraints,
        indexes,
    } = &a.schema
    else {
        panic!("schema not read from Neo4j: {:?}", a.schema);
    };
    assert!(
        constraints
            .iter()
            .any(|c| c.contains("UNIQUENESS NODE P(id)")),
        "{constraints:?}"
    );
    assert!(
        indexes.iter().any(|i| i.contains("RANGE NODE Day(d)")),
        "{indexes:?}"
    );

    // Another parallelism and no slicing: the same fingerprint.
    assert_same(&a, &fp_with(&target, 1).await, "one session");

    // The same data created in the opposite order.
    neo.clear().await;
    seed(&graph, true).await;
    assert_same(&a, &fp(&target).await, "reverse load order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_single_change_on_neo4j_is_caught_and_localised() {
    let neo = shared(LTS).await;
    let target = neo.bolt_target();
    let graph = connect(&target).await;
    // (change, the node groups or relationship types it must be reported under, or the
    // schema item)
    let cases: &[(&str, &[&str])] = &[
        ("MATCH (n:Num) SET n.v = 2.0", &[":Num"]),
        ("MATCH (n:Num) SET n.v = 3", &[":Num"]),
        ("MATCH (n:Day) SET n.d = '2024-01-01'", &[":Day"]),
        ("MATCH (n:Day) SET n.d = date('2024-01-02')", &[":Day"]),
        ("MATCH (n:Day) SET n.d = localdatetime('2024-01-01T00:00')", &[":Day"]),
        // Neo4j's SET skips a value equal (by `=`) to the stored one, and -0.0 = 0.0, so
        // the node is recreated instead.
        ("MATCH (n:Zero) DELETE n CREATE (:Zero {f: 0.0})", &[":Zero"]),
        ("MATCH (n:Geo) SET n.p = point({x: 1.0, y: 2.5})", &[":Geo"]),
        ("MATCH (n:Geo) SET n.p = point({x: 1.0, y: 2.0, z: 0.0})", &[":Geo"]),
        ("MATCH (n:Geo) SET n.p = point({longitude: 1.0, latitude: 2.0})", &[":Geo"]),
        ("MATCH (n:Span) SET n.d = duration('P30D')", &[":Span"]),
        ("MATCH (n:Span) SET n.d = duration('PT2629800S')", &[":Span"]),
        ("MATCH (n:Zone) SET n.t = datetime('2024-07-02T03:04:05[Europe/Paris]')", &[":Zone"]),
        ("MATCH (n:Zone) SET n.t = datetime('2024-07-02T03:04:05+02:00')", &[":Zone"]),
        ("MATCH (n:TTime) SET n.v = time('11:34:56.123456789Z')", &[":TTime"]),
        ("MATCH (n:TBytes) SET n.v = $bytes + [1]", &[":TBytes"]),
        ("MATCH (n:TListInt) SET n.v = [1, 3, 2]", &[":TListInt"]),
        ("MATCH (n:TMax) SET n.v = 9223372036854775806", &[":TMax"]),
        ("MATCH (n:Lst) SET n.l = []", &[":Lst"]),
        ("MATCH (n:Num) SET n:Extra", &[":Num", ":Extra:Num"]),
        (
            "MATCH (a:P {id: 1})-[r:KNOWS]->(b:P {id: 2}) DELETE r CREATE (b)-[:KNOWS {since: 2020}]->(a)",
            &["KNOWS"],
        ),
        (
            "MATCH (:P {id: 1})-[r:LIKES]->(:P {id: 2}) WITH r LIMIT 1 DELETE r",
            &["LIKES"],
        ),
        ("MATCH (n:P {id: 2}) SET n.id = 3", &[":P", "KNOWS", "LIKES"]),
        // Dropping a uniqueness constraint drops its backing index too.
        (
            "DROP CONSTRAINT p_id",
            &["constraint UNIQUENESS NODE P(id)", "index RANGE NODE P(id)"],
        ),
        ("DROP INDEX day_d", &["index RANGE NODE Day(d)"]),
    ];
    neo.clear().await;
    seed(&graph, false).await;
    let base = fp(&target).await;
    // Every case is tried; the test reports all that were missed or mislocated at once.
    let mut problems = Vec::new();
    for (change, subjects) in cases {
        // A data change starts from the seeded data on the seeded schema, kept: dropping
        // and recreating the constraint and index every time invalidated every cached
        // query plan, and re-planning the 53 digest queries took 4-5 s a case (175 s in
        // all). Only the schema changes start from an empty database.
        if change.starts_with("DROP ") {
            neo.clear().await;
        } else {
            run(&graph, "MATCH (n) DETACH DELETE n").await;
        }
        seed(&graph, false).await;
        run(&graph, change).await;
        let changed = fp(&target).await;
        let findings = compare(&base, &changed);
        if findings.is_match() {
            problems.push(format!("{change}: not caught"));
            continue;
        }
        let located: BTreeSet<String> = findings
            .findings
            .iter()
            .filter(|f| {
                matches!(
                    f.kind,
                    FindingKind::NodeCount
                        | FindingKind::NodeContent
                        | FindingKind::RelationshipCount
                        | FindingKind::RelationshipContent
                        | FindingKind::Schema
                )
            })
            .map(|f| f.subject.clone())
            .collect();
        let want: BTreeSet<String> = subjects.iter().map(|s| s.to_string()).collect();
        if located != want {
            problems.push(format!(
                "{change}: reported under {located:?}, want {want:?}"
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutover_digest_agrees_with_the_library_and_the_password_stays_out_of_argv() {
    let neo = shared(LTS).await;
    let target = neo.bolt_target();
    let graph = connect(&target).await;
    seed(&graph, false).await;
    let library = fp(&target).await;
    let password = target.password.expose_secret().to_owned();

    let digest = |pw: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args([
                "digest",
                "--uri",
                &target.uri,
                "--user",
                "neo4j",
                "--password-env",
                "NEO4J_TEST_PW",
                "--output",
                "json",
            ])
            .env("NEO4J_TEST_PW", pw)
            .output()
            .expect("run cutover digest")
    };
    let out = digest(&password);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Fingerprint = serde_json::from_slice(&out.stdout).expect("fingerprint JSON");
    assert_eq!(cli.content, library.content);
    assert_eq!(cli.schema, library.schema);
    assert!(compare(&library, &cli).is_match());

    let wrong = digest("not-the-password");
    assert_eq!(wrong.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("authentication"), "{stderr}");
    assert!(!stderr.contains("not-the-password"), "{stderr}");

    // The server runs with an explicit heap and without its password in any argv.
    let server = neo.server();
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", server.pid().expect("pid")))
        .expect("server cmdline");
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(cmdline.contains("CommunityEntryPoint"), "{cmdline}");
    assert!(cmdline.contains("-Xmx262144k"), "{cmdline}");
    assert!(!cmdline.contains(&password));
    assert!(server
        .argv_log()
        .iter()
        .flatten()
        .all(|arg| !arg.contains(&password)));
    assert!(server
        .argv_log()
        .iter()
        .any(|argv| argv.iter().any(|a| a.starts_with('@'))));
}

/// The Bolt version a server picks from `neo4rs` 0.8's proposals (4.1, 4.0), by a raw
/// handshake: `(major, minor)`.
async fn negotiated_bolt(port: u16) -> (u8, u8) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut hello = vec![0x60, 0x60, 0xB0, 0x17];
    for v in [0x0104u32, 0x0004, 0, 0] {
        hello.extend_from_slice(&v.to_be_bytes());
    }
    s.write_all(&hello).await.expect("handshake");
    let mut answer = [0u8; 4];
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        s.read_exact(&mut answer),
    )
    .await
    .expect("handshake answer in time")
    .expect("handshake answer");
    (answer[3], answer[2])
}

/// The check `db.restore` runs on a downloaded dump before loading it
/// ([`admin::check`] of the artifact, the command `load-from-s3.sh` renders), with the
/// real `neo4j-admin`: it passes `good` (a directory holding this stopped server's
/// `neo4j.dump`), then the server's store is damaged (one node record made to point at a
/// relationship that does not exist), dumped again, and the check must refuse that dump
/// with a report.
async fn artifact_checks(server: &mut Neo4jServer, good: &std::path::Path) {
    let run_check = |dir: &std::path::Path| {
        let (temp, reports) = (dir.join("check-temp"), dir.join("check-reports"));
        std::fs::create_dir_all(&temp).unwrap();
        let argv = admin::check(
            "neo4j",
            CheckSource::Artifact {
                dir: dir.to_str().unwrap(),
                temp: temp.to_str().unwrap(),
            },
            reports.to_str().unwrap(),
        )
        .unwrap()
        .argv();
        (argv, reports)
    };
    let (argv, _) = run_check(good);
    let out = server
        .admin(&argv.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    assert!(
        out.status.success(),
        "the check refused a sound dump: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    break_a_node_record(server.home());
    let bad = good.join("inconsistent");
    server.dump(&bad).await;
    let (argv, reports) = run_check(&bad);
    let out = server
        .admin(&argv.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    assert!(
        !out.status.success(),
        "the check passed an inconsistent dump: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let written: Vec<_> = std::fs::read_dir(&reports)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        written
            .iter()
            .any(|n| n.to_string_lossy().starts_with("inconsistencies-")),
        "no inconsistency report in {}: {written:?}",
        reports.display()
    );
}

/// Makes node 1 of the stopped server's `neo4j` store point at relationship 0x7ffffff0,
/// which is not in use. Node records are 15 bytes in the record format 5.26 Community
/// writes: an in-use/high-bits header byte, then the first relationship's id.
fn break_a_node_record(home: &std::path::Path) {
    let path = home.join("data/databases/neo4j/neostore.nodestore.db");
    let mut bytes = std::fs::read(&path).unwrap();
    let record = 15;
    assert!(bytes.len() >= 2 * record, "{} is too short", path.display());
    let header = bytes[record];
    assert_eq!(header & 1, 1, "node 1 is not in use in {}", path.display());
    bytes[record] = header & 0xf1;
    bytes[record + 1..record + 5].copy_from_slice(&0x7fff_fff0u32.to_be_bytes());
    std::fs::write(&path, bytes).unwrap();
}

/// Loads `dumps` (holding `neo4j.dump`) into a new server of `version` and starts it.
async fn loaded(version: &str, dumps: &std::path::Path) -> Neo4jServer {
    let mut server = Neo4jServer::create(version).await;
    let out = server.load(dumps).await;
    assert!(
        out.status.success(),
        "neo4j-admin database load ({version}) failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    server.start_dbms().await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_and_load_and_the_upgrade_to_2026_keep_the_fingerprint() {
    let mut blue = Neo4jServer::start(LTS).await;
    assert_eq!(
        negotiated_bolt(blue.port()).await,
        (4, 1),
        "Bolt with {LTS}"
    );
    seed(&connect(&blue.bolt_target()).await, false).await;
    let before = fp(&blue.bolt_target()).await;
    blue.stop_dbms().await;
    let dumps = blue.dumps();
    let dump = blue.dump(&dumps).await;
    assert!(dump.is_file());

    // 5.26 → 5.26 and 5.26 → 2026.08, in parallel with the artifact checks.
    let (same, next, ()) = tokio::join!(
        loaded(LTS, &dumps),
        loaded(NEXT, &dumps),
        artifact_checks(&mut blue, &dumps)
    );
    assert_same(
        &before,
        &fp(&same.bolt_target()).await,
        "dump → load on 5.26",
    );
    assert_eq!(
        negotiated_bolt(next.port()).await,
        (4, 1),
        "Bolt with {NEXT}"
    );
    let upgraded = fp(&next.bolt_target()).await;
    assert_same(&before, &upgraded, "dump on 5.26 → load on 2026.08");
    drop(same);

    // A 2026.08 dump of this (not store-upgraded) database: 5.26's own `load` does NOT
    // refuse it (measured: exit 0). Only cutover's version check (src/db/neo4j/version.rs)
    // stands between a newer backup and an older server; this test fails when that
    // changes, so the docs can be updated.
    let mut next = next;
    next.stop_dbms().await;
    let newer = next.dumps().join("from-2026");
    next.dump(&newer).await;
    let mut old = Neo4jServer::create(LTS).await;
    let out = old.load(&newer).await;
    assert!(
        out.status.success(),
        "5.26 refused a 2026.08 dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The shipped environment's own application queries (environments/local.toml,
/// `same_answers` of ledger) on a real Neo4j: recorded on one load of the ledger, replayed
/// on a second load in the reverse storage order (same answers: unordered queries compare
/// as multisets), then one credex's outstanding amount changes and exactly one answer
/// differs: the balance of that account, named with its parameters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apps_queries_answer_the_same_whatever_the_storage_order_and_one_changed_balance_is_caught(
) {
    use cutover::integrity::answers::{answer_differences, record_answers, replay_answers};
    let env = cutover::config::environment::Environment::load(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("environments/local.toml")
            .to_str()
            .unwrap(),
    )
    .unwrap();
    let ledger = &env.databases[&cutover::ids::DatabaseName::new("ledger")];
    let queries = ledger.same_answers.clone();
    assert_eq!(queries.len(), 4, "{queries:?}");

    let neo = shared(LTS).await;
    let target = neo.bolt_target();
    let load = |reverse: bool| {
        let target = target.clone();
        async move {
            let graph = connect(&target).await;
            let spec = cutover::ledger::LedgerSpec {
                reverse,
                ..cutover::ledger::LedgerSpec::new(40, 7)
            };
            cutover::ledger::load_ledger(&graph, &spec, &WorkMeter::silent())
                .await
                .unwrap();
            graph
        }
    };
    let blue_graph = load(false).await;
    let blue = record_answers(&blue_graph, &target.uri, &queries)
        .await
        .unwrap();
    for q in &blue {
        assert_eq!(q.error, None, "{}", q.name);
        for a in &q.answers {
            let rows = a
                .rows
                .as_ref()
                .unwrap_or_else(|e| panic!("{}: {e}", q.name));
            if q.name != "MTQ queue" {
                assert!(!rows.is_empty(), "{}: no rows", q.name);
            }
        }
    }
    let balances = blue
        .iter()
        .find(|q| q.name == "balances per account")
        .unwrap();
    assert_eq!(balances.answers.len(), 5, "one answer per sampled account");

    neo.clear().await;
    let green_graph = load(true).await;
    let green = replay_answers(&green_graph, &target.uri, &blue)
        .await
        .unwrap();
    assert_eq!(
        answer_differences(&blue, &green),
        [],
        "reverse storage order"
    );

    let account = balances.answers[0].params["account"]
        .as_str()
        .unwrap()
        .to_owned();
    green_graph
        .run(
            neo4rs::query(
                "MATCH (:Account {accountID: $account})-[]-(c:Credex) WITH c LIMIT 1 \
                 SET c.OutstandingAmount = c.OutstandingAmount + 1.0",
            )
            .param("account", account.as_str()),
        )
        .await
        .unwrap();
    let changed = replay_answers(&green_graph, &target.uri, &blue)
        .await
        .unwrap();
    let differences = answer_differences(&blue, &changed);
    assert_eq!(differences.len(), 1, "{differences:?}");
    let d = &differences[0];
    assert_eq!(d.query, "balances per account");
    assert_eq!(d.params["account"], account.as_str());
    // The changed credex is on each of its relationships to the account (OWES, SECURES…):
    // as many rows only on blue as only on green, each with `outstanding` one more.
    let rows = |side: &str| -> Vec<serde_json::Value> {
        let list = side.split_once(" only here ").unwrap().1;
        serde_json::from_str(list).unwrap_or_else(|e| panic!("{side}: {e}"))
    };
    let by_side = |mut v: Vec<serde_json::Value>| {
        v.sort_by_key(|r| r["side"].to_string());
        v
    };
    let (only_blue, only_green) = (by_side(rows(&d.blue)), by_side(rows(&d.green)));
    assert!(
        !only_blue.is_empty() && only_blue.len() == only_green.len(),
        "{d}"
    );
    for (b, g) in only_blue.iter().zip(&only_green) {
        let outstanding = |r: &serde_json::Value| r["outstanding"].as_f64().unwrap();
        assert!((outstanding(g) - outstanding(b) - 1.0).abs() < 1e-6, "{d}");
        assert_eq!(b["side"], g["side"], "{d}");
    }
}
