//! `changes.detect` and `release.record`: what changed since the environment's last
//! release, so an unchanged night does nothing; and the release marker written after a
//! successful one.
//!
//! The release marker is a git commit id in SSM Parameter Store
//! (`/cutover/<env>/release/<marker>`); `terraform/` and `.github/workflows/` changes are
//! `git diff --name-only MARKER HEAD -- <dir>`. The image questions compare the image the
//! environment's image parameter names (its `cutover:bake-key` and `cutover:source-ami`
//! tags) with the recipe on disk and the base AMI the public parameter names today.

use super::ami::{aws_provider, edition_for, recipe_dir};
use super::kind::{step_inputs, OutputSpec, StepKind};
use super::recipe::Recipe;
use super::{Decision, Outputs, Step, StepContext};
use crate::failure::Failure;
use crate::providers::aws::images::image_tag;
use crate::providers::aws::{Ec2Images, ParameterStore};
use crate::try_step;
use async_trait::async_trait;
use std::path::PathBuf;

/// The marker `release.record` writes and `changes.detect` compares with by default.
pub const DEFAULT_MARKER: &str = "commit";
/// The marker holding the app image (tag or ECR digest) last deployed.
pub const APP_IMAGE_MARKER: &str = "app-image";

/// The outputs of `changes.detect`; later steps' `when` conditions use them.
pub const DETECT_OUTPUTS: &[&str] = &[
    "base_image_changed",
    "recipe_changed",
    "image_needed",
    "terraform_changed",
    "workflows_changed",
    "app_image_changed",
    "anything_changed",
    "reasons",
    "bake_key",
    "base_ami",
    "current_image",
    "commit",
    "release_marker",
    "app_image",
];

pub static KINDS: &[StepKind] = &[
    StepKind {
        name: "changes.detect",
        summary: "what changed since the environment's last release: base AMI, AMI recipe, terraform/, workflows, app image",
        inputs: DetectInputs::INPUTS,
        outputs: OutputSpec::Fixed(DETECT_OUTPUTS),
        changes: "",
        compensation: None,
        build: || Box::new(Detect::new(None)),
    },
    StepKind {
        name: "release.record",
        summary: "write the release marker (a git commit id, and the app image) after a successful release",
        inputs: RecordInputs::INPUTS,
        outputs: OutputSpec::Fixed(&["marker", "commit", "previous_commit", "parameter"]),
        changes: "writes /cutover/<env>/release/<marker> (and release/app-image) in SSM Parameter Store",
        compensation: Some("puts the previous marker back"),
        build: || Box::new(Record::new(None)),
    },
];

/// What both steps read and write: EC2 images and SSM parameters.
#[derive(Clone)]
pub struct ReleaseStore {
    pub images: Ec2Images,
    pub parameters: ParameterStore,
}

impl ReleaseStore {
    async fn open(ctx: &StepContext, kind: &str) -> Result<Self, Failure> {
        let env = ctx.environment();
        let aws = aws_provider(ctx, env, kind).await?;
        Ok(Self {
            images: aws.images(),
            parameters: aws.parameters(&env.name),
        })
    }
}

step_inputs! {
    struct DetectInputs {
        edition: Option<String> = optional String, "the image edition to check (default: the environment's Neo4j edition)";
        recipe: Option<String> = optional String, "the recipe directory (default \"ami\")";
        parameter: Option<String> = optional String, "SSM parameter naming the current image (default /cutover/<env>/image/<edition>)";
        repo: Option<String> = optional String, "the git clone to diff (default \".\")";
        marker: Option<String> = optional String, "the release marker to compare with (default \"commit\": /cutover/<env>/release/commit)";
        app_image_parameter: Option<String> = optional String, "SSM parameter holding the app image tag or ECR digest to deploy (none: app_image_changed is false)";
    }
}

pub struct Detect {
    store: Option<ReleaseStore>,
}

impl Detect {
    pub fn new(store: Option<ReleaseStore>) -> Self {
        Self { store }
    }
}

fn repo_dir(repo: &Option<String>) -> PathBuf {
    PathBuf::from(repo.as_deref().unwrap_or("."))
}

/// "a, b, c and 4 more".
fn some_files(files: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = files
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if files.len() > SHOWN {
        text.push_str(&format!(" and {} more", files.len() - SHOWN));
    }
    text
}

#[async_trait]
impl Step for Detect {
    async fn advance(&mut self, ctx: &StepContext) -> Decision {
        let inputs: DetectInputs = try_step!(ctx.inputs());
        if self.store.is_none() {
            self.store = Some(try_step!(ReleaseStore::open(ctx, "changes.detect").await));
        }
        let store = self.store.clone().expect("opened");
        let edition = try_step!(edition_for(ctx, inputs.edition.as_deref()));
        let recipe = try_step!(Recipe::load(&recipe_dir(inputs.recipe.as_deref()), edition));
        let key = recipe.bake_key();
        let repo = repo_dir(&inputs.repo);
        let head = try_step!(super::git::head(&repo));
        let mut reasons: Vec<String> = Vec::new();

        // The image.
        let parameter = inputs
            .parameter
            .clone()
            .unwrap_or_else(|| store.parameters.image_parameter(edition.as_str()));
        let base_now = try_step!(
            store
                .parameters
                .public_base_ami(recipe.base_ami_parameter())
                .await
        );
        let current = try_step!(store.parameters.get(&parameter).await);
        let (mut recipe_changed, mut base_changed) = (false, false);
        match &current {
            None => {
                recipe_changed = true;
                reasons.push(format!(
                    "no {} image is published at {parameter} yet",
                    edition.as_str()
                ));
            }
            Some(id) => match try_step!(store.images.describe(id).await) {
                None => {
                    recipe_changed = true;
                    reasons.push(format!(
                        "{parameter} names image {id}, which does not exist"
                    ));
                }
                Some(image) => {
                    let baked = image.tags.get(image_tag::BAKE_KEY).map(String::as_str);
                    if baked != Some(key.as_str()) {
                        recipe_changed = true;
                        reasons.push(format!(
                            "the {} recipe changed: image {id} was baked from {}, the recipe is now {}",
                            edition.as_str(),
                            baked.map(|k| &k[..k.len().min(12)]).unwrap_or("an untagged recipe"),
                            &key[..12]
                        ));
                    }
                    let source = image.tags.get(image_tag::SOURCE_AMI).map(String::as_str);
                    if source != Some(base_now.as_str()) {
                        base_changed = true;
                        reasons.push(format!(
                            "a newer base AMI: image {id} was baked from {}, {} now names {base_now}",
                            source.unwrap_or("an unknown base"),
                            recipe.base_ami_parameter()
                        ));
                    }
                }
            },
        }

        // terraform/ and workflows since the last release.
        let marker_name = inputs.marker.as_deref().unwrap_or(DEFAULT_MARKER);
        let marker = try_step!(store.parameters.release_marker(marker_name).await);
        let (terraform_changed, workflows_changed) = match &marker {
            None => {
                reasons.push(format!(
                    "no release is recorded at {} yet: terraform/ and .github/workflows/ count as changed",
                    store.parameters.release_parameter(marker_name)
                ));
                (true, true)
            }
            Some(m) => {
                let mut changed = |dir: &str| -> Result<bool, Failure> {
                    let files = super::git::changed_files(&repo, m, &head, &[dir])?;
                    if !files.is_empty() {
                        reasons.push(format!(
                            "{dir} changed since release {}: {}",
                            &m[..m.len().min(12)],
                            some_files(&files)
                        ));
                    }
                    Ok(!files.is_empty())
                };
                let t = try_step!(changed("terraform/"));
                let w = try_step!(changed(".github/workflows/"));
                (t, w)
            }
        };

        // The app image.
        let mut app_image = String::new();
        let app_image_changed = match &inputs.app_image_parameter {
            None => false,
            Some(p) => {
                let Some(wanted) = try_step!(store.parameters.get(p).await) else {
                    return Decision::Fail(
                        Failure::permanent(format!("app image parameter {p} does not exist"))
                            .with_hint("publish the image tag or ECR digest there, or drop app_image_parameter"),
                    );
                };
                let deployed = try_step!(store.parameters.release_marker(APP_IMAGE_MARKER).await);
                app_image = wanted.clone();
                if deployed.as_deref() != Some(wanted.as_str()) {
                    reasons.push(format!(
                        "the app image changed: {} deployed, {p} names {wanted}",
                        deployed.as_deref().unwrap_or("nothing recorded")
                    ));
                    true
                } else {
                    false
                }
            }
        };

        let image_needed = recipe_changed || base_changed;
        let anything = image_needed || terraform_changed || workflows_changed || app_image_changed;
        if !anything {
            reasons.push(format!(
                "nothing changed: image {} matches the recipe and base AMI {base_now}; no change under terraform/ or .github/workflows/ since release {}",
                current.as_deref().unwrap_or("-"),
                marker.as_deref().map(|m| &m[..m.len().min(12)]).unwrap_or("-")
            ));
        }
        let reasons = reasons.join("; ");
        ctx.note(reasons.clone());
        let mut out = Outputs::new();
        for (k, v) in [
            ("base_image_changed", base_changed),
            ("recipe_changed", recipe_changed),
            ("image_needed", image_needed),
            ("terraform_changed", terraform_changed),
            ("workflows_changed", workflows_changed),
            ("app_image_changed", app_image_changed),
            ("anything_changed", anything),
        ] {
            out.insert(k.into(), v.into());
        }
        out.insert("reasons".into(), reasons.into());
        out.insert("bake_key".into(), key.into());
        out.insert("base_ami".into(), base_now.into());
        out.insert("current_image".into(), current.unwrap_or_default().into());
        out.insert("commit".into(), head.into());
        out.insert("release_marker".into(), marker.unwrap_or_default().into());
        out.insert("app_image".into(), app_image.into());
        Decision::Done(out)
    }
}

step_inputs! {
    struct RecordInputs {
        marker: Option<String> = optional String, "marker name (default \"commit\")";
        commit: Option<String> = optional String, "the commit released (default: HEAD of `repo`)";
        repo: Option<String> = optional String, "the git clone (default \".\")";
        app_image: Option<String> = optional String, "the app image tag or digest deployed (recorded as the app-image marker)";
    }
}

pub struct Record {
    store: Option<ReleaseStore>,
}

impl Record {
    pub fn new(store: Option<ReleaseStore>) -> Self {
        Self { store }
    }

    async fn store(&mut self, ctx: &StepContext) -> Result<ReleaseStore, Failure> {
        if self.store.is_none() {
            self.store = Some(ReleaseStore::open(ctx, "release.record").await?);
        }
        Ok(self.store.clone().expect("opened"))
    }
}

fn is_commit_id(text: &str) -> bool {
    (7..=64).contains(&text.len()) && text.chars().all(|c| c.is_ascii_hexdigit())
}

#[async_trait]
impl Step for Record {
    async fn advance(&mut self, ctx: &StepContext) -> Decision {
        let inputs: RecordInputs = try_step!(ctx.inputs());
        let store = try_step!(self.store(ctx).await);
        let marker = inputs.marker.as_deref().unwrap_or(DEFAULT_MARKER);
        let commit = match &inputs.commit {
            Some(c) => c.clone(),
            None => try_step!(super::git::head(&repo_dir(&inputs.repo))),
        };
        if !is_commit_id(&commit) {
            return Decision::Fail(Failure::permanent(format!(
                "step {}: {commit:?} is not a git commit id",
                ctx.step_id
            )));
        }
        // What it was before, kept in the checkpoint for the compensation.
        let previous = match ctx.checkpoint_str("previous_commit") {
            Some(p) => p,
            None => {
                let p =
                    try_step!(store.parameters.release_marker(marker).await).unwrap_or_default();
                try_step!(ctx.save_checkpoint(serde_json::json!({ "previous_commit": p })));
                p
            }
        };
        let parameter = store.parameters.release_parameter(marker);
        try_step!(ctx.record_intent(
            "ssm.put_parameter",
            serde_json::json!({ "parameter": parameter, "value": commit })
        ));
        try_step!(store.parameters.set_release_marker(marker, &commit).await);
        if let Some(image) = inputs.app_image.as_deref().filter(|i| !i.is_empty()) {
            try_step!(
                store
                    .parameters
                    .set_release_marker(APP_IMAGE_MARKER, image)
                    .await
            );
        }
        let mut out = Outputs::new();
        out.insert("marker".into(), marker.into());
        out.insert("commit".into(), commit.into());
        out.insert("previous_commit".into(), previous.into());
        out.insert("parameter".into(), parameter.into());
        Decision::Done(out)
    }

    async fn compensate(&mut self, ctx: &StepContext, outputs: Option<&Outputs>) -> Decision {
        let Some(out) = outputs else {
            // Unfinished: the put may or may not have happened; nothing was promised yet
            // and the marker only moves forward to a commit that exists.
            return Decision::done();
        };
        let store = try_step!(self.store(ctx).await);
        let field = |k: &str| out.get(k).and_then(|v| v.as_str()).unwrap_or_default();
        let (marker, previous) = (field("marker"), field("previous_commit"));
        try_step!(ctx.record_intent(
            "ssm.put_parameter",
            serde_json::json!({ "parameter": field("parameter"), "value": previous })
        ));
        if previous.is_empty() {
            try_step!(
                store
                    .parameters
                    .delete(&store.parameters.release_parameter(marker))
                    .await
            );
        } else {
            try_step!(store.parameters.set_release_marker(marker, previous).await);
        }
        Decision::done()
    }
}
