//! Secrets Manager against moto: rotation and rollback leave exactly one AWSCURRENT and
//! the previous value as AWSPREVIOUS; both are idempotent.

use crate::aws_support::setup;
use cutover::ids::SecretName;
use cutover::providers::aws::SecretsManagerStore;
use cutover::providers::{SecretStage, SecretStore};
use secrecy::{ExposeSecret, SecretString};

fn count(versions: &[cutover::providers::SecretVersionInfo], stage: SecretStage) -> usize {
    versions
        .iter()
        .filter(|v| v.stages.contains(&stage))
        .count()
}

#[tokio::test]
async fn rotation_and_rollback_keep_one_current_and_the_previous_as_previous() {
    let (_moto, _settings, clients) = setup("cutover-secrets").await;
    let store = SecretsManagerStore::new(clients.secrets.clone());
    let name = SecretName::new("neo4j_stage_secrets");
    let v1 = SecretString::from(r#"{"ledgerspacepass":"old-password-1"}"#.to_owned());
    assert!(store.create_if_missing(&name, &v1, None).await.unwrap());
    assert!(!store.create_if_missing(&name, &v1, None).await.unwrap());
    let original = store
        .get(&name, SecretStage::Current)
        .await
        .unwrap()
        .unwrap();

    let v2 = SecretString::from(r#"{"ledgerspacepass":"new-password-2"}"#.to_owned());
    let pending = store
        .put_pending(&name, &v2, "run-1/rotate-ledger")
        .await
        .unwrap();
    assert_eq!(
        store
            .put_pending(&name, &v2, "run-1/rotate-ledger")
            .await
            .unwrap(),
        pending,
        "same token adopts"
    );
    assert_eq!(
        store
            .get(&name, SecretStage::Pending)
            .await
            .unwrap()
            .unwrap()
            .value
            .expose_secret(),
        v2.expose_secret()
    );
    assert_eq!(
        store
            .get(&name, SecretStage::Current)
            .await
            .unwrap()
            .unwrap()
            .version_id,
        original.version_id
    );

    store.promote(&name, &pending).await.unwrap();
    store.promote(&name, &pending).await.unwrap();
    let versions = store.versions(&name).await.unwrap();
    assert_eq!(count(&versions, SecretStage::Current), 1);
    assert_eq!(count(&versions, SecretStage::Pending), 0);
    assert_eq!(
        store
            .get(&name, SecretStage::Current)
            .await
            .unwrap()
            .unwrap()
            .version_id,
        pending
    );
    assert_eq!(
        store
            .get(&name, SecretStage::Previous)
            .await
            .unwrap()
            .unwrap()
            .version_id,
        original.version_id
    );

    store.rollback(&name).await.unwrap();
    store.rollback(&name).await.unwrap();
    let versions = store.versions(&name).await.unwrap();
    assert_eq!(count(&versions, SecretStage::Current), 1);
    assert_eq!(count(&versions, SecretStage::Previous), 1);
    let current = store
        .get(&name, SecretStage::Current)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.version_id, original.version_id);
    assert_eq!(current.value.expose_secret(), v1.expose_secret());
    assert_eq!(
        store
            .get(&name, SecretStage::Previous)
            .await
            .unwrap()
            .unwrap()
            .version_id,
        pending
    );
    // Debug output of a version never shows the value.
    assert!(!format!("{current:?}").contains("old-password-1"));
}
