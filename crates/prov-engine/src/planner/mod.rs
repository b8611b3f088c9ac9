//! The planner: desired state (from the resolver) against actual state
//! (from the targets' listings and the store's links) gives a [`Plan`].
//!
//! Files by concept: `options` (what a caller sets), `target` (one
//! target: links, indexes, orphans), `identity` (one identity on one
//! target), `correlate`, `diff`, `safety` (the deletion safeguard),
//! `fingerprint` and `index` (the hash indexes the rest use).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use prov_core::{Account, Entitlement, Identity, TargetId};
use prov_resolver::{CompiledPolicy, Extra, Resolution};

use crate::ledger::{EntitlementRecord, GrantRecord, Link};
use crate::plan::{Conflict, OpKind, PLAN_VERSION, Plan, PlannedOp};

mod correlate;
mod diff;
mod fingerprint;
mod groups;
mod identity;
mod index;
mod options;
mod safety;
mod sod;
mod target;

pub(crate) use correlate::{correlation_key, correlation_rules};
pub use fingerprint::fingerprint;
use fingerprint::{SetDigest, fingerprint_of};
pub use options::{
    Absent, Adopt, Correlation, Exclude, OrphanPolicy, PlanOptions, Safety, TargetOptions,
};
use safety::{safety_blocks, safety_problems};
use target::plan_targets;

/// What a plan is made from.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct PlanInput<'a> {
    /// The compiled policy.
    pub policy: &'a CompiledPolicy,
    /// Every identity the sources know.
    pub identities: &'a [Identity],
    /// The time to plan for (leases, end dates, grace periods).
    pub now: DateTime<Utc>,
    /// Each target's accounts as listed now, with their entitlements.
    pub actual: &'a BTreeMap<TargetId, Vec<Account>>,
    /// The ownership ledger.
    pub links: &'a [Link],
    /// Assignments and leases from the store.
    pub extra: Extra<'a>,
    /// The listing covers only these identities' accounts (an event, not a
    /// full reconcile): no orphans are reported, and the safeguard counts
    /// removals without a share of a total it does not know. Each link
    /// given must have been looked up: one whose account a listed target
    /// lacks is dead and forgotten, as in a full plan.
    pub partial: bool,
    /// The grant ledger's records for the accounts of identities that
    /// break a rule with `resolve = "remove_newer"` (see
    /// [`CompiledPolicy::sod_side`]); empty otherwise. Records for other
    /// accounts are ignored.
    pub grants: &'a [GrantRecord],
    /// The entitlements of each target with
    /// [`TargetOptions::create_entitlements`], as listed now (other
    /// targets' are not needed).
    pub entitlements: &'a BTreeMap<TargetId, Vec<Entitlement>>,
    /// The entitlement ledger: what the engine created.
    pub created: &'a [EntitlementRecord],
}

static NO_ENTITLEMENTS: BTreeMap<TargetId, Vec<Entitlement>> = BTreeMap::new();

impl<'a> PlanInput<'a> {
    /// Plan input with no extra assignments or leases.
    pub fn new(
        policy: &'a CompiledPolicy,
        identities: &'a [Identity],
        now: DateTime<Utc>,
        actual: &'a BTreeMap<TargetId, Vec<Account>>,
        links: &'a [Link],
    ) -> Self {
        PlanInput {
            policy,
            identities,
            now,
            actual,
            links,
            extra: Extra::default(),
            partial: false,
            grants: &[],
            entitlements: &NO_ENTITLEMENTS,
            created: &[],
        }
    }

    /// Adds the entitlements the targets that create them list now, and
    /// the entitlement ledger (builder style).
    pub fn with_entitlements(
        mut self,
        listed: &'a BTreeMap<TargetId, Vec<Entitlement>>,
        created: &'a [EntitlementRecord],
    ) -> Self {
        self.entitlements = listed;
        self.created = created;
        self
    }

    /// Adds the grant ledger's records a `remove_newer` rule needs (builder style).
    pub fn with_grants(mut self, grants: &'a [GrantRecord]) -> Self {
        self.grants = grants;
        self
    }

    /// Marks the listing as covering only these identities' accounts (builder style).
    pub fn partial(mut self) -> Self {
        self.partial = true;
        self
    }

    /// Adds assignments and leases from the store (builder style).
    pub fn with_extra(mut self, extra: Extra<'a>) -> Self {
        self.extra = extra;
        self
    }
}

/// Makes a plan. Pure: the same input gives the same plan, byte for byte.
/// Resolves every identity (on every core), then [`plan_resolved`].
pub fn plan(input: &PlanInput<'_>, options: &PlanOptions) -> Plan {
    let resolutions = resolve_all(input.policy, input.identities, input.now, input.extra);
    plan_resolved(input, &resolutions, options)
}

/// Every identity resolved at `now` with `extra`, on every core, in order.
pub(crate) fn resolve_all(
    policy: &CompiledPolicy,
    identities: &[Identity],
    now: DateTime<Utc>,
    extra: Extra<'_>,
) -> Vec<Resolution> {
    use rayon::prelude::*;
    identities
        .par_iter()
        .with_min_len(256)
        .map(|who| policy.resolve_with(who, now, extra))
        .collect()
}

/// Makes a plan from resolutions already made (`resolutions[i]` is
/// `input.identities[i]` resolved at `input.now` with `input.extra`).
/// Identities with a linked account are planned on every core; the rest,
/// which may need correlation, one by one.
pub fn plan_resolved(
    input: &PlanInput<'_>,
    resolutions: &[Resolution],
    options: &PlanOptions,
) -> Plan {
    use rayon::prelude::*;
    // The fingerprint's digests of identities and links run beside the
    // planning, as does the gathering of the resolver's problems; the
    // accounts' digests are made by the planning itself, each account
    // hashed while it is at hand (a second pass over a million accounts'
    // strings costs as much again in memory traffic).
    let (((identities, links), mut problems), (planned, accounts)) = rayon::join(
        || {
            rayon::join(
                || {
                    rayon::join(
                        || SetDigest::of(input.identities),
                        || SetDigest::of(input.links),
                    )
                },
                || -> Vec<String> {
                    resolutions
                        .par_iter()
                        .with_min_len(4096)
                        .flat_map_iter(|r| r.problems().iter().map(ToString::to_string))
                        .collect()
                },
            )
        },
        || plan_targets(input, resolutions, options),
    );
    let fingerprint = fingerprint_of(input, identities, &accounts, links);
    let target::Planned {
        mut ops,
        mut conflicts,
        orphans,
        problems: limits,
        mut held,
        sod: sod_held,
        both_held,
    } = planned;
    problems.extend(limits);
    let (revokes, newer) = sod::remove_newer(both_held, input.grants);
    ops.extend(revokes);
    let (made, unmade) = groups::plan_entitlements(input, options, &ops);
    ops.extend(made);
    problems.extend(unmade);
    held.sort();
    // Every rule broken, then the grants held for it.
    let mut sod: Vec<String> = resolutions
        .par_iter()
        .with_min_len(4096)
        .filter(|r| r.breaks_sod())
        .flat_map_iter(|r| {
            input.policy.sod_violations(r).into_iter().map(move |v| {
                let mut parts = v
                    .roles
                    .iter()
                    .map(|r| format!("role {r}"))
                    .collect::<Vec<_>>();
                parts.extend(v.entitlements.iter().cloned());
                format!(
                    "{} breaks rule {} ({}{}): {}",
                    r.identity,
                    v.rule,
                    v.enforce.as_str(),
                    v.description.map(|d| format!(", {d}")).unwrap_or_default(),
                    parts.join(" + ")
                )
            })
        })
        .collect();
    sod.sort();
    let mut sod_held = sod_held;
    sod_held.extend(newer);
    sod_held.sort();
    sod.extend(sod_held);
    ops.par_sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    let blocked = safety_blocks(
        &ops,
        (!input.partial).then_some(input.actual),
        input.created,
        options,
    );
    problems.extend(safety_problems(&ops, options));
    conflicts.sort_by(|a: &Conflict, b: &Conflict| {
        (&a.target, &a.identity).cmp(&(&b.target, &b.identity))
    });
    problems.sort();
    let secrets = secrets_of(input, resolutions, &ops);
    Plan {
        version: PLAN_VERSION,
        planned_for: input.now,
        fingerprint,
        ops,
        orphans,
        conflicts,
        blocked,
        problems,
        held,
        sod,
        digest: String::new(),
        secrets,
    }
}

/// The values of the creates' secret attributes, by operation id, from the
/// resolutions (kept out of the operations themselves).
fn secrets_of(
    input: &PlanInput<'_>,
    resolutions: &[Resolution],
    ops: &[PlannedOp],
) -> BTreeMap<String, prov_core::SecretAttributes> {
    let mut out = BTreeMap::new();
    let wanted: Vec<&PlannedOp> = ops
        .iter()
        .filter(|o| matches!(&o.kind, OpKind::Create { secret, .. } if !secret.is_empty()))
        .collect();
    if wanted.is_empty() {
        return out;
    }
    let position: HashMap<&str, usize> = input
        .identities
        .iter()
        .enumerate()
        .map(|(i, w)| (w.id.as_str(), i))
        .collect();
    for op in wanted {
        let Some(res) = op
            .identity
            .as_ref()
            .and_then(|who| position.get(who.as_str()))
            .and_then(|&i| resolutions.get(i))
        else {
            continue;
        };
        let values = input
            .policy
            .targets_of(res)
            .find(|v| v.target == Some(&op.target))
            .and_then(|v| v.account)
            .map(|a| a.secrets.clone());
        if let Some(values) = values {
            out.insert(op.id.clone(), values);
        }
    }
    out
}
