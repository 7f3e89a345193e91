//! Planning at scale: 10,000-step runbooks of every shape plan (the upstream check once
//! per reference, the order stable), and an output taken from a step that is not
//! upstream is still found among 10,000. Timings live in `bench/engine.rs`, not here.

use super::synthetic::{runbook, Body, Shape};
use super::Plan;
use crate::config::{Environment, Runbook, SourceFile};
use std::sync::Arc;

const N: usize = 10_000;

fn environment() -> Arc<Environment> {
    let source = SourceFile::new("env.toml", "name = \"t\"\nprovider = \"local\"\n");
    Arc::new(Environment::parse(source).expect("valid environment"))
}

fn plan(text: String) -> Result<Plan, crate::config::Problems> {
    let book = Runbook::parse(SourceFile::new("book.toml", text)).expect("valid shape");
    Plan::build(&book, environment(), &[])
}

#[test]
fn ten_thousand_steps_of_every_shape_plan_in_dependency_order() {
    for shape in Shape::ALL {
        let plan = plan(runbook(shape, N, Body::ReferencesNeeds))
            .unwrap_or_else(|p| panic!("{shape:?}: {p}"));
        assert_eq!(plan.steps.len(), N, "{shape:?}");
        let mut position = std::collections::HashMap::new();
        for (i, step) in plan.steps.iter().enumerate() {
            for need in &step.needs {
                assert!(
                    position.contains_key(need),
                    "{shape:?}: {} comes before its need {need}",
                    step.id
                );
            }
            position.insert(step.id.clone(), i);
        }
        // Ties keep the runbook's order: every generated runbook is already ordered.
        let ids: Vec<String> = plan.steps.iter().map(|s| s.id.to_string()).collect();
        let expected: Vec<String> = (0..N).map(|i| format!("s{i}")).collect();
        assert_eq!(ids, expected, "{shape:?}");
    }
}

#[test]
fn ties_in_the_topological_order_keep_the_runbook_order() {
    // c is written first but needs b; a and b are free: a, b, c … then d after c.
    let text = "name = \"t\"\n\
        [[step]]\nid = \"c\"\nuses = \"util.wait\"\nneeds = [\"b\"]\nwith = { duration = \"0s\" }\n\
        [[step]]\nid = \"a\"\nuses = \"util.wait\"\nwith = { duration = \"0s\" }\n\
        [[step]]\nid = \"d\"\nuses = \"util.wait\"\nneeds = [\"c\"]\nwith = { duration = \"0s\" }\n\
        [[step]]\nid = \"b\"\nuses = \"util.wait\"\nwith = { duration = \"0s\" }\n";
    let plan = plan(text.to_string()).expect("valid");
    let ids: Vec<String> = plan.steps.iter().map(|s| s.id.to_string()).collect();
    assert_eq!(ids, ["a", "b", "c", "d"]);
}

#[test]
fn an_output_from_a_sibling_is_refused_among_ten_thousand_steps() {
    // In a fan-out every step needs only s0: s9999 may not read s5000's outputs.
    let mut text = runbook(Shape::FanOut, N, Body::ReferencesNeeds);
    text.push_str(
        "\n[[step]]\nid = \"late\"\nuses = \"util.shell\"\nneeds = [\"s9999\"]\n\
         with = { run = \"echo ${{ steps.s5000.outputs.x }} ${{ steps.s0.outputs.x }}\" }\n",
    );
    let problems = plan(text).expect_err("s5000 is not upstream of late");
    assert_eq!(problems.len(), 1, "{problems}");
    assert!(
        problems.0[0]
            .message
            .contains("step `late` uses outputs of `s5000`, which is not upstream of it"),
        "{problems}"
    );
}

#[test]
fn a_chain_reaches_back_to_its_first_step() {
    let mut text = runbook(Shape::Chain, N, Body::ReferencesNeeds);
    text.push_str(
        "\n[[step]]\nid = \"end\"\nuses = \"util.shell\"\nneeds = [\"s9999\"]\n\
         with = { run = \"echo ${{ steps.s0.outputs.x }}\" }\n",
    );
    plan(text).unwrap_or_else(|p| panic!("{p}"));
}

#[test]
fn a_compensation_may_read_its_own_step_but_not_a_later_one() {
    let text = "name = \"t\"\n\
        [[step]]\nid = \"a\"\nuses = \"util.shell\"\nwith = { run = \"true\" }\n\
        compensate = { uses = \"util.shell\", with = { run = \"echo ${{ steps.a.outputs.x }} ${{ steps.b.outputs.x }}\" } }\n\
        [[step]]\nid = \"b\"\nuses = \"util.shell\"\nneeds = [\"a\"]\nwith = { run = \"true\" }\n";
    let problems = plan(text.to_string()).expect_err("b is downstream of a");
    assert_eq!(problems.len(), 1, "{problems}");
    assert!(
        problems.0[0]
            .message
            .contains("step `a` uses outputs of `b`, which is not upstream of it"),
        "{problems}"
    );
}

#[test]
fn a_cycle_of_ten_thousand_steps_is_spelled_out_once() {
    let mut text = runbook(Shape::Chain, N, Body::NoOp);
    // Close the chain: s0 needs the last step.
    text = text.replacen(
        "id = \"s0\"\n",
        &format!("id = \"s0\"\nneeds = [\"s{}\"]\n", N - 1),
        1,
    );
    let problems = plan(text).expect_err("a cycle");
    assert_eq!(problems.len(), 1, "{problems}");
    let message = &problems.0[0].message;
    assert!(
        message.starts_with("cycle in needs: s0 → s1 → s2"),
        "{}",
        &message[..80]
    );
    assert!(
        message.ends_with(&format!("s{} → s0", N - 1)),
        "…{}",
        &message[message.len() - 40..]
    );
    assert_eq!(message.matches(" → ").count(), N);
}
