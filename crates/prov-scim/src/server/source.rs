//! The directory an identity provider provisioned into us, as the
//! engine's identity source: Okta or Entra ID provisions people in, and
//! prov provisions them onward to LDAP, cloud IAM and SaaS.
//!
//! A user becomes an [`Identity`]: its id is the identity provider's own
//! (`externalId`; the server's id when the provider sent none), so the
//! same person keeps the same identity if their user is recreated here.
//! `active: false` is [`LifecycleState::Suspended`] (access disabled,
//! accounts kept); a user deleted here is absent from the source, which
//! the engine treats as a leaver. The attributes, for the policy's rules
//! and templates: `login` (userName), `given_name`, `family_name`,
//! `display_name`, `email` (the primary, else the first), `title`,
//! `user_type`, `locale`, the enterprise extension's `employee_number`,
//! `department`, `cost_center`, `organization`, `division`, and `groups`
//! (the display names of the groups the user is in), and the manager (by
//! the manager's identity id).

use std::collections::HashMap;

use prov_core::{Identity, IdentityId, LifecycleState, Value as Attr};
use serde_json::Value;

use super::store::{Kind, Query, ScimStore, StoreError, Stored};
use crate::schema::ENTERPRISE_USER;

/// Every user of `tenant` as an identity (see the module's docs).
pub async fn identities<S: ScimStore>(
    store: &S,
    tenant: &str,
) -> Result<Vec<Identity>, StoreError> {
    let users = all(store, tenant, Kind::User).await?;
    let groups = all(store, tenant, Kind::Group).await?;
    // Group names per member, from one read of the groups.
    let mut names: HashMap<&str, Vec<String>> = HashMap::new();
    for g in &groups {
        let name = g.text("displayName").unwrap_or_default();
        for m in g.values("members") {
            names.entry(m).or_default().push(name.to_owned());
        }
    }
    let key = |u: &Stored| u.text("externalId").unwrap_or(&u.id).to_owned();
    let by_id: HashMap<&str, String> = users.iter().map(|u| (u.id.as_str(), key(u))).collect();
    Ok(users
        .iter()
        .map(|u| identity(u, &key(u), names.get(u.id.as_str()), &by_id))
        .collect())
}

async fn all<S: ScimStore>(store: &S, tenant: &str, kind: Kind) -> Result<Vec<Stored>, StoreError> {
    const PAGE: u64 = 1000;
    let mut out = Vec::new();
    loop {
        let q = Query {
            start_index: u64::try_from(out.len())
                .unwrap_or(u64::MAX)
                .saturating_add(1),
            count: PAGE,
            ..Query::default()
        };
        let found = store.query(tenant, kind, &q).await?;
        let n = found.resources.len();
        out.extend(found.resources);
        if n == 0 || u64::try_from(out.len()).unwrap_or(u64::MAX) >= found.total {
            return Ok(out);
        }
    }
}

fn identity(
    u: &Stored,
    id: &str,
    groups: Option<&Vec<String>>,
    by_id: &HashMap<&str, String>,
) -> Identity {
    let a = &u.attributes;
    let text = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let mut person = Identity::new(id);
    let mut put = |name: &str, v: Option<String>| {
        if let Some(v) = v {
            person.attributes.insert(name.to_owned(), Attr::String(v));
        }
    };
    put("login", text(a.get("userName")));
    put(
        "given_name",
        text(a.get("name").and_then(|n| n.get("givenName"))),
    );
    put(
        "family_name",
        text(a.get("name").and_then(|n| n.get("familyName"))),
    );
    put("display_name", text(a.get("displayName")));
    put("title", text(a.get("title")));
    put("user_type", text(a.get("userType")));
    put("locale", text(a.get("locale")));
    let emails = a.get("emails").and_then(Value::as_array);
    let email = emails.and_then(|list| {
        list.iter()
            .find(|e| e.get("primary") == Some(&Value::Bool(true)))
            .or_else(|| list.first())
            .and_then(|e| text(e.get("value")))
    });
    put("email", email);
    let ext = a.get(ENTERPRISE_USER);
    for (attr, name) in [
        ("employeeNumber", "employee_number"),
        ("department", "department"),
        ("costCenter", "cost_center"),
        ("organization", "organization"),
        ("division", "division"),
    ] {
        put(name, text(ext.and_then(|e| e.get(attr))));
    }
    if let Some(g) = groups {
        let mut g = g.clone();
        g.sort();
        person.attributes.insert(
            "groups".to_owned(),
            Attr::List(g.into_iter().map(Attr::String).collect()),
        );
    }
    person.manager = ext
        .and_then(|e| e.get("manager"))
        .and_then(|m| m.get("value"))
        .and_then(Value::as_str)
        .map(|m| IdentityId::new(by_id.get(m).map_or(m, String::as_str)));
    person.state = if a.get("active").and_then(Value::as_bool) == Some(false) {
        LifecycleState::Suspended
    } else {
        LifecycleState::Active
    };
    person
}

/// The identities of one tenant, read once, as a [`prov_sources::Source`]:
/// for code that takes a source (read it again with [`ScimSource::read`]
/// before each plan; the engine itself takes the identities as they are).
#[derive(Debug, Clone)]
pub struct ScimSource {
    name: String,
    people: Vec<Identity>,
}

impl ScimSource {
    /// Every user of `tenant` in `store`, now.
    pub async fn read<S: ScimStore>(store: &S, tenant: &str) -> Result<Self, StoreError> {
        Ok(ScimSource {
            name: format!("SCIM tenant {tenant}"),
            people: identities(store, tenant).await?,
        })
    }
}

impl prov_sources::Source for ScimSource {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn load(&self) -> Result<Vec<Identity>, prov_sources::SourceErrors> {
        Ok(self.people.clone())
    }
}
