//! Which groups of AWS calls each step kind makes on the `aws` provider, for the IAM
//! policy `cutover iam` derives from a plan. A kind's built-in compensation counts as
//! part of the kind (provision's terminate, freeze's unfreeze).
//!
//! Every kind in the catalogue must be listed here — a unit test fails otherwise — so a
//! new kind cannot silently be missing from the policy.

use crate::providers::aws::iam::Capability::{self, *};

/// Calls every step that opens a database makes: find its instance, read the admin
/// password for Bolt.
const OPEN_DATABASE: &[Capability] = &[FindInstances, ReadDatabaseSecrets];

/// The capabilities of `kind`, or `None` for a kind this table does not know.
pub fn aws_capabilities(kind: &str) -> Option<&'static [Capability]> {
    Some(match kind {
        "util.wait" | "util.assert" | "util.shell" | "drill.measure" => &[],
        "db.preflight" => &[FindInstances, ReadDatabaseSecrets, Backups],
        "compute.provision" => &[
            FindInstances,
            LaunchInstances,
            InstanceAgent,
            RunCommands,
            ReadDatabaseSecrets,
            TerminateInstances,
        ],
        "compute.decommission" => &[FindInstances, TerminateInstances],
        "db.freeze" | "db.unfreeze" => &[FindInstances, ReadDatabaseSecrets, RunCommands],
        "db.backup" | "db.restore" => &[FindInstances, ReadDatabaseSecrets, RunCommands, Backups],
        "integrity.compare" => &[FindInstances, ReadDatabaseSecrets, Backups],
        "rollback.assess" => &[FindInstances, ReadDatabaseSecrets, RunCommands],
        "secret.rotate" => &[FindInstances, ReadDatabaseSecrets, RotateAppSecrets],
        "traffic.switch" => &[
            FindInstances,
            ReadDatabaseSecrets,
            RunCommands,
            SwitchTraffic,
            RestartApp,
        ],
        // Reads the application's secret: the switch's grant (the rollback that verifies
        // also switches).
        "traffic.verify" => &[FindInstances, ReadDatabaseSecrets, SwitchTraffic],
        "health.check" | "health.bake" => OPEN_DATABASE,
        "backup.select" => &[Backups],
        "ami.build" => &[
            FindInstances,
            LaunchInstances,
            InstanceAgent,
            RunCommands,
            TerminateInstances,
            FindImages,
            BuildImages,
            ReadParameters,
            WriteParameters,
        ],
        "changes.detect" => &[FindImages, ReadParameters],
        "release.record" => &[ReadParameters, WriteParameters],
        // Terraform makes its own calls: the backend's here; the module's resources need
        // the module's own permissions (`cutover iam` says so).
        "terraform.plan" | "terraform.apply" => &[TerraformState],
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_step_kind_says_which_aws_calls_it_makes() {
        let missing: Vec<&str> = super::super::catalogue::kinds()
            .map(|k| k.name)
            .filter(|name| super::aws_capabilities(name).is_none())
            .collect();
        assert!(
            missing.is_empty(),
            "add these kinds to steps/aws_needs.rs (the IAM policy would miss their calls): {missing:?}"
        );
    }
}
