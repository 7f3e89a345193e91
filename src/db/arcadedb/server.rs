//! Running an ArcadeDB server process with Bolt enabled, on loopback ports, in its own
//! instance directory.
//!
//! Facts checked against ArcadeDB 26.10.2 (wheel `arcadedb-embedded==26.10.2.post1`,
//! bundled Corretto 25 JRE) on a 2-core machine:
//! - Start-up to `GET /api/v1/ready` → 204 takes about 2–3 s; a graceful stop (SIGTERM)
//!   about 2.5 s. Resident memory right after start is about 130 MiB with `-Xmx384m`.
//! - Servers run with the serial collector and the client compiler only
//!   (`-XX:+UseSerialGC -XX:TieredStopAtLevel=1`), as the local Neo4j servers do: on 2 cores
//!   beside other servers, G1's and C2's background threads cost more than they gave
//!   (measured: the ArcadeDB failure and backup/drill tests together took 95 CPU-s and
//!   56 s before, 52–53 CPU-s and 38–39 s after).
//! - The server writes `config/`, `log/`, `backups/` under its *working directory* (and
//!   `databases/` where `arcadedb.server.databaseDirectory` says), so each server runs
//!   with its instance directory as cwd and `rootPath`.
//! - The root password (`arcadedb.server.rootPassword`) is only read when
//!   `config/server-users.jsonl` does not exist yet: the first start creates the root
//!   user and stores a PBKDF2-SHA256 hash there (not the clear text). Restarting the same
//!   instance directory with a different password does **not** change it; use an
//!   `ALTER USER`-style rotation instead. ArcadeDB refuses root passwords shorter than
//!   8 characters, so [`ArcadeServer::start`] checks that first.
//! - The password never goes on the command line: it is written to a Java `@argfile`
//!   (mode 0600, inside the instance directory) which the `java` launcher expands before
//!   the JVM starts, so `/proc/<pid>/cmdline` shows only `@<path>`. The argfile is deleted
//!   as soon as the server is ready (and on stop/drop). `JAVA_TOOL_OPTIONS` is not used
//!   because the JVM echoes it ("Picked up JAVA_TOOL_OPTIONS: …") to stderr, i.e. into
//!   `server.log`. The value stays visible to the same OS user through
//!   `jcmd <pid> VM.system_properties`, like any process's memory.
//! - If a port is taken, ArcadeDB logs `Port … busy`, throws from `main` and then *hangs*
//!   (non-daemon threads keep the JVM alive). [`ArcadeServer::start`] therefore checks
//!   both ports before spawning, and [`ArcadeServer::wait_ready`] watches the log for an
//!   exception in `main`, kills the process and reports it.
//! - Bolt (protocol v4) needs the database name: `neo4rs` with `db("ledger")` works;
//!   without it there is no default database. The user is `root`.
//! - 26.10 also auto-starts an MCP plugin (disabled by its `config/mcp-config.json`) and
//!   logs an HTTPS port range 2490–2499 that it does not actually listen on.
//!
//! This module only starts and stops processes and talks HTTP to them; it never prints.

use super::http::ArcadeHttp;
use super::install::ArcadeInstall;
use crate::db::bolt::BoltTarget;
use crate::failure::{Failure, FailureKind};
use secrecy::{ExposeSecret, SecretString};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The Java class that runs an ArcadeDB server.
pub const MAIN_CLASS: &str = "com.arcadedb.server.ArcadeDBServer";
/// The Bolt plugin, as `arcadedb.server.plugins` wants it.
pub const BOLT_PLUGIN: &str = "Bolt:com.arcadedb.bolt.BoltProtocolPlugin";
/// The server's administrator (the only user a fresh server has).
pub const ROOT_USER: &str = "root";
/// Default JVM heap in MiB.
pub const DEFAULT_HEAP_MB: u32 = 512;
/// ArcadeDB's minimum root password length.
pub const MIN_ROOT_PASSWORD_LEN: usize = 8;
/// How long `POST /api/v1/server` may take by default (creating a database is quick; a
/// restore of a large backup may need a longer timeout).
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// File names inside an instance directory.
pub const LOG_FILE: &str = "server.log";
pub const PID_FILE: &str = "server.pid";
const ARGFILE: &str = ".jvm-secret-args";
const DATABASES_DIR: &str = "databases";

/// Everything needed to start one server. `Debug` shows no password.
#[derive(Clone, Debug)]
pub struct ArcadeServerConfig {
    pub install: ArcadeInstall,
    /// The server's home: cwd, `rootPath`, `databases/`, `server.log`, `server.pid`.
    /// Created if missing.
    pub instance_dir: PathBuf,
    pub bolt_port: u16,
    pub http_port: u16,
    /// Applied only on the first start of an instance directory (see module docs).
    pub root_password: SecretString,
    /// `-Xmx` in MiB.
    pub heap_mb: u32,
    /// Extra `-D` system properties, e.g.
    /// `("arcadedb.server.restoreImportAllowLocalUrls", "true")`. They appear in the
    /// process arguments, so they must not hold secrets.
    pub system_properties: Vec<(String, String)>,
    /// SIGKILL the server when the [`ArcadeServer`] handle is dropped without
    /// [`ArcadeServer::stop`], waiting up to 5 s for it to die (tests want this; the local provider keeps servers alive
    /// across cutover invocations and stops them by pid file).
    pub kill_on_drop: bool,
}

impl ArcadeServerConfig {
    /// A configuration with the default heap, no extra properties and `kill_on_drop` off.
    pub fn new(
        install: ArcadeInstall,
        instance_dir: impl Into<PathBuf>,
        bolt_port: u16,
        http_port: u16,
        root_password: SecretString,
    ) -> Self {
        Self {
            install,
            instance_dir: instance_dir.into(),
            bolt_port,
            http_port,
            root_password,
            heap_mb: DEFAULT_HEAP_MB,
            system_properties: Vec::new(),
            kill_on_drop: false,
        }
    }
}

/// How a server ended when asked to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopOutcome {
    /// No server was running (no pid file, a dead pid, or a pid now used by another
    /// program).
    NotRunning,
    /// It exited after SIGTERM within the grace period.
    Stopped { pid: u32 },
    /// It ignored SIGTERM for the whole grace period and was SIGKILLed.
    Killed { pid: u32 },
}

/// A running ArcadeDB server started by this process.
#[derive(Debug)]
pub struct ArcadeServer {
    child: tokio::process::Child,
    pid: u32,
    instance_dir: PathBuf,
    bolt_port: u16,
    http: ArcadeHttp,
    kill_on_drop: bool,
    finished: bool,
    /// Left for the starting JVM by [`ArcadeServer::detach_starting`]: the launcher may
    /// not have read the password argfile yet.
    keep_argfile: bool,
}

impl ArcadeServer {
    /// Spawns the server and returns at once; call [`wait_ready`](Self::wait_ready) next.
    ///
    /// Fails (permanently) when the password is too short, when either port is already in
    /// use, when another server already runs in `instance_dir` (by its pid file), or when
    /// `java` cannot be executed. stdout and stderr go to `instance_dir/server.log`
    /// (appended); the pid goes to `instance_dir/server.pid`. The process gets its own
    /// process group, so a Ctrl-C at cutover's terminal does not reach it.
    pub async fn start(config: ArcadeServerConfig) -> Result<ArcadeServer, Failure> {
        if config.root_password.expose_secret().chars().count() < MIN_ROOT_PASSWORD_LEN {
            return Err(Failure::permanent(format!(
                "the ArcadeDB root password must have at least {MIN_ROOT_PASSWORD_LEN} characters"
            )));
        }
        if let Some((key, _)) = config
            .system_properties
            .iter()
            .find(|(k, _)| k.to_ascii_lowercase().contains("password"))
        {
            return Err(Failure::permanent(format!(
                "system property {key} would put a password on the command line; use root_password"
            )));
        }
        std::fs::create_dir_all(config.instance_dir.join(DATABASES_DIR)).map_err(|e| {
            Failure::permanent(format!(
                "cannot create instance directory {}: {e}",
                config.instance_dir.display()
            ))
        })?;
        let dir = config.instance_dir.canonicalize().map_err(|e| {
            Failure::permanent(format!(
                "cannot resolve instance directory {}: {e}",
                config.instance_dir.display()
            ))
        })?;
        if let Some(pid) = running_pid(&dir) {
            return Err(Failure::permanent(format!(
                "an ArcadeDB server (pid {pid}) is already running in {}",
                dir.display()
            ))
            .with_hint("stop it first, or use another instance directory"));
        }
        for port in [config.bolt_port, config.http_port] {
            ensure_port_free(port)?;
        }
        if config.bolt_port == config.http_port {
            return Err(Failure::permanent(format!(
                "Bolt and HTTP ports are both {}; they must differ",
                config.bolt_port
            )));
        }

        let argfile = dir.join(ARGFILE);
        write_secret_argfile(&argfile, &config.root_password)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(LOG_FILE))
            .map_err(|e| {
                Failure::permanent(format!("cannot open {}: {e}", dir.join(LOG_FILE).display()))
            })?;
        let log_err = log.try_clone().map_err(|e| {
            Failure::permanent(format!("cannot open {}: {e}", dir.join(LOG_FILE).display()))
        })?;

        let mut properties: Vec<(String, String)> = vec![
            ("arcadedb.server.rootPath".into(), dir.display().to_string()),
            (
                "arcadedb.server.databaseDirectory".into(),
                dir.join(DATABASES_DIR).display().to_string(),
            ),
            ("arcadedb.server.plugins".into(), BOLT_PLUGIN.into()),
            ("arcadedb.bolt.host".into(), "127.0.0.1".into()),
            ("arcadedb.bolt.port".into(), config.bolt_port.to_string()),
            (
                "arcadedb.server.httpIncomingHost".into(),
                "127.0.0.1".into(),
            ),
            (
                "arcadedb.server.httpIncomingPort".into(),
                config.http_port.to_string(),
            ),
        ];
        properties.extend(config.system_properties.iter().cloned());

        let mut command = tokio::process::Command::new(&config.install.java);
        command
            .arg(format!("-Xmx{}m", config.heap_mb))
            // Like the local Neo4j servers (neo4j-service.sh): the serial collector and
            // the client compiler, for a small server sharing a few cores with others.
            .args(["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"])
            .arg(format!("@{}", argfile.display()))
            .args(properties.iter().map(|(k, v)| format!("-D{k}={v}")))
            .arg("-cp")
            .arg(config.install.classpath())
            .arg(MAIN_CLASS)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .process_group(0);
        let child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                let _ = std::fs::remove_file(&argfile);
                return Err(Failure::permanent(format!(
                    "cannot run {}: {e}",
                    config.install.java.display()
                ))
                .with_hint("run `make setup` to reinstall ArcadeDB"));
            }
        };
        let pid = child
            .id()
            .ok_or_else(|| Failure::permanent("ArcadeDB server exited at once"))?;
        let server = ArcadeServer {
            child,
            pid,
            instance_dir: dir.clone(),
            bolt_port: config.bolt_port,
            http: ArcadeHttp::new(config.http_port, config.root_password.clone()),
            kill_on_drop: config.kill_on_drop,
            finished: false,
            keep_argfile: false,
        };
        std::fs::write(dir.join(PID_FILE), format!("{pid}\n")).map_err(|e| {
            Failure::permanent(format!(
                "cannot write {}: {e}",
                dir.join(PID_FILE).display()
            ))
        })?;
        Ok(server)
    }

    /// Waits until `GET /api/v1/ready` answers 204, at most `timeout`; returns how long it
    /// took. Deletes the password argfile once ready.
    ///
    /// If the process exits, or throws from `main` and hangs (port taken), this kills it
    /// and fails permanently with the tail of `server.log`. At the timeout it fails
    /// transiently (the server is left running; stop it or wait again).
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<Duration, Failure> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.finished = true;
                self.cleanup_files();
                return Err(self.start_failure(&format!("exited during start-up ({status})")));
            }
            if let Some(reason) = fatal_start_error(&log_tail(&self.log_path(), 16 * 1024)) {
                let _ = self.child.start_kill();
                let _ = self.child.wait().await;
                self.finished = true;
                self.cleanup_files();
                return Err(self.start_failure(&reason));
            }
            if self.http.is_ready().await {
                let _ = std::fs::remove_file(self.instance_dir.join(ARGFILE));
                return Ok(started.elapsed());
            }
            if started.elapsed() >= timeout {
                return Err(Failure::transient(format!(
                    "ArcadeDB server (pid {}) in {} not ready after {:?}; last log lines:\n{}",
                    self.pid,
                    self.instance_dir.display(),
                    timeout,
                    last_lines(&log_tail(&self.log_path(), 4096), 20)
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs a server command (`create database X`, `restore database X file://…`,
    /// `list databases`) with the default timeout.
    pub async fn http_command(&self, command: &str) -> Result<serde_json::Value, Failure> {
        self.http
            .server_command(command, DEFAULT_COMMAND_TIMEOUT)
            .await
    }

    /// The HTTP client for this server (root credentials included).
    pub fn http(&self) -> &ArcadeHttp {
        &self.http
    }

    /// How to reach `database` over Bolt as root.
    pub fn bolt_target(&self, database: &str) -> BoltTarget {
        BoltTarget {
            uri: format!("bolt://127.0.0.1:{}", self.bolt_port),
            user: ROOT_USER.to_string(),
            password: self.http.password.clone(),
            database: Some(database.to_string()),
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }
    pub fn bolt_port(&self) -> u16 {
        self.bolt_port
    }
    pub fn http_port(&self) -> u16 {
        self.http.port
    }
    pub fn instance_dir(&self) -> &Path {
        &self.instance_dir
    }
    pub fn log_path(&self) -> PathBuf {
        self.instance_dir.join(LOG_FILE)
    }

    /// Sends SIGTERM and waits up to `grace` for a clean shutdown, then SIGKILLs. Removes
    /// the pid file. Stopping an already exited server is not an error.
    pub async fn stop(mut self, grace: Duration) -> Result<StopOutcome, Failure> {
        self.finished = true;
        let outcome = if self.child.try_wait().ok().flatten().is_some() {
            StopOutcome::NotRunning
        } else {
            signal(self.pid, libc::SIGTERM);
            match tokio::time::timeout(grace, self.child.wait()).await {
                Ok(_) => StopOutcome::Stopped { pid: self.pid },
                Err(_) => {
                    let _ = self.child.start_kill();
                    self.child.wait().await.map_err(|e| {
                        Failure::inconclusive(format!(
                            "cannot reap ArcadeDB server pid {}: {e}",
                            self.pid
                        ))
                    })?;
                    StopOutcome::Killed { pid: self.pid }
                }
            }
        };
        self.cleanup_files();
        Ok(outcome)
    }

    /// Leaves the server running after this handle is dropped (even with `kill_on_drop`).
    /// Returns its pid; stop it later with [`stop_by_pid_file`].
    pub fn detach(mut self) -> u32 {
        self.kill_on_drop = false;
        self.finished = true;
        self.pid
    }

    /// Leaves a server that may still be starting running after this handle is dropped,
    /// with its password argfile in place (the `java` launcher reads it as the JVM
    /// starts). Returns its pid. Whoever sees it ready removes the argfile with
    /// [`forget_start_secret`]; [`check_start`] reports a start that failed.
    pub fn detach_starting(mut self) -> u32 {
        self.keep_argfile = true;
        self.detach()
    }

    /// Whether the process has exited (reaping it if so).
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Exit status, if the process has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn start_failure(&self, what: &str) -> Failure {
        start_failure(&self.instance_dir, what)
    }

    fn cleanup_files(&self) {
        let _ = std::fs::remove_file(self.instance_dir.join(ARGFILE));
        let _ = std::fs::remove_file(self.instance_dir.join(PID_FILE));
    }
}

impl Drop for ArcadeServer {
    fn drop(&mut self) {
        if !self.keep_argfile {
            let _ = std::fs::remove_file(self.instance_dir.join(ARGFILE));
        }
        if self.kill_on_drop && !self.finished {
            let _ = self.child.start_kill();
            let _ = self.child.try_wait();
            // Never block here (a drop may run on a tokio worker): SIGKILL takes effect in
            // milliseconds, and a helper thread removes the pid file once the JVM is gone
            // (bounded), unless a new server has written its own pid there meanwhile.
            let pid = self.pid;
            let pid_file = self.instance_dir.join(PID_FILE);
            let _ = std::thread::Builder::new()
                .name("arcadedb-reaper".into())
                .spawn(move || {
                    let started = Instant::now();
                    while process_alive(pid) && started.elapsed() < Duration::from_secs(5) {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    let ours = std::fs::read_to_string(&pid_file)
                        .is_ok_and(|text| text.trim() == pid.to_string());
                    if ours {
                        let _ = std::fs::remove_file(&pid_file);
                    }
                });
        }
    }
}

/// Stops the server whose pid is in `instance_dir/server.pid`, from any process: SIGTERM,
/// up to `grace` for it to exit, then SIGKILL (and up to 10 s more). Refuses to signal a
/// pid that is not an ArcadeDB server for this directory (pid reuse); that and a missing
/// pid file count as [`StopOutcome::NotRunning`]. Removes the pid file. Linux only (reads
/// `/proc`).
pub async fn stop_by_pid_file(
    instance_dir: &Path,
    grace: Duration,
) -> Result<StopOutcome, Failure> {
    let dir = instance_dir
        .canonicalize()
        .unwrap_or_else(|_| instance_dir.to_path_buf());
    let Some(pid) = running_pid(&dir) else {
        let _ = std::fs::remove_file(dir.join(PID_FILE));
        return Ok(StopOutcome::NotRunning);
    };
    signal(pid, libc::SIGTERM);
    let outcome = if wait_gone(pid, grace).await {
        StopOutcome::Stopped { pid }
    } else {
        signal(pid, libc::SIGKILL);
        if !wait_gone(pid, Duration::from_secs(10)).await {
            return Err(Failure::inconclusive(format!(
                "ArcadeDB server pid {pid} in {} survived SIGKILL",
                dir.display()
            )));
        }
        StopOutcome::Killed { pid }
    };
    let _ = std::fs::remove_file(dir.join(ARGFILE));
    let _ = std::fs::remove_file(dir.join(PID_FILE));
    Ok(outcome)
}

/// The pid of the ArcadeDB server running in `instance_dir`, if its pid file names a live
/// process whose command line is an ArcadeDB server with this `rootPath`.
pub fn running_pid(instance_dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(instance_dir.join(PID_FILE)).ok()?;
    let pid: u32 = text.trim().parse().ok()?;
    is_arcade_server(pid, instance_dir).then_some(pid)
}

/// A loopback TCP port that was free a moment ago (bind `127.0.0.1:0`, read, release).
/// Another process may take it before you use it; [`ArcadeServer::start`] reports that
/// clearly.
pub fn free_loopback_port() -> Result<u16, Failure> {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Failure::transient(format!("cannot find a free loopback port: {e}")))
}

fn ensure_port_free(port: u16) -> Result<(), Failure> {
    match TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(port_in_use(port)),
        Err(e) => Err(Failure::permanent(format!(
            "cannot use port {port} on 127.0.0.1: {e}"
        ))),
    }
}

fn port_in_use(port: u16) -> Failure {
    Failure::permanent(format!("port {port} is already in use"))
        .with_hint("stop whatever listens there (`ss -ltnp`) or choose another port")
        .with_kind(FailureKind::PortInUse)
}

/// Writes `-Darcadedb.server.rootPassword=…` as one quoted argfile argument, readable
/// only by the owner. In argfiles, `#` starts a comment and whitespace splits arguments
/// outside quotes; inside double quotes, backslash escapes `\\`, `\"`, `\n`, `\r`, `\t`.
fn write_secret_argfile(path: &Path, password: &SecretString) -> Result<(), Failure> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let fail =
        |e: std::io::Error| Failure::permanent(format!("cannot write {}: {e}", path.display()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(fail)?;
    let line = format!(
        "\"-Darcadedb.server.rootPassword={}\"\n",
        argfile_escape(password.expose_secret())
    );
    file.write_all(line.as_bytes()).map_err(fail)?;
    file.sync_all().map_err(fail)
}

fn argfile_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{c}' => out.push_str("\\f"),
            c => out.push(c),
        }
    }
    out
}

/// Removes the password argfile of the server in `instance_dir` (once it serves, the
/// JVM has long read it). Nothing to remove is not an error.
pub fn forget_start_secret(instance_dir: &Path) {
    let _ = std::fs::remove_file(instance_dir.join(ARGFILE));
}

/// A start of the server in `instance_dir` that failed, as `server.log` tells it: an
/// exception thrown from `main` (after which the JVM hangs, e.g. on a port taken after
/// [`ArcadeServer::start`] checked it). The caller stops the process. Reads only the log
/// of the last start, so the caller moves an earlier log aside before starting
/// ([`set_log_aside`]). A taken port has [`FailureKind::PortInUse`].
pub fn check_start(instance_dir: &Path) -> Option<Failure> {
    let reason = fatal_start_error(&log_tail(&instance_dir.join(LOG_FILE), 16 * 1024))?;
    Some(start_failure(instance_dir, &reason))
}

/// The failure of a start of the server in `instance_dir` that `what` describes, with
/// the last lines of its log; a taken port has [`FailureKind::PortInUse`] (the server's
/// own words are the only place it shows; said once here so callers match the kind, not
/// the text).
fn start_failure(instance_dir: &Path, what: &str) -> Failure {
    let log_path = instance_dir.join(LOG_FILE);
    let log = last_lines(&log_tail(&log_path, 4096), 20);
    let port_taken = what.contains("already in use") || log.contains("already in use");
    let failure = Failure::permanent(format!(
        "ArcadeDB server in {} {what}; last log lines:\n{log}",
        instance_dir.display(),
    ))
    .with_hint(format!("see {}", log_path.display()));
    if port_taken {
        failure.with_kind(FailureKind::PortInUse)
    } else {
        failure
    }
}

/// Moves the `server.log` of an earlier start to `server.log.1` (replacing an older one),
/// so what [`check_start`] reads is this start's alone.
pub fn set_log_aside(instance_dir: &Path) {
    let log = instance_dir.join(LOG_FILE);
    if log.exists() {
        let _ = std::fs::rename(&log, instance_dir.join(format!("{LOG_FILE}.1")));
    }
}

/// A start-up failure after which the JVM keeps running without serving.
fn fatal_start_error(log: &str) -> Option<String> {
    if !log.contains("Exception in thread \"main\"") {
        return None;
    }
    let busy_port = log.lines().find_map(|l| {
        let rest = l.split("Port ").nth(1)?;
        let (addr, tail) = rest.split_once(' ')?;
        tail.starts_with("busy")
            .then(|| addr.rsplit(':').next().unwrap_or(addr).to_string())
    });
    Some(match busy_port {
        Some(port) => format!("failed to start: port {port} is already in use"),
        None => "failed to start (exception in main)".to_string(),
    })
}

fn log_tail(path: &Path, max_bytes: u64) -> String {
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(max_bytes)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// Alive and not a zombie.
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                != Some("Z")
        }
        Err(_) => false,
    }
}

fn is_arcade_server(pid: u32, instance_dir: &Path) -> bool {
    if !process_alive(pid) {
        return false;
    }
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let root = format!("-Darcadedb.server.rootPath={}", instance_dir.display());
    let mut has_main = false;
    let mut has_root = false;
    for arg in cmdline.split(|b| *b == 0) {
        has_main |= arg == MAIN_CLASS.as_bytes();
        has_root |= arg == root.as_bytes();
    }
    has_main && has_root
}

async fn wait_gone(pid: u32, limit: Duration) -> bool {
    let started = Instant::now();
    while process_alive(pid) {
        if started.elapsed() >= limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argfile_values_are_quoted_and_escaped() {
        assert_eq!(argfile_escape(r#"a"b\c d#e"#), r#"a\"b\\c d#e"#);
        assert_eq!(argfile_escape("x\ny"), "x\\ny");
    }

    #[test]
    fn the_argfile_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(ARGFILE);
        write_secret_argfile(&path, &SecretString::from("pa ss\"word")).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "\"-Darcadedb.server.rootPassword=pa ss\\\"word\"\n");
    }

    #[test]
    fn a_busy_port_in_the_log_is_reported_as_such() {
        let log = "WARNI [BoltNetworkListener] <ArcadeDB_0> Port 127.0.0.1:17687 busy, trying the next available...\n\
                   SEVER [BoltNetworkListener] Unable to listen\n\
                   Exception in thread \"main\" com.arcadedb.server.ServerException: Error starting plugin";
        assert_eq!(
            fatal_start_error(log).as_deref(),
            Some("failed to start: port 17687 is already in use")
        );
        assert_eq!(fatal_start_error("all fine"), None);
    }

    #[test]
    fn a_taken_port_is_refused_before_spawning() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let err = ensure_port_free(port).unwrap_err();
        assert_eq!(err.message, format!("port {port} is already in use"));
        assert!(err.is(FailureKind::PortInUse), "{err:?}");
    }

    #[test]
    fn a_free_port_can_be_bound() {
        let port = free_loopback_port().unwrap();
        assert!(port > 0);
        ensure_port_free(port).unwrap();
    }
}
