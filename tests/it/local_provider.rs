//! The local provider against real ArcadeDB processes: compute (provision, readiness,
//! adoption, tags, terminate, bad input), object store and secret store.

use super::harness::{venv, READY_TIMEOUT};
use cutover::failure::ErrorClass;
use cutover::ids::{InstanceId, ObjectKey, SecretName};
use cutover::providers::local::{root_secret_name, LocalProvider};
use cutover::providers::{
    tag, Compute, ObjectStore, ProvisionRequest, Readiness, SecretStage, SecretStore, Tags,
};
use secrecy::{ExposeSecret, SecretString};
use std::time::{Duration, Instant};

/// Test heap for every JVM (several run at once on a small machine).
pub const HEAP_MB: u64 = 384;

/// A state directory whose instances are all terminated on drop, also when the test
/// panics.
pub struct LocalEnv {
    pub provider: LocalProvider,
    pub dir: tempfile::TempDir,
}

impl LocalEnv {
    pub fn new() -> Self {
        venv(); // fails with `make setup` when ArcadeDB is not installed
        let dir = tempfile::Builder::new()
            .prefix("cutover-local-")
            .tempdir()
            .expect("temp dir");
        Self {
            provider: LocalProvider::open(dir.path()),
            dir,
        }
    }

    pub fn request(&self, name: &str, token: &str, databases: &[&str]) -> ProvisionRequest {
        let mut tags = Tags::new();
        tags.insert(tag::ENV.into(), "test".into());
        tags.insert(tag::RUN_ID.into(), format!("run-{name}"));
        ProvisionRequest {
            image: "arcadedb".into(),
            name: name.into(),
            tags,
            idempotency_token: token.into(),
            settings: serde_json::json!({ "heap_mb": HEAP_MB, "databases": databases }),
        }
    }

    /// Provisions and polls readiness until ready; returns the instance and the time it took.
    pub async fn provision_ready(
        &self,
        request: &ProvisionRequest,
    ) -> (cutover::providers::Instance, Duration) {
        let started = Instant::now();
        let instance = self
            .provider
            .compute
            .provision(request)
            .await
            .unwrap_or_else(|f| panic!("provision {}: {} ({:?})", request.name, f.message, f.hint));
        loop {
            match self.provider.compute.readiness(&instance.id).await {
                Ok(Readiness::Ready) => break,
                Ok(Readiness::NotYet(why)) => {
                    assert!(
                        started.elapsed() < READY_TIMEOUT,
                        "{} not ready: {why}",
                        request.name
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(f) => panic!("readiness of {}: {}", request.name, f.message),
            }
        }
        (instance, started.elapsed())
    }
}

impl Drop for LocalEnv {
    fn drop(&mut self) {
        let compute = self.provider.compute.clone();
        // A fresh runtime on its own thread: Drop may run inside (or outside) a runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                for rec in compute.records().unwrap_or_default() {
                    let _ = compute.terminate(&InstanceId::new(rec.name)).await;
                }
            });
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_compute_provisions_adopts_finds_and_terminates() {
    let env = LocalEnv::new();
    let compute = &env.provider.compute;
    let request = env.request("blue-ledger", "token-1", &["ledger"]);
    let (instance, took) = env.provision_ready(&request).await;
    eprintln!("provision + ready: {took:?}");
    assert!(
        instance.endpoints["bolt"].starts_with("bolt://127.0.0.1:"),
        "{:?}",
        instance.endpoints
    );
    assert!(instance.endpoints["http"].starts_with("http://127.0.0.1:"));
    let dir = compute.instance_dir(&instance.id);
    assert!(dir.join("databases/ledger").is_dir());

    // The root password is in the secret store only: not in the registry, not in argv.
    let password = compute.root_password(&instance.id).await.unwrap();
    let registry = std::fs::read_to_string(env.dir.path().join("instances/registry.json")).unwrap();
    assert!(!registry.contains(password.expose_secret()));
    assert!(registry.contains("token-1"));
    let pid: u32 = std::fs::read_to_string(dir.join("server.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains(password.expose_secret()));
    assert!(String::from_utf8_lossy(&cmdline).contains("-Xmx384m"));
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap();
    assert!(!log.contains(password.expose_secret()));
    // The password's argfile is for the starting JVM only: gone once it serves.
    assert!(!dir.join(".jvm-secret-args").exists());

    // Same token: the same instance, same server.
    let again = compute.provision(&request).await.unwrap();
    assert_eq!(again.endpoints, instance.endpoints);
    let pid_again: u32 = std::fs::read_to_string(dir.join("server.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, pid_again);

    // Another token for the same name is refused.
    let other = compute
        .provision(&env.request("blue-ledger", "token-2", &["ledger"]))
        .await
        .unwrap_err();
    assert_eq!(other.class, ErrorClass::Permanent);
    assert!(
        other.message.contains("already exists"),
        "{}",
        other.message
    );

    // find_by_tags
    let mut tags = Tags::new();
    tags.insert(tag::RUN_ID.into(), "run-blue-ledger".into());
    let found = compute.find_by_tags(&tags).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, instance.id);
    tags.insert(tag::COLOR.into(), "green".into());
    assert!(compute.find_by_tags(&tags).await.unwrap().is_empty());

    // A start that failed, as the server's log tells it (a port taken after provision
    // checked it: the JVM throws from main and hangs): readiness stops the process and
    // fails transiently, so the step's retry provisions again and restarts it.
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("server.log"))
        .unwrap();
    std::io::Write::write_all(
        &mut log,
        b"SEVERE Port 127.0.0.1:7687 busy\nException in thread \"main\" com.arcadedb.server.ServerException\n",
    )
    .unwrap();
    let err = compute.readiness(&instance.id).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Transient, "{}", err.message);
    assert!(
        err.message.contains("port 7687 is already in use"),
        "{}",
        err.message
    );
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || !std::fs::read(format!("/proc/{pid}/cmdline"))
                .unwrap_or_default()
                .windows(12)
                .any(|w| w == b"ArcadeDBServ"),
        "the hung server was not stopped"
    );
    let (instance, took) = env.provision_ready(&request).await;
    eprintln!("restart after a failed start + ready: {took:?}");
    let pid_restarted: u32 = std::fs::read_to_string(dir.join("server.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_ne!(pid, pid_restarted, "a new server");
    assert!(
        std::fs::read_to_string(dir.join("server.log.1"))
            .unwrap()
            .contains("busy"),
        "the failed start's log is kept aside"
    );

    // The process dies: readiness says so, and the same token restarts it.
    compute.stop(&instance.id).await.unwrap();
    let err = compute.readiness(&instance.id).await.unwrap_err();
    assert!(err.message.contains("stopped"), "{}", err.message);
    let (restarted, took) = env.provision_ready(&request).await;
    eprintln!("adopt + restart + ready: {took:?}");
    assert_eq!(restarted.id, instance.id);
    // The password kept working (the root user was created on the first start).
    let http = cutover::db::arcadedb::ArcadeHttp::new(
        restarted.endpoints["http"]
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap(),
        password.clone(),
    );
    assert!(http
        .list_databases()
        .await
        .unwrap()
        .contains(&"ledger".to_string()));

    // gc: the run named by the instance's run-id tag does not exist, so it is listed,
    // but removed only when asked.
    let everything = cutover::providers::Tags::new();
    let listed = cutover::engine::gc::collect(env.dir.path(), compute.as_ref(), &everything, false)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].reason.contains("does not exist"), "{listed:?}");
    assert!(!listed[0].removed);
    assert!(compute.describe(&instance.id).await.unwrap().is_some());

    // Terminate: process gone, directory gone, secret gone; idempotent.
    compute.terminate(&instance.id).await.unwrap();
    assert!(!dir.exists());
    assert!(
        cutover::engine::gc::collect(env.dir.path(), compute.as_ref(), &everything, true)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(compute.describe(&instance.id).await.unwrap().is_none());
    assert!(env
        .provider
        .secrets
        .get(&root_secret_name(&instance.id), SecretStage::Current)
        .await
        .unwrap()
        .is_none());
    compute.terminate(&instance.id).await.unwrap();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid_again}")).exists()
            || !std::fs::read(format!("/proc/{pid_again}/cmdline"))
                .unwrap_or_default()
                .windows(12)
                .any(|w| w == b"ArcadeDBServ")
    );
}

#[tokio::test]
async fn local_compute_bad_input_is_clear_and_leaves_nothing() {
    let env = LocalEnv::new();
    let compute = &env.provider.compute;

    // A port in use.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut request = env.request("busy", "t", &[]);
    request.settings = serde_json::json!({ "heap_mb": HEAP_MB, "bolt_port": port });
    let err = compute.provision(&request).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(
        err.message
            .contains(&format!("port {port} is already in use")),
        "{}",
        err.message
    );
    assert!(err.hint.is_some());
    assert!(!compute.instance_dir(&InstanceId::new("busy")).exists());
    assert!(compute.records().unwrap().is_empty());
    assert!(env
        .provider
        .secrets
        .get(
            &root_secret_name(&InstanceId::new("busy")),
            SecretStage::Current
        )
        .await
        .unwrap()
        .is_none());

    // A missing ArcadeDB installation.
    let image_dir = env.dir.path().join("images/broken");
    std::fs::create_dir_all(&image_dir).unwrap();
    std::fs::write(
        image_dir.join("image.toml"),
        "engine = \"arcadedb\"\nhome = \"/nonexistent/arcadedb\"\n",
    )
    .unwrap();
    let mut request = env.request("noinstall", "t", &[]);
    request.image = "broken".into();
    let err = compute.provision(&request).await.unwrap_err();
    assert!(
        err.message.contains("ArcadeDB not installed"),
        "{}",
        err.message
    );
    assert!(
        err.hint
            .as_deref()
            .unwrap_or_default()
            .contains("make setup"),
        "{:?}",
        err.hint
    );
    assert!(!compute.instance_dir(&InstanceId::new("noinstall")).exists());

    // An unknown image and a bad name.
    request.image = "nosuch".into();
    let err = compute.provision(&request).await.unwrap_err();
    assert!(
        err.message.contains("unknown local image `nosuch`"),
        "{}",
        err.message
    );
    let err = compute
        .provision(&env.request("../escape", "t", &[]))
        .await
        .unwrap_err();
    assert!(
        err.message.contains("invalid local instance name"),
        "{}",
        err.message
    );

    // An unwritable state directory (a file where a directory should be).
    let blocked = env.dir.path().join("blocked");
    std::fs::write(&blocked, "").unwrap();
    let other = LocalProvider::open(&blocked);
    let err = other
        .compute
        .provision(&env.request("x1", "t", &[]))
        .await
        .unwrap_err();
    assert!(
        err.message.contains(&blocked.display().to_string()),
        "{}",
        err.message
    );
    assert!(compute.records().unwrap().is_empty());
}

#[tokio::test]
async fn local_object_store_round_trips_and_detects_tampering() {
    use tokio::io::AsyncReadExt;
    let env = LocalEnv::new();
    let store = &env.provider.objects;
    let key = ObjectKey::new("backups/ledger/one.zip");
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let info = store
        .put_stream(&key, Box::new(std::io::Cursor::new(body.clone())))
        .await
        .unwrap();
    assert_eq!(info.size, body.len() as u64);
    let expected = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&body))
    };
    assert_eq!(info.sha256.as_deref(), Some(expected.as_str()));
    assert_eq!(store.get_bytes(&key).await.unwrap(), body);
    let mut streamed = Vec::new();
    store
        .get_stream(&key)
        .await
        .unwrap()
        .read_to_end(&mut streamed)
        .await
        .unwrap();
    assert_eq!(streamed, body);
    let out = env.dir.path().join("download/one.zip");
    assert_eq!(
        store.get_file(&key, &out).await.unwrap().sha256,
        Some(expected.clone())
    );
    assert_eq!(std::fs::read(&out).unwrap(), body);
    assert_eq!(
        store.head(&key).await.unwrap().unwrap().sha256,
        Some(expected.clone())
    );
    store
        .put_bytes(&ObjectKey::new("backups/search/two.zip"), b"two".to_vec())
        .await
        .unwrap();
    let listed: Vec<String> = store
        .list("backups/")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key.to_string())
        .collect();
    assert_eq!(
        listed,
        vec!["backups/ledger/one.zip", "backups/search/two.zip"]
    );
    // No temporary files are left behind.
    let names: Vec<String> = std::fs::read_dir(env.dir.path().join("objects/backups/ledger"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    // Tamper with one byte (same size): every read refuses it.
    let path = store.path_of(&key).unwrap();
    let mut tampered = body.clone();
    tampered[1_000_000] ^= 0xff;
    std::fs::write(&path, &tampered).unwrap();
    let err = store.get_bytes(&key).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(err.message.contains("checksum mismatch"), "{}", err.message);
    let out2 = env.dir.path().join("download/two.zip");
    assert!(store
        .get_file(&key, &out2)
        .await
        .unwrap_err()
        .message
        .contains("checksum mismatch"));
    assert!(!out2.exists(), "a refused download must not leave a file");
    let mut sink = Vec::new();
    let err = store
        .get_stream(&key)
        .await
        .unwrap()
        .read_to_end(&mut sink)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    // Truncated: the stream fails at its end.
    std::fs::write(&path, &body[..10]).unwrap();
    let mut sink = Vec::new();
    let err = store
        .get_stream(&key)
        .await
        .unwrap()
        .read_to_end(&mut sink)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);

    // Bad keys and missing objects.
    assert!(store
        .put_bytes(&ObjectKey::new("../x"), vec![])
        .await
        .is_err());
    assert!(store.head(&ObjectKey::new("nope")).await.unwrap().is_none());
    store.delete(&key).await.unwrap();
    store.delete(&key).await.unwrap();
    assert!(store.head(&key).await.unwrap().is_none());

    // An object written beside the store (as a script's copy would, with no sidecar)
    // gets the SHA-256 its writer reported; a different one is refused afterwards.
    let copied = ObjectKey::new("backups/ledger/copied.dump");
    let copied_path = store.path_of(&copied).unwrap();
    std::fs::write(&copied_path, &body).unwrap();
    assert!(store
        .record_sha256(&ObjectKey::new("backups/ledger/absent.dump"), &expected)
        .await
        .unwrap_err()
        .message
        .contains("no such object"));
    store.record_sha256(&copied, &expected).await.unwrap();
    store.record_sha256(&copied, &expected).await.unwrap();
    assert_eq!(
        store.head(&copied).await.unwrap().unwrap().sha256,
        Some(expected.clone())
    );
    assert_eq!(store.get_bytes(&copied).await.unwrap(), body);
    let other = "0".repeat(64);
    let err = store.record_sha256(&copied, &other).await.unwrap_err();
    assert!(
        err.message.contains("already records sha256"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn local_secret_store_stages_permissions_and_rollback() {
    use std::os::unix::fs::PermissionsExt;
    let env = LocalEnv::new();
    let store = &env.provider.secrets;
    let name = SecretName::new("test/ledger/app");
    let v1 = store
        .put_pending(&name, &SecretString::from("first-value-1"), "tok-1")
        .await
        .unwrap();
    assert_eq!(
        store
            .put_pending(&name, &SecretString::from("ignored"), "tok-1")
            .await
            .unwrap(),
        v1
    );
    assert!(store
        .get(&name, SecretStage::Current)
        .await
        .unwrap()
        .is_none());
    store.promote(&name, &v1).await.unwrap();
    store.promote(&name, &v1).await.unwrap();
    let v2 = store
        .put_pending(&name, &SecretString::from("second-value-2"), "tok-2")
        .await
        .unwrap();
    assert_eq!(
        store
            .get(&name, SecretStage::Pending)
            .await
            .unwrap()
            .unwrap()
            .version_id,
        v2
    );
    store.promote(&name, &v2).await.unwrap();
    let current = store
        .get(&name, SecretStage::Current)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.value.expose_secret(), "second-value-2");
    assert!(!format!("{current:?}").contains("second-value-2"));
    assert_eq!(
        store
            .get(&name, SecretStage::Previous)
            .await
            .unwrap()
            .unwrap()
            .version_id,
        v1
    );
    let versions = store.versions(&name).await.unwrap();
    assert_eq!(versions.len(), 2);
    assert!(store
        .get(&name, SecretStage::Pending)
        .await
        .unwrap()
        .is_none());

    let path = store.path_of(&name);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );

    store.rollback(&name).await.unwrap();
    assert_eq!(
        store
            .get(&name, SecretStage::Current)
            .await
            .unwrap()
            .unwrap()
            .value
            .expose_secret(),
        "first-value-1"
    );
    store.rollback(&name).await.unwrap();
    assert_eq!(
        store
            .get(&name, SecretStage::Current)
            .await
            .unwrap()
            .unwrap()
            .version_id,
        v1
    );
    assert!(store.promote(&name, "no-such-version").await.is_err());
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}
