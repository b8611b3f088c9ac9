//! [`ScimConnector`]: a SCIM 2.0 service as a prov target. Accounts are
//! Users (id: the service's id; login: `userName`), entitlements are
//! Groups (id: their `displayName`). Model attributes map to SCIM paths
//! ([`ScimConnector::MAPPING`]); others are not sent.

use std::collections::{BTreeSet, HashMap};
use std::sync::RwLock;

use prov_core::{
    Account, AccountId, BatchOutcome, Capabilities, Connector, CreateAccount, Entitlement,
    EntitlementId, Error, ErrorKind, ListRequest, MemberFailure, MembershipChange, Page, Result,
    UpdateAccount, Value as Attr, async_trait,
};
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::ScimClient;
use crate::filter::{AttrPath, CompValue, CompareOp, Filter};
use crate::patch::{Op, PatchOp, PatchOperation};
use crate::schema::{ENTERPRISE_USER, USER};

/// The connector's limits.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ScimLimits {
    /// Members added or removed per PATCH (default 1000).
    pub members_per_patch: usize,
    /// Resources per page when listing (default 100).
    pub page_size: usize,
    /// Check that accounts exist before adding them to a group (default
    /// true): a service that takes unknown members (scim2-server does)
    /// would otherwise report a grant to a deleted account as done. One
    /// `id eq ... or ...` query per 50 accounts.
    pub verify_members: bool,
}

impl Default for ScimLimits {
    fn default() -> Self {
        ScimLimits {
            members_per_patch: 1000,
            page_size: 100,
            verify_members: true,
        }
    }
}

/// Ids per `id eq ... or ...` query, and values per `members[value eq
/// ... or ...]` remove: about 3 KB of filter, well inside URL and filter limits.
const PER_FILTER: usize = 50;

/// A SCIM service as a target.
#[derive(Debug)]
pub struct ScimConnector {
    client: ScimClient,
    limits: ScimLimits,
    /// Group display name -> the service's id, as last read.
    groups: RwLock<HashMap<String, String>>,
    /// User id -> the groups it is in, read from the groups' members at
    /// the first page of a listing (a user's `groups` is not filled by
    /// every service, so the groups are the truth).
    memberships: RwLock<HashMap<String, BTreeSet<EntitlementId>>>,
}

fn unmapped(model: &str) -> Error {
    Error::invalid_input(
        model,
        format!("attribute `{model}` has no SCIM path (ScimConnector::MAPPING lists those it has)"),
    )
}

/// `"x"` as a filter string literal.
fn eq(path: AttrPath, value: &str) -> String {
    Filter::Compare(path, CompareOp::Eq, CompValue::String(value.to_owned())).to_string()
}

fn query(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn text(v: &Attr) -> Option<String> {
    match v {
        Attr::String(s) => Some(s.clone()),
        Attr::Int(i) => Some(i.to_string()),
        Attr::Bool(b) => Some(b.to_string()),
        Attr::List(items) => items.first().and_then(text),
        _ => None,
    }
}

impl ScimConnector {
    /// Model attribute -> SCIM path (`name.sub`, or `URN:name`), as PATCH
    /// paths write them. `email` is the work email.
    pub const MAPPING: &'static [(&'static str, &'static str)] = &[
        ("display_name", "displayName"),
        ("given_name", "name.givenName"),
        ("family_name", "name.familyName"),
        ("full_name", "name.formatted"),
        ("nick_name", "nickName"),
        ("title", "title"),
        ("user_type", "userType"),
        ("locale", "locale"),
        ("timezone", "timezone"),
        ("external_id", "externalId"),
        ("email", "emails[type eq \"work\"].value"),
        ("mail", "emails[type eq \"work\"].value"),
        (
            "department",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
        ),
        (
            "employee_number",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
        ),
        (
            "cost_center",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter",
        ),
        (
            "organization",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:organization",
        ),
        (
            "division",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:division",
        ),
    ];

    /// The service behind `client`, within `limits`.
    pub fn new(client: ScimClient, limits: ScimLimits) -> Self {
        ScimConnector {
            client,
            limits,
            groups: RwLock::new(HashMap::new()),
            memberships: RwLock::new(HashMap::new()),
        }
    }

    /// The SCIM path and text of a model attribute, or why it cannot be
    /// written (never skipped: the next plan would set it again, forever).
    fn writable(model: &str, value: &Attr) -> Result<(&'static str, String)> {
        let path = Self::path_of(model).ok_or_else(|| unmapped(model))?;
        let v = text(value).ok_or_else(|| {
            Error::invalid_input(
                model,
                format!("`{model}` is not text, a number or a boolean"),
            )
        })?;
        Ok((path, v))
    }

    fn path_of(model: &str) -> Option<&'static str> {
        Self::MAPPING
            .iter()
            .find(|(m, _)| *m == model)
            .map(|(_, p)| *p)
    }

    /// A User resource as an account.
    fn account(v: &Value) -> Result<Account> {
        let bad = || Error::new(ErrorKind::Unexpected, format!("not a User: {v}"));
        let id = v.get("id").and_then(Value::as_str).ok_or_else(bad)?;
        let login = v.get("userName").and_then(Value::as_str).ok_or_else(bad)?;
        let mut a = Account::new(AccountId::new(id), login);
        a.enabled = v.get("active").and_then(Value::as_bool).unwrap_or(true);
        let mut resource = match v {
            Value::Object(o) => o.clone(),
            _ => Map::new(),
        };
        crate::schema::USER_RESOURCE.canonicalise(&mut resource);
        for (model, path) in Self::MAPPING {
            if let Some(value) = read_path(&resource, path) {
                a.attributes
                    .insert((*model).to_owned(), Attr::String(value));
            }
        }
        Ok(a)
    }

    async fn user_by_login(&self, login: &str) -> Result<Option<Value>> {
        let f = query(&eq(AttrPath::new("userName"), login));
        let reply = self
            .client
            .request(
                Method::GET,
                &format!("/Users?filter={f}&startIndex=1&count=2"),
                None,
                None,
            )
            .await?;
        Ok(reply.body.and_then(|b| {
            b.get("Resources")
                .and_then(Value::as_array)
                .and_then(|r| r.first().cloned())
        }))
    }

    /// Every group's members, inverted: user id -> group names.
    async fn read_memberships(&self) -> Result<HashMap<String, BTreeSet<EntitlementId>>> {
        let mut out: HashMap<String, BTreeSet<EntitlementId>> = HashMap::new();
        let mut start = 1u64;
        let count = self.limits.page_size;
        let mut guard = prov_core::PageGuard::new();
        loop {
            let path =
                format!("/Groups?attributes=displayName,members&startIndex={start}&count={count}");
            let body = self
                .client
                .request(Method::GET, &path, None, None)
                .await?
                .body
                .unwrap_or(Value::Null);
            let groups: Vec<&Value> = body
                .get("Resources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .collect();
            let mut names = self
                .groups
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for g in &groups {
                let (Some(id), Some(name)) = (
                    g.get("id").and_then(Value::as_str),
                    g.get("displayName").and_then(Value::as_str),
                ) else {
                    continue;
                };
                names.insert(name.to_owned(), id.to_owned());
                for m in g
                    .get("members")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(v) = m.get("value").and_then(Value::as_str) {
                        out.entry(v.to_owned())
                            .or_default()
                            .insert(EntitlementId::new(name));
                    }
                }
            }
            drop(names);
            let Some(next) = next_start(start, count, groups.len(), total_of(&body)) else {
                return Ok(out);
            };
            start = next;
            guard.next(&start.to_string(), "the groups' members")?;
        }
    }

    /// The service's id of the group named `name`.
    async fn group_id(&self, name: &EntitlementId) -> Result<String> {
        if let Some(id) = self
            .groups
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name.as_str())
        {
            return Ok(id.clone());
        }
        let f = query(&eq(AttrPath::new("displayName"), name.as_str()));
        let reply = self
            .client
            .request(
                Method::GET,
                &format!("/Groups?filter={f}&excludedAttributes=members&startIndex=1&count=2"),
                None,
                None,
            )
            .await?;
        let id = reply
            .body
            .as_ref()
            .and_then(|b| b.get("Resources"))
            .and_then(Value::as_array)
            .and_then(|r| r.first())
            .and_then(|g| g.get("id"))
            .and_then(Value::as_str)
            .ok_or_else(|| Error::not_found(format!("no group named {name}")))?
            .to_owned();
        self.groups
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.as_str().to_owned(), id.clone());
        Ok(id)
    }

    /// Adds or removes members of a group, a PATCH per `members_per_patch`.
    /// A refused PATCH (an account that does not exist) is sent again one
    /// account at a time, so that only the accounts at fault fail.
    async fn members(&self, req: MembershipChange, op: Op) -> Result<BatchOutcome> {
        let gid = self.group_id(&req.entitlement).await?;
        let mut out = BatchOutcome::ok();
        let mut accounts = req.accounts;
        if op == Op::Add && self.limits.verify_members {
            let missing = self.missing(&accounts).await?;
            if !missing.is_empty() {
                accounts.retain(|a| !missing.contains(a));
                for a in missing {
                    let e = Error::not_found(format!("no user {a}"));
                    out.failures.push(MemberFailure::new(a, e));
                }
            }
        }
        // A remove names its members in the path's filter (RFC 7644 3.5.2.2).
        let size = match op {
            Op::Add => self.limits.members_per_patch,
            _ => self.limits.members_per_patch.min(PER_FILTER),
        };
        for chunk in accounts.chunks(size.max(1)) {
            match self.patch_members(&gid, chunk, op).await {
                Ok(()) => {}
                Err(e) if is_refusal(&e) && chunk.len() > 1 => {
                    for a in chunk {
                        match self.patch_members(&gid, std::slice::from_ref(a), op).await {
                            Ok(()) => {}
                            Err(e) if is_refusal(&e) => {
                                // Refused because the account is gone: say so.
                                let e = match self.get_account(a).await {
                                    Err(gone) if gone.kind() == ErrorKind::NotFound => gone,
                                    _ => e,
                                };
                                out.failures.push(MemberFailure::new(a.clone(), e));
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
                Err(e) if is_refusal(&e) => {
                    for a in chunk {
                        out.failures.push(MemberFailure::new(
                            a.clone(),
                            Error::new(e.kind(), e.message().to_owned()),
                        ));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Of `accounts`, those that are no user of the service.
    async fn missing(&self, accounts: &[AccountId]) -> Result<Vec<AccountId>> {
        let mut out = Vec::new();
        for chunk in accounts.chunks(PER_FILTER) {
            let f = match chunk {
                [one] => eq(AttrPath::new("id"), one.as_str()),
                many => Filter::Or(
                    many.iter()
                        .map(|a| {
                            Filter::Compare(
                                AttrPath::new("id"),
                                CompareOp::Eq,
                                CompValue::String(a.as_str().to_owned()),
                            )
                        })
                        .collect(),
                )
                .to_string(),
            };
            let path = format!(
                "/Users?filter={}&attributes=id&startIndex=1&count={}",
                query(&f),
                chunk.len()
            );
            let body = self
                .client
                .request(Method::GET, &path, None, None)
                .await?
                .body
                .unwrap_or(Value::Null);
            let found: std::collections::HashSet<&str> = body
                .get("Resources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|u| u.get("id").and_then(Value::as_str))
                .collect();
            out.extend(
                chunk
                    .iter()
                    .filter(|a| !found.contains(a.as_str()))
                    .cloned(),
            );
        }
        Ok(out)
    }

    async fn patch_members(&self, gid: &str, accounts: &[AccountId], op: Op) -> Result<()> {
        let operation = if op == Op::Add {
            let values = Value::Array(
                accounts
                    .iter()
                    .map(|a| json!({"value": a.as_str()}))
                    .collect(),
            );
            PatchOperation::new(Op::Add, Some("members".to_owned()), Some(values))
        } else {
            let filter = match accounts {
                [one] => eq(AttrPath::new("value"), one.as_str()),
                many => Filter::Or(
                    many.iter()
                        .map(|a| {
                            Filter::Compare(
                                AttrPath::new("value"),
                                CompareOp::Eq,
                                CompValue::String(a.as_str().to_owned()),
                            )
                        })
                        .collect(),
                )
                .to_string(),
            };
            PatchOperation::new(Op::Remove, Some(format!("members[{filter}]")), None)
        };
        let body = serde_json::to_value(PatchOp::new(vec![operation]))
            .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?;
        let path = format!("/Groups/{gid}?excludedAttributes=members");
        self.client
            .request(Method::PATCH, &path, Some(&body), None)
            .await
            .map(|_| ())
    }
}

/// A refusal of what was sent, not of the service.
fn is_refusal(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::NotFound)
}

/// Where a listing is: the 1-based `startIndex` its cursor holds (1 for
/// the first page), and the page size within `most`.
fn position(req: &ListRequest, most: usize) -> Result<(u64, usize)> {
    let start = match &req.cursor {
        Some(c) => c.parse::<u64>().ok().filter(|s| *s >= 1).ok_or_else(|| {
            Error::invalid_input("cursor", format!("{c:?} is not this connector's cursor"))
        })?,
        None => 1,
    };
    Ok((start, req.page_size.unwrap_or(most).clamp(1, most.max(1))))
}

/// The cursor after a page of `n` resources that started at `start` and
/// asked for `count`: none when the page was short or empty (whatever
/// `totalResults` says) or reached `total`.
fn next_start(start: u64, count: usize, n: usize, total: u64) -> Option<u64> {
    let n = u64::try_from(n).ok()?;
    let seen = start.checked_sub(1)?.checked_add(n)?;
    (n > 0 && n >= u64::try_from(count).ok()? && seen < total).then(|| seen.checked_add(1))?
}

/// The `totalResults` of a list answer (0 when missing).
fn total_of(body: &Value) -> u64 {
    body.get("totalResults")
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// The value at a PATCH-style path in a canonical User, as text.
fn read_path(r: &Map<String, Value>, path: &str) -> Option<String> {
    let p: crate::filter::PatchPath = path.parse().ok()?;
    let base = match &p.attr.urn {
        Some(u) if u.eq_ignore_ascii_case(ENTERPRISE_USER) => {
            r.get(ENTERPRISE_USER)?.as_object()?
        }
        _ => r,
    };
    let v = base.get(&p.attr.name)?;
    let v = match (&p.filter, &p.attr.sub, &p.sub) {
        (Some(f), _, sub) => {
            let item = v.as_array()?.iter().find(|e| f.matches(e))?;
            match sub {
                Some(s) => item.get(s)?,
                None => item,
            }
        }
        (None, Some(sub), _) => v.get(sub)?,
        (None, None, _) => v,
    };
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[async_trait]
impl Connector for ScimConnector {
    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::full(self.limits.members_per_patch);
        c.lists_memberships = true;
        c.changes_since = false;
        c.create_marker = false;
        c.max_page_size = self.limits.page_size;
        c.login_case_insensitive = true;
        c.filter_attributes = vec!["login".to_owned()];
        c
    }

    async fn check(&self) -> Result<()> {
        self.client.service_provider_config().await.map(|_| ())
    }

    async fn list_accounts(&self, req: ListRequest) -> Result<Page<Account>> {
        let (start, count) = position(&req, self.limits.page_size)?;
        let mut path = format!("/Users?startIndex={start}&count={count}");
        if let Some((attr, value)) = &req.filter {
            let scim = if attr == "login" {
                Some("userName")
            } else {
                Self::path_of(attr)
            };
            match scim {
                Some(p) if !p.contains('[') => {
                    let f: AttrPath = crate::filter::parse_attr_path(p)
                        .map_err(|e| Error::invalid_input("filter", e))?;
                    path.push_str(&format!("&filter={}", query(&eq(f, value))));
                }
                _ => {
                    return Err(Error::invalid_input(
                        "filter",
                        format!("{attr} cannot be filtered here"),
                    ));
                }
            }
        }
        let body = self
            .client
            .request(Method::GET, &path, None, None)
            .await?
            .body
            .unwrap_or(Value::Null);
        let mut items: Vec<Account> = body
            .get("Resources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(Self::account)
            .collect::<Result<_>>()?;
        // Memberships from the groups, read once at a listing's first page.
        if req.cursor.is_none() {
            let fresh = self.read_memberships().await?;
            *self
                .memberships
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        }
        {
            let m = self
                .memberships
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for a in &mut items {
                if let Some(set) = m.get(a.id.as_str()) {
                    a.entitlements = set.clone();
                }
            }
        }
        let next = next_start(start, count, items.len(), total_of(&body)).map(|s| s.to_string());
        Ok(Page::new(items, next))
    }

    async fn get_account(&self, id: &AccountId) -> Result<Account> {
        let reply = self
            .client
            .request(
                Method::GET,
                &format!("/Users/{}", query(id.as_str())),
                None,
                None,
            )
            .await?;
        let mut a = Self::account(&reply.body.unwrap_or(Value::Null))?;
        // Its groups, from the groups' members.
        let f = query(&eq(AttrPath::sub("members", "value"), id.as_str()));
        let path = format!(
            "/Groups?filter={f}&attributes=displayName&startIndex=1&count={}",
            self.limits.page_size
        );
        let body = self
            .client
            .request(Method::GET, &path, None, None)
            .await?
            .body
            .unwrap_or(Value::Null);
        a.entitlements = body
            .get("Resources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|g| g.get("displayName").and_then(Value::as_str))
            .map(EntitlementId::new)
            .collect();
        Ok(a)
    }

    async fn create_account(&self, req: CreateAccount) -> Result<Account> {
        // Looked up first: after a lost reply, the retry finds it.
        if self.user_by_login(&req.login).await?.is_some() {
            return Err(Error::already_exists(format!(
                "a user named {} exists",
                req.login
            )));
        }
        let mut user = Map::new();
        user.insert("schemas".to_owned(), json!([USER]));
        user.insert("userName".to_owned(), json!(req.login));
        user.insert("active".to_owned(), json!(req.enabled));
        let mut ops = Vec::new();
        for (model, value) in &req.attributes {
            let (path, v) = Self::writable(model, value)?;
            ops.push(PatchOperation::new(
                Op::Add,
                Some(path.to_owned()),
                Some(Value::String(v)),
            ));
        }
        // The attributes written as a PATCH would (paths), into the body.
        PatchOp::new(ops)
            .apply(&mut user, &crate::schema::USER_RESOURCE)
            .map_err(|e| Error::invalid_input("attributes", e.to_string()))?;
        for (name, secret) in req.secrets.iter() {
            if name == "password"
                && let Some(p) = text(secret.expose())
            {
                user.insert("password".to_owned(), Value::String(p));
            }
        }
        let reply = self
            .client
            .request(Method::POST, "/Users", Some(&Value::Object(user)), None)
            .await?;
        Self::account(&reply.body.unwrap_or(Value::Null))
    }

    async fn update_account(&self, req: UpdateAccount) -> Result<AccountId> {
        let mut ops = Vec::new();
        if let Some(login) = &req.delta.login {
            ops.push(PatchOperation::new(
                Op::Replace,
                Some("userName".to_owned()),
                Some(json!(login)),
            ));
        }
        for (model, value) in &req.delta.set {
            let (path, v) = Self::writable(model, value)?;
            ops.push(PatchOperation::new(
                Op::Replace,
                Some(path.to_owned()),
                Some(Value::String(v)),
            ));
        }
        for model in &req.delta.remove {
            let path = Self::path_of(model).ok_or_else(|| unmapped(model))?;
            ops.push(PatchOperation::new(Op::Remove, Some(path.to_owned()), None));
        }
        if ops.is_empty() {
            return Ok(req.id);
        }
        let body = serde_json::to_value(PatchOp::new(ops))
            .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?;
        self.client
            .request(
                Method::PATCH,
                &format!("/Users/{}", query(req.id.as_str())),
                Some(&body),
                None,
            )
            .await?;
        Ok(req.id)
    }

    async fn set_enabled(&self, id: &AccountId, enabled: bool) -> Result<()> {
        let body = serde_json::to_value(PatchOp::new(vec![PatchOperation::new(
            Op::Replace,
            Some("active".to_owned()),
            Some(json!(enabled)),
        )]))
        .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?;
        self.client
            .request(
                Method::PATCH,
                &format!("/Users/{}", query(id.as_str())),
                Some(&body),
                None,
            )
            .await
            .map(|_| ())
    }

    async fn delete_account(&self, id: &AccountId) -> Result<()> {
        self.client
            .request(
                Method::DELETE,
                &format!("/Users/{}", query(id.as_str())),
                None,
                None,
            )
            .await
            .map(|_| ())
    }

    async fn list_entitlements(&self, req: ListRequest) -> Result<Page<Entitlement>> {
        let (start, count) = position(&req, self.limits.page_size)?;
        let body = self
            .client
            .request(
                Method::GET,
                &format!("/Groups?excludedAttributes=members&startIndex={start}&count={count}"),
                None,
                None,
            )
            .await?
            .body
            .unwrap_or(Value::Null);
        let mut items = Vec::new();
        let mut names = self
            .groups
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for g in body
            .get("Resources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(id), Some(name)) = (
                g.get("id").and_then(Value::as_str),
                g.get("displayName").and_then(Value::as_str),
            ) else {
                continue;
            };
            names.insert(name.to_owned(), id.to_owned());
            items.push(Entitlement::group(name));
        }
        drop(names);
        let next = next_start(start, count, items.len(), total_of(&body)).map(|s| s.to_string());
        Ok(Page::new(items, next))
    }

    async fn list_members(
        &self,
        entitlement: &EntitlementId,
        _req: ListRequest,
    ) -> Result<Page<AccountId>> {
        let gid = self.group_id(entitlement).await?;
        let body = self
            .client
            .request(
                Method::GET,
                &format!("/Groups/{gid}?attributes=members"),
                None,
                None,
            )
            .await?
            .body
            .unwrap_or(Value::Null);
        let members = body
            .get("members")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|m| m.get("value").and_then(Value::as_str))
            .map(AccountId::new)
            .collect();
        Ok(Page::new(members, None))
    }

    async fn grant(&self, req: MembershipChange) -> Result<BatchOutcome> {
        self.members(req, Op::Add).await
    }

    async fn revoke(&self, req: MembershipChange) -> Result<BatchOutcome> {
        self.members(req, Op::Remove).await
    }
}
