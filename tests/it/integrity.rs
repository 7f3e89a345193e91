//! Integrity against a real ArcadeDB server: equal data gives equal digests whatever the
//! load order or write path; every single-value change moves the right sub-digest and is
//! reported by `compare` (and found by `diff`).

use crate::harness::ArcadeHarness;
use cutover::db::arcadedb::free_loopback_port;
use cutover::db::bolt::BoltTarget;
use cutover::integrity::{
    self, compare, connect_for_reading, diff, fingerprint, DiffOptions, FindingKind, Fingerprint,
    FingerprintOptions, IdentityKey, Invariant, SchemaInfo, Side,
};
use cutover::ledger::{load_ledger, LedgerSpec};
use cutover::progress::WorkMeter;
use neo4rs::Graph;
use secrecy::SecretString;
use std::time::Duration;

/// One ArcadeDB server (from the shared harness) with helpers to load ledgers.
pub struct Arcade {
    pub harness: ArcadeHarness,
}

impl Arcade {
    pub async fn start() -> Arcade {
        Arcade {
            harness: ArcadeHarness::start(&[]).await,
        }
    }

    pub async fn database(&self, name: &str) -> (BoltTarget, Graph) {
        self.harness
            .server()
            .http()
            .ensure_database(name)
            .await
            .expect("create database");
        let target = self.harness.bolt_target(name);
        let graph = connect_for_reading(&target, 4).await.expect("connect");
        (target, graph)
    }

    pub async fn ledger(&self, name: &str, spec: &LedgerSpec) -> (BoltTarget, Graph) {
        let (t, g) = self.database(name).await;
        load_ledger(&g, spec, &WorkMeter::silent())
            .await
            .expect("load ledger");
        (t, g)
    }
}

fn keys() -> Vec<IdentityKey> {
    [
        "Member.memberID",
        "Account.accountID",
        "Credex.credexID",
        "Daynode.Date",
        "LoopAnchor.loopID",
    ]
    .iter()
    .map(|k| k.parse().unwrap())
    .collect()
}

async fn fp(target: &BoltTarget, graph: &Graph, keys: Vec<IdentityKey>) -> Fingerprint {
    let options = FingerprintOptions {
        identity_keys: keys,
        parallelism: 3,
        split_threshold: 150,
        ..Default::default()
    };
    fingerprint(graph, &target.uri, &options, &WorkMeter::silent())
        .await
        .expect("fingerprint")
}

async fn run(graph: &Graph, cypher: &str) {
    graph
        .run(neo4rs::query(cypher))
        .await
        .unwrap_or_else(|e| panic!("{cypher}: {e}"));
}

const MEMBERS: u64 = 24;

/// Run on every database of the change test: one node without a unique key.
const SETUP: &str = "CREATE (:Avatar {url: 'https://cdn.example/a.png'})";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_data_in_different_orders_and_write_paths_gives_equal_digests() {
    let arcade = Arcade::start().await;
    let spec = LedgerSpec::new(MEMBERS, 11);
    let (ta, ga) = arcade.ledger("forward", &spec).await;
    let reverse = LedgerSpec {
        reverse: true,
        batch_size: 7,
        ..spec.clone()
    };
    let (tb, gb) = arcade.ledger("reverse", &reverse).await;
    let one = LedgerSpec {
        one_by_one: true,
        ..spec.clone()
    };
    let (tc, gc) = arcade.ledger("onebyone", &one).await;

    // A backup/restore round trip is the migration's own write path.
    arcade
        .harness
        .server()
        .http()
        .database_command("forward", "sql", "BACKUP DATABASE", Duration::from_secs(60))
        .await
        .expect("backup");

    for with_keys in [false, true] {
        let k = if with_keys { keys() } else { vec![] };
        let a = fp(&ta, &ga, k.clone()).await;
        let b = fp(&tb, &gb, k.clone()).await;
        let c = fp(&tc, &gc, k.clone()).await;
        let (n, r) = spec.expected_counts();
        assert_eq!((a.nodes.count, a.relationships.count), (n, r));
        assert_eq!(
            a.content,
            b.content,
            "reverse order: {:#?}",
            compare(&a, &b)
        );
        assert_eq!(a.content, c.content, "one by one: {:#?}", compare(&a, &c));
        assert!(compare(&a, &b).is_match());
        assert!(a.warnings.is_empty(), "{:?}", a.warnings);
        assert_eq!(a.engine, "arcadedb");
        assert!(matches!(a.schema, SchemaInfo::NotAvailable { .. }));
    }

    // A different parallelism and no splitting gives the same digest.
    let serial = fingerprint(
        &ga,
        &ta.uri,
        &FingerprintOptions {
            parallelism: 1,
            split_threshold: 0,
            ..Default::default()
        },
        &WorkMeter::silent(),
    )
    .await
    .unwrap();
    assert_eq!(serial.content, fp(&ta, &ga, vec![]).await.content);

    // A different seed is different data.
    let (td, gd) = arcade.ledger("other", &LedgerSpec::new(MEMBERS, 12)).await;
    assert_ne!(
        fp(&ta, &ga, vec![]).await.content,
        fp(&td, &gd, vec![]).await.content
    );
}

/// The blocking findings as (kind, subject) pairs.
fn blocking(f: &integrity::Findings) -> Vec<(FindingKind, String)> {
    f.findings
        .iter()
        .filter(|x| x.blocking)
        .map(|x| (x.kind, x.subject.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_single_value_change_moves_the_right_sub_digest() {
    let arcade = Arcade::start().await;
    let spec = LedgerSpec::new(MEMBERS, 5);
    let (tb, gb) = arcade.ledger("base", &spec).await;
    run(&gb, SETUP).await;
    let base = fp(&tb, &gb, keys()).await;
    let base_unkeyed = fp(&tb, &gb, vec![]).await;

    struct Case {
        db: &'static str,
        cypher: &'static [&'static str],
        expect: Vec<(FindingKind, &'static str)>,
    }
    let cases = vec![
        Case {
            db: "prop",
            cypher: &["MATCH (m:Member {memberHandle: 'member3'}) SET m.firstname = 'Changed'"],
            expect: vec![(FindingKind::NodeContent, ":Member")],
        },
        Case {
            db: "floatprop",
            // Same number, other type: 1 vs 1.0.
            cypher: &["MATCH (d:Daynode) WHERE d.Active = true SET d.CXX = 1"],
            expect: vec![(FindingKind::NodeContent, ":Daynode")],
        },
        Case {
            db: "label",
            cypher: &["MATCH (a:Account {accountHandle: 'acct2'}) SET a:Frozen"],
            expect: vec![
                (FindingKind::NodeCount, ":Account"),
                (FindingKind::NodeCount, ":Account:Frozen"),
                (FindingKind::Triple, "(:Account)-[:OFFERS]->(:Credex)"),
            ],
        },
        Case {
            db: "reltype",
            cypher: &[
                "MATCH (m:Member {memberHandle: 'member4'})-[r:AUTHORIZED_FOR]->(a:Account) \
                 CREATE (m)-[:SEND_OFFERS_TO]->(a) DELETE r",
            ],
            expect: vec![
                (FindingKind::RelationshipCount, "AUTHORIZED_FOR"),
                (FindingKind::RelationshipCount, "SEND_OFFERS_TO"),
                (FindingKind::Triple, "(:Member)-[:AUTHORIZED_FOR]->(:Account)"),
                (FindingKind::Triple, "(:Member)-[:SEND_OFFERS_TO]->(:Account)"),
            ],
        },
        Case {
            db: "endpoint",
            cypher: &[
                "MATCH (m:Member {memberHandle: 'member4'})-[r:OWNS]->(a:Account), (n:Member {memberHandle: 'member5'}) \
                 CREATE (n)-[:OWNS]->(a) DELETE r",
            ],
            expect: vec![(FindingKind::RelationshipContent, "OWNS")],
        },
        Case {
            db: "duplicate",
            // Avatar has no unique key: an exact copy of a node is possible.
            cypher: &[SETUP],
            expect: vec![(FindingKind::NodeCount, ":Avatar")],
        },
    ];

    for case in cases {
        let (t, g) = arcade.ledger(case.db, &spec).await;
        run(&g, SETUP).await;
        for c in case.cypher {
            run(&g, c).await;
        }
        let changed = fp(&t, &g, keys()).await;
        let findings = compare(&base, &changed);
        let mut got = blocking(&findings);
        // Triples only follow from the main change; check the ones we expect are present
        // and nothing outside the expected groups changed.
        let mut want: Vec<(FindingKind, String)> = case
            .expect
            .iter()
            .map(|(k, s)| (*k, s.to_string()))
            .collect();
        got.sort();
        want.sort();
        if case.db == "label" {
            // Every relationship of the relabelled account moves to a new triple.
            for w in &want {
                if w.0 != FindingKind::Triple {
                    assert!(got.contains(w), "{}: missing {w:?} in {got:?}", case.db);
                }
            }
            assert!(
                got.iter().all(|(k, s)| matches!(
                    k,
                    FindingKind::NodeCount | FindingKind::Triple | FindingKind::NodePropertyKeys
                ) && (s.contains("Account") || s.contains("Frozen"))),
                "{}: {got:?}",
                case.db
            );
        } else {
            assert_eq!(got, want, "{}: {findings:#?}", case.db);
        }
        assert_ne!(base.content, changed.content, "{}", case.db);

        // Without keys the change is still detected (endpoint content hashes).
        let unkeyed = fp(&t, &g, vec![]).await;
        assert_ne!(base_unkeyed.content, unkeyed.content, "{} unkeyed", case.db);

        // Diff mode finds the records themselves.
        let report = diff(
            &gb,
            &tb.uri,
            &g,
            &t.uri,
            &findings,
            &FingerprintOptions {
                identity_keys: keys(),
                ..Default::default()
            },
            &DiffOptions::default(),
        )
        .await
        .expect("diff");
        match case.db {
            "prop" => {
                let src: Vec<_> = report
                    .records
                    .iter()
                    .filter(|r| r.side == Side::OnlyInSource)
                    .collect();
                let tgt: Vec<_> = report
                    .records
                    .iter()
                    .filter(|r| r.side == Side::OnlyInTarget)
                    .collect();
                assert_eq!((src.len(), tgt.len()), (1, 1), "{report:#?}");
                assert_eq!(src[0].identity, tgt[0].identity);
                assert!(src[0].identity.starts_with("Member.memberID="));
                assert_eq!(tgt[0].record["properties"]["firstname"], "Changed");
            }
            "duplicate" => {
                let tgt: Vec<_> = report
                    .records
                    .iter()
                    .filter(|r| r.side == Side::OnlyInTarget)
                    .collect();
                assert_eq!(tgt.len(), 1, "{report:#?}");
                assert_eq!(tgt[0].extra_copies, 1);
                assert_eq!(report.totals[":Avatar"], (0, 1));
            }
            "endpoint" => {
                assert_eq!(report.totals["OWNS"], (1, 1), "{report:#?}");
                let tgt = report
                    .records
                    .iter()
                    .find(|r| r.side == Side::OnlyInTarget)
                    .unwrap();
                assert!(
                    tgt.record["start"]
                        .as_str()
                        .unwrap()
                        .starts_with("Member.memberID="),
                    "{tgt:?}"
                );
            }
            _ => assert!(!report.records.is_empty(), "{}: {report:#?}", case.db),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invariants_run_on_both_sides_and_connection_errors_are_named() {
    let arcade = Arcade::start().await;
    let spec = LedgerSpec::new(6, 3);
    let (ta, ga) = arcade.ledger("blue", &spec).await;
    let (tb, gb) = arcade.ledger("green", &spec).await;
    run(
        &gb,
        "MATCH (d:Daynode) WHERE d.Active = true SET d.Active = false",
    )
    .await;

    let mut invariants = integrity::ledger_invariants();
    invariants.push(Invariant {
        name: "broken query".into(),
        cypher: "THIS IS NOT CYPHER".into(),
        expect: serde_json::json!(0),
    });
    invariants.push(Invariant {
        name: "members".into(),
        cypher: "MATCH (m:Member) RETURN count(m) AS n".into(),
        expect: serde_json::json!(6),
    });
    let a = integrity::run_invariants(&ga, &invariants).await.unwrap();
    let b = integrity::run_invariants(&gb, &invariants).await.unwrap();
    assert!(a[0].holds(), "{:?}", a[0]);
    assert!(!b[0].holds());
    assert!(a[1].actual.is_err());
    assert!(a[2].holds() && b[2].holds());

    let fa = fp(&ta, &ga, vec![]).await;
    let fb = fp(&tb, &gb, vec![]).await;
    let mut findings = compare(&fa, &fb);
    findings.add_invariants(&a, &b);
    let got = blocking(&findings);
    assert!(
        got.contains(&(FindingKind::NodeContent, ":Daynode".into())),
        "{got:?}"
    );
    assert!(
        got.contains(&(FindingKind::Invariant, "exactly one active Daynode".into())),
        "{got:?}"
    );
    assert!(
        got.contains(&(FindingKind::Invariant, "broken query".into())),
        "{got:?}"
    );
    assert!(
        !got.contains(&(FindingKind::Invariant, "members".into())),
        "{got:?}"
    );

    // The failures an operator meets first are named.
    let wrong_pw = BoltTarget {
        password: SecretString::from("not-the-password".to_owned()),
        ..ta.clone()
    };
    let e = integrity::fingerprint_target(
        &wrong_pw,
        &FingerprintOptions::default(),
        &WorkMeter::silent(),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("authentication failed"), "{e}");
    let no_db = BoltTarget {
        database: Some("nope".into()),
        ..ta.clone()
    };
    let e =
        integrity::fingerprint_target(&no_db, &FingerprintOptions::default(), &WorkMeter::silent())
            .await
            .unwrap_err();
    assert!(e.to_string().contains("unknown database"), "{e}");
    let refused = BoltTarget {
        uri: format!("bolt://127.0.0.1:{}", free_loopback_port().unwrap()),
        ..ta.clone()
    };
    let e = integrity::fingerprint_target(
        &refused,
        &FingerprintOptions::default(),
        &WorkMeter::silent(),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("unavailable"), "{e}");
}
