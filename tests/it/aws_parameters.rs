//! SSM Parameter Store against moto: the environment's current AMI per database, release
//! markers, and AWS's public base-AMI parameters (moto serves the Amazon Linux ones).

use crate::aws_support::setup;
use cutover::failure::ErrorClass;
use cutover::providers::aws::ParameterStore;

#[tokio::test]
async fn current_ami_release_markers_and_public_base_ami() {
    let (_moto, _settings, clients) = setup("cutover-parameters").await;
    let params = ParameterStore::new(clients.ssm.clone(), "staging");
    assert_eq!(params.current_ami("ledger").await.unwrap(), None);
    params
        .set_current_ami("ledger", "ami-0123456789abcdef0")
        .await
        .unwrap();
    assert_eq!(
        params.current_ami("ledger").await.unwrap().as_deref(),
        Some("ami-0123456789abcdef0")
    );
    assert_eq!(
        params
            .set_current_ami("ledger", "not-an-ami")
            .await
            .unwrap_err()
            .class,
        ErrorClass::Permanent
    );
    assert_eq!(
        params.current_ami("search").await.unwrap(),
        None,
        "per database"
    );

    let v1 = params
        .set_release_marker("last-good", "run-20261121-7f3a09bc")
        .await
        .unwrap();
    let v2 = params
        .set_release_marker("last-good", "run-20261122-0011aabb")
        .await
        .unwrap();
    assert!(v2 > v1);
    assert_eq!(
        params.release_marker("last-good").await.unwrap().as_deref(),
        Some("run-20261122-0011aabb")
    );

    let base = params
        .public_base_ami("/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64")
        .await
        .unwrap();
    assert!(base.starts_with("ami-"), "{base}");
    let missing = params
        .public_base_ami("/aws/service/ami-amazon-linux-latest/no-such-image")
        .await
        .unwrap_err();
    assert_eq!(missing.class, ErrorClass::Permanent);
}
