//! `ami.build`: bake the Neo4j image of one edition from the pinned recipe in `ami/`.
//!
//! Bake key = SHA-256 of the recipe files and the edition ([`super::recipe`]). The base
//! AMI comes from its public SSM parameter. The image is named after edition, version,
//! bake key and base AMI, so an image of the same recipe on the same base is adopted,
//! never rebuilt. Otherwise: launch a builder (tagged `cutover:role=builder` with the run
//! and step), run the install through the exec channel, stop it, `CreateImage`, poll until
//! available (the step returns Wait; it never sleeps), tag image and snapshots with
//! provenance, terminate the builder, publish the image id to an SSM parameter.
//!
//! Compensation terminates every builder of the step (found by tags, so it works without
//! the checkpoint), deregisters an image of this run that failed, waits (never
//! deregisters) while one is still pending, and puts the parameter back to the image it
//! named before. An available image is complete and kept: the next run adopts it.

use super::kind::{step_inputs, OutputSpec, StepKind};
use super::recipe::Recipe;
use super::{Decision, Outputs, Step, StepContext};
use crate::config::{Environment, ProviderKind};
use crate::db::Edition;
use crate::db::EngineKind;
use crate::failure::Failure;
use crate::ids::InstanceId;
use crate::providers::aws::images::image_tag;
use crate::providers::aws::{AwsProvider, Ec2Images, ImageState, ParameterStore};
use crate::providers::{
    tag, Compute, Exec, ExecHandle, ExecStatus, InstanceState, ProvisionRequest, Readiness, Script,
    Tags,
};
use crate::try_step;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub static KINDS: &[StepKind] = &[StepKind {
    name: "ami.build",
    summary: "bake the Neo4j image of one edition from the pinned recipe (or adopt the image that recipe already made)",
    inputs: BuildInputs::INPUTS,
    outputs: OutputSpec::Fixed(&[
        "image_id",
        "image_name",
        "bake_key",
        "source_ami",
        "edition",
        "neo4j_version",
        "adopted",
        "parameter",
        "previous_image",
    ]),
    changes: "launches a builder EC2 instance, creates an AMI (and its snapshots), terminates the builder, writes the image SSM parameter",
    compensation: Some("terminates the builder, deregisters a failed image of this run (a pending one is waited for, never removed), puts the parameter back"),
    build: || Box::new(AmiBuild::new(None)),
}];

/// What `ami.build` needs from the world: images and parameters (EC2, SSM), the compute
/// that launches the builder and the exec channel that runs the install on it.
#[derive(Clone)]
pub struct Bakery {
    pub images: Ec2Images,
    pub parameters: ParameterStore,
    pub compute: Arc<dyn Compute>,
    pub exec: Arc<dyn Exec>,
}

impl Bakery {
    /// The environment's own: AWS clients from its `[aws]` section, and the run's compute
    /// and exec (EC2 and SSM Run Command).
    pub async fn open(ctx: &StepContext) -> Result<Self, Failure> {
        let env = ctx.environment();
        let aws = aws_provider(ctx, env, "ami.build").await?;
        let providers = ctx.providers()?;
        let exec = providers.exec.clone().ok_or_else(|| {
            Failure::permanent(format!(
                "step {}: the provider has no exec channel",
                ctx.step_id
            ))
        })?;
        Ok(Self {
            images: aws.images(),
            parameters: aws.parameters(&env.name),
            compute: providers.compute.clone(),
            exec,
        })
    }
}

/// The environment's aws provider, or a permanent failure naming the step kind.
pub(crate) async fn aws_provider(
    ctx: &StepContext,
    env: &Environment,
    kind: &str,
) -> Result<AwsProvider, Failure> {
    if env.provider != ProviderKind::Aws {
        return Err(Failure::permanent(format!(
            "step {} ({kind}) needs an aws environment; {} uses the {:?} provider",
            ctx.step_id,
            env.source.path.display(),
            env.provider
        ))
        .with_hint("run it with --env staging / production (or another aws environment)"));
    }
    AwsProvider::open(env.aws_section()?, &env.traffic, &env.name).await
}

step_inputs! {
    struct BuildInputs {
        edition: Option<String> = optional String, "community | enterprise (default: the edition every Neo4j database of the environment declares)";
        recipe: Option<String> = optional String, "the recipe directory (default \"ami\")";
        parameter: Option<String> = optional String, "SSM parameter the image id is published to (default /cutover/<env>/image/<edition>)";
        instance_type: Option<String> = optional String, "the builder's instance type (default t3.large)";
        commit: Option<String> = optional String, "the recipe's git commit for the provenance tag (default: HEAD of the recipe's clone)";
    }
}

/// The recipe directory a step names, `ami` by default.
pub(crate) fn recipe_dir(recipe: Option<&str>) -> PathBuf {
    PathBuf::from(recipe.unwrap_or("ami"))
}

/// The edition asked for, else the one every Neo4j database of the environment declares.
pub(crate) fn edition_for(ctx: &StepContext, asked: Option<&str>) -> Result<Edition, Failure> {
    if let Some(e) = asked {
        return e.parse::<Edition>();
    }
    let editions: std::collections::BTreeSet<Edition> = ctx
        .environment()
        .databases
        .values()
        .filter(|d| d.kind() == EngineKind::Neo4j)
        .map(|d| d.edition)
        .collect();
    match editions.len() {
        1 => Ok(editions.into_iter().next().expect("one")),
        0 => Err(Failure::permanent(format!(
            "step {}: {} declares no Neo4j database, so there is no edition to build",
            ctx.step_id,
            ctx.environment().source.path.display()
        ))
        .with_hint("give the step `edition = \"community\"` or \"enterprise\"")),
        _ => Err(Failure::permanent(format!(
            "step {}: the environment's Neo4j databases declare several editions ({}); one image serves one edition",
            ctx.step_id,
            editions.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", ")
        ))
        .with_hint("add one ami.build step per edition, each with `edition = …`")),
    }
}

/// The image name for a recipe on a base AMI: EC2 refuses a second image with it.
pub fn image_name(recipe: &Recipe, base_ami: &str) -> String {
    format!("{}-{base_ami}", recipe.image_name())
}

/// What the step has done so far, in its checkpoint.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct BuildState {
    #[serde(default)]
    base_ami: Option<String>,
    #[serde(default)]
    builder: Option<String>,
    #[serde(default)]
    exec: Option<ExecHandle>,
    #[serde(default)]
    installed: bool,
    #[serde(default)]
    stop_sent: bool,
    #[serde(default)]
    image_id: Option<String>,
    #[serde(default)]
    adopted: bool,
}

pub struct AmiBuild {
    bakery: Option<Bakery>,
}

impl AmiBuild {
    /// `None`: opened from the environment at the first call (what runs use); tests give
    /// their own (a fake exec channel where no SSM agent runs).
    pub fn new(bakery: Option<Bakery>) -> Self {
        Self { bakery }
    }

    async fn bakery(&mut self, ctx: &StepContext) -> Result<Bakery, Failure> {
        if self.bakery.is_none() {
            self.bakery = Some(Bakery::open(ctx).await?);
        }
        Ok(self.bakery.clone().expect("opened"))
    }
}

fn state(ctx: &StepContext) -> BuildState {
    ctx.checkpoint()
        .and_then(|c| serde_json::from_value(c).ok())
        .unwrap_or_default()
}

fn save(ctx: &StepContext, st: &BuildState) -> Result<(), Failure> {
    ctx.save_checkpoint(serde_json::to_value(st).expect("state serializes"))
}

/// Tags that tie a builder or an image to this run and step.
fn step_tags(ctx: &StepContext) -> Tags {
    let mut tags = Tags::new();
    tags.insert(tag::ENV.into(), ctx.environment().name.clone());
    tags.insert(tag::RUN_ID.into(), ctx.run_id.as_str().into());
    tags.insert(tag::STEP_ID.into(), ctx.step_id.as_str().into());
    tags
}

fn builder_tags(ctx: &StepContext) -> Tags {
    let mut tags = step_tags(ctx);
    tags.insert(image_tag::ROLE.into(), "builder".into());
    tags
}

fn recipe_commit(inputs: &BuildInputs, dir: &Path) -> String {
    inputs
        .commit
        .clone()
        .or_else(|| super::git::head(dir).ok())
        .unwrap_or_else(|| "unknown".into())
}

const POLL_BUILDER: Duration = Duration::from_secs(10);
const POLL_INSTALL: Duration = Duration::from_secs(15);
const POLL_IMAGE: Duration = Duration::from_secs(30);
/// How long the install may run on the builder.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(45 * 60);

#[async_trait]
impl Step for AmiBuild {
    async fn advance(&mut self, ctx: &StepContext) -> Decision {
        let inputs: BuildInputs = try_step!(ctx.inputs());
        let edition = try_step!(edition_for(ctx, inputs.edition.as_deref()));
        let dir = recipe_dir(inputs.recipe.as_deref());
        let recipe = try_step!(Recipe::load(&dir, edition));
        let key = recipe.bake_key();
        let b = try_step!(self.bakery(ctx).await);
        let parameter = inputs
            .parameter
            .clone()
            .unwrap_or_else(|| b.parameters.image_parameter(edition.as_str()));
        let mut st = state(ctx);

        let base_ami = match &st.base_ami {
            Some(a) => a.clone(),
            None => {
                let a = try_step!(
                    b.parameters
                        .public_base_ami(recipe.base_ami_parameter())
                        .await
                );
                st.base_ami = Some(a.clone());
                try_step!(save(ctx, &st));
                a
            }
        };
        let name = image_name(&recipe, &base_ami);

        // An image of this recipe on this base already exists (or an earlier attempt of
        // this step created it before it could record the id): adopt it.
        if st.image_id.is_none() {
            if let Some(found) = try_step!(b.images.find_by_name(&name).await) {
                match &found.state {
                    ImageState::Available | ImageState::Pending => {
                        st.adopted = st.builder.is_none();
                        st.image_id = Some(found.id.clone());
                        try_step!(save(ctx, &st));
                        if st.adopted {
                            ctx.note(format!(
                                "image {} ({name}) already exists: adopting it, no build",
                                found.id
                            ));
                        }
                    }
                    ImageState::Failed(_) | ImageState::Other(_) => {
                        // A dead image holds the name: remove it so the build can reuse it.
                        try_step!(ctx.record_intent(
                            "ec2.deregister_image",
                            serde_json::json!({ "image_id": found.id, "state": format!("{:?}", found.state) })
                        ));
                        try_step!(b.images.deregister(&found).await);
                    }
                }
            }
        }

        if st.image_id.is_none() {
            // 1. The builder.
            let builder = match &st.builder {
                Some(id) => InstanceId::new(id.as_str()),
                None => {
                    let request = ProvisionRequest {
                        image: base_ami.clone(),
                        name: format!("cutover-builder-{}", edition.as_str()),
                        tags: {
                            let mut t = builder_tags(ctx);
                            t.insert(image_tag::BAKE_KEY.into(), key.clone());
                            t
                        },
                        idempotency_token: ctx.idempotency_token.clone(),
                        settings: serde_json::json!({
                            "instance_type": inputs.instance_type.clone().unwrap_or_else(|| "t3.large".into()),
                            "root_volume_gib": 20,
                        }),
                    };
                    try_step!(ctx.record_intent(
                        "ec2.run_instances",
                        serde_json::json!({ "role": "builder", "image": base_ami, "bake_key": key })
                    ));
                    let instance = try_step!(b.compute.provision(&request).await);
                    st.builder = Some(instance.id.as_str().to_owned());
                    try_step!(save(ctx, &st));
                    instance.id
                }
            };

            // 2. The install, through the exec channel.
            if !st.installed {
                let handle = match &st.exec {
                    Some(h) => h.clone(),
                    None => {
                        match try_step!(b.compute.readiness(&builder).await) {
                            Readiness::Ready => {}
                            Readiness::NotYet(why) => {
                                return Decision::wait(POLL_BUILDER, format!("builder: {why}"))
                            }
                        }
                        let script = Script {
                            name: "ami-install".into(),
                            body: recipe.install_script(),
                            env: Default::default(),
                            timeout: INSTALL_TIMEOUT,
                            nonce: format!("{}-{}", ctx.idempotency_token, ctx.attempt),
                        };
                        try_step!(ctx.record_intent(
                            "exec.start",
                            serde_json::json!({ "instance": builder.as_str(), "script": script.name })
                        ));
                        let handle = try_step!(b.exec.start(&builder, &script).await);
                        st.exec = Some(handle.clone());
                        try_step!(save(ctx, &st));
                        handle
                    }
                };
                match try_step!(b.exec.poll(&handle).await) {
                    ExecStatus::Running => {
                        return Decision::wait(POLL_INSTALL, format!("installing Neo4j on builder {builder}"))
                    }
                    ExecStatus::Inconclusive(why) => {
                        return Decision::Fail(Failure::inconclusive(format!(
                            "the install on builder {builder} is inconclusive: {why}"
                        )))
                    }
                    ExecStatus::Finished(r) if r.exit_code != 0 || r.nonce != handle.nonce => {
                        return Decision::Fail(
                            Failure::permanent(format!(
                                "the install on builder {builder} failed (exit {}): {}",
                                r.exit_code,
                                r.output_tail.trim()
                            ))
                            .with_hint("fix ami/scripts/install.sh (or the pins in ami/*.env) and run again; the builder is terminated"),
                        )
                    }
                    ExecStatus::Finished(_) => {
                        st.installed = true;
                        try_step!(save(ctx, &st));
                    }
                }
            }

            // 3. Stop it, so the image is consistent.
            if !st.stop_sent {
                try_step!(ctx.record_intent(
                    "ec2.stop_instances",
                    serde_json::json!({ "instance": builder.as_str() })
                ));
                try_step!(b.compute.stop(&builder).await);
                st.stop_sent = true;
                try_step!(save(ctx, &st));
            }
            let described = try_step!(b.compute.describe(&builder).await);
            match described.map(|i| i.state) {
                Some(InstanceState::Stopped) => {}
                Some(s) => {
                    return Decision::wait(
                        POLL_BUILDER,
                        format!("builder {builder} is {s:?}, waiting for stopped"),
                    )
                }
                None => {
                    return Decision::Fail(Failure::permanent(format!(
                        "builder {builder} vanished before its image was made"
                    )))
                }
            }

            // 4. The image.
            try_step!(ctx.record_intent(
                "ec2.create_image",
                serde_json::json!({ "instance": builder.as_str(), "name": name })
            ));
            let id = try_step!(
                b.images
                    .create_from_instance(
                        &builder,
                        &name,
                        &format!(
                            "cutover Neo4j {} {} (bake key {key})",
                            edition.as_str(),
                            recipe.neo4j_version()
                        )
                    )
                    .await
            );
            st.image_id = Some(id.clone());
            try_step!(save(ctx, &st));
            // The run's tags at once, so compensation and gc find the image by them.
            let mut early = step_tags(ctx);
            early.insert(image_tag::BAKE_KEY.into(), key.clone());
            try_step!(b.images.tag(&[id], &early).await);
        }

        // 5. Wait until it is available; a timeout here leaves it alone (resume polls on).
        let image_id = st.image_id.clone().expect("set above");
        let Some(image) = try_step!(b.images.describe(&image_id).await) else {
            return Decision::Fail(Failure::inconclusive(format!(
                "image {image_id} ({name}) does not exist any more"
            )));
        };
        match &image.state {
            ImageState::Pending => {
                return Decision::wait(POLL_IMAGE, format!("image {image_id} is pending"))
            }
            ImageState::Failed(s) | ImageState::Other(s) => {
                return Decision::Fail(Failure::permanent(format!(
                    "image {image_id} ({name}) is {s}: {}",
                    image
                        .state_reason
                        .as_deref()
                        .unwrap_or("EC2 gives no reason")
                )))
            }
            ImageState::Available => {}
        }

        // 6. Provenance on the image and its snapshots (an adopted image keeps its own).
        let source_ami = if st.adopted {
            image
                .tags
                .get(image_tag::SOURCE_AMI)
                .cloned()
                .unwrap_or(base_ami.clone())
        } else {
            let mut provenance = step_tags(ctx);
            provenance.insert(tag::NAME.into(), name.clone());
            provenance.insert(image_tag::ROLE.into(), "image".into());
            provenance.insert(image_tag::BAKE_KEY.into(), key.clone());
            provenance.insert(image_tag::SOURCE_AMI.into(), base_ami.clone());
            provenance.insert(image_tag::EDITION.into(), edition.as_str().into());
            provenance.insert(image_tag::VERSION.into(), recipe.neo4j_version().into());
            provenance.insert(
                image_tag::RECIPE_COMMIT.into(),
                recipe_commit(&inputs, &dir),
            );
            let mut resources = vec![image_id.clone()];
            resources.extend(image.snapshot_ids.iter().cloned());
            try_step!(b.images.tag(&resources, &provenance).await);
            base_ami.clone()
        };

        // 7. No builder left behind.
        if let Some(builder) = &st.builder {
            try_step!(ctx.record_intent(
                "ec2.terminate_instances",
                serde_json::json!({ "instance": builder })
            ));
            try_step!(
                b.compute
                    .terminate(&InstanceId::new(builder.as_str()))
                    .await
            );
        }

        // 8. Publish.
        let previous = try_step!(b.parameters.get(&parameter).await);
        if previous.as_deref() != Some(image_id.as_str()) {
            try_step!(ctx.record_intent(
                "ssm.put_parameter",
                serde_json::json!({ "parameter": parameter, "value": image_id })
            ));
            try_step!(b.parameters.put(&parameter, &image_id).await);
        }

        let mut out = Outputs::new();
        out.insert("image_id".into(), image_id.into());
        out.insert("image_name".into(), name.into());
        out.insert("bake_key".into(), key.into());
        out.insert("source_ami".into(), source_ami.into());
        out.insert("edition".into(), edition.as_str().into());
        out.insert("neo4j_version".into(), recipe.neo4j_version().into());
        out.insert("adopted".into(), st.adopted.into());
        out.insert("parameter".into(), parameter.into());
        out.insert("previous_image".into(), previous.unwrap_or_default().into());
        Decision::Done(out)
    }

    async fn compensate(&mut self, ctx: &StepContext, outputs: Option<&Outputs>) -> Decision {
        let b = try_step!(self.bakery(ctx).await);
        // Builders: found by the step's tags, so this works without the checkpoint.
        for builder in try_step!(b.compute.find_by_tags(&builder_tags(ctx)).await) {
            try_step!(ctx.record_intent(
                "ec2.terminate_instances",
                serde_json::json!({ "instance": builder.id.as_str(), "role": "builder" })
            ));
            try_step!(b.compute.terminate(&builder.id).await);
        }
        // Images this run made: a failed one goes, a pending one is waited for.
        for image in try_step!(b.images.find_by_tags(&step_tags(ctx)).await) {
            match &image.state {
                ImageState::Pending => {
                    return Decision::wait(
                        POLL_IMAGE,
                        format!("image {} is pending; it is never removed while it may still become available", image.id),
                    )
                }
                ImageState::Failed(_) => {
                    try_step!(ctx.record_intent(
                        "ec2.deregister_image",
                        serde_json::json!({ "image_id": image.id })
                    ));
                    try_step!(b.images.deregister(&image).await);
                }
                ImageState::Available | ImageState::Other(_) => {}
            }
        }
        // The parameter names what it named before this step.
        if let Some(out) = outputs {
            let field = |k: &str| out.get(k).and_then(|v| v.as_str()).unwrap_or_default();
            let (parameter, image, previous) = (
                field("parameter"),
                field("image_id"),
                field("previous_image"),
            );
            let now = try_step!(b.parameters.get(parameter).await);
            if !parameter.is_empty() && now.as_deref() == Some(image) && previous != image {
                try_step!(ctx.record_intent(
                    "ssm.put_parameter",
                    serde_json::json!({ "parameter": parameter, "value": previous })
                ));
                if previous.is_empty() {
                    try_step!(b.parameters.delete(parameter).await);
                } else {
                    try_step!(b.parameters.put(parameter, previous).await);
                }
            }
        }
        Decision::done()
    }
}
