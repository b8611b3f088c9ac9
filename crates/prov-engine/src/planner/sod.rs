//! Separation-of-duties rules with `resolve = "remove_newer"`: when an
//! identity already holds both sides of such a rule, the side granted last
//! is revoked, if the grant ledger dates every grant involved.
//!
//! This runs after every target is planned, since a rule's sides may live
//! on different targets.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use prov_core::{AccountId, EntitlementId, IdentityId, TargetId};

use crate::ledger::GrantRecord;
use crate::plan::{AccountRef, OpKind, PlannedOp};

/// An entitlement an account holds that is one side of a `remove_newer`
/// rule its identity breaks.
#[derive(Debug, Clone)]
pub(super) struct BothHeld {
    pub(super) identity: IdentityId,
    pub(super) rule: String,
    /// `role NAME` or `TARGET:ENTITLEMENT`.
    pub(super) side: String,
    pub(super) target: TargetId,
    pub(super) account: AccountId,
    pub(super) login: String,
    pub(super) entitlement: EntitlementId,
}

/// The revokes of each newer side, and a line for every rule decided or
/// left alone (for [`Plan::sod`](crate::Plan)).
pub(super) fn remove_newer(
    held: Vec<BothHeld>,
    grants: &[GrantRecord],
) -> (Vec<PlannedOp>, Vec<String>) {
    let mut ops = Vec::new();
    let mut lines = Vec::new();
    if held.is_empty() {
        return (ops, lines);
    }
    let dated: HashMap<(&TargetId, &AccountId, &EntitlementId), DateTime<Utc>> = grants
        .iter()
        .map(|g| ((&g.target, &g.account, &g.entitlement), g.granted_at))
        .collect();
    // identity -> rule -> side -> what it holds of that side.
    let mut by_rule: BTreeMap<(IdentityId, String), BTreeMap<String, Vec<BothHeld>>> =
        BTreeMap::new();
    for h in held {
        by_rule
            .entry((h.identity.clone(), h.rule.clone()))
            .or_default()
            .entry(h.side.clone())
            .or_default()
            .push(h);
    }
    let when = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    for ((who, rule), sides) in by_rule {
        if sides.len() < 2 {
            continue; // the other side is not held: the grant hold covers it
        }
        let names: Vec<&str> = sides.keys().map(String::as_str).collect();
        // Each side's date: its latest grant; none when any grant of it has none.
        let mut dates: Vec<(&str, Option<DateTime<Utc>>)> = Vec::with_capacity(sides.len());
        for (side, items) in &sides {
            let mut latest: Option<DateTime<Utc>> = None;
            let mut undated = false;
            for h in items {
                match dated.get(&(&h.target, &h.account, &h.entitlement)) {
                    Some(&t) => latest = Some(latest.map_or(t, |l| l.max(t))),
                    None => undated = true,
                }
            }
            dates.push((side, if undated { None } else { latest }));
        }
        let Some(all) = dates
            .iter()
            .map(|&(side, t)| t.map(|t| (t, side)))
            .collect::<Option<Vec<_>>>()
        else {
            let undated: Vec<&str> = dates
                .iter()
                .filter(|(_, t)| t.is_none())
                .map(|&(s, _)| s)
                .collect();
            lines.push(format!(
                "{who} holds both sides of rule {rule} ({}); which was granted last is not known \
                 (no grant date for {}: granted outside prov or before it kept grant dates), so \
                 it is left alone: a person decides",
                names.join(" + "),
                undated.join(", ")
            ));
            continue;
        };
        let mut all = all;
        all.sort();
        let (Some(&(newest, side)), Some(&(before, _))) = (all.last(), all.iter().rev().nth(1))
        else {
            continue;
        };
        if newest == before {
            lines.push(format!(
                "{who} holds both sides of rule {rule} ({}), granted at the same time ({}), so \
                 neither is the newer: left alone, a person decides",
                names.join(" + "),
                when(newest)
            ));
            continue;
        }
        let older: Vec<String> = all
            .iter()
            .filter(|(_, s)| *s != side)
            .map(|(t, s)| format!("{s}, granted {}", when(*t)))
            .collect();
        let reason = format!(
            "separation-of-duties rule {rule} (resolve = remove_newer): {side} was granted last, {}, \
             after {}",
            when(newest),
            older.join("; ")
        );
        for h in sides.get(side).into_iter().flatten() {
            lines.push(format!(
                "{}: {who}'s {} is revoked: {reason}",
                h.target, h.entitlement
            ));
            let mut op = PlannedOp::new(
                h.target.clone(),
                Some(who.clone()),
                OpKind::Revoke {
                    account: AccountRef::Existing {
                        id: h.account.clone(),
                    },
                    entitlement: h.entitlement.clone(),
                },
                vec![reason.clone()],
            );
            op.account_login = Some(h.login.clone());
            ops.push(op);
        }
    }
    (ops, lines)
}
