//! S3 object store against moto: a multi-hundred-MiB stream up and down in bounded
//! memory with the right SHA-256, and a tampered object detected.

use crate::aws_support::setup;
use cutover::failure::ErrorClass;
use cutover::ids::ObjectKey;
use cutover::providers::aws::S3Store;
use cutover::providers::ObjectStore;
use sha2::{Digest, Sha256};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

/// Deterministic pseudo-random bytes generated on the fly (never held in memory).
struct Generated {
    remaining: u64,
    state: u64,
}

impl AsyncRead for Generated {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = (buf.remaining() as u64).min(self.remaining).min(64 * 1024) as usize;
        let mut chunk = vec![0u8; n];
        for b in chunk.iter_mut() {
            self.state = self
                .state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (self.state >> 56) as u8;
        }
        self.remaining -= n as u64;
        buf.put_slice(&chunk);
        Poll::Ready(Ok(()))
    }
}

fn expected_sha(size: u64) -> String {
    let mut g = Generated {
        remaining: size,
        state: 7,
    };
    let mut h = Sha256::new();
    let mut left = size;
    while left > 0 {
        let n = left.min(1 << 20) as usize;
        let mut chunk = vec![0u8; n];
        for b in chunk.iter_mut() {
            g.state = g
                .state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (g.state >> 56) as u8;
        }
        h.update(&chunk);
        left -= n as u64;
    }
    hex::encode(h.finalize())
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_300_mib_stream_goes_up_and_down_in_bounded_memory_with_the_right_sha256() {
    const SIZE: u64 = 300 * 1024 * 1024;
    let (_moto, settings, clients) = setup("cutover-s3-big").await;
    let store = S3Store::new(clients.s3.clone(), settings).with_parts(8 * 1024 * 1024, 3);
    let want = expected_sha(SIZE);
    let key = ObjectKey::new("backups/ledger/neo4j.dump");

    // Reset the peak-RSS watermark, then measure the peak while streaming.
    std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM");
    let before = status_kib("VmRSS:");
    let info = store
        .put_stream(
            &key,
            Box::new(Generated {
                remaining: SIZE,
                state: 7,
            }),
        )
        .await
        .unwrap();
    assert_eq!(info.size, SIZE);
    assert_eq!(info.sha256.as_deref(), Some(want.as_str()));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("neo4j.dump");
    let down = store
        .get_file_verified(&key, &path, Some(&want))
        .await
        .unwrap();
    let peak = status_kib("VmHWM:");
    assert_eq!(down.sha256.as_deref(), Some(want.as_str()));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), SIZE);
    let grew_mib = peak.saturating_sub(before) / 1024;
    // 8 MiB parts, 3 in flight: ~32 MiB of buffers plus SDK overhead; the object is 300 MiB.
    assert!(
        grew_mib < 120,
        "peak RSS grew by {grew_mib} MiB while streaming a 300 MiB object"
    );
    let head = store.head(&key).await.unwrap().unwrap();
    assert_eq!(head.sha256.as_deref(), Some(want.as_str()));
    assert_eq!(head.size, SIZE);
}

#[tokio::test]
async fn a_tampered_object_is_detected_and_nothing_is_left_behind() {
    let (_moto, settings, clients) = setup("cutover-s3-tamper").await;
    let store = S3Store::new(clients.s3.clone(), settings.clone());
    let key = ObjectKey::new("backups/ledger/manifest-test.dump");
    let info = store
        .put_bytes(&key, b"original dump bytes".to_vec())
        .await
        .unwrap();
    let recorded = info.sha256.unwrap();

    // Someone replaces the object with different bytes (tags go with the old object).
    clients
        .s3
        .put_object()
        .bucket(&settings.bucket)
        .key(store.full_key(&key))
        .body(aws_sdk_s3::primitives::ByteStream::from_static(
            b"tampered dump bytes",
        ))
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.dump");
    let err = store
        .get_file_verified(&key, &path, Some(&recorded))
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(err.message.contains("checksum mismatch"), "{err}");
    assert!(!path.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no partial file left"
    );

    // A tag that disagrees with the bytes is caught without a manifest too.
    store.put_bytes(&key, b"v2".to_vec()).await.unwrap();
    clients
        .s3
        .put_object_tagging()
        .bucket(&settings.bucket)
        .key(store.full_key(&key))
        .tagging(
            aws_sdk_s3::types::Tagging::builder()
                .tag_set(
                    aws_sdk_s3::types::Tag::builder()
                        .key("cutover-sha256")
                        .value("0".repeat(64))
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        store.get_bytes(&key).await.unwrap_err().class,
        ErrorClass::Permanent
    );
    // Listing and deleting are relative to the prefix; delete is idempotent.
    let listed = store.list("backups/").await.unwrap();
    assert_eq!(
        listed.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        vec!["backups/ledger/manifest-test.dump"]
    );
    store.delete(&key).await.unwrap();
    store.delete(&key).await.unwrap();
    assert!(store.head(&key).await.unwrap().is_none());
}
