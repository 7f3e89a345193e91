//! The few git questions the release steps ask: which commit is checked out, and which
//! files under given paths changed between two commits. Runs the `git` binary.

use crate::failure::Failure;
use std::path::Path;
use std::process::Command;

fn git(repo: &Path, args: &[&str]) -> Result<String, Failure> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .map_err(|e| {
            Failure::permanent(format!("cannot run git in {}: {e}", repo.display()))
                .with_hint("install git, or run from a clone of the repository")
        })?;
    if !out.status.success() {
        return Err(Failure::permanent(format!(
            "git {} in {} failed: {}",
            args.join(" "),
            repo.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The full id of `HEAD`.
pub fn head(repo: &Path) -> Result<String, Failure> {
    git(repo, &["rev-parse", "--verify", "HEAD^{commit}"])
}

/// Whether `commit` exists in the clone (a shallow clone may lack a release's commit).
pub fn has_commit(repo: &Path, commit: &str) -> bool {
    git(repo, &["cat-file", "-e", &format!("{commit}^{{commit}}")]).is_ok()
}

/// Files under `paths` that differ between `from` and `to` (`git diff --name-only`).
pub fn changed_files(
    repo: &Path,
    from: &str,
    to: &str,
    paths: &[&str],
) -> Result<Vec<String>, Failure> {
    if !has_commit(repo, from) {
        return Err(Failure::permanent(format!(
            "the release marker names commit {from}, which this clone of {} does not have",
            repo.display()
        ))
        .with_hint("fetch the whole history (actions/checkout with fetch-depth: 0), or record a new release marker"));
    }
    let mut args = vec!["diff", "--name-only", from, to, "--"];
    args.extend_from_slice(paths);
    Ok(git(repo, &args)?
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}
