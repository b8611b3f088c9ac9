//! What the server tells the host service: every change it accepted, as
//! a [`ScimEvent`] given to the listeners registered with
//! [`super::ScimServer::on_event`], after the store took the write and
//! before the client gets its answer.

use serde_json::Value;

use super::Kind;
use crate::types::Password;

/// A change the server accepted.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ScimEvent {
    /// A user or group was created.
    Created {
        /// The tenant.
        tenant: String,
        /// User or group.
        kind: Kind,
        /// Its id.
        id: String,
        /// It, as a client would read it.
        resource: Value,
        /// The password the request set (users only): the one time the
        /// host sees it, to set its own credentials. Never stored here.
        password: Option<Password>,
    },
    /// A user or group was replaced or patched.
    Updated {
        /// The tenant.
        tenant: String,
        /// User or group.
        kind: Kind,
        /// Its id.
        id: String,
        /// It before.
        before: Value,
        /// It after.
        after: Value,
        /// The password the request set, if it set one.
        password: Option<Password>,
    },
    /// A user's `active` went from true (or unset) to false: the
    /// identity provider deactivated them (Okta and Entra ID send this
    /// before, or instead of, a delete). Sent besides [`ScimEvent::Updated`].
    Deactivated {
        /// The tenant.
        tenant: String,
        /// The user's id.
        id: String,
    },
    /// A user's `active` went from false to true. Sent besides [`ScimEvent::Updated`].
    Reactivated {
        /// The tenant.
        tenant: String,
        /// The user's id.
        id: String,
    },
    /// A user or group was deleted.
    Deleted {
        /// The tenant.
        tenant: String,
        /// User or group.
        kind: Kind,
        /// Its id.
        id: String,
    },
    /// A group's members changed: by a create, a replace or patch of the
    /// group, or a member's deletion.
    MembershipChanged {
        /// The tenant.
        tenant: String,
        /// The group's id.
        group: String,
        /// Ids that became members.
        added: Vec<String>,
        /// Ids that stopped being members.
        removed: Vec<String>,
    },
}

/// A listener.
pub(super) type Listener = std::sync::Arc<dyn Fn(&ScimEvent) + Send + Sync>;

/// The ids in a resource's `members`.
pub(super) fn members(resource: &serde_json::Map<String, Value>) -> Vec<String> {
    let mut out: Vec<String> = resource
        .get("members")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("value").and_then(Value::as_str).map(str::to_owned))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// What joined and what left between two member lists (both sorted).
pub(super) fn membership(before: &[String], after: &[String]) -> (Vec<String>, Vec<String>) {
    let added = after
        .iter()
        .filter(|m| before.binary_search(m).is_err())
        .cloned()
        .collect();
    let removed = before
        .iter()
        .filter(|m| after.binary_search(m).is_err())
        .cloned()
        .collect();
    (added, removed)
}

/// Whether a user is active: `active` true, or unset.
pub(super) fn active(resource: &serde_json::Map<String, Value>) -> bool {
    resource
        .get("active")
        .and_then(Value::as_bool)
        .unwrap_or(true)
}
