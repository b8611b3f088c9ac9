//! IAM Identity Center's identity store: users, groups, group memberships.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_identitystore::Client;
use aws_sdk_identitystore::types::{
    AlternateIdentifier, AttributeOperation, Email, Group, MemberId, Name, UniqueAttribute, User,
    UserStatus,
};
use aws_smithy_types::Document;
use prov_core::{
    Account, AccountId, Attributes, BatchOutcome, Capabilities, Connector, CreateAccount,
    Entitlement, EntitlementId, Error, ErrorKind, ListRequest, MembershipChange, Operation, Page,
    RateLimit, Result, UpdateAccount, Value,
};
use tokio::sync::Mutex;

use crate::assignments::Assignments;
use crate::error::from_sdk;
use crate::pace::{Paced, Pacer};
use aws_sdk_ssoadmin::types::PrincipalType;

/// The most results the identity store gives per page.
const PAGE: usize = 100;

/// Requests a second by default: just under the documented 20.
const DEFAULT_RATE: u32 = 19;

/// How to reach an identity store.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IdentityCenterConfig {
    /// The identity store's id (`d-1234567890`).
    pub identity_store_id: String,
    /// The region; the standard chain's (`AWS_REGION`, the profile) when unset.
    pub region: Option<String>,
    /// Another endpoint (an emulator, a VPC endpoint); AWS's when unset.
    pub endpoint_url: Option<String>,
    /// Requests in flight at once in a grant or revoke (default 8).
    pub max_in_flight: usize,
    /// The Identity Center instance (`arn:aws:sso:::instance/ssoins-...`):
    /// when set, permission-set account assignments are entitlements too,
    /// named `PermissionSet@AccountId`.
    pub instance_arn: Option<String>,
    /// Accounts whose assignments are listed before any is made (AWS lists
    /// the accounts a permission set is already provisioned to).
    pub accounts: Vec<String>,
    /// How long an assignment request may stay IN_PROGRESS (default 5 min).
    pub assignment_timeout: std::time::Duration,
    /// Requests a second this connector sends, at most, over both APIs
    /// (identity store and sso-admin): default 19, just under the 20 AWS
    /// documents as their shared throttle (a request arriving exactly at
    /// the limit, jitter on the wire, is throttled); 0 for no pacing.
    pub requests_per_second: u32,
}

impl IdentityCenterConfig {
    /// The identity store `identity_store_id`, everything else from the
    /// standard chain.
    pub fn new(identity_store_id: impl Into<String>) -> Self {
        IdentityCenterConfig {
            identity_store_id: identity_store_id.into(),
            region: None,
            endpoint_url: None,
            max_in_flight: 8,
            instance_arn: None,
            accounts: Vec::new(),
            assignment_timeout: std::time::Duration::from_secs(300),
            requests_per_second: DEFAULT_RATE,
        }
    }

    /// Permission-set account assignments in `instance_arn` as entitlements
    /// too.
    pub fn with_instance(mut self, instance_arn: impl Into<String>) -> Self {
        self.instance_arn = Some(instance_arn.into());
        self
    }
}

/// IAM Identity Center's identity store as a prov target.
///
/// Accounts are identity-store users (their id is the `UserId`, their
/// login the `UserName`); entitlements are groups, by display name (unique
/// in a store), and, when [`IdentityCenterConfig::instance_arn`] is set,
/// permission-set account assignments named `PermissionSet@AccountId`
/// (kind `policy`; their members are the users assigned directly; groups
/// are assigned with [`IdentityCenterConnector::assign_to_group`]). A
/// user holding one carries it by name and by ARN, as a policy may name
/// either. With an instance, a group whose name has that shape is read as
/// an assignment.
/// Attributes: `display_name`, `given_name`, `family_name`,
/// `mail` (the primary email), `title`. Credentials come from the standard
/// chain (environment, profile, SSO, container or instance role), never
/// from prov's configuration; the SDK's own retries are off, since the
/// engine retries what is retryable.
#[derive(Clone)]
pub struct IdentityCenterConnector {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    store: String,
    max_in_flight: usize,
    /// Group display name -> GroupId.
    groups: Mutex<HashMap<String, String>>,
    /// Permission-set account assignments, when an instance is configured.
    assignments: Option<Assignments>,
    /// Every request's turn, both APIs (one throttle).
    pace: Arc<Pacer>,
    /// Who held what when the current listing of users began.
    snapshot: crate::Snapshot,
}

impl std::fmt::Debug for IdentityCenterConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityCenterConnector")
            .field("identity_store_id", &self.inner.store)
            .finish_non_exhaustive()
    }
}

impl IdentityCenterConnector {
    /// A connector for `cfg`, made at once (nothing is sent, and the
    /// standard credential chain is asked on the first call). The region
    /// is `cfg.region`, else `AWS_REGION` or `AWS_DEFAULT_REGION`.
    pub fn new(cfg: IdentityCenterConfig) -> Result<Self> {
        let region = cfg
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .filter(|r| !r.is_empty())
            .ok_or_else(|| {
                Error::invalid_input(
                    "region",
                    "no region: set the Identity Center instance's region, or AWS_REGION",
                )
            })?;
        let sdk = crate::sdk_config_now(&region, cfg.endpoint_url.as_deref());
        Self::with_sdk_config(&sdk, cfg)
    }

    /// A connector for `cfg`, with credentials from the standard chain.
    pub async fn connect(cfg: IdentityCenterConfig) -> Result<Self> {
        let sdk = crate::sdk_config(cfg.region.clone(), cfg.endpoint_url.clone()).await;
        Self::with_sdk_config(&sdk, cfg)
    }

    /// A connector from an SDK configuration the caller loaded.
    pub fn with_sdk_config(sdk: &aws_config::SdkConfig, cfg: IdentityCenterConfig) -> Result<Self> {
        if cfg.identity_store_id.trim().is_empty() {
            return Err(Error::invalid_input(
                "identity_store_id",
                "is empty: the identity store's id (d-...) from the IAM Identity Center console",
            ));
        }
        if cfg.max_in_flight == 0 {
            return Err(Error::invalid_input("max_in_flight", "must be at least 1"));
        }
        let pace = Arc::new(Pacer::new(cfg.requests_per_second));
        let assignments = match cfg.instance_arn {
            Some(arn) => Some(Assignments::new(
                sdk,
                arn,
                cfg.accounts,
                cfg.assignment_timeout,
                Arc::clone(&pace),
            )?),
            None if !cfg.accounts.is_empty() => {
                return Err(Error::invalid_input(
                    "accounts",
                    "accounts are for permission-set assignments: set instance_arn too",
                ));
            }
            None => None,
        };
        Ok(IdentityCenterConnector {
            inner: Arc::new(Inner {
                client: Client::new(sdk),
                store: cfg.identity_store_id,
                max_in_flight: cfg.max_in_flight,
                groups: Mutex::new(HashMap::new()),
                assignments,
                pace,
                snapshot: crate::Snapshot::default(),
            }),
        })
    }

    fn pace(&self) -> &Pacer {
        &self.inner.pace
    }

    /// What one user holds: its groups (ListGroupMembershipsForMember) and,
    /// with an instance, its own assignments
    /// (ListAccountAssignmentsForPrincipal).
    async fn held_by(
        &self,
        op: Operation,
        id: &AccountId,
    ) -> Result<std::collections::BTreeSet<EntitlementId>> {
        let inner = &self.inner;
        let what = format!("listing the groups of {id}");
        let mut group_ids = Vec::new();
        let mut token = None;
        loop {
            let page = inner
                .client
                .list_group_memberships_for_member()
                .identity_store_id(&inner.store)
                .member_id(MemberId::UserId(id.as_str().to_owned()))
                .max_results(100)
                .set_next_token(token)
                .send()
                .paced(self.pace())
                .await
                .map_err(|e| from_sdk(e, op, &what))?;
            group_ids.extend(
                page.group_memberships()
                    .iter()
                    .filter_map(|m| m.group_id().map(str::to_owned)),
            );
            token = page
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        let mut out = std::collections::BTreeSet::new();
        for gid in group_ids {
            if let Some(name) = inner.group_name(op, &gid).await? {
                out.insert(EntitlementId::new(name));
            }
        }
        if let Some(a) = &inner.assignments {
            out.extend(a.held_by(op, id.as_str()).await?);
            a.with_arn_forms(op, &mut out).await?;
        }
        Ok(out)
    }

    /// Assigns the permission set `assignment` (`PermissionSet@AccountId`)
    /// to the group `group` (by display name), and waits for AWS to finish.
    pub async fn assign_to_group(
        &self,
        assignment: &EntitlementId,
        group: &EntitlementId,
    ) -> Result<()> {
        self.group_assignment(assignment, group, true).await
    }

    /// Takes the permission set `assignment` from the group `group`, and
    /// waits for AWS to finish; not assigned is done.
    pub async fn unassign_from_group(
        &self,
        assignment: &EntitlementId,
        group: &EntitlementId,
    ) -> Result<()> {
        self.group_assignment(assignment, group, false).await
    }

    /// The groups (by display name) `assignment` is assigned to.
    pub async fn groups_assigned(&self, assignment: &EntitlementId) -> Result<Vec<EntitlementId>> {
        let op = Operation::ListMembers;
        let inner = &self.inner;
        let a = inner.assignments_for(op, assignment)?;
        let t = a.resolve(op, assignment).await?;
        let mut out = Vec::new();
        for id in a.principals(op, &t, &PrincipalType::Group).await? {
            let name = EntitlementId::new(inner.group_name(op, &id).await?.unwrap_or(id));
            if !out.contains(&name) {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    async fn group_assignment(
        &self,
        assignment: &EntitlementId,
        group: &EntitlementId,
        add: bool,
    ) -> Result<()> {
        let op = if add {
            Operation::Grant
        } else {
            Operation::Revoke
        };
        let inner = &self.inner;
        let a = inner.assignments_for(op, assignment)?;
        let t = a.resolve(op, assignment).await?;
        let group_id = inner.group_id(op, group).await?;
        let held = a
            .principals(op, &t, &PrincipalType::Group)
            .await?
            .into_iter()
            .filter(|p| *p == group_id)
            .count();
        if add && held == 0 {
            a.apply(op, &t, PrincipalType::Group, &group_id, true)
                .await?;
        }
        if !add {
            for _ in 0..held {
                a.apply(op, &t, PrincipalType::Group, &group_id, false)
                    .await?;
            }
        }
        Ok(())
    }
}

fn text(attrs: &Attributes, key: &str) -> Option<String> {
    match attrs.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// The attributes this connector maps.
const ATTRIBUTES: [&str; 5] = ["display_name", "given_name", "family_name", "mail", "title"];

fn check_attributes(login: &str, attrs: &Attributes) -> Result<()> {
    for (k, v) in attrs {
        if !ATTRIBUTES.contains(&k.as_str()) {
            return Err(Error::invalid_input(
                k.clone(),
                format!(
                    "{login}: `{k}` is not an identity-store attribute this connector maps \
                     ({})",
                    ATTRIBUTES.join(", ")
                ),
            ));
        }
        if !matches!(v, Value::String(_) | Value::Null) {
            return Err(Error::invalid_input(
                k.clone(),
                format!("{login}: `{k}` must be text"),
            ));
        }
    }
    Ok(())
}

/// The parts of a user this connector reads (from a listing's `User` or
/// from `DescribeUser`).
struct UserParts<'a> {
    id: &'a str,
    login: Option<&'a str>,
    display_name: Option<&'a str>,
    name: Option<&'a Name>,
    emails: &'a [Email],
    title: Option<&'a str>,
    status: Option<&'a UserStatus>,
}

fn to_account(u: &UserParts<'_>) -> Account {
    let mut a = Account::new(u.id, u.login.unwrap_or_default());
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            a.attributes.insert(k.to_owned(), Value::from(v));
        }
    };
    put("display_name", u.display_name);
    put("given_name", u.name.and_then(Name::given_name));
    put("family_name", u.name.and_then(Name::family_name));
    let mail = u
        .emails
        .iter()
        .find(|e| e.primary())
        .or_else(|| u.emails.first())
        .and_then(Email::value);
    put("mail", mail);
    put("title", u.title);
    a.enabled = !matches!(u.status, Some(UserStatus::Disabled));
    a
}

fn listed(u: &User) -> Account {
    to_account(&UserParts {
        id: u.user_id(),
        login: u.user_name(),
        display_name: u.display_name(),
        name: u.name(),
        emails: u.emails(),
        title: u.title(),
        status: u.user_status(),
    })
}

fn group_entitlement(g: &Group) -> Option<Entitlement> {
    let name = g.display_name()?;
    let mut e = Entitlement::group(name);
    e.display_name = g.description().map(str::to_owned);
    Some(e)
}

impl Inner {
    fn pace(&self) -> &Pacer {
        &self.pace
    }

    /// The display name of group `gid`: from the cache, else DescribeGroup
    /// (and cached); `None` for a group without one.
    async fn group_name(&self, op: Operation, gid: &str) -> Result<Option<String>> {
        let known = self
            .groups
            .lock()
            .await
            .iter()
            .find(|(_, v)| v.as_str() == gid)
            .map(|(k, _)| k.clone());
        if known.is_some() {
            return Ok(known);
        }
        let what = format!("reading group {gid}");
        let g = self
            .client
            .describe_group()
            .identity_store_id(&self.store)
            .group_id(gid)
            .send()
            .paced(self.pace())
            .await
            .map_err(|e| from_sdk(e, op, &what))?;
        let Some(name) = g.display_name().map(str::to_owned) else {
            return Ok(None);
        };
        self.groups
            .lock()
            .await
            .insert(name.clone(), gid.to_owned());
        Ok(Some(name))
    }

    /// The assignments part, when `id` names an assignment and an instance
    /// is configured.
    fn assignment(&self, id: &EntitlementId) -> Option<&Assignments> {
        self.assignments
            .as_ref()
            .filter(|_| crate::assignments::split(id.as_str()).is_some())
    }

    fn assignments_for(&self, op: Operation, id: &EntitlementId) -> Result<&Assignments> {
        let a = self.assignments.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::Config,
                "permission-set assignments need instance_arn in the connector's configuration",
            )
            .with_operation(op)
        })?;
        if crate::assignments::split(id.as_str()).is_none() {
            return Err(Error::invalid_input(
                "entitlement",
                format!("{id}: an assignment is named PermissionSet@AccountId"),
            )
            .with_operation(op));
        }
        Ok(a)
    }

    async fn group_id(&self, op: Operation, name: &EntitlementId) -> Result<String> {
        if let Some(id) = self.groups.lock().await.get(name.as_str()) {
            return Ok(id.clone());
        }
        let what = format!("looking up group {name}");
        let found = self
            .client
            .get_group_id()
            .identity_store_id(&self.store)
            .alternate_identifier(AlternateIdentifier::UniqueAttribute(
                UniqueAttribute::builder()
                    .attribute_path("displayName")
                    .attribute_value(Document::String(name.as_str().to_owned()))
                    .build()
                    .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?,
            ))
            .send()
            .paced(self.pace())
            .await
            .map_err(|e| {
                let e = from_sdk(e, op, &what);
                if e.kind() == ErrorKind::NotFound
                    && self.assignments.is_none()
                    && crate::assignments::split(name.as_str()).is_some()
                {
                    // Meant as a permission-set assignment?
                    Error::new(
                        ErrorKind::Config,
                        format!(
                            "{name}: no such group, and it reads as a permission-set \
                             assignment (PermissionSet@AccountId): set instance_arn to \
                             grant assignments"
                        ),
                    )
                    .with_operation(op)
                } else {
                    e
                }
            })?;
        let id = found.group_id().to_owned();
        self.groups
            .lock()
            .await
            .insert(name.as_str().to_owned(), id.clone());
        Ok(id)
    }

    async fn describe(&self, op: Operation, id: &AccountId) -> Result<Account> {
        let what = format!("reading user {id}");
        let u = self
            .client
            .describe_user()
            .identity_store_id(&self.store)
            .user_id(id.as_str())
            .send()
            .paced(self.pace())
            .await
            .map_err(|e| from_sdk(e, op, &what))?;
        Ok(to_account(&UserParts {
            id: u.user_id(),
            login: u.user_name(),
            display_name: u.display_name(),
            name: u.name(),
            emails: u.emails(),
            title: u.title(),
            status: u.user_status(),
        }))
    }

    async fn change(&self, req: MembershipChange, add: bool) -> Result<BatchOutcome> {
        let op = if add {
            Operation::Grant
        } else {
            Operation::Revoke
        };
        let group = self.group_id(op, &req.entitlement).await?;
        let group = group.as_str();
        Ok(
            crate::per_account(req.accounts, self.max_in_flight, |id| async move {
                let r = if add {
                    self.add_member(op, group, &id).await
                } else {
                    self.remove_member(op, group, &id).await
                };
                (id, r)
            })
            .await,
        )
    }

    async fn add_member(&self, op: Operation, group: &str, id: &AccountId) -> Result<()> {
        let what = format!("adding {id} to group {group}");
        match self
            .client
            .create_group_membership()
            .identity_store_id(&self.store)
            .group_id(group)
            .member_id(MemberId::UserId(id.as_str().to_owned()))
            .send()
            .paced(self.pace())
            .await
            .map_err(|e| from_sdk(e, op, &what))
        {
            Ok(_) => Ok(()),
            // Already a member: done.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn remove_member(&self, op: Operation, group: &str, id: &AccountId) -> Result<()> {
        let what = format!("removing {id} from group {group}");
        // Until the membership is gone: AWS keeps one per member, but a
        // store that took a second one (moto does) keeps the access too.
        for _ in 0..5 {
            let membership = match self
                .client
                .get_group_membership_id()
                .identity_store_id(&self.store)
                .group_id(group)
                .member_id(MemberId::UserId(id.as_str().to_owned()))
                .send()
                .paced(self.pace())
                .await
                .map_err(|e| from_sdk(e, op, &what))
            {
                Ok(m) => m.membership_id().to_owned(),
                // Not (or no longer) a member: done.
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            };
            match self
                .client
                .delete_group_membership()
                .identity_store_id(&self.store)
                .membership_id(membership)
                .send()
                .paced(self.pace())
                .await
                .map_err(|e| from_sdk(e, op, &what))
            {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(
            ErrorKind::Unexpected,
            format!("{what}: still a member after five removals"),
        )
        .with_operation(op))
    }
}

#[async_trait]
impl Connector for IdentityCenterConnector {
    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::full(PAGE);
        // Users cannot be disabled through this API here; deleting is the
        // only way to take access away (the engine plans accordingly).
        c.disable = false;
        // Users carry their groups and assignments: read per entitlement
        // when users are listed, per user when one is read.
        c.lists_memberships = true;
        c.changes_since = false;
        c.create_marker = false;
        c.create_entitlement = true;
        c.max_page_size = PAGE;
        c.max_concurrency = self.inner.max_in_flight;
        // Identity Center's APIs share one throttle: 20 requests a second.
        c.rate_limit = Some(RateLimit::new(20, std::time::Duration::from_secs(1)));
        c.filter_attributes = vec!["login".to_owned()];
        // Not claimed: user names are compared as given (moto does; AWS
        // documents no case folding). A create the store then refuses as
        // taken fails that one operation, never takes someone's account.
        c.login_case_insensitive = false;
        c
    }

    async fn check(&self) -> Result<()> {
        let op = Operation::Check;
        self.inner
            .client
            .list_groups()
            .identity_store_id(&self.inner.store)
            .max_results(1)
            .send()
            .paced(self.pace())
            .await
            .map_err(|e| from_sdk(e, op, "listing a group"))?;
        Ok(())
    }

    async fn list_accounts(&self, req: ListRequest) -> Result<Page<Account>> {
        let op = Operation::ListAccounts;
        let inner = &self.inner;
        if let Some((attr, value)) = &req.filter {
            if attr != "login" {
                return Err(Error::invalid_input(
                    "filter",
                    format!("`{attr}`: only `login` is filtered here"),
                )
                .with_operation(op));
            }
            let what = format!("looking up user {value}");
            let found = inner
                .client
                .get_user_id()
                .identity_store_id(&inner.store)
                .alternate_identifier(AlternateIdentifier::UniqueAttribute(
                    UniqueAttribute::builder()
                        .attribute_path("userName")
                        .attribute_value(Document::String(value.clone()))
                        .build()
                        .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?,
                ))
                .send()
                .paced(self.pace())
                .await
                .map_err(|e| from_sdk(e, op, &what));
            return match found {
                Ok(f) => {
                    let id = AccountId::new(f.user_id());
                    let mut a = inner.describe(op, &id).await?;
                    a.entitlements = self.held_by(op, &id).await?;
                    Ok(Page::last(vec![a]))
                }
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(Page::last(Vec::new())),
                Err(e) => Err(e),
            };
        }
        let size = req.page_size.unwrap_or(PAGE).clamp(1, PAGE);
        let page = inner
            .client
            .list_users()
            .identity_store_id(&inner.store)
            .max_results(i32::try_from(size).unwrap_or(100))
            .set_next_token(req.cursor.clone())
            .send()
            .paced(self.pace())
            .await
            .map_err(|e| from_sdk(e, op, "listing users"))?;
        let held = inner
            .snapshot
            .get(self, inner.max_in_flight, req.cursor.is_none())
            .await?;
        let mut items: Vec<Account> = page.users().iter().map(listed).collect();
        crate::with_held(&mut items, &held);
        if let Some(a) = &inner.assignments {
            for acct in &mut items {
                a.with_arn_forms(op, &mut acct.entitlements).await?;
            }
        }
        Ok(Page::new(
            items,
            page.next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
        ))
    }

    async fn get_account(&self, id: &AccountId) -> Result<Account> {
        let op = Operation::GetAccount;
        let mut a = self.inner.describe(op, id).await?;
        a.entitlements = self.held_by(op, id).await?;
        Ok(a)
    }

    async fn create_account(&self, req: CreateAccount) -> Result<Account> {
        let op = Operation::CreateAccount;
        let inner = &self.inner;
        if req.login.is_empty() {
            return Err(Error::invalid_input("login", "the login is empty").with_operation(op));
        }
        check_attributes(&req.login, &req.attributes).map_err(|e| e.with_operation(op))?;
        if !req.enabled {
            return Err(Error::invalid_input(
                "enabled",
                format!(
                    "{}: identity-store users cannot be created disabled by this connector",
                    req.login
                ),
            )
            .with_operation(op));
        }
        let a = &req.attributes;
        // The identity store requires a name, given and family (AWS and
        // moto refuse a user without: ValidationException): asked for here,
        // never made up.
        let part = |k: &str| {
            text(a, k).ok_or_else(|| {
                Error::invalid_input(
                    k,
                    format!(
                        "{}: an identity-store user needs given_name and family_name",
                        req.login
                    ),
                )
                .with_operation(op)
            })
        };
        let name = Name::builder()
            .given_name(part("given_name")?)
            .family_name(part("family_name")?)
            .build();
        let mut call = inner
            .client
            .create_user()
            .identity_store_id(&inner.store)
            .user_name(&req.login)
            .display_name(text(a, "display_name").unwrap_or_else(|| req.login.clone()))
            .name(name)
            .set_title(text(a, "title"));
        if let Some(mail) = text(a, "mail") {
            call = call.emails(
                Email::builder()
                    .value(mail)
                    .primary(true)
                    .r#type("work")
                    .build(),
            );
        }
        let what = format!("creating user {}", req.login);
        let made = call.send().paced(self.pace()).await.map_err(|e| {
            let e = from_sdk(e, op, &what);
            if e.kind() == ErrorKind::AlreadyExists {
                e.with_field("login")
            } else {
                e
            }
        })?;
        let mut acct = Account::new(made.user_id(), req.login);
        acct.attributes = req.attributes;
        acct.attributes.retain(|_, v| *v != Value::Null);
        Ok(acct)
    }

    async fn update_account(&self, req: UpdateAccount) -> Result<AccountId> {
        let op = Operation::UpdateAccount;
        let inner = &self.inner;
        let delta = &req.delta;
        check_attributes(req.id.as_str(), &delta.set).map_err(|e| e.with_operation(op))?;
        let path = |k: &str| match k {
            "display_name" => "displayName",
            "given_name" => "name.givenName",
            "family_name" => "name.familyName",
            "mail" => "emails",
            _ => "title",
        };
        let mut ops = Vec::new();
        for (k, v) in &delta.set {
            let value = match (k.as_str(), v) {
                ("mail", Value::String(m)) => Document::Array(vec![Document::Object(
                    [
                        ("value".to_owned(), Document::String(m.clone())),
                        ("type".to_owned(), Document::String("work".to_owned())),
                        ("primary".to_owned(), Document::Bool(true)),
                    ]
                    .into_iter()
                    .collect(),
                )]),
                (_, Value::String(s)) => Document::String(s.clone()),
                _ => Document::Null,
            };
            ops.push(
                AttributeOperation::builder()
                    .attribute_path(path(k))
                    .attribute_value(value)
                    .build()
                    .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?,
            );
        }
        for k in &delta.remove {
            if !ATTRIBUTES.contains(&k.as_str()) {
                return Err(Error::invalid_input(
                    k.clone(),
                    format!("`{k}` is not an identity-store attribute this connector maps"),
                )
                .with_operation(op));
            }
            ops.push(
                AttributeOperation::builder()
                    .attribute_path(path(k))
                    .build()
                    .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?,
            );
        }
        if let Some(login) = &delta.login {
            ops.push(
                AttributeOperation::builder()
                    .attribute_path("userName")
                    .attribute_value(Document::String(login.clone()))
                    .build()
                    .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?,
            );
        }
        if ops.is_empty() {
            return Ok(req.id);
        }
        let what = format!("updating user {}", req.id);
        inner
            .client
            .update_user()
            .identity_store_id(&inner.store)
            .user_id(req.id.as_str())
            .set_operations(Some(ops))
            .send()
            .paced(self.pace())
            .await
            .map_err(|e| from_sdk(e, op, &what))?;
        Ok(req.id)
    }

    async fn delete_account(&self, id: &AccountId) -> Result<()> {
        let op = Operation::DeleteAccount;
        // Read first: a user already gone is NotFound, as the contract
        // says (moto answers a delete of a missing user with success).
        self.inner.describe(op, id).await?;
        let what = format!("deleting user {id}");
        self.inner
            .client
            .delete_user()
            .identity_store_id(&self.inner.store)
            .user_id(id.as_str())
            .send()
            .paced(self.pace())
            .await
            .map_err(|e| from_sdk(e, op, &what))?;
        Ok(())
    }

    async fn list_entitlements(&self, req: ListRequest) -> Result<Page<Entitlement>> {
        let op = Operation::ListEntitlements;
        let inner = &self.inner;
        // Groups first (cursor `g:<token>`), then, with an instance, one
        // page per permission set (cursor `a:<index>`).
        let groups_token = match req.cursor.as_deref() {
            None => None,
            Some(c) => {
                if let Some(at) = c.strip_prefix("a:") {
                    let at = at.parse::<usize>().map_err(|_| {
                        Error::invalid_input("cursor", format!("`{c}` is not this connector's"))
                            .with_operation(op)
                    })?;
                    return match &inner.assignments {
                        Some(a) => a.list_page(at).await,
                        None => Ok(Page::last(Vec::new())),
                    };
                }
                Some(
                    c.strip_prefix("g:")
                        .ok_or_else(|| {
                            Error::invalid_input("cursor", format!("`{c}` is not this connector's"))
                                .with_operation(op)
                        })?
                        .to_owned(),
                )
            }
        };
        let size = req.page_size.unwrap_or(PAGE).clamp(1, PAGE);
        let page = inner
            .client
            .list_groups()
            .identity_store_id(&inner.store)
            .max_results(i32::try_from(size).unwrap_or(100))
            .set_next_token(groups_token)
            .send()
            .paced(self.pace())
            .await
            .map_err(|e| from_sdk(e, op, "listing groups"))?;
        let mut known = inner.groups.lock().await;
        let mut items = Vec::new();
        for g in page.groups() {
            if let Some(e) = group_entitlement(g) {
                known.insert(e.id.as_str().to_owned(), g.group_id().to_owned());
                items.push(e);
            }
        }
        let next = match page.next_token().filter(|t| !t.is_empty()) {
            Some(t) => Some(format!("g:{t}")),
            None if inner.assignments.is_some() => Some("a:0".to_owned()),
            None => None,
        };
        Ok(Page::new(items, next))
    }

    async fn list_members(
        &self,
        entitlement: &EntitlementId,
        req: ListRequest,
    ) -> Result<Page<AccountId>> {
        let op = Operation::ListMembers;
        let inner = &self.inner;
        if let Some(a) = inner.assignment(entitlement) {
            // One listing, whole: ListAccountAssignments has no filter by
            // principal type, and a page is small.
            let t = a.resolve(op, entitlement).await?;
            let mut users = a.principals(op, &t, &PrincipalType::User).await?;
            users.sort();
            users.dedup();
            return Ok(Page::last(users.into_iter().map(AccountId::new).collect()));
        }
        let group = inner.group_id(op, entitlement).await?;
        let size = req.page_size.unwrap_or(PAGE).clamp(1, PAGE);
        let what = format!("listing the members of {entitlement}");
        let page = inner
            .client
            .list_group_memberships()
            .identity_store_id(&inner.store)
            .group_id(group)
            .max_results(i32::try_from(size).unwrap_or(100))
            .set_next_token(req.cursor.clone())
            .send()
            .paced(self.pace())
            .await
            .map_err(|e| from_sdk(e, op, &what))?;
        let items = page
            .group_memberships()
            .iter()
            .filter_map(|m| match m.member_id() {
                Some(MemberId::UserId(u)) => Some(AccountId::new(u.as_str())),
                _ => None,
            })
            .collect();
        Ok(Page::new(
            items,
            page.next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
        ))
    }

    async fn grant(&self, req: MembershipChange) -> Result<BatchOutcome> {
        if let Some(a) = self.inner.assignment(&req.entitlement) {
            return a
                .change(
                    &req.entitlement,
                    req.accounts,
                    true,
                    self.inner.max_in_flight,
                )
                .await;
        }
        self.inner.change(req, true).await
    }

    async fn revoke(&self, req: MembershipChange) -> Result<BatchOutcome> {
        if let Some(a) = self.inner.assignment(&req.entitlement) {
            return a
                .change(
                    &req.entitlement,
                    req.accounts,
                    false,
                    self.inner.max_in_flight,
                )
                .await;
        }
        self.inner.change(req, false).await
    }

    async fn create_entitlement(&self, entitlement: &Entitlement) -> Result<Entitlement> {
        let op = Operation::CreateEntitlement;
        let inner = &self.inner;
        if let Some(a) = inner.assignment(&entitlement.id) {
            return a.create(entitlement).await;
        }
        let name = entitlement.id.as_str();
        let what = format!("creating group {name}");
        let made = inner
            .client
            .create_group()
            .identity_store_id(&inner.store)
            .display_name(name)
            .set_description(entitlement.display_name.clone())
            .send()
            .paced(self.pace())
            .await
            .map_err(|e| from_sdk(e, op, &what))?;
        inner
            .groups
            .lock()
            .await
            .insert(name.to_owned(), made.group_id().to_owned());
        Ok(entitlement.clone())
    }

    async fn delete_entitlement(&self, id: &EntitlementId) -> Result<()> {
        let op = Operation::DeleteEntitlement;
        let inner = &self.inner;
        if let Some(a) = inner.assignment(id) {
            return a.delete(id).await;
        }
        let group = inner.group_id(op, id).await?;
        let what = format!("deleting group {id}");
        inner
            .client
            .delete_group()
            .identity_store_id(&inner.store)
            .group_id(group)
            .send()
            .paced(self.pace())
            .await
            .map_err(|e| from_sdk(e, op, &what))?;
        inner.groups.lock().await.remove(id.as_str());
        Ok(())
    }
}
