//! The least-privilege IAM policy a plan needs (`cutover iam`): the AWS calls of every
//! step kind the plan runs (and every compensation it may run), scoped to the resources
//! its environment names. See [`crate::providers::aws::iam`] for the statements and
//! their caveats.

use super::Plan;
use crate::config::ProviderKind;
use crate::failure::Failure;
use crate::providers::aws::config::AwsEnvironment;
use crate::providers::aws::iam::{self, Capability, IamScope, PolicyDocument};
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
    let aws = AwsEnvironment::from_environment(env)?;
    let mut scope = IamScope::new(env, &aws, account_id);
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
