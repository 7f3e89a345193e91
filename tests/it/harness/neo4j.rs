//! Real Neo4j Community servers for tests, from `.tools/neo4j/<version>` (`make setup`).
//!
//! [`Neo4jServer::start`] gives a test its own server: a temporary home (`conf/`,
//! `data/`, `logs/`, `run/`) with an explicit heap (256 MiB) and page cache (64 MiB) on a
//! free loopback Bolt port, HTTP off, tuned like the local provider's servers to start and
//! stop quickly (the client compiler, the setup's class archive, Bolt's shutdown without
//! idle waits; see `neo4j-service.sh`), a random password set with `neo4j-admin dbms
//! set-initial-password @FILE` (picocli reads the argument from a 0600 file, so the
//! password is never in any process's argv; the file is removed right after), started
//! with the real `bin/neo4j start` and ready when a Bolt login succeeds. It is stopped with
//! SIGTERM, then SIGKILL after [`STOP_GRACE`], on drop (on a plain thread, never blocking a
//! tokio worker) and, should the test process die first, by a watchdog process.
//!
//! [`shared`] hands out one server per version for tests that only read and write the
//! `neo4j` database: Community has no other user database, so the lock it returns
//! serialises those tests and clears the graph and schema for each. A test that stops the
//! DBMS (dump, load) starts its own server.
#![allow(dead_code)] // each test module uses a part

use super::{log_tail, READY_TIMEOUT};
use cutover::db::arcadedb::free_loopback_port;
use cutover::db::bolt::BoltTarget;
use cutover::providers::local::neo4j_home::FAST_BOLT_SHUTDOWN;
use rand::distr::{Alphanumeric, SampleString};
use secrecy::{ExposeSecret, SecretString};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The 5.26 LTS release `make setup` assembles (scripts/neo4j-versions.env).
pub const LTS: &str = "5.26.30";
/// The calendar-versioned release of the upgrade path.
pub const NEXT: &str = "2026.08.1";
/// How long a SIGTERM may take before SIGKILL (Neo4j waits for transactions to end).
pub const STOP_GRACE: Duration = Duration::from_secs(30);
/// Heap and page cache of every test server (several share a 2-core machine).
pub const HEAP: &str = "256m";
pub const PAGECACHE: &str = "64m";

/// `.tools/neo4j/<version>`; panics with the install command when it is missing.
pub fn install(version: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".tools/neo4j")
        .join(version);
    for f in ["bin/neo4j", "bin/neo4j-admin", "java-home"] {
        assert!(
            dir.join(f).is_file(),
            "Neo4j {version} is not installed ({} is missing): run `make setup`",
            dir.join(f).display()
        );
    }
    dir
}

/// A Neo4j server home and, while it runs, its process.
pub struct Neo4jServer {
    version: String,
    install: PathBuf,
    port: u16,
    password: SecretString,
    pid: Option<u32>,
    /// Every argv this harness ran (for tests that prove no secret was in one).
    argv_log: Vec<Vec<String>>,
    watchdog: Option<std::process::Child>,
    // Last: removed after the server is stopped.
    home: Option<tempfile::TempDir>,
}

impl Neo4jServer {
    /// A fresh server of `version`, initial password set, started and ready.
    pub async fn start(version: &str) -> Neo4jServer {
        let mut server = Self::create(version).await;
        server.start_dbms().await;
        server
    }

    /// A fresh server home with its password set, not started (e.g. to load a dump first).
    pub async fn create(version: &str) -> Neo4jServer {
        let install = install(version);
        let home = tempfile::Builder::new()
            .prefix(&format!("cutover-neo4j-{version}-"))
            .tempdir()
            .expect("temp dir");
        for d in ["conf", "data", "logs", "run", "dumps"] {
            std::fs::create_dir_all(home.path().join(d)).expect("server home");
        }
        let password = SecretString::from(Alphanumeric.sample_string(&mut rand::rng(), 24));
        let mut server = Neo4jServer {
            version: version.to_owned(),
            install,
            port: 0,
            password,
            pid: None,
            argv_log: Vec::new(),
            watchdog: None,
            home: Some(home),
        };
        server.write_conf(free_loopback_port().expect("free port"));
        let args = server.home().join("run/initial-password.args");
        {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&args)
                .expect("password file");
            writeln!(f, "{}", server.password.expose_secret()).expect("password file");
        }
        let out = server
            .admin(&[
                "dbms",
                "set-initial-password",
                &format!("@{}", args.display()),
            ])
            .await;
        std::fs::remove_file(&args).expect("remove the password file");
        assert!(
            out.status.success(),
            "neo4j-admin dbms set-initial-password failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        server
    }

    fn write_conf(&mut self, port: u16) {
        self.port = port;
        let mut conf = format!(
            "server.default_listen_address=127.0.0.1\n\
             server.bolt.listen_address=127.0.0.1:{port}\n\
             server.bolt.advertised_address=127.0.0.1:{port}\n\
             server.http.enabled=false\n\
             server.https.enabled=false\n\
             server.memory.heap.initial_size={HEAP}\n\
             server.memory.heap.max_size={HEAP}\n\
             server.memory.pagecache.size={PAGECACHE}\n\
             server.directories.logs=logs\n\
             dbms.usage_report.enabled=false\n\
             db.logs.query.enabled=OFF\n\
             {FAST_BOLT_SHUTDOWN}\
             server.jvm.additional=-XX:TieredStopAtLevel=1\n\
             server.jvm.additional=-XX:+UseSerialGC\n"
        );
        // The class archive the local provider's servers use (see neo4j-service.sh).
        let archive = self.install.join("server-classes.jsa");
        if archive.is_file() {
            conf.push_str(&format!(
                "server.jvm.additional=-XX:SharedArchiveFile={}\n",
                archive.display()
            ));
        }
        std::fs::write(self.home().join("conf/neo4j.conf"), conf).expect("neo4j.conf");
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn home(&self) -> &Path {
        self.home.as_ref().expect("home").path()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn password(&self) -> &SecretString {
        &self.password
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    pub fn argv_log(&self) -> &[Vec<String>] {
        &self.argv_log
    }

    pub fn uri(&self) -> String {
        format!("bolt://127.0.0.1:{}", self.port)
    }

    /// Bolt access as `neo4j` to the default database.
    pub fn bolt_target(&self) -> BoltTarget {
        BoltTarget {
            uri: self.uri(),
            user: "neo4j".into(),
            password: self.password.clone(),
            database: None,
        }
    }

    /// The directory for dumps of this server.
    pub fn dumps(&self) -> PathBuf {
        self.home().join("dumps")
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new(self.install.join("bin").join(program));
        c.args(args)
            .env("NEO4J_HOME", self.home())
            .env("NEO4J_CONF", self.home().join("conf"))
            .stdin(Stdio::null());
        c
    }

    fn log_argv(&mut self, program: &str, args: &[&str]) {
        let mut v = vec![program.to_owned()];
        v.extend(args.iter().map(|a| a.to_string()));
        self.argv_log.push(v);
    }

    /// Runs `neo4j-admin ARGS` (on a blocking thread) and returns its output.
    pub async fn admin(&mut self, args: &[&str]) -> Output {
        self.log_argv("neo4j-admin", args);
        let mut c = self.command("neo4j-admin", args);
        tokio::task::spawn_blocking(move || c.output())
            .await
            .expect("join")
            .expect("run neo4j-admin")
    }

    /// `bin/neo4j start`, then waits until a Bolt login succeeds. A port taken between
    /// choosing and binding it is retried on another port (three attempts).
    pub async fn start_dbms(&mut self) {
        assert!(self.pid.is_none(), "Neo4j {} already runs", self.version);
        for attempt in 1..=3 {
            self.log_argv("neo4j", &["start"]);
            let mut c = self.command("neo4j", &["start"]);
            let out = tokio::task::spawn_blocking(move || c.output())
                .await
                .expect("join")
                .expect("run bin/neo4j start");
            let log = self.home().join("logs/neo4j.log");
            if !out.status.success() {
                let tail = log_tail(&log, 30);
                if attempt < 3 && tail.contains("Address already in use") {
                    self.write_conf(free_loopback_port().expect("free port"));
                    continue;
                }
                panic!(
                    "bin/neo4j start ({}) failed: {}{}\n{tail}",
                    self.version,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let pid: u32 = std::fs::read_to_string(self.home().join("run/neo4j.pid"))
                .expect("run/neo4j.pid")
                .trim()
                .parse()
                .expect("a pid in run/neo4j.pid");
            self.pid = Some(pid);
            self.arm_watchdog(pid);
            self.wait_ready().await;
            return;
        }
    }

    async fn wait_ready(&self) {
        let started = Instant::now();
        let target = self.bolt_target();
        let mut last = String::new();
        while started.elapsed() < READY_TIMEOUT {
            match target.check_login().await {
                Ok(()) => return,
                Err(f) => last = f.message,
            }
            assert!(
                self.pid.is_some_and(alive),
                "Neo4j {} exited while starting ({last}):\n{}",
                self.version,
                log_tail(&self.home().join("logs/neo4j.log"), 30)
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!(
            "Neo4j {} did not accept a Bolt login within {READY_TIMEOUT:?} ({last}):\n{}",
            self.version,
            log_tail(&self.home().join("logs/neo4j.log"), 30)
        );
    }

    /// A process that stops the server (and removes its home) should this test process
    /// die without dropping it (a shared server lives in a static, which is never
    /// dropped). It exits quietly when the server stops while this process lives.
    fn arm_watchdog(&mut self, pid: u32) {
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        let script = format!(
            "while kill -0 {me} 2>/dev/null && kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             if kill -0 {me} 2>/dev/null; then exit 0; fi; \
             kill -TERM {pid} 2>/dev/null; i=0; \
             while kill -0 {pid} 2>/dev/null && [ $i -lt {grace} ]; do sleep 1; i=$((i+1)); done; \
             kill -KILL {pid} 2>/dev/null; rm -rf '{home}'",
            me = std::process::id(),
            grace = STOP_GRACE.as_secs(),
            home = self.home().display()
        );
        let child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the watchdog");
        self.watchdog = Some(child);
    }

    /// Stops the DBMS (SIGTERM, SIGKILL after [`STOP_GRACE`]) and waits until it is gone.
    pub async fn stop_dbms(&mut self) {
        // The watchdog goes first: it is for a test process that dies, not for this stop.
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        if let Some(pid) = self.pid.take() {
            tokio::task::spawn_blocking(move || terminate(pid))
                .await
                .expect("join");
        }
    }

    /// `neo4j-admin database dump neo4j --to-path=DIR` (the DBMS must be stopped); the dump
    /// file written.
    pub async fn dump(&mut self, dir: &Path) -> PathBuf {
        std::fs::create_dir_all(dir).expect("dump dir");
        let out = self
            .admin(&[
                "database",
                "dump",
                "neo4j",
                &format!("--to-path={}", dir.display()),
                "--overwrite-destination=true",
            ])
            .await;
        assert!(
            out.status.success(),
            "neo4j-admin database dump ({}) failed: {}{}",
            self.version,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        dir.join("neo4j.dump")
    }

    /// `neo4j-admin database load neo4j --from-path=DIR --overwrite-destination` (the DBMS
    /// must be stopped); the raw output, for tests of failing loads.
    pub async fn load(&mut self, dir: &Path) -> Output {
        self.admin(&[
            "database",
            "load",
            "neo4j",
            &format!("--from-path={}", dir.display()),
            "--overwrite-destination=true",
        ])
        .await
    }
}

fn alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

/// SIGTERM, wait up to [`STOP_GRACE`], then SIGKILL; returns when the process is gone.
/// Blocking: call on a plain or blocking thread.
fn terminate(pid: u32) {
    // SAFETY: plain signals to a process this harness started.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let deadline = Instant::now() + STOP_GRACE;
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    if alive(pid) {
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Neo4jServer {
    fn drop(&mut self) {
        let pid = self.pid.take();
        let home = self.home.take();
        let watchdog = self.watchdog.take();
        // Never block the (possibly async) caller: stop and clean up on a plain thread.
        // The watchdog stays armed until the server is gone, in case this process exits
        // before the thread finishes.
        std::thread::spawn(move || {
            if let Some(pid) = pid {
                terminate(pid);
            }
            if let Some(mut w) = watchdog {
                let _ = w.kill();
                let _ = w.wait();
            }
            drop(home);
        });
    }
}

/// One running server per version, shared by the tests that take its lock.
struct Shared {
    server: Neo4jServer,
}

static SHARED: OnceLock<[tokio::sync::OnceCell<tokio::sync::Mutex<Shared>>; 2]> = OnceLock::new();

/// Exclusive use of the shared server of `version` ([`LTS`] or [`NEXT`]), its `neo4j`
/// database emptied (nodes, relationships, constraints, indexes) for this test.
pub struct SharedNeo4j {
    guard: tokio::sync::MutexGuard<'static, Shared>,
}

impl SharedNeo4j {
    pub fn server(&self) -> &Neo4jServer {
        &self.guard.server
    }

    pub fn bolt_target(&self) -> BoltTarget {
        self.guard.server.bolt_target()
    }

    /// Empties the database again (data, constraints, indexes).
    pub async fn clear(&self) {
        reset(&self.guard.server).await;
    }
}

/// Takes the shared server of `version`, starting it the first time.
pub async fn shared(version: &str) -> SharedNeo4j {
    let slot = match version {
        LTS => 0,
        NEXT => 1,
        other => panic!("no shared Neo4j server for version {other}"),
    };
    let cells = SHARED.get_or_init(Default::default);
    let mutex = cells[slot]
        .get_or_init(|| async {
            tokio::sync::Mutex::new(Shared {
                server: Neo4jServer::start(version).await,
            })
        })
        .await;
    let guard = mutex.lock().await;
    reset(&guard.server).await;
    SharedNeo4j { guard }
}

/// Empties the `neo4j` database: all data, constraints and indexes but the built-in
/// token lookup indexes.
async fn reset(server: &Neo4jServer) {
    let target = server.bolt_target();
    let graph = target
        .connect(1)
        .await
        .expect("connect to the shared server");
    let run = |q: String| {
        let graph = graph.clone();
        async move {
            graph
                .run(neo4rs::query(&q))
                .await
                .unwrap_or_else(|e| panic!("{q}: {e}"));
        }
    };
    run("MATCH (n) DETACH DELETE n".into()).await;
    for (show, kind) in [
        ("SHOW CONSTRAINTS YIELD name RETURN name", "CONSTRAINT"),
        (
            "SHOW INDEXES YIELD name, type WHERE type <> 'LOOKUP' RETURN name",
            "INDEX",
        ),
    ] {
        let mut rows = graph.execute(neo4rs::query(show)).await.expect(show);
        let mut names = Vec::new();
        while let Some(row) = rows.next().await.expect(show) {
            names.push(row.get::<String>("name").expect("name"));
        }
        // The stream holds the pool's only connection until it is dropped.
        drop(rows);
        for name in names {
            run(format!(
                "DROP {kind} `{}` IF EXISTS",
                name.replace('`', "``")
            ))
            .await;
        }
    }
}
