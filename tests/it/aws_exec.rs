//! SSM exec: against moto (which reports Success with empty output for every command),
//! cutover does not believe SSM: without a result object the status is Inconclusive; the
//! rendered command, run for real under bash with the AWS CLI against moto, writes the
//! result object that poll then believes. Failure statuses moto cannot produce
//! (DeliveryTimedOut, throttling, 5xx) come from aws-smithy-mocks.

use crate::aws_support::{launch_instance, setup, tool};
use aws_sdk_ssm::operation::get_command_invocation::{
    GetCommandInvocationError, GetCommandInvocationOutput,
};
use aws_smithy_mocks::{mock, RuleMode};
use cutover::failure::ErrorClass;
use cutover::ids::{InstanceId, RunId};
use cutover::providers::aws::{S3Store, SsmExec};
use cutover::providers::{Exec, ExecHandle, ExecStatus, ObjectStore, Script};
use std::collections::BTreeMap;
use std::time::Duration;

fn script(nonce: &str, body: &str) -> Script {
    Script {
        name: "plumbing".into(),
        body: body.into(),
        env: BTreeMap::from([("GREETING".to_owned(), "it's fine".to_owned())]),
        timeout: Duration::from_secs(60),
        nonce: nonce.into(),
    }
}

async fn instance(clients: &cutover::providers::aws::AwsClients) -> InstanceId {
    InstanceId::new(launch_instance(clients).await.instance_id().unwrap())
}

#[tokio::test]
async fn ssm_success_without_a_result_object_is_inconclusive_and_the_real_result_is_believed() {
    let (moto, settings, clients) = setup("cutover-exec").await;
    let store = S3Store::new(clients.s3.clone(), settings);
    let exec = SsmExec::new(
        clients.ssm.clone(),
        store.clone(),
        RunId::new("20261121-exec0001"),
    );
    let id = instance(&clients).await;

    let s = script(
        "attempt-0001",
        "echo \"$GREETING\"\ncutover_output answer 42\nexit 0\n",
    );
    let handle = exec.start(&id, &s).await.unwrap();
    let poll = exec.poll_detailed(&handle, 0).await.unwrap();
    assert!(
        poll.ssm_status.starts_with("Success"),
        "moto says {}",
        poll.ssm_status
    );
    match &poll.status {
        ExecStatus::Inconclusive(why) => assert!(why.contains("result object"), "{why}"),
        other => {
            panic!("SSM's Success without a result object must be Inconclusive, got {other:?}")
        }
    }

    // Run the exact command text SSM would run, under bash, uploading to moto.
    let text = exec.render(&s).unwrap();
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(&text)
        .envs(moto.cli_env())
        .env(
            "PATH",
            format!(
                "{}:{}",
                tool("aws").parent().unwrap().display(),
                std::env::var("PATH").unwrap()
            ),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "wrapper failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    match exec.poll(&handle).await.unwrap() {
        ExecStatus::Finished(r) => {
            assert_eq!(r.exit_code, 0);
            assert_eq!(r.nonce, "attempt-0001");
            assert_eq!(r.outputs.get("answer").map(String::as_str), Some("42"));
            assert!(r.output_tail.contains("it's fine"));
        }
        other => panic!("expected the result object to be believed, got {other:?}"),
    }

    // A failing script still reports: exit code and tail, pipefail honoured.
    let failing = script("attempt-0002", "echo before\nfalse | cat\necho never\n");
    let text = exec.render(&failing).unwrap();
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(&text)
        .envs(moto.cli_env())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let r = exec
        .read_result("attempt-0002")
        .await
        .unwrap()
        .expect("result object");
    assert_eq!(r.exit_code, 1);
    assert!(r.output_tail.contains("before") && !r.output_tail.contains("never"));
    // The full log is in S3 too.
    let log = store
        .get_bytes(&exec.log_key("attempt-0002"))
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&log).contains("before"));
}

fn handle() -> ExecHandle {
    ExecHandle {
        id: "cmd-1".into(),
        instance: InstanceId::new("i-0abc"),
        nonce: "attempt-0009".into(),
    }
}

async fn exec_with(ssm: aws_sdk_ssm::Client) -> (crate::aws_support::Moto, SsmExec) {
    let (moto, settings, clients) = setup("cutover-exec-mocks").await;
    (
        moto,
        SsmExec::new(
            ssm,
            S3Store::new(clients.s3.clone(), settings),
            RunId::new("20261121-mock0001"),
        ),
    )
}

#[tokio::test]
async fn delivery_timed_out_without_a_result_object_is_inconclusive() {
    let rule = mock!(aws_sdk_ssm::Client::get_command_invocation).then_output(|| {
        GetCommandInvocationOutput::builder()
            .status(aws_sdk_ssm::types::CommandInvocationStatus::TimedOut)
            .status_details("DeliveryTimedOut")
            .build()
    });
    let ssm = crate::mocked_client!(aws_sdk_ssm, RuleMode::Sequential, [&rule]);
    let (_moto, exec) = exec_with(ssm).await;
    let poll = exec.poll_detailed(&handle(), 3).await.unwrap();
    assert_eq!(poll.ssm_status, "TimedOut/DeliveryTimedOut");
    assert!(
        matches!(poll.status, ExecStatus::Inconclusive(_)),
        "{:?}",
        poll.status
    );
}

#[tokio::test]
async fn in_progress_polls_again_with_backoff() {
    let rule = mock!(aws_sdk_ssm::Client::get_command_invocation).then_output(|| {
        GetCommandInvocationOutput::builder()
            .status(aws_sdk_ssm::types::CommandInvocationStatus::InProgress)
            .build()
    });
    let ssm = crate::mocked_client!(aws_sdk_ssm, RuleMode::Sequential, [&rule]);
    let (_moto, exec) = exec_with(ssm).await;
    let poll = exec.poll_detailed(&handle(), 2).await.unwrap();
    assert_eq!(poll.status, ExecStatus::Running);
    assert_eq!(poll.retry_after, Some(Duration::from_secs(8)));
}

#[tokio::test]
async fn throttling_and_5xx_are_transient_validation_is_permanent() {
    let throttled = mock!(aws_sdk_ssm::Client::get_command_invocation).then_error(|| {
        GetCommandInvocationError::generic(
            aws_smithy_types::error::ErrorMetadata::builder()
                .code("ThrottlingException")
                .message("Rate exceeded")
                .build(),
        )
    });
    let server = mock!(aws_sdk_ssm::Client::get_command_invocation).then_http_response(|| {
        aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(503).unwrap(),
            aws_smithy_types::body::SdkBody::from("{}"),
        )
    });
    let invalid = mock!(aws_sdk_ssm::Client::get_command_invocation).then_error(|| {
        GetCommandInvocationError::InvalidCommandId(
            aws_sdk_ssm::types::error::InvalidCommandId::builder()
                .message("bad id")
                .build(),
        )
    });
    let ssm = crate::mocked_client!(
        aws_sdk_ssm,
        RuleMode::Sequential,
        [&throttled, &server, &invalid]
    );
    let (_moto, exec) = exec_with(ssm).await;
    let e = exec.poll(&handle()).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Transient, "{e}");
    assert!(e.message.contains("ThrottlingException"));
    let e = exec.poll(&handle()).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Transient, "{e}");
    let e = exec.poll(&handle()).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Permanent, "{e}");
}

#[tokio::test]
async fn cancel_sends_cancel_command() {
    let ok = mock!(aws_sdk_ssm::Client::cancel_command)
        .match_requests(|r| r.command_id() == Some("cmd-1") && r.instance_ids() == ["i-0abc"])
        .then_output(|| {
            aws_sdk_ssm::operation::cancel_command::CancelCommandOutput::builder().build()
        });
    let ssm = crate::mocked_client!(aws_sdk_ssm, RuleMode::Sequential, [&ok]);
    let (_moto, exec) = exec_with(ssm).await;
    exec.cancel(&handle()).await.unwrap();
    assert_eq!(ok.num_calls(), 1);
}
