//! Finding an ArcadeDB installation: a bundled Java runtime and the server's jars.
//!
//! cutover does not ship ArcadeDB. `make setup` installs the PyPI wheel
//! `arcadedb-embedded` into the project's `.venv`; its package directory holds
//! `jre/bin/java` (a Corretto 25 runtime in 26.10.2.post1) and `jars/*.jar`, which is all
//! a server needs. Any directory with the same two children works too (point
//! `CUTOVER_ARCADEDB_HOME` at it).

use crate::failure::Failure;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Environment variable naming a directory that contains `jre/` and `jars/`.
pub const HOME_ENV: &str = "CUTOVER_ARCADEDB_HOME";

const NOT_INSTALLED_HINT: &str = "run `make setup` (installs arcadedb-embedded into .venv)";

/// A usable ArcadeDB installation. Constructed only by checking that `java` is a file
/// and that `jars` holds an `arcadedb-server-<version>.jar`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArcadeInstall {
    /// The Java launcher (`<home>/jre/bin/java`).
    pub java: PathBuf,
    /// The directory with the server's jars (`<home>/jars`).
    pub jars: PathBuf,
    /// ArcadeDB's version, read from the server jar's file name (e.g. `26.10.2`).
    pub version: String,
}

impl ArcadeInstall {
    /// Finds the installation for the current directory: `$CUTOVER_ARCADEDB_HOME` if set,
    /// else the `arcadedb_embedded` package in `.venv` of the current directory or the
    /// nearest ancestor that has one.
    pub fn discover() -> Result<Self, Failure> {
        let cwd = std::env::current_dir()
            .map_err(|e| Failure::permanent(format!("cannot read the current directory: {e}")))?;
        Self::discover_from(&cwd)
    }

    /// Like [`discover`](Self::discover), searching for `.venv` from `start` upwards.
    pub fn discover_from(start: &Path) -> Result<Self, Failure> {
        if let Some(home) = std::env::var_os(HOME_ENV).filter(|v| !v.is_empty()) {
            return Self::from_dir(Path::new(&home)).map_err(|f| {
                Failure::permanent(format!(
                    "{HOME_ENV}={}: {}",
                    Path::new(&home).display(),
                    f.message
                ))
                .with_hint(format!(
                    "point {HOME_ENV} at a directory holding jre/ and jars/, or unset it"
                ))
            });
        }
        for dir in start.ancestors() {
            let venv = dir.join(".venv");
            if venv.is_dir() {
                if let Ok(install) = Self::from_venv(&venv) {
                    return Ok(install);
                }
            }
        }
        Err(not_installed(format!(
            "ArcadeDB not installed: no {HOME_ENV} and no .venv with arcadedb_embedded in {} or its parents",
            start.display()
        )))
    }

    /// The `arcadedb_embedded` package inside a Python virtualenv
    /// (`<venv>/lib/python3*/site-packages/arcadedb_embedded`).
    pub fn from_venv(venv: &Path) -> Result<Self, Failure> {
        let lib = venv.join("lib");
        let entries = std::fs::read_dir(&lib).map_err(|_| {
            not_installed(format!(
                "ArcadeDB not installed: {} is not a Python virtualenv",
                venv.display()
            ))
        })?;
        let mut pythons: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("python3"))
            })
            .collect();
        pythons.sort();
        for python in pythons.iter().rev() {
            let package = python.join("site-packages").join("arcadedb_embedded");
            if package.is_dir() {
                return Self::from_dir(&package);
            }
        }
        Err(not_installed(format!(
            "ArcadeDB not installed: no arcadedb_embedded package in {}",
            venv.display()
        )))
    }

    /// A directory holding `jre/bin/java` and `jars/arcadedb-server-<version>.jar`.
    pub fn from_dir(dir: &Path) -> Result<Self, Failure> {
        let java = dir.join("jre").join("bin").join("java");
        if !java.is_file() {
            return Err(not_installed(format!(
                "ArcadeDB not installed: {} is missing",
                java.display()
            )));
        }
        let jars = dir.join("jars");
        let version = std::fs::read_dir(&jars)
            .map_err(|_| {
                not_installed(format!(
                    "ArcadeDB not installed: {} is missing",
                    jars.display()
                ))
            })?
            .filter_map(|e| e.ok())
            .find_map(|e| server_jar_version(&e.file_name().to_string_lossy()))
            .ok_or_else(|| {
                not_installed(format!(
                    "ArcadeDB not installed: no arcadedb-server-<version>.jar in {}",
                    jars.display()
                ))
            })?;
        Ok(Self {
            java,
            jars,
            version,
        })
    }

    /// The `-cp` value: every jar in [`jars`](Self::jars) (Java expands the `*`).
    pub fn classpath(&self) -> OsString {
        let mut cp = self.jars.clone().into_os_string();
        cp.push("/*");
        cp
    }
}

fn not_installed(message: String) -> Failure {
    Failure::permanent(message).with_hint(NOT_INSTALLED_HINT)
}

/// `arcadedb-server-26.10.2.jar` → `26.10.2`.
fn server_jar_version(file_name: &str) -> Option<String> {
    let version = file_name
        .strip_prefix("arcadedb-server-")?
        .strip_suffix(".jar")?;
    let starts_with_digit = version.chars().next().is_some_and(|c| c.is_ascii_digit());
    (starts_with_digit && !version.contains("-sources") && !version.contains("-javadoc"))
        .then(|| version.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_home(root: &Path, version: &str) -> PathBuf {
        let home = root.join("arcadedb_embedded");
        std::fs::create_dir_all(home.join("jre/bin")).unwrap();
        std::fs::create_dir_all(home.join("jars")).unwrap();
        std::fs::write(home.join("jre/bin/java"), "").unwrap();
        std::fs::write(home.join(format!("jars/arcadedb-server-{version}.jar")), "").unwrap();
        std::fs::write(home.join("jars/arcadedb-engine-1.0.jar"), "").unwrap();
        home
    }

    #[test]
    fn reads_the_version_from_the_server_jar() {
        assert_eq!(
            server_jar_version("arcadedb-server-26.10.2.jar").as_deref(),
            Some("26.10.2")
        );
        assert_eq!(
            server_jar_version("arcadedb-server-26.10.2-sources.jar"),
            None
        );
        assert_eq!(server_jar_version("arcadedb-engine-26.10.2.jar"), None);
    }

    #[test]
    fn finds_the_package_in_a_virtualenv() {
        let tmp = tempfile::tempdir().unwrap();
        let site = tmp.path().join(".venv/lib/python3.12/site-packages");
        std::fs::create_dir_all(&site).unwrap();
        let home = fake_home(&site, "26.10.2");
        let install = ArcadeInstall::from_venv(&tmp.path().join(".venv")).unwrap();
        assert_eq!(install.version, "26.10.2");
        assert_eq!(install.java, home.join("jre/bin/java"));
        assert!(install.classpath().to_string_lossy().ends_with("jars/*"));
    }

    #[test]
    fn a_missing_install_says_how_to_install_it() {
        let tmp = tempfile::tempdir().unwrap();
        let err = ArcadeInstall::from_dir(tmp.path()).unwrap_err();
        assert!(
            err.message.starts_with("ArcadeDB not installed"),
            "{}",
            err.message
        );
        assert_eq!(err.hint.as_deref(), Some(NOT_INSTALLED_HINT));
        assert!(!err.is_retryable());
    }
}
