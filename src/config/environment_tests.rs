//! The typed environment: what each database and section reads as, and the defaults
//! the steps used to compute from raw tables at run time.

use super::{Environment, SourceFile};
use crate::db::{neo4j::BackupMethod, Edition, EngineKind, EngineSettings};
use crate::ids::DatabaseName;

fn parse(text: &str) -> Environment {
    Environment::parse(SourceFile::new("env.toml", text)).expect("a valid environment")
}

const SHIPPED_LOCAL: &str = include_str!("../../environments/local.toml");

#[test]
fn a_database_reads_as_typed_settings_with_the_steps_defaults() {
    let env =
        parse("name = \"t\"\nprovider = \"local\"\n[databases.ledger]\nengine = \"arcadedb\"\n");
    let d = &env.databases[&DatabaseName::new("ledger")];
    assert_eq!(d.kind(), EngineKind::Arcadedb);
    assert_eq!(d.edition, Edition::Community);
    assert_eq!(
        d.database, "ledger",
        "the inner name defaults to the database's"
    );
    assert_eq!(d.user, "cutover_app");
    assert_eq!(d.app_password_secret("t").as_str(), "t/ledger/app-password");
    assert!(d.identity_keys.is_empty() && d.invariants.is_empty() && d.same_answers.is_empty());
    assert_eq!(d.heap_mb, None);
    assert!(env.traffic.app_service.is_none());
    assert_eq!(env.traffic.secret_name("t").as_str(), "t/app-connection");
    assert!(env.aws.is_none() && env.terraform.is_none());
}

#[test]
fn the_shipped_local_environment_reads_every_table_into_its_type() {
    let env = parse(SHIPPED_LOCAL);
    let ledger = &env.databases[&DatabaseName::new("ledger")];
    let EngineSettings::Neo4j(neo4j) = &ledger.engine else {
        panic!("ledger runs neo4j: {:?}", ledger.engine);
    };
    assert_eq!(neo4j.backup, BackupMethod::Dump, "Community dumps");
    assert_eq!(ledger.database, "neo4j");
    assert_eq!(ledger.user, "credex");
    assert_eq!(
        ledger.app_password_secret("local").as_str(),
        "credex-core/local/ledgerspace-password"
    );
    assert_eq!(
        ledger.admin_secret.as_ref().map(|s| s.as_str()),
        Some("credex-core/local/ledgerspace-admin")
    );
    assert_eq!(ledger.heap_mb, Some(256));
    assert_eq!(ledger.version.as_deref(), Some("5.26.30"));
    let keys: Vec<String> = ledger.identity_keys.iter().map(|k| k.to_string()).collect();
    assert_eq!(
        keys,
        [
            "Member.memberID",
            "Account.accountID",
            "Credex.credexID",
            "Daynode.Date"
        ]
    );
    assert_eq!(ledger.invariants.len(), 1);
    assert_eq!(ledger.invariants[0].expect, serde_json::json!(1));
    assert_eq!(ledger.same_answers.len(), 4);
    assert!(ledger.same_answers[2].params.is_some());
    assert_eq!(
        env.traffic.secret_name("local").as_str(),
        "credex-core/local"
    );
    assert_eq!(env.traffic.key_prefixes["ledger"], "ledgerspace");
}

#[test]
fn the_aws_and_terraform_sections_are_read_at_load() {
    let env = parse(
        "name = \"t\"\nprovider = \"aws\"\n[aws]\nregion = \"af-south-1\"\nbucket = \"b\"\nstate_prefix = \"/cutover/t/\"\nssm_delivery_timeout = \"5m\"\n[traffic]\necs_cluster = \"c\"\necs_service = \"s\"\n[terraform]\nbucket = \"tf\"\nregion = \"af-south-1\"\n",
    );
    let aws = env.aws.as_ref().expect("[aws]");
    assert_eq!(aws.settings.prefix, "cutover/t");
    assert_eq!(
        aws.ssm_delivery_timeout,
        Some(std::time::Duration::from_secs(300))
    );
    let tf = env.terraform.as_ref().expect("[terraform]");
    assert_eq!(
        (tf.bucket.as_str(), tf.key_prefix.as_str()),
        ("tf", "terraform")
    );
    let service = env.traffic.app_service.as_ref().expect("the ECS service");
    assert_eq!(
        (service.cluster.as_str(), service.service.as_str()),
        ("c", "s")
    );
}

#[test]
fn every_problem_of_a_database_is_reported_in_one_pass() {
    let text = "name = \"t\"\nprovider = \"local\"\n[databases.ledger]\nengine = \"neo4j\"\nheap = \"big\"\nidentity_keys = [\"Member\"]\nneo4j = { backup = \"online\", bolt_port = 0 }\n";
    let problems = Environment::parse(SourceFile::new("env.toml", text)).unwrap_err();
    assert_eq!(problems.len(), 4, "{problems}");
    for (line, needle) in [
        (5, "heap `big`"),
        (6, "\"Member\" is not LABEL.PROPERTY"),
        (7, "needs edition = \"enterprise\""),
        (7, "bolt_port 0"),
    ] {
        assert_problem_at(&problems, line, needle);
    }
}

#[test]
fn an_instance_that_is_not_a_table_is_reported_once_on_aws() {
    let text = "name = \"t\"\nprovider = \"aws\"\n[aws]\nregion = \"r\"\nbucket = \"b\"\n[databases.ledger]\nengine = \"neo4j\"\ninstance = \"r5.large\"\n";
    let problems = Environment::parse(SourceFile::new("env.toml", text)).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems}");
    assert!(
        problems.0[0].message.contains("`instance` must be a table"),
        "{problems}"
    );
}

/// Some problem is at `line` of env.toml and its message contains `needle`.
fn assert_problem_at(problems: &super::Problems, line: usize, needle: &str) {
    assert!(
        problems
            .0
            .iter()
            .any(|p| p.to_string().starts_with(&format!("env.toml:{line}:"))
                && p.message.contains(needle)),
        "no problem at line {line} naming {needle:?} in:\n{problems}"
    );
}

const AWS_HEAD: &str = "name = \"prod\"\nprovider = \"aws\"\n[aws]\nregion = \"af-south-1\"\nbucket = \"b\"\n[databases.ledger]\nengine = \"neo4j\"\n[databases.search]\nengine = \"neo4j\"\n";

#[test]
fn the_ecs_environment_kind_reads_its_service_container_and_names() {
    use crate::providers::traffic::TrafficKind;
    let env = parse(&format!(
        "{AWS_HEAD}[traffic]\nkind = \"ecs-environment\"\necs_cluster = \"credex-cluster-prod\"\necs_service = \"credex-core-service-prod\"\ncontainer = \"credex-core\"\n[traffic.names.search]\nurl = \"SEARCH_URL\"\n"
    ));
    assert_eq!(env.traffic.kind, TrafficKind::EcsEnvironment);
    assert_eq!(env.traffic.container.as_deref(), Some("credex-core"));
    let ledger = env.traffic.names_for("prod", "ledger");
    assert_eq!(ledger.password, "NEO_4J_LEDGER_SPACE_PASS");
    let search = env.traffic.names_for("prod", "search");
    assert_eq!(
        (search.url.as_str(), search.user.as_str()),
        ("SEARCH_URL", "NEO_4J_SEARCH_SPACE_USER")
    );
    let parameters = parse(&format!("{AWS_HEAD}[traffic]\nkind = \"parameters\"\n"));
    assert_eq!(parameters.traffic.kind, TrafficKind::Parameters);
    assert_eq!(
        parameters.traffic.names_for("prod", "ledger").url,
        "/prod/ledger/bolt-url"
    );
}

#[test]
fn a_traffic_section_that_cannot_work_is_refused_at_its_line() {
    for (text, line, needle) in [
        (
            format!("{AWS_HEAD}[traffic]\nkind = \"ecs\"\n"),
            11,
            "kind `ecs` is not supported",
        ),
        (
            format!("{AWS_HEAD}[traffic]\nkind = \"ecs-environment\"\n"),
            11,
            "needs ecs_cluster and ecs_service",
        ),
        (
            format!("{AWS_HEAD}[traffic]\nkind = \"parameters\"\nsecret = \"s\"\n"),
            12,
            "secret applies to kind = \"secret\" only",
        ),
        (
            format!("{AWS_HEAD}[traffic]\ncontainer = \"app\"\n"),
            11,
            "container applies to kind = \"ecs-environment\" only",
        ),
        (
            format!("{AWS_HEAD}[traffic.names.ledgr]\nurl = \"U\"\n"),
            10,
            "names `ledgr`, which is not one of the environment's databases",
        ),
        (
            format!("{AWS_HEAD}[traffic.names.ledger]\nurl = \"U\"\nhost = \"h\"\n"),
            12,
            "host",
        ),
        (
            "name = \"l\"\nprovider = \"local\"\n[traffic]\nkind = \"parameters\"\n".to_owned(),
            4,
            "kind `parameters` needs the aws provider",
        ),
    ] {
        let problems = Environment::parse(SourceFile::new("env.toml", &text)).unwrap_err();
        assert_problem_at(&problems, line, needle);
    }
}
