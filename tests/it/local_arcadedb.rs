//! The `arcadedb` engine against real servers of the local provider: freeze refuses
//! writes and serves reads; backup of frozen blue → restore into green gives the same
//! graph (counts and fingerprint); a corrupt artifact is refused before loading; the
//! application user's password is created and rotated.

use super::local_provider::LocalEnv;
use cutover::db::arcadedb::ArcadeEngine;
use cutover::db::bolt::BoltTarget;
use cutover::db::{DatabaseEngine, DbHandle};
use cutover::failure::ErrorClass;
use cutover::ids::ObjectKey;
use cutover::integrity::{fingerprint_target, FingerprintOptions};
use cutover::progress::WorkMeter;
use cutover::providers::{Instance, ObjectStore};
use secrecy::SecretString;
use std::time::Instant;

async fn handle(env: &LocalEnv, instance: &Instance, database: &str) -> DbHandle {
    DbHandle {
        instance: instance.clone(),
        database: database.into(),
        admin_user: "root".into(),
        admin_password: env
            .provider
            .compute
            .root_password(&instance.id)
            .await
            .unwrap(),
    }
}

async fn run(
    target: &BoltTarget,
    cypher: &str,
) -> Result<Vec<neo4rs::Row>, cutover::failure::Failure> {
    let graph = target.connect(1).await?;
    let mut rows = graph
        .execute(neo4rs::query(cypher))
        .await
        .map_err(|e| cutover::db::bolt::classify_bolt_error(&target.uri, &e))?;
    let mut out = Vec::new();
    while let Some(row) = rows
        .next()
        .await
        .map_err(|e| cutover::db::bolt::classify_bolt_error(&target.uri, &e))?
    {
        out.push(row);
    }
    Ok(out)
}

async fn count(target: &BoltTarget, cypher: &str) -> i64 {
    let rows = run(target, cypher)
        .await
        .unwrap_or_else(|f| panic!("{cypher}: {}", f.message));
    rows[0].get::<i64>("c").unwrap()
}

const SEED: &str = "UNWIND range(1, 200) AS i \
    CREATE (a:Account {id: i, name: 'acct-' + toString(i), balance: i * 10}) \
    WITH a, i WHERE i > 1 \
    MATCH (b:Account {id: i - 1}) CREATE (b)-[:PAID {amount: i, at: 'day-' + toString(i)}]->(a)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_arcadedb_freeze_backup_restore_and_users() {
    let env = LocalEnv::new();
    let engine = ArcadeEngine::new();
    let (blue, _) = env
        .provision_ready(&env.request("blue-ledger", "b", &["ledger"]))
        .await;
    let blue_db = handle(&env, &blue, "ledger").await;
    let root = engine.bolt_target(&blue_db, "root", blue_db.admin_password.clone());
    run(&root, SEED).await.unwrap();
    run(&root, "CREATE (:Member {id: 1, tags: ['a', 'b']})")
        .await
        .unwrap();
    assert_eq!(
        engine.version(&blue_db).await.unwrap().split('.').count(),
        3
    );
    engine.health(&blue_db).await.unwrap();
    let nodes = count(&root, "MATCH (n) RETURN count(n) AS c").await;
    let rels = count(&root, "MATCH ()-[r]->() RETURN count(r) AS c").await;
    assert_eq!((nodes, rels), (201, 199));

    // The application user can read and write.
    let app_password = SecretString::from("app-password-1");
    engine
        .set_user_password(&blue_db, "ledger_app", &app_password)
        .await
        .unwrap();
    let app = engine.bolt_target(&blue_db, "ledger_app", app_password.clone());
    run(&app, "CREATE (:Probe {id: 1})").await.unwrap();
    run(&app, "MATCH (p:Probe) DELETE p").await.unwrap();

    // Freeze: writes refused with a clear error (for root and the app), reads served.
    assert!(!engine.is_frozen(&blue_db).await.unwrap());
    let t = Instant::now();
    engine.freeze(&blue_db).await.unwrap();
    eprintln!("freeze: {:?}", t.elapsed());
    engine.freeze(&blue_db).await.unwrap();
    assert!(engine.is_frozen(&blue_db).await.unwrap());
    for target in [&root, &app] {
        let err = run(target, "CREATE (:Account {id: 9999})")
            .await
            .unwrap_err();
        assert!(err.message.contains("read only"), "{}", err.message);
        assert_eq!(err.class, ErrorClass::Permanent);
    }
    assert_eq!(
        count(&app, "MATCH (n:Account) RETURN count(n) AS c").await,
        200
    );
    engine.health(&blue_db).await.unwrap();

    // Backup of the frozen database.
    let key = ObjectKey::new("backups/test/ledger.zip");
    let t = Instant::now();
    let artifact = engine
        .backup(&blue_db, env.provider.objects.as_ref(), &key)
        .await
        .unwrap();
    eprintln!("backup ({} bytes): {:?}", artifact.object.size, t.elapsed());
    assert_eq!(artifact.format, "zip");
    assert!(artifact.object.sha256.is_some());
    assert_eq!(
        env.provider
            .objects
            .head(&key)
            .await
            .unwrap()
            .unwrap()
            .sha256,
        artifact.object.sha256
    );
    let backups = env
        .provider
        .compute
        .instance_dir(&blue.id)
        .join("backups/ledger");
    assert_eq!(
        std::fs::read_dir(&backups).map(|d| d.count()).unwrap_or(0),
        0,
        "local zip removed"
    );
    let blue_print =
        fingerprint_target(&root, &FingerprintOptions::default(), &WorkMeter::silent())
            .await
            .unwrap();

    // Unfreeze: writes accepted again.
    engine.unfreeze(&blue_db).await.unwrap();
    engine.unfreeze(&blue_db).await.unwrap();
    assert!(!engine.is_frozen(&blue_db).await.unwrap());
    run(&app, "CREATE (:Probe {id: 2})").await.unwrap();

    // Restore into a fresh green (the database does not exist yet).
    let (green, _) = env
        .provision_ready(&env.request("green-ledger", "g", &[]))
        .await;
    let green_db = handle(&env, &green, "ledger").await;
    let t = Instant::now();
    engine
        .restore(&green_db, env.provider.objects.as_ref(), &artifact)
        .await
        .unwrap();
    eprintln!("restore: {:?}", t.elapsed());
    let green_root = engine.bolt_target(&green_db, "root", green_db.admin_password.clone());
    assert_eq!(
        count(&green_root, "MATCH (n) RETURN count(n) AS c").await,
        nodes
    );
    assert_eq!(
        count(&green_root, "MATCH ()-[r]->() RETURN count(r) AS c").await,
        rels
    );
    let green_print = fingerprint_target(
        &green_root,
        &FingerprintOptions::default(),
        &WorkMeter::silent(),
    )
    .await
    .unwrap();
    assert_eq!(green_print.content, blue_print.content);
    assert!(!engine.is_frozen(&green_db).await.unwrap());

    // Users are not in the backup: set the app password on green, then rotate it.
    let green_app = engine.bolt_target(&green_db, "ledger_app", app_password.clone());
    assert!(run(&green_app, "RETURN 1 AS c").await.is_err());
    engine
        .set_user_password(&green_db, "ledger_app", &app_password)
        .await
        .unwrap();
    run(&green_app, "CREATE (:Probe {id: 3})").await.unwrap();
    let rotated = SecretString::from("app-password-2");
    engine
        .set_user_password(&green_db, "ledger_app", &rotated)
        .await
        .unwrap();
    let err = run(&green_app, "RETURN 1 AS c").await.unwrap_err();
    assert!(err.message.contains("authentication"), "{}", err.message);
    let green_app2 = engine.bolt_target(&green_db, "ledger_app", rotated);
    assert_eq!(
        count(&green_app2, "MATCH (p:Probe) RETURN count(p) AS c").await,
        1
    );
    assert!(engine
        .set_user_password(&green_db, "app", &app_password)
        .await
        .unwrap_err()
        .message
        .contains("at least 4"));

    // A restore over a database with data is refused.
    let err = engine
        .restore(&green_db, env.provider.objects.as_ref(), &artifact)
        .await
        .unwrap_err();
    assert!(err.message.contains("already exists"), "{}", err.message);

    // The manifest's checksum does not match the object: refused before loading.
    let other_db = handle(&env, &green, "ledger2").await;
    let mut wrong = artifact.clone();
    wrong.object.sha256 = Some("0".repeat(64));
    let err = engine
        .restore(&other_db, env.provider.objects.as_ref(), &wrong)
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(err.message.contains("checksum mismatch"), "{}", err.message);
    // The object itself corrupted (one byte flipped): refused before loading.
    let path = env.provider.objects.path_of(&key).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(&path, &bytes).unwrap();
    let err = engine
        .restore(&other_db, env.provider.objects.as_ref(), &artifact)
        .await
        .unwrap_err();
    assert!(err.message.contains("checksum mismatch"), "{}", err.message);
    let http = cutover::db::arcadedb::ArcadeHttp::new(
        green.endpoints["http"]
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap(),
        green_db.admin_password.clone(),
    );
    assert_eq!(
        http.list_databases().await.unwrap(),
        vec!["ledger".to_string()]
    );
    let restore_dir = env.provider.compute.instance_dir(&green.id).join("restore");
    assert_eq!(
        std::fs::read_dir(&restore_dir)
            .map(|d| d.count())
            .unwrap_or(0),
        0,
        "no download left behind"
    );
}
