//! What a policy change would do, before it is rolled out: everyone
//! resolved under the current and the proposed policy, and who gains and
//! who loses which access, with the reason chains on both sides.
//!
//! Pure and parallel. Entitlements, roles and rules are compared by index:
//! each of the current policy's indexes is mapped once to the proposed
//! policy's, so an identity whose access is unchanged (most of them) costs
//! two resolutions and an integer comparison, and allocates nothing.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use prov_core::{EntitlementId, Identity, IdentityId, TargetId};
use rayon::prelude::*;
use serde::Serialize;

use crate::compile::CompiledPolicy;
use crate::resolve::{Extra, Resolution};

/// One entitlement gained or lost, with why it is (or was) given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AccessChange {
    /// The target.
    pub target: TargetId,
    /// The entitlement.
    pub entitlement: EntitlementId,
    /// The reason chains: under the proposed policy for a gain, under the
    /// current one for a loss.
    pub because: Vec<String>,
}

/// What changes for one identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct IdentityChange {
    /// Who.
    pub identity: IdentityId,
    /// Entitlements the proposed policy gives and the current one does not
    /// (on targets where the identity has an account: elsewhere nothing is granted).
    pub gains: Vec<AccessChange>,
    /// Entitlements the current policy gives and the proposed one does not.
    pub losses: Vec<AccessChange>,
    /// Targets where the identity would get an account it does not have now.
    pub accounts_gained: Vec<TargetId>,
    /// Targets where its account would go (disabled, as for a leaver there).
    pub accounts_lost: Vec<TargetId>,
    /// Roles it would gain (inheritance included).
    pub roles_gained: Vec<String>,
    /// Roles it would lose.
    pub roles_lost: Vec<String>,
    /// Separation-of-duties rules it would break that it does not now.
    pub sod_broken: Vec<String>,
}

/// Counts for one target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TargetCounts {
    /// Entitlement grants gained.
    pub gains: usize,
    /// Entitlement grants lost.
    pub losses: usize,
    /// Accounts gained.
    pub accounts_gained: usize,
    /// Accounts lost.
    pub accounts_lost: usize,
}

/// Counts for one role: how many identities would gain or lose it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RoleCounts {
    /// Identities gaining it.
    pub gained: usize,
    /// Identities losing it.
    pub lost: usize,
}

/// Everything a policy change would do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WhatIf {
    /// Identities resolved (each under both policies).
    pub identities: usize,
    /// Those whose access would change, by id.
    pub changes: Vec<IdentityChange>,
    /// Per target.
    pub targets: BTreeMap<TargetId, TargetCounts>,
    /// Per role.
    pub roles: BTreeMap<String, RoleCounts>,
}

/// The current policy's indexes in the proposed one's terms.
struct Maps {
    /// Entitlement index -> the proposed policy's index of the same (target, id).
    entitlements: Vec<Option<u32>>,
    /// Role index -> the proposed policy's index of the same name.
    roles: Vec<Option<u32>>,
    /// Target index -> the proposed policy's.
    targets: Vec<Option<u32>>,
    /// SoD rule index -> the proposed policy's index of the same id.
    sod: Vec<Option<u32>>,
}

impl Maps {
    fn new(a: &CompiledPolicy, b: &CompiledPolicy) -> Self {
        let targets: Vec<Option<u32>> = a
            .targets
            .iter()
            .map(|t| b.target_index.get(t.id.as_str()).copied())
            .collect();
        let entitlements = a
            .entitlements
            .iter()
            .map(|(t, e)| {
                let bt = targets.get(*t as usize).copied().flatten()?;
                b.entitlement_index.get(&(bt, e.clone())).copied()
            })
            .collect();
        let roles = a
            .roles
            .iter()
            .map(|r| b.role_index.get(&r.id).copied())
            .collect();
        let sod = a
            .sod
            .iter()
            .map(|s| {
                b.sod
                    .iter()
                    .position(|x| x.id == s.id)
                    .and_then(|i| u32::try_from(i).ok())
            })
            .collect();
        Maps {
            entitlements,
            roles,
            targets,
            sod,
        }
    }
}

/// Every role `res` holds, inheritance included, sorted.
fn roles_of(policy: &CompiledPolicy, res: &Resolution) -> Vec<u32> {
    let mut out: Vec<u32> = res
        .grants
        .iter()
        .filter_map(|g| policy.roles.get(g.role as usize))
        .flat_map(|r| r.closure.iter().copied())
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The entitlements `res` gets on targets where it has an account (where
/// it has none, nothing is granted), sorted.
fn effective(res: &Resolution) -> Vec<u32> {
    let mut out = Vec::with_capacity(res.entitlements.len());
    for t in res.targets.iter().filter(|t| t.account.is_some()) {
        let (a, b) = t.range;
        out.extend(
            res.entitlements
                .get(a as usize..b as usize)
                .unwrap_or_default()
                .iter()
                .copied(),
        );
    }
    out.sort_unstable();
    out
}

/// Targets where `res` should have an account.
fn accounts_of(res: &Resolution) -> impl Iterator<Item = u32> + '_ {
    res.targets
        .iter()
        .filter(|t| t.account.is_some())
        .map(|t| t.target)
}

/// The current policy's indexes in the proposed policy's, sorted; one the
/// proposed policy does not know at all is u32::MAX (never equal to one it has).
fn into_proposed(items: impl Iterator<Item = u32>, map: &[Option<u32>]) -> Vec<u32> {
    let mut out: Vec<u32> = items
        .map(|i| map.get(i as usize).copied().flatten().unwrap_or(u32::MAX))
        .collect();
    out.sort_unstable();
    out
}

/// `a` minus `b`, both sorted.
fn minus(a: &[u32], b: &[u32]) -> Vec<u32> {
    a.iter()
        .copied()
        .filter(|x| b.binary_search(x).is_err())
        .collect()
}

/// Compares one identity; `None` when nothing changes.
fn compare(
    current: &CompiledPolicy,
    proposed: &CompiledPolicy,
    maps: &Maps,
    who: &Identity,
    now: DateTime<Utc>,
) -> Option<IdentityChange> {
    let old = current.resolve_with(who, now, Extra::default());
    let new = proposed.resolve_with(who, now, Extra::default());
    // The current policy's entitlements, roles, account targets and broken
    // rules in the proposed policy's indexes, sorted; one the proposed
    // policy does not know at all is lost (u32::MAX stands for it).
    let old_entitlements = effective(&old);
    let new_entitlements = effective(&new);
    let mapped = into_proposed(old_entitlements.iter().copied(), &maps.entitlements);
    let old_roles = into_proposed(roles_of(current, &old).into_iter(), &maps.roles);
    let new_roles = roles_of(proposed, &new);
    let old_accounts = into_proposed(accounts_of(&old), &maps.targets);
    let new_accounts: Vec<u32> = accounts_of(&new).collect();
    let old_sod = into_proposed(old.violations.iter().map(|(r, _, _)| *r), &maps.sod);
    let mut new_sod: Vec<u32> = new.violations.iter().map(|(r, _, _)| *r).collect();
    new_sod.sort_unstable();
    if mapped == new_entitlements
        && old_roles == new_roles
        && old_accounts == new_accounts
        && minus(&new_sod, &old_sod).is_empty()
    {
        return None;
    }
    // Something changed: name it (strings only from here on).
    let named = |policy: &CompiledPolicy, res: &Resolution, e: u32| {
        let (t, id) = policy.entitlement_name(e);
        let because = policy
            .chains(res, &t, &id)
            .iter()
            .map(ToString::to_string)
            .collect();
        AccessChange {
            target: t,
            entitlement: id,
            because,
        }
    };
    // The current policy's indexes in `of` that the proposed side lacks.
    let gone = |of: &[u32], map: &[Option<u32>], now_there: &[u32]| -> Vec<u32> {
        of.iter()
            .copied()
            .filter(|&i| {
                map.get(i as usize)
                    .copied()
                    .flatten()
                    .is_none_or(|m| now_there.binary_search(&m).is_err())
            })
            .collect()
    };
    let gains = minus(&new_entitlements, &mapped)
        .into_iter()
        .map(|e| named(proposed, &new, e))
        .collect();
    let losses = gone(&old_entitlements, &maps.entitlements, &new_entitlements)
        .into_iter()
        .map(|e| named(current, &old, e))
        .collect();
    let accounts_gained = minus(&new_accounts, &old_accounts)
        .into_iter()
        .map(|t| proposed.target_id(t))
        .collect();
    let old_targets: Vec<u32> = accounts_of(&old).collect();
    let accounts_lost = gone(&old_targets, &maps.targets, &new_accounts)
        .into_iter()
        .map(|t| current.target_id(t))
        .collect();
    let roles_gained = minus(&new_roles, &old_roles)
        .into_iter()
        .map(|r| proposed.role_name(r))
        .collect();
    let roles_lost = gone(&roles_of(current, &old), &maps.roles, &new_roles)
        .into_iter()
        .map(|r| current.role_name(r))
        .collect();
    let sod_broken = minus(&new_sod, &old_sod)
        .into_iter()
        .filter_map(|r| proposed.sod.get(r as usize).map(|s| s.id.clone()))
        .collect();
    Some(IdentityChange {
        identity: who.id.clone(),
        gains,
        losses,
        accounts_gained,
        accounts_lost,
        roles_gained,
        roles_lost,
        sod_broken,
    })
}

/// Resolves every identity at `now` under `current` and `proposed` (each
/// policy's own rules and assignments; leases held elsewhere are not
/// part of it) and reports what would change, on every core.
pub fn what_if(
    current: &CompiledPolicy,
    proposed: &CompiledPolicy,
    identities: &[Identity],
    now: DateTime<Utc>,
) -> WhatIf {
    let maps = Maps::new(current, proposed);
    let mut changes: Vec<IdentityChange> = identities
        .par_iter()
        .with_min_len(512)
        .filter_map(|who| compare(current, proposed, &maps, who, now))
        .collect();
    changes.sort_by(|a, b| a.identity.cmp(&b.identity));
    let mut out = WhatIf {
        identities: identities.len(),
        ..WhatIf::default()
    };
    for c in &changes {
        for g in &c.gains {
            out.targets.entry(g.target.clone()).or_default().gains += 1;
        }
        for l in &c.losses {
            out.targets.entry(l.target.clone()).or_default().losses += 1;
        }
        for t in &c.accounts_gained {
            out.targets.entry(t.clone()).or_default().accounts_gained += 1;
        }
        for t in &c.accounts_lost {
            out.targets.entry(t.clone()).or_default().accounts_lost += 1;
        }
        for r in &c.roles_gained {
            out.roles.entry(r.clone()).or_default().gained += 1;
        }
        for r in &c.roles_lost {
            out.roles.entry(r.clone()).or_default().lost += 1;
        }
    }
    out.changes = changes;
    out
}
