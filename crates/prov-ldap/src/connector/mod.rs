//! The `Connector` implementation.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use futures_util::future::join_all;
use ldap3::{Mod, Scope};
use prov_core::{
    Account, AccountId, Attributes, BatchOutcome, Capabilities, Change, ChangeSet, Connector,
    CreateAccount, Entitlement, EntitlementId, Error, ErrorKind, ListRequest, MemberFailure,
    MembershipChange, Operation, Page, Result, UpdateAccount, Value,
};
use tokio::sync::Mutex;

use crate::config::{DisableMethod, LdapConfig, MemberStyle, Syntax};
use crate::conn::{Conn, Entry, Search, expired_cursor};
use crate::dn::{Dn, canonical, child, equality};
use crate::error::from_result;
use crate::kept::Kept;

mod accounts;
mod ad;
mod changes;
mod codec;
mod disable;
mod groups;
mod listing;

use ad::unicode_pwd;
use codec::{bytes_mod, decode, encode};
use groups::first_rdn_end;

/// Members of every group, by member key, built once per full listing when
/// the directory keeps no `memberOf`.
type MemberIndex = HashMap<String, BTreeSet<EntitlementId>>;

/// An LDAP directory as a prov target.
///
/// Accounts are entries under the configured bases (their id is the DN),
/// entitlements are groups under the group base (their id is the group's
/// name). Everything placed in a DN or a filter is escaped (RFC 4514,
/// RFC 4515); nothing outside the configured bases is read or written.
///
/// Listings page with RFC 2696, each paged search on a connection of its
/// own (OpenLDAP keeps one per connection); a group's members are read once
/// per listing and paged from that list. A cursor stays good for 15 minutes
/// unused, and up to 64 listings (16 member listings) may be under way at
/// once; past that the oldest cursor is refused (`InvalidInput`, field
/// `cursor`) and that listing starts again from its first page.
pub struct LdapConnector {
    inner: Arc<Inner>,
}

/// How many listings get their next page read ahead at once (as many as
/// paged searches are kept open).
const READ_AHEAD: usize = 64;

/// A page being read ahead: the next page of a listing is asked for as
/// soon as the cookie for it arrives, so that the directory and the
/// network work while the caller handles the page it has.
struct ReadAhead {
    /// The cursor and filter of the page it reads.
    key: (String, String, usize),
    task: tokio::task::JoinHandle<Result<Page<Account>>>,
}

struct Inner {
    cfg: LdapConfig,
    conn: Conn,
    bases: Vec<(String, Dn)>,
    group_base: Dn,
    /// Directory attributes read for an account.
    read_attrs: Vec<String>,
    index: Mutex<Option<Arc<MemberIndex>>>,
    /// Member lists being paged (group members are read once per listing).
    member_lists: std::sync::Mutex<Kept<(EntitlementId, Arc<Vec<AccountId>>)>>,
    /// Pages being read ahead, oldest first (at most [`READ_AHEAD`]): one
    /// per listing under way, so listings at the same time keep theirs.
    read_ahead: std::sync::Mutex<Vec<ReadAhead>>,
    /// The account base as the directory spells it.
    base_spelling: tokio::sync::OnceCell<String>,
    /// Group DN (as the directory spells it in `memberOf`) to group name:
    /// accounts name the same few groups over and over.
    group_names: std::sync::Mutex<HashMap<String, Option<EntitlementId>>>,
    /// Held while a gidNumber is picked and its group added, so that two
    /// creates from this connector never take the same number.
    gid_lock: Mutex<()>,
    /// AD: group RID -> group name, for `primaryGroupID` (an account's
    /// primary group, Domain Users, is never in its `memberOf`). Read once.
    primary_groups: tokio::sync::OnceCell<HashMap<u32, EntitlementId>>,
}

impl std::fmt::Debug for LdapConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = &self.inner;
        f.debug_struct("LdapConnector")
            .field("url", &inner.cfg.connection.url)
            .field("dialect", &inner.cfg.dialect)
            .field("accounts", &inner.cfg.accounts.base)
            .field("groups", &inner.cfg.groups.base)
            .finish_non_exhaustive()
    }
}

fn not_found(op: Operation, what: impl std::fmt::Display) -> Error {
    Error::not_found(format!("{what} does not exist")).with_operation(op)
}

impl LdapConnector {
    /// A connector for `cfg`. Nothing is sent until the first operation.
    pub fn new(cfg: LdapConfig) -> Result<Self> {
        cfg.validate()?;
        let parse = |field: &str, dn: &str| {
            Dn::parse(dn).map_err(|e| Error::invalid_input(field, e.to_string()))
        };
        let mut bases = vec![(
            cfg.accounts.base.clone(),
            parse("accounts.base", &cfg.accounts.base)?,
        )];
        for b in &cfg.accounts.more_bases {
            bases.push((b.clone(), parse("accounts.more_bases", b)?));
        }
        let group_base = parse("groups.base", &cfg.groups.base)?;
        let mut read: BTreeSet<String> = BTreeSet::new();
        read.insert(cfg.accounts.login_attribute.clone());
        read.insert(cfg.accounts.rdn_attribute.clone());
        read.extend(cfg.accounts.attributes.values().map(|m| m.ldap.clone()));
        read.extend(cfg.accounts.marker_attribute.clone());
        read.extend(disable::attribute(&cfg.disable).map(str::to_owned));
        if let Some(m) = &cfg.groups.member_of {
            read.insert(m.clone());
        }
        if cfg.dialect == crate::config::Dialect::ActiveDirectory {
            read.insert("primaryGroupID".to_owned());
        }
        let inner = Inner {
            conn: Conn::new(cfg.connection.clone()),
            cfg,
            bases,
            group_base,
            read_attrs: read.into_iter().collect(),
            index: Mutex::new(None),
            read_ahead: std::sync::Mutex::new(Vec::new()),
            member_lists: std::sync::Mutex::new(Kept::new(16, Duration::from_secs(15 * 60))),
            base_spelling: tokio::sync::OnceCell::new(),
            group_names: std::sync::Mutex::new(HashMap::new()),
            gid_lock: Mutex::new(()),
            primary_groups: tokio::sync::OnceCell::new(),
        };
        Ok(LdapConnector {
            inner: Arc::new(inner),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LdapConfig {
        &self.inner.cfg
    }

    /// The DN of the group named `name`.
    pub fn group_dn(&self, name: &EntitlementId) -> String {
        self.inner.group_dn(name)
    }
}

impl Inner {
    fn group_dn(&self, name: &EntitlementId) -> String {
        child(
            &self.cfg.groups.name_attribute,
            name.as_str(),
            &self.cfg.groups.base,
        )
    }

    /// An account id as a DN inside the configured bases, or NotFound.
    fn account_dn(&self, op: Operation, id: &AccountId) -> Result<Dn> {
        let dn = Dn::parse(id.as_str())
            .map_err(|e| Error::invalid_input("account", e.to_string()).with_operation(op))?;
        if !self.bases.iter().any(|(_, b)| dn.is_within(b)) {
            return Err(
                Error::not_found(format!("{id} is outside the configured account bases"))
                    .with_operation(op),
            );
        }
        Ok(dn)
    }

    fn to_account(&self, op: Operation, e: &Entry, index: Option<&MemberIndex>) -> Result<Account> {
        let accounts = &self.cfg.accounts;
        let login = e.first(&accounts.login_attribute).ok_or_else(|| {
            Error::new(
                ErrorKind::Unexpected,
                format!("{} has no {}", e.dn, accounts.login_attribute),
            )
            .with_operation(op)
            .with_field(accounts.login_attribute.clone())
        })?;
        let mut acct = Account::new(canonical(&e.dn), login.clone());
        for (model, m) in &accounts.attributes {
            let values = e.values(&m.ldap);
            if let Some(v) = decode(m.syntax, values) {
                acct.attributes.insert(model.clone(), v);
            }
        }
        acct.marker = accounts
            .marker_attribute
            .as_ref()
            .and_then(|m| e.first(m))
            .map(|m| m.to_owned());
        acct.enabled = disable::is_enabled(&self.cfg.disable, e);
        if let Some(attr) = &self.cfg.groups.member_of {
            for v in e.values(attr) {
                if let Some(g) = self.group_name_of(&String::from_utf8_lossy(v)) {
                    acct.entitlements.insert(g);
                }
            }
            // AD: the primary group, which memberOf leaves out.
            if let Some(groups) = self.primary_groups.get()
                && let Some(rid) = e
                    .first("primaryGroupID")
                    .and_then(|v| v.trim().parse::<u32>().ok())
                && let Some(g) = groups.get(&rid)
            {
                acct.entitlements.insert(g.clone());
            }
        } else if let Some(index) = index {
            let key = match &self.cfg.groups.members {
                MemberStyle::Dn(_) => self.member_key(&e.dn),
                MemberStyle::Login(_) => login.to_lowercase(),
            };
            if let Some(groups) = index.get(&key) {
                acct.entitlements.clone_from(groups);
            }
        }
        Ok(acct)
    }

    async fn exists(&self, op: Operation, dn: &str) -> Result<bool> {
        let attrs = vec!["1.1".to_owned()];
        Ok(self
            .conn
            .read(op, dn, "(objectClass=*)", &attrs)
            .await?
            .is_some())
    }

    /// Runs a modify on an account, NotFound when it is gone.
    async fn modify_account(&self, op: Operation, dn: &str, mods: Vec<Mod<Vec<u8>>>) -> Result<()> {
        if mods.is_empty() {
            return if self.exists(op, dn).await? {
                Ok(())
            } else {
                Err(not_found(op, dn))
            };
        }
        let what = format!("modifying {dn}");
        let res = self
            .conn
            .run(op, &what, |mut l| async move { l.modify(dn, mods).await })
            .await?;
        match res.rc {
            0 => Ok(()),
            32 => Err(not_found(op, dn)),
            _ => Err(from_result(&res, op, &what)),
        }
    }
}

impl Inner {
    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::full(self.cfg.groups.batch_size);
        caps.disable = disable::attribute(&self.cfg.disable).is_some();
        caps.max_page_size = self.cfg.page_size;
        caps.max_concurrency = self.cfg.connection.max_in_flight;
        caps.create_marker = self.cfg.accounts.marker_attribute.is_some();
        caps.create_entitlement = self.why_no_groups_made().is_none();
        // Only where deletions are reported too.
        caps.changes_since = self.cfg.changes != crate::config::ChangeLog::None;
        // sAMAccountName: at most 20 characters (Windows refuses longer).
        if self.cfg.dialect == crate::config::Dialect::ActiveDirectory {
            caps.max_login_len = Some(20);
        }
        caps.filter_attributes = std::iter::once("login".to_owned())
            .chain(self.cfg.accounts.attributes.keys().cloned())
            .collect();
        caps
    }

    async fn check(&self) -> Result<()> {
        self.conn.check().await?;
        for (base, _) in &self.bases {
            if !self.exists(Operation::Check, base).await? {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!("account base {base} does not exist"),
                )
                .with_operation(Operation::Check)
                .with_field("accounts.base"));
            }
        }
        if !self.exists(Operation::Check, &self.cfg.groups.base).await? {
            return Err(Error::new(
                ErrorKind::Config,
                format!("group base {} does not exist", self.cfg.groups.base),
            )
            .with_operation(Operation::Check)
            .with_field("groups.base"));
        }
        Ok(())
    }
}

#[async_trait]
impl Connector for LdapConnector {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn check(&self) -> Result<()> {
        self.inner.check().await
    }

    async fn list_accounts(&self, req: ListRequest) -> Result<Page<Account>> {
        Inner::list_accounts_ahead(&self.inner, req).await
    }

    async fn get_account(&self, id: &AccountId) -> Result<Account> {
        self.inner.get_account(id).await
    }

    async fn create_account(&self, req: CreateAccount) -> Result<Account> {
        self.inner.create_account(req).await
    }

    async fn update_account(&self, req: UpdateAccount) -> Result<AccountId> {
        self.inner.update_account(req).await
    }

    async fn set_enabled(&self, id: &AccountId, enabled: bool) -> Result<()> {
        self.inner.set_enabled(id, enabled).await
    }

    async fn delete_account(&self, id: &AccountId) -> Result<()> {
        self.inner.delete_account(id).await
    }

    async fn list_entitlements(&self, req: ListRequest) -> Result<Page<Entitlement>> {
        self.inner.list_entitlements(req).await
    }

    async fn list_members(
        &self,
        entitlement: &EntitlementId,
        req: ListRequest,
    ) -> Result<Page<AccountId>> {
        self.inner.list_members(entitlement, req).await
    }

    async fn grant(&self, req: MembershipChange) -> Result<BatchOutcome> {
        self.inner.change_members(req, true).await
    }

    async fn revoke(&self, req: MembershipChange) -> Result<BatchOutcome> {
        self.inner.change_members(req, false).await
    }

    async fn changes_since(&self, token: Option<&str>) -> Result<ChangeSet> {
        self.inner.changes_since(token).await
    }

    async fn create_entitlement(&self, entitlement: &Entitlement) -> Result<Entitlement> {
        self.inner.create_group(entitlement).await
    }

    async fn delete_entitlement(&self, id: &EntitlementId) -> Result<()> {
        self.inner.delete_group(id).await
    }

    /// Why groups are not created here, where the configuration says they
    /// cannot be (a groupOfNames with no placeholder member).
    fn notices(&self) -> Vec<String> {
        let cfg = &self.inner.cfg;
        let mut out = Vec::new();
        if cfg.binds_in_the_clear() {
            out.push(format!(
                "danger_allow_plaintext_bind: the bind password goes to {} in the clear; use \
                 ldaps:// or StartTLS for anything but a test server on the loopback",
                cfg.connection.url
            ));
        }
        match self.inner.why_no_groups_made() {
            Some(why) if !cfg.groups.object_classes.is_empty() => out.push(why),
            _ => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_attribute_that_holds_other_data_is_refused() {
        use crate::config::{Dialect, LdapConfig};
        for taken in ["uid", "mail", "SN", ""] {
            let mut cfg = LdapConfig::new(Dialect::OpenLdap, "ldap://h", "dc=x");
            cfg.accounts.marker_attribute = Some(taken.to_owned());
            let e = cfg.validate().unwrap_err();
            assert_eq!(e.field(), Some("accounts.marker_attribute"), "{taken}: {e}");
        }
        let mut cfg = LdapConfig::new(Dialect::OpenLdap, "ldap://h", "dc=x");
        cfg.accounts.marker_attribute = Some("description".to_owned());
        cfg.validate().unwrap();
    }

    /// A password bind over plain `ldap://` was accepted: the password
    /// crossed the network in the clear.
    #[test]
    fn a_password_bind_without_tls_is_refused_unless_danger_says_so() {
        use crate::config::{Dialect, LdapConfig, Password, Tls};
        let plain = LdapConfig::new(Dialect::OpenLdap, "ldap://dir.example", "dc=x")
            .bind("cn=admin,dc=x", Password::new("pw"));
        let e = LdapConnector::new(plain.clone()).err().unwrap();
        assert_eq!(e.field(), Some("connection.tls"), "{e}");
        assert!(e.to_string().contains("in the clear"), "{e}");
        assert!(!format!("{e} {e:?}").contains("pw\""), "{e:?}");
        let mut starttls = plain.clone();
        starttls.connection.tls = Tls::StartTls;
        starttls.validate().unwrap();
        let mut tls = plain.clone();
        tls.connection.url = "ldaps://dir.example".to_owned();
        tls.validate().unwrap();
        let mut danger = plain;
        danger.connection.danger_allow_plaintext_bind = true;
        danger.validate().unwrap();
        // Anonymous binds send no secret.
        LdapConfig::new(Dialect::OpenLdap, "ldap://dir.example", "dc=x")
            .validate()
            .unwrap();
    }
}
