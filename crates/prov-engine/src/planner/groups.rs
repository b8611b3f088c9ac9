//! Entitlements the engine creates and retires: on a target with
//! `create_entitlements`, each entitlement the policy names (or the plan
//! grants) that the target lacks is created before any grant of it; each
//! one the entitlement ledger says the engine created, once no policy
//! names it, is revoked from its holders and then deleted. One the engine
//! did not create is never deleted.

use std::collections::{BTreeSet, HashMap, HashSet};

use prov_core::{EntitlementId, IdentityId, TargetId};

use super::{PlanInput, PlanOptions};
use crate::plan::{AccountRef, OpKind, PlannedOp};

/// An entitlement id as the target compares them.
fn key(id: &EntitlementId, case_insensitive: bool) -> String {
    if case_insensitive {
        id.as_str().to_ascii_lowercase()
    } else {
        id.as_str().to_owned()
    }
}

/// The creates, member revokes and deletes of entitlements `ops` (the rest
/// of the plan) calls for, and the problems of targets asking for them
/// that cannot have them.
pub(super) fn plan_entitlements(
    input: &PlanInput<'_>,
    options: &PlanOptions,
    ops: &[PlannedOp],
) -> (Vec<PlannedOp>, Vec<String>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let targets: BTreeSet<&TargetId> = input
        .policy
        .target_ids()
        .chain(input.entitlements.keys())
        .collect();
    for target in targets {
        let opts = options.for_target(target);
        if !opts.create_entitlements {
            continue;
        }
        if !opts.can_create_entitlements {
            problems.push(format!(
                "{target}: create_entitlements is set, and its connector cannot create and list \
                 entitlements: none are created, and a grant of one the target lacks fails"
            ));
            continue;
        }
        let Some(listed) = input.entitlements.get(target) else {
            problems.push(format!(
                "{target}: create_entitlements is set, and its entitlements were not listed: \
                 none are created or deleted"
            ));
            continue;
        };
        let ci = opts.login_case_insensitive;
        let present: HashSet<String> = listed.iter().map(|e| key(&e.id, ci)).collect();
        // What the policy names here, and what this plan grants (a
        // lease's); a plan for one person (an event) makes only what it
        // grants.
        let mut wanted: BTreeSet<&EntitlementId> = if input.partial {
            BTreeSet::new()
        } else {
            input.policy.entitlements_on(target).into_iter().collect()
        };
        wanted.extend(
            ops.iter()
                .filter(|o| &o.target == target)
                .filter_map(|o| match &o.kind {
                    OpKind::Grant { entitlement, .. } => Some(entitlement),
                    _ => None,
                }),
        );
        let wanted_keys: HashSet<String> = wanted.iter().map(|e| key(e, ci)).collect();
        for e in &wanted {
            if !present.contains(&key(e, ci)) {
                out.push(PlannedOp::new(
                    target.clone(),
                    None,
                    OpKind::CreateEntitlement {
                        entitlement: (*e).clone(),
                    },
                    vec![format!(
                        "the policy names {e} and {target} has no such entitlement: the engine \
                         creates it (create_entitlements)"
                    )],
                ));
            }
        }
        // Retiring needs every holder: a full listing only.
        if input.partial {
            continue;
        }
        let accounts = input.actual.get(target).map_or(&[][..], Vec::as_slice);
        let mut owner: Option<HashMap<&str, &IdentityId>> = None;
        for record in input.created.iter().filter(|r| &r.target == target) {
            let e = &record.entitlement;
            if wanted_keys.contains(&key(e, ci)) {
                continue;
            }
            let since = record.created_at.format("%Y-%m-%d");
            let delete = |why: String| {
                PlannedOp::new(
                    target.clone(),
                    None,
                    OpKind::DeleteEntitlement {
                        entitlement: e.clone(),
                    },
                    vec![why],
                )
            };
            if !present.contains(&key(e, ci)) {
                // Someone deleted it there: the record is forgotten.
                out.push(delete(format!(
                    "the engine created {e} on {since}; no policy names it and {target} no \
                     longer has it: its record is forgotten"
                )));
                continue;
            }
            let owner = owner.get_or_insert_with(|| {
                input
                    .links
                    .iter()
                    .filter(|l| &l.target == target)
                    .map(|l| (l.account.as_str(), &l.identity))
                    .collect()
            });
            for a in accounts.iter().filter(|a| a.entitlements.contains(e)) {
                let mut op = PlannedOp::new(
                    target.clone(),
                    owner.get(a.id.as_str()).map(|who| (*who).clone()),
                    OpKind::Revoke {
                        account: AccountRef::Existing { id: a.id.clone() },
                        entitlement: e.clone(),
                    },
                    vec![format!(
                        "{e} is retired (the engine created it, and no policy names it any more): \
                         its holders lose it before it is deleted"
                    )],
                );
                op.account_login = Some(a.login.clone());
                out.push(op);
            }
            out.push(delete(format!(
                "the engine created {e} on {since}, and no policy names it any more"
            )));
        }
    }
    (out, problems)
}
