//! The `Connector` trait and its request and response types.

use std::collections::BTreeSet;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::capabilities::Capabilities;
use crate::error::{Error, Operation, Result};
use crate::ids::{AccountId, EntitlementId};
use crate::model::{Account, Entitlement};
use crate::value::Attributes;

/// A request for one page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ListRequest {
    /// The cursor from the previous page's [`Page::next`]; `None` for the first page.
    pub cursor: Option<String>,
    /// Items wanted per page; the connector may return fewer (never more than
    /// [`Capabilities::max_page_size`]). `None` means the connector's default.
    pub page_size: Option<usize>,
    /// Only items whose attribute equals the value; names must be in
    /// [`Capabilities::filter_attributes`] (`login` is the login name).
    pub filter: Option<(String, String)>,
}

impl ListRequest {
    /// The first page, with the connector's default size.
    pub fn first() -> Self {
        Self::default()
    }

    /// The page after `cursor`.
    pub fn after(cursor: impl Into<String>) -> Self {
        ListRequest {
            cursor: Some(cursor.into()),
            ..Self::default()
        }
    }

    /// Sets the page size (builder style).
    pub fn with_page_size(mut self, size: usize) -> Self {
        self.page_size = Some(size);
        self
    }

    /// Sets an equality filter (builder style).
    pub fn with_filter(mut self, attribute: impl Into<String>, value: impl Into<String>) -> Self {
        self.filter = Some((attribute.into(), value.into()));
        self
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Page<T> {
    /// The items on this page.
    pub items: Vec<T>,
    /// The cursor for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// Most pages one listing follows: a million accounts at the smallest
/// useful page size of ten is 100,000 pages.
pub const MAX_PAGES: usize = 100_000;

/// Guards a pagination loop: a cursor the target gives twice (a loop in
/// its paging), or more than [`MAX_PAGES`] pages, ends the listing with an
/// error instead of looping for ever. Every loop over pages uses one.
#[derive(Debug, Default)]
pub struct PageGuard {
    seen: std::collections::HashSet<u64>,
}

impl PageGuard {
    /// A guard for one listing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `cursor`, the next page's, of the listing `what` (for the
    /// message): an error if it was given before or the budget is spent.
    pub fn next(&mut self, cursor: &str, what: &str) -> Result<()> {
        self.next_bytes(cursor.as_bytes(), what)
    }

    /// [`next`](Self::next) for a binary cursor (an LDAP paging cookie).
    pub fn next_bytes(&mut self, cursor: &[u8], what: &str) -> Result<()> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        if self.seen.len() >= MAX_PAGES {
            return Err(Error::new(
                crate::ErrorKind::Unexpected,
                format!(
                    "{what}: more than {MAX_PAGES} pages; stopped (is the target paging in a loop?)"
                ),
            ));
        }
        let h = BuildHasherDefault::<DefaultHasher>::default().hash_one(cursor);
        if !self.seen.insert(h) {
            let shown: String = String::from_utf8_lossy(cursor).chars().take(80).collect();
            return Err(Error::new(
                crate::ErrorKind::Unexpected,
                format!(
                    "{what}: the target gave the page cursor `{shown}` twice; the listing would never end"
                ),
            ));
        }
        Ok(())
    }
}

impl<T> Page<T> {
    /// A page with a cursor to the next one.
    pub fn new(items: Vec<T>, next: Option<String>) -> Self {
        Page { items, next }
    }

    /// The last page.
    pub fn last(items: Vec<T>) -> Self {
        Page { items, next: None }
    }
}

/// Create an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CreateAccount {
    /// The login name; the connector derives the target's id (a DN, a SCIM id) from it.
    pub login: String,
    /// Attributes in the model's names.
    pub attributes: Attributes,
    /// Whether the account starts enabled.
    pub enabled: bool,
    /// A token to keep with the account and return as
    /// [`Account::marker`](crate::Account), for a connector with
    /// [`Capabilities::create_marker`](crate::Capabilities) (others ignore
    /// it). The engine sets it to an id of this create, the same on every
    /// retry, so that after a lost reply it can tell the account it made
    /// from one someone else made with the same login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
    /// Attributes the policy marks secret (an initial password), kept apart
    /// so that they never show in `Debug` or serialised requests. A
    /// connector writes them with the others, on create only: the engine
    /// never compares or re-sets them later, since they cannot be read back.
    #[serde(skip)]
    pub secrets: crate::SecretAttributes,
}

impl CreateAccount {
    /// An enabled account with these attributes.
    pub fn new(login: impl Into<String>, attributes: Attributes) -> Self {
        CreateAccount {
            login: login.into(),
            attributes,
            enabled: true,
            marker: None,
            secrets: crate::SecretAttributes::new(),
        }
    }

    /// Asks the connector to keep `marker` with the account (builder style).
    pub fn with_marker(mut self, marker: impl Into<String>) -> Self {
        self.marker = Some(marker.into());
        self
    }
}

/// The change an update makes: only what differs, never a full replace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AttributeDelta {
    /// Attributes to set to a new value (added when absent).
    pub set: Attributes,
    /// Attributes to remove.
    pub remove: BTreeSet<String>,
    /// A new login name (a rename), when it changes.
    pub login: Option<String>,
}

impl AttributeDelta {
    /// Whether the delta changes nothing.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty() && self.login.is_none()
    }

    /// Sets one attribute (builder style).
    pub fn set(mut self, name: impl Into<String>, value: impl Into<crate::Value>) -> Self {
        self.set.insert(name.into(), value.into());
        self
    }

    /// Removes one attribute (builder style).
    pub fn remove(mut self, name: impl Into<String>) -> Self {
        self.remove.insert(name.into());
        self
    }

    /// Renames the login (builder style).
    pub fn rename(mut self, login: impl Into<String>) -> Self {
        self.login = Some(login.into());
        self
    }
}

/// Update an account by a delta.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UpdateAccount {
    /// The account.
    pub id: AccountId,
    /// What changes.
    pub delta: AttributeDelta,
    /// Secret attributes to set: only on an explicit reset (the engine
    /// never re-sets a secret on its own). Kept apart from the delta so
    /// that they never show in `Debug` or serialised requests.
    #[serde(skip)]
    pub secrets: crate::SecretAttributes,
}

impl UpdateAccount {
    /// Applies `delta` to account `id`.
    pub fn new(id: AccountId, delta: AttributeDelta) -> Self {
        UpdateAccount {
            id,
            delta,
            secrets: crate::SecretAttributes::new(),
        }
    }
}

/// Grant or revoke one entitlement for many accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MembershipChange {
    /// The entitlement.
    pub entitlement: EntitlementId,
    /// The accounts; may exceed [`Capabilities::max_batch`], in which case
    /// the connector splits the change into several requests.
    pub accounts: Vec<AccountId>,
}

impl MembershipChange {
    /// `entitlement` for `accounts`.
    pub fn new(entitlement: EntitlementId, accounts: Vec<AccountId>) -> Self {
        MembershipChange {
            entitlement,
            accounts,
        }
    }
}

/// One account a batch could not change, and why.
#[derive(Debug)]
#[non_exhaustive]
pub struct MemberFailure {
    /// The account.
    pub account: AccountId,
    /// Why.
    pub error: Error,
}

impl MemberFailure {
    /// A failure for `account`.
    pub fn new(account: AccountId, error: Error) -> Self {
        MemberFailure { account, error }
    }
}

/// The outcome of a batched grant or revoke: accounts not listed in
/// `failures` now have (grant) or lack (revoke) the entitlement.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct BatchOutcome {
    /// Accounts whose change failed.
    pub failures: Vec<MemberFailure>,
}

impl BatchOutcome {
    /// A batch where every account succeeded.
    pub fn ok() -> Self {
        Self::default()
    }

    /// Whether every account succeeded.
    pub fn is_ok(&self) -> bool {
        self.failures.is_empty()
    }
}

/// A change a target reports through [`Connector::changes_since`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Change {
    /// An account was created or changed; this is its state now.
    Upserted(Account),
    /// An account was deleted.
    Deleted(AccountId),
}

/// A page of incremental changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChangeSet {
    /// Changes since the token given, oldest first.
    pub changes: Vec<Change>,
    /// The token to pass next time (store it only once the changes are processed).
    pub token: String,
    /// Whether more changes wait: call again with `token` at once.
    pub more: bool,
}

impl ChangeSet {
    /// A change set.
    pub fn new(changes: Vec<Change>, token: impl Into<String>, more: bool) -> Self {
        ChangeSet {
            changes,
            token: token.into(),
            more,
        }
    }
}

/// A target system that holds accounts and entitlements: an LDAP directory,
/// a SCIM service, a cloud IAM.
///
/// The engine knows targets only through this trait, as `Arc<dyn Connector>`.
/// Every method takes a request struct, so options can grow without breaking
/// connectors.
///
/// # Contract
///
/// What every connector promises; `prov-testkit`'s conformance suite checks
/// each point against a live instance.
///
/// - **Capabilities are truthful.** [`capabilities`](Self::capabilities) says
///   which operations work. A call to an operation it does not offer returns
///   [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) (the default
///   method bodies do exactly that) and never panics.
/// - **Errors have the right kind.** A missing account is `NotFound`; creating
///   a login that exists is `AlreadyExists`; a refused value is `InvalidInput`
///   naming the field; throttling is `RateLimited` with the wait the target
///   asked for; a transient outage is `Unavailable` or `Timeout`. The engine
///   retries only retryable kinds, so a wrong kind means lost or endless work.
///   Keep the backend's own code and message in [`BackendDetail`](crate::BackendDetail).
/// - **Repeats are harmless.** Granting what an account already has, revoking
///   what it lacks, disabling a disabled account and enabling an enabled one
///   succeed and change nothing. The engine repeats operations after a crash.
/// - **Batches are split, not refused.** `grant` and `revoke` accept any
///   number of accounts and send at most [`Capabilities::max_batch`] per
///   request to the target. One account failing does not fail the others: it
///   is reported in [`BatchOutcome::failures`].
/// - **Updates are deltas.** `update_account` changes only the attributes in
///   the delta; attributes it does not name are left as they are.
/// - **Listings are complete and stable.** Following [`Page::next`] from the
///   first page visits every account exactly once when nothing changes
///   meanwhile.
/// - **Scope is kept.** A connector never reads or changes objects outside
///   what its configuration names (its base DN, its tenant, its account).
/// - **Secrets stay secret.** Credentials never appear in `Debug`, errors or logs.
///
/// # Implementing
///
/// Implement the required methods (listing, get, create, update, delete) and
/// [`capabilities`](Self::capabilities); override the optional ones your
/// target supports and say so in the capabilities. Keep a private error
/// enum and convert it to [`Error`] at the edge. Do not retry inside the
/// connector, and do not rate limit: the engine does both, from the
/// capabilities you publish. Then run `prov_testkit::conformance::run_all`
/// against a real instance of the target (or its emulator). `docs/` has a
/// connector guide.
///
/// ```
/// use prov_core::{async_trait, Account, AccountId, Capabilities, Connector, CreateAccount,
///     Error, ListRequest, Page, Result, UpdateAccount, AccountId as Id};
///
/// #[derive(Debug)]
/// struct ReadOnlyHr;
///
/// #[async_trait]
/// impl Connector for ReadOnlyHr {
///     fn capabilities(&self) -> Capabilities { Capabilities::default() }
///     async fn list_accounts(&self, _req: ListRequest) -> Result<Page<Account>> {
///         Ok(Page::last(vec![Account::new("u1", "ada")]))
///     }
///     async fn get_account(&self, id: &AccountId) -> Result<Account> {
///         Err(Error::not_found(format!("no account {id}")))
///     }
/// }
/// ```
#[async_trait]
pub trait Connector: Send + Sync {
    /// What this connector can do. Cheap; called often.
    fn capabilities(&self) -> Capabilities;

    /// Checks that the target is reachable and the credentials work.
    async fn check(&self) -> Result<()> {
        self.list_accounts(ListRequest::first().with_page_size(1))
            .await
            .map(|_| ())
    }

    /// What the connector noticed about the target and adapted to (a
    /// limit the target states stricter than its profile, a feature it
    /// does not offer), for `prov check` to show. Known once the connector
    /// has talked to the target (after [`check`](Self::check)). Default:
    /// none.
    fn notices(&self) -> Vec<String> {
        Vec::new()
    }

    /// One page of the accounts in scope, in a stable order.
    async fn list_accounts(&self, req: ListRequest) -> Result<Page<Account>>;

    /// One account by its id; `NotFound` when absent.
    async fn get_account(&self, id: &AccountId) -> Result<Account>;

    /// Creates an account and returns it as stored (with the target's id);
    /// `AlreadyExists` when the login is taken.
    async fn create_account(&self, _req: CreateAccount) -> Result<Account> {
        Err(Error::unsupported(Operation::CreateAccount))
    }

    /// Applies a delta; returns the account's id afterwards, which differs
    /// from the request's when a rename changed it (an LDAP DN).
    async fn update_account(&self, _req: UpdateAccount) -> Result<AccountId> {
        Err(Error::unsupported(Operation::UpdateAccount))
    }

    /// Enables or disables an account; repeating it is harmless.
    async fn set_enabled(&self, _id: &AccountId, _enabled: bool) -> Result<()> {
        Err(Error::unsupported(Operation::SetEnabled))
    }

    /// Deletes an account; `NotFound` when it is already gone.
    async fn delete_account(&self, _id: &AccountId) -> Result<()> {
        Err(Error::unsupported(Operation::DeleteAccount))
    }

    /// One page of the entitlements in scope.
    async fn list_entitlements(&self, _req: ListRequest) -> Result<Page<Entitlement>> {
        Err(Error::unsupported(Operation::ListEntitlements))
    }

    /// One page of the accounts holding an entitlement.
    async fn list_members(
        &self,
        _entitlement: &EntitlementId,
        _req: ListRequest,
    ) -> Result<Page<AccountId>> {
        Err(Error::unsupported(Operation::ListMembers))
    }

    /// Gives an entitlement to many accounts; holding it already is success.
    async fn grant(&self, _req: MembershipChange) -> Result<BatchOutcome> {
        Err(Error::unsupported(Operation::Grant))
    }

    /// Takes an entitlement from many accounts; lacking it already is success.
    async fn revoke(&self, _req: MembershipChange) -> Result<BatchOutcome> {
        Err(Error::unsupported(Operation::Revoke))
    }

    /// Creates an entitlement (a group) with `entitlement`'s id and
    /// display name, and no members; returns it as stored.
    /// `AlreadyExists` when the target has one with that id: the engine
    /// then never takes it for its own (it retires only what it created).
    async fn create_entitlement(&self, _entitlement: &Entitlement) -> Result<Entitlement> {
        Err(Error::unsupported(Operation::CreateEntitlement))
    }

    /// Deletes an entitlement; its holders lose it. `NotFound` when it is
    /// already gone. The engine calls it only for entitlements it created,
    /// after revoking them from their holders.
    async fn delete_entitlement(&self, _id: &EntitlementId) -> Result<()> {
        Err(Error::unsupported(Operation::DeleteEntitlement))
    }

    /// Changes since `token` (`None`: from now on, returning a first token
    /// and no changes). Offer it only where deletions are reported too: an
    /// account deleted is `Deleted`, an account renamed is `Upserted` under
    /// its new id (and, where the target can tell, `Deleted` under its old
    /// one when the id changed). A token another target, or another
    /// server of the same target, gave is `InvalidInput` (field `token`).
    async fn changes_since(&self, _token: Option<&str>) -> Result<ChangeSet> {
        Err(Error::unsupported(Operation::ChangesSince))
    }
}

/// Conveniences built on [`Connector`], for every connector.
#[async_trait]
pub trait ConnectorExt: Connector {
    /// Every account in scope, following pages to the end.
    async fn list_all_accounts(&self) -> Result<Vec<Account>> {
        let mut out = Vec::new();
        let mut req = ListRequest::first();
        let mut guard = PageGuard::new();
        loop {
            let page = self.list_accounts(req).await?;
            out.extend(page.items);
            match page.next {
                Some(cursor) => {
                    guard.next(&cursor, "listing accounts")?;
                    req = ListRequest::after(cursor);
                }
                None => return Ok(out),
            }
        }
    }

    /// The accounts whose login is `login` as the target compares logins
    /// (ignoring ASCII case when [`Capabilities::login_case_insensitive`],
    /// exactly otherwise), following pages to the end: filtered by the
    /// target when its capabilities list `login` among `filter_attributes`,
    /// otherwise by reading every account.
    async fn accounts_with_login(&self, login: &str) -> Result<Vec<Account>> {
        let caps = self.capabilities();
        accounts_matching(self, "login", login, |a| caps.same_login(&a.login, login)).await
    }

    /// The accounts whose attribute `attribute` equals `value` ignoring
    /// ASCII case (a number by its text), as correlation compares them,
    /// following pages to the end: filtered by the target when its
    /// capabilities list the attribute among `filter_attributes`, otherwise
    /// by reading every account. `login` is the login, compared as
    /// [`accounts_with_login`](Self::accounts_with_login) does.
    async fn accounts_where(&self, attribute: &str, value: &str) -> Result<Vec<Account>> {
        if attribute == "login" {
            return self.accounts_with_login(value).await;
        }
        accounts_matching(self, attribute, value, |a| {
            match a.attributes.get(attribute) {
                Some(crate::Value::String(s)) => s.eq_ignore_ascii_case(value),
                Some(crate::Value::Int(i)) => i.to_string() == value,
                _ => false,
            }
        })
        .await
    }

    /// Every entitlement in scope, following pages to the end.
    async fn list_all_entitlements(&self) -> Result<Vec<Entitlement>> {
        let mut out = Vec::new();
        let mut req = ListRequest::first();
        let mut guard = PageGuard::new();
        loop {
            let page = self.list_entitlements(req).await?;
            out.extend(page.items);
            match page.next {
                Some(cursor) => {
                    guard.next(&cursor, "listing entitlements")?;
                    req = ListRequest::after(cursor);
                }
                None => return Ok(out),
            }
        }
    }

    /// Every member of an entitlement, following pages to the end.
    async fn list_all_members(&self, entitlement: &EntitlementId) -> Result<Vec<AccountId>> {
        let mut out = Vec::new();
        let mut req = ListRequest::first();
        let mut guard = PageGuard::new();
        loop {
            let page = self.list_members(entitlement, req).await?;
            out.extend(page.items);
            match page.next {
                Some(cursor) => {
                    guard.next(&cursor, "listing members")?;
                    req = ListRequest::after(cursor);
                }
                None => return Ok(out),
            }
        }
    }
}

impl<C: Connector + ?Sized> ConnectorExt for C {}

/// The accounts `keep` accepts, following pages to the end under a
/// [`PageGuard`]: asked of the target with a filter `field = value` when
/// its capabilities list `field`, otherwise read whole (`keep` checks
/// either way, as a target's filter may compare more loosely).
async fn accounts_matching<C: Connector + ?Sized>(
    conn: &C,
    field: &str,
    value: &str,
    keep: impl Fn(&Account) -> bool + Send,
) -> Result<Vec<Account>> {
    let filtered = conn
        .capabilities()
        .filter_attributes
        .iter()
        .any(|a| a == field);
    let request = |req: ListRequest| {
        if filtered {
            req.with_filter(field, value)
        } else {
            req
        }
    };
    let mut req = request(ListRequest::first());
    let mut out = Vec::new();
    let mut guard = PageGuard::new();
    loop {
        let page = conn.list_accounts(req).await?;
        out.extend(page.items.into_iter().filter(|a| keep(a)));
        match page.next {
            Some(cursor) => {
                guard.next(&cursor, &format!("looking up accounts by {field}"))?;
                req = request(ListRequest::after(cursor));
            }
            None => return Ok(out),
        }
    }
}
