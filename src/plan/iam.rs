//! The least-privilege IAM policy a plan needs (`cutover iam`): the AWS calls of every
//! step kind the plan runs (and every compensation it may run), scoped to the resources
//! its environment names. See [`crate::providers::aws::iam`] for the statements and
//! their caveats.

use super::Plan;
use crate::config::{Environment, ProviderKind};
use crate::failure::Failure;
use crate::providers::aws::config::AwsEnvironment;
use crate::providers::aws::iam::{self, Capability, IamScope, PolicyDocument, TrafficScope};
use crate::providers::traffic::TrafficKind;
use crate::steps::aws_needs::aws_capabilities;
use std::collections::BTreeSet;

/// Which policy to print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The machine running `cutover` (a CI job, a scheduled task).
    Controller,
    /// The database instances' own role (their scripts' S3 and secret access).
    Instance,
}

/// Every capability the plan's steps and compensations need; `RunState` always (the
/// lease and the journal mirror of every aws run).
pub fn capabilities(plan: &Plan) -> Result<BTreeSet<Capability>, Failure> {
    let mut out = BTreeSet::from([Capability::RunState]);
    let kinds = plan.steps.iter().flat_map(|s| {
        std::iter::once(s.kind.name).chain(s.compensate.as_ref().map(|c| c.kind.name))
    });
    for kind in kinds {
        let needs = aws_capabilities(kind).ok_or_else(|| {
            Failure::permanent(format!(
                "step kind {kind} does not say which AWS calls it makes, so no policy can be derived"
            ))
            .with_hint("add it to src/steps/aws_needs.rs")
        })?;
        out.extend(needs.iter().copied());
    }
    Ok(out)
}

/// The policy document for `role` (an `aws` environment only).
pub fn policy(
    plan: &Plan,
    role: Role,
    account_id: Option<&str>,
) -> Result<PolicyDocument, Failure> {
    let env = &plan.environment;
    if env.provider != ProviderKind::Aws {
        return Err(Failure::permanent(format!(
            "environment `{}` uses the local provider: it makes no AWS calls, so there is no IAM policy to derive",
            env.name
        ))
        .with_hint("name an aws environment, e.g. --env staging"));
    }
    let aws = env.aws_section()?;
    let mut scope = scope_of(env, aws, account_id);
    for step in &plan.steps {
        let input = |name: &str| step.inputs.get(name).and_then(|v| v.as_str());
        // An image the run finds (`${{ steps.build.outputs.image_id }}`), not a literal.
        if step.kind.name == "compute.provision"
            && input("image").is_some_and(|i| i.contains("${{"))
        {
            scope.images_from_run = true;
        }
        for name in ["parameter", "app_image_parameter"] {
            if let Some(p) = input(name).filter(|p| !p.contains("${{")) {
                scope.parameters.insert(p.to_owned());
            }
        }
    }
    Ok(match role {
        Role::Controller => iam::policy(&capabilities(plan)?, &scope),
        Role::Instance => iam::instance_statements(&scope),
    })
}

/// What a switch of `environment` writes: the secret (the one named, else the default
/// name, which a switch without `[traffic] secret` writes too), the ECS service's task
/// definition, or every database's three parameters. `None` when it names nothing a
/// switch could write (the load refuses `ecs-environment` without its service).
fn traffic_scope(environment: &Environment) -> Option<TrafficScope> {
    let traffic = &environment.traffic;
    Some(match traffic.kind {
        TrafficKind::Secret => {
            TrafficScope::Secret(traffic.secret_name(&environment.name).as_str().to_owned())
        }
        TrafficKind::EcsEnvironment => {
            let s = traffic.app_service.clone()?;
            TrafficScope::TaskDefinition(s.cluster, s.service)
        }
        TrafficKind::Parameters => TrafficScope::Parameters(
            environment
                .databases
                .keys()
                .flat_map(|db| {
                    let names = traffic.names_for(&environment.name, db.as_str());
                    names.all().map(str::to_owned)
                })
                .collect(),
        ),
    })
}

/// The IAM scope of `environment` (an `aws` one, whose `[aws]` is `aws`), with `account`
/// when known: what it names, for scoping statements to its resources.
fn scope_of(environment: &Environment, aws: &AwsEnvironment, account: Option<&str>) -> IamScope {
    let str_of = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(str::to_owned);
    let mut scope = IamScope {
        environment: environment.name.clone(),
        region: aws.settings.region.clone(),
        account: account.unwrap_or("*").to_owned(),
        bucket: aws.settings.bucket.clone(),
        prefix: aws.settings.prefix.clone(),
        kms_key_id: aws.settings.kms_key_id.clone(),
        admin_secrets: BTreeSet::new(),
        app_secrets: BTreeSet::new(),
        traffic: traffic_scope(environment),
        app_service: environment
            .traffic
            .app_service
            .clone()
            .map(|s| (s.cluster, s.service)),
        images: BTreeSet::new(),
        subnets: aws.instance_defaults.subnet_id.iter().cloned().collect(),
        security_groups: aws
            .instance_defaults
            .security_group_ids
            .iter()
            .cloned()
            .collect(),
        instance_profiles: aws
            .instance_defaults
            .instance_profile
            .iter()
            .cloned()
            .collect(),
        images_from_run: false,
        parameters: BTreeSet::new(),
        terraform_state: environment
            .terraform
            .as_ref()
            .map(|t| (t.bucket.clone(), t.key_prefix.trim_matches('/').to_owned())),
    };
    for def in environment.databases.values() {
        scope
            .admin_secrets
            .extend(def.admin_secret.iter().map(|s| s.as_str().to_owned()));
        scope
            .app_secrets
            .extend(def.password_secret.iter().map(|s| s.as_str().to_owned()));
        scope.images.extend(def.image.clone());
        let instance = &def.instance;
        scope.subnets.extend(str_of(instance.get("subnet_id")));
        scope
            .instance_profiles
            .extend(str_of(instance.get("instance_profile")));
        if let Some(groups) = instance
            .get("security_group_ids")
            .and_then(|g| g.as_array())
        {
            scope
                .security_groups
                .extend(groups.iter().filter_map(|g| g.as_str()).map(str::to_owned));
        }
    }
    scope
}
