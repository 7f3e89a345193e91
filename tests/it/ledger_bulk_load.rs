//! The bulk ledger loader (Cypher `UNWIND` batches through ArcadeDB's HTTP command API,
//! what `make bench` loads with) writes exactly the graph the Bolt loader writes: equal
//! fingerprints (content digest, counts, triples, property keys), with and without
//! identity keys. The check can fail: a single date stored as its ISO string moves the
//! digest.

use crate::integrity::Arcade;
use cutover::integrity::{compare, fingerprint, Fingerprint, FingerprintOptions, IdentityKey};
use cutover::ledger::{load_ledger_into, LedgerSink, LedgerSpec, DEFAULT_BATCH_SIZE};
use cutover::progress::WorkMeter;
use neo4rs::Graph;
use std::time::Duration;

/// Enough members for every credex state, secured credexes and loop anchors.
const MEMBERS: u64 = 40;

async fn read(uri: &str, graph: &Graph, keyed: bool) -> Fingerprint {
    let identity_keys: Vec<IdentityKey> = if keyed {
        ["Member.memberID", "Account.accountID", "Credex.credexID"]
            .iter()
            .map(|k| k.parse().unwrap())
            .collect()
    } else {
        Vec::new()
    };
    let options = FingerprintOptions {
        identity_keys,
        parallelism: 2,
        ..Default::default()
    };
    fingerprint(graph, uri, &options, &WorkMeter::silent())
        .await
        .expect("fingerprint")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_bulk_load_gives_the_same_graph_as_the_bolt_loader() {
    let arcade = Arcade::start().await;
    let spec = LedgerSpec {
        batch_size: DEFAULT_BATCH_SIZE,
        ..LedgerSpec::new(MEMBERS, 5)
    };
    let (bolt_target, bolt) = arcade.ledger("bolt", &spec).await;
    let http = arcade.harness.server().http();

    // 7-row batches cross batch boundaries in every kind; 2,000 rows is what the bench
    // uses (here one batch per kind).
    for (database, batch_size) in [("bulk7", 7), ("bulk2000", 2_000)] {
        let (target, graph) = arcade.database(database).await;
        let sink = LedgerSink::ArcadeHttp { http, database };
        let bulk_spec = LedgerSpec {
            batch_size,
            ..spec.clone()
        };
        let stats = load_ledger_into(sink, &bulk_spec, &WorkMeter::silent())
            .await
            .unwrap_or_else(|e| panic!("bulk load into {database}: {e}"));
        assert_eq!((stats.nodes, stats.relationships), spec.expected_counts());
        for keyed in [false, true] {
            let a = read(&bolt_target.uri, &bolt, keyed).await;
            let b = read(&target.uri, &graph, keyed).await;
            assert_eq!(
                (b.nodes.count, b.relationships.count),
                spec.expected_counts(),
                "{database}"
            );
            assert_eq!(
                a.content,
                b.content,
                "{database} (keys: {keyed}): {:#?}",
                compare(&a, &b)
            );
            assert!(compare(&a, &b).is_match(), "{database}");
            assert_eq!(a.triples, b.triples, "{database}");
            assert_eq!(a.node_property_keys, b.node_property_keys, "{database}");
            assert_eq!(
                a.relationship_property_keys, b.relationship_property_keys,
                "{database}"
            );
        }
    }

    // A type slip would be caught: one Daynode's date stored as the same text.
    http.database_command(
        "bulk7",
        "cypher",
        "MATCH (d:Daynode) WITH d ORDER BY d.Date LIMIT 1 SET d.Date = toString(d.Date)",
        Duration::from_secs(60),
    )
    .await
    .expect("change one date to a string");
    let (target, graph) = arcade.database("bulk7").await;
    let a = read(&bolt_target.uri, &bolt, false).await;
    let b = read(&target.uri, &graph, false).await;
    assert_ne!(a.content, b.content);
    assert_eq!(
        a.node_groups[":Daynode"].count,
        b.node_groups[":Daynode"].count
    );
    assert_ne!(a.node_groups[":Daynode"].sum, b.node_groups[":Daynode"].sum);
    assert!(!compare(&a, &b).is_match());
}
