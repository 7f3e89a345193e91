//! Traffic targets against moto: ECS replace-by-name on a task definition that already
//! has duplicate entries, switch and switch back (and no switch back over a later
//! deploy); the secret-JSON target on Secrets Manager and the SSM-parameters target; a
//! deployment moto never makes stable is reported as not settled.

use crate::aws_support::setup;
use aws_sdk_ecs::types::{ContainerDefinition, KeyValuePair};
use cutover::ids::SecretName;
use cutover::providers::aws::{EcsServiceTarget, SecretsManagerStore, SsmParametersTarget};
use cutover::providers::traffic::{SecretJsonTarget, TrafficTarget, TrafficValues};
use cutover::providers::{Readiness, SecretStore};
use secrecy::SecretString;
use std::sync::Arc;

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| s.to_string()).collect()
}

fn kv(n: &str, v: &str) -> KeyValuePair {
    KeyValuePair::builder().name(n).value(v).build()
}

#[tokio::test]
async fn ecs_env_is_replaced_by_name_even_with_duplicates_and_switches_back() {
    let (_moto, _settings, clients) = setup("cutover-traffic-ecs").await;
    let ecs = &clients.ecs;
    ecs.create_cluster()
        .cluster_name("credex-cluster-staging")
        .send()
        .await
        .unwrap();
    let td = ecs
        .register_task_definition()
        .family("credex-core-staging")
        .container_definitions(
            ContainerDefinition::builder()
                .name("credex-core")
                .image("credex/core:1")
                .memory(512)
                .environment(kv("NODE_ENV", "staging"))
                .environment(kv("NEO_4J_LEDGER_SPACE_BOLT_URL", "bolt://127.0.0.1:7687"))
                .environment(kv("NEO_4J_LEDGER_SPACE_BOLT_URL", "bolt://127.0.0.9:7687"))
                .environment(kv("NEO_4J_LEDGER_SPACE_USER", "neo4j"))
                .environment(kv("NEO_4J_LEDGER_SPACE_BOLT_URL", "bolt://127.0.0.1:7687"))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let blue_arn = td
        .task_definition()
        .unwrap()
        .task_definition_arn()
        .unwrap()
        .to_owned();
    ecs.create_service()
        .cluster("credex-cluster-staging")
        .service_name("credex-core-service-staging")
        .task_definition(&blue_arn)
        .desired_count(1)
        .send()
        .await
        .unwrap();

    let target = EcsServiceTarget::new(
        ecs.clone(),
        "credex-cluster-staging",
        "credex-core-service-staging",
        None,
    );
    assert!(target.restarts_application());
    let green =
        TrafficValues::from_plain([("NEO_4J_LEDGER_SPACE_BOLT_URL", "bolt://127.0.1.5:7687")]);
    let record = target.switch_to(&green, "run-1/switch").await.unwrap();
    let again = target.switch_to(&green, "run-1/switch").await.unwrap();
    assert_eq!(
        record, again,
        "a retried switch adopts the registered revision"
    );
    assert_eq!(record.detail["previous_task_definition"], blue_arn);
    let read = target
        .current(&names(&[
            "NEO_4J_LEDGER_SPACE_BOLT_URL",
            "NODE_ENV",
            "ABSENT",
        ]))
        .await
        .unwrap();
    assert_eq!(
        read.get("NEO_4J_LEDGER_SPACE_BOLT_URL"),
        Some("bolt://127.0.1.5:7687")
    );
    assert_eq!(read.get("NODE_ENV"), Some("staging"));
    assert_eq!(read.get("ABSENT"), None);

    let svc = ecs
        .describe_services()
        .cluster("credex-cluster-staging")
        .services("credex-core-service-staging")
        .send()
        .await
        .unwrap();
    let now = svc.services()[0].task_definition().unwrap().to_owned();
    assert_eq!(now, record.version);
    let new_td = ecs
        .describe_task_definition()
        .task_definition(&now)
        .send()
        .await
        .unwrap();
    let env: Vec<(String, String)> = new_td.task_definition().unwrap().container_definitions()[0]
        .environment()
        .iter()
        .map(|k| (k.name().unwrap().to_owned(), k.value().unwrap().to_owned()))
        .collect();
    assert_eq!(
        env,
        vec![
            ("NODE_ENV".to_owned(), "staging".to_owned()),
            (
                "NEO_4J_LEDGER_SPACE_BOLT_URL".to_owned(),
                "bolt://127.0.1.5:7687".to_owned()
            ),
            ("NEO_4J_LEDGER_SPACE_USER".to_owned(), "neo4j".to_owned()),
        ],
        "the name appears once, with the new value; nothing appended"
    );
    // moto never runs tasks, so the deployment never becomes stable: not settled.
    assert!(matches!(
        target.settled().await.unwrap(),
        Readiness::NotYet(_)
    ));

    target.switch_back(&record, "run-1/switch").await.unwrap();
    let running = || async {
        ecs.describe_services()
            .cluster("credex-cluster-staging")
            .services("credex-core-service-staging")
            .send()
            .await
            .unwrap()
            .services()[0]
            .task_definition()
            .unwrap()
            .to_owned()
    };
    assert_eq!(running().await, blue_arn);
    target.switch_back(&record, "run-1/switch").await.unwrap();
    assert_eq!(
        running().await,
        blue_arn,
        "switching back twice changes nothing"
    );

    // A release deployed after a second switch is never replaced by an old revision.
    let second = target.switch_to(&green, "run-2/switch").await.unwrap();
    let release = ecs
        .register_task_definition()
        .family("credex-core-staging")
        .container_definitions(
            ContainerDefinition::builder()
                .name("credex-core")
                .image("credex/core:2")
                .memory(512)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let release_arn = release
        .task_definition()
        .unwrap()
        .task_definition_arn()
        .unwrap()
        .to_owned();
    ecs.update_service()
        .cluster("credex-cluster-staging")
        .service("credex-core-service-staging")
        .task_definition(&release_arn)
        .send()
        .await
        .unwrap();
    let refused = target
        .switch_back(&second, "run-2/switch")
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("not switching back"),
        "{refused}"
    );
    assert_eq!(running().await, release_arn);
}

#[tokio::test]
async fn secret_json_keys_on_secrets_manager_switch_and_switch_back() {
    let (_moto, _settings, clients) = setup("cutover-traffic-secret").await;
    let store = SecretsManagerStore::new(clients.secrets.clone());
    let name = SecretName::new("neo4j_stage_secrets");
    let initial = r#"{"ledgerspacebolturl":"bolt://blue:7687","ledgerspaceuser":"neo4j","ledgerspacepass":"blue-password","searchspacebolturl":"bolt://blue-s:7687"}"#;
    store
        .create_if_missing(&name, &SecretString::from(initial.to_owned()), None)
        .await
        .unwrap();
    let target = SecretJsonTarget::new(Arc::new(store.clone()), name.clone());
    let mut green = TrafficValues::from_plain([("ledgerspacebolturl", "bolt://green:7687")]);
    green.insert_secret(
        "ledgerspacepass",
        SecretString::from("green-password".to_owned()),
    );
    let record = target.switch_to(&green, "run-2/switch").await.unwrap();
    let retried = target.switch_to(&green, "run-2/switch").await.unwrap();
    assert_eq!(record, retried, "a retry adopts the first version");
    assert!(
        !serde_json::to_string(&record).unwrap().contains("password"),
        "the journaled record holds no value"
    );
    let (_, now) = store
        .get_json(&name, cutover::providers::SecretStage::Current)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now["ledgerspacebolturl"], "bolt://green:7687");
    assert_eq!(now["ledgerspacepass"], "green-password");
    assert_eq!(
        now["searchspacebolturl"], "bolt://blue-s:7687",
        "other keys untouched"
    );
    target.switch_back(&record, "run-2/switch").await.unwrap();
    let back = target
        .current(&names(&["ledgerspacebolturl", "ledgerspacepass"]))
        .await
        .unwrap();
    assert_eq!(back.get("ledgerspacebolturl"), Some("bolt://blue:7687"));
    assert_eq!(back.get("ledgerspacepass"), Some("blue-password"));
    let versions = store.versions(&name).await.unwrap();
    assert_eq!(
        versions
            .iter()
            .filter(|v| v.stages.contains(&cutover::providers::SecretStage::Current))
            .count(),
        1
    );
}

#[tokio::test]
async fn ssm_parameters_switch_with_the_password_secure_and_switch_back_by_version() {
    let (_moto, _settings, clients) = setup("cutover-traffic-parameters").await;
    let ssm = &clients.ssm;
    ssm.put_parameter()
        .name("/staging/ledger/bolt-url")
        .value("bolt://blue:7687")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .unwrap();
    let p = SsmParametersTarget::new(ssm.clone());
    let mut green = TrafficValues::from_plain([("/staging/ledger/bolt-url", "bolt://green:7687")]);
    green.insert_secret(
        "/staging/ledger/password",
        SecretString::from("green-password".to_owned()),
    );
    let rec = p.switch_to(&green, "run-3/switch").await.unwrap();
    let rec2 = p.switch_to(&green, "run-3/switch").await.unwrap();
    assert_eq!(
        rec, rec2,
        "a retry finds the replaced versions in the history"
    );
    assert_eq!(rec.detail["/staging/ledger/bolt-url"], "1");
    assert_eq!(rec.detail["/staging/ledger/password"], "absent");
    let kind = |name: &'static str| async move {
        ssm.get_parameter()
            .name(name)
            .send()
            .await
            .unwrap()
            .parameter()
            .and_then(|p| p.r#type().cloned())
    };
    assert_eq!(
        kind("/staging/ledger/password").await,
        Some(aws_sdk_ssm::types::ParameterType::SecureString)
    );
    assert_eq!(
        kind("/staging/ledger/bolt-url").await,
        Some(aws_sdk_ssm::types::ParameterType::String)
    );
    let all = names(&["/staging/ledger/bolt-url", "/staging/ledger/password"]);
    assert_eq!(
        p.current(&all)
            .await
            .unwrap()
            .get("/staging/ledger/password"),
        Some("green-password")
    );
    p.switch_back(&rec, "run-3/switch").await.unwrap();
    let back = p.current(&all).await.unwrap();
    assert_eq!(
        back.get("/staging/ledger/bolt-url"),
        Some("bolt://blue:7687")
    );
    assert_eq!(
        back.get("/staging/ledger/password"),
        None,
        "a parameter the switch created is removed"
    );
}

/// The ECS service as the application restarted after a secret switch: a new deployment
/// of the same task definition (nothing about the revision changes), and moto's
/// never-settling deployment is reported as not settled rather than believed.
#[tokio::test]
async fn the_app_service_restarts_on_the_same_revision_and_is_polled_until_settled() {
    use cutover::providers::AppService;
    let (_moto, _settings, clients) = setup("cutover-app-restart").await;
    let ecs = &clients.ecs;
    ecs.create_cluster().cluster_name("c").send().await.unwrap();
    let td = ecs
        .register_task_definition()
        .family("credex-core")
        .container_definitions(
            ContainerDefinition::builder()
                .name("credex-core")
                .image("credex/core:1")
                .memory(512)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let arn = td
        .task_definition()
        .unwrap()
        .task_definition_arn()
        .unwrap()
        .to_owned();
    ecs.create_service()
        .cluster("c")
        .service_name("credex-core-service")
        .task_definition(&arn)
        .desired_count(1)
        .send()
        .await
        .unwrap();
    let deployments = || async {
        let out = ecs
            .describe_services()
            .cluster("c")
            .services("credex-core-service")
            .send()
            .await
            .unwrap();
        let svc = out.services()[0].clone();
        (
            svc.task_definition().unwrap().to_owned(),
            svc.deployments()
                .iter()
                .map(|d| d.id().unwrap_or_default().to_owned())
                .collect::<Vec<_>>(),
        )
    };
    let (_, before) = deployments().await;
    let app = EcsServiceTarget::new(ecs.clone(), "c", "credex-core-service", None);
    app.restart().await.unwrap();
    let (revision, after) = deployments().await;
    assert_eq!(revision, arn, "a restart keeps the task definition");
    assert_ne!(before, after, "a restart is a new deployment");
    assert!(matches!(
        AppService::settled(&app).await.unwrap(),
        Readiness::NotYet(_)
    ));
}
