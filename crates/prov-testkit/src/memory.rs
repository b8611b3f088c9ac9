//! `MemoryConnector`: the reference implementation of the `Connector` contract.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use prov_core::{
    Account, AccountId, BatchOutcome, Capabilities, Change, ChangeSet, Clock, Connector,
    CreateAccount, Entitlement, EntitlementId, Error, ErrorKind, ListRequest, MemberFailure,
    MembershipChange, Operation, Page, RateLimit, Result, SystemClock, UpdateAccount, async_trait,
};
use serde::{Deserialize, Serialize};

/// Limits a `MemoryConnector` models, to look like a particular target.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MemoryLimits {
    /// Most accounts per grant or revoke request (bigger batches are split).
    pub max_batch: usize,
    /// Most items per page.
    pub max_page_size: usize,
    /// Requests allowed per window; past it, calls answer `RateLimited`
    /// with the time left in the window as `retry_after`.
    pub rate_limit: Option<RateLimit>,
    /// Whether accounts can be disabled (some SaaS APIs cannot).
    pub disable: bool,
    /// Whether accounts can be deleted.
    pub delete: bool,
    /// Whether logins can change.
    pub rename: bool,
    /// Whether creates keep their marker (`Capabilities::create_marker`).
    pub create_marker: bool,
    /// Whether logins compare ignoring ASCII case, as LDAP and SCIM
    /// compare them (`Capabilities::login_case_insensitive`; default yes):
    /// `JSmith` is then taken for a create of `jsmith`, and a filter on
    /// `jsmith` finds it.
    pub login_case_insensitive: bool,
    /// Whether entitlements can be created and deleted
    /// (`Capabilities::create_entitlement`; default yes).
    pub create_entitlement: bool,
    /// The longest login taken (`Capabilities::max_login_len`; default
    /// none): a longer create or rename is refused.
    pub max_login_len: Option<usize>,
}

impl Default for MemoryLimits {
    fn default() -> Self {
        MemoryLimits {
            max_batch: 100,
            max_page_size: 100,
            rate_limit: None,
            disable: true,
            delete: true,
            rename: true,
            create_marker: true,
            login_case_insensitive: true,
            create_entitlement: true,
            max_login_len: None,
        }
    }
}

/// Counts of the requests a `MemoryConnector` served, as a target would see them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryStats {
    /// Every call, rate-limited ones included.
    pub calls: u64,
    /// Calls refused with `RateLimited`.
    pub rate_limited: u64,
    /// Grant and revoke requests as the target received them (after splitting).
    pub membership_requests: u64,
    /// Writes (create, update, enable/disable, delete, membership requests).
    pub writes: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    next_id: u64,
    accounts: BTreeMap<AccountId, Account>,
    entitlements: BTreeMap<EntitlementId, Entitlement>,
    /// Change log for `changes_since`: (sequence, change).
    log: Vec<(u64, Change)>,
    seq: u64,
    /// Account ids by login (rebuilt on load): a create's "is this login
    /// taken" and a lookup by login cost the same at a million accounts
    /// as at ten.
    #[serde(skip)]
    logins: HashMap<String, BTreeSet<AccountId>>,
    /// Logins are indexed in ASCII lowercase (a case-insensitive target).
    #[serde(skip)]
    fold_case: bool,
}

impl State {
    fn record(&mut self, change: Change) {
        self.seq += 1;
        self.log.push((self.seq, change));
    }

    /// The login index's key for `login`.
    fn key(&self, login: &str) -> String {
        if self.fold_case {
            login.to_ascii_lowercase()
        } else {
            login.to_owned()
        }
    }

    fn reindex(&mut self) {
        let mut logins: HashMap<String, BTreeSet<AccountId>> = HashMap::new();
        for a in self.accounts.values() {
            logins
                .entry(self.key(&a.login))
                .or_default()
                .insert(a.id.clone());
        }
        self.logins = logins;
    }

    /// Adds or replaces an account, keeping the login index.
    fn put(&mut self, account: Account) {
        if let Some(old) = self.accounts.get(&account.id) {
            let (id, login) = (old.id.clone(), old.login.clone());
            self.unindex(&login, &id);
        }
        let key = self.key(&account.login);
        self.logins
            .entry(key)
            .or_default()
            .insert(account.id.clone());
        self.accounts.insert(account.id.clone(), account);
    }

    fn take(&mut self, id: &AccountId) -> Option<Account> {
        let acct = self.accounts.remove(id)?;
        self.unindex(&acct.login, id);
        Some(acct)
    }

    fn unindex(&mut self, login: &str, id: &AccountId) {
        let key = self.key(login);
        if let Some(ids) = self.logins.get_mut(&key) {
            ids.remove(id);
            if ids.is_empty() {
                self.logins.remove(&key);
            }
        }
    }

    /// Whether an account other than `except` has `login`.
    fn login_taken(&self, login: &str, except: Option<&AccountId>) -> bool {
        self.logins
            .get(&self.key(login))
            .is_some_and(|ids| ids.iter().any(|id| Some(id) != except))
    }

    /// The accounts with `login`, by id.
    fn with_login<'a>(&'a self, login: &str) -> impl Iterator<Item = &'a Account> + 'a {
        self.logins
            .get(&self.key(login))
            .into_iter()
            .flatten()
            .filter_map(|id| self.accounts.get(id))
    }
}

#[derive(Debug)]
struct Inner {
    state: State,
    stats: MemoryStats,
    window: (DateTime<Utc>, u32),
}

/// An in-memory target that keeps the whole [`Connector`] contract: the
/// reference the conformance suite is proved against, and the target the
/// quickstart and the engine's tests provision into.
///
/// It can model a target's limits ([`MemoryLimits`]: batch caps, page
/// sizes, a rate limit answering `RateLimited` with a retry-after), and,
/// made with [`file_backed`](Self::file_backed), keeps its state in a file
/// that outlives the process (written whole, to a temporary file renamed
/// over the old one, so a process killed mid-write leaves the old state or
/// the new, never a torn one).
#[derive(Debug, Clone)]
pub struct MemoryConnector {
    inner: Arc<Mutex<Inner>>,
    limits: MemoryLimits,
    clock: Arc<dyn Clock>,
    file: Option<PathBuf>,
}

impl Default for MemoryConnector {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryConnector {
    /// An empty target with default limits (batches of 100, no rate limit).
    pub fn new() -> Self {
        Self::with_limits(MemoryLimits::default())
    }

    /// An empty target with these limits.
    pub fn with_limits(limits: MemoryLimits) -> Self {
        MemoryConnector {
            inner: Arc::new(Mutex::new(Inner {
                state: State {
                    fold_case: limits.login_case_insensitive,
                    ..State::default()
                },
                stats: MemoryStats::default(),
                window: (DateTime::<Utc>::UNIX_EPOCH, 0),
            })),
            limits,
            clock: Arc::new(SystemClock),
            file: None,
        }
    }

    /// A target whose state lives in `path`: loaded if the file exists,
    /// written after every change.
    pub fn file_backed(path: impl AsRef<Path>, limits: MemoryLimits) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut conn = Self::with_limits(limits);
        if path.exists() {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                Error::new(
                    ErrorKind::Config,
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            let state: State = serde_json::from_str(&text).map_err(|e| {
                Error::new(
                    ErrorKind::Config,
                    format!("{} is not a saved target state: {e}", path.display()),
                )
            })?;
            let mut state = state;
            state.fold_case = conn.limits.login_case_insensitive;
            state.reindex();
            conn.lock().state = state;
        }
        conn.file = Some(path);
        Ok(conn)
    }

    /// Uses `clock` for the rate-limit window (builder style).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Adds entitlements the target offers (builder style).
    pub fn with_entitlements<I, S>(self, ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<EntitlementId>,
    {
        {
            let mut inner = self.lock();
            for id in ids {
                let id = id.into();
                inner
                    .state
                    .entitlements
                    .insert(id.clone(), Entitlement::group(id));
            }
        }
        // A fresh connector's file write cannot lose anything yet; errors surface on the next write.
        let _ = self.persist();
        self
    }

    /// Adds an account as if someone else made it (for orphan and
    /// correlation tests).
    pub fn insert_account(&self, account: Account) -> Result<()> {
        {
            let mut inner = self.lock();
            inner.state.record(Change::Upserted(account.clone()));
            inner.state.put(account);
        }
        self.persist()
    }

    /// Every account, sorted by id (for assertions).
    pub fn accounts(&self) -> Vec<Account> {
        self.lock().state.accounts.values().cloned().collect()
    }

    /// A login longer than the limit is refused, as AD refuses a long
    /// sAMAccountName.
    fn login_fits(&self, login: &str, op: Operation) -> Result<()> {
        match self.limits.max_login_len {
            Some(max) if login.chars().count() > max => Err(Error::invalid_input(
                "login",
                format!("login {login} is longer than {max} characters"),
            )
            .with_operation(op)),
            _ => Ok(()),
        }
    }

    /// Request counts so far.
    pub fn stats(&self) -> MemoryStats {
        self.lock().stats.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the state half-changed
        // (each change is one insert or remove), so a poisoned lock is usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a call and applies the rate limit.
    fn admit(&self, write: bool) -> Result<()> {
        let now = self.clock.now();
        let mut inner = self.lock();
        inner.stats.calls += 1;
        if let Some(limit) = self.limits.rate_limit {
            let period =
                chrono::Duration::from_std(limit.period).unwrap_or(chrono::Duration::seconds(1));
            if now >= inner.window.0 + period || now < inner.window.0 {
                inner.window = (now, 0);
            }
            if inner.window.1 >= limit.requests {
                inner.stats.rate_limited += 1;
                let left = (inner.window.0 + period - now)
                    .to_std()
                    .unwrap_or(Duration::ZERO);
                return Err(Error::rate_limited(Some(left)));
            }
            inner.window.1 += 1;
        }
        if write {
            inner.stats.writes += 1;
        }
        Ok(())
    }

    fn persist(&self) -> Result<()> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let text = {
            let inner = self.lock();
            serde_json::to_vec(&inner.state).map_err(|e| {
                Error::new(ErrorKind::Unexpected, format!("cannot encode state: {e}"))
            })?
        };
        write_atomically(path, &text).map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!("cannot write {}: {e}", path.display()),
            )
        })
    }

    fn membership(&self, req: MembershipChange, add: bool) -> Result<BatchOutcome> {
        let op = if add {
            Operation::Grant
        } else {
            Operation::Revoke
        };
        let mut outcome = BatchOutcome::ok();
        for chunk in req.accounts.chunks(self.limits.max_batch.max(1)) {
            self.admit(true).map_err(|e| e.with_operation(op))?;
            let mut inner = self.lock();
            inner.stats.membership_requests += 1;
            if !inner.state.entitlements.contains_key(&req.entitlement) {
                return Err(
                    Error::not_found(format!("no entitlement {}", req.entitlement))
                        .with_operation(op),
                );
            }
            for id in chunk {
                let changed = match inner.state.accounts.get_mut(id) {
                    None => {
                        outcome.failures.push(MemberFailure::new(
                            id.clone(),
                            Error::not_found(format!("no account {id}")).with_operation(op),
                        ));
                        None
                    }
                    Some(acct) => {
                        let changed = if add {
                            acct.entitlements.insert(req.entitlement.clone())
                        } else {
                            acct.entitlements.remove(&req.entitlement)
                        };
                        changed.then(|| acct.clone())
                    }
                };
                if let Some(acct) = changed {
                    inner.state.record(Change::Upserted(acct));
                }
            }
        }
        self.persist()?;
        Ok(outcome)
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    // A target's state holds accounts and their access: owner only.
    let mut f = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?
    };
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn page<T: Clone>(
    items: impl Iterator<Item = (String, T)>,
    req: &ListRequest,
    max: usize,
) -> Page<T> {
    let size = req.page_size.unwrap_or(max).clamp(1, max.max(1));
    let mut out = Vec::with_capacity(size);
    let mut last = None;
    let mut more = false;
    for (key, item) in items {
        if req
            .cursor
            .as_ref()
            .is_some_and(|c| key.as_str() <= c.as_str())
        {
            continue;
        }
        if out.len() == size {
            more = true;
            break;
        }
        last = Some(key);
        out.push(item);
    }
    Page::new(out, if more { last } else { None })
}

#[async_trait]
impl Connector for MemoryConnector {
    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::full(self.limits.max_batch);
        caps.max_page_size = self.limits.max_page_size;
        caps.rate_limit = self.limits.rate_limit;
        caps.disable = self.limits.disable;
        caps.delete = self.limits.delete;
        caps.rename = self.limits.rename;
        caps.create_marker = self.limits.create_marker;
        caps.login_case_insensitive = self.limits.login_case_insensitive;
        caps.create_entitlement = self.limits.create_entitlement;
        caps.max_login_len = self.limits.max_login_len;
        caps
    }

    async fn check(&self) -> Result<()> {
        self.admit(false)
            .map_err(|e| e.with_operation(Operation::Check))
    }

    async fn list_accounts(&self, req: ListRequest) -> Result<Page<Account>> {
        self.admit(false)
            .map_err(|e| e.with_operation(Operation::ListAccounts))?;
        if let Some((attr, _)) = &req.filter
            && attr != "login"
        {
            return Err(Error::invalid_input(
                attr.clone(),
                format!("cannot filter on `{attr}`; only on `login`"),
            )
            .with_operation(Operation::ListAccounts));
        }
        let inner = self.lock();
        let matching: Box<dyn Iterator<Item = &Account>> = match &req.filter {
            Some((_, login)) => Box::new(inner.state.with_login(login)),
            None => Box::new(inner.state.accounts.values()),
        };
        let matching = matching.map(|a| (a.id.as_str().to_owned(), a.clone()));
        Ok(page(matching, &req, self.limits.max_page_size))
    }

    async fn get_account(&self, id: &AccountId) -> Result<Account> {
        self.admit(false)
            .map_err(|e| e.with_operation(Operation::GetAccount))?;
        self.lock().state.accounts.get(id).cloned().ok_or_else(|| {
            Error::not_found(format!("no account {id}")).with_operation(Operation::GetAccount)
        })
    }

    async fn create_account(&self, req: CreateAccount) -> Result<Account> {
        let op = Operation::CreateAccount;
        self.admit(true).map_err(|e| e.with_operation(op))?;
        if req.login.trim().is_empty() {
            return Err(Error::invalid_input("login", "the login is empty").with_operation(op));
        }
        self.login_fits(&req.login, op)?;
        let acct = {
            let mut inner = self.lock();
            if inner.state.login_taken(&req.login, None) {
                return Err(
                    Error::already_exists(format!("login {} is taken", req.login))
                        .with_operation(op),
                );
            }
            inner.state.next_id += 1;
            let id = AccountId::new(format!("mem-{:08}", inner.state.next_id));
            let mut acct = Account::new(id.clone(), req.login);
            acct.attributes = req.attributes;
            // The target keeps secrets as it keeps any attribute (a
            // directory would hash a password); they are never read back
            // by the engine as something to compare.
            for (k, v) in req.secrets {
                acct.attributes.insert(k, v.expose().clone());
            }
            acct.enabled = req.enabled;
            if self.limits.create_marker {
                acct.marker = req.marker;
            }
            inner.state.put(acct.clone());
            inner.state.record(Change::Upserted(acct.clone()));
            acct
        };
        self.persist()?;
        Ok(acct)
    }

    async fn update_account(&self, req: UpdateAccount) -> Result<AccountId> {
        let op = Operation::UpdateAccount;
        if req.delta.login.is_some() && !self.limits.rename {
            return Err(
                Error::new(ErrorKind::Unsupported, "this target cannot change a login")
                    .with_operation(op)
                    .with_field("login"),
            );
        }
        if let Some(login) = &req.delta.login {
            self.login_fits(login, op)?;
        }
        self.admit(true).map_err(|e| e.with_operation(op))?;
        {
            let mut inner = self.lock();
            if let Some(login) = &req.delta.login
                && inner.state.login_taken(login, Some(&req.id))
            {
                return Err(
                    Error::already_exists(format!("login {login} is taken")).with_operation(op)
                );
            }
            let Some(acct) = inner.state.accounts.get_mut(&req.id) else {
                return Err(Error::not_found(format!("no account {}", req.id)).with_operation(op));
            };
            for (k, v) in req.delta.set {
                acct.attributes.insert(k, v);
            }
            for (k, v) in req.secrets {
                acct.attributes.insert(k, v.expose().clone());
            }
            for k in &req.delta.remove {
                acct.attributes.remove(k);
            }
            let renamed = req.delta.login.map(|login| {
                let old = std::mem::replace(&mut acct.login, login);
                (old, acct.login.clone())
            });
            let snapshot = acct.clone();
            if let Some((old, new)) = renamed {
                inner.state.unindex(&old, &req.id);
                let key = inner.state.key(&new);
                inner
                    .state
                    .logins
                    .entry(key)
                    .or_default()
                    .insert(req.id.clone());
            }
            inner.state.record(Change::Upserted(snapshot));
        }
        self.persist()?;
        Ok(req.id)
    }

    async fn set_enabled(&self, id: &AccountId, enabled: bool) -> Result<()> {
        let op = Operation::SetEnabled;
        if !self.limits.disable {
            return Err(Error::unsupported(op));
        }
        self.admit(true).map_err(|e| e.with_operation(op))?;
        {
            let mut inner = self.lock();
            let Some(acct) = inner.state.accounts.get_mut(id) else {
                return Err(Error::not_found(format!("no account {id}")).with_operation(op));
            };
            if acct.enabled == enabled {
                return Ok(());
            }
            acct.enabled = enabled;
            let snapshot = acct.clone();
            inner.state.record(Change::Upserted(snapshot));
        }
        self.persist()
    }

    async fn delete_account(&self, id: &AccountId) -> Result<()> {
        let op = Operation::DeleteAccount;
        if !self.limits.delete {
            return Err(Error::unsupported(op));
        }
        self.admit(true).map_err(|e| e.with_operation(op))?;
        {
            let mut inner = self.lock();
            if inner.state.take(id).is_none() {
                return Err(Error::not_found(format!("no account {id}")).with_operation(op));
            }
            inner.state.record(Change::Deleted(id.clone()));
        }
        self.persist()
    }

    async fn list_entitlements(&self, req: ListRequest) -> Result<Page<Entitlement>> {
        self.admit(false)
            .map_err(|e| e.with_operation(Operation::ListEntitlements))?;
        let inner = self.lock();
        let items = inner
            .state
            .entitlements
            .values()
            .map(|e| (e.id.as_str().to_owned(), e.clone()));
        Ok(page(items, &req, self.limits.max_page_size))
    }

    async fn list_members(
        &self,
        entitlement: &EntitlementId,
        req: ListRequest,
    ) -> Result<Page<AccountId>> {
        let op = Operation::ListMembers;
        self.admit(false).map_err(|e| e.with_operation(op))?;
        let inner = self.lock();
        if !inner.state.entitlements.contains_key(entitlement) {
            return Err(
                Error::not_found(format!("no entitlement {entitlement}")).with_operation(op)
            );
        }
        let members = inner
            .state
            .accounts
            .values()
            .filter(|a| a.entitlements.contains(entitlement))
            .map(|a| (a.id.as_str().to_owned(), a.id.clone()));
        Ok(page(members, &req, self.limits.max_page_size))
    }

    async fn grant(&self, req: MembershipChange) -> Result<BatchOutcome> {
        self.membership(req, true)
    }

    async fn revoke(&self, req: MembershipChange) -> Result<BatchOutcome> {
        self.membership(req, false)
    }

    async fn create_entitlement(&self, entitlement: &Entitlement) -> Result<Entitlement> {
        let op = Operation::CreateEntitlement;
        if !self.limits.create_entitlement {
            return Err(Error::unsupported(op));
        }
        self.admit(true).map_err(|e| e.with_operation(op))?;
        {
            let mut inner = self.lock();
            // Compared as the target compares logins (a directory's `cn`).
            let ci = self.limits.login_case_insensitive;
            if inner.state.entitlements.keys().any(|k| {
                if ci {
                    k.as_str().eq_ignore_ascii_case(entitlement.id.as_str())
                } else {
                    k == &entitlement.id
                }
            }) {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!("entitlement {} exists", entitlement.id),
                )
                .with_operation(op));
            }
            inner
                .state
                .entitlements
                .insert(entitlement.id.clone(), entitlement.clone());
        }
        self.persist()?;
        Ok(entitlement.clone())
    }

    async fn delete_entitlement(&self, id: &EntitlementId) -> Result<()> {
        let op = Operation::DeleteEntitlement;
        if !self.limits.create_entitlement {
            return Err(Error::unsupported(op));
        }
        self.admit(true).map_err(|e| e.with_operation(op))?;
        {
            let mut inner = self.lock();
            if inner.state.entitlements.remove(id).is_none() {
                return Err(Error::not_found(format!("no entitlement {id}")).with_operation(op));
            }
            // Its holders lose it.
            let holders: Vec<Account> = inner
                .state
                .accounts
                .values_mut()
                .filter_map(|a| a.entitlements.remove(id).then(|| a.clone()))
                .collect();
            for a in holders {
                inner.state.record(Change::Upserted(a));
            }
        }
        self.persist()
    }

    async fn changes_since(&self, token: Option<&str>) -> Result<ChangeSet> {
        let op = Operation::ChangesSince;
        self.admit(false).map_err(|e| e.with_operation(op))?;
        let inner = self.lock();
        let Some(token) = token else {
            return Ok(ChangeSet::new(
                Vec::new(),
                inner.state.seq.to_string(),
                false,
            ));
        };
        let since: u64 = token.parse().map_err(|_| {
            Error::invalid_input(
                "token",
                format!("`{token}` is not a token this target gave"),
            )
            .with_operation(op)
        })?;
        let max = self.limits.max_page_size.max(1);
        let pending: Vec<&(u64, Change)> =
            inner.state.log.iter().filter(|(s, _)| *s > since).collect();
        let more = pending.len() > max;
        let batch: Vec<&(u64, Change)> = pending.into_iter().take(max).collect();
        let next = batch.last().map_or(since, |(s, _)| *s);
        Ok(ChangeSet::new(
            batch.into_iter().map(|(_, c)| c.clone()).collect(),
            next.to_string(),
            more,
        ))
    }
}

/// A [`Clock`] tests move by hand.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += chrono::Duration::from_std(by).unwrap_or(chrono::Duration::zero());
    }

    /// Sets the clock.
    pub fn set(&self, to: DateTime<Utc>) {
        *self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
