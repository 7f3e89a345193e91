//! Validation: malformed runbooks and environments, each with the exact message and the
//! exact `file:line:column` it is reported at; and proof that nothing runs (exit 2, no
//! state written) when validation fails.

use cutover::config::{Environment, Problems, Runbook, SourceFile};
use cutover::plan::Plan;
use std::sync::Arc;

const ENV: &str = r#"name = "t"
provider = "local"
state_dir = "/nonexistent/never-created"
[vars]
region = "af-south-1"
[databases.ledger]
engine = "arcadedb"
"#;

const HEADER: &str = "name = \"book\"\n";

struct Case {
    name: &'static str,
    runbook: String,
    env: Option<&'static str>,
    /// The message must contain this.
    message: &'static str,
    /// The problem is located at the first occurrence of this text (`None`: unlocated).
    at: Option<&'static str>,
    /// Offset inside `at` (e.g. to point past a quote).
    at_offset: usize,
}

fn case(
    name: &'static str,
    runbook: &str,
    message: &'static str,
    at: Option<&'static str>,
) -> Case {
    Case {
        name,
        runbook: runbook.to_string(),
        env: None,
        message,
        at,
        at_offset: 0,
    }
}

fn with_header(body: &str) -> String {
    format!("{HEADER}{body}")
}

fn problems(c: &Case) -> (Problems, SourceFile) {
    let book_src = SourceFile::new("book.toml", c.runbook.clone());
    let env_src = SourceFile::new("env.toml", c.env.unwrap_or(ENV));
    let env = Environment::parse(env_src.clone());
    let book = Runbook::parse(book_src.clone());
    match (book, env) {
        (Ok(book), Ok(env)) => match Plan::build(
            &book,
            Arc::new(env),
            &[("count".into(), "1".into())]
                .into_iter()
                .filter(|_| c.runbook.contains("params.count"))
                .collect::<Vec<_>>(),
        ) {
            Ok(_) => panic!("case `{}` validated but should not have", c.name),
            Err(p) => (p, book_src),
        },
        (Err(p), _) => (p, book_src),
        (_, Err(p)) => (p, env_src),
    }
}

fn cases() -> Vec<Case> {
    let mut v = vec![
        Case { name: "invalid TOML", runbook: "name = \"x\"\n[[step]\n".into(), env: None, message: "invalid TOML", at: Some("[[step]"), at_offset: 6 },
        case("missing name", "[[step]]\nid = \"a\"\nuses = \"util.wait\"\nwith = { duration = \"1s\" }\n", "the runbook is missing required key `name`", Some("[[step]]")),
        case("unknown top-level key", &with_header("stepz = 1\n[[step]]\nid = \"a\"\nuses = \"util.wait\"\nwith = { duration = \"1s\" }\n"), "unknown key `stepz` in the runbook", Some("stepz")),
        case("no steps", HEADER, "the runbook has no steps", Some("name")),
        case("step without id", &with_header("[[step]]\nuses = \"util.wait\"\n"), "a step is missing required key `id`", Some("uses")),
        case("step without uses", &with_header("[[step]]\nid = \"a\"\n"), "step `a` is missing required key `uses`", Some("id")),
        case("misspelt step key", &with_header("[[step]]\nid = \"a\"\nuses = \"util.wait\"\nneed = []\nwith = { duration = \"1s\" }\n"), "unknown key `need` in step `a`", Some("need ")),
        case("unknown kind", &with_header("[[step]]\nid = \"a\"\nuses = \"util.shel\"\nwith = { run = \"true\" }\n"), "unknown step kind `util.shel`", Some("\"util.shel\"")),
        case("duplicate id", &with_header("[[step]]\nid = \"a\"\nuses = \"util.wait\"\nwith = { duration = \"1s\" }\n[[step]]\nid = \"a\" # again\nuses = \"util.wait\"\nwith = { duration = \"1s\" }\n"), "duplicate step id `a` (first defined on line 3)", Some("\"a\" # again")),
        case("needs unknown step", &with_header("[[step]]\nid = \"a\"\nuses = \"util.wait\"\nneeds = [\"nope\"]\nwith = { duration = \"1s\" }\n"), "step `a` needs unknown step `nope`", Some("\"nope\"")),
        case("needs itself", &with_header("[[step]]\nid = \"a\"\nuses = \"util.wait\"\nneeds = [\"a\"]\nwith = { duration = \"1s\" }\n"), "step `a` needs itself", Some("\"a\"]")),
        case("cycle", &with_header("[[step]]\nid = \"a\"\nuses = \"util.wait\"\nneeds = [\"c\"]\nwith = { duration = \"1s\" }\n[[step]]\nid = \"b\"\nuses = \"util.wait\"\nneeds = [\"a\"]\nwith = { duration = \"1s\" }\n[[step]]\nid = \"c\"\nuses = \"util.wait\"\nneeds = [\"b\"]\nwith = { duration = \"1s\" }\n"), "cycle in needs: a → b → c → a", Some("\"a\"")),
        case("unknown input", &with_header("[[step]]\nid = \"a\"\nuses = \"util.wait\"\nwith = { durration = \"1s\" }\n"), "step `a`: `util.wait` has no input `durration`", Some("durration")),
        case("missing required input", &with_header("[[step]]\nid = \"a\"\nuses = \"util.wait\"\n"), "step `a`: `util.wait` needs input `duration`", Some("\"a\"")),
        case("input of the wrong type", &with_header("[[step]]\nid = \"a\"\nuses = \"util.wait\"\nwith = { duration = 5 }\n"), "step `a`: input `duration` must be a duration like \"30s\"", Some("5 }")),
        case("invalid duration literal", &with_header("[[step]]\nid = \"a\"\nuses = \"util.wait\"\ntimeout = \"5 minutes\"\nwith = { duration = \"1s\" }\n"), "`timeout` in step `a`: unknown unit `minutes`", Some("\"5 minutes\"")),
        case("unknown param", &with_header("[[step]]\nid = \"a\"\nuses = \"util.wait\"\nwith = { duration = \"${{ params.delay }}\" }\n"), "step `a` refers to unknown param `delay`", Some("\"${{")),
        case("output of a step that is not upstream", &with_header("[[step]]\nid = \"a\"\nuses = \"util.shell\"\nwith = { run = \"true\" }\n[[step]]\nid = \"b\"\nuses = \"util.shell\"\nwith = { run = \"echo ${{ steps.a.outputs.x }}\" }\n"), "step `b` uses outputs of `a`, which is not upstream of it", Some("\"echo")),
        case("outputs of an unknown step", &with_header("[[step]]\nid = \"a\"\nuses = \"util.shell\"\nwith = { run = \"echo ${{ steps.zz.outputs.x }}\" }\n"), "step `a` refers to outputs of unknown step `zz`", Some("\"echo")),
        case("unknown environment value", &with_header("[[step]]\nid = \"a\"\nuses = \"util.shell\"\nwith = { run = \"echo ${{ env.vars.zone }}\" }\n"), "step `a` refers to `env.vars.zone`, which env.toml does not define", Some("\"echo")),
        case("malformed reference", &with_header("[[step]]\nid = \"a\"\nuses = \"util.shell\"\nwith = { run = \"echo ${{ step.a.outputs.x }}\" }\n"), "`step.a.outputs.x` does not start with params., env., steps. or run.", Some("\"echo")),
        case("unclosed reference", &with_header("[[step]]\nid = \"a\"\nuses = \"util.shell\"\nwith = { run = \"echo ${{ params.x\" }\n"), "unclosed `${{`", Some("\"echo")),
        case("bad when", &with_header("[[step]]\nid = \"a\"\nuses = \"util.wait\"\nwhen = \"params.x ==\"\nwith = { duration = \"1s\" }\n"), "`when` of step `a`: condition ends too early", Some("\"params.x ==\"")),
        case("zero attempts", &with_header("[[step]]\nid = \"a\"\nuses = \"util.wait\"\nretry = { attempts = 0 }\nwith = { duration = \"1s\" }\n"), "`attempts` in `retry` of step `a` must be at least 1", Some("0 }")),
        case("misspelt retry key", &with_header("[[step]]\nid = \"a\"\nuses = \"util.wait\"\nretry = { attempt = 2 }\nwith = { duration = \"1s\" }\n"), "unknown key `attempt` in `retry` of step `a`", Some("attempt =")),
        case("timeout not a string", &with_header("[[step]]\nid = \"a\"\nuses = \"util.wait\"\ntimeout = 30\nwith = { duration = \"1s\" }\n"), "`timeout` in step `a` must be a duration string", Some("30")),
        case("unknown param type", &with_header("[params.n]\ntype = \"number\"\n[[step]]\nid = \"a\"\nuses = \"util.wait\"\nwith = { duration = \"1s\" }\n"), "param `n` has unknown type `number`", Some("\"number\"")),
        case("param without default not set", &with_header("[params.target]\ntype = \"string\"\n[[step]]\nid = \"a\"\nuses = \"util.wait\"\nwith = { duration = \"1s\" }\n"), "param `target` has no default and was not set", Some("target]")),
        case("param default of the wrong type", &with_header("[params.n]\ntype = \"integer\"\ndefault = \"three\"\n[[step]]\nid = \"a\"\nuses = \"util.wait\"\nwith = { duration = \"1s\" }\n"), "default of param `n` is not a valid integer", Some("\"three\"")),
        case("zero concurrency", &with_header("concurrency = 0\n[[step]]\nid = \"a\"\nuses = \"util.wait\"\nwith = { duration = \"1s\" }\n"), "`concurrency` must be at least 1", Some("0\n")),
        case("invalid step id", &with_header("[[step]]\nid = \"9 lives\"\nuses = \"util.wait\"\nwith = { duration = \"1s\" }\n"), "step id `9 lives` is not valid", Some("\"9 lives\"")),
        case("needs not a list", &with_header("[[step]]\nid = \"a\"\nuses = \"util.wait\"\nneeds = \"b\"\nwith = { duration = \"1s\" }\n"), "`needs` in step `a` must be a list of strings, found a string", Some("\"b\"")),
        case("condition on a missing output", &with_header("[[step]]\nid = \"a\"\nuses = \"util.wait\"\nwith = { duration = \"1s\" }\n[[step]]\nid = \"b\"\nuses = \"util.assert\"\nneeds = [\"a\"]\nwith = { that = \"steps.a.outputs.n == 1\" }\n"), "step `b` refers to output `n` of `a`, but `util.wait` has no such output", Some("\"steps.a")),
        case("unknown compensation kind", &with_header("[[step]]\nid = \"a\"\nuses = \"util.wait\"\nwith = { duration = \"1s\" }\ncompensate = { uses = \"util.undo\" }\n"), "unknown step kind `util.undo`", Some("\"util.undo\"")),
        case("param type mismatch with input", &with_header("[params.n]\ntype = \"integer\"\ndefault = 3\n[[step]]\nid = \"a\"\nuses = \"util.wait\"\nwith = { duration = \"${{ params.n }}\" }\n"), "step `a`: input `duration` must be a duration like \"30s\", but param `n` is an integer", Some("\"${{")),
    ];
    let env_cases = [
        ("environment: unknown provider", "name = \"t\"\nprovider = \"gcp\"\n", "unknown provider `gcp`", "\"gcp\""),
        ("environment: unknown engine", "name = \"t\"\nprovider = \"local\"\n[databases.ledger]\nengine = \"postgres\"\n", "database `ledger` has unknown engine `postgres`", "\"postgres\""),
        ("environment: unknown key", "name = \"t\"\nprovider = \"local\"\nregoin = \"x\"\n", "unknown key `regoin` in the environment", "regoin"),
        ("environment: unknown edition", "name = \"t\"\nprovider = \"local\"\n[databases.ledger]\nengine = \"neo4j\"\nedition = \"pro\"\n", "database `ledger` has unknown edition `pro`", "\"pro\""),
        ("environment: aws without settings", "name = \"t\"\nprovider = \"aws\"\n", "provider is `aws` but there is no [aws] section", "name"),
        ("environment: aws key misspelled", "name = \"t\"\nprovider = \"aws\"\n[aws]\nregion = \"af-south-1\"\nbucket = \"b\"\nsubnet = \"subnet-1\"\n", "unknown key `subnet` in [aws]", "subnet ="),
        ("environment: aws without bucket", "name = \"t\"\nprovider = \"aws\"\n[aws]\nregion = \"af-south-1\"\n", "[aws] is missing required key `bucket`", "[aws]"),
        ("environment: aws security groups not a list", "name = \"t\"\nprovider = \"aws\"\n[aws]\nregion = \"r\"\nbucket = \"b\"\nsecurity_group_ids = \"sg-1\"\n", "`security_group_ids` in [aws] must be a list of strings, found a string", "\"sg-1\""),
        ("environment: aws unencrypted volume", "name = \"t\"\nprovider = \"aws\"\n[aws]\nregion = \"r\"\nbucket = \"b\"\n[databases.ledger]\nengine = \"neo4j\"\ninstance = { type = \"r5.large\", encrypted = false }\n", "database `ledger` instance: encrypted must be true", "false"),
        ("environment: traffic service without cluster", "name = \"t\"\nprovider = \"local\"\n[traffic]\nsecret = \"s\"\necs_service = \"svc\"\n", "[traffic] has ecs_service but no ecs_cluster", "\"svc\""),
        ("environment: aws heap", "name = \"t\"\nprovider = \"aws\"\n[aws]\nregion = \"r\"\nbucket = \"b\"\n[databases.ledger]\nengine = \"neo4j\"\nheap = \"1g\"\n", "database `ledger`: `heap` is a local-provider setting", "heap ="),
    ];
    for (name, env, message, at) in env_cases {
        v.push(Case {
            name,
            runbook: with_header(
                "[[step]]\nid = \"a\"\nuses = \"util.wait\"\nwith = { duration = \"1s\" }\n",
            ),
            env: Some(env),
            message,
            at: Some(at),
            at_offset: 0,
        });
    }
    v
}

#[test]
fn every_malformed_input_is_reported_with_its_exact_message_and_location() {
    let cases = cases();
    assert!(cases.len() >= 25, "the table keeps at least 25 cases");
    let mut failures = Vec::new();
    for c in &cases {
        let (problems, source) = problems(c);
        let Some(p) = problems.0.iter().find(|p| p.message.contains(c.message)) else {
            failures.push(format!(
                "{}: no problem says {:?}; got:\n{problems}",
                c.name, c.message
            ));
            continue;
        };
        if let Some(at) = c.at {
            let offset = source
                .text
                .find(at)
                .unwrap_or_else(|| panic!("{}: marker {at:?} not in the text", c.name))
                + c.at_offset;
            let (line, column) = source.line_col(offset);
            let loc = p.location.as_ref().expect("located");
            if (loc.line, loc.column) != (line, column) || loc.file != source.path {
                failures.push(format!(
                    "{}: reported at {loc}, expected {}:{line}:{column}",
                    c.name,
                    source.path.display()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn all_problems_are_reported_at_once() {
    let text = with_header("[[step]]\nid = \"a\"\nuses = \"util.nope\"\n[[step]]\nid = \"b\"\nuses = \"util.wait\"\nneeds = [\"zz\"]\nwith = { duration = \"soon\" }\n");
    let c = Case {
        name: "many",
        runbook: text,
        env: None,
        message: "",
        at: None,
        at_offset: 0,
    };
    let (problems, _) = problems(&c);
    let text = problems.to_string();
    assert_eq!(problems.len(), 3, "{text}");
    assert!(
        text.starts_with("3 problems found; nothing was run:"),
        "{text}"
    );
    assert!(
        text.contains("book.toml:4:8: unknown step kind `util.nope`"),
        "{text}"
    );
    assert!(
        text.contains("book.toml:8:10: step `b` needs unknown step `zz`"),
        "{text}"
    );
    assert!(
        text.contains("book.toml:9:21: step `b`: input `duration` must be a duration"),
        "{text}"
    );
}

#[test]
fn the_cli_exits_2_and_writes_nothing_when_validation_fails() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::write(
        dir.path().join("env.toml"),
        format!(
            "name = \"t\"\nprovider = \"local\"\nstate_dir = \"{}\"\n",
            state.display()
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("book.toml"), with_header("[[step]]\nid = \"a\"\nuses = \"util.shell\"\nwith = { run = \"touch ran\", tmeout = 1 }\n")).unwrap();
    for command in ["plan", "run"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
            .current_dir(dir.path())
            .args(
                [command, "book.toml", "--env", "env.toml", "--yes"]
                    .iter()
                    .filter(|a| command == "run" || **a != "--yes"),
            )
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.contains("book.toml:5:29: step `a`: `util.shell` has no input `tmeout`"),
            "{command}: {stderr}"
        );
    }
    assert!(
        !state.exists(),
        "validation failure created the state directory"
    );
    assert!(!dir.path().join("ran").exists());
}
