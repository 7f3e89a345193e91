//! `ami.build`, `changes.detect` and `release.record` against moto (real EC2 RunInstances,
//! StopInstances, CreateImage, DescribeImages, tags, SSM parameters), and the
//! `ami-update` runbook planned and run end to end on an unchanged night.
//!
//! What is faked: moto runs no SSM command and reports no SSM agent, so the builder's
//! install goes through [`FakeExec`] (it runs nothing and reports the exit code the test
//! chose) and the builder counts as ready once EC2 says it is running
//! ([`ReadyWhenRunning`]). Everything else is the real code path against moto.

use crate::aws_support::{setup, Moto};
use crate::engine_cli::{cutover, text};
use async_trait::async_trait;
use cutover::config::Environment;
use cutover::failure::{ErrorClass, Failure};
use cutover::ids::{InstanceId, RunId, StepId};
use cutover::progress::no_progress;
use cutover::providers::aws::images::image_tag;
use cutover::providers::aws::{AwsClients, Ec2Compute, Ec2Images, ParameterStore};
use cutover::providers::{
    tag, Compute, Exec, ExecHandle, ExecResult, ExecStatus, Instance, InstanceState,
    ProvisionRequest, Readiness, Script, Tags,
};
use cutover::steps::ami::{AmiBuild, Bakery};
use cutover::steps::changes::{Detect, Record, ReleaseStore};
use cutover::steps::{Decision, Outputs, Services, Step, StepContext, StepRecorder};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const BASE_PARAMETER: &str = "/cutover-test/base-ami";

/// The install "runs" and exits with `exit_code`; every script it was given is kept.
struct FakeExec {
    exit_code: i32,
    scripts: Mutex<Vec<Script>>,
}

impl FakeExec {
    fn exiting(exit_code: i32) -> Arc<Self> {
        Arc::new(Self {
            exit_code,
            scripts: Mutex::new(Vec::new()),
        })
    }
}

#[async_trait]
impl Exec for FakeExec {
    async fn start(&self, instance: &InstanceId, script: &Script) -> Result<ExecHandle, Failure> {
        let mut scripts = self.scripts.lock().unwrap();
        scripts.push(script.clone());
        Ok(ExecHandle {
            id: format!("cmd-{}", scripts.len()),
            instance: instance.clone(),
            nonce: script.nonce.clone(),
        })
    }
    async fn poll(&self, handle: &ExecHandle) -> Result<ExecStatus, Failure> {
        Ok(ExecStatus::Finished(ExecResult {
            exit_code: self.exit_code,
            outputs: Default::default(),
            output_tail: format!("fake install exited {}", self.exit_code),
            nonce: handle.nonce.clone(),
        }))
    }
    async fn cancel(&self, _handle: &ExecHandle) -> Result<(), Failure> {
        Ok(())
    }
}

/// EC2 compute, but "ready" once running (moto has no SSM agent to report Online).
struct ReadyWhenRunning(Ec2Compute);

#[async_trait]
impl Compute for ReadyWhenRunning {
    async fn provision(&self, request: &ProvisionRequest) -> Result<Instance, Failure> {
        self.0.provision(request).await
    }
    async fn describe(&self, id: &InstanceId) -> Result<Option<Instance>, Failure> {
        self.0.describe(id).await
    }
    async fn readiness(&self, id: &InstanceId) -> Result<Readiness, Failure> {
        Ok(match self.0.describe(id).await?.map(|i| i.state) {
            Some(InstanceState::Running) => Readiness::Ready,
            other => Readiness::NotYet(format!("{other:?}")),
        })
    }
    async fn stop(&self, id: &InstanceId) -> Result<(), Failure> {
        self.0.stop(id).await
    }
    async fn terminate(&self, id: &InstanceId) -> Result<(), Failure> {
        self.0.terminate(id).await
    }
    async fn find_by_tags(&self, tags: &Tags) -> Result<Vec<Instance>, Failure> {
        self.0.find_by_tags(tags).await
    }
}

#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl StepRecorder for Recorder {
    fn intent(
        &self,
        _: &StepId,
        action: &str,
        _: &str,
        _: serde_json::Value,
    ) -> Result<(), Failure> {
        self.0.lock().unwrap().push(action.to_owned());
        Ok(())
    }
    fn checkpoint(&self, _: &StepId, _: serde_json::Value) -> Result<(), Failure> {
        Ok(())
    }
}

struct Fixture {
    moto: Moto,
    clients: AwsClients,
    dir: tempfile::TempDir,
    environment: Arc<Environment>,
    params: ParameterStore,
    images: Ec2Images,
    base_ami: String,
}

fn git(repo: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .output()
        .expect("git runs (install git)");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn commit_all(repo: &Path, message: &str) {
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", message]);
}

impl Fixture {
    /// moto, an aws environment file on it, a git clone with the shipped recipe (its
    /// base-AMI parameter pointed at one the test controls) and terraform/ + workflows.
    async fn new(bucket: &str) -> Self {
        let (moto, settings, clients) = setup(bucket).await;
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let ami = dir.path().join("ami");
        std::fs::create_dir_all(ami.join("scripts")).unwrap();
        for f in [
            "community.env",
            "enterprise.env",
            "scripts/install.sh",
            "scripts/configure.sh",
        ] {
            std::fs::copy(root.join("ami").join(f), ami.join(f)).unwrap();
        }
        let versions = std::fs::read_to_string(root.join("ami/versions.env")).unwrap();
        let versions: String = versions
            .lines()
            .map(|l| {
                if l.starts_with("BASE_AMI_PARAMETER=") {
                    format!("BASE_AMI_PARAMETER={BASE_PARAMETER}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        std::fs::write(ami.join("versions.env"), versions).unwrap();
        for (f, body) in [
            ("terraform/main.tf", "# connectors\n"),
            (".github/workflows/ci.yml", "name: ci\n"),
        ] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        git(dir.path(), &["init", "-q"]);
        commit_all(dir.path(), "first");

        let env_path = dir.path().join("env.toml");
        std::fs::write(&env_path, env_file(&settings)).unwrap();
        let environment = Arc::new(
            Environment::load(env_path.to_str().unwrap()).unwrap_or_else(|p| panic!("{p}")),
        );
        let params = ParameterStore::new(clients.ssm.clone(), "cloud");
        // The base AMI: moto's Amazon Linux image behind AWS's own public parameter.
        let base_ami = params
            .public_base_ami(
                "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
            )
            .await
            .unwrap();
        params.put(BASE_PARAMETER, &base_ami).await.unwrap();
        let images = Ec2Images::new(clients.ec2.clone());
        Self {
            moto,
            clients,
            dir,
            environment,
            params,
            images,
            base_ami,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn bakery(&self, exec: Arc<FakeExec>) -> Bakery {
        Bakery {
            images: self.images.clone(),
            parameters: self.params.clone(),
            compute: Arc::new(ReadyWhenRunning(Ec2Compute::new(
                self.clients.ec2.clone(),
                self.clients.ssm.clone(),
            ))),
            exec,
        }
    }

    /// Drives `ami.build` (the community image) as step `build` of `run`.
    async fn build(&self, run: &str, exec: &Arc<FakeExec>) -> Result<Outputs, Failure> {
        let ctx = self.ctx(
            run,
            "build",
            self.build_inputs(),
            Arc::new(Recorder::default()),
        );
        drive(&mut AmiBuild::new(Some(self.bakery(exec.clone()))), &ctx).await
    }

    /// What the community image parameter names now.
    async fn published(&self) -> Option<String> {
        self.params
            .get("/cutover/cloud/image/community")
            .await
            .unwrap()
    }

    fn store(&self) -> ReleaseStore {
        ReleaseStore {
            images: self.images.clone(),
            parameters: self.params.clone(),
        }
    }

    fn ctx(
        &self,
        run: &str,
        step: &str,
        inputs: serde_json::Value,
        recorder: Arc<Recorder>,
    ) -> StepContext {
        let services = Arc::new(Services {
            environment: self.environment.clone(),
            run_dir: self.dir.path().to_path_buf(),
            progress: no_progress(),
            providers: None,
        });
        let serde_json::Value::Object(inputs) = inputs else {
            panic!("inputs are a table")
        };
        StepContext::new(
            RunId::new(run),
            StepId::new(step),
            1,
            inputs,
            services,
            recorder,
            None,
        )
    }

    fn build_inputs(&self) -> serde_json::Value {
        serde_json::json!({
            "edition": "community",
            "recipe": self.path("ami").to_str().unwrap(),
            "commit": "0123456789abcdef0123456789abcdef01234567",
        })
    }

    fn detect_inputs(&self) -> serde_json::Value {
        serde_json::json!({
            "edition": "community",
            "recipe": self.path("ami").to_str().unwrap(),
            "repo": self.dir.path().to_str().unwrap(),
            "app_image_parameter": "/cutover-test/app-image",
        })
    }

    /// Instances of `run` in any state, by tag.
    async fn instances_of(&self, run: &str) -> Vec<Instance> {
        let mut tags = Tags::new();
        tags.insert(tag::RUN_ID.into(), run.into());
        Ec2Compute::new(self.clients.ec2.clone(), self.clients.ssm.clone())
            .find(
                &tags,
                &[
                    "pending",
                    "running",
                    "stopping",
                    "stopped",
                    "shutting-down",
                    "terminated",
                ],
            )
            .await
            .unwrap()
    }
}

fn env_file(settings: &cutover::providers::aws::AwsSettings) -> String {
    format!(
        "name = \"cloud\"\nprovider = \"aws\"\nstate_dir = \"state\"\n\
         [aws]\nregion = \"{}\"\nbucket = \"{}\"\nstate_prefix = \"{}\"\nendpoint_url = \"{}\"\n",
        settings.region,
        settings.bucket,
        settings.prefix,
        settings.endpoint_url.as_deref().unwrap()
    )
}

/// Calls `advance` until the step is done or fails (bounded; Wait is not slept on:
/// moto's state changes are immediate).
async fn drive(step: &mut dyn Step, ctx: &StepContext) -> Result<Outputs, Failure> {
    for _ in 0..50 {
        match step.advance(ctx).await {
            Decision::Done(out) => return Ok(out),
            Decision::Fail(f) => return Err(f),
            Decision::Wait { .. } => tokio::task::yield_now().await,
        }
    }
    panic!("the step did not finish within 50 polls")
}

async fn compensate(step: &mut dyn Step, ctx: &StepContext, outputs: Option<&Outputs>) {
    for _ in 0..50 {
        match step.compensate(ctx, outputs).await {
            Decision::Done(_) => return,
            Decision::Fail(f) => panic!("compensation failed: {f}"),
            Decision::Wait { .. } => tokio::task::yield_now().await,
        }
    }
    panic!("the compensation did not finish within 50 polls")
}

fn s<'a>(out: &'a Outputs, key: &str) -> &'a str {
    out.get(key)
        .and_then(|v| v.as_str())
        .unwrap_or_else(|| panic!("output {key}: {out:?}"))
}

fn b(out: &Outputs, key: &str) -> bool {
    out.get(key)
        .and_then(|v| v.as_bool())
        .unwrap_or_else(|| panic!("output {key}: {out:?}"))
}

#[tokio::test]
async fn a_build_makes_a_tagged_published_image_and_a_second_run_adopts_it() {
    let f = Fixture::new("cutover-ami-build").await;
    let exec = FakeExec::exiting(0);
    let recorder = Arc::new(Recorder::default());
    let ctx = f.ctx("run-a", "build", f.build_inputs(), recorder.clone());
    let out = drive(&mut AmiBuild::new(Some(f.bakery(exec.clone()))), &ctx)
        .await
        .unwrap();

    assert!(!b(&out, "adopted"));
    let image_id = s(&out, "image_id");
    assert_eq!(s(&out, "source_ami"), f.base_ami);
    assert_eq!(s(&out, "neo4j_version"), "5.26.30");
    assert_eq!(s(&out, "parameter"), "/cutover/cloud/image/community");
    assert_eq!(
        f.published().await.as_deref(),
        Some(image_id),
        "the image id is published"
    );
    let image = f
        .images
        .describe(image_id)
        .await
        .unwrap()
        .expect("the image exists");
    for (k, v) in [
        (image_tag::BAKE_KEY, s(&out, "bake_key")),
        (image_tag::SOURCE_AMI, f.base_ami.as_str()),
        (image_tag::EDITION, "community"),
        (image_tag::VERSION, "5.26.30"),
        (
            image_tag::RECIPE_COMMIT,
            "0123456789abcdef0123456789abcdef01234567",
        ),
        (tag::RUN_ID, "run-a"),
    ] {
        assert_eq!(
            image.tags.get(k).map(String::as_str),
            Some(v),
            "image tag {k}: {:?}",
            image.tags
        );
    }
    for snapshot in &image.snapshot_ids {
        let described = f
            .clients
            .ec2
            .describe_snapshots()
            .snapshot_ids(snapshot)
            .send()
            .await
            .unwrap();
        let tags: Tags = described.snapshots()[0]
            .tags()
            .iter()
            .map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned()))
            .collect();
        assert_eq!(
            tags.get(image_tag::BAKE_KEY).map(String::as_str),
            Some(s(&out, "bake_key"))
        );
    }
    // The install went through the exec channel, with the whole recipe in it.
    let scripts = exec.scripts.lock().unwrap().clone();
    assert_eq!(scripts.len(), 1);
    assert!(scripts[0].body.contains("scripts/install.sh\" community"));
    assert!(scripts[0].body.contains("NEO4J_VERSION=5.26.30"));
    // One builder, terminated.
    let builders = f.instances_of("run-a").await;
    assert_eq!(builders.len(), 1, "{builders:?}");
    assert_eq!(
        builders[0].tags.get(image_tag::ROLE).map(String::as_str),
        Some("builder")
    );
    assert!(
        matches!(
            builders[0].state,
            InstanceState::Terminated | InstanceState::ShuttingDown
        ),
        "{:?}",
        builders[0].state
    );
    let actions = recorder.0.lock().unwrap().clone();
    for a in [
        "ec2.run_instances",
        "exec.start",
        "ec2.stop_instances",
        "ec2.create_image",
        "ec2.terminate_instances",
        "ssm.put_parameter",
    ] {
        assert!(
            actions.iter().any(|x| x == a),
            "intent {a} journaled before the effect: {actions:?}"
        );
    }

    // A second run with the same recipe on the same base: adopted, no builder, no install.
    let ctx = f.ctx(
        "run-b",
        "build",
        f.build_inputs(),
        Arc::new(Recorder::default()),
    );
    let again = drive(&mut AmiBuild::new(Some(f.bakery(exec.clone()))), &ctx)
        .await
        .unwrap();
    assert!(b(&again, "adopted"));
    assert_eq!(s(&again, "image_id"), image_id);
    assert_eq!(s(&again, "source_ami"), f.base_ami);
    assert!(
        f.instances_of("run-b").await.is_empty(),
        "no second builder"
    );
    assert_eq!(exec.scripts.lock().unwrap().len(), 1, "no second install");
}

#[tokio::test]
async fn a_failed_install_leaves_no_builder_and_no_image() {
    let f = Fixture::new("cutover-ami-fail").await;
    let exec = FakeExec::exiting(3);
    let failure = f.build("run-f", &exec).await.unwrap_err();
    assert_eq!(failure.class, ErrorClass::Permanent);
    assert!(failure.message.contains("exit 3"), "{}", failure.message);
    let live = f.instances_of("run-f").await;
    assert_eq!(live.len(), 1, "the builder was started before the failure");
    assert!(!matches!(live[0].state, InstanceState::Terminated));

    // The engine compensates with a fresh context (no checkpoint): tags find the builder.
    let ctx = f.ctx(
        "run-f",
        "build",
        f.build_inputs(),
        Arc::new(Recorder::default()),
    );
    compensate(&mut AmiBuild::new(Some(f.bakery(exec))), &ctx, None).await;
    for i in f.instances_of("run-f").await {
        assert!(
            matches!(
                i.state,
                InstanceState::Terminated | InstanceState::ShuttingDown
            ),
            "builder {} left {:?}",
            i.id,
            i.state
        );
    }
    let mut by_run = Tags::new();
    by_run.insert(tag::RUN_ID.into(), "run-f".into());
    assert!(
        f.images.find_by_tags(&by_run).await.unwrap().is_empty(),
        "no image"
    );
    assert_eq!(f.published().await, None, "nothing published");
}

#[tokio::test]
async fn changes_detect_sees_nothing_on_an_unchanged_night_and_each_kind_of_change() {
    let f = Fixture::new("cutover-ami-detect").await;
    let detect = |run: &str| {
        f.ctx(
            run,
            "detect",
            f.detect_inputs(),
            Arc::new(Recorder::default()),
        )
    };
    f.params
        .put("/cutover-test/app-image", "sha256:aaaa")
        .await
        .unwrap();

    // Nothing built, nothing released: everything counts as changed, and says why.
    let out = drive(&mut Detect::new(Some(f.store())), &detect("d0"))
        .await
        .unwrap();
    for k in [
        "recipe_changed",
        "image_needed",
        "terraform_changed",
        "workflows_changed",
        "app_image_changed",
        "anything_changed",
    ] {
        assert!(b(&out, k), "{k}: {}", s(&out, "reasons"));
    }
    assert!(!b(&out, "base_image_changed"));
    assert!(
        s(&out, "reasons").contains("no community image is published"),
        "{}",
        s(&out, "reasons")
    );

    // Build, record the release: an unchanged night.
    f.build("b1", &FakeExec::exiting(0)).await.unwrap();
    let record = f.ctx(
        "b1",
        "record",
        serde_json::json!({ "repo": f.dir.path().to_str().unwrap(), "app_image": "sha256:aaaa" }),
        Arc::new(Recorder::default()),
    );
    let recorded = drive(&mut Record::new(Some(f.store())), &record)
        .await
        .unwrap();
    assert_eq!(s(&recorded, "previous_commit"), "");
    let out = drive(&mut Detect::new(Some(f.store())), &detect("d1"))
        .await
        .unwrap();
    for k in [
        "base_image_changed",
        "recipe_changed",
        "image_needed",
        "terraform_changed",
        "workflows_changed",
        "app_image_changed",
        "anything_changed",
    ] {
        assert!(!b(&out, k), "{k}: {}", s(&out, "reasons"));
    }
    assert!(
        s(&out, "reasons").starts_with("nothing changed"),
        "{}",
        s(&out, "reasons")
    );
    assert_eq!(s(&out, "commit"), s(&recorded, "commit"));

    // A newer base AMI (the public parameter moved): an image is needed, the recipe is the same.
    let other_base = f
        .params
        .public_base_ami("/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64")
        .await
        .unwrap();
    assert_ne!(
        other_base, f.base_ami,
        "moto serves distinct x86_64 and arm64 images"
    );
    f.params.put(BASE_PARAMETER, &other_base).await.unwrap();
    let out = drive(&mut Detect::new(Some(f.store())), &detect("d2"))
        .await
        .unwrap();
    assert!(b(&out, "base_image_changed") && b(&out, "image_needed") && !b(&out, "recipe_changed"));
    assert!(
        s(&out, "reasons").contains(&other_base),
        "{}",
        s(&out, "reasons")
    );
    f.params.put(BASE_PARAMETER, &f.base_ami).await.unwrap();

    // A recipe change and a terraform change, committed; workflows untouched.
    std::fs::write(
        f.path("ami/scripts/configure.sh"),
        std::fs::read_to_string(f.path("ami/scripts/configure.sh")).unwrap() + "# tuned\n",
    )
    .unwrap();
    std::fs::write(f.path("terraform/main.tf"), "# connectors v2\n").unwrap();
    commit_all(f.dir.path(), "recipe and terraform");
    f.params
        .put("/cutover-test/app-image", "sha256:bbbb")
        .await
        .unwrap();
    let out = drive(&mut Detect::new(Some(f.store())), &detect("d3"))
        .await
        .unwrap();
    assert!(b(&out, "recipe_changed") && b(&out, "image_needed") && !b(&out, "base_image_changed"));
    assert!(b(&out, "terraform_changed") && !b(&out, "workflows_changed"));
    assert!(b(&out, "app_image_changed") && b(&out, "anything_changed"));
    let reasons = s(&out, "reasons");
    assert!(
        reasons.contains("terraform/main.tf") && reasons.contains("sha256:bbbb"),
        "{reasons}"
    );

    // The marker names a commit this clone lacks (a shallow CI checkout): a clear error.
    f.params
        .set_release_marker("commit", "deadbeefdeadbeefdeadbeefdeadbeefdeadbeef")
        .await
        .unwrap();
    let err = drive(&mut Detect::new(Some(f.store())), &detect("d4"))
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(
        err.hint.as_deref().unwrap_or("").contains("fetch-depth: 0"),
        "{err:?}"
    );
}

/// The nightly runbook planned against the shipped aws environments: detect first, the
/// build behind its `when`, green provisioned from the built image, the release recorded.
#[test]
fn ami_update_plans_for_staging_and_production() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for env in ["staging", "production"] {
        let out = cutover()
            .current_dir(root)
            .args([
                "plan",
                "runbooks/ami-update.toml",
                "--env",
                &format!("environments/{env}.toml"),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{env}: {}", text(&out));
        let plan = String::from_utf8_lossy(&out.stdout);
        for needle in [
            "detect [changes.detect]",
            "build [ami.build]",
            "when: ",
            "image_needed",
            "image = ${{ steps.build.outputs.image_id }}",
            "record [release.record]",
            "terminates the builder",
        ] {
            assert!(
                plan.contains(needle),
                "{env}: {needle:?} not in the plan:\n{plan}"
            );
        }
        let order = |id: &str| {
            plan.find(&format!("  {id} ["))
                .unwrap_or_else(|| panic!("{id}"))
        };
        assert!(order("detect") < order("build") && order("build") < order("preflight-ledger"));
    }
}

/// Two databases as the shipped staging file declares them (the plan checks them; on an
/// unchanged night no step touches them).
const DATABASES: &str = r#"
[databases.ledger]
engine = "neo4j"
edition = "community"
version = "5.26.0"
database = "neo4j"
user = "credex_app"
password_secret = "cloud/ledgerspace"
admin_secret = "cloud/ledgerspace-admin"
image = "ami-0123456789abcdef0"
instance = { type = "r5.large" }

[databases.search]
engine = "neo4j"
edition = "community"
version = "5.26.0"
database = "neo4j"
user = "credex_app"
password_secret = "cloud/searchspace"
admin_secret = "cloud/searchspace-admin"
image = "ami-0123456789abcdef0"
instance = { type = "r5.large" }
"#;

/// `cutover run runbooks/ami-update.toml` on a night when the published image matches
/// the recipe and the base AMI: Succeeded, the build and everything after it skipped, no
/// instance launched, no image made, and the report says why.
#[tokio::test]
async fn an_unchanged_night_runs_ami_update_to_succeeded_and_changes_nothing() {
    let f = Fixture::new("cutover-ami-night").await;
    let built = f.build("bake", &FakeExec::exiting(0)).await.unwrap();
    let record = f.ctx(
        "bake",
        "record",
        serde_json::json!({ "repo": f.dir.path().to_str().unwrap() }),
        Arc::new(Recorder::default()),
    );
    drive(&mut Record::new(Some(f.store())), &record)
        .await
        .unwrap();
    let env = std::fs::read_to_string(f.path("env.toml")).unwrap() + DATABASES;
    std::fs::write(f.path("env.toml"), env).unwrap();
    let instances_before = f.instances_of("bake").await.len();

    let runbook = Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks/ami-update.toml");
    let out = cutover()
        .current_dir(f.dir.path())
        .args([
            "run",
            runbook.to_str().unwrap(),
            "--env",
            "env.toml",
            "--yes",
            "--run-id",
            "night-1",
        ])
        .envs(f.moto.cli_env())
        .env_remove("CUTOVER_STATE_DIR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = std::fs::read_to_string(f.path("state/runs/night-1/report.json"))
        .unwrap_or_else(|e| panic!("report.json: {e}\n{}", text(&out)));
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["outcome"], "Succeeded", "{report:#}");
    let rendered = report.to_string();
    assert!(
        rendered.contains("nothing changed"),
        "the report says why: {report:#}"
    );
    let journal = std::fs::read_to_string(f.path("state/runs/night-1/journal.jsonl")).unwrap();
    let skipped = journal
        .lines()
        .filter(|l| l.contains("\"event\":\"step_skipped\""))
        .count();
    assert_eq!(
        skipped, 22,
        "build + the 20 migration steps + record skipped:\n{journal}"
    );
    assert!(
        f.instances_of("night-1").await.is_empty(),
        "no builder, no green"
    );
    assert_eq!(f.instances_of("bake").await.len(), instances_before);
    assert_eq!(
        f.published().await.as_deref(),
        Some(s(&built, "image_id")),
        "the published image is untouched"
    );
}

/// States moto cannot produce (its images are available at once), from recorded
/// responses: compensation waits on a pending image and never deregisters it; a failed
/// image of the run is deregistered with its snapshot.
#[tokio::test]
async fn compensation_waits_on_a_pending_image_and_removes_a_failed_one() {
    use aws_sdk_ec2::operation::describe_images::DescribeImagesOutput;
    use aws_sdk_ec2::types::{BlockDeviceMapping, EbsBlockDevice, Image as Ec2Image, ImageState};
    use aws_smithy_mocks::{mock, RuleMode};
    let f = Fixture::new("cutover-ami-states").await;
    let image = |state: ImageState| {
        DescribeImagesOutput::builder()
            .images(
                Ec2Image::builder()
                    .image_id("ami-0feedfacefeedface")
                    .name("cutover-neo4j-community")
                    .state(state)
                    .block_device_mappings(
                        BlockDeviceMapping::builder()
                            .ebs(EbsBlockDevice::builder().snapshot_id("snap-0feed").build())
                            .build(),
                    )
                    .build(),
            )
            .build()
    };
    let bakery = |ec2: aws_sdk_ec2::Client| Bakery {
        images: Ec2Images::new(ec2),
        ..f.bakery(FakeExec::exiting(0))
    };
    let ctx = || {
        f.ctx(
            "run-s",
            "build",
            f.build_inputs(),
            Arc::new(Recorder::default()),
        )
    };

    // Pending: Wait, and no other EC2 call (any would find no rule and fail the step).
    let pending =
        mock!(aws_sdk_ec2::Client::describe_images).then_output(move || image(ImageState::Pending));
    let ec2 = crate::mocked_client!(aws_sdk_ec2, RuleMode::MatchAny, [&pending]);
    let decision = AmiBuild::new(Some(bakery(ec2)))
        .compensate(&ctx(), None)
        .await;
    assert!(
        matches!(&decision, Decision::Wait { reason, .. } if reason.contains("never removed")),
        "{decision:?}"
    );

    // Failed: deregistered, and its snapshot deleted.
    let failed =
        mock!(aws_sdk_ec2::Client::describe_images).then_output(move || image(ImageState::Failed));
    let deregister = mock!(aws_sdk_ec2::Client::deregister_image).then_output(|| {
        aws_sdk_ec2::operation::deregister_image::DeregisterImageOutput::builder().build()
    });
    let delete = mock!(aws_sdk_ec2::Client::delete_snapshot).then_output(|| {
        aws_sdk_ec2::operation::delete_snapshot::DeleteSnapshotOutput::builder().build()
    });
    let ec2 = crate::mocked_client!(
        aws_sdk_ec2,
        RuleMode::MatchAny,
        [&failed, &deregister, &delete]
    );
    let decision = AmiBuild::new(Some(bakery(ec2)))
        .compensate(&ctx(), None)
        .await;
    assert!(matches!(decision, Decision::Done(_)), "{decision:?}");
    assert_eq!(deregister.num_calls(), 1);
    assert_eq!(delete.num_calls(), 1);
}
