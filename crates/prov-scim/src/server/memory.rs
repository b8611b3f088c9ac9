//! [`MemoryStore`]: every tenant's resources in memory, with the indexes
//! the [`ScimStore`] contract asks for.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{PoisonError, RwLock};

use serde_json::Value;

use super::store::{
    Found, Kind, Query, ScimStore, StoreError, Stored, index_keys, indexed_equality, sort_resources,
};
use crate::filter::Filter;

/// Resources in memory, per tenant. For tests, demos and services whose
/// SCIM data need not outlive the process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    tenants: RwLock<HashMap<String, Tenant>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }
}

#[derive(Debug, Default)]
struct Tenant {
    users: Table,
    groups: Table,
    next: u64,
}

impl Tenant {
    fn table(&mut self, kind: Kind) -> &mut Table {
        match kind {
            Kind::User => &mut self.users,
            Kind::Group => &mut self.groups,
        }
    }

    fn table_ref(&self, kind: Kind) -> &Table {
        match kind {
            Kind::User => &self.users,
            Kind::Group => &self.groups,
        }
    }
}

#[derive(Debug, Default)]
struct Table {
    /// id -> (creation sequence, resource).
    by_id: HashMap<String, (u64, Stored)>,
    /// Creation order.
    order: BTreeMap<u64, String>,
    /// (attribute, value as compared) -> creation sequences.
    index: HashMap<(&'static str, String), BTreeSet<u64>>,
}

impl Table {
    fn add(&mut self, kind: Kind, seq: u64, r: Stored) {
        for key in index_keys(kind, &r) {
            self.index.entry(key).or_default().insert(seq);
        }
        self.order.insert(seq, r.id.clone());
        self.by_id.insert(r.id.clone(), (seq, r));
    }

    fn take(&mut self, kind: Kind, id: &str) -> Option<(u64, Stored)> {
        let (seq, r) = self.by_id.remove(id)?;
        for key in index_keys(kind, &r) {
            if let Some(set) = self.index.get_mut(&key) {
                set.remove(&seq);
                if set.is_empty() {
                    self.index.remove(&key);
                }
            }
        }
        self.order.remove(&seq);
        Some((seq, r))
    }

    fn with(&self, name: &'static str, value: &str) -> impl Iterator<Item = u64> + '_ {
        self.index
            .get(&(name, value.to_owned()))
            .into_iter()
            .flatten()
            .copied()
    }

    /// Whether another resource than `id` has this user name.
    fn user_name_taken(&self, user_name: &str, id: &str) -> bool {
        self.with("userName", &user_name.to_lowercase())
            .filter_map(|seq| self.order.get(&seq))
            .any(|other| other != id)
    }
}

/// The candidates an indexed equality in `filter` narrows a query to
/// (an `or` of them: their union; `id eq` by the id itself); `None` when
/// it needs a scan. The filter is still evaluated on each candidate.
fn candidates(table: &Table, kind: Kind, filter: &Filter) -> Option<BTreeSet<u64>> {
    if let Filter::Or(items) = filter {
        let mut all = BTreeSet::new();
        for f in items {
            all.extend(candidates(table, kind, f)?);
        }
        return Some(all);
    }
    if let Some((path, crate::filter::CompValue::String(id))) = filter.as_equality()
        && path.urn.is_none()
        && path.sub.is_none()
        && path.name.eq_ignore_ascii_case("id")
    {
        return Some(
            table
                .by_id
                .get(id)
                .map(|(seq, _)| *seq)
                .into_iter()
                .collect(),
        );
    }
    let (name, value) = indexed_equality(kind, filter)?;
    Some(table.with(name, &value).collect())
}

#[async_trait::async_trait]
impl ScimStore for MemoryStore {
    async fn insert(&self, tenant: &str, kind: Kind, resource: Stored) -> Result<(), StoreError> {
        let mut tenants = self.tenants.write().unwrap_or_else(PoisonError::into_inner);
        let t = tenants.entry(tenant.to_owned()).or_default();
        if kind == Kind::User
            && let Some(name) = resource.text("userName")
            && t.users.user_name_taken(name, &resource.id)
        {
            return Err(StoreError::Taken("userName"));
        }
        let seq = t.next;
        t.next = t.next.saturating_add(1);
        t.table(kind).add(kind, seq, resource);
        Ok(())
    }

    async fn get(&self, tenant: &str, kind: Kind, id: &str) -> Result<Option<Stored>, StoreError> {
        let tenants = self.tenants.read().unwrap_or_else(PoisonError::into_inner);
        Ok(tenants
            .get(tenant)
            .and_then(|t| t.table_ref(kind).by_id.get(id))
            .map(|(_, r)| r.clone()))
    }

    async fn update(
        &self,
        tenant: &str,
        kind: Kind,
        resource: Stored,
        expected: u64,
    ) -> Result<(), StoreError> {
        let mut tenants = self.tenants.write().unwrap_or_else(PoisonError::into_inner);
        let t = tenants.get_mut(tenant).ok_or(StoreError::NotFound)?;
        let current = t
            .table_ref(kind)
            .by_id
            .get(&resource.id)
            .map(|(_, r)| r.version)
            .ok_or(StoreError::NotFound)?;
        if current != expected {
            return Err(StoreError::Changed);
        }
        if kind == Kind::User
            && let Some(name) = resource.text("userName")
            && t.users.user_name_taken(name, &resource.id)
        {
            return Err(StoreError::Taken("userName"));
        }
        let table = t.table(kind);
        let Some((seq, _)) = table.take(kind, &resource.id) else {
            return Err(StoreError::NotFound);
        };
        table.add(kind, seq, resource);
        Ok(())
    }

    async fn delete(&self, tenant: &str, kind: Kind, id: &str) -> Result<bool, StoreError> {
        let mut tenants = self.tenants.write().unwrap_or_else(PoisonError::into_inner);
        let Some(t) = tenants.get_mut(tenant) else {
            return Ok(false);
        };
        if t.table(kind).take(kind, id).is_none() {
            return Ok(false);
        }
        // Out of every group that had it as a member.
        let holding: Vec<u64> = t.groups.with("members", id).collect();
        for seq in holding {
            let Some(gid) = t.groups.order.get(&seq).cloned() else {
                continue;
            };
            let Some((seq, mut g)) = t.groups.take(Kind::Group, &gid) else {
                continue;
            };
            if let Some(Value::Array(members)) = g.attributes.get_mut("members") {
                members.retain(|m| m.get("value").and_then(Value::as_str) != Some(id));
                if members.is_empty() {
                    g.attributes.remove("members");
                }
            }
            g.version = g.version.saturating_add(1);
            t.groups.add(Kind::Group, seq, g);
        }
        Ok(true)
    }

    async fn query(&self, tenant: &str, kind: Kind, query: &Query) -> Result<Found, StoreError> {
        let tenants = self.tenants.read().unwrap_or_else(PoisonError::into_inner);
        let Some(t) = tenants.get(tenant) else {
            return Ok(Found::default());
        };
        let table = t.table_ref(kind);
        let schema = kind.schema();
        let rule = |p: &crate::filter::AttrPath| schema.case_exact(p);
        let narrowed = query
            .filter
            .as_ref()
            .and_then(|f| candidates(table, kind, f));
        let seqs: Box<dyn Iterator<Item = u64> + '_> = match &narrowed {
            Some(set) => Box::new(set.iter().copied()),
            None => Box::new(table.order.keys().copied()),
        };
        let matches = |r: &Stored| match &query.filter {
            None => true,
            Some(f) => f.matches_with(&super::resource_json(kind, r, None), &rule),
        };
        let start = usize::try_from(query.start_index.max(1) - 1).unwrap_or(usize::MAX);
        let count = usize::try_from(query.count).unwrap_or(usize::MAX);
        let found = seqs
            .filter_map(|seq| table.order.get(&seq))
            .filter_map(|id| table.by_id.get(id).map(|(_, r)| r));
        let Some(by) = &query.sort_by else {
            // Creation order: count every match, keep the page's.
            let mut total = 0u64;
            let mut page = Vec::new();
            for r in found.filter(|r| matches(r)) {
                if usize::try_from(total).is_ok_and(|i| i >= start && page.len() < count) {
                    page.push(r.clone());
                }
                total = total.saturating_add(1);
            }
            return Ok(Found {
                total,
                resources: page,
            });
        };
        let mut all: Vec<&Stored> = found.filter(|r| matches(r)).collect();
        sort_resources(kind, &mut all, by, query.descending);
        let total = u64::try_from(all.len()).unwrap_or(u64::MAX);
        let resources = all
            .into_iter()
            .skip(start)
            .take(count)
            .map(Stored::clone)
            .collect();
        Ok(Found { total, resources })
    }

    async fn groups_of(
        &self,
        tenant: &str,
        member: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let tenants = self.tenants.read().unwrap_or_else(PoisonError::into_inner);
        let Some(t) = tenants.get(tenant) else {
            return Ok(Vec::new());
        };
        Ok(t.groups
            .with("members", member)
            .filter_map(|seq| t.groups.order.get(&seq))
            .filter_map(|id| t.groups.by_id.get(id))
            .map(|(_, g)| {
                (
                    g.id.clone(),
                    g.text("displayName").unwrap_or_default().to_owned(),
                )
            })
            .collect())
    }

    async fn missing(&self, tenant: &str, ids: &[&str]) -> Result<Vec<String>, StoreError> {
        let tenants = self.tenants.read().unwrap_or_else(PoisonError::into_inner);
        let t = tenants.get(tenant);
        Ok(ids
            .iter()
            .filter(|id| {
                !t.is_some_and(|t| {
                    t.users.by_id.contains_key(**id) || t.groups.by_id.contains_key(**id)
                })
            })
            .map(|id| (*id).to_owned())
            .collect())
    }
}
