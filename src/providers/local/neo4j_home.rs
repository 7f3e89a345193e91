//! A local Neo4j instance's home: a real Neo4j Community server from
//! `.tools/neo4j/<version>/` (assembled by `scripts/setup-neo4j.sh`), on its own loopback
//! Bolt port, laid out like the AMI's Neo4j so the engine's scripts run unchanged:
//!
//! ```text
//! <home>/conf/neo4j.conf         written here: loopback Bolt port, explicit heap and page cache
//! <home>/data/ logs/ run/        the server's (run/neo4j.pid is its pid)
//! <home>/cutover-systemctl       the `systemctl … neo4j` of this instance (neo4j-service.sh)
//! <home>/bin/neo4j-admin         that version's neo4j-admin with this home's NEO4J_HOME/NEO4J_CONF
//! <home>/exec/<nonce>/           one script run of the local exec channel (exec.rs)
//! ```
//!
//! The server is one JVM, `org.neo4j.server.CommunityEntryPoint` started directly (the
//! class `bin/neo4j start` forks), so the pid cutover records is the server's and
//! nothing else has to be stopped. Like the AMI, a new home does not start Neo4j: the
//! engine's `set-initial-password.sh` sets the administrator's password first and then
//! starts it through `cutover-systemctl`.

use super::files::{create_dir_all, io_failure, write_atomic};
use crate::failure::Failure;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The service shim; see its header.
pub const SERVICE_SCRIPT: &str = include_str!("neo4j-service.sh");
/// Where a local image of engine `neo4j` finds its installation, unless its image file
/// says otherwise: `<dir>/<version>` for the first `.tools/neo4j` above the current
/// directory (or `CUTOVER_NEO4J_TOOLS`).
pub const TOOLS_ENV: &str = "CUTOVER_NEO4J_TOOLS";
/// The page cache every local server gets (several servers share one machine).
const PAGE_CACHE: &str = "64m";
/// Bolt's shutdown without Netty's idle waits: by default the Bolt server waits 5 s for
/// each of its two event-loop groups to stay quiet, so every stop of an idle server took
/// 10.3 s (measured on 5.26.30 and 2026.08.1; 0.3-0.4 s with these). Internal settings of
/// both pinned versions (whole seconds); open connections are still closed as before.
/// The rehearsal rig (tests/rig/rig_hosts.py) and the test harness write the same lines.
pub const FAST_BOLT_SHUTDOWN: &str = "internal.dbms.bolt.netty_server_shutdown_quiet_period=0\n\
     internal.dbms.bolt.netty_server_shutdown_timeout=2\n";
/// How long `stop` waits after SIGTERM before SIGKILL.
const STOP_GRACE_S: u32 = 30;

/// One Neo4j version as `scripts/setup-neo4j.sh` assembled it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neo4jInstall {
    pub version: String,
    /// `.tools/neo4j/<version>`
    pub dir: PathBuf,
    pub java: PathBuf,
    /// The server JVM's main class and options (without the heap), as the version's own
    /// bootloader would start it (`server-main-class`, `server-java-options`, read off
    /// `bin/neo4j console --dry-run` by the setup): `CommunityEntryPoint` on 5.26,
    /// `Neo4jCommunity` on 2026.x.
    pub server_main_class: String,
    pub server_java_options: Vec<String>,
}

impl Neo4jInstall {
    /// The installation in `dir` (`lib/`, `bin/neo4j-admin`, `java-home`, `.complete`).
    pub fn from_dir(dir: &Path, version: &str) -> Result<Self, Failure> {
        let missing = |what: String| {
            Failure::permanent(format!(
                "Neo4j {version} is not installed: {what}"
            ))
            .with_hint("run `make setup` (scripts/setup-neo4j.sh assembles Neo4j from Maven Central into .tools/neo4j)")
        };
        if !dir.join(".complete").is_file() {
            return Err(missing(format!(
                "{} has no .complete marker",
                dir.display()
            )));
        }
        for p in [
            "lib",
            "bin/neo4j-admin",
            "server-main-class",
            "server-java-options",
        ] {
            if !dir.join(p).exists() {
                return Err(missing(format!("{} is missing", dir.join(p).display())));
            }
        }
        let java_home = std::fs::read_to_string(dir.join("java-home"))
            .map_err(|e| missing(format!("{}: {e}", dir.join("java-home").display())))?;
        let java = Path::new(java_home.trim()).join("bin/java");
        if !java.is_file() {
            return Err(missing(format!(
                "its Java {} does not exist",
                java.display()
            )));
        }
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .map_err(|e| missing(format!("{}: {e}", dir.join(name).display())))
        };
        let server_main_class = read("server-main-class")?.trim().to_owned();
        if !server_main_class.starts_with("org.neo4j.")
            || !server_main_class
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.')
        {
            return Err(missing(format!(
                "{} names no Neo4j class: {server_main_class:?}",
                dir.join("server-main-class").display()
            )));
        }
        let server_java_options: Vec<String> = read("server-java-options")?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        if let Some(bad) = server_java_options.iter().find(|o| !o.starts_with('-')) {
            return Err(missing(format!(
                "{} holds {bad:?}, not a JVM option",
                dir.join("server-java-options").display()
            )));
        }
        Ok(Self {
            version: version.to_owned(),
            dir: dir.to_path_buf(),
            java,
            server_main_class,
            server_java_options,
        })
    }

    /// `.tools/neo4j` from `CUTOVER_NEO4J_TOOLS`, else the first one in `start` or above.
    pub fn tools_dir(start: &Path) -> Result<PathBuf, Failure> {
        if let Some(dir) = std::env::var_os(TOOLS_ENV).filter(|v| !v.is_empty()) {
            return Ok(PathBuf::from(dir));
        }
        start
            .ancestors()
            .map(|d| d.join(".tools/neo4j"))
            .find(|d| d.is_dir())
            .ok_or_else(|| {
                Failure::permanent(format!(
                    "Neo4j is not installed: no .tools/neo4j in {} or above, and no {TOOLS_ENV}",
                    start.display()
                ))
                .with_hint("run `make setup` (it assembles Neo4j Community from Maven Central)")
            })
    }

    fn lib(&self) -> PathBuf {
        self.dir.join("lib")
    }
}

/// A version named by an image `neo4j-<version>` (digits and dots).
pub fn image_version(image: &str) -> Option<&str> {
    image
        .strip_prefix("neo4j-")
        .filter(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

/// Paths of one home.
#[derive(Clone, Debug)]
pub struct Neo4jHome {
    pub dir: PathBuf,
}

impl Neo4jHome {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
    pub fn conf_file(&self) -> PathBuf {
        self.dir.join("conf/neo4j.conf")
    }
    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }
    pub fn systemctl(&self) -> PathBuf {
        self.dir.join("cutover-systemctl")
    }
    pub fn admin(&self) -> PathBuf {
        self.dir.join("bin/neo4j-admin")
    }
    pub fn lock_file(&self) -> PathBuf {
        self.dir.join("run/cutover-scripts.lock")
    }
    pub fn exec_dir(&self) -> PathBuf {
        self.dir.join("exec")
    }
    fn pid_file(&self) -> PathBuf {
        self.dir.join("run/neo4j.pid")
    }

    /// Whether Neo4j was ever started here (its store exists).
    pub fn ever_started(&self) -> bool {
        self.data().join("databases").exists()
    }

    /// Writes conf, directories and the two wrappers. Does not start anything.
    pub fn create(
        &self,
        install: &Neo4jInstall,
        bolt_port: u16,
        heap_mb: u32,
    ) -> Result<(), Failure> {
        for d in ["conf", "data", "logs", "run", "bin", "exec"] {
            create_dir_all(&self.dir.join(d))?;
        }
        let conf = format!(
            "# Written by cutover for a local instance (Neo4j {version}).\n\
             server.default_listen_address=127.0.0.1\n\
             server.default_advertised_address=127.0.0.1\n\
             server.bolt.listen_address=127.0.0.1:{bolt_port}\n\
             server.bolt.advertised_address=127.0.0.1:{bolt_port}\n\
             server.http.enabled=false\n\
             server.https.enabled=false\n\
             server.memory.heap.initial_size={heap_mb}m\n\
             server.memory.heap.max_size={heap_mb}m\n\
             server.memory.pagecache.size={PAGE_CACHE}\n\
             server.directories.logs=logs\n\
             db.shutdown_transaction_end_timeout=2s\n\
             dbms.usage_report.enabled=false\n\
             {FAST_BOLT_SHUTDOWN}",
            version = install.version
        );
        write_atomic(&self.conf_file(), conf.as_bytes(), 0o644)?;
        let q = |p: &Path| shell_quote(&p.display().to_string());
        let service = format!(
            "#!/usr/bin/env bash\nNEO4J_HOME={home}\nJAVA={java}\nNEO4J_LIB={lib}\nHEAP={heap_mb}m\nSTOP_GRACE_S={STOP_GRACE_S}\nSERVER_MAIN_CLASS={main}\nSERVER_JAVA_OPTIONS=({options})\nexport NEO4J_HOME JAVA NEO4J_LIB HEAP STOP_GRACE_S SERVER_MAIN_CLASS\n{SERVICE_SCRIPT}",
            home = q(&self.dir),
            java = q(&install.java),
            lib = q(&install.lib()),
            main = shell_quote(&install.server_main_class),
            options = install
                .server_java_options
                .iter()
                .map(|o| shell_quote(o))
                .collect::<Vec<_>>()
                .join(" "),
        );
        write_atomic(&self.systemctl(), service.as_bytes(), 0o755)?;
        let admin = format!(
            "#!/usr/bin/env bash\n# neo4j-admin {version} for the local instance in {home}.\nset -euo pipefail\nexport NEO4J_HOME={home} NEO4J_CONF={conf}\nexec {admin} \"$@\"\n",
            version = install.version,
            home = q(&self.dir),
            conf = q(&self.dir.join("conf")),
            admin = q(&install.dir.join("bin/neo4j-admin")),
        );
        write_atomic(&self.admin(), admin.as_bytes(), 0o755)?;
        Ok(())
    }

    /// The server's pid when it runs (the pid file names a live JVM for this home).
    pub fn running_pid(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let want = format!("--home-dir={}", self.dir.display());
        cmdline
            .split(|b| *b == 0)
            .any(|a| a == want.as_bytes())
            .then_some(pid)
    }

    /// Runs `cutover-systemctl ACTION neo4j` (bounded by `limit`).
    pub async fn service(&self, action: &str, limit: Duration) -> Result<(), Failure> {
        let mut cmd = tokio::process::Command::new("bash");
        cmd.arg(self.systemctl())
            .arg(action)
            .arg("neo4j")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let out = tokio::time::timeout(limit, cmd.output())
            .await
            .map_err(|_| {
                Failure::transient(format!(
                    "`{} {action} neo4j` did not finish within {limit:?}",
                    self.systemctl().display()
                ))
            })?
            .map_err(|e| io_failure(&format!("cannot run {}", self.systemctl().display()), &e))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(Failure::transient(format!(
                "`{} {action} neo4j` failed ({}): {}",
                self.systemctl().display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }
}

/// `'…'` with embedded quotes escaped.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_carry_the_version() {
        assert_eq!(image_version("neo4j-5.26.30"), Some("5.26.30"));
        assert_eq!(image_version("neo4j-2026.08.1"), Some("2026.08.1"));
        assert_eq!(image_version("neo4j-"), None);
        assert_eq!(image_version("neo4j-../x"), None);
        assert_eq!(image_version("arcadedb"), None);
    }

    #[test]
    fn a_missing_install_says_run_make_setup() {
        let dir = tempfile::tempdir().unwrap();
        let f = Neo4jInstall::from_dir(&dir.path().join("5.26.30"), "5.26.30").unwrap_err();
        assert!(f.message.contains("not installed"), "{}", f.message);
        assert!(f.hint.unwrap().contains("make setup"));
    }

    #[test]
    fn shell_quote_escapes_quotes() {
        assert_eq!(shell_quote("a'b"), "'a'\\''b'");
    }
}
