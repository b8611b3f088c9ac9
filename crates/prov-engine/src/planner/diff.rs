//! Attribute differences between the account a template wants and the
//! one a target lists.

use prov_core::{Account, AttributeDelta};
use prov_resolver::AccountView;

/// Whether two logins are one (ASCII case ignored on a target that
/// ignores it: a rename that changes only case is no change there).
pub(super) fn same_login(fold_case: bool, a: &str, b: &str) -> bool {
    if fold_case {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

/// Whether `acct` differs from `want` in anything the template manages,
/// checked without allocating (the common case is "no").
pub(super) fn differs(
    managed: &[&str],
    fold_case: bool,
    want: AccountView<'_>,
    acct: &Account,
) -> bool {
    (want.login_held.is_none() && !same_login(fold_case, &acct.login, want.login))
        || want
            .attributes
            .iter()
            .any(|(k, v)| acct.attributes.get(k) != Some(v))
        || managed.iter().any(|k| removes(want, acct, k))
}

/// Whether the template no longer sets managed attribute `k` that the
/// account has, so it is to be removed: not when it is kept (its input is
/// missing, so what it should be is unknown).
fn removes(want: AccountView<'_>, acct: &Account, k: &str) -> bool {
    !want.attributes.contains_key(k)
        && acct.attributes.contains_key(k)
        && !want.kept.iter().any(|(name, _)| name == k)
}

/// The change that brings `acct` to `want`, touching only the attributes
/// the target's template manages.
pub(super) fn attribute_delta(
    managed: &[&str],
    fold_case: bool,
    want: AccountView<'_>,
    acct: &Account,
) -> AttributeDelta {
    let mut delta = AttributeDelta::default();
    for (k, v) in want.attributes {
        if acct.attributes.get(k) != Some(v) {
            delta.set.insert(k.clone(), v.clone());
        }
    }
    for k in managed {
        if removes(want, acct, k) {
            delta.remove.insert((*k).to_owned());
        }
    }
    if want.login_held.is_none() && !same_login(fold_case, &acct.login, want.login) {
        delta.login = Some(want.login.to_owned());
    }
    delta
}
