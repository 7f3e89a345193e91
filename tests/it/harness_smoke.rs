//! The harness starts real services that do real work.

use crate::harness::{ArcadeHarness, MotoServer};
use aws_sdk_s3::primitives::ByteStream;
use secrecy::ExposeSecret;

#[tokio::test]
async fn moto_stores_and_returns_an_s3_object() {
    let moto = MotoServer::start().await;
    let s3 = moto.s3_client().await;
    s3.create_bucket()
        .bucket("cutover-smoke")
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                    moto.region(),
                ))
                .build(),
        )
        .send()
        .await
        .expect("create bucket");
    let body: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    s3.put_object()
        .bucket("cutover-smoke")
        .key("dir/object.bin")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect("put object");
    let got = s3
        .get_object()
        .bucket("cutover-smoke")
        .key("dir/object.bin")
        .send()
        .await
        .expect("get object");
    let bytes = got.body.collect().await.expect("read body").into_bytes();
    assert_eq!(bytes.as_ref(), body.as_slice());

    let missing = s3
        .get_object()
        .bucket("cutover-smoke")
        .key("nope")
        .send()
        .await;
    assert!(missing.is_err(), "a missing key must be an error");
}

#[tokio::test]
async fn arcadedb_serves_cypher_over_bolt_without_the_password_in_argv() {
    let arcade = ArcadeHarness::start(&["ledger"]).await;
    eprintln!("ArcadeDB ready after {:?}", arcade.startup_time());

    let graph = arcade
        .bolt_target("ledger")
        .connect(2)
        .await
        .expect("Bolt connect");
    for i in 0..5 {
        graph
            .run(
                neo4rs::query("CREATE (n:Member {memberID: $id}) RETURN n")
                    .param("id", format!("m{i}")),
            )
            .await
            .expect("create node");
    }
    let mut rows = graph
        .execute(neo4rs::query("MATCH (n:Member) RETURN count(n) AS c"))
        .await
        .expect("count");
    let row = rows.next().await.expect("row").expect("one row");
    assert_eq!(row.get::<i64>("c").expect("c"), 5);

    let password = arcade.password().expose_secret().to_string();
    let pid = arcade.server().pid();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline of the server");
    let cmdline = String::from_utf8_lossy(&cmdline);
    assert!(
        cmdline.contains("com.arcadedb.server.ArcadeDBServer"),
        "pid {pid} is not the server: {cmdline}"
    );
    assert!(
        !cmdline.contains(&password),
        "the root password is in the server's arguments"
    );

    let instance = arcade.server().instance_dir();
    assert!(
        !instance.join(".jvm-secret-args").exists(),
        "the password argfile outlived start-up"
    );
    let log = std::fs::read_to_string(arcade.server().log_path()).expect("server.log");
    assert!(
        !log.contains(&password),
        "the root password is in server.log"
    );
    let users = std::fs::read_to_string(instance.join("config/server-users.jsonl"))
        .expect("server-users.jsonl");
    assert!(
        !users.contains(&password),
        "ArcadeDB stored the root password in clear"
    );
}

#[tokio::test]
async fn arcadedb_launcher_refuses_a_taken_port_rejects_a_wrong_password_and_stops_by_pid_file() {
    use cutover::db::arcadedb::server::{running_pid, stop_by_pid_file};
    use cutover::db::arcadedb::{
        free_loopback_port, ArcadeHttp, ArcadeInstall, ArcadeServer, ArcadeServerConfig,
        StopOutcome,
    };
    use secrecy::SecretString;
    use std::time::Duration;

    let install = ArcadeInstall::from_venv(&crate::harness::venv()).expect("ArcadeDB in .venv");
    let tmp = tempfile::tempdir().expect("temp dir");
    let instance = tmp.path().join("instance");
    let config = |bolt_port: u16| {
        let mut config = ArcadeServerConfig::new(
            install.clone(),
            &instance,
            bolt_port,
            free_loopback_port().expect("free port"),
            SecretString::from("launcher-test-password"),
        );
        config.heap_mb = 256;
        config.kill_on_drop = true;
        config
    };

    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_port = taken.local_addr().expect("addr").port();
    let err = ArcadeServer::start(config(taken_port))
        .await
        .expect_err("a taken port must be refused");
    assert_eq!(err.message, format!("port {taken_port} is already in use"));
    drop(taken);

    let mut server = ArcadeServer::start(config(free_loopback_port().expect("free port")))
        .await
        .expect("start");
    server
        .wait_ready(crate::harness::READY_TIMEOUT)
        .await
        .expect("ready");

    let wrong = ArcadeHttp::new(server.http_port(), SecretString::from("not-the-password"));
    let err = wrong
        .list_databases()
        .await
        .expect_err("a wrong password must be refused");
    assert!(err.message.contains("HTTP 403"), "{}", err.message);
    assert!(!err.is_retryable());

    let pid = server.detach();
    let dir = instance.canonicalize().expect("instance dir");
    assert_eq!(running_pid(&dir), Some(pid));
    let outcome = stop_by_pid_file(&instance, Duration::from_secs(30))
        .await
        .expect("stop");
    assert_eq!(outcome, StopOutcome::Stopped { pid });
    assert_eq!(running_pid(&dir), None);
    assert!(
        !dir.join("server.pid").exists(),
        "the pid file outlived the server"
    );
    assert_eq!(
        stop_by_pid_file(&instance, Duration::from_secs(1))
            .await
            .expect("stop again"),
        StopOutcome::NotRunning
    );
}
