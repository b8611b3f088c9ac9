//! The deletion safeguard.

use std::collections::{BTreeMap, BTreeSet};

use prov_core::{Account, EntitlementId, TargetId};

use super::{PlanOptions, Safety};
use crate::plan::{OpKind, PlannedOp, SafetyBlock};

/// The share a target's safeguard allows: its `max_share` when that is a
/// share (0 < share <= 1), and otherwise none at all, so that a setting of
/// `20` or `NaN` blocks everything past `always_allowed` instead of
/// switching the check off.
fn allowed_share(safety: &Safety) -> f64 {
    if is_share(safety.max_share) {
        safety.max_share
    } else {
        0.0
    }
}

/// More than 0, at most 1 (NaN is neither).
fn is_share(x: f64) -> bool {
    x > 0.0 && x <= 1.0
}

/// Plan problems for safeguard settings that are not a share.
pub(super) fn safety_problems(ops: &[PlannedOp], options: &PlanOptions) -> Vec<String> {
    let targets: BTreeSet<&TargetId> = ops.iter().map(|o| &o.target).collect();
    targets
        .into_iter()
        .filter_map(|t| {
            let share = options.for_target(t).safety.max_share;
            (!is_share(share)).then(|| {
                format!(
                    "{t}: the safeguard's max_share {share} is not a share (0 < share <= 1); \
                     every removal past always_allowed is blocked"
                )
            })
        })
        .collect()
}

pub(super) fn safety_blocks(
    ops: &[PlannedOp],
    actual: Option<&BTreeMap<TargetId, Vec<Account>>>,
    created: &[crate::ledger::EntitlementRecord],
    options: &PlanOptions,
) -> Vec<SafetyBlock> {
    let mut by_target: BTreeMap<&TargetId, Vec<&PlannedOp>> = BTreeMap::new();
    let mut revokes: BTreeMap<(&TargetId, &EntitlementId), Vec<&PlannedOp>> = BTreeMap::new();
    // Forgetting links counts too: a listing that lost accounts would
    // otherwise make the engine forget what it owns.
    for op in ops {
        match &op.kind {
            OpKind::Revoke { entitlement, .. } => {
                revokes
                    .entry((&op.target, entitlement))
                    .or_default()
                    .push(op);
            }
            k if k.is_removal() || matches!(k, OpKind::Unlink { .. }) => {
                by_target.entry(&op.target).or_default().push(op);
            }
            _ => {}
        }
    }
    // Whether `n` removals out of `total` (`None`: no full listing to take
    // a share of) pass `safety`; if not, the threshold passed, for the message.
    let over = |safety: &Safety, n: usize, total: Option<usize>, what: &str| -> Option<String> {
        let max_share = allowed_share(safety);
        let share = match total {
            None => 0.0,
            Some(0) => 1.0,
            Some(total) => n as f64 / total as f64,
        };
        let over_share = total.is_some() && share > max_share;
        let over_count = safety.max_count.is_some_and(|m| n > m);
        (n > safety.always_allowed && (over_share || over_count)).then(|| match safety.max_count {
            Some(m) if over_count => format!("the limit of {m} {what}"),
            _ => format!("{:.0}% of them", max_share * 100.0),
        })
    };
    let mut out = Vec::new();
    for (target, removals) in by_target {
        let safety = options.for_target(target).safety;
        let total = actual.map_or(0, |a| a.get(target).map_or(0, Vec::len));
        // An account both disabled and deleted counts once.
        let accounts: BTreeSet<String> = removals.iter().map(|o| o.kind_account()).collect();
        let Some(threshold) = over(&safety, accounts.len(), actual.map(|_| total), "accounts")
        else {
            continue;
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
            entitlement: None,
            revoke: 0,
            groups: 0,
            total,
            threshold,
            ops: removals.iter().map(|o| o.id.clone()).collect(),
        });
    }
    // Revokes, as a share of each entitlement's holders on the listing; a
    // revoke from an account the plan also disables or deletes is part of
    // that removal, counted above.
    let removed: BTreeSet<(&TargetId, String)> = ops
        .iter()
        .filter(|o| o.kind.is_removal())
        .map(|o| (&o.target, o.kind_account()))
        .collect();
    for ((target, entitlement), ops) in revokes {
        let safety = options.for_target(target).safety;
        let ops: Vec<&PlannedOp> = ops
            .into_iter()
            .filter(|o| !removed.contains(&(target, o.kind_account())))
            .collect();
        let n = ops.len();
        if n <= safety.always_allowed {
            continue;
        }
        // The holders are counted only as far as it takes to know the
        // share is not passed (`n / share` of them): a plan over a million
        // accounts revoking a few from each of many groups must not scan
        // every account once per group. Past that, the count is exact.
        let enough = {
            let share = allowed_share(&safety);
            if share > 0.0 {
                ((n as f64 / share).floor() as usize).saturating_add(1)
            } else {
                usize::MAX
            }
        };
        let count = |limit: usize| {
            actual.map(|a| {
                a.get(target).map_or(0, |accounts| {
                    accounts
                        .iter()
                        .filter(|acct| acct.entitlements.contains(entitlement))
                        .take(limit)
                        .count()
                })
            })
        };
        let mut holders = count(enough);
        let Some(threshold) = over(&safety, n, holders, "revokes") else {
            continue;
        };
        if holders == Some(enough) {
            // Blocked by the count, not the share: the message gives the exact total.
            holders = count(usize::MAX);
        }
        out.push(SafetyBlock {
            target: target.clone(),
            disable: 0,
            delete: 0,
            unlink: 0,
            entitlement: Some(entitlement.clone()),
            revoke: n,
            groups: 0,
            total: holders.unwrap_or(0),
            threshold,
            ops: ops.iter().map(|o| o.id.clone()).collect(),
        });
    }
    // Deletes of the groups the engine created, as a share of those it
    // holds there: a policy that lost its roles would retire them all.
    let mut deletes: BTreeMap<&TargetId, Vec<&PlannedOp>> = BTreeMap::new();
    for op in ops {
        if matches!(op.kind, OpKind::DeleteEntitlement { .. }) {
            deletes.entry(&op.target).or_default().push(op);
        }
    }
    for (target, ops) in deletes {
        let safety = options.for_target(target).safety;
        let total = created.iter().filter(|r| &r.target == target).count();
        let Some(threshold) = over(&safety, ops.len(), Some(total), "group deletes") else {
            continue;
        };
        out.push(SafetyBlock {
            target: target.clone(),
            disable: 0,
            delete: 0,
            unlink: 0,
            entitlement: None,
            revoke: 0,
            groups: ops.len(),
            total,
            threshold,
            ops: ops.iter().map(|o| o.id.clone()).collect(),
        });
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
            OpKind::CreateEntitlement { entitlement }
            | OpKind::DeleteEntitlement { entitlement } => format!("entitlement:{entitlement}"),
        }
    }
}
