//! The library's layers, checked on its source: `plan`/`engine` → `steps` →
//! `providers`/`db`/`integrity` → the bottom (`failure`, `ids`, `progress`, `retry` and
//! the file readers `config::source`/`config::toml_read`), with `config` reading files into
//! the types of the layers below it. A module may import its own layer and the ones below,
//! never one above. The CLI is not in the library at all (the compiler keeps it out).
//! Test code (`#[cfg(test)]` modules, `*_tests.rs`) may reach anywhere.

use std::path::{Path, PathBuf};

/// The bottom layer imports no other room.
const BOTTOM: &[&str] = &[
    "config",
    "db",
    "engine",
    "integrity",
    "plan",
    "providers",
    "report",
    "steps",
];

/// What each room may not import (`crate::<room>`).
const RULES: &[(&str, &[&str])] = &[
    ("failure.rs", BOTTOM),
    ("ids.rs", BOTTOM),
    ("progress.rs", BOTTOM),
    ("retry.rs", BOTTOM),
    ("db", &["engine", "plan", "report", "steps"]),
    (
        "integrity",
        &["engine", "plan", "providers", "report", "steps"],
    ),
    ("providers", &["engine", "plan", "report", "steps"]),
    ("steps", &["engine", "plan", "report"]),
    ("config", &["engine", "plan", "report", "steps"]),
    ("plan", &["engine", "report"]),
];

/// From the lower rooms, `config` only for its file readers.
const CONFIG_READERS: &[&str] = &[
    "crate::config::toml_read",
    "crate::config::source",
    "crate::config::SourceFile",
];

/// Known crossings, each with why it stays (and where the README says so).
const EXCEPTIONS: &[(&str, &str)] = &[];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's code outside test modules and comments.
fn production_code(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            break;
        }
        // Comments become empty lines, so line numbers stay the file's.
        if !t.starts_with("//") {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

#[test]
fn no_room_imports_a_room_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut crossings = Vec::new();
    let mut checked = 0;
    for file in &files {
        let rel = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if rel.ends_with("_tests.rs") || rel.ends_with("/tests.rs") || rel.starts_with("cli/") {
            continue;
        }
        let room = rel.split('/').next().unwrap();
        let Some((_, forbidden)) = RULES.iter().find(|(r, _)| *r == room) else {
            continue;
        };
        checked += 1;
        let code = production_code(&std::fs::read_to_string(file).unwrap());
        for upper in *forbidden {
            let needle = format!("crate::{upper}");
            for (n, line) in code.lines().enumerate() {
                let found = line.match_indices(&needle).any(|(i, _)| {
                    let after = &line[i + needle.len()..];
                    let whole = !after.starts_with(|c: char| c.is_alphanumeric() || c == '_');
                    let reader = *upper == "config"
                        && CONFIG_READERS.iter().any(|r| line[i..].starts_with(r));
                    whole && !reader
                });
                let path = format!("src/{rel}");
                if found && !EXCEPTIONS.contains(&(path.as_str(), needle.as_str())) {
                    crossings.push(format!("{path}:{}: {} imports {needle}", n + 1, room));
                }
            }
        }
    }
    assert!(
        checked > 80,
        "only {checked} files checked: is the layout different?"
    );
    assert!(
        crossings.is_empty(),
        "imports that point up:\n{}",
        crossings.join("\n")
    );
}

#[test]
fn the_scan_keeps_code_and_line_numbers_and_drops_comments_and_tests() {
    let code = production_code(
        "use crate::engine::run;\n// use crate::plan;\n#[cfg(test)]\nuse crate::report;\n",
    );
    assert_eq!(code, "use crate::engine::run;\n\n");
}
