//! Planning one target: live and dead links, the indexes correlation
//! needs, every identity, then orphans.

use std::borrow::Cow;
use std::collections::BTreeSet;

use prov_core::{Account, AccountId, IdentityId, TargetId};
use prov_resolver::Resolution;

use super::correlate::attribute_indexes;
use super::fingerprint::SetDigest;
use super::identity::plan_identity;
use super::index::{FastMap, KeyIndex, MultiIndex};
use super::sod::BothHeld;
use super::{OrphanPolicy, PlanInput, PlanOptions, TargetOptions};
use crate::ledger::{Link, LinkOrigin};
use crate::plan::{AccountRef, Conflict, OpKind, Orphan, PlannedOp};

/// Per-target state the planner works on (read-only while identities are planned).
pub(super) struct TargetCtx<'a> {
    pub(super) target: &'a TargetId,
    pub(super) opts: &'a TargetOptions,
    pub(super) accounts: &'a [Account],
    /// login -> accounts, built only when some identity needs correlation.
    pub(super) by_login: MultiIndex<'a>,
    /// For each correlation rule on an account attribute, its value ->
    /// accounts, ignoring ASCII case. Built with `by_login`, so that
    /// correlating is a lookup, not a scan of every account per identity.
    pub(super) by_attribute: FastMap<&'a str, MultiIndex<'a>>,
    /// Each account's link (identity, origin), by account position; built
    /// when correlation or orphans need it, empty before.
    pub(super) link_of_account: Vec<Option<(&'a IdentityId, LinkOrigin)>>,
    pub(super) managed_attributes: Vec<&'a str>,
    /// Accounts the target's `exclude` rules match, by position (empty
    /// when it has none): never correlated, never orphans.
    pub(super) excluded: Vec<bool>,
}

/// What planning one identity on one target gives.
#[derive(Default)]
pub(super) struct IdentityOutcome {
    pub(super) ops: Vec<PlannedOp>,
    pub(super) conflicts: Vec<Conflict>,
    /// What the target cannot do that the policy asks for.
    pub(super) problems: Vec<String>,
    /// Changes held because a value the policy reads is missing.
    pub(super) held: Vec<String>,
    /// Grants held for separation of duties.
    pub(super) sod: Vec<String>,
    /// Entitlements held on both sides of a `remove_newer` rule.
    pub(super) both_held: Vec<BothHeld>,
    /// The account it holds (linked or correlated), by index.
    pub(super) claimed: Option<usize>,
    /// Accounts a conflict of its names (by index): a person decides whose
    /// they are, so they are not orphans meanwhile (an orphan policy of
    /// `disable` must not act on them).
    pub(super) disputed: Vec<usize>,
}

/// What planning the targets gives.
#[derive(Default)]
pub(super) struct Planned {
    pub(super) ops: Vec<PlannedOp>,
    pub(super) conflicts: Vec<Conflict>,
    pub(super) orphans: Vec<Orphan>,
    pub(super) problems: Vec<String>,
    /// Changes held for a missing source value ([`Plan::held`](crate::Plan)).
    pub(super) held: Vec<String>,
    /// Grants held for separation of duties ([`Plan::sod`](crate::Plan)).
    pub(super) sod: Vec<String>,
    /// Entitlements held on both sides of a `remove_newer` rule, for
    /// [`remove_newer`](super::sod::remove_newer).
    pub(super) both_held: Vec<BothHeld>,
}

/// Plans every target, and digests each listed target's accounts for the
/// fingerprint on the way (in `input.actual`'s order).
pub(super) fn plan_targets<'t>(
    input: &PlanInput<'t>,
    resolutions: &[Resolution],
    options: &PlanOptions,
) -> (Planned, Vec<(&'t TargetId, SetDigest)>) {
    use rayon::prelude::*;
    let policy = input.policy;
    let empty = Vec::new();
    let mut ops: Vec<PlannedOp> = Vec::new();
    let mut conflicts = Vec::new();
    let mut problems = Vec::new();
    let mut held_back = Vec::new();
    let mut sod_held = Vec::new();
    let mut both_held = Vec::new();
    let mut orphans = Vec::new();
    let mut digests = Vec::new();
    // Who the sources know: needed only to name orphans' former owners, so built on first use.
    let mut known: Option<std::collections::HashSet<&IdentityId>> = None;
    let n = input.identities.len().min(resolutions.len());
    let identities = input.identities.get(..n).unwrap_or_default();

    // Every target the policy or the listing names.
    let targets: BTreeSet<&TargetId> = policy.target_ids().chain(input.actual.keys()).collect();
    for target in targets {
        let listed = input.actual.get(target);
        let accounts = listed.unwrap_or(&empty);
        let target_links: Vec<&Link> = input
            .links
            .par_iter()
            .with_min_len(4096)
            .filter(|l| &l.target == target)
            .collect();
        let Some(index) = KeyIndex::new(accounts.par_iter().map(|a| a.id.as_str()).collect())
        else {
            problems.push(format!(
                "{target}: more than {} accounts or links; not planned",
                u32::MAX
            ));
            if listed.is_some() {
                digests.push((target, SetDigest::of(accounts)));
            }
            continue;
        };
        // A link whose account the target does not list is dead (someone
        // deleted the account there): it never stands for the identity's
        // account, and a complete listing forgets it, in the plan.
        let positions = index.positions(&target_links, |l| l.account.as_str());
        let mut live_links = Vec::with_capacity(target_links.len());
        let mut account_of_link = Vec::with_capacity(target_links.len());
        for (l, c) in target_links.iter().zip(positions) {
            if c == u32::MAX {
                if listed.is_some() {
                    let mut op = PlannedOp::new(
                        target.clone(),
                        Some(l.identity.clone()),
                        OpKind::Unlink {
                            account: l.account.clone(),
                        },
                        vec![format!(
                            "the target no longer lists account {}: its link ({}) is forgotten",
                            l.account,
                            l.origin.as_str()
                        )],
                    );
                    op.account_login = None;
                    ops.push(op);
                }
            } else {
                live_links.push(*l);
                account_of_link.push(c);
            }
        }
        drop(index);
        let target_links = live_links;
        let Some((by_identity, repeats)) = KeyIndex::with_repeats(
            target_links
                .par_iter()
                .map(|l| l.identity.as_str())
                .collect(),
        ) else {
            problems.push(format!(
                "{target}: more than {} accounts or links; not planned",
                u32::MAX
            ));
            digests.push((target, SetDigest::of(accounts)));
            continue;
        };
        // Each identity's linked account, looked up once, on every core.
        let link_of_identity = by_identity.positions(identities, |w| w.id.as_str());
        // An identity with two live links on one target: the ledger cannot
        // say which account is its own, so it is a conflict for a person
        // and nothing is planned for it there.
        let mut doubled: FastMap<&str, Vec<(&Link, u32)>> = FastMap::default();
        for &j in &repeats {
            if let (Some(l), Some(&c)) = (
                target_links.get(j as usize),
                account_of_link.get(j as usize),
            ) {
                doubled
                    .entry(l.identity.as_str())
                    .or_default()
                    .push((*l, c));
            }
        }
        drop(by_identity);
        // Identity i's account (position); with its link's origin.
        // On a target that ignores identities gone from the sources, theirs
        // are held by no one here: orphans, as without the leaver records.
        let ignore_absent = options.for_target(target).absent == super::Absent::Ignore;
        let account_held = |i: usize| -> Option<usize> {
            if ignore_absent && identities.get(i).is_some_and(is_absent) {
                return None;
            }
            let j = *link_of_identity.get(i)? as usize;
            let c = *account_of_link.get(j)?;
            (c != u32::MAX).then_some(c as usize)
        };
        let held = |i: usize| -> Option<(usize, LinkOrigin)> {
            let c = account_held(i)?;
            let j = *link_of_identity.get(i)? as usize;
            Some((c, target_links.get(j)?.origin))
        };
        // Scattered in link order: an account two links hold keeps the
        // last, as a map would.
        let link_of_account = || -> Vec<Option<(&IdentityId, LinkOrigin)>> {
            let mut out = vec![None; accounts.len()];
            for (l, &c) in target_links.iter().zip(&account_of_link) {
                if let Some(slot) = out.get_mut(c as usize) {
                    *slot = Some((&l.identity, l.origin));
                }
            }
            out
        };
        let mut ctx = TargetCtx {
            target,
            opts: options.for_target(target),
            accounts,
            by_login: MultiIndex::default(),
            by_attribute: FastMap::default(),
            link_of_account: Vec::new(),
            managed_attributes: policy.managed_attributes(target),
            excluded: Vec::new(),
        };
        if !ctx.opts.exclude.is_empty() {
            ctx.excluded = accounts
                .par_iter()
                .with_min_len(4096)
                .map(|a| ctx.opts.exclude.iter().any(|x| x.matches(a)))
                .collect();
        }
        let unlinked: Vec<usize> = (0..n).filter(|&i| account_held(i).is_none()).collect();
        if !unlinked.is_empty() {
            ctx.by_login = MultiIndex::new(
                accounts
                    .iter()
                    .map(|a| Some(Cow::Borrowed(a.login.as_str())))
                    .collect(),
                ctx.opts.login_case_insensitive,
            );
            ctx.by_attribute = attribute_indexes(accounts, &ctx.opts.correlation);
            ctx.link_of_account = link_of_account();
        }
        // A rule on an attribute no listed account has matches nothing,
        // whoever it is for: most likely a typo (`mial`), which would
        // otherwise make duplicates in silence. Reported on a complete
        // listing that has accounts; the scan stops at the first holder.
        if !input.partial && !accounts.is_empty() {
            let mut seen = BTreeSet::new();
            for rule in &ctx.opts.correlation {
                let field = rule.account_field.as_str();
                if field != "login"
                    && seen.insert(field)
                    && !accounts.iter().any(|a| a.attributes.contains_key(field))
                {
                    problems.push(format!(
                        "{target}: correlation rule {field} = {}: none of the {} listed accounts has attribute `{field}`, so the rule matches nothing",
                        rule.identity_field,
                        accounts.len()
                    ));
                }
            }
        }
        // Each account held by a link is hashed for the fingerprint when
        // its holder is planned; accounts held by no one are hashed here,
        // and one held twice (two links to it) is taken away again.
        let mut claimed = vec![false; accounts.len()];
        let mut digest = SetDigest::default();
        for c in (0..n).filter_map(account_held) {
            if let Some(slot) = claimed.get_mut(c) {
                if *slot {
                    digest.sum = digest
                        .sum
                        .wrapping_sub(accounts.get(c).map_or(0, SetDigest::hash));
                }
                *slot = true;
            }
        }
        // A doubly linked identity's other accounts are its, not orphans.
        if !doubled.is_empty() {
            for who in identities {
                for &(_, c) in doubled.get(who.id.as_str()).into_iter().flatten() {
                    if let Some(slot) = claimed.get_mut(c as usize)
                        && !*slot
                    {
                        *slot = true;
                        digest.sum = digest
                            .sum
                            .wrapping_add(accounts.get(c as usize).map_or(0, SetDigest::hash));
                    }
                }
            }
        }
        digest.count = u64::try_from(accounts.len()).unwrap_or(u64::MAX);
        digest.sum = digest.sum.wrapping_add(
            accounts
                .par_iter()
                .zip(&claimed)
                .with_min_len(4096)
                .filter(|(_, held)| !**held)
                .map(|(a, _)| SetDigest::hash(a))
                .reduce(|| 0, u64::wrapping_add),
        );
        let plan_one = |i: usize, claimed: &[bool]| -> IdentityOutcome {
            match (identities.get(i), resolutions.get(i)) {
                (Some(who), Some(_)) if doubled.contains_key(who.id.as_str()) => {
                    let mut accounts: Vec<AccountId> = doubled
                        .get(who.id.as_str())
                        .into_iter()
                        .flatten()
                        .map(|(l, _)| l.account.clone())
                        .chain(
                            account_held(i)
                                .and_then(|c| ctx.accounts.get(c))
                                .map(|a| a.id.clone()),
                        )
                        .collect();
                    accounts.sort();
                    accounts.dedup();
                    IdentityOutcome {
                        conflicts: vec![Conflict {
                            target: target.clone(),
                            identity: who.id.clone(),
                            message: format!(
                                "{} accounts on this target are linked to this identity; \
                                 nothing is planned for it here until a person keeps one link",
                                accounts.len()
                            ),
                            accounts,
                        }],
                        ..IdentityOutcome::default()
                    }
                }
                // Gone from the sources, on a target that ignores that: its
                // accounts are left to the orphan report.
                (Some(who), Some(_)) if ignore_absent && is_absent(who) => {
                    IdentityOutcome::default()
                }
                (Some(who), Some(res)) => {
                    let mut out =
                        plan_identity(policy, who, res, input.now, &ctx, held(i), claimed);
                    // Gone from the sources: there is no value to fix, so
                    // nothing is held for one (login and attributes stay).
                    if is_absent(who) {
                        out.held.clear();
                    }
                    out
                }
                _ => IdentityOutcome::default(),
            }
        };
        // Linked identities on every core, keeping only outcomes with
        // something in them, and hashing each one's account.
        let (outcomes, held_sum) = (0..n)
            .into_par_iter()
            .with_min_len(1024)
            .filter_map(|i| account_held(i).map(|c| (i, c)))
            .fold(
                || (Vec::new(), 0u64),
                |(mut kept, sum), (i, c)| {
                    let o = plan_one(i, &[]);
                    if !o.ops.is_empty()
                        || !o.conflicts.is_empty()
                        || !o.problems.is_empty()
                        || !o.held.is_empty()
                        || !o.sod.is_empty()
                        || !o.both_held.is_empty()
                    {
                        kept.push(o);
                    }
                    let h = accounts.get(c).map_or(0, SetDigest::hash);
                    (kept, sum.wrapping_add(h))
                },
            )
            .reduce(
                || (Vec::new(), 0),
                |(mut a, x), (b, y)| {
                    a.extend(b);
                    (a, x.wrapping_add(y))
                },
            );
        digest.sum = digest.sum.wrapping_add(held_sum);
        if listed.is_some() {
            digests.push((target, digest));
        }
        let mut disputed: Vec<usize> = Vec::new();
        let mut take = |o: IdentityOutcome, claimed: &mut Vec<bool>| {
            if let Some(c) = o.claimed.and_then(|c| claimed.get_mut(c)) {
                *c = true;
            }
            ops.extend(o.ops);
            conflicts.extend(o.conflicts);
            problems.extend(o.problems);
            held_back.extend(o.held);
            sod_held.extend(o.sod);
            both_held.extend(o.both_held);
            disputed.extend(o.disputed);
        };
        for o in outcomes {
            take(o, &mut claimed);
        }
        // Correlation claims accounts: one identity at a time, so two never take the same one.
        for i in unlinked {
            let o = plan_one(i, &claimed);
            take(o, &mut claimed);
        }
        // Accounts nobody claimed: orphans (only a full listing can tell).
        if input.partial {
            continue;
        }
        disputed.sort_unstable();
        let mut unclaimed: Vec<usize> = (0..accounts.len())
            .filter(|&i| !claimed.get(i).copied().unwrap_or(true))
            .filter(|i| disputed.binary_search(i).is_err())
            .filter(|&i| !ctx.excluded.get(i).copied().unwrap_or(false))
            .collect();
        if unclaimed.is_empty() {
            continue;
        }
        if ctx.link_of_account.is_empty() {
            ctx.link_of_account = link_of_account();
        }
        unclaimed.sort_by(|&x, &y| {
            accounts
                .get(x)
                .map(|a| &a.id)
                .cmp(&accounts.get(y).map(|a| &a.id))
        });
        for i in unclaimed {
            let Some(a) = accounts.get(i) else { continue };
            let link = ctx.link_of_account.get(i).copied().flatten();
            let owned = link.is_some_and(|(_, o)| o == LinkOrigin::Created);
            let known = known.get_or_insert_with(|| {
                input
                    .identities
                    .iter()
                    .filter(|i| !is_absent(i))
                    .map(|i| &i.id)
                    .collect()
            });
            let former = link
                .map(|(who, _)| who.clone())
                .filter(|who| !known.contains(who));
            orphans.push(Orphan {
                target: target.clone(),
                account: a.id.clone(),
                login: a.login.clone(),
                former_identity: former,
                owned,
            });
            let reason = match link {
                Some((who, _)) => {
                    format!("orphan: linked to {who}, who is no longer in any source")
                }
                None => "orphan: no identity explains this account".to_owned(),
            };
            // An account no link holds was never the engine's: reported,
            // and acted on only where the target opts in.
            let policy = if link.is_none() && !ctx.opts.orphans_unlinked {
                OrphanPolicy::Report
            } else {
                ctx.opts.orphans
            };
            let op = match policy {
                OrphanPolicy::Report => None,
                OrphanPolicy::Delete
                    if ctx.opts.can_delete
                        && (owned || (link.is_some() && ctx.opts.delete_linked)) =>
                {
                    Some(PlannedOp::new(
                        target.clone(),
                        None,
                        OpKind::Delete {
                            account: a.id.clone(),
                        },
                        vec![reason],
                    ))
                }
                OrphanPolicy::Disable | OrphanPolicy::Delete => (a.enabled && ctx.opts.can_disable)
                    .then(|| {
                        let acct = AccountRef::Existing { id: a.id.clone() };
                        PlannedOp::new(
                            target.clone(),
                            None,
                            OpKind::SetEnabled {
                                account: acct,
                                enabled: false,
                            },
                            vec![reason],
                        )
                    }),
            };
            if let Some(mut op) = op {
                op.account_login = Some(a.login.clone());
                ops.push(op);
            }
        }
    }
    (
        Planned {
            ops,
            conflicts,
            orphans,
            problems,
            held: held_back,
            sod: sod_held,
            both_held,
        },
        digests,
    )
}

/// Whether the engine made `who` up for an identity gone from the sources.
fn is_absent(who: &prov_core::Identity) -> bool {
    who.attributes.contains_key(crate::leavers::ABSENT)
}
