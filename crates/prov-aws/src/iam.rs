//! AWS IAM: users, groups, group membership, managed policies.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_iam::Client;
use aws_sdk_iam::types::{EntityType, PolicyScopeType, StatusType, Tag};
use futures_util::StreamExt;
use prov_core::{
    Account, AccountId, Attributes, BatchOutcome, Capabilities, Connector, ConnectorExt,
    CreateAccount, Entitlement, EntitlementId, EntitlementKind, Error, ErrorKind, ListRequest,
    MembershipChange, Operation, Page, Result, UpdateAccount, Value,
};

use crate::error::from_sdk;

/// The tag a disabled user carries (with when it was disabled).
const DISABLED: &str = "prov:disabled";
/// The access keys disabling made inactive, comma-separated, so that
/// enabling makes exactly those active again.
const DISABLED_KEYS: &str = "prov:disabled-keys";
/// Set when disabling deleted the user's console password: enabling cannot
/// give it back (a login profile needs a new password, which prov never
/// invents); set one with `prov reset-secret` or the console.
const CONSOLE: &str = "prov:console-password-removed";

/// How to reach IAM.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IamConfig {
    /// Only users and groups under this path are the connector's (default
    /// `/`: the whole account). A path like `/prov/` keeps humans' and
    /// other tools' users out of listings and orphan reports.
    pub path: String,
    /// Another endpoint (an emulator); AWS's when unset.
    pub endpoint_url: Option<String>,
    /// Requests in flight at once (default 4: IAM's account-level writes
    /// are throttled at a few per second).
    pub max_in_flight: usize,
}

impl Default for IamConfig {
    fn default() -> Self {
        IamConfig {
            path: "/".to_owned(),
            endpoint_url: None,
            max_in_flight: 4,
        }
    }
}

/// AWS IAM as a prov target.
///
/// Accounts are IAM users (their id and login are the user name; a rename
/// changes the id); their attributes are the user's tags (`display_name =
/// ...` is the tag `display_name`), except prov's own `prov:` tags.
/// Entitlements are groups (by name) and managed policies (by ARN,
/// `arn:aws:iam::...:policy/...`), attached to users.
///
/// Disabling deletes the console login profile and makes the active access
/// keys inactive, recording them in tags so that enabling makes exactly
/// those active again; the console password is not restored (a login
/// profile needs a new password, never invented), and the user keeps the
/// tag `prov:console-password-removed` until one is set. Deleting detaches
/// first what IAM requires: managed and inline policies, group
/// memberships, access keys, the login profile.
#[derive(Clone)]
pub struct IamConnector {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    path: String,
    max_in_flight: usize,
    /// Who held what when the current listing of users began.
    snapshot: crate::Snapshot,
}

impl std::fmt::Debug for IamConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IamConnector")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl IamConnector {
    /// A connector for `cfg`, made at once (nothing is sent, and the
    /// standard credential chain is asked on the first call).
    pub fn new(cfg: IamConfig) -> Result<Self> {
        let sdk = crate::sdk_config_now("us-east-1", cfg.endpoint_url.as_deref());
        Self::with_sdk_config(&sdk, cfg)
    }

    /// A connector for `cfg`, with credentials from the standard chain.
    pub async fn connect(cfg: IamConfig) -> Result<Self> {
        // IAM is global; its endpoint lives in us-east-1.
        let sdk = crate::sdk_config(Some("us-east-1".to_owned()), cfg.endpoint_url.clone()).await;
        Self::with_sdk_config(&sdk, cfg)
    }

    /// A connector from an SDK configuration the caller loaded.
    pub fn with_sdk_config(sdk: &aws_config::SdkConfig, cfg: IamConfig) -> Result<Self> {
        if !(cfg.path.starts_with('/') && cfg.path.ends_with('/')) {
            return Err(Error::invalid_input(
                "path",
                format!("{:?}: an IAM path starts and ends with /", cfg.path),
            ));
        }
        if cfg.max_in_flight == 0 {
            return Err(Error::invalid_input("max_in_flight", "must be at least 1"));
        }
        Ok(IamConnector {
            inner: Arc::new(Inner {
                client: Client::new(sdk),
                path: cfg.path,
                max_in_flight: cfg.max_in_flight,
                snapshot: crate::Snapshot::default(),
            }),
        })
    }
}

fn is_policy(e: &EntitlementId) -> bool {
    e.as_str().starts_with("arn:")
}

fn tags_of(attrs: &Attributes, login: &str) -> Result<Vec<Tag>> {
    let mut out = Vec::new();
    for (k, v) in attrs {
        if k.starts_with("prov:") {
            return Err(Error::invalid_input(
                k.clone(),
                format!("{login}: tags starting with prov: are the connector's own"),
            ));
        }
        let value = match v {
            Value::String(s) => s.clone(),
            Value::Null => continue,
            other => other.to_string(),
        };
        out.push(
            Tag::builder()
                .key(k)
                .value(value)
                .build()
                .map_err(|e| Error::invalid_input(k.clone(), e.to_string()))?,
        );
    }
    Ok(out)
}

impl Inner {
    async fn tags(&self, op: Operation, user: &str) -> Result<Vec<(String, String)>> {
        let what = format!("reading the tags of {user}");
        let mut out = Vec::new();
        let mut marker = None;
        loop {
            let page = self
                .client
                .list_user_tags()
                .user_name(user)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| from_sdk(e, op, &what))?;
            out.extend(
                page.tags()
                    .iter()
                    .map(|t| (t.key().to_owned(), t.value().to_owned())),
            );
            match page.marker().filter(|_| page.is_truncated()) {
                Some(m) => marker = Some(m.to_owned()),
                None => return Ok(out),
            }
        }
    }

    async fn account(&self, op: Operation, user: &str) -> Result<Account> {
        let tags = self.tags(op, user).await?;
        let mut a = Account::new(user, user);
        for (k, v) in &tags {
            if !k.starts_with("prov:") {
                a.attributes.insert(k.clone(), Value::from(v.as_str()));
            }
        }
        a.enabled = !tags.iter().any(|(k, _)| k == DISABLED);
        Ok(a)
    }

    /// What one user holds: its groups under the path
    /// (ListGroupsForUser) and the customer-managed policies attached to it
    /// (ListAttachedUserPolicies), as `list_entitlements` names them.
    async fn held_by(&self, op: Operation, user: &str) -> Result<BTreeSet<EntitlementId>> {
        let mut out = BTreeSet::new();
        let what = format!("listing the groups of {user}");
        let mut marker = None;
        loop {
            let page = self
                .client
                .list_groups_for_user()
                .user_name(user)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| from_sdk(e, op, &what))?;
            out.extend(
                page.groups()
                    .iter()
                    .filter(|g| g.path().starts_with(&self.path))
                    .map(|g| EntitlementId::new(g.group_name())),
            );
            match page.marker().filter(|_| page.is_truncated()) {
                Some(m) => marker = Some(m.to_owned()),
                None => break,
            }
        }
        let what = format!("listing the policies attached to {user}");
        let mut marker = None;
        loop {
            let page = self
                .client
                .list_attached_user_policies()
                .user_name(user)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| from_sdk(e, op, &what))?;
            out.extend(
                page.attached_policies()
                    .iter()
                    .filter_map(|p| p.policy_arn())
                    // AWS managed policies (account field `aws`, in any
                    // partition) are not listed as entitlements.
                    .filter(|arn| arn.split(':').nth(4) != Some("aws"))
                    .map(EntitlementId::new),
            );
            match page.marker().filter(|_| page.is_truncated()) {
                Some(m) => marker = Some(m.to_owned()),
                None => return Ok(out),
            }
        }
    }

    async fn in_path(&self, op: Operation, id: &AccountId) -> Result<()> {
        let what = format!("reading user {id}");
        let got = self
            .client
            .get_user()
            .user_name(id.as_str())
            .send()
            .await
            .map_err(|e| from_sdk(e, op, &what))?;
        let path = got.user().map(|u| u.path()).unwrap_or("/");
        if !path.starts_with(&self.path) {
            return Err(Error::not_found(format!(
                "{id} is outside the connector's path {}",
                self.path
            ))
            .with_operation(op));
        }
        Ok(())
    }

    async fn change(&self, req: MembershipChange, add: bool) -> Result<BatchOutcome> {
        let op = if add {
            Operation::Grant
        } else {
            Operation::Revoke
        };
        let ent = &req.entitlement;
        Ok(
            crate::per_account(req.accounts, self.max_in_flight, |id| async move {
                let r = self.change_one(op, ent, &id, add).await;
                (id, r)
            })
            .await,
        )
    }

    async fn change_one(
        &self,
        op: Operation,
        ent: &EntitlementId,
        id: &AccountId,
        add: bool,
    ) -> Result<()> {
        let (user, what) = (id.as_str(), format!("{op:?} {ent} for {id}"));
        let c = &self.client;
        let r = match (is_policy(ent), add) {
            (true, true) => c
                .attach_user_policy()
                .user_name(user)
                .policy_arn(ent.as_str())
                .send()
                .await
                .map(drop)
                .map_err(|e| from_sdk(e, op, &what)),
            (true, false) => c
                .detach_user_policy()
                .user_name(user)
                .policy_arn(ent.as_str())
                .send()
                .await
                .map(drop)
                .map_err(|e| from_sdk(e, op, &what)),
            (false, true) => c
                .add_user_to_group()
                .user_name(user)
                .group_name(ent.as_str())
                .send()
                .await
                .map(drop)
                .map_err(|e| from_sdk(e, op, &what)),
            (false, false) => c
                .remove_user_from_group()
                .user_name(user)
                .group_name(ent.as_str())
                .send()
                .await
                .map(drop)
                .map_err(|e| from_sdk(e, op, &what)),
        };
        match r {
            // Not attached / not a member any more: done. A missing user
            // or entitlement on a grant stays an error.
            Err(e) if !add && e.kind() == ErrorKind::NotFound => {
                self.in_path(op, id).await?;
                Ok(())
            }
            other => other,
        }
    }

    /// Detaches what IAM requires before a user can be deleted.
    async fn strip(&self, op: Operation, user: &str) -> Result<()> {
        let c = &self.client;
        let what = format!("deleting {user}");
        let e = |err| from_sdk(err, op, &what);
        let attached = c
            .list_attached_user_policies()
            .user_name(user)
            .send()
            .await
            .map_err(e)?;
        for p in attached.attached_policies() {
            if let Some(arn) = p.policy_arn() {
                c.detach_user_policy()
                    .user_name(user)
                    .policy_arn(arn)
                    .send()
                    .await
                    .map_err(|err| from_sdk(err, op, &what))?;
            }
        }
        let inline = c
            .list_user_policies()
            .user_name(user)
            .send()
            .await
            .map_err(|err| from_sdk(err, op, &what))?;
        for name in inline.policy_names() {
            c.delete_user_policy()
                .user_name(user)
                .policy_name(name)
                .send()
                .await
                .map_err(|err| from_sdk(err, op, &what))?;
        }
        let groups = c
            .list_groups_for_user()
            .user_name(user)
            .send()
            .await
            .map_err(|err| from_sdk(err, op, &what))?;
        for g in groups.groups() {
            c.remove_user_from_group()
                .user_name(user)
                .group_name(g.group_name())
                .send()
                .await
                .map_err(|err| from_sdk(err, op, &what))?;
        }
        let keys = c
            .list_access_keys()
            .user_name(user)
            .send()
            .await
            .map_err(|err| from_sdk(err, op, &what))?;
        for k in keys.access_key_metadata() {
            if let Some(id) = k.access_key_id() {
                c.delete_access_key()
                    .user_name(user)
                    .access_key_id(id)
                    .send()
                    .await
                    .map_err(|err| from_sdk(err, op, &what))?;
            }
        }
        match c
            .delete_login_profile()
            .user_name(user)
            .send()
            .await
            .map_err(|err| from_sdk(err, op, &what))
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl Connector for IamConnector {
    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::full(100);
        // Users carry their groups and policies: read per entitlement when
        // users are listed, per user when one is read.
        c.lists_memberships = true;
        c.changes_since = false;
        c.create_marker = false;
        // Groups are made in the console or by infrastructure code, as are
        // policies: the engine grants them, it does not make them.
        c.create_entitlement = false;
        c.max_page_size = 1000;
        c.max_concurrency = self.inner.max_in_flight;
        c.filter_attributes = vec!["login".to_owned()];
        // IAM user names are unique ignoring case.
        c.login_case_insensitive = true;
        c.max_login_len = Some(64);
        c
    }

    async fn check(&self) -> Result<()> {
        self.inner
            .client
            .list_users()
            .max_items(1)
            .send()
            .await
            .map_err(|e| from_sdk(e, Operation::Check, "listing a user"))?;
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
            match self.get_account(&AccountId::new(value.as_str())).await {
                Ok(a) => return Ok(Page::last(vec![a])),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            // IAM compares user names ignoring case; a server that does
            // not (moto) is asked for the list.
            let all = self.list_all_accounts().await?;
            return Ok(Page::last(
                all.into_iter()
                    .filter(|a| a.login.eq_ignore_ascii_case(value))
                    .collect(),
            ));
        }
        let size = req.page_size.unwrap_or(100).clamp(1, 1000);
        // Our cursor: how many of the server's page were given already,
        // and the server's marker for that page. A server that sends more
        // than asked (moto ignores MaxItems) is paged through here.
        let (skip, marker) = match req.cursor.as_deref() {
            None => (0, None),
            Some(c) => {
                let (n, m) = c.split_once('|').ok_or_else(|| {
                    Error::invalid_input(
                        "cursor",
                        format!("`{c}` is not a cursor this connector gave"),
                    )
                    .with_operation(op)
                })?;
                let n: usize = n.parse().map_err(|_| {
                    Error::invalid_input(
                        "cursor",
                        format!("`{c}` is not a cursor this connector gave"),
                    )
                    .with_operation(op)
                })?;
                (n, Some(m.to_owned()).filter(|m| !m.is_empty()))
            }
        };
        let page = inner
            .client
            .list_users()
            .path_prefix(&inner.path)
            .max_items(i32::try_from(size).unwrap_or(1000))
            .set_marker(marker.clone())
            .send()
            .await
            .map_err(|e| from_sdk(e, op, "listing users"))?;
        // Filtered here too: a server may ignore PathPrefix.
        let all: Vec<String> = page
            .users()
            .iter()
            .filter(|u| u.path().starts_with(&inner.path))
            .map(|u| u.user_name().to_owned())
            .collect();
        let rest = all.get(skip..).unwrap_or_default();
        let names: Vec<String> = rest.iter().take(size).cloned().collect();
        let next = if rest.len() > size {
            Some(format!("{}|{}", skip + size, marker.unwrap_or_default()))
        } else {
            page.marker()
                .filter(|_| page.is_truncated())
                .map(|m| format!("0|{m}"))
        };
        // ListUsers carries no tags: read them for each user.
        let accounts: Vec<Result<Account>> = futures_util::stream::iter(names)
            .map(|n| async move { inner.account(op, &n).await })
            .buffered(inner.max_in_flight)
            .collect()
            .await;
        let mut items = accounts.into_iter().collect::<Result<Vec<_>>>()?;
        let held = inner
            .snapshot
            .get(self, inner.max_in_flight, req.cursor.is_none())
            .await?;
        crate::with_held(&mut items, &held);
        Ok(Page::new(items, next))
    }

    async fn get_account(&self, id: &AccountId) -> Result<Account> {
        let op = Operation::GetAccount;
        self.inner.in_path(op, id).await?;
        let mut a = self.inner.account(op, id.as_str()).await?;
        a.entitlements = self.inner.held_by(op, id.as_str()).await?;
        Ok(a)
    }

    async fn create_account(&self, req: CreateAccount) -> Result<Account> {
        let op = Operation::CreateAccount;
        let inner = &self.inner;
        if req.login.is_empty() {
            return Err(Error::invalid_input("login", "the login is empty").with_operation(op));
        }
        let mut tags = tags_of(&req.attributes, &req.login).map_err(|e| e.with_operation(op))?;
        if !req.enabled {
            tags.push(
                Tag::builder()
                    .key(DISABLED)
                    .value("at create")
                    .build()
                    .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?,
            );
        }
        let what = format!("creating user {}", req.login);
        inner
            .client
            .create_user()
            .user_name(&req.login)
            .path(&inner.path)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| {
                let e = from_sdk(e, op, &what);
                if e.kind() == ErrorKind::AlreadyExists {
                    e.with_field("login")
                } else {
                    e
                }
            })?;
        let mut a = Account::new(req.login.as_str(), req.login.as_str());
        a.attributes = req.attributes;
        a.attributes.retain(|_, v| *v != Value::Null);
        a.enabled = req.enabled;
        Ok(a)
    }

    async fn update_account(&self, req: UpdateAccount) -> Result<AccountId> {
        let op = Operation::UpdateAccount;
        let inner = &self.inner;
        let user = req.id.as_str();
        inner.in_path(op, &req.id).await?;
        let what = format!("updating user {user}");
        let set = tags_of(&req.delta.set, user).map_err(|e| e.with_operation(op))?;
        if !set.is_empty() {
            inner
                .client
                .tag_user()
                .user_name(user)
                .set_tags(Some(set))
                .send()
                .await
                .map_err(|e| from_sdk(e, op, &what))?;
        }
        let gone: Vec<String> = req.delta.remove.iter().cloned().collect();
        if !gone.is_empty() {
            inner
                .client
                .untag_user()
                .user_name(user)
                .set_tag_keys(Some(gone))
                .send()
                .await
                .map_err(|e| from_sdk(e, op, &what))?;
        }
        match &req.delta.login {
            Some(login) if login != user => {
                inner
                    .client
                    .update_user()
                    .user_name(user)
                    .new_user_name(login)
                    .send()
                    .await
                    .map_err(|e| from_sdk(e, op, &what))?;
                Ok(AccountId::new(login.as_str()))
            }
            _ => Ok(req.id),
        }
    }

    async fn set_enabled(&self, id: &AccountId, enabled: bool) -> Result<()> {
        let op = Operation::SetEnabled;
        let inner = &self.inner;
        let c = &inner.client;
        let user = id.as_str();
        inner.in_path(op, id).await?;
        let what = format!(
            "{} user {user}",
            if enabled { "enabling" } else { "disabling" }
        );
        let tags = inner.tags(op, user).await?;
        let tag = |k: &str| tags.iter().find(|(t, _)| t == k).map(|(_, v)| v.clone());
        let is_disabled = tag(DISABLED).is_some();
        if enabled {
            if !is_disabled {
                return Ok(());
            }
            for key in tag(DISABLED_KEYS)
                .unwrap_or_default()
                .split(',')
                .filter(|k| !k.is_empty())
            {
                match c
                    .update_access_key()
                    .user_name(user)
                    .access_key_id(key)
                    .status(StatusType::Active)
                    .send()
                    .await
                    .map_err(|e| from_sdk(e, op, &what))
                {
                    Ok(_) => {}
                    // Deleted meanwhile: nothing to give back.
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            c.untag_user()
                .user_name(user)
                .tag_keys(DISABLED)
                .tag_keys(DISABLED_KEYS)
                .send()
                .await
                .map_err(|e| from_sdk(e, op, &what))?;
            return Ok(());
        }
        if is_disabled {
            return Ok(());
        }
        let keys = c
            .list_access_keys()
            .user_name(user)
            .send()
            .await
            .map_err(|e| from_sdk(e, op, &what))?;
        let mut made_inactive = Vec::new();
        for k in keys.access_key_metadata() {
            if let (Some(key), Some(StatusType::Active)) = (k.access_key_id(), k.status()) {
                made_inactive.push(key.to_owned());
            }
        }
        // Recorded before anything changes: a disable cut short still
        // knows which keys were active.
        let mut record = vec![
            Tag::builder()
                .key(DISABLED)
                .value("by prov")
                .build()
                .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?,
        ];
        if !made_inactive.is_empty() {
            record.push(
                Tag::builder()
                    .key(DISABLED_KEYS)
                    .value(made_inactive.join(","))
                    .build()
                    .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?,
            );
        }
        c.tag_user()
            .user_name(user)
            .set_tags(Some(record))
            .send()
            .await
            .map_err(|e| from_sdk(e, op, &what))?;
        for key in &made_inactive {
            c.update_access_key()
                .user_name(user)
                .access_key_id(key)
                .status(StatusType::Inactive)
                .send()
                .await
                .map_err(|e| from_sdk(e, op, &what))?;
        }
        match c
            .delete_login_profile()
            .user_name(user)
            .send()
            .await
            .map_err(|e| from_sdk(e, op, &what))
        {
            Ok(_) => {
                c.tag_user()
                    .user_name(user)
                    .tags(
                        Tag::builder()
                            .key(CONSOLE)
                            .value("set a new password to sign in to the console")
                            .build()
                            .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?,
                    )
                    .send()
                    .await
                    .map_err(|e| from_sdk(e, op, &what))?;
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn delete_account(&self, id: &AccountId) -> Result<()> {
        let op = Operation::DeleteAccount;
        let inner = &self.inner;
        inner.in_path(op, id).await?;
        inner.strip(op, id.as_str()).await?;
        let what = format!("deleting user {id}");
        inner
            .client
            .delete_user()
            .user_name(id.as_str())
            .send()
            .await
            .map_err(|e| from_sdk(e, op, &what))?;
        Ok(())
    }

    async fn list_entitlements(&self, req: ListRequest) -> Result<Page<Entitlement>> {
        let op = Operation::ListEntitlements;
        let inner = &self.inner;
        // Groups first, then the account's own (customer managed) policies;
        // the cursor says which and where.
        let (kind, marker) = match req.cursor.as_deref().and_then(|c| c.split_once(':')) {
            Some(("g", m)) => ("g", Some(m.to_owned())),
            Some(("p", m)) => ("p", Some(m.to_owned()).filter(|m| !m.is_empty())),
            Some(_) => {
                return Err(
                    Error::invalid_input("cursor", "not a cursor this connector gave")
                        .with_operation(op),
                );
            }
            None => ("g", None),
        };
        if kind == "g" {
            let page = inner
                .client
                .list_groups()
                .path_prefix(&inner.path)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| from_sdk(e, op, "listing groups"))?;
            // Filtered here too: a server may ignore PathPrefix (moto does).
            let items = page
                .groups()
                .iter()
                .filter(|g| g.path().starts_with(&inner.path))
                .map(|g| Entitlement::group(g.group_name()))
                .collect();
            let next = match page.marker().filter(|_| page.is_truncated()) {
                Some(m) => format!("g:{m}"),
                None => "p:".to_owned(),
            };
            return Ok(Page::new(items, Some(next)));
        }
        let page = inner
            .client
            .list_policies()
            .scope(PolicyScopeType::Local)
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| from_sdk(e, op, "listing policies"))?;
        let items = page
            .policies()
            .iter()
            .filter_map(|p| {
                let mut e = Entitlement::group(p.arn()?);
                e.kind = EntitlementKind::Policy;
                e.display_name = p.policy_name().map(str::to_owned);
                Some(e)
            })
            .collect();
        let next = page
            .marker()
            .filter(|_| page.is_truncated())
            .map(|m| format!("p:{m}"));
        Ok(Page::new(items, next))
    }

    async fn list_members(
        &self,
        entitlement: &EntitlementId,
        req: ListRequest,
    ) -> Result<Page<AccountId>> {
        let op = Operation::ListMembers;
        let inner = &self.inner;
        let what = format!("listing the members of {entitlement}");
        if is_policy(entitlement) {
            let page = inner
                .client
                .list_entities_for_policy()
                .policy_arn(entitlement.as_str())
                .entity_filter(EntityType::User)
                .set_marker(req.cursor.clone())
                .send()
                .await
                .map_err(|e| from_sdk(e, op, &what))?;
            let items = page
                .policy_users()
                .iter()
                .filter_map(|u| u.user_name())
                .map(AccountId::new)
                .collect();
            let next = page
                .marker()
                .filter(|_| page.is_truncated())
                .map(str::to_owned);
            return Ok(Page::new(items, next));
        }
        let page = inner
            .client
            .get_group()
            .group_name(entitlement.as_str())
            .set_marker(req.cursor.clone())
            .send()
            .await
            .map_err(|e| from_sdk(e, op, &what))?;
        let items = page
            .users()
            .iter()
            .map(|u| AccountId::new(u.user_name()))
            .collect();
        let next = page
            .marker()
            .filter(|_| page.is_truncated())
            .map(str::to_owned);
        Ok(Page::new(items, next))
    }

    async fn grant(&self, req: MembershipChange) -> Result<BatchOutcome> {
        self.inner.change(req, true).await
    }

    async fn revoke(&self, req: MembershipChange) -> Result<BatchOutcome> {
        self.inner.change(req, false).await
    }
}
