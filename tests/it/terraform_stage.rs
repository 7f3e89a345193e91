//! `terraform.plan` / `terraform.apply` against the real `terraform` binary (or `tofu`)
//! and Terraform's built-in S3 backend pointed at the moto server, with its S3 lock file.
//! The fixture module (`tests/fixtures/terraform/stage`) uses only built-in resources.
//! Every run goes through the `cutover` binary, as an operator would run it.

use crate::engine_cli::{cutover, run_args, text};
use crate::harness::MotoServer;
use std::path::{Path, PathBuf};
use std::process::Output;

const BUCKET: &str = "cutover-tfstate";
const PREFIX: &str = "tfstate";
/// The fixture's sensitive output; it must appear nowhere cutover writes or prints.
const CANARY: &str = "canary-9f8e7d-sensitive";

const BOOK: &str = r#"name = "stage"

[params.module]
type = "string"

[params.keep_volume]
type = "bool"
default = true

[params.image]
type = "string"
default = "img-1"

[params.allow]
type = "list"
default = []

[params.tamper]
type = "bool"
default = false

[[step]]
id = "plan"
uses = "terraform.plan"
with = { module = "${{ params.module }}", component = "stage", vars = { keep_volume = "${{ params.keep_volume }}", image = "${{ params.image }}" }, allow_destroy = "${{ params.allow }}" }

[[step]]
id = "tamper"
uses = "util.shell"
needs = ["plan"]
with = { run = "if [ '${{ params.tamper }}' = true ]; then printf x >> '${{ steps.plan.outputs.plan_file }}'; fi" }

[[step]]
id = "apply"
uses = "terraform.apply"
needs = ["plan", "tamper"]
with = { module = "${{ params.module }}", component = "stage", plan_file = "${{ steps.plan.outputs.plan_file }}", plan_sha256 = "${{ steps.plan.outputs.plan_sha256 }}" }
"#;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/terraform/stage")
}

/// The terraform binary the step will find, or a panic saying how to install one.
fn require_terraform() {
    let found = std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| d.join("terraform").is_file() || d.join("tofu").is_file())
    });
    assert!(
        found,
        "neither terraform nor tofu is on PATH: run scripts/setup.sh (it says how to install one) \
         and put .tools/bin on PATH"
    );
}

struct Stage {
    moto: MotoServer,
    s3: aws_sdk_s3::Client,
    dir: tempfile::TempDir,
}

impl Stage {
    async fn start() -> Self {
        require_terraform();
        let moto = MotoServer::start().await;
        let s3 = moto.s3_client().await;
        s3.create_bucket()
            .bucket(BUCKET)
            .create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::AfSouth1)
                    .build(),
            )
            .send()
            .await
            .expect("create the state bucket");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("env.toml"),
            format!(
                "name = \"test\"\nprovider = \"local\"\nstate_dir = \"state\"\n\n[terraform]\n\
                 bucket = \"{BUCKET}\"\nkey_prefix = \"{PREFIX}\"\nregion = \"{}\"\nendpoint = \"{}\"\n\
                 protect = [\"terraform_data.volume\"]\n",
                moto.region(),
                moto.endpoint_url()
            ),
        )
        .unwrap();
        std::fs::write(dir.path().join("book.toml"), BOOK).unwrap();
        Stage { moto, s3, dir }
    }

    fn run(&self, run_id: &str, sets: &[&str]) -> Output {
        let mut c = cutover();
        c.current_dir(self.dir.path())
            .args(run_args(run_id))
            .args(["--set", &format!("module={}", fixture().display())])
            .env_remove("CUTOVER_STATE_DIR")
            .env_remove("CUTOVER_FAULT_PAUSE_AFTER_EVENT");
        for s in sets {
            c.args(["--set", s]);
        }
        for (k, v) in self.moto.env() {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    fn run_dir(&self, run_id: &str) -> PathBuf {
        self.dir.path().join("state/runs").join(run_id)
    }

    fn journal(&self, run_id: &str) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.run_dir(run_id).join("journal.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn outputs(&self, run_id: &str, step: &str) -> serde_json::Value {
        self.journal(run_id)
            .into_iter()
            .find(|e| e["event"] == "step_succeeded" && e["step"] == step)
            .unwrap_or_else(|| panic!("{step} did not succeed in {run_id}"))["outputs"]
            .clone()
    }

    fn started(&self, run_id: &str, step: &str) -> bool {
        self.journal(run_id)
            .iter()
            .any(|e| e["event"] == "step_started" && e["step"] == step)
    }

    async fn state(&self) -> Option<Vec<u8>> {
        let key = format!("{PREFIX}/stage_test/stage.tfstate");
        match self.s3.get_object().bucket(BUCKET).key(&key).send().await {
            Ok(o) => Some(o.body.collect().await.unwrap().into_bytes().to_vec()),
            Err(_) => None,
        }
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn resources_in(state: &[u8]) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(state).unwrap();
    v["resources"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| {
                    format!(
                        "{}.{}",
                        r["type"].as_str().unwrap(),
                        r["name"].as_str().unwrap()
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_then_apply_puts_state_under_the_workspace_key_and_a_second_run_plans_no_change() {
    let stage = Stage::start().await;
    let first = stage.run("tf-first", &[]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));

    let plan = stage.outputs("tf-first", "plan");
    assert_eq!(plan["workspace"], "stage_test");
    assert_eq!(plan["state_key"], "tfstate/stage_test/stage.tfstate");
    assert_eq!(
        (plan["add"].as_u64(), plan["destroy"].as_u64()),
        (Some(2), Some(0)),
        "{plan}"
    );
    assert_eq!(plan["summary"], "2 to add, 0 to change, 0 to destroy");
    assert_eq!(plan["changes"], true);

    for report in ["report.json", "report.md"] {
        let path = stage.run_dir("tf-first").join(report);
        let body =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            body.contains("2 to add, 0 to change, 0 to destroy"),
            "{report}: {body}"
        );
    }

    let applied = stage.outputs("tf-first", "apply");
    assert_eq!(applied["app_image"], "img-1", "{applied}");
    assert_eq!(applied["admin_token"], "[redacted]", "{applied}");
    assert_eq!(
        applied["redacted_outputs"],
        serde_json::json!(["admin_token"])
    );

    let state = stage
        .state()
        .await
        .expect("the state object under the workspace key");
    let mut resources = resources_in(&state);
    resources.sort();
    assert_eq!(resources, ["terraform_data.app", "terraform_data.volume"]);

    // The sensitive value is in the state (Terraform keeps it there) but nowhere cutover
    // writes: journal, report, Terraform's log, cutover's own output.
    for file in files_under(&stage.run_dir("tf-first")) {
        if file.extension().is_some_and(|e| e == "tfplan") {
            continue; // Terraform's own plan file, mode 0600 in a 0700 directory
        }
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(CANARY),
            "{} holds the sensitive output",
            file.display()
        );
    }
    assert!(!text(&first).contains(CANARY));
    let log = std::fs::read_to_string(
        stage
            .run_dir("tf-first")
            .join("terraform/stage/terraform.log"),
    )
    .unwrap();
    assert!(log.contains("Apply complete!"), "{log}");
    assert!(
        !String::from_utf8_lossy(&first.stderr).contains("Apply complete!"),
        "terraform's output stays in its log"
    );

    let second = stage.run("tf-second", &[]);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    let plan = stage.outputs("tf-second", "plan");
    assert_eq!(
        plan["summary"], "0 to add, 0 to change, 0 to destroy",
        "{plan}"
    );
    assert_eq!(plan["changes"], false);
    assert_eq!(stage.state().await.map(|s| resources_in(&s).len()), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_that_destroys_a_protected_resource_stops_before_apply_unless_allowed() {
    let stage = Stage::start().await;
    let first = stage.run("tf-create", &[]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let before = stage.state().await.expect("state after the first apply");

    let destroy = stage.run("tf-destroy", &["keep_volume=false"]);
    assert_ne!(destroy.status.code(), Some(0), "{}", text(&destroy));
    let out = text(&destroy);
    assert!(
        out.contains("would destroy protected resources: terraform_data.volume[0] (delete)"),
        "{out}"
    );
    assert!(out.contains("allow_destroy"), "{out}");
    assert!(
        !stage.started("tf-destroy", "apply"),
        "apply must not start"
    );
    assert_eq!(
        stage.state().await.as_deref(),
        Some(before.as_slice()),
        "state unchanged"
    );

    let allowed = stage.run(
        "tf-allowed",
        &["keep_volume=false", r#"allow=["terraform_data.volume"]"#],
    );
    assert_eq!(allowed.status.code(), Some(0), "{}", text(&allowed));
    assert_eq!(stage.outputs("tf-allowed", "plan")["destroy"], 1);
    let after = stage.state().await.unwrap();
    assert_eq!(resources_in(&after), ["terraform_data.app"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_refuses_a_plan_file_changed_after_planning() {
    let stage = Stage::start().await;
    let run = stage.run("tf-tamper", &["tamper=true"]);
    assert_ne!(run.status.code(), Some(0), "{}", text(&run));
    let out = text(&run);
    assert!(out.contains("changed since it was planned"), "{out}");
    assert!(out.contains("nothing was applied"), "{out}");
    let resources = stage
        .state()
        .await
        .map(|s| resources_in(&s))
        .unwrap_or_default();
    assert!(resources.is_empty(), "nothing applied, found {resources:?}");
}

#[test]
fn a_missing_terraform_binary_is_a_clear_error_that_names_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let empty_path = dir.path().join("bin");
    std::fs::create_dir(&empty_path).unwrap();
    std::fs::write(
        dir.path().join("env.toml"),
        "name = \"test\"\nprovider = \"local\"\nstate_dir = \"state\"\n[terraform]\n\
         bucket = \"b\"\nregion = \"af-south-1\"\nendpoint = \"http://127.0.0.1:9\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("book.toml"), BOOK).unwrap();
    let out = cutover()
        .current_dir(dir.path())
        .args(run_args("tf-nobin"))
        .args(["--set", &format!("module={}", fixture().display())])
        .env("PATH", &empty_path)
        .env_remove("CUTOVER_STATE_DIR")
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("neither `terraform` nor `tofu` is on PATH"),
        "{all}"
    );
    assert!(all.contains("scripts/setup.sh"), "{all}");
}

/// `runbooks/deploy.toml` plans against a shipped AWS environment, stages in order, with
/// and without the databases migration; nothing is contacted.
#[test]
fn the_deploy_runbook_plans_its_stages_in_order_against_staging() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for migrate in ["false", "true"] {
        let out = cutover()
            .current_dir(&root)
            .args([
                "plan",
                "runbooks/deploy.toml",
                "--env",
                "staging",
                "--output",
                "json",
            ])
            .args(["--set", &format!("migrate_databases={migrate}")])
            .env_remove("CUTOVER_STATE_DIR")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let all = plan.to_string();
        let pos = |id: &str| {
            all.find(&format!("\"{id}\""))
                .unwrap_or_else(|| panic!("{id} is not in the plan: {all}"))
        };
        for (a, b) in [
            ("plan-connectors", "apply-connectors"),
            ("apply-connectors", "plan-databases"),
            ("apply-databases", "plan-app"),
            ("plan-app", "apply-app"),
            ("apply-app", "bg-preflight-ledger"),
            ("bg-switch", "bg-decommission-ledger"),
        ] {
            assert!(pos(a) < pos(b), "{a} must come before {b}");
        }
        assert!(all.contains("terraform.apply"), "{all}");
    }
}

/// A bad `[terraform]` table is reported at load, every problem at its `file:line:col`.
#[test]
fn a_bad_terraform_table_is_reported_where_it_is_wrong() {
    use cutover::config::{Environment, SourceFile};
    let text = "name = \"t\"\nprovider = \"local\"\n[terraform]\nbucket = \"b\"\nendpoint = \"localhost:9\"\nprotect = \"aws_s3_bucket\"\nlock_table = \"x\"\n";
    let problems = Environment::parse(SourceFile::new("env.toml", text))
        .expect_err("the table is invalid")
        .to_string();
    for want in [
        "env.toml:3:1",
        "missing required key `region`",
        "env.toml:5:12",
        "endpoint `localhost:9` is not a URL",
        "env.toml:6:11",
        "`protect` in [terraform] must be a list of strings",
        "env.toml:7:1",
        "lock_table",
    ] {
        assert!(problems.contains(want), "{want} not in:\n{problems}");
    }
}

/// A state lock another Terraform holds (its S3 lock file) is a transient failure: the
/// step is retried, and the run ends saying how to release a dead holder's lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_state_lock_is_retried_as_transient_and_names_force_unlock() {
    let stage = Stage::start().await;
    let lock = serde_json::json!({
        "ID": "5f0c2a4e-0000-4000-8000-000000000001", "Operation": "OperationTypeApply",
        "Info": "", "Who": "someone@elsewhere", "Version": "1.11.4",
        "Created": "2026-12-02T00:00:00Z", "Path": format!("{BUCKET}/{PREFIX}/stage_test/stage.tfstate")
    });
    stage
        .s3
        .put_object()
        .bucket(BUCKET)
        .key(format!("{PREFIX}/stage_test/stage.tfstate.tflock"))
        .body(serde_json::to_vec(&lock).unwrap().into())
        .send()
        .await
        .unwrap();
    let run = stage.run("tf-locked", &[]);
    assert_ne!(run.status.code(), Some(0), "{}", text(&run));
    let journal = stage.journal("tf-locked");
    assert!(
        journal.iter().any(|e| e["event"] == "step_retrying"
            && e["step"] == "plan"
            && e["class"] == "transient"),
        "the held lock is retried: {journal:?}"
    );
    let failed = journal
        .iter()
        .find(|e| e["event"] == "step_failed" && e["step"] == "plan")
        .expect("plan failed");
    assert_eq!(failed["class"], "transient");
    assert!(
        failed["hint"].as_str().unwrap().contains("force-unlock"),
        "{failed}"
    );
    assert!(!stage.started("tf-locked", "apply"));
}
