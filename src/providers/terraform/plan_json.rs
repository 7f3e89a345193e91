//! Reading what `terraform show -json PLAN` and `terraform output -json` say: the
//! summary of a plan (add / change / destroy / replace), the resources a plan would
//! destroy that the environment protects, and outputs with sensitive values redacted.
//!
//! Both documents may carry sensitive values: they are parsed in memory and never
//! written anywhere; only the summaries and the redacted outputs leave this module.

use crate::failure::Failure;
use serde::Deserialize;

/// What replaces a sensitive output's value in step outputs, journal and report.
pub const REDACTED: &str = "[redacted]";

/// One resource the plan touches, by address and action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceChange {
    pub address: String,
    pub resource_type: String,
    /// `create`, `update`, `delete`, `replace`, `read`, `no-op`.
    pub action: &'static str,
}

impl ResourceChange {
    pub fn destroys(&self) -> bool {
        matches!(self.action, "delete" | "replace")
    }
}

/// The plan, counted the way `terraform plan` prints it (a replace counts once in
/// add and once in destroy) plus the list of changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanSummary {
    pub add: u64,
    pub change: u64,
    pub destroy: u64,
    pub replace: u64,
    /// Outputs whose value changes (a plan with only these still needs an apply).
    pub output_changes: u64,
    pub changes: Vec<ResourceChange>,
}

impl PlanSummary {
    pub fn is_empty(&self) -> bool {
        self.add == 0 && self.change == 0 && self.destroy == 0 && self.output_changes == 0
    }

    /// `2 to add, 0 to change, 1 to destroy (1 replaced)`.
    pub fn line(&self) -> String {
        let mut line = format!(
            "{} to add, {} to change, {} to destroy",
            self.add, self.change, self.destroy
        );
        if self.replace > 0 {
            line.push_str(&format!(" ({} replaced)", self.replace));
        }
        if self.output_changes > 0 && self.add + self.change + self.destroy == 0 {
            line.push_str(&format!(", {} output(s) change", self.output_changes));
        }
        line
    }

    /// Destroyed or replaced resources matching a protected entry that is not allowed.
    /// An entry is a resource type (`aws_ebs_volume`) or an address, optionally a prefix
    /// of module path and resource (`module.db.aws_s3_bucket.backups`); instance keys
    /// (`[0]`, `["a"]`) are ignored when matching.
    pub fn protected_destroys(&self, protect: &[String], allow: &[String]) -> Vec<ResourceChange> {
        self.changes
            .iter()
            .filter(|c| c.destroys())
            .filter(|c| protect.iter().any(|p| matches_entry(c, p)))
            .filter(|c| !allow.iter().any(|a| matches_entry(c, a)))
            .cloned()
            .collect()
    }
}

/// The address without instance keys: `module.a["x"].t.n[0]` → `module.a.t.n`.
fn without_keys(address: &str) -> String {
    let mut out = String::with_capacity(address.len());
    let mut depth = 0usize;
    let mut quoted = false;
    for ch in address.chars() {
        match ch {
            '"' if depth > 0 => quoted = !quoted,
            '[' if !quoted => depth += 1,
            ']' if !quoted && depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(ch),
            _ => {}
        }
    }
    out
}

fn matches_entry(change: &ResourceChange, entry: &str) -> bool {
    let entry = entry.trim();
    if entry == change.resource_type || entry == change.address {
        return true;
    }
    let bare = without_keys(&change.address);
    bare == without_keys(entry) || bare.starts_with(&format!("{}.", without_keys(entry)))
}

#[derive(Deserialize)]
struct PlanJson {
    #[serde(default)]
    resource_changes: Vec<RawChange>,
    #[serde(default)]
    output_changes: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct RawChange {
    address: String,
    #[serde(rename = "type")]
    resource_type: String,
    #[serde(default)]
    mode: String,
    change: RawActions,
}

#[derive(Deserialize)]
struct RawActions {
    actions: Vec<String>,
}

/// Parses `terraform show -json PLANFILE`.
pub fn summarize(plan_json: &[u8]) -> Result<PlanSummary, Failure> {
    let plan: PlanJson = serde_json::from_slice(plan_json).map_err(|e| {
        Failure::permanent(format!(
            "cannot read the JSON form of the plan (terraform show -json): {e}"
        ))
    })?;
    let mut s = PlanSummary::default();
    for rc in plan.resource_changes {
        if rc.mode == "data" {
            continue;
        }
        let actions: Vec<&str> = rc.change.actions.iter().map(String::as_str).collect();
        let action = match actions.as_slice() {
            ["create"] => "create",
            ["update"] => "update",
            ["delete"] => "delete",
            ["delete", "create"] | ["create", "delete"] => "replace",
            ["read"] => "read",
            ["no-op"] | [] => "no-op",
            _ => "update",
        };
        match action {
            "create" => s.add += 1,
            "update" => s.change += 1,
            "delete" => s.destroy += 1,
            "replace" => {
                s.add += 1;
                s.destroy += 1;
                s.replace += 1;
            }
            _ => continue,
        }
        s.changes.push(ResourceChange {
            address: rc.address,
            resource_type: rc.resource_type,
            action,
        });
    }
    s.output_changes = plan
        .output_changes
        .values()
        .filter(|c| {
            c.get("actions")
                .and_then(|a| a.as_array())
                .is_some_and(|a| a.iter().any(|x| x != "no-op"))
        })
        .count() as u64;
    Ok(s)
}

/// Parses `terraform output -json`: every output's value, sensitive ones replaced by
/// [`REDACTED`]. Returns the outputs and the names that were redacted.
pub fn redacted_outputs(
    output_json: &[u8],
) -> Result<(serde_json::Map<String, serde_json::Value>, Vec<String>), Failure> {
    #[derive(Deserialize)]
    struct Out {
        #[serde(default)]
        sensitive: bool,
        value: serde_json::Value,
    }
    let outs: std::collections::BTreeMap<String, Out> = serde_json::from_slice(output_json)
        .map_err(|e| {
            Failure::permanent(format!(
                "cannot read terraform's outputs (terraform output -json): {e}"
            ))
        })?;
    let mut map = serde_json::Map::new();
    let mut redacted = Vec::new();
    for (name, out) in outs {
        if out.sensitive {
            redacted.push(name.clone());
            map.insert(name, serde_json::Value::String(REDACTED.into()));
        } else {
            map.insert(name, out.value);
        }
    }
    Ok((map, redacted))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(changes: &[(&str, &str, &[&str])]) -> Vec<u8> {
        let rcs: Vec<_> = changes
            .iter()
            .map(|(addr, ty, actions)| {
                serde_json::json!({"address": addr, "type": ty, "mode": "managed",
                    "change": {"actions": actions}})
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({"resource_changes": rcs})).unwrap()
    }

    #[test]
    fn counts_like_terraform_plan_prints_them() {
        let s = summarize(&plan(&[
            ("a.x", "a", &["create"]),
            ("a.y", "a", &["update"]),
            ("a.z", "a", &["delete", "create"]),
            ("a.w", "a", &["no-op"]),
            ("b.v", "b", &["delete"]),
        ]))
        .unwrap();
        assert_eq!((s.add, s.change, s.destroy, s.replace), (2, 1, 2, 1));
        assert_eq!(s.line(), "2 to add, 1 to change, 2 to destroy (1 replaced)");
        assert_eq!(s.changes.len(), 4);
        assert!(!s.is_empty());
    }

    #[test]
    fn an_empty_plan_is_empty_and_output_only_changes_are_not() {
        assert!(summarize(b"{}").unwrap().is_empty());
        let s = summarize(
            br#"{"output_changes":{"a":{"actions":["no-op"]},"b":{"actions":["update"]}}}"#,
        )
        .unwrap();
        assert_eq!(s.output_changes, 1);
        assert!(!s.is_empty());
    }

    #[test]
    fn protected_destroys_match_types_addresses_and_prefixes_unless_allowed() {
        let s = summarize(&plan(&[
            (
                "module.db.aws_ebs_volume.data[0]",
                "aws_ebs_volume",
                &["delete"],
            ),
            (
                "aws_s3_bucket.state",
                "aws_s3_bucket",
                &["create", "delete"],
            ),
            ("aws_s3_bucket.logs", "aws_s3_bucket", &["update"]),
            ("aws_iam_role.x", "aws_iam_role", &["delete"]),
        ]))
        .unwrap();
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let hits = s.protected_destroys(&p(&["aws_ebs_volume", "aws_s3_bucket.state"]), &[]);
        assert_eq!(hits.len(), 2, "{hits:?}");
        assert!(s
            .protected_destroys(&p(&["module.db"]), &[])
            .iter()
            .any(|c| c.address.starts_with("module.db.")));
        assert!(s
            .protected_destroys(&p(&["aws_s3_bucket.log"]), &[])
            .is_empty());
        let allowed = s.protected_destroys(
            &p(&["aws_ebs_volume", "aws_s3_bucket.state"]),
            &p(&["module.db.aws_ebs_volume.data"]),
        );
        assert_eq!(allowed.len(), 1);
        assert_eq!(allowed[0].address, "aws_s3_bucket.state");
    }

    #[test]
    fn sensitive_outputs_are_redacted_and_named() {
        let (map, names) = redacted_outputs(
            br#"{"url":{"sensitive":false,"type":"string","value":"http://x"},
                 "token":{"sensitive":true,"type":"string","value":"s3cr3t"}}"#,
        )
        .unwrap();
        assert_eq!(map["url"], "http://x");
        assert_eq!(map["token"], REDACTED);
        assert_eq!(names, vec!["token".to_string()]);
        assert!(!serde_json::to_string(&map).unwrap().contains("s3cr3t"));
    }
}
