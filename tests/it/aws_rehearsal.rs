//! The AWS rehearsal, end to end: `cutover run runbooks/blue-green.toml` on an aws
//! environment (environments/rehearsal-aws.toml) against the rehearsal rig — moto's AWS
//! APIs, the stand-in SSM agent, and rehearsal hosts with real Neo4j Community servers on
//! 127.0.0.N:7687 — with a live writer committing ledger transactions to wherever the
//! credex JSON secret in Secrets Manager points. Blue is made the way production's was:
//! EC2 instances whose initial password the set-initial-password script set through SSM.
//!
//! This is the one real-Neo4j run of the rig (four Neo4j servers, minutes of JVM work);
//! the SSM semantics are tested without Neo4j in `aws_rig_ssm`.

use crate::aws_support::setup_on;
use crate::harness::moto::MotoServer;
use crate::local_bluegreen::{happy_path, set_up, support, with_teardown};
use cutover::config::Environment;
use sha2::{Digest, Sha256};
use std::path::Path;

/// environments/rehearsal-aws.toml with the rig's endpoint and a state directory in `dir`.
fn environment(dir: &Path, endpoint: &str) -> Environment {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(repo.join("environments/rehearsal-aws.toml")).unwrap();
    assert!(text.contains("endpoint_url = \"http://127.0.0.1:4599\""));
    let text = text.replace("http://127.0.0.1:4599", endpoint).replace(
        "state_dir = \"../.cutover/rehearsal-aws\"",
        "state_dir = \"state\"",
    );
    let path = dir.join("env.toml");
    std::fs::write(&path, text).unwrap();
    Environment::load(path.to_str().unwrap())
        .unwrap_or_else(|p| panic!("rehearsal environment: {p:?}"))
}

/// What Terraform owns in production: the bucket (created by `setup_on`), the secrets,
/// and the application's ECS service, which reads the credex secret at start-up.
async fn terraform_owned(clients: &cutover::providers::aws::AwsClients) {
    // The secrets exist, without a value yet: setup (the operator) puts the first ones.
    for name in [
        "neo4j_rehearsal_secrets",
        "neo4j_rehearsal_secrets/ledgerspace",
        "neo4j_rehearsal_secrets/ledgerspace-admin",
        "neo4j_rehearsal_secrets/searchspace",
        "neo4j_rehearsal_secrets/searchspace-admin",
    ] {
        clients
            .secrets
            .create_secret()
            .name(name)
            .send()
            .await
            .unwrap();
    }
    let ecs = &clients.ecs;
    ecs.create_cluster()
        .cluster_name("credex-cluster-rehearsal")
        .send()
        .await
        .unwrap();
    ecs.register_task_definition()
        .family("credex-core-rehearsal")
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name("credex-core")
                .image("credex/core:rehearsal")
                .memory(512)
                .build(),
        )
        .send()
        .await
        .unwrap();
    ecs.create_service()
        .cluster("credex-cluster-rehearsal")
        .service_name("credex-core-service-rehearsal")
        .task_definition("credex-core-rehearsal")
        .desired_count(1)
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_on_aws_against_the_rig_succeeds_under_a_live_writer() {
    let server = MotoServer::start_rig(&["--heap", "256m"]).await;
    let (moto, settings, clients) = setup_on(server, "cutover-rehearsal").await;
    terraform_owned(&clients).await;
    let dir = tempfile::tempdir().unwrap();
    let env = environment(dir.path(), &moto.server.endpoint_url());
    set_up(&env).await;
    // Blue is two rehearsal hosts whose Neo4j listens on their own loopback address.
    let hosts = moto.server.rig_hosts().await;
    assert_eq!(hosts.len(), 2, "{hosts:?}");
    let blue = support::app_target(&env, "ledger").await.unwrap().uri;
    assert!(
        hosts
            .iter()
            .any(|h| blue == format!("bolt://{}:7687", h.address)),
        "blue {blue} is one of {hosts:?}"
    );
    with_teardown(&env, rehearse(env.clone(), moto.cli_env())).await;

    // Each database's dump is in S3 with a manifest whose SHA-256 is the dump's own.
    let prefix = "cutover/rehearsal-aws/backups/rehearsal-aws/";
    let listed = clients
        .s3
        .list_objects_v2()
        .bucket(&settings.bucket)
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    let keys: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key())
        .map(str::to_owned)
        .collect();
    let manifests: Vec<&String> = keys
        .iter()
        .filter(|k| k.ends_with("/manifest.json"))
        .collect();
    assert_eq!(manifests.len(), 2, "one backup per database: {keys:?}");
    for key in manifests {
        let manifest: serde_json::Value =
            serde_json::from_slice(&object_bytes(&clients, &settings.bucket, key).await).unwrap();
        let artifact = manifest["artifact"]["object"]["key"].as_str().unwrap();
        let recorded = manifest["artifact"]["object"]["sha256"].as_str().unwrap();
        let artifact = format!("cutover/rehearsal-aws/{artifact}");
        let bytes = object_bytes(&clients, &settings.bucket, &artifact).await;
        assert_eq!(hex::encode(Sha256::digest(&bytes)), recorded, "{artifact}");
        // The instance uploaded it with `aws s3 cp`; cutover then tagged it.
        let tags = clients
            .s3
            .get_object_tagging()
            .bucket(&settings.bucket)
            .key(&artifact)
            .send()
            .await
            .unwrap();
        let tag = tags.tag_set().iter().find(|t| t.key() == "cutover-sha256");
        assert_eq!(
            tag.map(|t| t.value()),
            Some(recorded),
            "{artifact}: {tags:?}"
        );
    }
    // The switch restarted the application: one ECS rollout, settled.
    let rollouts = moto.server.rig_ecs_rollouts().await;
    assert!(!rollouts.is_empty(), "no ECS deployment was rolled out");
    assert!(
        rollouts.iter().all(|r| r["settled"].is_number()),
        "{rollouts:?}"
    );
}

async fn object_bytes(
    clients: &cutover::providers::aws::AwsClients,
    bucket: &str,
    key: &str,
) -> Vec<u8> {
    clients
        .s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("s3://{bucket}/{key}: {e:?}"))
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes()
        .to_vec()
}

/// The run under a live writer (the local blue-green test's checks: Succeeded, the app
/// on green, no acknowledged write lost, only green left), and green on a rehearsal host.
async fn rehearse(env: Environment, vars: Vec<(&'static str, String)>) {
    let started = std::time::Instant::now();
    let crate::local_bluegreen::Passed { green, log, .. } = happy_path(env, &vars).await;
    assert!(green.starts_with("bolt://127."), "{green}");
    eprintln!(
        "rehearsal: blue-green took {:?} under a writer; {} writes acknowledged, {} refused",
        started.elapsed(),
        log.acknowledged.len(),
        log.refused
    );
}
