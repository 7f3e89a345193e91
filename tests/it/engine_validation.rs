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
    v.extend(hostile_runbooks());
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
        ("environment: same_answers not a list", "name = \"t\"\nprovider = \"local\"\n[databases.ledger]\nengine = \"neo4j\"\nsame_answers = \"MATCH (n) RETURN n\"\n", "`same_answers` in database `ledger` must be a list of tables, found a string", "\"MATCH"),
        ("environment: same_answers without cypher", "name = \"t\"\nprovider = \"local\"\n[databases.ledger]\nengine = \"neo4j\"\n[[databases.ledger.same_answers]]\nname = \"today\"\n", "same_answers entry 1 of database `ledger` is missing required key `cypher`", "[[databases.ledger.same_answers]]"),
        ("environment: same_answers ordered not a boolean", "name = \"t\"\nprovider = \"local\"\n[databases.ledger]\nengine = \"neo4j\"\nsame_answers = [{ name = \"q\", cypher = \"RETURN 1\", ordered = \"yes\" }]\n", "`ordered` in same_answers entry 1 of database `ledger` must be true or false, found a string", "\"yes\""),
        ("environment: same_answers misspelt key", "name = \"t\"\nprovider = \"local\"\n[databases.ledger]\nengine = \"neo4j\"\nsame_answers = [{ name = \"q\", cypher = \"RETURN 1\", param = \"RETURN 1 AS x\" }]\n", "unknown key `param` in same_answers entry 1 of database `ledger`", "param ="),
        ("environment: same_answers name twice", "name = \"t\"\nprovider = \"local\"\n[databases.ledger]\nengine = \"neo4j\"\nsame_answers = [{ name = \"q\", cypher = \"RETURN 1\" }, { name = \"q\", cypher = \"RETURN 2\" }]\n", "`q` is listed twice in `same_answers`", "\"q\", cypher = \"RETURN 2"),
        ("environment: invariant without expect", "name = \"t\"\nprovider = \"local\"\n[databases.ledger]\nengine = \"neo4j\"\ninvariants = [{ name = \"one\", cypher = \"RETURN 1\" }]\n", "invariants entry 1 of database `ledger` is missing required key `expect`", "{ name = \"one\""),
        ("environment: traffic health_url not a URL", "name = \"t\"\nprovider = \"local\"\n[traffic]\nsecret = \"s\"\nhealth_url = \"app.internal/health\"\n", "[traffic] health_url `app.internal/health` is not an http:// or https:// URL", "\"app.internal"),
        // Read at load since identity keys, the neo4j table and heap are typed: each of
        // these was first noticed by a step at run time (an identity key by db.backup,
        // after blue was frozen).
        ("environment: identity key without a property", "name = \"t\"\nprovider = \"local\"\n[databases.ledger]\nengine = \"neo4j\"\nidentity_keys = [\"Member.memberID\", \"Account\"]\n", "identity key \"Account\" is not LABEL.PROPERTY", "\"Account\""),
        ("environment: online backup on community", "name = \"t\"\nprovider = \"local\"\n[databases.ledger]\nengine = \"neo4j\"\nneo4j = { backup = \"online\" }\n", "database `ledger` neo4j: backup = \"online\" needs edition = \"enterprise\"", "\"online\""),
        ("environment: neo4j table misspelt key", "name = \"t\"\nprovider = \"local\"\n[databases.ledger]\nengine = \"neo4j\"\nneo4j = { bakup_timeout = \"3h\" }\n", "unknown key `bakup_timeout` in database `ledger` neo4j", "bakup_timeout"),
        ("environment: neo4j timeout not a duration", "name = \"t\"\nprovider = \"local\"\n[databases.ledger]\nengine = \"neo4j\"\n[databases.ledger.neo4j]\nrestore_timeout = \"two hours\"\n", "`restore_timeout` in database `ledger` neo4j:", "\"two hours\""),
        ("environment: neo4j table on arcadedb", "name = \"t\"\nprovider = \"local\"\n[databases.ledger]\nengine = \"arcadedb\"\nneo4j = { backup = \"dump\" }\n", "database `ledger`: a `neo4j` table on an arcadedb database", "neo4j ="),
        ("environment: heap not a size", "name = \"t\"\nprovider = \"local\"\n[databases.ledger]\nengine = \"neo4j\"\nheap = \"lots\"\n", "database `ledger`: heap `lots` is not a size", "\"lots\""),
        ("environment: traffic keys not a table", "name = \"t\"\nprovider = \"local\"\n[traffic]\nsecret = \"s\"\nkeys = \"ledgerspace\"\n", "`keys` in [traffic] must be a table, found a string", "\"ledgerspace\""),
        ("environment: traffic key prefix not a string", "name = \"t\"\nprovider = \"local\"\n[traffic.keys]\nledger = 1\n", "`ledger` in [traffic.keys] must be a string, found an integer", "1\n"),
        ("environment: aws heap", "name = \"t\"\nprovider = \"aws\"\n[aws]\nregion = \"r\"\nbucket = \"b\"\n[databases.ledger]\nengine = \"neo4j\"\nheap = \"1g\"\n", "database `ledger`: `heap` is a local-provider setting", "heap ="),
    ];
    let env_cases = env_cases
        .into_iter()
        .chain(HOSTILE_ENVIRONMENTS.iter().copied());
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

/// Hostile runbooks: wrong types deep inside tables, enormous values, a cycle through a
/// `when`, 10,000 steps with one bad need. Each is refused with its exact location.
fn hostile_runbooks() -> Vec<Case> {
    const STEP: &str = "[[step]]\nid = \"a\"\nuses = \"util.wait\"\nwith = { duration = \"1s\" }\n";
    let wait = |extra: &str| {
        with_header(&format!(
            "[[step]]\nid = \"a\"\nuses = \"util.wait\"\n{extra}with = {{ duration = \"1s\" }}\n"
        ))
    };
    let shell = |with: &str| {
        with_header(&format!(
            "[[step]]\nid = \"a\"\nuses = \"util.shell\"\nwith = {with}\n"
        ))
    };
    let mut chain = cutover::plan::synthetic::runbook(
        cutover::plan::synthetic::Shape::Chain,
        10_000,
        cutover::plan::synthetic::Body::NoOp,
    );
    chain.push_str("\n[[step]]\nid = \"last\"\nuses = \"util.wait\"\nneeds = [\"s9999\", \"s10000\"]\nwith = { duration = \"0s\" }\n");
    vec![
        case("hostile: step id of the wrong type", &with_header("[[step]]\nid = 5\nuses = \"util.wait\"\n"), "`id` in a step must be a string", Some("5\n")),
        case("hostile: uses of the wrong type", &with_header("[[step]]\nid = \"a\"\nuses = [\"util.wait\"]\n"), "`uses` in step `a` must be a string", Some("[\"util")),
        case("hostile: a number among the needs", &wait("needs = [\"b\", 3]\n"), "`needs` in step `a` must contain only strings", Some("3]")),
        case("hostile: with is not a table", &with_header("[[step]]\nid = \"a\"\nuses = \"util.wait\"\nwith = \"1s\"\n"), "`with` in step `a` must be a table of inputs", Some("\"1s\"")),
        case("hostile: retry is a number", &wait("retry = 3\n"), "`retry` in step `a` must be a table", Some("3\n")),
        case("hostile: compensate is a string", &wait("compensate = \"undo\"\n"), "`compensate` in step `a` must be a table with `uses` and `with`", Some("\"undo\"")),
        case("hostile: compensate without uses", &wait("compensate = { with = { duration = \"1s\" } }\n"), "`compensate` of step `a` is missing required key `uses`", Some("{ with")),
        case("hostile: misspelt compensate key", &wait("compensate = { uses = \"util.wait\", whith = { duration = \"1s\" } }\n"), "unknown key `whith` in `compensate` of step `a`", Some("whith")),
        case("hostile: params is a number", &with_header(&format!("params = 3\n{STEP}")), "`params` must be a table of parameter definitions", Some("3\n")),
        case("hostile: a param that is not a table", &with_header(&format!("[params]\nn = 3\n{STEP}")), "param `n` must be a table", Some("n = 3")),
        case("hostile: param type of the wrong type", &with_header(&format!("[params.n]\ntype = 5\n{STEP}")), "`type` in param `n` must be a string", Some("5\n")),
        case("hostile: misspelt param key", &with_header(&format!("[params.n]\ntype = \"string\"\ndefualt = \"x\"\n{STEP}")), "unknown key `defualt` in param `n`", Some("defualt")),
        case("hostile: step is a string", &with_header("step = \"a\"\n"), "`step` must be an array of tables ([[step]])", Some("\"a\"")),
        case("hostile: a step that is a number", &with_header("step = [1]\n"), "each entry of `step` must be a table", Some("1]")),
        case("hostile: runbook name of the wrong type", &format!("name = 5\n{STEP}"), "`name` in the runbook must be a string", Some("5\n")),
        case("hostile: negative concurrency", &with_header(&format!("concurrency = -1\n{STEP}")), "`concurrency` in the runbook must be a non-negative integer", Some("-1")),
        case("hostile: enormous concurrency", &with_header(&format!("concurrency = 9223372036854775807\n{STEP}")), "`concurrency` must be at most 1024", Some("9223")),
        case("hostile: enormous timeout", &wait("timeout = \"99999999999d\"\n"), "`timeout` in step `a`: duration \"99999999999d\" is too large (at most 3650d)", Some("\"9999")),
        case("hostile: enormous run deadline", &with_header(&format!("deadline = \"5000000h\"\n{STEP}")), "`deadline` in the runbook: duration \"5000000h\" is too large", Some("\"5000000h")),
        case("hostile: attempts as an enormous float", &wait("retry = { attempts = 1e300 }\n"), "`attempts` in `retry` of step `a` must be a non-negative integer", Some("1e300")),
        case("hostile: deadline of the wrong type", &with_header(&format!("deadline = 5\n{STEP}")), "`deadline` in the runbook must be a duration string", Some("5\n")),
        case("hostile: a cycle through when", &with_header("[[step]]\nid = \"a\"\nuses = \"util.wait\"\nwhen = \"steps.b.outputs.x == 1\"\nwith = { duration = \"1s\" }\n[[step]]\nid = \"b\"\nuses = \"util.shell\"\nneeds = [\"a\"]\nwith = { run = \"true\" }\n"), "step `a` uses outputs of `b`, which is not upstream of it", Some("\"steps.b")),
        case("hostile: when on an unknown run field", &wait("when = \"run.nope == 1\"\n"), "step `a` refers to unknown `run.nope`", Some("\"run.nope")),
        case("hostile: a condition input that is a boolean", &with_header("[[step]]\nid = \"a\"\nuses = \"util.assert\"\nwith = { that = true }\n"), "step `a`: input `that` must be a condition string", Some("true")),
        case("hostile: a bad reference deep inside a table", &shell("{ run = \"true\", env = { A = { deep = [1, { x = \"${{ params.zz }}\" }] } } }"), "step `a` refers to unknown param `zz`", Some("{ A =")),
        case("hostile: a map input given a list", &shell("{ run = \"true\", env = [\"A=1\"] }"), "step `a`: input `env` must be", Some("[\"A=1")),
        case("hostile: a duplicate key", &with_header("[[step]]\nid = \"a\"\nid = \"b\"\nuses = \"util.wait\"\n"), "invalid TOML", Some("id = \"b")),
        Case { name: "hostile: 10,000 steps and one unknown need", runbook: chain, env: None, message: "step `last` needs unknown step `s10000`", at: Some("\"s10000\""), at_offset: 0 },
    ]
}

/// Hostile environments: wrong types inside database and instance tables, typos.
const HOSTILE_ENVIRONMENTS: &[(&str, &str, &str, &str)] = &[
    ("hostile environment: task-definition traffic on local", "name = \"t\"\nprovider = \"local\"\n[traffic]\nkind = \"ecs-environment\"\necs_cluster = \"c\"\necs_service = \"s\"\n", "[traffic] kind `ecs-environment` needs the aws provider", "\"ecs-environment\""),
    ("hostile environment: traffic names for a database that is not there", "name = \"t\"\nprovider = \"local\"\n[databases.ledger]\nengine = \"arcadedb\"\n[traffic.names.ledgre]\nurl = \"U\"\n", "[traffic.names] names `ledgre`, which is not one of the environment's databases", "[traffic.names.ledgre]"),
    ("hostile environment: traffic name not a string", "name = \"t\"\nprovider = \"local\"\n[databases.ledger]\nengine = \"arcadedb\"\n[traffic.names.ledger]\nurl = 7687\n", "`url` in [traffic.names.ledger] must be a string, found an integer", "7687"),
    ("hostile environment: databases is a number", "name = \"t\"\nprovider = \"local\"\ndatabases = 3\n", "`databases` must be a table", "3\n"),
    ("hostile environment: a database that is a string", "name = \"t\"\nprovider = \"local\"\n[databases]\nledger = \"neo4j\"\n", "database `ledger` must be a table", "ledger ="),
    ("hostile environment: engine of the wrong type", "name = \"t\"\nprovider = \"local\"\n[databases.ledger]\nengine = 5\n", "`engine` in database `ledger` must be a string", "5\n"),
    ("hostile environment: misspelt database key", "name = \"t\"\nprovider = \"local\"\n[databases.ledger]\nengine = \"neo4j\"\neditoin = \"community\"\n", "unknown key `editoin` in database `ledger`", "editoin"),
    ("hostile environment: an instance table with a typo", "name = \"t\"\nprovider = \"aws\"\n[aws]\nregion = \"r\"\nbucket = \"b\"\n[databases.ledger]\nengine = \"neo4j\"\ninstance = { type = \"r5.large\", volum_gb = 50 }\n", "unknown key `volum_gb` in database `ledger` instance", "volum_gb"),
    ("hostile environment: a local instance table with a typo", "name = \"t\"\nprovider = \"local\"\n[databases.ledger]\nengine = \"arcadedb\"\ninstance = { bolt_prot = 7687 }\n", "unknown key `bolt_prot` in database `ledger` instance", "bolt_prot"),
    ("hostile environment: a local port out of range", "name = \"t\"\nprovider = \"local\"\n[databases.ledger]\nengine = \"arcadedb\"\ninstance = { http_port = 70000 }\n", "database `ledger` instance: `http_port` 70000 is not a port number", "70000"),
    ("hostile environment: instance is a string", "name = \"t\"\nprovider = \"aws\"\n[aws]\nregion = \"r\"\nbucket = \"b\"\n[databases.ledger]\nengine = \"neo4j\"\ninstance = \"r5.large\"\n", "database `ledger`: `instance` must be a table", "\"r5.large\""),
    ("hostile environment: negative volume size", "name = \"t\"\nprovider = \"aws\"\n[aws]\nregion = \"r\"\nbucket = \"b\"\n[databases.ledger]\nengine = \"neo4j\"\ninstance = { volume_gb = -5 }\n", "`volume_gb` in database `ledger` instance must be a non-negative integer", "-5"),
    ("hostile environment: vars is a number", "name = \"t\"\nprovider = \"local\"\nvars = 1\n", "`vars` must be a table", "1\n"),
    ("hostile environment: unsupported traffic kind", "name = \"t\"\nprovider = \"local\"\n[traffic]\nkind = \"dns\"\n", "[traffic] kind `dns` is not supported", "\"dns\""),
    ("hostile environment: name of the wrong type", "name = 5\nprovider = \"local\"\n", "`name` in the environment must be a string", "5\n"),
    ("hostile environment: no provider", "name = \"t\"\n", "the environment is missing required key `provider`", "name"),
    ("hostile environment: state_dir of the wrong type", "name = \"t\"\nprovider = \"local\"\nstate_dir = 5\n", "`state_dir` in the environment must be a string", "5\n"),
];

#[test]
fn a_file_that_is_not_utf8_is_refused_at_its_first_bad_byte_and_nothing_runs() {
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
    let mut book = with_header("[[step]]\nid = \"a\"\nuses = \"util.shell\"\n").into_bytes();
    book.extend_from_slice(b"description = \"caf\xe9\"\nwith = { run = \"touch ran\" }\n");
    std::fs::write(dir.path().join("book.toml"), &book).unwrap();
    let problems = Runbook::load(&dir.path().join("book.toml")).unwrap_err();
    let text = problems.to_string();
    assert!(text.contains("book.toml:5:19: "), "{text}");
    assert!(
        text.contains("is not valid UTF-8 text (byte 0xe9)"),
        "{text}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .current_dir(dir.path())
        .args(["run", "book.toml", "--env", "env.toml", "--yes"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("book.toml:5:19: "), "{stderr}");
    assert!(
        !state.exists(),
        "validation failure created the state directory"
    );
    assert!(!dir.path().join("ran").exists());
}

#[test]
fn every_malformed_input_is_reported_with_its_exact_message_and_location() {
    let cases = cases();
    assert!(cases.len() >= 25, "the table keeps at least 25 cases");
    let hostile = cases
        .iter()
        .filter(|c| c.name.starts_with("hostile"))
        .count();
    assert!(hostile >= 25, "at least 25 hostile inputs, found {hostile}");
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

#[test]
fn every_hostile_input_exits_2_through_the_cli_and_leaves_nothing_behind() {
    let mut tried = 0;
    for c in cases().iter().filter(|c| c.name.starts_with("hostile")) {
        let dir = tempfile::tempdir().unwrap();
        let env = c.env.map_or_else(
            || "name = \"t\"\nprovider = \"local\"\nstate_dir = \"state\"\n".to_string(),
            str::to_string,
        );
        std::fs::write(dir.path().join("env.toml"), env).unwrap();
        std::fs::write(dir.path().join("book.toml"), &c.runbook).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
            .current_dir(dir.path())
            .args(["run", "book.toml", "--env", "env.toml", "--yes"])
            .env_remove("CUTOVER_STATE_DIR")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", c.name);
        assert!(stderr.contains(c.message), "{}: {stderr}", c.name);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["book.toml", "env.toml"], "{}: {stderr}", c.name);
        tried += 1;
    }
    assert!(tried >= 25, "{tried}");
}

/// `cutover report --measure`: a bad figure is refused with what is wrong and what exists,
/// and records nothing; good ones are kept with the run and shown by every later report.
#[test]
fn report_measures_are_checked_then_kept_with_the_run() {
    use crate::engine_cli::{run_args, text, Workspace};
    let ws = Workspace::new(
        "name = \"book\"\n[[step]]\nid = \"a\"\nuses = \"util.shell\"\nwith = { run = \"true\" }\n",
    );
    let ran = ws.run(&run_args("measured"));
    assert_eq!(ran.status.code(), Some(0), "{}", text(&ran));
    let measures = ws.state().join("runs/measured/measures.json");
    let report = |extra: &[&str]| {
        let mut args = vec![
            "report", "measured", "--env", "env.toml", "--output", "json",
        ];
        args.extend_from_slice(extra);
        ws.run(&args)
    };
    let before = report(&[]);
    let json: serde_json::Value = serde_json::from_slice(&before.stdout).unwrap();
    assert!(json["writes_acknowledged"].is_null());
    assert!(
        json["writes_note"]
            .as_str()
            .unwrap()
            .contains("no load generator"),
        "{json}"
    );

    let bad_cases: [&[&str]; 3] = [
        &["--measure", "writes=3"],
        &["--measure", "writes_lost=-1"],
        &[
            "--measure",
            "writes_acknowledged=3",
            "--measure",
            "writes_lost=5",
        ],
    ];
    for bad in bad_cases {
        let out = report(bad);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", text(&out));
        assert!(stderr.contains("nothing was recorded"), "{stderr}");
        assert!(!measures.exists(), "{bad:?} recorded something");
    }
    let out = report(&[
        "--measure",
        "writes_acknowledged=7",
        "--measure",
        "writes_lost=0",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // A later plain report (and the Markdown file) still carries them.
    let later: serde_json::Value = serde_json::from_slice(&report(&[]).stdout).unwrap();
    assert_eq!(
        (
            later["writes_acknowledged"].as_u64(),
            later["writes_lost"].as_u64()
        ),
        (Some(7), Some(0))
    );
    assert!(later.get("writes_note").is_none(), "{later}");
    let md = std::fs::read_to_string(ws.state().join("runs/measured/report.md")).unwrap();
    assert!(md.contains("| Writes acknowledged | 7 |"), "{md}");
}
