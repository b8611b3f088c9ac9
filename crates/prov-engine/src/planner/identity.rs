//! Planning one identity on one target: find its account, then create,
//! update, grant, revoke, enable, disable or delete.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use prov_core::{Account, AccountId, EntitlementId, Identity, LifecycleState, TargetId};
use prov_resolver::{CompiledPolicy, LeaverAction, Resolution};

use super::correlate::{Correlated, correlate};
use super::diff::{attribute_delta, differs};
use super::sod::BothHeld;
use super::target::{IdentityOutcome, TargetCtx};
use crate::ledger::LinkOrigin;
use crate::plan::{AccountRef, Conflict, OpKind, PlannedOp};

pub(super) fn plan_identity<'a>(
    policy: &CompiledPolicy,
    who: &'a Identity,
    res: &Resolution,
    now: DateTime<Utc>,
    ctx: &TargetCtx<'a>,
    held: Option<(usize, LinkOrigin)>,
    claimed: &[bool],
) -> IdentityOutcome {
    let mut out = IdentityOutcome::default();
    let target = ctx.target;
    let fold = ctx.opts.login_case_insensitive;
    let view = policy.targets_of(res).find(|v| v.target == Some(target));
    let desired_account = view.as_ref().and_then(|v| v.account);
    let op = |kind: OpKind, reasons: Vec<String>| {
        PlannedOp::new(target.clone(), Some(who.id.clone()), kind, reasons)
    };

    // Find the identity's account: a link first, then correlation.
    let linked = held;
    let mut current: Option<(usize, &Account, LinkOrigin)> =
        linked.and_then(|(i, origin)| ctx.accounts.get(i).map(|a| (i, a, origin)));
    // Whether the identity should have an account here cannot be told (its
    // condition reads a missing value): nothing changes on this target, and
    // its account stays its own (not an orphan).
    if let Some(why) = view.as_ref().and_then(|v| v.held) {
        out.claimed = current.map(|(i, _, _)| i);
        if let Some((_, acct, _)) = current {
            out.held.push(format!(
                "{target}: {}'s changes are held (account {}): {why}",
                who.id, acct.login
            ));
        }
        return out;
    }
    // No login: no account can be made or matched for it.
    if current.is_none()
        && let Some(why) = desired_account.and_then(|w| w.login_held)
    {
        if res.state != LifecycleState::Terminated {
            out.held.push(format!(
                "{target}: no account is made or matched for {}: {why}",
                who.id
            ));
        }
        return out;
    }
    if current.is_none()
        && let Some(want) = desired_account
    {
        match correlate(ctx, who, want, claimed) {
            Correlated::One(i, acct, rule) => {
                let mut link = op(
                    OpKind::Link {
                        account: acct.id.clone(),
                    },
                    vec![format!(
                        "correlated: existing account {} matches rule {} = {}",
                        acct.login, rule.account_field, rule.identity_field
                    )],
                );
                link.account_login = Some(acct.login.clone());
                out.ops.push(link);
                current = Some((i, acct, LinkOrigin::Linked));
            }
            Correlated::Many(found) => {
                let ids = ids_of(ctx, &found);
                out.disputed = found;
                out.conflicts.push(Conflict {
                    target: target.clone(),
                    identity: who.id.clone(),
                    message:
                        "several existing accounts match the correlation rules; link one by hand"
                            .to_owned(),
                    accounts: ids,
                });
                return out;
            }
            Correlated::LoginOnly(found) => {
                let ids = ids_of(ctx, &found);
                out.disputed = found;
                out.conflicts.push(Conflict {
                    target: target.clone(),
                    identity: who.id.clone(),
                    message: format!(
                        "an existing account has the login {} the policy gives {}, and no link or \
                         correlation rule says it is theirs, so it is not taken over: link it by \
                         hand (prov link), add a correlation rule that matches it, or set \
                         adopt = \"login\" on the target",
                        want.login, who.id
                    ),
                    accounts: ids,
                });
                return out;
            }
            Correlated::None => {}
        }
    }
    out.claimed = current.map(|(i, _, _)| i);

    let state_reason = || match res.state {
        LifecycleState::Terminated => format!("leaver: {} is terminated", who.id),
        LifecycleState::Suspended => format!("{} is suspended", who.id),
        LifecycleState::PreHire => {
            format!("joiner: {} starts later; account prepared disabled", who.id)
        }
        _ => format!("{} is active", who.id),
    };

    match (desired_account, current) {
        (None, None) => {}
        (Some(want), None) => {
            if res.state == LifecycleState::Terminated {
                return out; // never create an account for a leaver
            }
            if let Some(max) = ctx.opts.max_login_len
                && want.login.chars().count() > max
            {
                out.problems.push(format!(
                    "{target}: {}'s login {} is {} characters, longer than the {max} the target \
                     takes: no account is created (shorten the login template)",
                    who.id,
                    want.login,
                    want.login.chars().count()
                ));
                return out;
            }
            let taken = ctx.by_login.get(want.login);
            if !taken.is_empty() {
                let ids: Vec<AccountId> = taken
                    .iter()
                    .filter_map(|&i| ctx.accounts.get(i))
                    .map(|a| a.id.clone())
                    .collect();
                out.conflicts.push(Conflict {
                    target: target.clone(),
                    identity: who.id.clone(),
                    message: format!(
                        "login {} is taken by an account another identity holds",
                        want.login
                    ),
                    accounts: ids,
                });
                return out;
            }
            // An account that should exist disabled (a pre-hire, a
            // suspension) on a target that cannot disable: created, it
            // would give access before its time. It waits.
            if !want.enabled && !ctx.opts.can_disable {
                let why = match res.state {
                    LifecycleState::PreHire => "starts later",
                    LifecycleState::Suspended => "is suspended",
                    _ => "is not active",
                };
                out.held.push(format!(
                    "{target}: {}'s account {} is not created yet: {} {why}, so it would be \
                     disabled, and the target cannot disable accounts; it is created when {} \
                     is active",
                    who.id, want.login, who.id, who.id
                ));
                return out;
            }
            for (name, why) in want.kept {
                out.held.push(format!(
                    "{target}: {}'s account is created without {name}: {why}",
                    who.id
                ));
            }
            let login = want.login.to_owned();
            out.ops.push(op(
                OpKind::Create {
                    login: login.clone(),
                    attributes: want.attributes.clone(),
                    enabled: want.enabled,
                    secret: want.secrets.keys().cloned().collect(),
                },
                vec![format!(
                    "joiner: {} should have an account on {target}",
                    who.id
                )],
            ));
            let acct = AccountRef::New { login };
            for e in view.iter().flat_map(|v| v.entitlements()) {
                if let Some(line) = sod_hold(policy, res, target, who, e) {
                    out.sod.push(line);
                    continue;
                }
                out.ops.push(op(
                    OpKind::Grant {
                        account: acct.clone(),
                        entitlement: e.clone(),
                    },
                    reasons(policy, res, target, e),
                ));
            }
        }
        (want, Some((_, acct, origin))) => {
            let aref = || AccountRef::Existing {
                id: acct.id.clone(),
            };
            let mut mine: Vec<PlannedOp> = Vec::new();
            if let Some(want) = want {
                if let Some(why) = want.login_held {
                    out.held.push(format!(
                        "{target}: {}'s login stays {}: {why}",
                        who.id, acct.login
                    ));
                }
                for (name, why) in want.kept {
                    if acct.attributes.contains_key(name) {
                        out.held.push(format!(
                            "{target}: {}'s {name} is left as it is: {why}",
                            who.id
                        ));
                    }
                }
            }
            if let Some(want) = want
                && differs(&ctx.managed_attributes, fold, want, acct)
            {
                let mut delta = attribute_delta(&ctx.managed_attributes, fold, want, acct);
                if let Some(max) = ctx.opts.max_login_len
                    && let Some(new_login) = delta.login.take_if(|l| l.chars().count() > max)
                {
                    out.problems.push(format!(
                        "{target}: {}'s login should change from {} to {new_login}, which is \
                         longer than the {max} characters the target takes: it stays {}",
                        who.id, acct.login, acct.login
                    ));
                }
                if let Some(new_login) = delta.login.take_if(|_| !ctx.opts.can_rename) {
                    out.problems.push(format!(
                        "{target}: {}'s login should change from {} to {new_login}, and the target cannot rename accounts",
                        who.id, acct.login
                    ));
                }
                let why = if delta.login.is_some() {
                    "the login template gives a new login"
                } else {
                    "the account template changed"
                };
                if !delta.is_empty() {
                    let before = delta
                        .set
                        .keys()
                        .chain(&delta.remove)
                        .filter_map(|k| acct.attributes.get(k).map(|v| (k.clone(), v.clone())))
                        .collect();
                    let mut update = op(
                        OpKind::Update {
                            account: aref(),
                            delta,
                            secret: BTreeSet::new(),
                        },
                        vec![format!("{why} for {}", who.id)],
                    );
                    update.before = before;
                    mine.push(update);
                }
            }
            // Entitlements: both sides are sorted by id, so one merge walk
            // finds what to grant and what to revoke, with no allocation when
            // nothing differs. What the policy never mentions is not the
            // engine's to take.
            let mut desired = view.iter().flat_map(|v| v.entitlements()).peekable();
            let mut held = acct.entitlements.iter().peekable();
            loop {
                match (desired.peek(), held.peek()) {
                    (None, None) => break,
                    (Some(d), Some(h)) if d == h => {
                        if res.breaks_sod()
                            && let Some((rule, side)) = policy.sod_side(res, target, d)
                        {
                            out.both_held.push(BothHeld {
                                identity: who.id.clone(),
                                rule: rule.to_owned(),
                                side,
                                target: target.clone(),
                                account: acct.id.clone(),
                                login: acct.login.clone(),
                                entitlement: (*d).clone(),
                            });
                        }
                        desired.next();
                        held.next();
                    }
                    (Some(d), h) if h.is_none_or(|h| d < h) => {
                        if let Some(line) = sod_hold(policy, res, target, who, d) {
                            out.sod.push(line);
                            desired.next();
                            continue;
                        }
                        mine.push(op(
                            OpKind::Grant {
                                account: aref(),
                                entitlement: (*d).clone(),
                            },
                            reasons(policy, res, target, d),
                        ));
                        desired.next();
                    }
                    (_, Some(h)) => {
                        if policy.manages(target, h)
                            && let Some(gap) = policy.gap_for(res, target, h)
                        {
                            // A rule that might still give it could not be
                            // evaluated: the access stays until it can be.
                            out.held
                                .push(format!("{target}: {}'s {h} is not revoked: {gap}", who.id));
                        } else if policy.manages(target, h) {
                            let why = format!(
                                "no rule, assignment or lease gives it any more ({})",
                                state_reason()
                            );
                            mine.push(op(
                                OpKind::Revoke {
                                    account: aref(),
                                    entitlement: (*h).clone(),
                                },
                                vec![why],
                            ));
                        }
                        held.next();
                    }
                    (Some(_), None) => break,
                }
            }
            let enabled = want.is_some_and(|w| w.enabled);
            if acct.enabled != enabled && !ctx.opts.can_disable {
                if !enabled {
                    out.problems.push(format!(
                        "{target}: {}'s account {} should be disabled, and the target cannot disable accounts; its access is revoked, the account stays enabled",
                        who.id, acct.login
                    ));
                }
            } else if acct.enabled
                && want.is_none()
                && let Some(gap) = policy.gap_on(res, target)
            {
                out.held.push(format!(
                    "{target}: {}'s account {} is not disabled: {gap}",
                    who.id, acct.login
                ));
            } else if acct.enabled != enabled {
                let why = match want {
                    Some(_) => state_reason(),
                    None => format!("{} is no longer entitled to an account on {target}", who.id),
                };
                let mut why = vec![why];
                // A leaver's account to be deleted later: say when.
                if let Some(plan) = want.and_then(|w| w.leaver)
                    && plan.action == LeaverAction::Delete
                    && (origin == LinkOrigin::Created || ctx.opts.delete_linked)
                    && ctx.opts.can_delete
                    && let Some(due) = plan.delete_after.filter(|d| *d > now)
                {
                    why.push(format!(
                        "leaver: deletion due {} (after the grace period)",
                        due.format("%Y-%m-%d %H:%M UTC")
                    ));
                }
                mine.push(op(
                    OpKind::SetEnabled {
                        account: aref(),
                        enabled,
                    },
                    why,
                ));
            }
            if let Some(plan) = want.and_then(|w| w.leaver)
                && plan.action == LeaverAction::Delete
                && plan.delete_after.is_some_and(|d| d <= now)
                && (origin == LinkOrigin::Created || ctx.opts.delete_linked)
                && ctx.opts.can_delete
            {
                let when = plan
                    .delete_after
                    .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_default();
                mine.push(op(
                    OpKind::Delete {
                        account: acct.id.clone(),
                    },
                    vec![format!("leaver: grace period ended {when}")],
                ));
            }
            for mut o in mine {
                o.account_login = Some(acct.login.clone());
                out.ops.push(o);
            }
        }
    }
    out
}

fn reasons(
    policy: &CompiledPolicy,
    res: &Resolution,
    target: &TargetId,
    e: &EntitlementId,
) -> Vec<String> {
    policy
        .chains(res, target, e)
        .iter()
        .map(ToString::to_string)
        .chain(policy.sod_exception(res, target, e))
        .collect()
}

/// The ids of the accounts at `positions`.
fn ids_of(ctx: &TargetCtx<'_>, positions: &[usize]) -> Vec<AccountId> {
    positions
        .iter()
        .filter_map(|&i| ctx.accounts.get(i))
        .map(|a| a.id.clone())
        .collect()
}

/// The reason `e`'s grant to `who` on `target` is held, when it would
/// complete a separation-of-duties rule enforced as `prevent`.
fn sod_hold(
    policy: &CompiledPolicy,
    res: &Resolution,
    target: &TargetId,
    who: &Identity,
    e: &EntitlementId,
) -> Option<String> {
    let (rule, description) = policy.sod_conflict(res, target, e)?;
    Some(format!(
        "{target}: {}'s grant of {e} is held: it would complete separation-of-duties rule {rule}{}; \
         a person decides",
        who.id,
        description.map(|d| format!(" ({d})")).unwrap_or_default()
    ))
}
