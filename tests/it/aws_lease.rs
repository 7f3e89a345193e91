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
    // The same run re-acquires its own lease on resume.
    let LeaseOutcome::Acquired(_) = lease
        .acquire("a", &RunId::new("run-r"), Duration::from_secs(60))
        .await
        .unwrap()
    else {
        panic!()
    };
    let LeaseOutcome::Acquired(_) = lease
        .acquire("b", &RunId::new("run-r"), Duration::from_secs(60))
        .await
        .unwrap()
    else {
        panic!("a resumed run takes its own lease back")
    };
}
