//! EC2 compute against moto: provision → adopt on retry with the same token → tag lookup
//! → terminate (idempotent); gc finds orphans. Readiness (SSM registration) via mocks:
//! moto does not implement DescribeInstanceInformation.

use crate::aws_support::setup;
use aws_smithy_mocks::{mock, RuleMode};
use cutover::providers::aws::Ec2Compute;
use cutover::providers::{tag, Compute, ProvisionRequest, Readiness, Tags};

fn request(ami: &str, run: &str, token: &str) -> ProvisionRequest {
    let tags: Tags = [
        (tag::ENV, "staging"),
        (tag::DATABASE, "ledger"),
        (tag::COLOR, "green"),
        (tag::RUN_ID, run),
        (tag::STEP_ID, "provision-green"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    ProvisionRequest {
        image: ami.into(),
        name: "ledger-green".into(),
        tags,
        idempotency_token: token.into(),
        settings: serde_json::json!({"instance_type": "t3.medium", "root_volume_gib": 30, "bolt_port": 7687}),
    }
}

#[tokio::test]
async fn provision_adopts_on_retry_finds_by_tags_and_terminates() {
    let (_moto, _settings, clients) = setup("cutover-compute").await;
    let compute = Ec2Compute::new(clients.ec2.clone(), clients.ssm.clone());
    let ami = clients.ec2.describe_images().send().await.unwrap().images()[0]
        .image_id()
        .unwrap()
        .to_owned();

    let first = compute
        .provision(&request(&ami, "run-a", "run-a/provision-green/1"))
        .await
        .unwrap();
    let again = compute
        .provision(&request(&ami, "run-a", "run-a/provision-green/1"))
        .await
        .unwrap();
    assert_eq!(
        first.id, again.id,
        "a retry with the same token adopts the instance"
    );
    assert_eq!(
        first.tags.get(tag::NAME).map(String::as_str),
        Some("ledger-green")
    );

    // What was asked for is what EC2 has: IMDSv2 required, tags on instance and volume.
    let described = clients
        .ec2
        .describe_instances()
        .instance_ids(first.id.as_str())
        .send()
        .await
        .unwrap();
    let i = &described.reservations()[0].instances()[0];
    assert_eq!(
        i.metadata_options()
            .unwrap()
            .http_tokens()
            .unwrap()
            .as_str(),
        "required"
    );
    let volumes = clients
        .ec2
        .describe_volumes()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:cutover:run-id")
                .values("run-a")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(
        !volumes.volumes().is_empty(),
        "the root volume carries the run tag"
    );

    let other = compute
        .provision(&request(&ami, "run-b", "run-b/provision-green/1"))
        .await
        .unwrap();
    assert_ne!(other.id, first.id);
    let mut by_run = Tags::new();
    by_run.insert(tag::RUN_ID.into(), "run-a".into());
    let found = compute.find_by_tags(&by_run).await.unwrap();
    assert_eq!(
        found.iter().map(|i| i.id.clone()).collect::<Vec<_>>(),
        vec![first.id.clone()]
    );

    // gc's policy (the journals decide) is tested through `cutover gc` on aws:
    // aws_run::gc_removes_only_this_environments_instances_that_no_run_owns.

    compute.terminate(&first.id).await.unwrap();
    compute.terminate(&first.id).await.unwrap();
    assert!(compute.find_by_tags(&by_run).await.unwrap().is_empty());
    // Readiness never reports a terminated instance as something that will become ready.
    assert!(compute.readiness(&first.id).await.is_err());
}

#[tokio::test]
async fn readiness_needs_the_ssm_agent_online() {
    use aws_sdk_ec2::types::{Instance, InstanceState as Ec2State, InstanceStateName, Reservation};
    let running = mock!(aws_sdk_ec2::Client::describe_instances)
        .sequence()
        .output(|| {
            aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput::builder()
                .reservations(
                    Reservation::builder()
                        .instances(
                            Instance::builder()
                                .instance_id("i-0abc")
                                .state(Ec2State::builder().name(InstanceStateName::Running).build())
                                .build(),
                        )
                        .build(),
                )
                .build()
        })
        .repeatedly()
        .build();
    let ec2 = crate::mocked_client!(aws_sdk_ec2, RuleMode::MatchAny, [&running]);
    let not_registered = mock!(aws_sdk_ssm::Client::describe_instance_information).then_output(|| {
        aws_sdk_ssm::operation::describe_instance_information::DescribeInstanceInformationOutput::builder().build()
    });
    let online = mock!(aws_sdk_ssm::Client::describe_instance_information).then_output(|| {
        aws_sdk_ssm::operation::describe_instance_information::DescribeInstanceInformationOutput::builder()
            .instance_information_list(
                aws_sdk_ssm::types::InstanceInformation::builder()
                    .instance_id("i-0abc")
                    .ping_status(aws_sdk_ssm::types::PingStatus::Online)
                    .build(),
            )
            .build()
    });
    let ssm = crate::mocked_client!(
        aws_sdk_ssm,
        RuleMode::Sequential,
        [&not_registered, &online]
    );
    let compute = Ec2Compute::new(ec2, ssm);
    let id = cutover::ids::InstanceId::new("i-0abc");
    match compute.readiness(&id).await.unwrap() {
        Readiness::NotYet(why) => assert!(why.contains("not registered"), "{why}"),
        Readiness::Ready => panic!("running without SSM is not ready"),
    }
    assert_eq!(compute.readiness(&id).await.unwrap(), Readiness::Ready);
}
