//! The generated ledger against a real ArcadeDB: counts as specified, the model's
//! invariants hold, and a live writer can commit small transactions.

use crate::integrity::Arcade;
use cutover::integrity::{self, fingerprint, FingerprintOptions};
use cutover::ledger::{commit_credex, load_search_space, LedgerSpec};
use cutover::progress::WorkMeter;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_ledger_has_the_specified_shape_and_accepts_live_writes() {
    let arcade = Arcade::start().await;
    let spec = LedgerSpec::new(40, 9);
    let (t, g) = arcade.ledger("ledger", &spec).await;
    let fp = fingerprint(
        &g,
        &t.uri,
        &FingerprintOptions::default(),
        &WorkMeter::silent(),
    )
    .await
    .unwrap();
    let (nodes, rels) = spec.expected_counts();
    let counts = |m: &std::collections::BTreeMap<String, cutover::integrity::MultisetDigest>| {
        m.iter()
            .map(|(k, v)| format!("{k}={}", v.count))
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        (fp.nodes.count, fp.relationships.count),
        (nodes, rels),
        "{} / {}",
        counts(&fp.node_groups),
        counts(&fp.relationship_groups)
    );
    for label in [":Member", ":Account", ":Credex", ":Daynode", ":LoopAnchor"] {
        assert!(
            fp.node_groups.contains_key(label),
            "{label} missing: {:?}",
            fp.node_groups.keys()
        );
    }
    for t in [
        "OWNS",
        "AUTHORIZED_FOR",
        "OWES",
        "OFFERS",
        "CREATED_ON",
        "NEXT_DAY",
        "CLEARED",
        "REDEEMED",
        "SECURES",
    ] {
        assert!(
            fp.relationship_groups.contains_key(t),
            "{t} missing: {:?}",
            fp.relationship_groups.keys()
        );
    }
    assert_eq!(
        fp.relationship_groups["NEXT_DAY"].count,
        u64::from(spec.days) - 1
    );
    assert!(fp.node_property_keys["Member"].contains("memberID"));

    let outcomes = integrity::run_invariants(&g, &integrity::ledger_invariants())
        .await
        .unwrap();
    assert!(outcomes.iter().all(|o| o.holds()), "{outcomes:?}");

    // Unique constraints are enforced: a second member with the same memberID is refused.
    let dup = g
        .run(neo4rs::query("CREATE (m:Member {memberID: $id})").param("id", spec.member_id(0)))
        .await;
    assert!(dup.is_err(), "duplicate memberID accepted");

    for n in 0..3 {
        commit_credex(&g, &spec.live_transaction(n))
            .await
            .expect("live credex");
    }
    let after = fingerprint(
        &g,
        &t.uri,
        &FingerprintOptions::default(),
        &WorkMeter::silent(),
    )
    .await
    .unwrap();
    assert_eq!(
        after.node_groups[":Credex"].count,
        fp.node_groups[":Credex"].count + 3
    );
    assert_eq!(
        after.relationship_groups["OWES"].count,
        fp.relationship_groups["OWES"].count + 6
    );

    // A credex to an account that does not exist creates nothing and says so.
    let mut bad = spec.live_transaction(99);
    bad.counterparty_account_id = "no-such-account".into();
    assert!(commit_credex(&g, &bad).await.is_err());

    let (ts, gs) = arcade.database("search").await;
    let stats = load_search_space(&gs, &spec, &WorkMeter::silent())
        .await
        .unwrap();
    let sfp = fingerprint(
        &gs,
        &ts.uri,
        &FingerprintOptions::default(),
        &WorkMeter::silent(),
    )
    .await
    .unwrap();
    assert_eq!(
        (sfp.nodes.count, sfp.relationships.count),
        (stats.nodes, stats.relationships)
    );
    assert!(
        sfp.node_groups.contains_key(":SearchAnchor")
            && sfp.relationship_groups.contains_key("USD_SECURED")
    );
}
