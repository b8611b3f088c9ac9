//! [`ScimConnector`]: a SCIM 2.0 service as a prov target. Accounts are
//! Users (id: the service's id; login: `userName`), entitlements are
//! Groups (id: their `displayName`). Model attributes map to SCIM paths
//! ([`ScimConnector::MAPPING`]); others are not sent.

use std::collections::{BTreeSet, HashMap};
use std::sync::RwLock;

use prov_core::{
    Account, AccountId, BatchOutcome, Capabilities, Connector, CreateAccount, Entitlement,
    EntitlementId, Error, ErrorKind, ListRequest, MemberFailure, MembershipChange, Operation, Page,
    Result, UpdateAccount, Value as Attr, async_trait,
};
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::{Profile, ScimClient, encode};
use crate::filter::{AttrPath, CompValue, CompareOp, Filter};
use crate::patch::{Op, PatchOp, PatchOperation};
use crate::schema::{ENTERPRISE_USER, GROUP, USER};
use crate::types::ServiceProviderConfig;

/// The connector's limits: a [`Profile`]'s numbers, which a settings
/// file may lower.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ScimLimits {
    /// Membership changes per PATCH (default: the profile's).
    pub members_per_patch: usize,
    /// Resources per page when listing (default: the profile's).
    pub page_size: usize,
    /// Check that accounts exist before adding them to a group (default
    /// true): a service that takes unknown members (scim2-server does)
    /// would otherwise report a grant to a deleted account as done. One
    /// `id eq ... or ...` query per 50 accounts where the service takes
    /// such filters, else one request per account.
    pub verify_members: bool,
    /// What the service publishes about itself.
    pub profile: Profile,
}

impl ScimLimits {
    /// The limits `profile` publishes.
    pub fn of(profile: &Profile) -> Self {
        ScimLimits {
            members_per_patch: profile.members_per_patch,
            page_size: profile.page_size,
            verify_members: true,
            profile: profile.clone(),
        }
    }
}

impl Default for ScimLimits {
    fn default() -> Self {
        ScimLimits::of(&Profile::GENERIC)
    }
}

/// Ids per `id eq ... or ...` query: about 3 KB of filter, well inside
/// URL and filter limits.
const PER_FILTER: usize = 50;

/// Tries of a read-modify-write (GET, then PUT with If-Match) that a
/// concurrent change keeps refusing.
const REWRITE_TRIES: usize = 3;

/// How the connector talks to the service: the profile's numbers and
/// what the service's ServiceProviderConfig says, the stricter of the two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Adapted {
    pub(super) page_size: usize,
    pub(super) members_per_patch: usize,
    /// PATCH is served (else updates are GET and PUT).
    pub(super) patch: bool,
    /// Filters are served (else lookups read the listing).
    pub(super) filter: bool,
    /// ETags are served: a PUT carries If-Match.
    pub(super) etag: bool,
    /// Where the profile and the service disagree, in words.
    pub(super) notices: Vec<String>,
}

/// The profile's settings checked against the service's own
/// ServiceProviderConfig (none when the service serves none).
pub(super) fn adapt(limits: &ScimLimits, spc: Option<&ServiceProviderConfig>) -> Adapted {
    let p = &limits.profile;
    let mut a = Adapted {
        page_size: limits.page_size,
        members_per_patch: limits.members_per_patch,
        patch: true,
        filter: true,
        etag: false,
        notices: Vec::new(),
    };
    let Some(spc) = spc else {
        a.notices.push(format!(
            "the service serves no /ServiceProviderConfig: following profile `{}`",
            p.name
        ));
        return a;
    };
    let mut differ = |what: &str, ours: String, theirs: String, then: &str| {
        a.notices.push(format!(
            "profile `{}` says {what} = {ours}, the service's ServiceProviderConfig says \
             {theirs}: {then}",
            p.name
        ));
    };
    if !spc.patch.supported {
        differ(
            "patch",
            "supported".into(),
            "patch.supported = false".into(),
            "updates are a GET and a PUT",
        );
    }
    if !spc.filter.supported {
        differ(
            "filter",
            "supported".into(),
            "filter.supported = false".into(),
            "lookups read the whole listing",
        );
    }
    if spc.bulk.supported != p.bulk {
        differ(
            "bulk",
            p.bulk.to_string(),
            format!("bulk.supported = {}", spc.bulk.supported),
            "the connector does not use /Bulk either way",
        );
    }
    let most = usize::try_from(spc.filter.max_results).unwrap_or(usize::MAX);
    if spc.filter.supported && most > 0 && most < a.page_size {
        differ(
            "page_size",
            a.page_size.to_string(),
            format!("filter.maxResults = {most}"),
            &format!("pages of {most}"),
        );
    }
    if spc.filter.supported && most > 0 {
        a.page_size = a.page_size.min(most);
    }
    a.patch = spc.patch.supported;
    a.filter = spc.filter.supported;
    a.etag = spc.etag.supported;
    a
}

/// A SCIM service as a target.
#[derive(Debug)]
pub struct ScimConnector {
    client: ScimClient,
    limits: ScimLimits,
    /// What the service said it supports, read at first use.
    adapted: tokio::sync::OnceCell<Adapted>,
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

/// `attr eq "a" or attr eq "b" ...`.
fn any_of(attr: &str, values: &[AccountId]) -> String {
    match values {
        [one] => eq(AttrPath::new(attr), one.as_str()),
        many => Filter::Or(
            many.iter()
                .map(|a| {
                    Filter::Compare(
                        AttrPath::new(attr),
                        CompareOp::Eq,
                        CompValue::String(a.as_str().to_owned()),
                    )
                })
                .collect(),
        )
        .to_string(),
    }
}

/// The operations that add or remove `accounts` as members: one `add`
/// of them all, or one `members[value eq "ID"]` remove each (services
/// such as AWS take neither `or` in a path nor a value list in a remove).
fn member_ops(accounts: &[AccountId], op: Op) -> Vec<PatchOperation> {
    if op == Op::Add {
        let values = accounts
            .iter()
            .map(|a| json!({"value": a.as_str()}))
            .collect();
        vec![PatchOperation::new(
            Op::Add,
            Some("members".to_owned()),
            Some(Value::Array(values)),
        )]
    } else {
        accounts
            .iter()
            .map(|a| {
                let f = eq(AttrPath::new("value"), a.as_str());
                PatchOperation::new(Op::Remove, Some(format!("members[{f}]")), None)
            })
            .collect()
    }
}

/// The text of a single value; a list of one is that value. `None` for
/// anything else (a list of several: each SCIM path here holds one).
fn text(v: &Attr) -> Option<String> {
    match v {
        Attr::String(s) => Some(s.clone()),
        Attr::Int(i) => Some(i.to_string()),
        Attr::Bool(b) => Some(b.to_string()),
        Attr::List(items) if items.len() == 1 => items.first().and_then(text),
        _ => None,
    }
}

fn resources(body: &Value) -> impl Iterator<Item = &Value> {
    body.get("Resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn to_body(ops: Vec<PatchOperation>) -> Result<Value> {
    serde_json::to_value(PatchOp::new(ops))
        .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))
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
            adapted: tokio::sync::OnceCell::new(),
            groups: RwLock::new(HashMap::new()),
            memberships: RwLock::new(HashMap::new()),
        }
    }

    /// The client underneath (its request counts, for one).
    pub fn client(&self) -> &ScimClient {
        &self.client
    }

    /// How to talk to the service: read once, at first use. A service with
    /// no ServiceProviderConfig (404) is taken at the profile's word; any
    /// other failure is returned and asked again next time.
    async fn adapted(&self) -> Result<&Adapted> {
        self.adapted
            .get_or_try_init(|| async {
                match self.client.service_provider_config().await {
                    Ok(spc) => Ok(adapt(&self.limits, Some(&spc))),
                    Err(e) if e.kind() == ErrorKind::NotFound => Ok(adapt(&self.limits, None)),
                    Err(e) => Err(e),
                }
            })
            .await
    }

    /// The SCIM path and text of a model attribute, or why it cannot be
    /// written (never skipped: the next plan would set it again, forever).
    fn writable(model: &str, value: &Attr) -> Result<(&'static str, String)> {
        let path = Self::path_of(model).ok_or_else(|| unmapped(model))?;
        let v = text(value).ok_or_else(|| {
            Error::invalid_input(
                model,
                format!(
                    "`{model}` is not one text, number or boolean (its SCIM path {path} holds one)"
                ),
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
        let id = str_of(v, "id").ok_or_else(bad)?;
        let login = str_of(v, "userName").ok_or_else(bad)?;
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

    async fn get(&self, path: &str) -> Result<Value> {
        Ok(self
            .client
            .request(Method::GET, path, None, None)
            .await?
            .body
            .unwrap_or(Value::Null))
    }

    /// Every resource of `collection` (`/Users`, `/Groups`) with `params`,
    /// page by page, until `stop` says enough (it is given each page).
    async fn each_page(
        &self,
        collection: &str,
        params: &str,
        mut stop: impl FnMut(&[Value]) -> bool,
    ) -> Result<()> {
        let count = self.adapted().await?.page_size;
        let mut start = 1u64;
        let mut guard = prov_core::PageGuard::new();
        loop {
            let body = self
                .get(&format!(
                    "{collection}?{params}startIndex={start}&count={count}"
                ))
                .await?;
            let page: Vec<Value> = resources(&body).cloned().collect();
            if stop(&page) {
                return Ok(());
            }
            let Some(next) = next_start(start, count, page.len(), total_of(&body)) else {
                return Ok(());
            };
            start = next;
            guard.next(&start.to_string(), collection)?;
        }
    }

    /// The first resource of `collection` where `attr` (a top-level
    /// attribute) equals `value`, ignoring case when `caseless`: by filter
    /// where the service takes them, else by reading the listing.
    async fn find(
        &self,
        collection: &str,
        attr: &str,
        value: &str,
        caseless: bool,
        params: &str,
    ) -> Result<Option<Value>> {
        if self.adapted().await?.filter {
            let f = encode(&eq(AttrPath::new(attr), value));
            let body = self
                .get(&format!(
                    "{collection}?filter={f}&{params}startIndex=1&count=2"
                ))
                .await?;
            return Ok(resources(&body).next().cloned());
        }
        let same = |v: &str| {
            if caseless {
                v.eq_ignore_ascii_case(value)
            } else {
                v == value
            }
        };
        let mut found = None;
        self.each_page(collection, params, |page| {
            found = page
                .iter()
                .find(|r| str_of(r, attr).is_some_and(same))
                .cloned();
            found.is_some()
        })
        .await?;
        Ok(found)
    }

    /// Every group's members, inverted: user id -> group names.
    async fn read_memberships(&self) -> Result<HashMap<String, BTreeSet<EntitlementId>>> {
        let mut out: HashMap<String, BTreeSet<EntitlementId>> = HashMap::new();
        let mut names = HashMap::new();
        self.each_page("/Groups", "attributes=displayName,members&", |page| {
            for g in page {
                let (Some(id), Some(name)) = (str_of(g, "id"), str_of(g, "displayName")) else {
                    continue;
                };
                names.insert(name.to_owned(), id.to_owned());
                for m in g
                    .get("members")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(v) = str_of(m, "value") {
                        out.entry(v.to_owned())
                            .or_default()
                            .insert(EntitlementId::new(name));
                    }
                }
            }
            false
        })
        .await?;
        self.groups
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(names);
        Ok(out)
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
        let id = self
            .find(
                "/Groups",
                "displayName",
                name.as_str(),
                false,
                "excludedAttributes=members&",
            )
            .await?
            .as_ref()
            .and_then(|g| str_of(g, "id"))
            .ok_or_else(|| Error::not_found(format!("no group named {name}")))?
            .to_owned();
        self.groups
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.as_str().to_owned(), id.clone());
        Ok(id)
    }

    /// Adds or removes members of a group: PATCHes of `members_per_patch`
    /// changes (a GET and a PUT where the service has no PATCH). A refused
    /// PATCH (an account that does not exist) is sent again one account
    /// at a time, so that only the accounts at fault fail.
    async fn members(&self, req: MembershipChange, op: Op) -> Result<BatchOutcome> {
        let gid = self.group_id(&req.entitlement).await?;
        let adapted = self.adapted().await?;
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
        if accounts.is_empty() {
            return Ok(out);
        }
        if !adapted.patch {
            self.put_members(&gid, &accounts, op).await?;
            return Ok(out);
        }
        for chunk in accounts.chunks(adapted.members_per_patch.max(1)) {
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

    /// Of `accounts`, those that are no user of the service: one `id eq
    /// ... or ...` query per 50 where the service takes them, one `id eq`
    /// per account where it takes no `or`, else one GET per account.
    async fn missing(&self, accounts: &[AccountId]) -> Result<Vec<AccountId>> {
        let p = &self.limits.profile;
        let filter = self.adapted().await?.filter && p.filter_by_id;
        let per_query = if p.filter_or { PER_FILTER } else { 1 };
        let mut out = Vec::new();
        if !filter {
            for a in accounts {
                let path = format!("/Users/{}?attributes=id", encode(a.as_str()));
                match self.client.request(Method::GET, &path, None, None).await {
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::NotFound => out.push(a.clone()),
                    Err(e) => return Err(e),
                }
            }
            return Ok(out);
        }
        for chunk in accounts.chunks(per_query) {
            let path = format!(
                "/Users?filter={}&attributes=id&startIndex=1&count={}",
                encode(&any_of("id", chunk)),
                chunk.len()
            );
            let body = self.get(&path).await?;
            let found: std::collections::HashSet<&str> =
                resources(&body).filter_map(|u| str_of(u, "id")).collect();
            out.extend(
                chunk
                    .iter()
                    .filter(|a| !found.contains(a.as_str()))
                    .cloned(),
            );
        }
        Ok(out)
    }

    /// One PATCH: the accounts added in one operation, or removed one
    /// `members[value eq "ID"]` operation each (RFC 7644 section 3.5.2.2;
    /// AWS takes no `or` in the path and no remove of a value list).
    async fn patch_members(&self, gid: &str, accounts: &[AccountId], op: Op) -> Result<()> {
        let path = format!("/Groups/{}?excludedAttributes=members", encode(gid));
        let body = to_body(member_ops(accounts, op))?;
        self.client
            .request(Method::PATCH, &path, Some(&body), None)
            .await
            .map(|_| ())
    }

    /// Members changed by reading the group and writing it back.
    async fn put_members(&self, gid: &str, accounts: &[AccountId], op: Op) -> Result<()> {
        self.rewrite(
            &format!("/Groups/{}", encode(gid)),
            &crate::schema::GROUP_RESOURCE,
            member_ops(accounts, op),
        )
        .await
    }

    /// Changes a resource: a PATCH of `ops`, or where the service has no
    /// PATCH, the resource read, `ops` applied here and the result PUT
    /// back (with If-Match where the service serves ETags; a concurrent
    /// change is met by reading again, up to three times).
    async fn modify(
        &self,
        path: &str,
        schema: &crate::schema::ResourceSchema,
        ops: Vec<PatchOperation>,
    ) -> Result<()> {
        if self.adapted().await?.patch {
            return self
                .client
                .request(Method::PATCH, path, Some(&to_body(ops)?), None)
                .await
                .map(|_| ());
        }
        self.rewrite(path, schema, ops).await
    }

    async fn rewrite(
        &self,
        path: &str,
        schema: &crate::schema::ResourceSchema,
        ops: Vec<PatchOperation>,
    ) -> Result<()> {
        let etag = self.adapted().await?.etag;
        let patch = PatchOp::new(ops);
        let mut tries = 0;
        loop {
            tries += 1;
            let reply = self.client.request(Method::GET, path, None, None).await?;
            let mut resource = match reply.body {
                Some(Value::Object(o)) => o,
                other => {
                    return Err(Error::new(
                        ErrorKind::Unexpected,
                        format!("GET {path}: not a resource: {other:?}"),
                    ));
                }
            };
            patch
                .apply(&mut resource, schema)
                .map_err(|e| Error::invalid_input("attributes", e.to_string()))?;
            resource.remove("meta");
            let if_match = if etag { reply.etag.as_deref() } else { None };
            match self
                .client
                .request(Method::PUT, path, Some(&Value::Object(resource)), if_match)
                .await
            {
                Err(e) if e.kind() == ErrorKind::Conflict && tries < REWRITE_TRIES => continue,
                other => return other.map(|_| ()),
            }
        }
    }

    /// The groups `id` is in, from the groups' members.
    async fn groups_of(&self, id: &AccountId) -> Result<BTreeSet<EntitlementId>> {
        let by_filter = self.adapted().await?.filter && self.limits.profile.filter_by_member;
        if !by_filter {
            let all = self.read_memberships().await?;
            return Ok(all.get(id.as_str()).cloned().unwrap_or_default());
        }
        let f = encode(&eq(AttrPath::sub("members", "value"), id.as_str()));
        let mut out = BTreeSet::new();
        self.each_page(
            "/Groups",
            &format!("filter={f}&attributes=displayName&"),
            |page| {
                out.extend(
                    page.iter()
                        .filter_map(|g| str_of(g, "displayName"))
                        .map(EntitlementId::new),
                );
                false
            },
        )
        .await?;
        Ok(out)
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
        c.max_concurrency = self.limits.profile.max_concurrency;
        c.login_case_insensitive = true;
        c.create_entitlement = true;
        c.filter_attributes = vec!["login".to_owned()];
        // The client paces each request against the profile's published
        // limits: closer than pacing operations, which are several requests.
        c.rate_limit = None;
        c
    }

    async fn check(&self) -> Result<()> {
        // Reachable, the credentials taken, and what it supports read.
        self.get("/Users?startIndex=1&count=1").await?;
        self.adapted().await.map(|_| ())
    }

    /// Where the profile and the service's ServiceProviderConfig disagree,
    /// once the connector has talked to the service (after `check`, or
    /// the first request): the connector followed the stricter, and says so.
    fn notices(&self) -> Vec<String> {
        self.adapted
            .get()
            .map(|a| a.notices.clone())
            .unwrap_or_default()
    }

    async fn list_accounts(&self, req: ListRequest) -> Result<Page<Account>> {
        let adapted = self.adapted().await?;
        let (start, count) = position(&req, adapted.page_size)?;
        let mut path = format!("/Users?startIndex={start}&count={count}");
        // Without filters on the service, the page is filtered here.
        let mut local: Option<(&'static str, &str)> = None;
        if let Some((attr, value)) = &req.filter {
            let scim = if attr == "login" {
                Some("userName")
            } else {
                Self::path_of(attr)
            };
            match scim {
                Some(p) if !p.contains('[') && adapted.filter => {
                    let f: AttrPath = crate::filter::parse_attr_path(p)
                        .map_err(|e| Error::invalid_input("filter", e))?;
                    path.push_str(&format!("&filter={}", encode(&eq(f, value))));
                }
                Some(p) if !p.contains('[') => local = Some((p, value.as_str())),
                _ => {
                    return Err(Error::invalid_input(
                        "filter",
                        format!("{attr} cannot be filtered here"),
                    ));
                }
            }
        }
        let body = self.get(&path).await?;
        let page: Vec<&Value> = resources(&body).collect();
        let next = next_start(start, count, page.len(), total_of(&body)).map(|s| s.to_string());
        let mut items: Vec<Account> = page
            .into_iter()
            .filter(|u| match local {
                None => true,
                Some(("userName", v)) => {
                    str_of(u, "userName").is_some_and(|n| n.eq_ignore_ascii_case(v))
                }
                Some((p, v)) => u
                    .as_object()
                    .and_then(|o| read_path(o, p))
                    .is_some_and(|x| x == v),
            })
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
        Ok(Page::new(items, next))
    }

    async fn get_account(&self, id: &AccountId) -> Result<Account> {
        let body = self.get(&format!("/Users/{}", encode(id.as_str()))).await?;
        let mut a = Self::account(&body)?;
        a.entitlements = self.groups_of(id).await?;
        Ok(a)
    }

    async fn create_account(&self, req: CreateAccount) -> Result<Account> {
        // Looked up first: after a lost reply, the retry finds it.
        if self
            .find(
                "/Users",
                "userName",
                &req.login,
                true,
                "attributes=userName&",
            )
            .await?
            .is_some()
        {
            return Err(Error::already_exists(format!(
                "a user named {} exists",
                req.login
            )));
        }
        if self.limits.profile.lookup_external_id
            && let Some(ext) = req.attributes.get("external_id").and_then(text)
            && let Some(u) = self
                .find("/Users", "externalId", &ext, false, "attributes=userName&")
                .await?
        {
            return Err(Error::already_exists(format!(
                "a user with externalId {ext} exists (userName {})",
                str_of(&u, "userName").unwrap_or("?")
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
        self.modify(
            &format!("/Users/{}", encode(req.id.as_str())),
            &crate::schema::USER_RESOURCE,
            ops,
        )
        .await?;
        Ok(req.id)
    }

    async fn set_enabled(&self, id: &AccountId, enabled: bool) -> Result<()> {
        self.modify(
            &format!("/Users/{}", encode(id.as_str())),
            &crate::schema::USER_RESOURCE,
            vec![PatchOperation::new(
                Op::Replace,
                Some("active".to_owned()),
                Some(json!(enabled)),
            )],
        )
        .await
    }

    async fn delete_account(&self, id: &AccountId) -> Result<()> {
        self.client
            .request(
                Method::DELETE,
                &format!("/Users/{}", encode(id.as_str())),
                None,
                None,
            )
            .await
            .map(|_| ())
    }

    async fn list_entitlements(&self, req: ListRequest) -> Result<Page<Entitlement>> {
        let (start, count) = position(&req, self.adapted().await?.page_size)?;
        let body = self
            .get(&format!(
                "/Groups?excludedAttributes=members&startIndex={start}&count={count}"
            ))
            .await?;
        let mut items = Vec::new();
        let mut n = 0;
        let mut names = self
            .groups
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for g in resources(&body) {
            n += 1;
            let (Some(id), Some(name)) = (str_of(g, "id"), str_of(g, "displayName")) else {
                continue;
            };
            names.insert(name.to_owned(), id.to_owned());
            items.push(Entitlement::group(name));
        }
        drop(names);
        let next = next_start(start, count, n, total_of(&body)).map(|s| s.to_string());
        Ok(Page::new(items, next))
    }

    async fn list_members(
        &self,
        entitlement: &EntitlementId,
        _req: ListRequest,
    ) -> Result<Page<AccountId>> {
        let gid = self.group_id(entitlement).await?;
        let body = self
            .get(&format!("/Groups/{}?attributes=members", encode(&gid)))
            .await?;
        let members = body
            .get("members")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|m| str_of(m, "value"))
            .map(AccountId::new)
            .collect();
        Ok(Page::new(members, None))
    }

    async fn grant(&self, req: MembershipChange) -> Result<BatchOutcome> {
        self.members(req, Op::Add).await
    }

    /// A group named by the entitlement's id (its `displayName`, which
    /// RFC 7643 compares without case), looked up first so that a retry
    /// after a lost reply finds it rather than making a second one.
    async fn create_entitlement(&self, entitlement: &Entitlement) -> Result<Entitlement> {
        let name = entitlement.id.as_str();
        if let Some(g) = self
            .find(
                "/Groups",
                "displayName",
                name,
                true,
                "excludedAttributes=members&",
            )
            .await?
        {
            return Err(Error::already_exists(format!(
                "a group named {} exists (id {})",
                str_of(&g, "displayName").unwrap_or(name),
                str_of(&g, "id").unwrap_or("?")
            ))
            .with_operation(Operation::CreateEntitlement));
        }
        let body = json!({"schemas": [GROUP], "displayName": name});
        let reply = self
            .client
            .request(Method::POST, "/Groups", Some(&body), None)
            .await?
            .body
            .unwrap_or(Value::Null);
        let id = str_of(&reply, "id").ok_or_else(|| {
            Error::new(
                ErrorKind::Unexpected,
                format!("the service created group {name} and its reply has no id"),
            )
            .with_operation(Operation::CreateEntitlement)
        })?;
        self.groups
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.to_owned(), id.to_owned());
        Ok(Entitlement::group(
            str_of(&reply, "displayName").unwrap_or(name),
        ))
    }

    async fn delete_entitlement(&self, id: &EntitlementId) -> Result<()> {
        let forget = || {
            self.groups
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(id.as_str());
        };
        // A remembered id may be stale (the group deleted and made again
        // by someone else): a 404 for it is checked by name once more.
        for _ in 0..2 {
            let gid = self.group_id(id).await?;
            let sent = self
                .client
                .request(
                    Method::DELETE,
                    &format!("/Groups/{}", encode(&gid)),
                    None,
                    None,
                )
                .await;
            forget();
            match sent {
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                other => return other.map(|_| ()),
            }
        }
        Err(Error::not_found(format!("no group named {id}"))
            .with_operation(Operation::DeleteEntitlement))
    }

    async fn revoke(&self, req: MembershipChange) -> Result<BatchOutcome> {
        self.members(req, Op::Remove).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spc(patch: bool, filter: bool, max_results: u32, bulk: bool) -> ServiceProviderConfig {
        serde_json::from_value(json!({
            "patch": {"supported": patch},
            "bulk": {"supported": bulk, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": filter, "maxResults": max_results},
            "changePassword": {"supported": false},
            "sort": {"supported": false},
            "etag": {"supported": true},
        }))
        .unwrap()
    }

    #[test]
    fn the_service_agreeing_leaves_the_profile_as_it_is() {
        let limits = ScimLimits::of(&crate::client::profile::AWS);
        let a = adapt(&limits, Some(&spc(true, true, 100, false)));
        assert_eq!((a.page_size, a.members_per_patch), (50, 100));
        assert!(
            a.patch && a.filter && a.etag && a.notices.is_empty(),
            "{a:?}"
        );
    }

    #[test]
    fn a_disagreement_names_both_values_and_the_stricter_wins() {
        let limits = ScimLimits::of(&crate::client::profile::AWS);
        let a = adapt(&limits, Some(&spc(false, true, 20, true)));
        assert_eq!(a.page_size, 20);
        assert!(!a.patch);
        let all = a.notices.join("\n");
        for needle in [
            "profile `aws` says bulk = false, the service's ServiceProviderConfig says bulk.supported = true",
            "page_size = 50, the service's ServiceProviderConfig says filter.maxResults = 20",
            "patch.supported = false: updates are a GET and a PUT",
        ] {
            assert!(all.contains(needle), "{needle} not in\n{all}");
        }
        let none = adapt(&limits, None);
        assert!(none.notices[0].contains("no /ServiceProviderConfig"));
    }
}
