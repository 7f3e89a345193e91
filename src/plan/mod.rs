//! Plans: a runbook resolved against an environment and params, validated as a DAG,
//! with a hash. `cutover plan` and `cutover run` build the plan with the same code; a
//! run is pinned to its plan's hash.
//!
//! Validation reports every problem at once, each with `file:line:column`: unknown step
//! kinds, unknown or missing inputs, literals of the wrong type, references to params,
//! environment values or step outputs that do not exist (or to steps that are not
//! upstream), duplicate ids, unknown `needs`, and cycles (with the cycle spelled out).

pub mod iam;
pub mod render;
#[cfg(test)]
mod scale_tests;
pub mod synthetic;
mod validate;

use crate::config::expr::Condition;
use crate::config::source::Location;
use crate::config::{Environment, Problems, Runbook};
use crate::ids::StepId;
use crate::retry::RetryPolicy;
use crate::steps::StepKind;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use validate::parse_param_value;

/// A step ready to run: kind resolved, inputs checked (references resolved at run time).
#[derive(Clone, Debug)]
pub struct PlannedStep {
    pub id: StepId,
    pub kind: &'static StepKind,
    pub description: Option<String>,
    pub needs: Vec<StepId>,
    /// Inputs as written (strings may hold `${{ … }}` references).
    pub inputs: serde_json::Map<String, Value>,
    pub retry: RetryPolicy,
    pub timeout: Option<Duration>,
    pub when: Option<Condition>,
    pub compensate: Option<PlannedCompensation>,
    pub location: Location,
}

/// A runbook-declared compensation: another step kind run when the run fails.
#[derive(Clone, Debug)]
pub struct PlannedCompensation {
    pub kind: &'static StepKind,
    pub inputs: serde_json::Map<String, Value>,
}

/// A validated plan.
#[derive(Clone, Debug)]
pub struct Plan {
    pub name: String,
    pub runbook_path: PathBuf,
    pub environment: Arc<Environment>,
    pub params: BTreeMap<String, Value>,
    /// Topological order; ties keep the runbook's order.
    pub steps: Vec<PlannedStep>,
    pub concurrency: usize,
    pub deadline: Option<Duration>,
    /// SHA-256 of the canonical plan: runbook steps, params and environment.
    pub hash: String,
    /// Where each step id is in `steps`, built on the first [`Plan::step`] (empty,
    /// `Default::default()`, when a plan is built).
    pub(crate) step_index: std::sync::OnceLock<std::collections::HashMap<StepId, usize>>,
}

/// Default number of steps running at once.
pub const DEFAULT_CONCURRENCY: usize = 4;

impl Plan {
    /// Validates `runbook` against `environment` with `--set` overrides, reporting
    /// every problem at once.
    pub fn build(
        runbook: &Runbook,
        environment: Arc<Environment>,
        sets: &[(String, String)],
    ) -> Result<Plan, Problems> {
        validate::build(runbook, environment, sets)
    }

    /// The step `id`, found through an index of the steps (a resume looks up every
    /// finished step: 5,000 linear searches were most of resuming a 10,000-event
    /// journal). An index entry is checked against the step it points at, so a plan
    /// whose `steps` changed after the first lookup is still searched correctly.
    pub fn step(&self, id: &StepId) -> Option<&PlannedStep> {
        let index = self.step_index.get_or_init(|| {
            self.steps
                .iter()
                .enumerate()
                .map(|(i, s)| (s.id.clone(), i))
                .collect()
        });
        match index.get(id).and_then(|&i| self.steps.get(i)) {
            Some(step) if &step.id == id => Some(step),
            _ => self.steps.iter().find(|s| &s.id == id),
        }
    }

    /// Every step that `id` depends on, directly or not.
    pub fn ancestors(&self, id: &StepId) -> std::collections::BTreeSet<StepId> {
        let mut out = std::collections::BTreeSet::new();
        let mut stack = vec![id.clone()];
        while let Some(current) = stack.pop() {
            if let Some(step) = self.step(&current) {
                for need in &step.needs {
                    if out.insert(need.clone()) {
                        stack.push(need.clone());
                    }
                }
            }
        }
        out
    }

    /// Steps grouped by depth (longest chain of `needs` before them): what may run in
    /// parallel.
    pub fn levels(&self) -> Vec<Vec<StepId>> {
        let mut depth: BTreeMap<&StepId, usize> = BTreeMap::new();
        for step in &self.steps {
            let d = step
                .needs
                .iter()
                .map(|n| depth.get(n).map_or(0, |d| d + 1))
                .max()
                .unwrap_or(0);
            depth.insert(&step.id, d);
        }
        let max = depth.values().copied().max().unwrap_or(0);
        let mut levels = vec![Vec::new(); if self.steps.is_empty() { 0 } else { max + 1 }];
        for step in &self.steps {
            levels[depth[&step.id]].push(step.id.clone());
        }
        levels
    }
}
