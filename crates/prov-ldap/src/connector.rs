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

/// `pwdAccountLockedTime` value that locks an account until it is removed.
const LOCKED_FOREVER: &str = "000001010000Z";
/// `userAccountControl` bits.
const UAC_DISABLED: i64 = 0x2;
const UAC_NORMAL: i64 = 0x200;

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
        match &cfg.disable {
            DisableMethod::PasswordPolicy => {
                read.insert("pwdAccountLockedTime".to_owned());
            }
            DisableMethod::Attribute { name, .. } => {
                read.insert(name.clone());
            }
            DisableMethod::UserAccountControl => {
                read.insert("userAccountControl".to_owned());
            }
            DisableMethod::None => {}
        }
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

    fn group_name_of(&self, dn: &str) -> Option<EntitlementId> {
        let mut names = self
            .group_names
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(name) = names.get(dn) {
            return name.clone();
        }
        let name = self.parse_group_name(dn);
        if names.len() >= 100_000 {
            names.clear();
        }
        names.insert(dn.to_owned(), name.clone());
        name
    }

    fn parse_group_name(&self, dn: &str) -> Option<EntitlementId> {
        let dn = Dn::parse(dn).ok()?;
        if !dn.is_child_of(&self.group_base) {
            return None;
        }
        dn.rdn_value(&self.cfg.groups.name_attribute)
            .map(EntitlementId::new)
    }

    /// The key a group's member value has in a [`MemberIndex`].
    fn member_key(&self, value: &str) -> String {
        match &self.cfg.groups.members {
            // One spelling, then case folded: names compare without case.
            MemberStyle::Dn(_) => canonical(value).to_lowercase(),
            MemberStyle::Login(_) => value.to_lowercase(),
        }
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
        acct.enabled = match &self.cfg.disable {
            DisableMethod::None => true,
            DisableMethod::PasswordPolicy => e.values("pwdAccountLockedTime").is_empty(),
            DisableMethod::Attribute { name, disabled, .. } => !e
                .values(name)
                .iter()
                .any(|v| v.eq_ignore_ascii_case(disabled.as_bytes())),
            DisableMethod::UserAccountControl => e
                .first("userAccountControl")
                .and_then(|v| v.trim().parse::<i64>().ok())
                .is_none_or(|uac| uac & UAC_DISABLED == 0),
        };
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

    /// Reads every group's members once (directories without `memberOf`).
    /// Every entry under the group base matching `filter`, with `attrs`,
    /// page after page (`Subtree`: a posixGroup's gidNumber is unique
    /// below the base, not only among its children).
    async fn search_groups(
        &self,
        op: Operation,
        scope: Scope,
        filter: &str,
        attrs: &[String],
    ) -> Result<Vec<Entry>> {
        let s = Search {
            base: &self.cfg.groups.base,
            scope,
            filter,
            attrs,
        };
        self.conn.search_all(op, s, self.cfg.page_size).await
    }

    async fn member_index(&self, op: Operation) -> Result<Arc<MemberIndex>> {
        let g = &self.cfg.groups;
        let attrs = vec![g.name_attribute.clone(), g.members.attribute().to_owned()];
        let groups = self
            .search_groups(op, Scope::OneLevel, &g.filter, &attrs)
            .await?;
        let mut index: MemberIndex = HashMap::new();
        for e in &groups {
            let Some(name) = self.group_name_of(&e.dn) else {
                continue;
            };
            for v in self.all_members(op, e).await? {
                index
                    .entry(self.member_key(&v))
                    .or_default()
                    .insert(name.clone());
            }
        }
        Ok(Arc::new(index))
    }

    /// The member values of a group entry, following AD's ranged retrieval
    /// (`member;range=0-1499`) when the directory cut the list short.
    async fn all_members(&self, op: Operation, e: &Entry) -> Result<Vec<String>> {
        let attr = self.cfg.groups.members.attribute();
        let mut out: Vec<String> = e
            .values(attr)
            .iter()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        let bad = |why: String| {
            Error::new(
                ErrorKind::Unexpected,
                format!("reading the members of {}: {why}", e.dn),
            )
            .with_operation(op)
        };
        let mut next = match ranged(e, attr) {
            Some((values, end)) => {
                out.extend(values);
                end.map_err(bad)?
            }
            None => None,
        };
        // Each range must start past the last one, within a budget of
        // rounds: a directory that repeats a range cannot loop us for ever.
        let mut rounds = 0usize;
        let mut last = None;
        while let Some(from) = next {
            rounds += 1;
            if last.is_some_and(|l| from <= l) || rounds > prov_core::MAX_PAGES {
                return Err(bad(format!(
                    "the directory's ranges do not advance (range {from} after {}, round {rounds})",
                    last.unwrap_or_default()
                )));
            }
            last = Some(from);
            let want = vec![format!("{attr};range={from}-*")];
            let Some(more) = self.conn.read(op, &e.dn, "(objectClass=*)", &want).await? else {
                return Err(not_found(op, format!("group {}", e.dn)));
            };
            next = match ranged(&more, attr) {
                Some((values, end)) => {
                    out.extend(values);
                    end.map_err(bad)?
                }
                None => None,
            };
        }
        let placeholder = self.cfg.groups.placeholder_member.as_deref();
        out.retain(|v| Some(v.as_str()) != placeholder);
        Ok(out)
    }

    /// The account filter, with an optional equality on a model attribute.
    fn account_filter(&self, op: Operation, filter: Option<&(String, String)>) -> Result<String> {
        let base = &self.cfg.accounts.filter;
        let Some((attr, value)) = filter else {
            return Ok(base.clone());
        };
        let ldap_attr = if attr == "login" {
            self.cfg.accounts.login_attribute.as_str()
        } else if let Some(m) = self.cfg.accounts.attributes.get(attr) {
            m.ldap.as_str()
        } else {
            return Err(Error::invalid_input(
                "filter",
                format!("cannot filter on `{attr}`: it is not mapped to a directory attribute"),
            )
            .with_operation(op));
        };
        Ok(format!("(&{base}{})", equality(ldap_attr, value)))
    }

    /// The directory attributes of a create or update, in directory names.
    fn encode_attributes(
        &self,
        op: Operation,
        login: &str,
        attrs: &Attributes,
    ) -> Result<BTreeMap<String, Vec<Vec<u8>>>> {
        let mut out = BTreeMap::new();
        for (model, value) in attrs {
            let Some(m) = self.cfg.accounts.attributes.get(model) else {
                return Err(Error::invalid_input(
                    model.clone(),
                    format!(
                        "{login}: attribute `{model}` is not mapped to a directory attribute (accounts.attributes)"
                    ),
                )
                .with_operation(op));
            };
            let values = if m.ldap.eq_ignore_ascii_case("unicodePwd") {
                // AD takes a password only over an encrypted connection, quoted, in UTF-16LE.
                let tls = self.cfg.connection.url.starts_with("ldaps://")
                    || self.cfg.connection.tls == crate::config::Tls::StartTls;
                if !tls {
                    return Err(Error::invalid_input(
                        model.clone(),
                        format!(
                            "{login}: `{model}` is AD's unicodePwd, which is written only over TLS (ldaps:// or StartTLS)"
                        ),
                    )
                    .with_operation(op));
                }
                match value {
                    Value::String(p) => vec![unicode_pwd(p)],
                    _ => {
                        return Err(Error::invalid_input(
                            model.clone(),
                            format!("{login}: `{model}` (a password) must be a string"),
                        )
                        .with_operation(op));
                    }
                }
            } else {
                encode(m.syntax, value).map_err(|why| {
                    Error::invalid_input(model.clone(), format!("{login}: `{model}` {why}"))
                        .with_operation(op)
                })?
            };
            out.insert(m.ldap.clone(), values);
        }
        Ok(out)
    }

    /// The values a group holds for these accounts: their DNs, or their
    /// logins (posixGroup `memberUid`), taken from the DN when the account
    /// is named by its login, else read. With `verify`, every account is
    /// read, so that one that does not exist fails alone (NotFound).
    async fn member_values(
        &self,
        op: Operation,
        accounts: &[AccountId],
        verify: bool,
    ) -> Vec<(AccountId, Result<String>)> {
        let login_attr = &self.cfg.accounts.login_attribute;
        let (dn_style, from_dn) = match &self.cfg.groups.members {
            MemberStyle::Dn(_) => (true, true),
            MemberStyle::Login(_) => (
                false,
                self.cfg
                    .accounts
                    .rdn_attribute
                    .eq_ignore_ascii_case(login_attr),
            ),
        };
        let one = |a: AccountId| async move {
            let dn = match self.account_dn(op, &a) {
                Ok(dn) => dn,
                Err(e) => return (a, Err(e)),
            };
            if !verify && from_dn {
                let v = if dn_style {
                    Some(a.as_str().to_owned())
                } else {
                    dn.rdn_value(login_attr).map(str::to_owned)
                };
                if let Some(v) = v {
                    return (a, Ok(v));
                }
            }
            let attrs = vec![if dn_style {
                "1.1".to_owned()
            } else {
                login_attr.clone()
            }];
            let r = match self
                .conn
                .read(op, a.as_str(), &self.cfg.accounts.filter, &attrs)
                .await
            {
                Ok(Some(_)) if dn_style => Ok(a.as_str().to_owned()),
                Ok(Some(e)) => e
                    .first(login_attr)
                    .ok_or_else(|| not_found(op, format!("a login on {a}"))),
                Ok(None) => Err(not_found(op, &a)),
                Err(e) => Err(e),
            };
            (a, r)
        };
        join_all(accounts.iter().cloned().map(one)).await
    }

    /// The group's current member values, as member keys.
    async fn current_members(&self, op: Operation, group: &str) -> Result<HashSet<String>> {
        let attrs = vec![self.cfg.groups.members.attribute().to_owned()];
        let entry = self
            .conn
            .read(op, group, "(objectClass=*)", &attrs)
            .await?
            .ok_or_else(|| not_found(op, format!("group {group}")))?;
        Ok(self
            .all_members(op, &entry)
            .await?
            .iter()
            .map(|v| self.member_key(v))
            .collect())
    }

    /// Adds (`add`) or removes values of a group's member attribute, one
    /// modify per batch. A batch the directory refuses because some value
    /// is already there (or already gone), or names a missing entry, is
    /// redone value by value, so that a repeat is harmless and a missing
    /// account fails alone.
    async fn change_members(&self, req: MembershipChange, add: bool) -> Result<BatchOutcome> {
        let op = if add {
            Operation::Grant
        } else {
            Operation::Revoke
        };
        let group = self.group_dn(&req.entitlement);
        let attr = self.cfg.groups.members.attribute().to_owned();
        let mut outcome = BatchOutcome::ok();
        let placeholder = self.cfg.groups.placeholder_member.clone();
        let mut values: Vec<(AccountId, String)> = Vec::new();
        for (account, v) in self
            .member_values(op, &req.accounts, add && self.cfg.groups.verify_members)
            .await
        {
            match v {
                Ok(v) if Some(&v) == placeholder.as_ref() => {}
                Ok(v) => values.push((account, v)),
                // A missing account lacks the entitlement already.
                Err(e) if !add && e.kind() == ErrorKind::NotFound => {}
                Err(error) => outcome.failures.push(MemberFailure::new(account, error)),
            }
        }
        for batch in values.chunks(self.cfg.groups.batch_size.max(1)) {
            let (res, what) = self.modify_members(op, &group, &attr, batch, add).await?;
            match res.rc {
                0 => {}
                // Some values are there already (grant) or gone already
                // (revoke): send only the rest, once more. OpenLDAP says
                // 20 and 16; AD 68 (entryAlreadyExists) and 53 ("already
                // deleted"). Which values are done is read from the group,
                // never assumed from the code.
                16 | 20 | 53 | 68 => {
                    let current = self.current_members(op, &group).await?;
                    let rest: Vec<(AccountId, String)> = batch
                        .iter()
                        .filter(|(_, v)| current.contains(&self.member_key(v)) != add)
                        .cloned()
                        .collect();
                    if rest.is_empty() {
                        continue;
                    }
                    let (again, _) = self.modify_members(op, &group, &attr, &rest, add).await?;
                    if again.rc != 0 {
                        outcome
                            .failures
                            .extend(self.change_one_by_one(op, &group, &attr, &rest, add).await);
                    }
                }
                // A member refused (it does not exist) or a missing group.
                19 | 21 | 32 => {
                    if res.rc == 32 && !self.exists(op, &group).await? {
                        return Err(not_found(op, format!("group {group}")));
                    }
                    outcome
                        .failures
                        .extend(self.change_one_by_one(op, &group, &attr, batch, add).await);
                }
                _ => return Err(from_result(&res, op, &what)),
            }
        }
        Ok(outcome)
    }

    /// One modify adding or deleting these member values.
    async fn modify_members(
        &self,
        op: Operation,
        group: &str,
        attr: &str,
        values: &[(AccountId, String)],
        add: bool,
    ) -> Result<(ldap3::LdapResult, String)> {
        let set: HashSet<String> = values.iter().map(|(_, v)| v.clone()).collect();
        let what = format!(
            "{} {} members of {group}",
            if add { "adding" } else { "removing" },
            set.len()
        );
        let m = if add {
            Mod::Add(attr.to_owned(), set)
        } else {
            Mod::Delete(attr.to_owned(), set)
        };
        let res = self
            .conn
            .run(
                op,
                &what,
                |mut l| async move { l.modify(group, vec![m]).await },
            )
            .await?;
        Ok((res, what))
    }

    async fn change_one_by_one(
        &self,
        op: Operation,
        group: &str,
        attr: &str,
        batch: &[(AccountId, String)],
        add: bool,
    ) -> Vec<MemberFailure> {
        let one = |(account, value): (AccountId, String)| async move {
            let what = format!(
                "{} {account} in {group}",
                if add { "adding" } else { "removing" }
            );
            let key = self.member_key(&value);
            let set: HashSet<String> = [value].into_iter().collect();
            let m = if add {
                Mod::Add(attr.to_owned(), set)
            } else {
                Mod::Delete(attr.to_owned(), set)
            };
            let res = match self
                .conn
                .run(
                    op,
                    &what,
                    |mut l| async move { l.modify(group, vec![m]).await },
                )
                .await
            {
                Ok(res) => res,
                Err(error) => return Some(MemberFailure::new(account, error)),
            };
            match (res.rc, add) {
                (0, _) | (20 | 68, true) | (16, false) => None,
                // AD's answer for a value already gone, and for some
                // refusals: the group says which.
                (53, false) => match self.current_members(op, group).await {
                    Ok(now) if !now.contains(&key) => None,
                    Ok(_) => Some(MemberFailure::new(account, from_result(&res, op, &what))),
                    Err(error) => Some(MemberFailure::new(account, error)),
                },
                (19 | 21 | 32, true) => {
                    // Refused for the member: does the account exist?
                    match self.exists(op, account.as_str()).await {
                        Ok(false) => {
                            Some(MemberFailure::new(account.clone(), not_found(op, &account)))
                        }
                        Ok(true) => Some(MemberFailure::new(account, from_result(&res, op, &what))),
                        Err(error) => Some(MemberFailure::new(account, error)),
                    }
                }
                _ => Some(MemberFailure::new(account, from_result(&res, op, &what))),
            }
        };
        join_all(batch.iter().cloned().map(one))
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// AD: reads every group's RID (the last part of its objectSid) once,
    /// so that an account's `primaryGroupID` names its group. The groups
    /// base is read whatever the groups filter says (Domain Users is a
    /// built-in group, not listed). Other dialects: nothing.
    async fn load_primary_groups(&self, op: Operation) -> Result<()> {
        if self.cfg.dialect != crate::config::Dialect::ActiveDirectory {
            return Ok(());
        }
        self.primary_groups
            .get_or_try_init(|| async {
                let attrs = vec![
                    self.cfg.groups.name_attribute.clone(),
                    "objectSid".to_owned(),
                ];
                let entries = self
                    .search_groups(op, Scope::OneLevel, "(objectClass=group)", &attrs)
                    .await?;
                let mut out = HashMap::new();
                for e in &entries {
                    let sid = e.values("objectSid").first();
                    // A SID ends with its RID, 4 bytes little-endian.
                    let rid = sid
                        .and_then(|s| s.len().checked_sub(4).and_then(|i| s.get(i..)))
                        .and_then(|b| <[u8; 4]>::try_from(b).ok())
                        .map(u32::from_le_bytes);
                    if let (Some(rid), Some(name)) = (rid, self.group_name_of(&e.dn)) {
                        out.insert(rid, name);
                    }
                }
                Ok::<_, Error>(out)
            })
            .await
            .map(|_| ())
    }

    /// Why this directory's groups cannot be created, if they cannot.
    fn why_no_groups_made(&self) -> Option<String> {
        let g = &self.cfg.groups;
        if g.object_classes.is_empty() {
            return Some(
                "groups.object_classes is empty: groups are not created on this directory"
                    .to_owned(),
            );
        }
        if g.member_required && g.placeholder_member.is_none() {
            return Some(format!(
                "a {} needs a member and groups.placeholder_member is unset: groups are not \
                 created on this directory",
                g.object_classes.join("+")
            ));
        }
        None
    }

    /// A group named `entitlement`'s id under the group base, of the
    /// configured object classes, holding the placeholder member (where
    /// set), a gidNumber from the range (posixGroup), its display name as
    /// `description`, and on AD its `sAMAccountName`.
    async fn create_group(&self, entitlement: &Entitlement) -> Result<Entitlement> {
        let op = Operation::CreateEntitlement;
        if let Some(why) = self.why_no_groups_made() {
            return Err(Error::new(ErrorKind::Unsupported, why).with_operation(op));
        }
        let g = &self.cfg.groups;
        let name = entitlement.id.as_str();
        if name.is_empty() {
            return Err(
                Error::invalid_input("entitlement", "the group name is empty").with_operation(op),
            );
        }
        let dn = self.group_dn(&entitlement.id);
        let mut entry: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = vec![
            (
                b"objectClass".to_vec(),
                g.object_classes
                    .iter()
                    .map(|c| c.clone().into_bytes())
                    .collect(),
            ),
            (
                g.name_attribute.clone().into_bytes(),
                HashSet::from([name.as_bytes().to_vec()]),
            ),
        ];
        if let Some(p) = &g.placeholder_member {
            entry.push((
                g.members.attribute().as_bytes().to_vec(),
                HashSet::from([p.clone().into_bytes()]),
            ));
        }
        if let Some(d) = entitlement
            .display_name
            .as_deref()
            .filter(|d| !d.is_empty())
        {
            entry.push((
                b"description".to_vec(),
                HashSet::from([d.as_bytes().to_vec()]),
            ));
        }
        if self.cfg.dialect == crate::config::Dialect::ActiveDirectory {
            entry.push((
                b"sAMAccountName".to_vec(),
                HashSet::from([name.as_bytes().to_vec()]),
            ));
        }
        let _held = match g.gid_numbers {
            Some(range) => {
                let held = self.gid_lock.lock().await;
                let gid = self.free_gid(op, range).await?;
                entry.push((
                    b"gidNumber".to_vec(),
                    HashSet::from([gid.to_string().into_bytes()]),
                ));
                Some(held)
            }
            None => None,
        };
        let what = format!("creating group {dn}");
        let dn_ref = dn.as_str();
        let res = self
            .conn
            .run(op, &what, |mut l| async move { l.add(dn_ref, entry).await })
            .await?;
        match res.rc {
            0 => {
                let mut made = Entitlement::group(entitlement.id.clone());
                made.display_name = entitlement.display_name.clone();
                Ok(made)
            }
            68 => Err(Error::already_exists(format!("group {dn} exists")).with_operation(op)),
            _ => Err(from_result(&res, op, &what)),
        }
    }

    /// The gidNumber a new posixGroup takes: one above the highest in
    /// `range` in use under the group base, else the lowest free one.
    async fn free_gid(&self, op: Operation, (first, last): (u32, u32)) -> Result<u32> {
        let attrs = vec!["gidNumber".to_owned()];
        let entries = self
            .search_groups(op, Scope::Subtree, "(gidNumber=*)", &attrs)
            .await?;
        let used: BTreeSet<u32> = entries
            .iter()
            .filter_map(|e| e.first("gidNumber")?.trim().parse::<u32>().ok())
            .filter(|n| (first..=last).contains(n))
            .collect();
        let next = match used.last() {
            None => Some(first),
            Some(&top) if top < last => top.checked_add(1),
            Some(_) => (first..=last).find(|n| !used.contains(n)),
        };
        next.ok_or_else(|| {
            Error::new(
                ErrorKind::Config,
                format!(
                    "every gidNumber from {first} to {last} is taken under {}",
                    self.cfg.groups.base
                ),
            )
            .with_operation(op)
            .with_field("groups.gid_numbers")
        })
    }

    async fn delete_group(&self, id: &EntitlementId) -> Result<()> {
        let op = Operation::DeleteEntitlement;
        if let Some(why) = self.why_no_groups_made() {
            return Err(Error::new(ErrorKind::Unsupported, why).with_operation(op));
        }
        let dn = self.group_dn(id);
        let what = format!("deleting group {dn}");
        let dn_ref = dn.as_str();
        let res = self
            .conn
            .run(op, &what, |mut l| async move { l.delete(dn_ref).await })
            .await?;
        match res.rc {
            0 => Ok(()),
            32 => Err(not_found(op, format!("group {dn}"))),
            _ => Err(from_result(&res, op, &what)),
        }
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

    async fn read_account(&self, op: Operation, id: &AccountId) -> Result<Account> {
        self.account_dn(op, id)?;
        self.load_primary_groups(op).await?;
        let entry = self
            .conn
            .read(op, id.as_str(), &self.cfg.accounts.filter, &self.read_attrs)
            .await?
            .ok_or_else(|| not_found(op, id))?;
        if self.cfg.groups.member_of.is_some() {
            return self.to_account(op, &entry, None);
        }
        // No memberOf: ask the groups holding this one account.
        let g = &self.cfg.groups;
        let value = match &g.members {
            MemberStyle::Dn(_) => entry.dn.clone(),
            MemberStyle::Login(_) => entry
                .first(&self.cfg.accounts.login_attribute)
                .unwrap_or_default(),
        };
        let filter = format!("(&{}{})", g.filter, equality(g.members.attribute(), &value));
        let attrs = vec![g.name_attribute.clone()];
        let groups = self
            .search_groups(op, Scope::OneLevel, &filter, &attrs)
            .await?;
        let mut index = MemberIndex::new();
        let key = match &g.members {
            MemberStyle::Dn(_) => self.member_key(&entry.dn),
            MemberStyle::Login(_) => value.to_lowercase(),
        };
        let names: BTreeSet<EntitlementId> = groups
            .iter()
            .filter_map(|e| self.group_name_of(&e.dn))
            .collect();
        index.insert(key, names);
        self.to_account(op, &entry, Some(&index))
    }
}

/// Values from an AD ranged attribute (`member;range=0-1499`) and where the
/// next range starts (`None` after the last, whose end is `*`; an error
/// for an end that is not a number or has no successor).
#[allow(clippy::type_complexity)] // values, and where to go on: one use
fn ranged(e: &Entry, attr: &str) -> Option<(Vec<String>, Result<Option<u64>, String>)> {
    let prefix = format!("{};range=", attr.to_ascii_lowercase());
    let (name, values) = e
        .attrs
        .iter()
        .find(|(k, _)| k.to_ascii_lowercase().starts_with(&prefix))?;
    let range = name.get(prefix.len()..)?;
    let (_, end) = range.split_once('-')?;
    let values = values
        .iter()
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    let next = if end == "*" {
        Ok(None)
    } else {
        end.parse::<u64>()
            .ok()
            .and_then(|n| n.checked_add(1))
            .map(Some)
            .ok_or_else(|| {
                format!("the range `{name}` ends at no number a next range can start after")
            })
    };
    Some((values, next))
}

fn decode(syntax: Syntax, values: &[Vec<u8>]) -> Option<Value> {
    let text = |v: &Vec<u8>| String::from_utf8_lossy(v).into_owned();
    let first = values.first()?;
    Some(match syntax {
        Syntax::String => Value::String(text(first)),
        Syntax::Strings => Value::List(values.iter().map(|v| Value::String(text(v))).collect()),
        Syntax::Integer => text(first)
            .trim()
            .parse::<i64>()
            .map(Value::Int)
            .unwrap_or_else(|_| Value::String(text(first))),
        Syntax::Boolean => match text(first).as_str() {
            "TRUE" => Value::Bool(true),
            "FALSE" => Value::Bool(false),
            other => Value::String(other.to_owned()),
        },
        Syntax::Time => parse_time(&text(first))
            .map(Value::Timestamp)
            .unwrap_or_else(|| Value::String(text(first))),
        Syntax::Binary => Value::Bytes(first.clone()),
    })
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let digits = s.trim_end_matches('Z');
    let digits = digits.split(['.', ',']).next()?;
    NaiveDateTime::parse_from_str(digits, "%Y%m%d%H%M%S")
        .ok()
        .map(|t| t.and_utc())
}

fn encode(syntax: Syntax, value: &Value) -> std::result::Result<Vec<Vec<u8>>, String> {
    let one = |v: &Value| -> std::result::Result<Vec<u8>, String> {
        Ok(match v {
            Value::String(s) => s.clone().into_bytes(),
            Value::Int(i) => i.to_string().into_bytes(),
            Value::Bool(b) => if *b { "TRUE" } else { "FALSE" }.as_bytes().to_vec(),
            Value::Timestamp(t) => t.format("%Y%m%d%H%M%SZ").to_string().into_bytes(),
            Value::Bytes(b) => b.clone(),
            Value::Null => return Err("is null".to_owned()),
            Value::List(_) => return Err("is a list inside a list".to_owned()),
            _ => return Err("has a type the directory cannot hold".to_owned()),
        })
    };
    match (syntax, value) {
        (_, Value::Null) => Ok(Vec::new()),
        (Syntax::Strings, Value::List(items)) => items.iter().map(one).collect(),
        (_, Value::List(_)) => {
            Err("is a list, and the directory attribute takes one value".to_owned())
        }
        (Syntax::Integer, Value::String(s)) if s.trim().parse::<i64>().is_err() => {
            Err(format!("{s:?} is not an integer"))
        }
        (_, v) => {
            let bytes = one(v)?;
            if bytes.is_empty() {
                // LDAP has no empty values: an empty string removes the attribute.
                Ok(Vec::new())
            } else {
                Ok(vec![bytes])
            }
        }
    }
}

/// A modification with text values as one with byte values.
fn bytes_mod(m: Mod<String>) -> Mod<Vec<u8>> {
    let set = |v: HashSet<String>| v.into_iter().map(String::into_bytes).collect();
    match m {
        Mod::Add(a, v) => Mod::Add(a.into_bytes(), set(v)),
        Mod::Delete(a, v) => Mod::Delete(a.into_bytes(), set(v)),
        Mod::Replace(a, v) => Mod::Replace(a.into_bytes(), set(v)),
        Mod::Increment(a, v) => Mod::Increment(a.into_bytes(), v.into_bytes()),
    }
}

/// AD's `unicodePwd`: the password in double quotes, UTF-16LE.
fn unicode_pwd(password: &str) -> Vec<u8> {
    format!("\"{password}\"")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect()
}

impl Inner {
    /// A page of accounts, reading the next one ahead.
    async fn list_accounts_ahead(this: &Arc<Inner>, req: ListRequest) -> Result<Page<Account>> {
        let key_of = |cursor: Option<&String>| {
            (
                cursor.cloned().unwrap_or_default(),
                format!("{:?}", req.filter),
                req.page_size.unwrap_or(0),
            )
        };
        let ahead = {
            let key = key_of(req.cursor.as_ref());
            let mut pending = this
                .read_ahead
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            pending
                .iter()
                .position(|r| r.key == key)
                .map(|i| pending.remove(i).task)
        };
        let page = match ahead {
            Some(task) => match task.await {
                Ok(page) => page?,
                // Cancelled: read it now.
                Err(_) => this.list_accounts(req.clone()).await?,
            },
            None => this.list_accounts(req.clone()).await?,
        };
        if let Some(next) = &page.next {
            let mut next_req = req.clone();
            next_req.cursor = Some(next.clone());
            let key = key_of(Some(next));
            let inner = Arc::clone(this);
            let task = tokio::spawn(async move { inner.list_accounts(next_req).await });
            let mut pending = this
                .read_ahead
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            pending.push(ReadAhead { key, task });
            if pending.len() > READ_AHEAD {
                // More listings under way than are kept (or abandoned
                // ones): the oldest is dropped, and its cursor expires.
                pending.remove(0).task.abort();
            }
        }
        Ok(page)
    }

    /// Every entry matching `filter` under every account base.
    async fn search_accounts(
        &self,
        op: Operation,
        filter: &str,
        attrs: &[String],
    ) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        for (base, _) in &self.bases {
            let s = Search {
                base,
                scope: Scope::Subtree,
                filter,
                attrs,
            };
            out.extend(self.conn.search_all(op, s, self.cfg.page_size).await?);
        }
        Ok(out)
    }

    /// The page size a request asks for, within the configured one.
    fn page_size(&self, req: &ListRequest) -> usize {
        req.page_size
            .unwrap_or(self.cfg.page_size)
            .clamp(1, self.cfg.page_size)
    }

    /// A cursor this connector gave: `<base index>:<hex cookie>`.
    fn cursor(op: Operation, req: &ListRequest) -> Result<(usize, Vec<u8>)> {
        match &req.cursor {
            None => Ok((0, Vec::new())),
            Some(c) => parse_cursor(c).ok_or_else(|| bad_cursor(op, c)),
        }
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::full(self.cfg.groups.batch_size);
        caps.disable = self.cfg.disable != DisableMethod::None;
        caps.max_page_size = self.cfg.page_size;
        caps.max_concurrency = self.cfg.connection.max_in_flight;
        caps.create_marker = self.cfg.accounts.marker_attribute.is_some();
        caps.create_entitlement = self.why_no_groups_made().is_none();
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

    async fn list_accounts(&self, req: ListRequest) -> Result<Page<Account>> {
        let op = Operation::ListAccounts;
        let filter = self.account_filter(op, req.filter.as_ref())?;
        self.load_primary_groups(op).await?;
        let (mut base_ix, mut cookie) = Self::cursor(op, &req)?;
        let size = self.page_size(&req);
        let search = |base| Search {
            base,
            scope: Scope::Subtree,
            filter: &filter,
            attrs: &self.read_attrs,
        };
        // Without memberOf, memberships come from reading every group once
        // per listing: read them while the first page is read.
        let mut first: Option<(Vec<Entry>, Option<Vec<u8>>)> = None;
        let index = if self.cfg.groups.member_of.is_some() {
            None
        } else {
            let mut slot = self.index.lock().await;
            match (&req.cursor, slot.as_ref()) {
                (Some(_), Some(ix)) => Some(Arc::clone(ix)),
                _ => {
                    let base = self.bases.get(base_ix).map(|(b, _)| b.as_str());
                    let page = async {
                        match base {
                            Some(b) => self
                                .conn
                                .search_page(op, search(b), size, cookie.clone())
                                .await
                                .map(Some),
                            None => Ok(None),
                        }
                    };
                    let (ix, page) = tokio::join!(self.member_index(op), page);
                    let ix = ix?;
                    first = page?;
                    *slot = Some(Arc::clone(&ix));
                    Some(ix)
                }
            }
        };
        // Empty pages are skipped here; a server that sends them for ever
        // (the same cookie again, or no end) is stopped by the guard.
        let mut guard = prov_core::PageGuard::new();
        loop {
            let Some((base, _)) = self.bases.get(base_ix) else {
                return Ok(Page::last(Vec::new()));
            };
            let (items, next) = match first.take() {
                Some((entries, next)) => (
                    entries
                        .iter()
                        .map(|e| self.to_account(op, e, index.as_deref()))
                        .collect::<Result<Vec<_>>>()?,
                    next,
                ),
                None => {
                    let convert = |e: Entry| self.to_account(op, &e, index.as_deref());
                    self.conn
                        .search_page_map(op, search(base), size, cookie, &convert)
                        .await?
                }
            };
            let cursor = match next {
                Some(c) => Some(format!("{base_ix}:{}", hex(&c))),
                None if base_ix + 1 < self.bases.len() => Some(format!("{}:", base_ix + 1)),
                None => None,
            };
            if items.is_empty()
                && let Some(next) = cursor.as_deref()
            {
                // An empty page (another base, or a server that pages oddly): go on.
                guard
                    .next(next, "listing accounts")
                    .map_err(|e| e.with_operation(op))?;
                let (b, c) = parse_cursor(next).unwrap_or((usize::MAX, Vec::new()));
                base_ix = b;
                cookie = c;
                continue;
            }
            return Ok(Page::new(items, cursor));
        }
    }

    async fn get_account(&self, id: &AccountId) -> Result<Account> {
        self.read_account(Operation::GetAccount, id).await
    }

    async fn create_account(&self, req: CreateAccount) -> Result<Account> {
        let op = Operation::CreateAccount;
        let accounts = &self.cfg.accounts;
        if req.login.is_empty() {
            return Err(Error::invalid_input("login", "the login is empty").with_operation(op));
        }
        let mut attrs = if req.secrets.is_empty() {
            self.encode_attributes(op, &req.login, &req.attributes)?
        } else {
            let mut all = req.attributes.clone();
            for (k, v) in &req.secrets {
                all.insert(k.clone(), v.expose().clone());
            }
            self.encode_attributes(op, &req.login, &all)?
        };
        attrs.retain(|_, v| !v.is_empty());
        attrs.insert(
            accounts.login_attribute.clone(),
            vec![req.login.clone().into_bytes()],
        );
        for (name, template) in &accounts.defaults {
            if !attrs.keys().any(|k| k.eq_ignore_ascii_case(name)) {
                attrs.insert(
                    name.clone(),
                    vec![template.replace("{login}", &req.login).into_bytes()],
                );
            }
        }
        if let (Some(attr), Some(marker)) = (&accounts.marker_attribute, &req.marker) {
            attrs.insert(attr.clone(), vec![marker.clone().into_bytes()]);
        }
        let rdn_value = attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&accounts.rdn_attribute))
            .and_then(|(_, v)| v.first())
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_else(|| req.login.clone());
        attrs
            .entry(accounts.rdn_attribute.clone())
            .or_insert_with(|| vec![rdn_value.clone().into_bytes()]);
        match &self.cfg.disable {
            DisableMethod::UserAccountControl => {
                let uac = UAC_NORMAL | if req.enabled { 0 } else { UAC_DISABLED };
                attrs.insert(
                    "userAccountControl".to_owned(),
                    vec![uac.to_string().into_bytes()],
                );
            }
            DisableMethod::Attribute {
                name,
                disabled,
                enabled,
            } => match (req.enabled, enabled) {
                (false, _) => {
                    attrs.insert(name.clone(), vec![disabled.clone().into_bytes()]);
                }
                (true, Some(v)) => {
                    attrs.insert(name.clone(), vec![v.clone().into_bytes()]);
                }
                (true, None) => {}
            },
            // Locked in the add itself: one operation, never a created
            // account left enabled because a second call failed.
            DisableMethod::PasswordPolicy if !req.enabled => {
                attrs.insert(
                    "pwdAccountLockedTime".to_owned(),
                    vec![LOCKED_FOREVER.as_bytes().to_vec()],
                );
            }
            DisableMethod::PasswordPolicy => {}
            DisableMethod::None => {}
        }
        // New DNs use the directory's own spelling of the base, so that the
        // id given now is the one every listing gives later.
        let parent = self
            .base_spelling
            .get_or_try_init(|| async {
                let entry = self
                    .conn
                    .read(op, &accounts.base, "(objectClass=*)", &["1.1".to_owned()])
                    .await?;
                Ok::<String, Error>(entry.map_or_else(|| accounts.base.clone(), |e| e.dn))
            })
            .await?;
        let dn = child(&accounts.rdn_attribute, &rdn_value, parent);
        let mut entry: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = vec![(
            b"objectClass".to_vec(),
            accounts
                .object_classes
                .iter()
                .map(|c| c.clone().into_bytes())
                .collect(),
        )];
        for (k, v) in attrs {
            entry.push((k.into_bytes(), v.into_iter().collect()));
        }
        let what = format!("creating {dn}");
        let dn_ref = dn.as_str();
        let res = self
            .conn
            .run(op, &what, |mut l| async move { l.add(dn_ref, entry).await })
            .await?;
        if res.rc != 0 {
            let e = from_result(&res, op, &what);
            return Err(if res.rc == 68 {
                e.with_field("login")
            } else {
                e
            });
        }
        let id = AccountId::new(canonical(&dn));
        let mut acct = Account::new(id, req.login);
        acct.attributes = req.attributes;
        acct.attributes.retain(|_, v| *v != Value::Null);
        acct.enabled = req.enabled;
        if accounts.marker_attribute.is_some() {
            acct.marker = req.marker;
        }
        Ok(acct)
    }

    async fn update_account(&self, req: UpdateAccount) -> Result<AccountId> {
        let op = Operation::UpdateAccount;
        let accounts = &self.cfg.accounts;
        let dn = self.account_dn(op, &req.id)?;
        let delta = &req.delta;
        let login = dn
            .rdn_value(&accounts.rdn_attribute)
            .unwrap_or(req.id.as_str())
            .to_owned();
        let set = if req.secrets.is_empty() {
            self.encode_attributes(op, &login, &delta.set)?
        } else {
            let mut all = delta.set.clone();
            for (k, v) in &req.secrets {
                all.insert(k.clone(), v.expose().clone());
            }
            self.encode_attributes(op, &login, &all)?
        };
        let mut mods: Vec<Mod<Vec<u8>>> = Vec::new();
        let mut new_rdn: Option<String> = None;
        for (attr, values) in set {
            if attr.eq_ignore_ascii_case(&accounts.rdn_attribute) {
                // The naming attribute changes through a rename.
                if let Some(v) = values.first() {
                    new_rdn = Some(String::from_utf8_lossy(v).into_owned());
                }
                continue;
            }
            mods.push(Mod::Replace(
                attr.into_bytes(),
                values.into_iter().collect(),
            ));
        }
        for model in &delta.remove {
            let Some(m) = accounts.attributes.get(model) else {
                return Err(Error::invalid_input(
                    model.clone(),
                    format!("attribute `{model}` is not mapped to a directory attribute"),
                )
                .with_operation(op));
            };
            if m.ldap.eq_ignore_ascii_case(&accounts.rdn_attribute) {
                return Err(Error::invalid_input(
                    model.clone(),
                    format!(
                        "`{model}` names the entry ({}); it cannot be removed",
                        m.ldap
                    ),
                )
                .with_operation(op));
            }
            mods.push(Mod::Replace(m.ldap.clone().into_bytes(), HashSet::new()));
        }
        if let Some(new_login) = &delta.login {
            if new_login.is_empty() {
                return Err(
                    Error::invalid_input("login", "the new login is empty").with_operation(op)
                );
            }
            if accounts
                .rdn_attribute
                .eq_ignore_ascii_case(&accounts.login_attribute)
            {
                new_rdn = Some(new_login.clone());
            } else {
                mods.push(Mod::Replace(
                    accounts.login_attribute.clone().into_bytes(),
                    [new_login.clone().into_bytes()].into_iter().collect(),
                ));
                self.follow_login(op, &req.id, &dn, new_login, &mut mods, &mut new_rdn)
                    .await?;
            }
        }
        // Attributes first, the rename last: if the rename fails, the entry
        // keeps its id and the next plan asks for the rename again; the
        // other way round a failed modify would leave a renamed entry the
        // caller still knows by its old id.
        self.modify_account(op, req.id.as_str(), mods).await?;
        let mut id = req.id.clone();
        if let Some(value) = new_rdn.filter(|v| dn.rdn_value(&accounts.rdn_attribute) != Some(v)) {
            let rdn = child(&accounts.rdn_attribute, &value, "");
            let rdn = rdn.trim_end_matches(',').to_owned();
            let what = format!("renaming {} to {rdn}", req.id);
            let (old, rdn_ref) = (req.id.as_str(), rdn.as_str());
            let res = self
                .conn
                .run(op, &what, |mut l| async move {
                    l.modifydn(old, rdn_ref, true, None).await
                })
                .await?;
            match res.rc {
                0 => {}
                32 => return Err(not_found(op, &req.id)),
                68 => {
                    return Err(from_result(&res, op, &what).with_field("login"));
                }
                _ => return Err(from_result(&res, op, &what)),
            }
            // The parent is what follows the first unescaped comma.
            let parent = first_rdn_end(req.id.as_str())
                .and_then(|i| req.id.as_str().get(i + 1..))
                .unwrap_or_default();
            id = AccountId::new(canonical(&format!("{rdn},{parent}")));
        }
        Ok(id)
    }

    /// A login rename where the login is not the naming attribute (AD:
    /// `sAMAccountName`, named by `cn`): the RDN follows when it was the
    /// old login, and on AD the `userPrincipalName` when its name part
    /// was (unless this update sets it), so that the user does not keep
    /// signing in with the old name.
    async fn follow_login(
        &self,
        op: Operation,
        id: &AccountId,
        dn: &Dn,
        new_login: &str,
        mods: &mut Vec<Mod<Vec<u8>>>,
        new_rdn: &mut Option<String>,
    ) -> Result<()> {
        const UPN: &str = "userPrincipalName";
        let accounts = &self.cfg.accounts;
        let want = vec![accounts.login_attribute.clone(), UPN.to_owned()];
        let Some(e) = self
            .conn
            .read(op, id.as_str(), "(objectClass=*)", &want)
            .await?
        else {
            return Err(not_found(op, id));
        };
        let Some(old) = e.first(&accounts.login_attribute) else {
            return Ok(());
        };
        if new_rdn.is_none()
            && dn
                .rdn_value(&accounts.rdn_attribute)
                .is_some_and(|v| v.eq_ignore_ascii_case(&old))
        {
            *new_rdn = Some(new_login.to_owned());
        }
        let sets_upn = mods.iter().any(|m| match m {
            Mod::Replace(a, _) | Mod::Add(a, _) | Mod::Delete(a, _) => {
                a.eq_ignore_ascii_case(UPN.as_bytes())
            }
            _ => false,
        });
        if self.cfg.dialect == crate::config::Dialect::ActiveDirectory
            && !sets_upn
            && let Some(upn) = e.first(UPN)
            && let Some((name, realm)) = upn.rsplit_once('@')
            && name.eq_ignore_ascii_case(&old)
        {
            mods.push(Mod::Replace(
                UPN.as_bytes().to_vec(),
                [format!("{new_login}@{realm}").into_bytes()]
                    .into_iter()
                    .collect(),
            ));
        }
        Ok(())
    }

    async fn set_enabled(&self, id: &AccountId, enabled: bool) -> Result<()> {
        let op = Operation::SetEnabled;
        self.account_dn(op, id)?;
        let dn = id.as_str();
        let mods = match &self.cfg.disable {
            DisableMethod::None => return Err(Error::unsupported(op)),
            DisableMethod::PasswordPolicy => {
                let values: HashSet<String> = if enabled {
                    HashSet::new()
                } else {
                    [LOCKED_FOREVER.to_owned()].into_iter().collect()
                };
                vec![Mod::Replace("pwdAccountLockedTime".to_owned(), values)]
            }
            DisableMethod::Attribute {
                name,
                disabled,
                enabled: on,
            } => {
                let values: HashSet<String> = match (enabled, on) {
                    (false, _) => [disabled.clone()].into_iter().collect(),
                    (true, Some(v)) => [v.clone()].into_iter().collect(),
                    (true, None) => HashSet::new(),
                };
                vec![Mod::Replace(name.clone(), values)]
            }
            DisableMethod::UserAccountControl => {
                let attrs = vec!["userAccountControl".to_owned()];
                let entry = self
                    .conn
                    .read(op, dn, "(objectClass=*)", &attrs)
                    .await?
                    .ok_or_else(|| not_found(op, id))?;
                let uac = entry
                    .first("userAccountControl")
                    .and_then(|v| v.trim().parse::<i64>().ok())
                    .unwrap_or(UAC_NORMAL);
                let want = if enabled {
                    uac & !UAC_DISABLED
                } else {
                    uac | UAC_DISABLED
                };
                if want == uac {
                    return Ok(());
                }
                vec![Mod::Replace(
                    "userAccountControl".to_owned(),
                    [want.to_string()].into_iter().collect(),
                )]
            }
        };
        self.modify_account(op, dn, mods.into_iter().map(bytes_mod).collect())
            .await
    }

    async fn delete_account(&self, id: &AccountId) -> Result<()> {
        let op = Operation::DeleteAccount;
        self.account_dn(op, id)?;
        let what = format!("deleting {id}");
        let dn = id.as_str();
        let res = self
            .conn
            .run(op, &what, |mut l| async move { l.delete(dn).await })
            .await?;
        match res.rc {
            0 => Ok(()),
            32 => Err(not_found(op, id)),
            _ => Err(from_result(&res, op, &what)),
        }
    }

    async fn list_entitlements(&self, req: ListRequest) -> Result<Page<Entitlement>> {
        let op = Operation::ListEntitlements;
        let g = &self.cfg.groups;
        let (_, cookie) = Self::cursor(op, &req)?;
        let size = self.page_size(&req);
        let attrs = vec![g.name_attribute.clone(), "description".to_owned()];
        let (entries, next) = self
            .conn
            .search_page(
                op,
                Search {
                    base: &g.base,
                    scope: Scope::OneLevel,
                    filter: &g.filter,
                    attrs: &attrs,
                },
                size,
                cookie,
            )
            .await?;
        let items = entries
            .iter()
            .filter_map(|e| {
                let mut ent = Entitlement::group(self.group_name_of(&e.dn)?);
                ent.display_name = e.first("description");
                Some(ent)
            })
            .collect();
        Ok(Page::new(items, next.map(|c| format!("0:{}", hex(&c)))))
    }

    async fn list_members(
        &self,
        entitlement: &EntitlementId,
        req: ListRequest,
    ) -> Result<Page<AccountId>> {
        let op = Operation::ListMembers;
        let size = self.page_size(&req);
        // Later pages come from the member list the first page read: one
        // read of the group per listing, and a group changing meanwhile
        // neither skips nor repeats anyone.
        if let Some(c) = &req.cursor {
            let (n, from) = c
                .split_once(':')
                .and_then(|(n, from)| Some((n.parse::<u64>().ok()?, from.parse::<usize>().ok()?)))
                .ok_or_else(|| bad_cursor(op, c))?;
            let mut kept = self
                .member_lists
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let Some((group, members)) = kept.get(n).cloned() else {
                return Err(expired_cursor(op, "member list", &kept));
            };
            if &group != entitlement || from > members.len() {
                // A cursor from another group's listing, or edited.
                return Err(bad_cursor(op, c));
            }
            let page: Vec<AccountId> = members.iter().skip(from).take(size).cloned().collect();
            let to = from.saturating_add(size);
            let next = if to < members.len() {
                Some(format!("{n}:{to}"))
            } else {
                kept.take(n);
                None
            };
            return Ok(Page::new(page, next));
        }
        let group = self.group_dn(entitlement);
        let attrs = vec![self.cfg.groups.members.attribute().to_owned()];
        let entry = self
            .conn
            .read(op, &group, &self.cfg.groups.filter, &attrs)
            .await?
            .ok_or_else(|| not_found(op, format!("group {group}")))?;
        let values = self.all_members(op, &entry).await?;
        let mut members: Vec<AccountId> = match &self.cfg.groups.members {
            MemberStyle::Dn(_) => values
                .into_iter()
                .filter(|v| {
                    Dn::parse(v).is_ok_and(|d| self.bases.iter().any(|(_, b)| d.is_within(b)))
                })
                .map(|v| AccountId::new(canonical(&v)))
                .collect(),
            MemberStyle::Login(_) => {
                let mut out = Vec::new();
                let no_attrs = ["1.1".to_owned()];
                for chunk in values.chunks(100) {
                    let any: String = chunk
                        .iter()
                        .map(|v| equality(&self.cfg.accounts.login_attribute, v))
                        .collect();
                    let filter = format!("(&{}(|{any}))", self.cfg.accounts.filter);
                    let found = self.search_accounts(op, &filter, &no_attrs).await?;
                    out.extend(found.into_iter().map(|e| AccountId::new(canonical(&e.dn))));
                }
                out
            }
        };
        members.sort();
        if members.len() <= size {
            return Ok(Page::last(members));
        }
        let page: Vec<AccountId> = members.iter().take(size).cloned().collect();
        let n = self
            .member_lists
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keep((entitlement.clone(), Arc::new(members)));
        Ok(Page::new(page, Some(format!("{n}:{size}"))))
    }

    async fn changes_since(&self, token: Option<&str>) -> Result<ChangeSet> {
        let op = Operation::ChangesSince;
        self.load_primary_groups(op).await?;
        let attrs: Vec<String> = self
            .read_attrs
            .iter()
            .cloned()
            .chain(std::iter::once("modifyTimestamp".to_owned()))
            .collect();
        let (since, first) = match token {
            Some(t) => {
                if parse_time(t).is_none() {
                    return Err(Error::invalid_input(
                        "token",
                        format!("`{t}` is not a token this connector gave"),
                    )
                    .with_operation(op));
                }
                (t.to_owned(), false)
            }
            // From now on: the newest change of the last day is where the
            // next call starts (the directory's clock, not ours).
            None => (
                (DateTime::<Utc>::from(std::time::SystemTime::now()) - chrono::Duration::days(1))
                    .format("%Y%m%d%H%M%SZ")
                    .to_string(),
                true,
            ),
        };
        let filter = format!(
            "(&{}(modifyTimestamp>={}))",
            self.cfg.accounts.filter,
            crate::dn::escape_filter_value(&since)
        );
        let index = if self.cfg.groups.member_of.is_none() && !first {
            Some(self.member_index(op).await?)
        } else {
            None
        };
        let mut newest = since.clone();
        let mut changes = Vec::new();
        for e in &self.search_accounts(op, &filter, &attrs).await? {
            if let Some(ts) = e.first("modifyTimestamp")
                && ts > newest
            {
                newest = ts;
            }
            if !first {
                changes.push(Change::Upserted(self.to_account(
                    op,
                    e,
                    index.as_deref(),
                )?));
            }
        }
        Ok(ChangeSet::new(changes, newest, false))
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
        let g = &self.inner.cfg.groups;
        match self.inner.why_no_groups_made() {
            Some(why) if !g.object_classes.is_empty() => vec![why],
            _ => Vec::new(),
        }
    }
}

/// Where the first RDN of a DN ends (its first unescaped comma).
fn first_rdn_end(dn: &str) -> Option<usize> {
    let bytes = dn.as_bytes();
    let mut i = 0;
    while let Some(&c) = bytes.get(i) {
        match c {
            b'\\' => i += 2,
            b',' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

fn bad_cursor(op: Operation, cursor: &str) -> Error {
    Error::invalid_input(
        "cursor",
        format!("`{cursor}` is not a cursor this connector gave"),
    )
    .with_operation(op)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_cursor(c: &str) -> Option<(usize, Vec<u8>)> {
    let (ix, cookie) = c.split_once(':')?;
    let ix = ix.parse().ok()?;
    if cookie.len() % 2 != 0 {
        return None;
    }
    let cookie = (0..cookie.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(cookie.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some((ix, cookie))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranged_retrieval_follows_ad_ranges() {
        let mut e = Entry::default();
        e.attrs.push((
            "member;range=0-1499".to_owned(),
            vec![b"cn=a".to_vec(), b"cn=b".to_vec()],
        ));
        assert_eq!(
            ranged(&e, "member"),
            Some((vec!["cn=a".to_owned(), "cn=b".to_owned()], Ok(Some(1500))))
        );
        let mut last = Entry::default();
        last.attrs
            .push(("member;range=1500-*".to_owned(), vec![b"cn=c".to_vec()]));
        assert_eq!(
            ranged(&last, "member"),
            Some((vec!["cn=c".to_owned()], Ok(None)))
        );
        assert_eq!(ranged(&Entry::default(), "member"), None);
        // The largest end has no successor: an error, not an overflow.
        for end in ["18446744073709551615", "x", "-1"] {
            let mut huge = Entry::default();
            huge.attrs
                .push((format!("member;range=0-{end}"), vec![b"cn=a".to_vec()]));
            let (_, next) = ranged(&huge, "member").unwrap();
            assert!(next.is_err(), "{end}: {next:?}");
        }
    }

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
        danger.connection.danger_plaintext_bind = true;
        danger.validate().unwrap();
        // Anonymous binds send no secret.
        LdapConfig::new(Dialect::OpenLdap, "ldap://dir.example", "dc=x")
            .validate()
            .unwrap();
    }

    #[test]
    fn unicode_pwd_is_quoted_utf16le() {
        assert_eq!(unicode_pwd("pw"), b"\"\0p\0w\0\"\0".to_vec());
        assert_eq!(unicode_pwd("é").len(), 6);
    }

    #[tokio::test]
    async fn unicode_pwd_is_refused_without_tls_before_anything_is_sent() {
        use crate::config::{AttributeMap, Dialect, LdapConfig};
        // Port 9 (discard): nothing is listening, and nothing may be sent.
        let mut cfg = LdapConfig::new(
            Dialect::ActiveDirectory,
            "ldap://127.0.0.1:9",
            "DC=corp,DC=example",
        );
        cfg.accounts
            .attributes
            .insert("password".to_owned(), AttributeMap::string("unicodePwd"));
        let conn = LdapConnector::new(cfg).unwrap();
        let mut attrs = Attributes::new();
        attrs.insert("password".to_owned(), Value::from("S3cret!pass"));
        let e = conn
            .create_account(CreateAccount::new("ghopper", attrs))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert_eq!(e.field(), Some("password"));
        assert!(e.to_string().contains("only over TLS"), "{e}");
        assert!(!format!("{e} {e:?}").contains("S3cret"), "{e:?}");
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        assert_eq!(
            parse_cursor(&format!("1:{}", hex(b"\x00\xffab"))),
            Some((1, b"\x00\xffab".to_vec()))
        );
        assert_eq!(parse_cursor("2:"), Some((2, Vec::new())));
        for bad in ["", "x:00", "1:0", "1:zz", "1"] {
            assert_eq!(parse_cursor(bad), None, "{bad}");
        }
    }

    #[test]
    fn values_encode_and_decode_per_syntax() {
        assert_eq!(
            encode(Syntax::String, &Value::from("x")),
            Ok(vec![b"x".to_vec()])
        );
        assert_eq!(encode(Syntax::String, &Value::from("")), Ok(Vec::new()));
        assert!(encode(Syntax::String, &Value::List(vec![Value::from("a")])).is_err());
        assert!(encode(Syntax::Integer, &Value::from("ten")).is_err());
        assert_eq!(
            encode(Syntax::Boolean, &Value::Bool(true)),
            Ok(vec![b"TRUE".to_vec()])
        );
        assert_eq!(
            decode(Syntax::Integer, &[b"1001".to_vec()]),
            Some(Value::Int(1001))
        );
        assert_eq!(
            decode(Syntax::Boolean, &[b"FALSE".to_vec()]),
            Some(Value::Bool(false))
        );
        let t = decode(Syntax::Time, &[b"20261122093000Z".to_vec()]);
        assert!(matches!(t, Some(Value::Timestamp(_))), "{t:?}");
        assert_eq!(decode(Syntax::String, &[]), None);
        assert_eq!(first_rdn_end("uid=a\\,b,ou=x"), Some(8));
    }
}
