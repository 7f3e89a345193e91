//! The catalogue of step kinds: every module's kinds, in one place. Plans are validated
//! against it, and `cutover plan` describes steps from it. The step modules know only
//! [`super::kind`]; only this file knows them all.

use super::kind::StepKind;

/// Every step kind cutover knows.
pub fn kinds() -> impl Iterator<Item = &'static StepKind> {
    super::utility::KINDS
        .iter()
        .chain(super::preflight::KINDS)
        .chain(super::backup_select::KINDS)
        .chain(super::drill::KINDS)
        .chain(super::compute::KINDS)
        .chain(super::db::KINDS)
        .chain(super::integrity::KINDS)
        .chain(super::secret::KINDS)
        .chain(super::traffic::KINDS)
        .chain(super::health::KINDS)
        .chain(super::bake::KINDS)
        .chain(super::assess::KINDS)
        .chain(super::ami::KINDS)
        .chain(super::changes::KINDS)
        .chain(super::terraform::KINDS)
}

pub fn find_kind(name: &str) -> Option<&'static StepKind> {
    kinds().find(|k| k.name == name)
}
