//! `cutover iam`: the least-privilege policy derived from a plan, checked three ways:
//! the policies shipped in `docs/iam/` are exactly what the code derives; parliament
//! (PyPI) finds nothing in them; and the moto server with IAM enforcement on accepts a
//! run with exactly the derived policy and refuses, with AccessDenied, when one of its
//! statements is removed.
//!
//! What moto checks (moto 5.2, `moto/iam/access_control.py`): the action of every
//! request, and for S3 the resource ARN too (`arn:aws:s3:::bucket[/key]`); it evaluates
//! no `Condition` (a statement with one denies) and, outside S3, sees every resource as
//! `*`. So the moto half applies the derived policy's Allow statements with their
//! conditions removed; it proves the S3 actions and resource patterns a run needs, not
//! the conditions or the Deny guards.

use crate::aws_support::{aws_env_toml, setup, tool};
use crate::engine_cli::{cutover, run_args, text, Workspace};
use serde_json::Value;
use std::path::Path;
use std::process::Output;

const ACCOUNT: &str = "123456789012";
/// The shipped runbooks whose policies for `environments/staging.toml` are in docs/iam/.
const SHIPPED: &[&str] = &[
    "blue-green",
    "backup",
    "restore",
    "dr-drill",
    "ami-update",
    "deploy",
    "rollback",
];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn iam(args: &[&str]) -> Output {
    cutover()
        .current_dir(repo())
        .arg("iam")
        .args(args)
        .env_remove("CUTOVER_ENV")
        .output()
        .unwrap()
}

/// (file under docs/iam/, the arguments that derive it)
fn shipped_policies() -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = SHIPPED
        .iter()
        .map(|book| {
            (
                format!("{book}.staging.json"),
                vec![
                    format!("runbooks/{book}.toml"),
                    "--env".into(),
                    "staging".into(),
                    "--account-id".into(),
                    ACCOUNT.into(),
                ],
            )
        })
        .collect();
    out.push((
        "instance.staging.json".into(),
        vec![
            "runbooks/blue-green.toml".into(),
            "--env".into(),
            "staging".into(),
            "--account-id".into(),
            ACCOUNT.into(),
            "--role".into(),
            "instance".into(),
        ],
    ));
    out
}

#[test]
fn the_policies_in_docs_are_what_cutover_iam_derives() {
    for (file, args) in shipped_policies() {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = iam(&args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "cutover iam {args:?}: {}",
            text(&out)
        );
        let shipped = std::fs::read_to_string(repo().join("docs/iam").join(&file))
            .unwrap_or_else(|e| panic!("docs/iam/{file}: {e}"));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            shipped,
            "docs/iam/{file} is stale; regenerate it: cutover iam {} > docs/iam/{file}",
            args.join(" ")
        );
    }
}

#[test]
fn parliament_finds_nothing_in_the_shipped_policies() {
    let parliament = tool("parliament");
    for (file, _) in shipped_policies() {
        let path = repo().join("docs/iam").join(&file);
        let policy = std::fs::read_to_string(&path).unwrap();
        // parliament refuses --file when stdin is not a terminal; --string it is.
        let out = std::process::Command::new(&parliament)
            .args(["--string", &policy, "--json", "--minimum_severity", "LOW"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run {}: {e}; run `make setup`", parliament.display())
            });
        let findings: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert!(
            findings.is_empty(),
            "parliament on docs/iam/{file}: {findings:#?}\n{}",
            text(&out)
        );
    }
}

#[test]
fn a_local_environment_has_no_policy_and_a_bad_account_id_is_refused() {
    let out = iam(&["runbooks/blue-green.toml", "--env", "local"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("makes no AWS calls"),
        "{}",
        text(&out)
    );
    let out = iam(&[
        "runbooks/blue-green.toml",
        "--env",
        "staging",
        "--account-id",
        "12",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not an AWS account id"),
        "{}",
        text(&out)
    );
}

#[test]
fn the_blue_green_policy_names_what_staging_uses_and_nothing_wider() {
    let out = iam(&[
        "runbooks/blue-green.toml",
        "--env",
        "staging",
        "--account-id",
        ACCOUNT,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let policy: Value = serde_json::from_slice(&out.stdout).unwrap();
    let statements = policy["Statement"].as_array().unwrap();
    let sid = |name: &str| {
        statements
            .iter()
            .find(|s| s["Sid"] == name)
            .unwrap_or_else(|| panic!("no statement {name} in {policy:#}"))
    };
    assert_eq!(
        sid("SwitchTrafficSecret")["Resource"],
        serde_json::json!([format!(
            "arn:aws:secretsmanager:af-south-1:{ACCOUNT}:secret:neo4j_stage_secrets-??????"
        )])
    );
    assert_eq!(
        sid("RestartApplicationService")["Resource"],
        serde_json::json!([format!(
            "arn:aws:ecs:af-south-1:{ACCOUNT}:service/credex-cluster-staging/credex-core-service-staging"
        )])
    );
    assert_eq!(
        sid("PassInstanceRole")["Resource"],
        serde_json::json!([format!("arn:aws:iam::{ACCOUNT}:role/credex-neo4j-staging")])
    );
    // Nothing grants a whole service.
    for s in statements {
        for a in s["Action"].as_array().unwrap() {
            assert!(
                !a.as_str().unwrap().ends_with(":*"),
                "{} grants {a}",
                s["Sid"]
            );
        }
    }
}

/// A utility runbook: on an aws environment its only AWS calls are the run's own (the
/// S3 lease and the journal mirror).
const HELLO: &str = "name = \"iam-hello\"\n[[step]]\nid = \"say\"\nuses = \"util.shell\"\nwith = { run = \"echo hello\" }\n";

#[tokio::test(flavor = "multi_thread")]
async fn moto_with_iam_on_accepts_exactly_the_derived_policy_and_refuses_each_statement_less() {
    let (moto, settings, _clients) = setup("cutover-iam").await;
    let ws = Workspace::new(HELLO);
    std::fs::write(ws.path().join("env.toml"), aws_env_toml(&settings, "")).unwrap();
    let derived = ws
        .command(&["iam", "book.toml", "--env", "env.toml"])
        .output()
        .unwrap();
    assert_eq!(derived.status.code(), Some(0), "{}", text(&derived));
    let policy: Value = serde_json::from_slice(&derived.stdout).unwrap();
    let statements: Vec<Value> = policy["Statement"].as_array().unwrap().clone();
    let sids: Vec<String> = statements
        .iter()
        .map(|s| s["Sid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sids, ["RunStateObjects", "RunStateList"], "{policy:#}");

    // One IAM user per variant (the full policy, and each statement left out), made
    // while moto still lets requests through unauthenticated.
    let aws = |args: &[&str]| -> Value {
        let out = std::process::Command::new(tool("aws"))
            .args(args)
            .args(["--output", "json"])
            .envs(moto.cli_env())
            .output()
            .unwrap();
        assert!(out.status.success(), "aws {args:?}: {}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    };
    let mut users = Vec::new();
    for leave_out in std::iter::once(None).chain((0..statements.len()).map(Some)) {
        let name = format!(
            "cutover-{}",
            leave_out.map_or("all".into(), |i| sids[i].clone())
        );
        let kept: Vec<Value> = statements
            .iter()
            .enumerate()
            .filter(|(i, s)| Some(*i) != leave_out && s["Effect"] == "Allow")
            .map(|(_, s)| {
                let mut s = s.clone();
                s.as_object_mut().unwrap().remove("Condition");
                s
            })
            .collect();
        let document = serde_json::json!({ "Version": "2012-10-17", "Statement": kept });
        aws(&["iam", "create-user", "--user-name", &name]);
        aws(&[
            "iam",
            "put-user-policy",
            "--user-name",
            &name,
            "--policy-name",
            "cutover",
            "--policy-document",
            &document.to_string(),
        ]);
        let key = aws(&["iam", "create-access-key", "--user-name", &name]);
        users.push((
            leave_out,
            key["AccessKey"]["AccessKeyId"].as_str().unwrap().to_owned(),
            key["AccessKey"]["SecretAccessKey"]
                .as_str()
                .unwrap()
                .to_owned(),
        ));
    }
    // From here on moto authenticates and authorises every request.
    let reset = reqwest::Client::new()
        .post(format!(
            "{}/moto-api/reset-auth",
            moto.server.endpoint_url()
        ))
        .body("0")
        .send()
        .await
        .unwrap();
    assert!(reset.status().is_success());

    for (n, (leave_out, key_id, secret)) in users.iter().enumerate() {
        let as_user = |args: &[&str]| {
            let mut c = ws.command(args);
            c.envs(moto.cli_env())
                .env_remove("AWS_SESSION_TOKEN")
                .env("AWS_ACCESS_KEY_ID", key_id)
                .env("AWS_SECRET_ACCESS_KEY", secret);
            c.output().unwrap()
        };
        let run_id = format!("iam-{n}");
        let run = as_user(&run_args(&run_id));
        let status = as_user(&["status", "--env", "env.toml"]);
        match leave_out.map(|i| sids[i].as_str()) {
            None => {
                assert_eq!(
                    run.status.code(),
                    Some(0),
                    "the full policy: {}",
                    text(&run)
                );
                assert_eq!(
                    status.status.code(),
                    Some(0),
                    "the full policy: {}",
                    text(&status)
                );
                assert!(String::from_utf8_lossy(&status.stdout).contains(&run_id));
                assert!(!text(&status).contains("AccessDenied"), "{}", text(&status));
            }
            Some("RunStateObjects") => {
                assert_ne!(
                    run.status.code(),
                    Some(0),
                    "without RunStateObjects: {}",
                    text(&run)
                );
                assert!(text(&run).contains("AccessDenied"), "{}", text(&run));
            }
            Some("RunStateList") => {
                // A run writes and reads its own objects only; listing the runs of every
                // machine is `status`, which then falls back to this machine's journals
                // and says why.
                assert_eq!(
                    run.status.code(),
                    Some(0),
                    "without RunStateList: {}",
                    text(&run)
                );
                let said = String::from_utf8_lossy(&status.stderr);
                assert!(
                    said.contains("journal mirror could not be read")
                        && said.contains("AccessDenied"),
                    "without RunStateList: {}",
                    text(&status)
                );
            }
            Some(other) => panic!("unexpected statement {other}"),
        }
    }
}
