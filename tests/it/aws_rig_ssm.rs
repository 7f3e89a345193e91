//! The AWS rehearsal rig's stand-in SSM agent, through cutover's own AWS exec channel
//! (`SsmExec`, `Ec2Compute`): each command's real script runs on the instance's rehearsal
//! host (a directory laid out like the AMI, with its own loopback address), statuses go
//! Pending → InProgress → Success / Failed / TimedOut / Cancelled, a host the agent cannot
//! reach leaves commands Pending until DeliveryTimedOut, and the API's output stops at
//! 24,000 characters. No Neo4j is started here: the hosts' layout is enough.

use crate::aws_support::{launch_instance, setup_on, Moto};
use crate::harness::moto::MotoServer;
use cutover::failure::ErrorClass;
use cutover::ids::{InstanceId, RunId};
use cutover::providers::aws::ssm_exec::SsmPoll;
use cutover::providers::aws::{AwsClients, Ec2Compute, S3Store, SsmExec};
use cutover::providers::{Compute, Exec, ExecHandle, ExecStatus, Readiness, Script};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Every wait here is bounded by this; a rig that needs longer is broken.
const LIMIT: Duration = Duration::from_secs(120);

fn script(nonce: &str, body: &str, timeout: Duration) -> Script {
    Script {
        name: "rig-check".into(),
        body: body.into(),
        env: BTreeMap::from([("GREETING".to_owned(), "it's fine".to_owned())]),
        timeout,
        nonce: nonce.into(),
    }
}

async fn launch(clients: &AwsClients) -> (InstanceId, String) {
    let i = launch_instance(clients).await;
    (
        InstanceId::new(i.instance_id().unwrap()),
        i.private_ip_address().unwrap_or_default().to_owned(),
    )
}

async fn until_ready(compute: &Ec2Compute, id: &InstanceId) {
    let started = Instant::now();
    loop {
        match compute.readiness(id).await.unwrap() {
            Readiness::Ready => return,
            Readiness::NotYet(why) => {
                assert!(started.elapsed() < LIMIT, "{id} never became ready: {why}")
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls until the status is no longer Running.
async fn until_done(exec: &SsmExec, handle: &ExecHandle) -> SsmPoll {
    let started = Instant::now();
    loop {
        let poll = exec.poll_detailed(handle, 0).await.unwrap();
        if poll.status != ExecStatus::Running {
            return poll;
        }
        assert!(
            started.elapsed() < LIMIT,
            "command {} still running: {}",
            handle.id,
            poll.ssm_status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn until_ssm_status(exec: &SsmExec, handle: &ExecHandle, prefix: &str) {
    let started = Instant::now();
    loop {
        let poll = exec.poll_detailed(handle, 0).await.unwrap();
        if poll.ssm_status.starts_with(prefix) {
            return;
        }
        assert!(
            started.elapsed() < LIMIT,
            "command {} never reached {prefix}: {}",
            handle.id,
            poll.ssm_status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn finished(poll: &SsmPoll) -> &cutover::providers::ExecResult {
    match &poll.status {
        ExecStatus::Finished(r) => r,
        other => panic!(
            "expected a result object, got {other:?} ({})",
            poll.ssm_status
        ),
    }
}

async fn rig(bucket: &str) -> (Moto, AwsClients, SsmExec, Ec2Compute) {
    let (moto, settings, clients) = setup_on(MotoServer::start_rig(&[]).await, bucket).await;
    let exec = SsmExec::new(
        clients.ssm.clone(),
        S3Store::new(clients.s3.clone(), settings),
        RunId::new("20261202-rig00001"),
    );
    let compute = Ec2Compute::new(clients.ec2.clone(), clients.ssm.clone());
    (moto, clients, exec, compute)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_runs_each_commands_real_script_on_the_instances_host() {
    let (moto, clients, exec, compute) = rig("cutover-rig-exec").await;
    let (id, reported) = launch(&clients).await;
    let host = moto.server.rig_host(id.as_str()).await;
    assert!(host.address.starts_with("127."), "{host:?}");
    assert_eq!(
        reported, host.address,
        "RunInstances reports the host's loopback address"
    );
    let described = compute.describe(&id).await.unwrap().unwrap();
    assert_eq!(
        described.endpoints.get("bolt").map(String::as_str),
        Some(format!("bolt://{}:7687", host.address).as_str())
    );
    until_ready(&compute, &id).await;

    // The script runs on the host: its environment is the AMI's, under the host's root.
    let body = "printf '%s' \"$GREETING\" > \"$NEO4J_HOME/greeting\"\n\
                cutover_output conf \"$NEO4J_CONF\"\n\
                cutover_output admin \"$(command -v neo4j-admin)\"\n\
                cutover_output systemctl \"$(command -v systemctl)\"\n";
    let handle = exec
        .start(&id, &script("rig-ok-0001", body, Duration::from_secs(60)))
        .await
        .unwrap();
    // The result object is written before the command ends, so cutover may see it while
    // SSM still says InProgress; SSM's own status follows.
    let poll = until_done(&exec, &handle).await;
    let r = finished(&poll);
    until_ssm_status(&exec, &handle, "Success/Success").await;
    assert_eq!(r.exit_code, 0, "{}", r.output_tail);
    let root = &host.root;
    assert_eq!(
        r.outputs["conf"],
        root.join("etc/neo4j/neo4j.conf").display().to_string()
    );
    assert_eq!(
        r.outputs["admin"],
        root.join("usr/bin/neo4j-admin").display().to_string()
    );
    assert_eq!(
        r.outputs["systemctl"],
        root.join("usr/bin/systemctl").display().to_string()
    );
    assert_eq!(
        std::fs::read_to_string(root.join("var/lib/neo4j/greeting")).unwrap(),
        "it's fine"
    );
    // The same attempt started again, as by a process that crashed before it journaled
    // the handle: the command is found by its nonce and adopted, not sent a second time.
    let again = exec
        .start(&id, &script("rig-ok-0001", body, Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(again.id, handle.id, "the sent command is adopted");
    let sent = clients
        .ssm
        .list_command_invocations()
        .instance_id(id.as_str())
        .send()
        .await
        .unwrap();
    let with_nonce = sent
        .command_invocations()
        .iter()
        .filter(|i| i.comment().unwrap_or_default().contains(" rig-ok-0001 "))
        .count();
    assert_eq!(with_nonce, 1, "one command for the attempt");
    let conf = std::fs::read_to_string(root.join("etc/neo4j/neo4j.conf")).unwrap();
    assert!(
        conf.contains(&format!("server.bolt.listen_address={}:7687", host.address)),
        "{conf}"
    );

    // A failing script: SSM says Failed, the result object has its exit code.
    let handle = exec
        .start(
            &id,
            &script(
                "rig-fail-001",
                "echo before\nexit 7\n",
                Duration::from_secs(60),
            ),
        )
        .await
        .unwrap();
    let poll = until_done(&exec, &handle).await;
    assert_eq!(finished(&poll).exit_code, 7);
    until_ssm_status(&exec, &handle, "Failed/Failed").await;
    let listed = clients
        .ssm
        .list_command_invocations()
        .command_id(&handle.id)
        .details(true)
        .send()
        .await
        .unwrap();
    let plugin = &listed.command_invocations()[0].command_plugins()[0];
    assert_eq!(plugin.response_code(), 7);
    assert_eq!(plugin.status().map(|s| s.as_str()), Some("Failed"));

    // Past its execution timeout the script is killed: TimedOut, and no result object.
    let handle = start_sleeper(
        &exec,
        &id,
        "rig-slow-001",
        "slow.pid",
        Duration::from_secs(10),
    )
    .await;
    until_file(&root.join("var/lib/neo4j/slow.pid")).await;
    let poll = until_done(&exec, &handle).await;
    assert_eq!(poll.ssm_status, "TimedOut/ExecutionTimedOut");
    assert!(
        matches!(poll.status, ExecStatus::Inconclusive(_)),
        "{poll:?}"
    );
    assert_gone(&root.join("var/lib/neo4j/slow.pid")).await;

    // Cancelled while it runs: killed, Cancelled, no result object.
    let handle = start_sleeper(
        &exec,
        &id,
        "rig-cancel-01",
        "cancel.pid",
        Duration::from_secs(60),
    )
    .await;
    until_ssm_status(&exec, &handle, "InProgress").await;
    until_file(&root.join("var/lib/neo4j/cancel.pid")).await;
    exec.cancel(&handle).await.unwrap();
    let poll = until_done(&exec, &handle).await;
    assert_eq!(poll.ssm_status, "Cancelled/Cancelled");
    assert!(
        matches!(poll.status, ExecStatus::Inconclusive(_)),
        "{poll:?}"
    );
    assert_gone(&root.join("var/lib/neo4j/cancel.pid")).await;

    // The API's output stops at 24,000 characters; the S3 copy is whole.
    let sent = clients
        .ssm
        .send_command()
        .instance_ids(id.as_str())
        .document_name("AWS-RunShellScript")
        .parameters(
            "commands",
            vec!["head -c 30000 /dev/zero | tr '\\0' x".to_owned()],
        )
        .output_s3_bucket_name("cutover-rig-exec")
        .output_s3_key_prefix("ssm-out")
        .send()
        .await
        .unwrap();
    let command_id = sent.command().unwrap().command_id().unwrap().to_owned();
    let invocation = loop_until_terminal(&clients, &command_id, &id).await;
    assert_eq!(invocation.standard_output_content().unwrap().len(), 24_000);
    let key = format!("ssm-out/{command_id}/{id}/awsrunShellScript/0.awsrunShellScript/stdout");
    assert!(invocation.standard_output_url().unwrap().ends_with(&key));
    let object = clients
        .s3
        .get_object()
        .bucket("cutover-rig-exec")
        .key(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(object.content_length(), Some(30_000));

    // An instance the agent never registered from is refused, as SSM does.
    let err = exec
        .start(
            &InstanceId::new("i-0000000000000dead"),
            &script("rig-none-001", "true\n", Duration::from_secs(60)),
        )
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent, "{err}");
    assert!(err.message.contains("InvalidInstanceId"), "{err}");

    // Everything else SSM is moto's, unchanged: Parameter Store.
    clients
        .ssm
        .put_parameter()
        .name("/cutover/rig/ami-id")
        .value("ami-0rig")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .unwrap();
    let got = clients
        .ssm
        .get_parameter()
        .name("/cutover/rig/ami-id")
        .send()
        .await
        .unwrap();
    assert_eq!(got.parameter().unwrap().value(), Some("ami-0rig"));
}

/// Starts a script that writes its pid to `$NEO4J_HOME/<pid_file>` and sleeps a minute.
async fn start_sleeper(
    exec: &SsmExec,
    id: &InstanceId,
    nonce: &str,
    pid_file: &str,
    timeout: Duration,
) -> ExecHandle {
    let body = format!("echo $BASHPID > \"$NEO4J_HOME/{pid_file}\"\nsleep 60\n");
    exec.start(id, &script(nonce, &body, timeout))
        .await
        .unwrap()
}

/// Waits (bounded) until `path` exists: the script got that far.
async fn until_file(path: &std::path::Path) {
    let started = Instant::now();
    while !path.exists() {
        assert!(
            started.elapsed() < LIMIT,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (bounded) until the process whose pid is in `pid_file` is gone.
async fn assert_gone(pid_file: &std::path::Path) {
    let pid: i32 = std::fs::read_to_string(pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let started = Instant::now();
    // SAFETY: signal 0 only checks whether the process exists.
    while unsafe { libc::kill(pid, 0) } == 0 {
        assert!(
            started.elapsed() < LIMIT,
            "the script's process {pid} still runs"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn loop_until_terminal(
    clients: &AwsClients,
    command_id: &str,
    id: &InstanceId,
) -> aws_sdk_ssm::operation::get_command_invocation::GetCommandInvocationOutput {
    let started = Instant::now();
    loop {
        let out = clients
            .ssm
            .get_command_invocation()
            .command_id(command_id)
            .instance_id(id.as_str())
            .send()
            .await
            .unwrap();
        let status = out
            .status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default();
        if !["Pending", "InProgress", "Delayed", "Cancelling"].contains(&status.as_str()) {
            return out;
        }
        assert!(started.elapsed() < LIMIT, "{command_id} still {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_the_agent_cannot_reach_stays_pending_until_delivery_timed_out() {
    let (moto, clients, exec, compute) = rig("cutover-rig-down").await;
    let exec = exec.with_delivery_timeout(Duration::from_secs(30));
    let (id, _) = launch(&clients).await;
    until_ready(&compute, &id).await;

    moto.server.set_reachable(id.as_str(), false).await;
    match compute.readiness(&id).await.unwrap() {
        Readiness::NotYet(why) => assert!(why.contains("ConnectionLost"), "{why}"),
        Readiness::Ready => panic!("a host the agent cannot reach is not ready"),
    }
    // Accepted, Pending, and after the delivery timeout TimedOut/DeliveryTimedOut with
    // nothing run: cutover's poll is Inconclusive (no result object).
    let marker = moto
        .server
        .rig_host(id.as_str())
        .await
        .root
        .join("var/lib/neo4j/ran");
    let body = "touch \"$NEO4J_HOME/ran\"\n";
    let lost = exec
        .start(&id, &script("rig-lost-001", body, Duration::from_secs(60)))
        .await
        .unwrap();
    let poll = exec.poll_detailed(&lost, 0).await.unwrap();
    assert_eq!(poll.status, ExecStatus::Running);
    assert_eq!(poll.ssm_status, "Pending/Pending");
    let poll = until_done(&exec, &lost).await;
    assert_eq!(poll.ssm_status, "TimedOut/DeliveryTimedOut");
    assert!(
        matches!(poll.status, ExecStatus::Inconclusive(_)),
        "{poll:?}"
    );
    assert!(
        !marker.exists(),
        "a command that was never delivered did not run"
    );

    // A command sent while the host is down is delivered once it is back.
    let late = exec
        .start(&id, &script("rig-late-001", body, Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(
        exec.poll_detailed(&late, 0).await.unwrap().ssm_status,
        "Pending/Pending"
    );
    moto.server.set_reachable(id.as_str(), true).await;
    until_ready(&compute, &id).await;
    let poll = until_done(&exec, &late).await;
    assert_eq!(finished(&poll).exit_code, 0);
    until_ssm_status(&exec, &late, "Success/Success").await;
    assert!(marker.exists());
}
