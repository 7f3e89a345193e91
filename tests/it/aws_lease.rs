//! The S3 lease against moto (which enforces If-None-Match / If-Match): racers with
//! their own clients and connections — exactly one wins; renew, release, take-over.

use crate::aws_support::setup;
use cutover::ids::RunId;
use cutover::providers::aws::lease::{LeaseOutcome, S3Lease};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racers_for_the_lease_exactly_one_wins() {
    let (moto, settings, _clients) = setup("cutover-lease").await;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(8));
    let mut tasks = Vec::new();
    for n in 0..8 {
        let clients = moto.clients(&settings).await;
        let lease = S3Lease::new(clients.s3.clone(), settings.clone());
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            lease
                .acquire(
                    &format!("racer-{n}"),
                    &RunId::new(format!("run-{n}")),
                    Duration::from_secs(600),
                )
                .await
                .unwrap()
        }));
    }
    let mut winners = Vec::new();
    let mut losers = 0;
    for t in tasks {
        match t.await.unwrap() {
            LeaseOutcome::Acquired(held) => winners.push(held),
            LeaseOutcome::HeldBy { expired, .. } => {
                assert!(!expired);
                losers += 1
            }
        }
    }
    assert_eq!(winners.len(), 1, "exactly one racer holds the lease");
    assert_eq!(losers, 7);
    let winner = winners.pop().unwrap();

    let clients = moto.clients(&settings).await;
    let lease = S3Lease::new(clients.s3.clone(), settings.clone());
    let renewed = lease
        .renew(&winner, Duration::from_secs(600))
        .await
        .unwrap();
    // The stale handle (old ETag) cannot renew: someone (itself) changed it.
    assert!(lease
        .renew(&winner, Duration::from_secs(600))
        .await
        .is_err());

    // Explicit take-over of what the operator was shown; the old holder then loses it.
    let shown = lease.current().await.unwrap().unwrap();
    let LeaseOutcome::Acquired(taken) = lease
        .take_over(
            &shown,
            "operator",
            &RunId::new("run-x"),
            Duration::from_secs(60),
        )
        .await
        .unwrap()
    else {
        panic!("take-over of the shown holder must succeed")
    };
    assert_eq!(
        taken.info.taken_over_from.as_ref().unwrap().run_id,
        renewed.info.run_id
    );
    assert!(lease
        .renew(&renewed, Duration::from_secs(600))
        .await
        .is_err());
    // Releasing someone else's lease does nothing; releasing ours frees it.
    lease.release(&renewed).await.unwrap();
    assert!(lease.current().await.unwrap().is_some());
    lease.release(&taken).await.unwrap();
    lease.release(&taken).await.unwrap();
    assert!(lease.current().await.unwrap().is_none());
    // The same run does not take back a live lease (a second resume of one run is
    // refused); once it has expired, it is taken over explicitly.
    let LeaseOutcome::Acquired(first) = lease
        .acquire("a", &RunId::new("run-r"), Duration::from_millis(1))
        .await
        .unwrap()
    else {
        panic!()
    };
    let LeaseOutcome::HeldBy { holder, .. } = lease
        .acquire("b", &RunId::new("run-r"), Duration::from_secs(60))
        .await
        .unwrap()
    else {
        panic!("a held lease is never silently re-acquired")
    };
    assert_eq!(holder, first);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let LeaseOutcome::HeldBy { holder, expired } = lease
        .acquire("b", &RunId::new("run-r"), Duration::from_secs(60))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(expired, "a lease past its expiry is reported as expired");
    let LeaseOutcome::Acquired(_) = lease
        .take_over(&holder, "b", &RunId::new("run-r"), Duration::from_secs(60))
        .await
        .unwrap()
    else {
        panic!("the expired lease is taken over when asked")
    };
}

/// Racers in separate processes (the AWS CLI doing the same conditional put) and in this
/// process (S3Lease): the exclusion comes from S3's If-None-Match, so exactly one of all
/// of them wins, whichever process it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racers_in_other_processes_and_this_one_exactly_one_wins() {
    let (moto, settings, _clients) = setup("cutover-lease-procs").await;
    let dir = tempfile::tempdir().unwrap();
    let key = settings.full_key("lease.json");
    let mut children = Vec::new();
    for n in 0..4 {
        let body = dir.path().join(format!("lease-{n}.json"));
        let info = serde_json::json!({
            "owner": format!("process-{n}"),
            "run_id": format!("cli-run-{n}"),
            "lease_id": format!("cli-{n}"),
            "acquired_at": "2026-11-21T00:00:00Z",
            "expires_at": "2099-01-01T00:00:00Z",
        });
        std::fs::write(&body, info.to_string()).unwrap();
        let mut cmd = tokio::process::Command::new(crate::aws_support::tool("aws"));
        cmd.args([
            "s3api",
            "put-object",
            "--bucket",
            &settings.bucket,
            "--key",
            &key,
            "--if-none-match",
            "*",
            "--body",
        ])
        .arg(&body)
        .envs(moto.cli_env());
        children.push(tokio::spawn(async move { cmd.output().await.unwrap() }));
    }
    let mut tasks = Vec::new();
    for n in 0..4 {
        let clients = moto.clients(&settings).await;
        let lease = S3Lease::new(clients.s3.clone(), settings.clone());
        tasks.push(tokio::spawn(async move {
            lease
                .acquire(
                    &format!("task-{n}"),
                    &RunId::new(format!("run-{n}")),
                    Duration::from_secs(600),
                )
                .await
                .unwrap()
        }));
    }
    let mut wins = 0;
    for child in children {
        let out = child.await.unwrap();
        if out.status.success() {
            wins += 1;
        } else {
            // A losing process lost the race, not something else.
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains("PreconditionFailed"), "{stderr}");
        }
    }
    for t in tasks {
        if let LeaseOutcome::Acquired(_) = t.await.unwrap() {
            wins += 1;
        }
    }
    assert_eq!(
        wins, 1,
        "exactly one racer across processes holds the lease"
    );
    let clients = moto.clients(&settings).await;
    assert!(S3Lease::new(clients.s3.clone(), settings.clone())
        .current()
        .await
        .unwrap()
        .is_some());
}
