//! What the server keeps resources in: the [`ScimStore`] trait a host
//! service implements over its own tables, and what goes through it.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::filter::{AttrPath, Filter};

/// The two resource types the server serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Kind {
    /// `/Users`.
    User,
    /// `/Groups`.
    Group,
}

impl Kind {
    /// `User` or `Group`, as `meta.resourceType` says.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::User => "User",
            Kind::Group => "Group",
        }
    }

    /// The endpoint: `Users` or `Groups`.
    pub fn endpoint(self) -> &'static str {
        match self {
            Kind::User => "Users",
            Kind::Group => "Groups",
        }
    }

    /// The resource type's schemas.
    pub fn schema(self) -> &'static crate::schema::ResourceSchema {
        match self {
            Kind::User => &crate::schema::USER_RESOURCE,
            Kind::Group => &crate::schema::GROUP_RESOURCE,
        }
    }
}

/// A resource as stored: the server's bookkeeping beside the attributes.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Stored {
    /// Its id, the server's.
    pub id: String,
    /// Its version: 1 when created, one more on each change.
    pub version: u64,
    /// When it was created.
    pub created: DateTime<Utc>,
    /// When it last changed.
    pub modified: DateTime<Utc>,
    /// Its attributes, canonically spelled, without `id` and `meta` (the
    /// fields above) and without a user's `groups` (computed on read).
    pub attributes: Map<String, Value>,
}

impl Stored {
    /// A resource `id` at version 1, made at `now`.
    pub fn new(id: impl Into<String>, attributes: Map<String, Value>, now: DateTime<Utc>) -> Self {
        Stored {
            id: id.into(),
            version: 1,
            created: now,
            modified: now,
            attributes,
        }
    }

    /// An attribute's string value, for indexes (`userName`, `displayName`, ...).
    pub fn text(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).and_then(Value::as_str)
    }

    /// The `value`s of a multi-valued attribute (`emails`, `members`).
    pub fn values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.attributes
            .get(name)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.get("value").and_then(Value::as_str))
    }
}

/// Which resources a list asks for, and in what order.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Query {
    /// Only those matching.
    pub filter: Option<Filter>,
    /// Sorted by this attribute (ascending unless `descending`); unsorted
    /// lists come in creation order, the same order on every page.
    pub sort_by: Option<AttrPath>,
    /// Descending order.
    pub descending: bool,
    /// The 1-based index of the first to return.
    pub start_index: u64,
    /// At most this many.
    pub count: u64,
}

/// A page of a query.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Found {
    /// How many match in all.
    pub total: u64,
    /// The page.
    pub resources: Vec<Stored>,
}

/// Why a store refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// Another resource has this unique attribute's value (`userName`,
    /// ignoring case): 409 `uniqueness`.
    Taken(&'static str),
    /// No such resource: 404.
    NotFound,
    /// The resource changed since the version given: 412.
    Changed,
    /// The store failed: 500 (the detail is logged by the host, not sent).
    Failed(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Taken(attr) => write!(f, "another resource has this {attr}"),
            StoreError::NotFound => f.write_str("no such resource"),
            StoreError::Changed => f.write_str("the resource changed since that version"),
            StoreError::Failed(e) => write!(f, "the store failed: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// Where the server keeps each tenant's resources.
///
/// # Contract
/// - Tenants never see each other's resources: every call names the tenant.
/// - `insert` and `update` refuse a `userName` another user of the tenant
///   has, ignoring case ([`StoreError::Taken`]), atomically with the write.
/// - `update` writes only when the stored version is `expected` (else
///   [`StoreError::Changed`]), and stores the version it is given.
/// - `delete` of a user or group also takes it out of every group's
///   `members` (bumping those groups' versions), in the same write.
/// - `query` answers `userName`, `externalId`, `emails.value` and
///   `displayName` equalities from an index, not a scan; its order is
///   stable across pages; `total` counts every match.
/// - `groups_of` answers from an index of members.
#[async_trait::async_trait]
pub trait ScimStore: Send + Sync + 'static {
    /// Stores a new resource.
    async fn insert(&self, tenant: &str, kind: Kind, resource: Stored) -> Result<(), StoreError>;

    /// The resource `id`.
    async fn get(&self, tenant: &str, kind: Kind, id: &str) -> Result<Option<Stored>, StoreError>;

    /// Replaces the resource `resource.id`, if its version is still `expected`.
    async fn update(
        &self,
        tenant: &str,
        kind: Kind,
        resource: Stored,
        expected: u64,
    ) -> Result<(), StoreError>;

    /// Deletes the resource `id` (and its memberships); false when there was none.
    async fn delete(&self, tenant: &str, kind: Kind, id: &str) -> Result<bool, StoreError>;

    /// A page of the resources matching `query`.
    async fn query(&self, tenant: &str, kind: Kind, query: &Query) -> Result<Found, StoreError>;

    /// The groups `member` (a user's or a group's id) is a direct member
    /// of: their ids and display names.
    async fn groups_of(
        &self,
        tenant: &str,
        member: &str,
    ) -> Result<Vec<(String, String)>, StoreError>;

    /// Of `ids`, those that are neither a user nor a group of the tenant.
    async fn missing(&self, tenant: &str, ids: &[&str]) -> Result<Vec<String>, StoreError>;
}

/// The attributes a store indexes, per kind: name, whether multi-valued
/// (its values' `value` is indexed), whether case-exact (else the index
/// holds the lower-cased value). What the [`ScimStore`] contract's
/// equalities need, and a user's groups (`members`).
pub(crate) const INDEXED: &[(Kind, &str, bool, bool)] = &[
    (Kind::User, "userName", false, false),
    (Kind::User, "externalId", false, true),
    (Kind::User, "emails", true, false),
    (Kind::Group, "displayName", false, false),
    (Kind::Group, "externalId", false, true),
    (Kind::Group, "members", true, true),
];

/// A resource's index entries: (attribute, value as indexed), no repeats.
pub(crate) fn index_keys(kind: Kind, r: &Stored) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for (k, name, multi, exact) in INDEXED {
        if *k != kind {
            continue;
        }
        let fold = |s: &str| {
            if *exact {
                s.to_owned()
            } else {
                s.to_lowercase()
            }
        };
        if *multi {
            let mut vals: Vec<String> = r.values(name).map(fold).collect();
            vals.sort();
            vals.dedup();
            out.extend(vals.into_iter().map(|v| (*name, v)));
        } else if let Some(v) = r.text(name) {
            out.push((*name, fold(v)));
        }
    }
    out
}

/// The indexed equality a filter is (alone or in a top-level `and`): the
/// index attribute and the value as indexed; `None` when it needs a scan.
pub(crate) fn indexed_equality(kind: Kind, filter: &Filter) -> Option<(&'static str, String)> {
    use crate::filter::CompValue;
    let lookup = |f: &Filter| {
        let (path, CompValue::String(value)) = f.as_equality()? else {
            return None;
        };
        if path
            .urn
            .as_deref()
            .is_some_and(|u| !u.eq_ignore_ascii_case(kind.schema().urn))
        {
            return None;
        }
        INDEXED.iter().find_map(|(k, name, multi, exact)| {
            let sub_ok = if *multi {
                path.sub
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case("value"))
            } else {
                path.sub.is_none()
            };
            (*k == kind && path.name.eq_ignore_ascii_case(name) && sub_ok).then(|| {
                (
                    *name,
                    if *exact {
                        value.clone()
                    } else {
                        value.to_lowercase()
                    },
                )
            })
        })
    };
    match filter {
        Filter::And(items) => items.iter().find_map(lookup),
        f => lookup(f),
    }
}

/// Sorts resources by `by` (strings ignoring case, numbers by value,
/// absent values last), stable: equal ones keep their order.
pub(crate) fn sort_resources<T: std::borrow::Borrow<Stored>>(
    kind: Kind,
    items: &mut Vec<T>,
    by: &AttrPath,
    descending: bool,
) {
    let key = |r: &Stored| {
        let json = super::resource_json(kind, r, None);
        match super::first_value(&json, by) {
            Some(Value::String(s)) => (0u8, s.to_lowercase(), 0.0),
            Some(Value::Number(n)) => (0, String::new(), n.as_f64().unwrap_or(0.0)),
            Some(Value::Bool(b)) => (0, b.to_string(), 0.0),
            _ => (1, String::new(), 0.0),
        }
    };
    let mut keyed: Vec<((u8, String, f64), T)> =
        items.drain(..).map(|t| (key(t.borrow()), t)).collect();
    keyed.sort_by(|(a, _), (b, _)| {
        let o =
            a.0.cmp(&b.0)
                .then_with(|| a.1.cmp(&b.1))
                .then(a.2.partial_cmp(&b.2).unwrap_or(std::cmp::Ordering::Equal));
        if descending { o.reverse() } else { o }
    });
    items.extend(keyed.into_iter().map(|(_, t)| t));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::{Kind, indexed_equality};
    use crate::filter::Filter;

    /// The equalities the contract names are answered from the index
    /// (both stores ask this function); anything else is a scan.
    #[test]
    fn the_named_equalities_use_the_index() {
        let on = |kind: Kind, f: &str| indexed_equality(kind, &f.parse::<Filter>().unwrap());
        assert_eq!(
            on(Kind::User, r#"userName eq "BJensen""#),
            Some(("userName", "bjensen".to_owned()))
        );
        assert_eq!(
            on(Kind::User, r#"externalId eq "Ext-1""#),
            Some(("externalId", "Ext-1".to_owned()))
        );
        assert_eq!(
            on(Kind::User, r#"emails.value eq "B@Example.org""#),
            Some(("emails", "b@example.org".to_owned()))
        );
        assert_eq!(
            on(Kind::Group, r#"displayName eq "Eng""#),
            Some(("displayName", "eng".to_owned()))
        );
        assert_eq!(
            on(Kind::Group, r#"members.value eq "u1""#),
            Some(("members", "u1".to_owned()))
        );
        assert_eq!(
            on(
                Kind::User,
                r#"active eq true and urn:ietf:params:scim:schemas:core:2.0:User:userName eq "a""#
            ),
            Some(("userName", "a".to_owned())),
            "an equality inside a top-level and"
        );
        for scan in [
            r#"userName sw "b""#,
            r#"userName eq "a" or userName eq "b""#,
            r#"title eq "x""#,
            r#"emails.type eq "work""#,
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:userName eq "a""#,
            "userName eq 1",
        ] {
            assert_eq!(on(Kind::User, scan), None, "{scan}");
        }
        assert_eq!(on(Kind::Group, r#"userName eq "a""#), None);
    }
}
