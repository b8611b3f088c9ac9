//! The deletion safeguard.

use std::collections::{BTreeMap, BTreeSet};

use prov_core::{Account, TargetId};

use super::PlanOptions;
use crate::plan::{OpKind, PlannedOp, SafetyBlock};

pub(super) fn safety_blocks(
    ops: &[PlannedOp],
    actual: Option<&BTreeMap<TargetId, Vec<Account>>>,
    options: &PlanOptions,
) -> Vec<SafetyBlock> {
    let mut by_target: BTreeMap<&TargetId, Vec<&PlannedOp>> = BTreeMap::new();
    // Forgetting links counts too: a listing that lost accounts would
    // otherwise make the engine forget what it owns.
    for op in ops
        .iter()
        .filter(|o| o.kind.is_removal() || matches!(o.kind, OpKind::Unlink { .. }))
    {
        by_target.entry(&op.target).or_default().push(op);
    }
    let mut out = Vec::new();
    for (target, removals) in by_target {
        let safety = options.for_target(target).safety;
        let total = actual.map_or(0, |a| a.get(target).map_or(0, Vec::len));
        // An account both disabled and deleted counts once.
        let accounts: BTreeSet<String> = removals.iter().map(|o| o.kind_account()).collect();
        let n = accounts.len();
        // Without a full listing there is no total to take a share of.
        let share = match (actual, total) {
            (None, _) => 0.0,
            (Some(_), 0) => 1.0,
            (Some(_), total) => n as f64 / total as f64,
        };
        let over_share = share > safety.max_share;
        let over_count = safety.max_count.is_some_and(|m| n > m);
        if n > safety.always_allowed && (over_share || over_count) {
            let threshold = match safety.max_count {
                Some(m) if over_count => format!("the limit of {m} accounts"),
                _ => format!("{:.0}% of them", safety.max_share * 100.0),
            };
            out.push(SafetyBlock {
                target: target.clone(),
                disable: removals
                    .iter()
                    .filter(|o| matches!(o.kind, OpKind::SetEnabled { .. }))
                    .count(),
                delete: removals
                    .iter()
                    .filter(|o| matches!(o.kind, OpKind::Delete { .. }))
                    .count(),
                unlink: removals
                    .iter()
                    .filter(|o| matches!(o.kind, OpKind::Unlink { .. }))
                    .count(),
                total,
                threshold,
                ops: removals.iter().map(|o| o.id.clone()).collect(),
            });
        }
    }
    out
}

impl PlannedOp {
    fn kind_account(&self) -> String {
        match &self.kind {
            OpKind::Delete { account } | OpKind::Link { account } | OpKind::Unlink { account } => {
                account.to_string()
            }
            OpKind::SetEnabled { account, .. }
            | OpKind::Update { account, .. }
            | OpKind::Grant { account, .. }
            | OpKind::Revoke { account, .. } => account.to_string(),
            OpKind::Create { login, .. } => login.clone(),
        }
    }
}
