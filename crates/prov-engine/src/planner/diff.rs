//! Attribute differences between the account a template wants and the
//! one a target lists.

use prov_core::{Account, AttributeDelta};
use prov_resolver::AccountView;

/// Whether `acct` differs from `want` in anything the template manages,
/// checked without allocating (the common case is "no").
pub(super) fn differs(managed: &[&str], want: AccountView<'_>, acct: &Account) -> bool {
    acct.login != want.login
        || want
            .attributes
            .iter()
            .any(|(k, v)| acct.attributes.get(k) != Some(v))
        || managed
            .iter()
            .any(|k| !want.attributes.contains_key(*k) && acct.attributes.contains_key(*k))
}

/// The change that brings `acct` to `want`, touching only the attributes
/// the target's template manages.
pub(super) fn attribute_delta(
    managed: &[&str],
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
        if !want.attributes.contains_key(*k) && acct.attributes.contains_key(*k) {
            delta.remove.insert((*k).to_owned());
        }
    }
    if acct.login != want.login {
        delta.login = Some(want.login.to_owned());
    }
    delta
}
