//! Correlation: which existing account an identity with no link holds.

use std::borrow::Cow;
use std::collections::BTreeSet;

use prov_core::{Account, Identity, Value};
use prov_resolver::AccountView;

use super::index::{FastMap, MultiIndex};
use super::target::TargetCtx;
use super::{Adopt, Correlation, TargetOptions};

/// The value `rule` looks for on accounts for `who`, whose login is
/// `login`: none when the identity has no such value (or an empty one).
/// The planner and the event's lookups both take it from here.
pub(crate) fn correlation_key(rule: &Correlation, who: &Identity, login: &str) -> Option<String> {
    let key = match rule.identity_field.as_str() {
        "login" => Some(login.to_owned()),
        "id" => Some(who.id.as_str().to_owned()),
        attr => who.attributes.get(attr).and_then(value_text),
    };
    key.filter(|k| !k.is_empty())
}

/// The rules a target correlates with, in order: the configured ones, and
/// the planned login last when no rule names it, so that an account with
/// that login is always seen (linked under [`Adopt::Login`], a conflict
/// otherwise) and never met as a create the target refuses. The planner
/// and the event's lookups both take them from here.
pub(crate) fn correlation_rules(
    opts: &TargetOptions,
) -> impl Iterator<Item = Cow<'_, Correlation>> {
    let implicit = (!opts.correlation.iter().any(Correlation::is_login))
        .then(|| Cow::Owned(Correlation::login()));
    opts.correlation.iter().map(Cow::Borrowed).chain(implicit)
}

pub(super) enum Correlated<'a> {
    None,
    /// One account matches this rule.
    One(usize, &'a Account, Correlation),
    /// Several accounts match one rule (their positions, by id).
    Many(Vec<usize>),
    /// Only the planned login matches, on accounts no link holds, and the
    /// target does not adopt by login (their positions, by id).
    LoginOnly(Vec<usize>),
}

pub(super) fn correlate<'a>(
    ctx: &TargetCtx<'a>,
    who: &Identity,
    want: AccountView<'_>,
    claimed: &[bool],
) -> Correlated<'a> {
    let mut login_only = Vec::new();
    for rule in correlation_rules(ctx.opts) {
        let Some(key) = correlation_key(&rule, who, want.login) else {
            continue;
        };
        let mut found: Vec<usize> = if rule.account_field == "login" {
            ctx.by_login.get(&key)
        } else {
            ctx.by_attribute
                .get(rule.account_field.as_str())
                .map(|values| values.get(&key))
                .unwrap_or_default()
        };
        // An account linked to someone else, or claimed this run, is
        // theirs; one the target excludes is no one's to correlate.
        found.retain(|i| {
            !claimed.get(*i).copied().unwrap_or(false)
                && !ctx.excluded.get(*i).copied().unwrap_or(false)
                && ctx
                    .link_of_account
                    .get(*i)
                    .copied()
                    .flatten()
                    .is_none_or(|(owner, _)| owner == &who.id)
        });
        let mut found: Vec<(usize, &'a Account)> = found
            .into_iter()
            .filter_map(|i| ctx.accounts.get(i).map(|a| (i, a)))
            .collect();
        found.sort_by(|a, b| a.1.id.cmp(&b.1.id));
        if found.is_empty() {
            continue;
        }
        // The planned login alone does not say whose an account is: a
        // later rule on an attribute may still say it; if none does, it
        // is a conflict (unless the target adopts by login).
        if rule.is_login() && ctx.opts.adopt != Adopt::Login {
            if login_only.is_empty() {
                login_only = found.iter().map(|(i, _)| *i).collect();
            }
            continue;
        }
        return match found.as_slice() {
            [(i, one)] => Correlated::One(*i, one, rule.into_owned()),
            many => Correlated::Many(many.iter().map(|(i, _)| *i).collect()),
        };
    }
    if login_only.is_empty() {
        Correlated::None
    } else {
        Correlated::LoginOnly(login_only)
    }
}

/// Each correlation rule's account attribute, indexed by value ignoring
/// ASCII case (a number by its text).
pub(super) fn attribute_indexes<'a>(
    accounts: &'a [Account],
    rules: &'a [Correlation],
) -> FastMap<&'a str, MultiIndex<'a>> {
    let fields: BTreeSet<&str> = rules
        .iter()
        .map(|r| r.account_field.as_str())
        .filter(|f| *f != "login")
        .collect();
    fields
        .into_iter()
        .map(|field| {
            let values = accounts
                .iter()
                .map(|a| match a.attributes.get(field) {
                    Some(Value::String(s)) => Some(Cow::Borrowed(s.as_str())),
                    Some(Value::Int(i)) => Some(Cow::Owned(i.to_string())),
                    _ => None,
                })
                .collect();
            (field, MultiIndex::new(values, true))
        })
        .collect()
}

fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}
