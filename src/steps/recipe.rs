//! The Neo4j image recipe in `ami/`: the pins shared by every image (`versions.env`),
//! one file per edition (`community.env`, `enterprise.env`) and the install scripts
//! (`scripts/`). The bake key is the SHA-256 of exactly those files and the edition, so
//! any change to a pin or a script (and nothing else) asks for a new image.

use crate::db::Edition;
use crate::failure::Failure;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A recipe read from disk: its files (relative path → content), the edition and the
/// pins the tags and the builder need.
#[derive(Clone, Debug)]
pub struct Recipe {
    pub dir: PathBuf,
    pub edition: Edition,
    /// `versions.env`, `<edition>.env` and `scripts/…`, by path relative to `dir`.
    pub files: BTreeMap<String, String>,
    /// Every `KEY=value` of `versions.env` and `<edition>.env` (the edition file wins).
    pub pins: BTreeMap<String, String>,
}

impl Recipe {
    /// Reads the recipe for `edition` from `dir`. Missing files, a bad `KEY=value`
    /// line (with file:line) or a recipe whose edition file declares another edition
    /// are permanent failures.
    pub fn load(dir: &Path, edition: Edition) -> Result<Recipe, Failure> {
        let read = |rel: &str| -> Result<String, Failure> {
            let path = dir.join(rel);
            std::fs::read_to_string(&path).map_err(|e| {
                Failure::permanent(format!("AMI recipe: cannot read {}: {e}", path.display()))
                    .with_hint(
                        "run from the repository root, or point `recipe` at the ami/ directory",
                    )
            })
        };
        let mut files = BTreeMap::new();
        let edition_file = format!("{}.env", edition.as_str());
        for rel in ["versions.env", edition_file.as_str()] {
            files.insert(rel.to_owned(), read(rel)?);
        }
        let scripts = dir.join("scripts");
        let entries = std::fs::read_dir(&scripts).map_err(|e| {
            Failure::permanent(format!(
                "AMI recipe: cannot list {}: {e}",
                scripts.display()
            ))
        })?;
        for entry in entries {
            let entry = entry.map_err(|e| {
                Failure::permanent(format!("AMI recipe: {}: {e}", scripts.display()))
            })?;
            if entry.path().is_file() {
                let rel = format!("scripts/{}", entry.file_name().to_string_lossy());
                files.insert(rel.clone(), read(&rel)?);
            }
        }
        let mut pins = BTreeMap::new();
        for rel in ["versions.env", edition_file.as_str()] {
            pins.extend(parse_env(&dir.join(rel), &files[rel])?);
        }
        let declared = pins.get("NEO4J_EDITION").map(String::as_str);
        if declared != Some(edition.as_str()) {
            return Err(Failure::permanent(format!(
                "AMI recipe: {} sets NEO4J_EDITION={} but is the recipe of the {} image",
                dir.join(&edition_file).display(),
                declared.unwrap_or("(nothing)"),
                edition.as_str()
            ))
            .with_hint(format!("set NEO4J_EDITION={} there", edition.as_str())));
        }
        for key in ["BASE_AMI_PARAMETER", "NEO4J_VERSION"] {
            if !pins.contains_key(key) {
                return Err(Failure::permanent(format!(
                    "AMI recipe: {} does not pin {key}",
                    dir.join("versions.env").display()
                )));
            }
        }
        Ok(Recipe {
            dir: dir.to_path_buf(),
            edition,
            files,
            pins,
        })
    }

    /// SHA-256 (hex) of the edition and every recipe file (path, length, content).
    pub fn bake_key(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"cutover-ami-recipe/1\0edition=");
        h.update(self.edition.as_str().as_bytes());
        for (path, content) in &self.files {
            h.update(b"\0");
            h.update(path.as_bytes());
            h.update(b"\0");
            h.update(content.len().to_string().as_bytes());
            h.update(b"\0");
            h.update(content.as_bytes());
        }
        hex::encode(h.finalize())
    }

    pub fn pin(&self, key: &str) -> &str {
        self.pins.get(key).map(String::as_str).unwrap_or("")
    }

    pub fn neo4j_version(&self) -> &str {
        self.pin("NEO4J_VERSION")
    }

    pub fn base_ami_parameter(&self) -> &str {
        self.pin("BASE_AMI_PARAMETER")
    }

    /// The image name: unique per edition and bake key, so a second `CreateImage` for the
    /// same recipe is refused by EC2 and the first image is adopted.
    pub fn image_name(&self) -> String {
        format!(
            "cutover-neo4j-{}-{}-{}",
            self.edition.as_str(),
            self.neo4j_version(),
            &self.bake_key()[..16]
        )
    }

    /// A self-contained script for the builder: writes the recipe files into a fresh
    /// directory and runs `scripts/install.sh <edition>` there. Holds no secret (the
    /// recipe has none).
    pub fn install_script(&self) -> String {
        let mut body = String::from(
            "set -euo pipefail\nrecipe=\"$(mktemp -d /tmp/cutover-ami.XXXXXX)\"\nmkdir -p \"$recipe/scripts\"\n",
        );
        for (i, (path, content)) in self.files.iter().enumerate() {
            let marker = format!("CUTOVER_RECIPE_EOF_{i}");
            body.push_str(&format!(
                "cat >\"$recipe/{path}\" <<'{marker}'\n{content}{}{marker}\n",
                if content.ends_with('\n') { "" } else { "\n" }
            ));
        }
        body.push_str("chmod +x \"$recipe\"/scripts/*.sh\n");
        body.push_str(&format!(
            "\"$recipe/scripts/install.sh\" {}\n",
            self.edition.as_str()
        ));
        body
    }
}

/// `KEY=value` lines; `#` comments and blank lines are skipped. Anything else is an
/// error with file:line.
fn parse_env(path: &Path, text: &str) -> Result<BTreeMap<String, String>, Failure> {
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(Failure::permanent(format!(
                "{}:{}:1: expected KEY=value, found {line:?}",
                path.display(),
                n + 1
            )));
        };
        let ok = !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !ok {
            return Err(Failure::permanent(format!(
                "{}:{}:1: {k:?} is not a variable name (A-Z, 0-9, _)",
                path.display(),
                n + 1
            )));
        }
        out.insert(k.to_owned(), v.trim().trim_matches('"').to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("scripts")).unwrap();
        std::fs::write(
            d.path().join("versions.env"),
            "# pins\nBASE_AMI_PARAMETER=/aws/service/x\nNEO4J_VERSION=5.26.30\n",
        )
        .unwrap();
        std::fs::write(d.path().join("community.env"), "NEO4J_EDITION=community\n").unwrap();
        std::fs::write(
            d.path().join("enterprise.env"),
            "NEO4J_EDITION=enterprise\n",
        )
        .unwrap();
        std::fs::write(d.path().join("scripts/install.sh"), "echo install\n").unwrap();
        d
    }

    #[test]
    fn the_bake_key_follows_the_recipe_files_and_the_edition() {
        let d = recipe_dir();
        let c1 = Recipe::load(d.path(), Edition::Community).unwrap();
        let e1 = Recipe::load(d.path(), Edition::Enterprise).unwrap();
        assert_ne!(c1.bake_key(), e1.bake_key(), "each edition its image");
        assert_eq!(
            c1.bake_key(),
            Recipe::load(d.path(), Edition::Community)
                .unwrap()
                .bake_key()
        );
        std::fs::write(d.path().join("scripts/install.sh"), "echo install v2\n").unwrap();
        let c2 = Recipe::load(d.path(), Edition::Community).unwrap();
        assert_ne!(c1.bake_key(), c2.bake_key(), "a script change is a new key");
        std::fs::write(d.path().join("README.md"), "docs do not count\n").unwrap();
        assert_eq!(
            c2.bake_key(),
            Recipe::load(d.path(), Edition::Community)
                .unwrap()
                .bake_key()
        );
        assert_eq!(c2.neo4j_version(), "5.26.30");
        assert!(c2
            .image_name()
            .starts_with("cutover-neo4j-community-5.26.30-"));
    }

    #[test]
    fn a_bad_line_is_reported_with_file_and_line() {
        let d = recipe_dir();
        std::fs::write(
            d.path().join("versions.env"),
            "NEO4J_VERSION=1\nnot a pin\n",
        )
        .unwrap();
        let e = Recipe::load(d.path(), Edition::Community).unwrap_err();
        assert!(e.message.contains("versions.env:2:1"), "{}", e.message);
    }

    #[test]
    fn an_edition_file_that_declares_another_edition_is_refused() {
        let d = recipe_dir();
        std::fs::write(d.path().join("community.env"), "NEO4J_EDITION=enterprise\n").unwrap();
        let e = Recipe::load(d.path(), Edition::Community).unwrap_err();
        assert!(
            e.message.contains("NEO4J_EDITION=enterprise"),
            "{}",
            e.message
        );
    }

    #[test]
    fn the_install_script_carries_every_file_and_runs_install_with_the_edition() {
        let d = recipe_dir();
        let r = Recipe::load(d.path(), Edition::Community).unwrap();
        let s = r.install_script();
        for path in r.files.keys() {
            assert!(s.contains(&format!("\"$recipe/{path}\"")), "{path}");
        }
        assert!(s.ends_with("\"$recipe/scripts/install.sh\" community\n"));
    }

    #[test]
    fn the_shipped_recipe_pins_the_local_neo4j_lts_for_both_editions() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let local = std::fs::read_to_string(root.join("scripts/neo4j-versions.env")).unwrap();
        let lts = local
            .lines()
            .find_map(|l| l.strip_prefix("NEO4J_LTS="))
            .unwrap()
            .trim();
        for edition in [Edition::Community, Edition::Enterprise] {
            let r = Recipe::load(&root.join("ami"), edition).unwrap();
            assert_eq!(r.neo4j_version(), lts);
        }
    }
}
