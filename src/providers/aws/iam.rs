//! The IAM permissions the `aws` provider's calls need, as policy statements scoped to
//! the resources one environment names.
//!
//! Each [`Capability`] is one group of provider calls (the S3 lease and journal mirror,
//! launching instances, running commands through SSM, ...). The statements here list
//! exactly the actions those calls make — [`Capability::actions`] is checked against the
//! SDK operations the provider's code calls — and scope them to the environment's
//! bucket and prefix, secret names, instances tagged with the environment, and so on.
//! A `*` resource appears only where the action supports no resource-level permission
//! (`ec2:DescribeInstances`, `ssm:GetCommandInvocation`, ...).
//!
//! This is the *controller's* policy: what the machine running `cutover` calls. What the
//! instance's own role needs (its scripts read the admin secret, write artifacts and
//! result objects) is [`instance_statements`].
//!
//! Caveats, stated in the policy's `Sid`s and docs/iam.md:
//! - Secrets Manager ARNs end in a random 6-character suffix, so secrets are matched as
//!   `NAME-??????`.
//! - `iam:PassRole` on launch assumes the instance profile's role has the profile's
//!   name (the usual convention, and what `terraform/databases` creates).
//! - Without an account id every ARN's account field is `*`.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// A group of provider calls that a step kind makes on AWS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Capability {
    /// The S3 lease, the journal mirror, run listing and exec result objects
    /// (`runs/…`, `lease.json` under the environment's prefix). Every aws run needs it.
    RunState,
    /// `DescribeInstances`: find blue by tags, describe green.
    FindInstances,
    /// `RunInstances` with tags, the instance profile passed.
    LaunchInstances,
    /// `DescribeInstanceInformation`: whether an instance's SSM agent is online.
    InstanceAgent,
    /// `TerminateInstances` on this environment's instances.
    TerminateInstances,
    /// SSM Run Command on this environment's instances (`AWS-RunShellScript`).
    RunCommands,
    /// Backups and manifests under `backups/<env>/`: read, write, tag, list, delete.
    Backups,
    /// `GetSecretValue` of the databases' admin and application secrets.
    ReadDatabaseSecrets,
    /// Rotating the databases' application secrets (pending → current → previous).
    RotateAppSecrets,
    /// The `[traffic]` target: the application's JSON secret, the ECS service's task
    /// definition, or SSM parameters (by `kind`; only that kind's statements).
    SwitchTraffic,
    /// Restarting the `[traffic]` ECS service and watching its deployment.
    RestartApp,
    /// `DescribeImages`: the current image and its provenance tags.
    FindImages,
    /// Baking images: stop a builder, `CreateImage`, tag image and snapshots, remove a
    /// failed image; launching builders from the public base image.
    BuildImages,
    /// `GetParameter` of this environment's parameters (`/cutover/ENV/…`: image ids,
    /// release markers) and of the public base-image parameters (`/aws/service/…`).
    ReadParameters,
    /// `PutParameter` / `DeleteParameter` of this environment's parameters.
    WriteParameters,
    /// The `[terraform]` S3 backend: state objects and their lock files, workspace
    /// listing. (What the modules themselves manage needs the module's own permissions.)
    TerraformState,
}

/// The S3 calls of [`Capability::RunState`] and [`Capability::Backups`]: PutObject (also
/// multipart), GetObject (also HeadObject), DeleteObject (lease release, probes), the
/// SHA-256 object tag, ListBucket.
const OBJECT_ACTIONS: &[&str] = &[
    "s3:AbortMultipartUpload",
    "s3:DeleteObject",
    "s3:GetObject",
    "s3:GetObjectTagging",
    "s3:ListBucket",
    "s3:PutObject",
    "s3:PutObjectTagging",
];

/// Writing a secret through its stages (rotation; the secret traffic target).
const SECRET_WRITE_ACTIONS: &[&str] = &[
    "secretsmanager:GetSecretValue",
    "secretsmanager:ListSecretVersionIds",
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecretVersionStage",
];

/// What a traffic switch writes, by `[traffic] kind`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrafficScope {
    /// The JSON secret of that name.
    Secret(String),
    /// The task definition of ECS service `(cluster, service)`.
    TaskDefinition(String, String),
    /// These SSM parameters.
    Parameters(BTreeSet<String>),
}

impl Capability {
    /// Every capability.
    pub const ALL: &'static [Capability] = &[
        Capability::RunState,
        Capability::FindInstances,
        Capability::LaunchInstances,
        Capability::InstanceAgent,
        Capability::TerminateInstances,
        Capability::RunCommands,
        Capability::Backups,
        Capability::ReadDatabaseSecrets,
        Capability::RotateAppSecrets,
        Capability::SwitchTraffic,
        Capability::RestartApp,
        Capability::FindImages,
        Capability::BuildImages,
        Capability::ReadParameters,
        Capability::WriteParameters,
        Capability::TerraformState,
    ];

    /// The IAM actions of this capability's provider calls.
    pub fn actions(self) -> &'static [&'static str] {
        match self {
            Capability::RunState => OBJECT_ACTIONS,
            Capability::FindInstances => &["ec2:DescribeInstances"],
            Capability::LaunchInstances => &["ec2:CreateTags", "ec2:RunInstances", "iam:PassRole"],
            Capability::InstanceAgent => &["ssm:DescribeInstanceInformation"],
            Capability::TerminateInstances => &["ec2:TerminateInstances"],
            Capability::RunCommands => &[
                "ssm:CancelCommand",
                "ssm:GetCommandInvocation",
                "ssm:SendCommand",
            ],
            Capability::Backups => OBJECT_ACTIONS,
            Capability::ReadDatabaseSecrets => &["secretsmanager:GetSecretValue"],
            Capability::RotateAppSecrets => SECRET_WRITE_ACTIONS,
            Capability::SwitchTraffic => &[
                "ecs:DescribeServices",
                "ecs:DescribeTaskDefinition",
                "ecs:RegisterTaskDefinition",
                "ecs:TagResource",
                "ecs:UpdateService",
                "iam:PassRole",
                "secretsmanager:GetSecretValue",
                "secretsmanager:ListSecretVersionIds",
                "secretsmanager:PutSecretValue",
                "secretsmanager:UpdateSecretVersionStage",
                "ssm:DeleteParameter",
                "ssm:GetParameter",
                "ssm:GetParameterHistory",
                "ssm:PutParameter",
            ],
            Capability::RestartApp => &["ecs:DescribeServices", "ecs:UpdateService"],
            Capability::BuildImages => &[
                "ec2:CreateImage",
                "ec2:CreateTags",
                "ec2:DeleteSnapshot",
                "ec2:DeregisterImage",
                "ec2:RunInstances",
                "ec2:StopInstances",
            ],
            Capability::FindImages => &["ec2:DescribeImages"],
            Capability::ReadParameters => &["ssm:GetParameter"],
            Capability::WriteParameters => &["ssm:DeleteParameter", "ssm:PutParameter"],
            Capability::TerraformState => &[
                "s3:DeleteObject",
                "s3:GetObject",
                "s3:ListBucket",
                "s3:PutObject",
            ],
        }
    }
}

/// What the environment names, for scoping statements to its resources.
#[derive(Clone, Debug)]
pub struct IamScope {
    pub environment: String,
    pub region: String,
    /// `*` when unknown.
    pub account: String,
    pub bucket: String,
    /// Key prefix inside the bucket, without slashes at either end (may be empty).
    pub prefix: String,
    pub kms_key_id: Option<String>,
    /// Secret names the databases use for their administrator.
    pub admin_secrets: BTreeSet<String>,
    /// Secret names holding the applications' database passwords.
    pub app_secrets: BTreeSet<String>,
    /// What a traffic switch writes (`None`: nothing the environment names).
    pub traffic: Option<TrafficScope>,
    /// `(cluster, service)` from `[traffic]`.
    pub app_service: Option<(String, String)>,
    /// Images, subnets, security groups and instance profiles new instances use.
    pub images: BTreeSet<String>,
    pub subnets: BTreeSet<String>,
    pub security_groups: BTreeSet<String>,
    pub instance_profiles: BTreeSet<String>,
    /// Whether some instance is launched from an image the run itself finds (e.g. one
    /// `ami.build` baked), not one the environment names.
    pub images_from_run: bool,
    /// SSM parameters steps name beyond this environment's `/cutover/ENV/…`.
    pub parameters: BTreeSet<String>,
    /// `[terraform]` `bucket` and `key_prefix`.
    pub terraform_state: Option<(String, String)>,
}

impl IamScope {
    fn s3_keys(&self, relative: &str) -> String {
        if self.prefix.is_empty() {
            format!("arn:aws:s3:::{}/{relative}", self.bucket)
        } else {
            format!("arn:aws:s3:::{}/{}/{relative}", self.bucket, self.prefix)
        }
    }

    fn s3_list_prefix(&self, relative: &str) -> String {
        if self.prefix.is_empty() {
            relative.to_owned()
        } else {
            format!("{}/{relative}", self.prefix)
        }
    }

    fn arn(&self, service: &str, resource: &str) -> String {
        format!(
            "arn:aws:{service}:{}:{}:{resource}",
            self.region, self.account
        )
    }

    /// This environment's parameters and the ones steps name.
    fn parameter_arns(&self) -> Vec<String> {
        std::iter::once(self.arn("ssm", &format!("parameter/cutover/{}/*", self.environment)))
            .chain(
                self.parameters
                    .iter()
                    .map(|p| self.arn("ssm", &format!("parameter/{}", p.trim_start_matches('/')))),
            )
            .collect()
    }

    fn secret_arns<'a>(&self, names: impl IntoIterator<Item = &'a String>) -> Vec<String> {
        names
            .into_iter()
            .map(|n| self.arn("secretsmanager", &format!("secret:{n}-??????")))
            .collect()
    }

    fn tag_condition(&self, key: &str) -> serde_json::Value {
        serde_json::json!({ "StringEquals": { key: self.environment } })
    }

    /// True when the tag is missing or names another environment (for a Deny).
    fn tag_mismatch(&self, key: &str) -> serde_json::Value {
        serde_json::json!({ "StringNotEquals": { key: self.environment } })
    }
}

/// One statement of an IAM policy document.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Statement {
    #[serde(rename = "Sid")]
    pub sid: String,
    #[serde(rename = "Effect")]
    pub effect: &'static str,
    #[serde(rename = "Action")]
    pub actions: Vec<String>,
    #[serde(rename = "Resource")]
    pub resources: Vec<String>,
    #[serde(rename = "Condition", skip_serializing_if = "Option::is_none")]
    pub condition: Option<serde_json::Value>,
}

/// An IAM policy document (`Version` 2012-10-17).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PolicyDocument {
    #[serde(rename = "Version")]
    pub version: &'static str,
    #[serde(rename = "Statement")]
    pub statements: Vec<Statement>,
}

fn allow(sid: &str, actions: &[&str], resources: Vec<String>) -> Statement {
    Statement {
        sid: sid.to_owned(),
        effect: "Allow",
        actions: actions.iter().map(|a| (*a).to_owned()).collect(),
        resources,
        condition: None,
    }
}

fn only<'a>(actions: &[&'a str], prefix: &str) -> Vec<&'a str> {
    actions
        .iter()
        .copied()
        .filter(|a| a.starts_with(prefix))
        .collect()
}

fn except<'a>(actions: &[&'a str], exclude: &str) -> Vec<&'a str> {
    actions.iter().copied().filter(|a| *a != exclude).collect()
}

/// The statements of one capability in `scope`. Empty when the environment names
/// nothing the capability could act on (e.g. no `[traffic]` ECS service).
pub fn statements(capability: Capability, scope: &IamScope) -> Vec<Statement> {
    let actions = capability.actions();
    let object_statements = |sid: &str, keys: &[&str], list: &[&str]| {
        vec![
            allow(
                &format!("{sid}Objects"),
                &except(actions, "s3:ListBucket"),
                keys.iter().map(|k| scope.s3_keys(k)).collect(),
            ),
            Statement {
                condition: Some(serde_json::json!({
                    "StringLike": { "s3:prefix": list.iter().map(|p| scope.s3_list_prefix(p)).collect::<Vec<_>>() }
                })),
                ..allow(
                    &format!("{sid}List"),
                    &["s3:ListBucket"],
                    vec![format!("arn:aws:s3:::{}", scope.bucket)],
                )
            },
        ]
    };
    let instances = scope.arn("ec2", "instance/*");
    match capability {
        Capability::RunState => {
            object_statements("RunState", &["lease.json", "runs/*"], &["runs/", "runs/*"])
        }
        Capability::Backups => {
            let env = &scope.environment;
            object_statements(
                "Backups",
                &[&format!("backups/{env}/*")],
                &[&format!("backups/{env}/"), &format!("backups/{env}/*")],
            )
        }
        Capability::FindInstances => vec![allow("FindInstances", actions, vec!["*".into()])],
        Capability::InstanceAgent => vec![allow("InstanceAgentStatus", actions, vec!["*".into()])],
        Capability::LaunchInstances => {
            let mut resources = launch_network(scope);
            let images: Vec<String> = scope
                .images
                .iter()
                .map(|i| format!("arn:aws:ec2:{}::image/{i}", scope.region))
                .collect();
            if images.is_empty() {
                resources.push(format!("arn:aws:ec2:{}::image/*", scope.region));
            }
            resources.extend(images);
            // One Allow with every resource RunInstances touches, and a Deny for a launch
            // that does not tag instance and volume with this environment (the tag
            // condition cannot sit on the Allow: images and subnets carry no such tag).
            let tagged = vec![instances.clone(), scope.arn("ec2", "volume/*")];
            let mut out = vec![
                allow("LaunchInstances", &["ec2:RunInstances"], resources),
                Statement {
                    effect: "Deny",
                    condition: Some(scope.tag_mismatch("aws:RequestTag/cutover:env")),
                    ..allow("DenyUntaggedLaunch", &["ec2:RunInstances"], tagged.clone())
                },
                Statement {
                    condition: Some(
                        serde_json::json!({ "StringEquals": { "ec2:CreateAction": "RunInstances" } }),
                    ),
                    ..allow("TagOnLaunch", &["ec2:CreateTags"], tagged)
                },
            ];
            if scope.images_from_run {
                // An image found at run time (one this environment's runs baked and
                // tagged); the instance itself is allowed by `LaunchInstances`.
                out.push(Statement {
                    condition: Some(scope.tag_condition("ec2:ResourceTag/cutover:env")),
                    ..allow(
                        "LaunchFromEnvironmentImages",
                        &["ec2:RunInstances"],
                        with_any_image(scope),
                    )
                });
            }
            if !scope.instance_profiles.is_empty() {
                out.push(Statement {
                    condition: Some(serde_json::json!({ "StringEquals": { "iam:PassedToService": "ec2.amazonaws.com" } })),
                    ..allow(
                        "PassInstanceRole",
                        &["iam:PassRole"],
                        scope
                            .instance_profiles
                            .iter()
                            .map(|p| format!("arn:aws:iam::{}:role/{p}", scope.account))
                            .collect(),
                    )
                });
            }
            out
        }
        Capability::TerminateInstances => vec![Statement {
            condition: Some(scope.tag_condition("ec2:ResourceTag/cutover:env")),
            ..allow("TerminateEnvironmentInstances", actions, vec![instances])
        }],
        // As for launches: the Allow names the document and the instances, the Deny keeps
        // the commands on this environment's instances.
        Capability::RunCommands => vec![
            allow(
                "SendShellScripts",
                &["ssm:SendCommand"],
                vec![
                    // AWS-owned documents have an empty account field; `*` matches it.
                    format!("arn:aws:ssm:{}:*:document/AWS-RunShellScript", scope.region),
                    instances.clone(),
                ],
            ),
            Statement {
                effect: "Deny",
                condition: Some(scope.tag_mismatch("ssm:resourceTag/cutover:env")),
                ..allow(
                    "DenyCommandsToOtherInstances",
                    &["ssm:SendCommand"],
                    vec![instances],
                )
            },
            allow(
                "FollowCommands",
                &except(actions, "ssm:SendCommand"),
                vec!["*".into()],
            ),
        ],
        Capability::ReadDatabaseSecrets => {
            let names: BTreeSet<&String> = scope
                .admin_secrets
                .iter()
                .chain(&scope.app_secrets)
                .collect();
            if names.is_empty() {
                return Vec::new();
            }
            vec![allow(
                "ReadDatabaseSecrets",
                actions,
                scope.secret_arns(names),
            )]
        }
        Capability::RotateAppSecrets => {
            if scope.app_secrets.is_empty() {
                return Vec::new();
            }
            vec![allow(
                "RotateApplicationSecrets",
                actions,
                scope.secret_arns(&scope.app_secrets),
            )]
        }
        Capability::SwitchTraffic => match &scope.traffic {
            Some(TrafficScope::Secret(secret)) => vec![allow(
                "SwitchTrafficSecret",
                SECRET_WRITE_ACTIONS,
                scope.secret_arns([secret]),
            )],
            Some(TrafficScope::TaskDefinition(cluster, service)) => vec![
                allow(
                    "SwitchTrafficService",
                    &["ecs:DescribeServices", "ecs:UpdateService"],
                    vec![scope.arn("ecs", &format!("service/{cluster}/{service}"))],
                ),
                // DescribeTaskDefinition has no resource type in ECS's authorization
                // reference; RegisterTaskDefinition is granted on `*` as AWS's ECS
                // examples do (not checked against the current reference).
                allow(
                    "SwitchTrafficReadAndRegisterTaskDefinitions",
                    &["ecs:DescribeTaskDefinition", "ecs:RegisterTaskDefinition"],
                    vec!["*".to_owned()],
                ),
                // The new revision's tags, on creation only (tag-on-create needs
                // TagResource): never tagging an existing resource.
                Statement {
                    condition: Some(serde_json::json!({
                        "StringEquals": { "ecs:CreateAction": "RegisterTaskDefinition" }
                    })),
                    ..allow(
                        "SwitchTrafficTagNewTaskDefinitions",
                        &["ecs:TagResource"],
                        vec![scope.arn("ecs", "task-definition/*")],
                    )
                },
                // A new revision keeps the task and execution roles of the old one.
                Statement {
                    condition: Some(serde_json::json!({
                        "StringEquals": { "iam:PassedToService": "ecs-tasks.amazonaws.com" }
                    })),
                    ..allow(
                        "SwitchTrafficPassTaskRoles",
                        &["iam:PassRole"],
                        vec![format!("arn:aws:iam::{}:role/*", scope.account)],
                    )
                },
            ],
            Some(TrafficScope::Parameters(names)) => vec![allow(
                "SwitchTrafficParameters",
                &[
                    "ssm:DeleteParameter",
                    "ssm:GetParameter",
                    "ssm:GetParameterHistory",
                    "ssm:PutParameter",
                ],
                names
                    .iter()
                    .map(|p| scope.arn("ssm", &format!("parameter/{}", p.trim_start_matches('/'))))
                    .collect(),
            )],
            None => Vec::new(),
        },
        Capability::RestartApp => match &scope.app_service {
            Some((cluster, service)) => vec![allow(
                "RestartApplicationService",
                &only(actions, "ecs:"),
                vec![scope.arn("ecs", &format!("service/{cluster}/{service}"))],
            )],
            None => Vec::new(),
        },
        Capability::BuildImages => {
            let images = format!("arn:aws:ec2:{}::image/*", scope.region);
            let snapshots = format!("arn:aws:ec2:{}::snapshot/*", scope.region);
            let env_tag = || Some(scope.tag_condition("ec2:ResourceTag/cutover:env"));
            vec![
                Statement {
                    condition: Some(
                        serde_json::json!({ "StringEquals": { "ec2:Owner": "amazon" } }),
                    ),
                    ..allow(
                        "LaunchBuildersFromBaseImages",
                        &["ec2:RunInstances"],
                        with_any_image(scope),
                    )
                },
                Statement {
                    condition: env_tag(),
                    ..allow(
                        "StopBuilders",
                        &["ec2:StopInstances"],
                        vec![instances.clone()],
                    )
                },
                allow(
                    "CreateImages",
                    &["ec2:CreateImage"],
                    vec![instances.clone(), images.clone(), snapshots.clone()],
                ),
                Statement {
                    effect: "Deny",
                    condition: Some(scope.tag_mismatch("ec2:ResourceTag/cutover:env")),
                    ..allow(
                        "DenyImagesOfOtherInstances",
                        &["ec2:CreateImage"],
                        vec![instances],
                    )
                },
                allow(
                    "TagImages",
                    &["ec2:CreateTags"],
                    vec![images.clone(), snapshots.clone()],
                ),
                Statement {
                    condition: env_tag(),
                    ..allow("RemoveFailedImages", &["ec2:DeregisterImage"], vec![images])
                },
                // A failed image's snapshots may not carry the tags yet.
                allow(
                    "RemoveFailedSnapshots",
                    &["ec2:DeleteSnapshot"],
                    vec![snapshots],
                ),
            ]
        }
        Capability::FindImages => vec![allow("FindImages", actions, vec!["*".into()])],
        Capability::ReadParameters => {
            let mut resources = scope.parameter_arns();
            resources.push(format!(
                "arn:aws:ssm:{}:*:parameter/aws/service/*",
                scope.region
            ));
            vec![allow("ReadParameters", actions, resources)]
        }
        Capability::WriteParameters => {
            vec![allow("WriteParameters", actions, scope.parameter_arns())]
        }
        Capability::TerraformState => match &scope.terraform_state {
            Some((bucket, prefix)) => {
                let keys = if prefix.is_empty() {
                    format!("arn:aws:s3:::{bucket}/*")
                } else {
                    format!("arn:aws:s3:::{bucket}/{prefix}/*")
                };
                vec![
                    allow(
                        "TerraformStateObjects",
                        &except(actions, "s3:ListBucket"),
                        vec![keys],
                    ),
                    allow(
                        "TerraformStateBucket",
                        &["s3:ListBucket"],
                        vec![format!("arn:aws:s3:::{bucket}")],
                    ),
                ]
            }
            None => Vec::new(),
        },
    }
}

/// What every launch touches besides its image: the instance, its volume and network
/// interface, the environment's subnets and security groups (any, when it names none:
/// the launch then uses the account's defaults).
fn launch_network(scope: &IamScope) -> Vec<String> {
    let mut out = vec![
        scope.arn("ec2", "instance/*"),
        scope.arn("ec2", "volume/*"),
        scope.arn("ec2", "network-interface/*"),
    ];
    if scope.subnets.is_empty() && scope.security_groups.is_empty() {
        out.push(scope.arn("ec2", "subnet/*"));
        out.push(scope.arn("ec2", "security-group/*"));
    }
    out.extend(
        scope
            .subnets
            .iter()
            .map(|s| scope.arn("ec2", &format!("subnet/{s}"))),
    );
    out.extend(
        scope
            .security_groups
            .iter()
            .map(|g| scope.arn("ec2", &format!("security-group/{g}"))),
    );
    out
}

/// Any image, with [`launch_network`]: for a launch whose image is allowed by a
/// condition (its owner, its tag). The condition holds for the image only; the other
/// resources are allowed by `LaunchInstances`.
fn with_any_image(scope: &IamScope) -> Vec<String> {
    let mut out = vec![format!("arn:aws:ec2:{}::image/*", scope.region)];
    out.extend(launch_network(scope));
    out
}

/// With SSE-KMS (`[aws] kms_key_id`), the key use S3 makes on the caller's behalf.
fn kms_statement(scope: &IamScope) -> Option<Statement> {
    let key = scope.kms_key_id.as_ref()?;
    let resource = if key.starts_with("arn:") {
        key.clone()
    } else {
        scope.arn("kms", &format!("key/{key}"))
    };
    Some(allow(
        "UseBucketKey",
        &["kms:Decrypt", "kms:GenerateDataKey"],
        vec![resource],
    ))
}

/// The controller's policy for a set of capabilities: statements with the same `Sid`
/// merged, in a stable order, each action and resource once.
pub fn policy(capabilities: &BTreeSet<Capability>, scope: &IamScope) -> PolicyDocument {
    let mut by_sid: BTreeMap<String, Statement> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let s3 = capabilities
        .iter()
        .any(|c| matches!(c, Capability::RunState | Capability::Backups));
    let all = capabilities
        .iter()
        .flat_map(|c| statements(*c, scope))
        .chain(s3.then(|| kms_statement(scope)).flatten());
    for statement in all {
        match by_sid.get_mut(&statement.sid) {
            Some(existing) => {
                for a in statement.actions {
                    if !existing.actions.contains(&a) {
                        existing.actions.push(a);
                    }
                }
                for r in statement.resources {
                    if !existing.resources.contains(&r) {
                        existing.resources.push(r);
                    }
                }
            }
            None => {
                order.push(statement.sid.clone());
                by_sid.insert(statement.sid.clone(), statement);
            }
        }
    }
    PolicyDocument {
        version: "2012-10-17",
        statements: order
            .into_iter()
            .filter_map(|sid| by_sid.remove(&sid))
            .map(|mut s| {
                s.actions.sort();
                s
            })
            .collect(),
    }
}

/// What the instances' own role needs for cutover's scripts: read the admin secret
/// (set-initial-password), write artifacts, checksums and result objects, read
/// artifacts to load. Attach it to the instance profile's role.
pub fn instance_statements(scope: &IamScope) -> PolicyDocument {
    let env = &scope.environment;
    let mut statements = vec![
        allow(
            "WriteResultsAndArtifacts",
            &["s3:AbortMultipartUpload", "s3:PutObject"],
            vec![
                scope.s3_keys("runs/*"),
                scope.s3_keys(&format!("backups/{env}/*")),
            ],
        ),
        allow(
            "ReadArtifacts",
            &["s3:GetObject"],
            vec![scope.s3_keys(&format!("backups/{env}/*"))],
        ),
    ];
    if !scope.admin_secrets.is_empty() {
        statements.push(allow(
            "ReadAdminSecret",
            &["secretsmanager:GetSecretValue"],
            scope.secret_arns(&scope.admin_secrets),
        ));
    }
    statements.extend(kms_statement(scope));
    PolicyDocument {
        version: "2012-10-17",
        statements,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> IamScope {
        IamScope {
            environment: "staging".into(),
            region: "af-south-1".into(),
            account: "123456789012".into(),
            bucket: "credex-cutover-staging".into(),
            prefix: "cutover/staging".into(),
            kms_key_id: None,
            admin_secrets: ["neo4j_stage_secrets/ledgerspace-admin".to_owned()].into(),
            app_secrets: ["neo4j_stage_secrets/ledgerspace".to_owned()].into(),
            traffic: Some(TrafficScope::Secret("neo4j_stage_secrets".into())),
            app_service: Some((
                "credex-cluster-staging".into(),
                "credex-core-service-staging".into(),
            )),
            images: ["ami-0123456789abcdef0".to_owned()].into(),
            subnets: ["subnet-0123456789abcdef0".to_owned()].into(),
            security_groups: ["sg-0123456789abcdef0".to_owned()].into(),
            instance_profiles: ["credex-neo4j-staging".to_owned()].into(),
            images_from_run: true,
            parameters: ["/credex/app-image".to_owned()].into(),
            terraform_state: Some(("credex-terraform-staging".into(), "terraform".into())),
        }
    }

    fn all_capabilities() -> BTreeSet<Capability> {
        Capability::ALL.iter().copied().collect()
    }

    /// The test scope once with each traffic kind.
    fn scopes_of_every_traffic_kind() -> Vec<IamScope> {
        let kinds = [
            TrafficScope::Secret("neo4j_stage_secrets".into()),
            TrafficScope::TaskDefinition(
                "credex-cluster-staging".into(),
                "credex-core-service-staging".into(),
            ),
            TrafficScope::Parameters(["/staging/ledger/bolt-url".to_owned()].into()),
        ];
        kinds
            .into_iter()
            .map(|t| IamScope {
                traffic: Some(t),
                ..scope()
            })
            .collect()
    }

    #[test]
    fn every_action_of_every_capability_is_in_its_statements() {
        let scopes = scopes_of_every_traffic_kind();
        for c in all_capabilities() {
            let granted: BTreeSet<String> = scopes
                .iter()
                .flat_map(|scope| statements(c, scope))
                .flat_map(|s| s.actions)
                .collect();
            for a in c.actions() {
                assert!(
                    granted.contains(*a),
                    "{c:?} lists {a} but grants it nowhere"
                );
            }
            for a in &granted {
                assert!(
                    c.actions().contains(&a.as_str()),
                    "{c:?} grants {a} it does not list"
                );
            }
        }
    }

    #[test]
    fn run_state_is_scoped_to_the_prefix_and_lists_only_runs() {
        let p = policy(&[Capability::RunState].into(), &scope());
        let objects = &p.statements[0];
        assert_eq!(
            objects.resources,
            vec![
                "arn:aws:s3:::credex-cutover-staging/cutover/staging/lease.json",
                "arn:aws:s3:::credex-cutover-staging/cutover/staging/runs/*",
            ]
        );
        assert!(!objects.actions.contains(&"s3:ListBucket".to_owned()));
        let list = &p.statements[1];
        assert_eq!(list.resources, vec!["arn:aws:s3:::credex-cutover-staging"]);
        assert_eq!(
            list.condition.as_ref().unwrap()["StringLike"]["s3:prefix"],
            serde_json::json!(["cutover/staging/runs/", "cutover/staging/runs/*"])
        );
    }

    #[test]
    fn only_actions_without_resource_level_permissions_get_a_star() {
        for scope in scopes_of_every_traffic_kind() {
            let p = policy(&all_capabilities(), &scope);
            only_unscoped_actions_on_star(&p);
        }
    }

    #[test]
    fn a_switch_grants_only_what_its_kind_writes() {
        let scopes = scopes_of_every_traffic_kind();
        let actions = |s: &IamScope| -> BTreeSet<String> {
            statements(Capability::SwitchTraffic, s)
                .into_iter()
                .flat_map(|st| st.actions)
                .collect()
        };
        let (secret, ecs, parameters) = (
            actions(&scopes[0]),
            actions(&scopes[1]),
            actions(&scopes[2]),
        );
        assert!(
            secret.iter().all(|a| a.starts_with("secretsmanager:")),
            "{secret:?}"
        );
        assert!(
            ecs.iter()
                .all(|a| a.starts_with("ecs:") || a == "iam:PassRole"),
            "{ecs:?}"
        );
        assert!(
            parameters.iter().all(|a| a.starts_with("ssm:")),
            "{parameters:?}"
        );
        let p = statements(Capability::SwitchTraffic, &scopes[2]);
        assert_eq!(
            p[0].resources,
            vec!["arn:aws:ssm:af-south-1:123456789012:parameter/staging/ledger/bolt-url"]
        );
    }

    fn only_unscoped_actions_on_star(p: &PolicyDocument) {
        for s in &p.statements {
            if s.resources.iter().any(|r| r == "*") {
                for a in &s.actions {
                    assert!(
                        [
                            "ec2:DescribeInstances",
                            "ssm:DescribeInstanceInformation",
                            "ssm:GetCommandInvocation",
                            "ssm:CancelCommand",
                            "ec2:DescribeImages",
                            "ecs:DescribeTaskDefinition",
                            "ecs:RegisterTaskDefinition",
                        ]
                        .contains(&a.as_str()),
                        "{} grants {a} on *",
                        s.sid
                    );
                }
            }
        }
    }

    #[test]
    fn secrets_are_matched_with_their_random_suffix_and_instances_by_the_env_tag() {
        let p = policy(&all_capabilities(), &scope());
        let rotate = p
            .statements
            .iter()
            .find(|s| s.sid == "RotateApplicationSecrets")
            .unwrap();
        assert_eq!(
            rotate.resources,
            vec!["arn:aws:secretsmanager:af-south-1:123456789012:secret:neo4j_stage_secrets/ledgerspace-??????"]
        );
        let terminate = p
            .statements
            .iter()
            .find(|s| s.sid == "TerminateEnvironmentInstances")
            .unwrap();
        assert_eq!(
            terminate.condition,
            Some(
                serde_json::json!({ "StringEquals": { "ec2:ResourceTag/cutover:env": "staging" } })
            )
        );
    }

    #[test]
    fn nothing_named_means_no_statement_and_kms_only_with_a_key() {
        let mut s = scope();
        s.traffic = None;
        s.app_service = None;
        assert!(statements(Capability::SwitchTraffic, &s).is_empty());
        assert!(statements(Capability::RestartApp, &s).is_empty());
        assert!(!policy(&[Capability::RunState].into(), &s)
            .statements
            .iter()
            .any(|st| st.sid == "UseBucketKey"));
        s.kms_key_id = Some("1234abcd-12ab-34cd-56ef-1234567890ab".into());
        let p = policy(&[Capability::RunState].into(), &s);
        let kms = p
            .statements
            .iter()
            .find(|st| st.sid == "UseBucketKey")
            .unwrap();
        assert_eq!(
            kms.resources,
            vec!["arn:aws:kms:af-south-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"]
        );
    }
}
