//! The conformance suite: the `Connector` contract as executable cases.
//!
//! Each case is a `pub async fn` taking the connector, a [`Namespace`] that
//! keeps its accounts apart from everything else on the target, and
//! [`SuiteOptions`]. Cases pick themselves from the connector's
//! [`Capabilities`]: an absent capability skips the case, and
//! [`unsupported_operations_say_so`] checks that the call answers
//! `Unsupported`. Every case deletes what it created.
//!
//! [`run_all`] runs every case and returns a [`Report`] that prints like a
//! test tool: a line per case and `N passed, N failed, N skipped`.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use prov_testkit::{MemoryConnector, conformance::{self, Namespace, SuiteOptions}};
//!
//! let target = MemoryConnector::new().with_entitlements(["staff"]);
//! let report = conformance::run_all(&target, &Namespace::new("doc"), &SuiteOptions::default()).await;
//! assert!(report.is_success(), "{report}");
//! # });
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use prov_core::{
    Account, AccountId, AttributeDelta, Attributes, Capabilities, Connector, ConnectorExt,
    CreateAccount, Entitlement, EntitlementId, ErrorKind, ListRequest, MembershipChange, Operation,
    UpdateAccount, Value,
};

/// A per-run prefix for every login the suite creates, so that runs never
/// collide with each other or with real accounts, and cleanup finds its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace(String);

impl Namespace {
    /// A namespace `prefix` plus the process id and time, unique per run.
    pub fn new(prefix: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        Namespace(format!("{prefix}{}x{nanos:x}", std::process::id()))
    }

    /// Exactly this prefix (for targets that restrict login characters or length).
    pub fn fixed(prefix: impl Into<String>) -> Self {
        Namespace(prefix.into())
    }

    /// The login for the suite's account `name` in this namespace.
    pub fn login(&self, name: &str) -> String {
        format!("{}-{name}", self.0)
    }

    /// Whether a login belongs to this namespace.
    pub fn owns(&self, login: &str) -> bool {
        login.starts_with(&format!("{}-", self.0))
    }
}

/// Builds the attributes of a test account from its login.
pub type AttributesFn = Arc<dyn Fn(&str) -> Attributes + Send + Sync>;

/// What the suite needs to know about a target.
#[derive(Clone)]
#[non_exhaustive]
pub struct SuiteOptions {
    /// Attributes a valid new account needs (an LDAP `inetOrgPerson` needs
    /// `cn` and `sn`). Default: `display_name` and `title`.
    pub attributes: AttributesFn,
    /// An attribute the update case sets to a new value.
    pub mutable_attribute: String,
    /// An attribute the update case removes (`None` to skip removal).
    pub removable_attribute: Option<String>,
    /// The entitlement the grant cases use; the first listed when `None`.
    pub entitlement: Option<EntitlementId>,
    /// Most accounts the batch case creates (it wants `max_batch + 2`).
    pub max_batch_accounts: usize,
}

impl Default for SuiteOptions {
    fn default() -> Self {
        SuiteOptions {
            attributes: Arc::new(|login: &str| {
                let mut a = Attributes::new();
                a.insert(
                    "display_name".to_owned(),
                    Value::from(format!("Test {login}")),
                );
                a.insert("title".to_owned(), Value::from("Tester"));
                a
            }),
            mutable_attribute: "display_name".to_owned(),
            removable_attribute: Some("title".to_owned()),
            entitlement: None,
            max_batch_accounts: 1100,
        }
    }
}

impl fmt::Debug for SuiteOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SuiteOptions")
            .field("mutable_attribute", &self.mutable_attribute)
            .field("removable_attribute", &self.removable_attribute)
            .field("entitlement", &self.entitlement)
            .field("max_batch_accounts", &self.max_batch_accounts)
            .finish_non_exhaustive()
    }
}

/// How one case went.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The connector kept the contract.
    Passed,
    /// It did not: what was called, with what, and what came back.
    Failed(Failure),
    /// A capability the case needs is absent.
    Skipped(String),
}

/// A contract violation, said so that the author knows what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Failure {
    /// The operation that misbehaved.
    pub operation: Operation,
    /// What it was given.
    pub input: String,
    /// What the contract expects.
    pub expected: String,
    /// What came back.
    pub got: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}({}): expected {}, got {}",
            self.operation, self.input, self.expected, self.got
        )
    }
}

type CaseResult = Result<(), Failure>;

fn fail(
    op: Operation,
    input: impl fmt::Display,
    expected: impl Into<String>,
    got: impl fmt::Display,
) -> Failure {
    Failure {
        operation: op,
        input: input.to_string(),
        expected: expected.into(),
        got: got.to_string(),
    }
}

/// Unwraps a call that must succeed.
fn ok<T>(op: Operation, input: impl fmt::Display, r: prov_core::Result<T>) -> Result<T, Failure> {
    r.map_err(|e| fail(op, input, "success", format!("error {e}")))
}

/// Checks that a call failed with `kind`.
fn expect_kind<T: fmt::Debug>(
    op: Operation,
    input: impl fmt::Display,
    r: prov_core::Result<T>,
    kind: ErrorKind,
) -> CaseResult {
    match r {
        Err(e) if e.kind() == kind => Ok(()),
        Err(e) => Err(fail(
            op,
            input,
            format!("a {kind} error"),
            format!("a {} error: {e}", e.kind()),
        )),
        Ok(v) => Err(fail(
            op,
            input,
            format!("a {kind} error"),
            format!("success: {v:?}"),
        )),
    }
}

/// The result of a whole run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Each case's name and outcome, in run order.
    pub cases: Vec<(&'static str, Outcome)>,
}

impl Report {
    /// Cases that passed.
    pub fn passed(&self) -> usize {
        self.cases
            .iter()
            .filter(|(_, o)| *o == Outcome::Passed)
            .count()
    }

    /// Cases that failed.
    pub fn failed(&self) -> usize {
        self.cases
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
            .count()
    }

    /// Cases skipped for an absent capability.
    pub fn skipped(&self) -> usize {
        self.cases
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Skipped(_)))
            .count()
    }

    /// Whether no case failed.
    pub fn is_success(&self) -> bool {
        self.failed() == 0
    }

    /// The outcome of the case called `name`.
    pub fn outcome(&self, name: &str) -> Option<&Outcome> {
        self.cases.iter().find(|(n, _)| *n == name).map(|(_, o)| o)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, outcome) in &self.cases {
            match outcome {
                Outcome::Passed => writeln!(f, "PASS {name}")?,
                Outcome::Failed(why) => writeln!(f, "FAIL {name}: {why}")?,
                Outcome::Skipped(why) => writeln!(f, "SKIP {name}: {why}")?,
            }
        }
        write!(
            f,
            "{} passed, {} failed, {} skipped",
            self.passed(),
            self.failed(),
            self.skipped()
        )
    }
}

/// The suite's context: creates accounts and remembers them for cleanup.
struct Ctx<'a> {
    conn: &'a dyn Connector,
    ns: &'a Namespace,
    opts: &'a SuiteOptions,
    caps: Capabilities,
}

impl<'a> Ctx<'a> {
    fn new(conn: &'a dyn Connector, ns: &'a Namespace, opts: &'a SuiteOptions) -> Self {
        Ctx {
            conn,
            ns,
            opts,
            caps: conn.capabilities(),
        }
    }

    async fn create(&self, name: &str) -> Result<Account, Failure> {
        let login = self.ns.login(name);
        let req = CreateAccount::new(login.clone(), (self.opts.attributes)(&login));
        let acct = ok(
            Operation::CreateAccount,
            &login,
            self.conn.create_account(req).await,
        )?;
        if acct.login != login {
            return Err(fail(
                Operation::CreateAccount,
                &login,
                format!("an account with login {login}"),
                format!("login {}", acct.login),
            ));
        }
        Ok(acct)
    }

    /// Deletes accounts, ignoring ones already gone.
    async fn remove(&self, ids: impl IntoIterator<Item = &AccountId>) -> CaseResult {
        for id in ids {
            match self.conn.delete_account(id).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(fail(
                        Operation::DeleteAccount,
                        id,
                        "success or not_found",
                        format!("error {e}"),
                    ));
                }
            }
        }
        Ok(())
    }

    async fn entitlement(&self) -> Result<EntitlementId, String> {
        if let Some(e) = &self.opts.entitlement {
            return Ok(e.clone());
        }
        if !self.caps.list_entitlements {
            return Err(
                "no entitlement given in SuiteOptions and list_entitlements is unsupported"
                    .to_owned(),
            );
        }
        let page = self
            .conn
            .list_entitlements(ListRequest::first().with_page_size(1))
            .await
            .map_err(|e| format!("list_entitlements failed: {e}"))?;
        page.items
            .into_iter()
            .next()
            .map(|e| e.id)
            .ok_or_else(|| "the target lists no entitlement to grant".to_owned())
    }

    /// The members of `ent` among `ids`, by whatever means the connector offers.
    async fn holders(
        &self,
        ent: &EntitlementId,
        ids: &[AccountId],
    ) -> Result<Option<BTreeSet<AccountId>>, Failure> {
        if self.caps.list_members {
            let all = ok(
                Operation::ListMembers,
                ent,
                self.conn.list_all_members(ent).await,
            )?;
            let wanted: BTreeSet<&AccountId> = ids.iter().collect();
            return Ok(Some(
                all.into_iter().filter(|a| wanted.contains(a)).collect(),
            ));
        }
        if self.caps.lists_memberships {
            let mut out = BTreeSet::new();
            for id in ids {
                let acct = ok(Operation::GetAccount, id, self.conn.get_account(id).await)?;
                if acct.entitlements.contains(ent) {
                    out.insert(id.clone());
                }
            }
            return Ok(Some(out));
        }
        Ok(None)
    }
}

macro_rules! need {
    ($ctx:expr, $($cap:ident),+) => {
        $(if !$ctx.caps.$cap {
            return Outcome::Skipped(format!("capability `{}` is absent", stringify!($cap)));
        })+
    };
}

/// Runs a case body, then deletes the accounts it created whatever happened.
async fn with_accounts<'a, F, Fut>(ctx: &Ctx<'a>, names: &[&str], body: F) -> Outcome
where
    F: FnOnce(Vec<Account>) -> Fut,
    Fut: std::future::Future<Output = CaseResult>,
{
    let mut made = Vec::new();
    for name in names {
        match ctx.create(name).await {
            Ok(a) => made.push(a),
            Err(f) => {
                let _ = ctx.remove(made.iter().map(|a| &a.id)).await;
                return Outcome::Failed(f);
            }
        }
    }
    let ids: Vec<AccountId> = made.iter().map(|a| a.id.clone()).collect();
    let result = body(made).await;
    let cleanup = ctx.remove(&ids).await;
    match result.and(cleanup) {
        Ok(()) => Outcome::Passed,
        Err(f) => Outcome::Failed(f),
    }
}

/// Create an account, read it back, delete it; reading or deleting it again is `NotFound`.
pub async fn create_get_delete(
    conn: &dyn Connector,
    ns: &Namespace,
    opts: &SuiteOptions,
) -> Outcome {
    let ctx = &Ctx::new(conn, ns, opts);
    need!(ctx, create, delete);
    let acct = match ctx.create("basic").await {
        Ok(a) => a,
        Err(f) => return Outcome::Failed(f),
    };
    let r: CaseResult = async {
        let got = ok(
            Operation::GetAccount,
            &acct.id,
            conn.get_account(&acct.id).await,
        )?;
        if got.login != acct.login {
            return Err(fail(
                Operation::GetAccount,
                &acct.id,
                format!("login {}", acct.login),
                format!("login {}", got.login),
            ));
        }
        let want = (opts.attributes)(&acct.login);
        for (k, v) in &want {
            if got.attributes.get(k) != Some(v) {
                return Err(fail(
                    Operation::GetAccount,
                    &acct.id,
                    format!("attribute {k} = {v}"),
                    format!("{:?}", got.attributes.get(k)),
                ));
            }
        }
        if !got.enabled {
            return Err(fail(
                Operation::GetAccount,
                &acct.id,
                "a new account to be enabled",
                "disabled",
            ));
        }
        ok(
            Operation::DeleteAccount,
            &acct.id,
            conn.delete_account(&acct.id).await,
        )?;
        expect_kind(
            Operation::GetAccount,
            &acct.id,
            conn.get_account(&acct.id).await,
            ErrorKind::NotFound,
        )?;
        expect_kind(
            Operation::DeleteAccount,
            &acct.id,
            conn.delete_account(&acct.id).await,
            ErrorKind::NotFound,
        )
    }
    .await;
    let _ = ctx.remove([&acct.id]).await;
    match r {
        Ok(()) => Outcome::Passed,
        Err(f) => Outcome::Failed(f),
    }
}

/// A create of `login` answers `AlreadyExists` (an account it makes anyway
/// is deleted again).
async fn taken(conn: &dyn Connector, opts: &SuiteOptions, login: &str) -> CaseResult {
    let again = conn
        .create_account(CreateAccount::new(login, (opts.attributes)(login)))
        .await;
    if let Ok(second) = &again {
        let _ = conn.delete_account(&second.id).await;
    }
    expect_kind(
        Operation::CreateAccount,
        login,
        again,
        ErrorKind::AlreadyExists,
    )
}

/// Creating a login that exists is `AlreadyExists`, and leaves the first account alone.
pub async fn duplicate_create_is_already_exists(
    conn: &dyn Connector,
    ns: &Namespace,
    opts: &SuiteOptions,
) -> Outcome {
    let ctx = &Ctx::new(conn, ns, opts);
    need!(ctx, create, delete);
    with_accounts(ctx, &["dup"], |made| async move {
        taken(conn, opts, &ns.login("dup")).await?;
        let first = &made[0];
        ok(
            Operation::GetAccount,
            &first.id,
            conn.get_account(&first.id).await,
        )
        .map(|_| ())
    })
    .await
}

/// Logins compare as [`Capabilities::login_case_insensitive`] says: on a
/// target that ignores case, the login in other case finds the account
/// (`accounts_with_login`) and a create of it is `AlreadyExists`; on one
/// that does not, it finds nothing.
pub async fn logins_compare_as_capabilities_say(
    conn: &dyn Connector,
    ns: &Namespace,
    opts: &SuiteOptions,
) -> Outcome {
    let ctx = &Ctx::new(conn, ns, opts);
    need!(ctx, create, delete);
    let fold = ctx.caps.login_case_insensitive;
    with_accounts(ctx, &["case"], |made| async move {
        let first = &made[0];
        let other = first.login.to_ascii_uppercase();
        let found = ok(
            Operation::ListAccounts,
            &other,
            conn.accounts_with_login(&other).await,
        )?;
        let ids: Vec<&AccountId> = found.iter().map(|a| &a.id).collect();
        let want: Vec<&AccountId> = if fold { vec![&first.id] } else { vec![] };
        if ids != want {
            return Err(fail(
                Operation::ListAccounts,
                &other,
                format!("accounts {want:?} (login_case_insensitive = {fold})"),
                format!("{ids:?}"),
            ));
        }
        if fold {
            taken(conn, opts, &other).await?;
        }
        Ok(())
    })
    .await
}

/// A create's marker comes back with the account from `create_account`,
/// `get_account` and `list_accounts`; an account created without one has none.
pub async fn create_marker_is_kept(
    conn: &dyn Connector,
    ns: &Namespace,
    opts: &SuiteOptions,
) -> Outcome {
    let ctx = &Ctx::new(conn, ns, opts);
    need!(ctx, create, delete, create_marker);
    let login = ns.login("marked");
    let marker = format!("prov-conformance:{login}");
    let req = CreateAccount::new(login.clone(), (opts.attributes)(&login)).with_marker(&marker);
    let made = match ok(
        Operation::CreateAccount,
        &login,
        conn.create_account(req).await,
    ) {
        Ok(a) => a,
        Err(f) => return Outcome::Failed(f),
    };
    let r: CaseResult = async {
        let want = Some(marker.clone());
        let check = |op: Operation, got: &Account| {
            if got.marker == want {
                Ok(())
            } else {
                Err(fail(
                    op,
                    &made.id,
                    format!("marker {marker}"),
                    format!("{:?}", got.marker),
                ))
            }
        };
        check(Operation::CreateAccount, &made)?;
        let got = ok(
            Operation::GetAccount,
            &made.id,
            conn.get_account(&made.id).await,
        )?;
        check(Operation::GetAccount, &got)?;
        let listed = ok(
            Operation::ListAccounts,
            &login,
            conn.accounts_with_login(&login).await,
        )?;
        match listed.iter().find(|a| a.id == made.id) {
            Some(a) => check(Operation::ListAccounts, a)?,
            None => {
                return Err(fail(
                    Operation::ListAccounts,
                    &login,
                    "the account in the listing",
                    "absent",
                ));
            }
        }
        let second = with_accounts(ctx, &["unmarked"], |plain| async move {
            let got = ok(
                Operation::GetAccount,
                &plain[0].id,
                conn.get_account(&plain[0].id).await,
            )?;
            match got.marker {
                None => Ok(()),
                Some(m) => Err(fail(
                    Operation::GetAccount,
                    &plain[0].id,
                    "no marker on an account created without one",
                    format!("marker {m}"),
                )),
            }
        })
        .await;
        match second {
            Outcome::Failed(f) => Err(f),
            Outcome::Passed | Outcome::Skipped(_) => Ok(()),
        }
    }
    .await;
    let _ = ctx.remove([&made.id]).await;
    match r {
        Ok(()) => Outcome::Passed,
        Err(f) => Outcome::Failed(f),
    }
}

/// Reading, disabling, updating or deleting an account that does not exist is `NotFound`.
pub async fn missing_account_is_not_found(
    conn: &dyn Connector,
    ns: &Namespace,
    opts: &SuiteOptions,
) -> Outcome {
    let ctx = &Ctx::new(conn, ns, opts);
    need!(ctx, create, delete);
    // An id the target gave out and then forgot: the most realistic "missing" id.
    let acct = match ctx.create("ghost").await {
        Ok(a) => a,
        Err(f) => return Outcome::Failed(f),
    };
    if let Err(f) = ctx.remove([&acct.id]).await {
        return Outcome::Failed(f);
    }
    let id = acct.id;
    let r: CaseResult = async {
        expect_kind(
            Operation::GetAccount,
            &id,
            conn.get_account(&id).await,
            ErrorKind::NotFound,
        )?;
        if ctx.caps.disable {
            expect_kind(
                Operation::SetEnabled,
                &id,
                conn.set_enabled(&id, false).await,
                ErrorKind::NotFound,
            )?;
        }
        if ctx.caps.update {
            let delta = AttributeDelta::default().set(opts.mutable_attribute.clone(), "x");
            expect_kind(
                Operation::UpdateAccount,
                &id,
                conn.update_account(UpdateAccount::new(id.clone(), delta))
                    .await,
                ErrorKind::NotFound,
            )?;
        }
        expect_kind(
            Operation::DeleteAccount,
            &id,
            conn.delete_account(&id).await,
            ErrorKind::NotFound,
        )
    }
    .await;
    match r {
        Ok(()) => Outcome::Passed,
        Err(f) => Outcome::Failed(f),
    }
}

/// An update changes what the delta names and nothing else.
pub async fn update_is_a_delta(
    conn: &dyn Connector,
    ns: &Namespace,
    opts: &SuiteOptions,
) -> Outcome {
    let ctx = &Ctx::new(conn, ns, opts);
    need!(ctx, create, delete, update);
    with_accounts(ctx, &["upd"], |made| async move {
        let acct = &made[0];
        let before = ok(
            Operation::GetAccount,
            &acct.id,
            conn.get_account(&acct.id).await,
        )?;
        let attr = &opts.mutable_attribute;
        let delta = AttributeDelta::default().set(attr.clone(), "Changed Name");
        let input = format!("{} set {attr}", acct.id);
        let id = ok(
            Operation::UpdateAccount,
            &input,
            conn.update_account(UpdateAccount::new(acct.id.clone(), delta.clone()))
                .await,
        )?;
        let after = ok(Operation::GetAccount, &id, conn.get_account(&id).await)?;
        if after.attributes.get(attr) != Some(&Value::from("Changed Name")) {
            return Err(fail(
                Operation::UpdateAccount,
                &input,
                format!("{attr} = Changed Name"),
                format!("{:?}", after.attributes.get(attr)),
            ));
        }
        for (k, v) in &before.attributes {
            if k != attr && after.attributes.get(k) != Some(v) {
                return Err(fail(
                    Operation::UpdateAccount,
                    &input,
                    format!("{k} left as {v} (updates are deltas)"),
                    format!("{:?}", after.attributes.get(k)),
                ));
            }
        }
        // Repeating the same update is harmless.
        ok(
            Operation::UpdateAccount,
            &input,
            conn.update_account(UpdateAccount::new(id.clone(), delta))
                .await,
        )?;
        if let Some(gone) = &opts.removable_attribute {
            let input = format!("{id} remove {gone}");
            let delta = AttributeDelta::default().remove(gone.clone());
            ok(
                Operation::UpdateAccount,
                &input,
                conn.update_account(UpdateAccount::new(id.clone(), delta))
                    .await,
            )?;
            let after = ok(Operation::GetAccount, &id, conn.get_account(&id).await)?;
            if let Some(v) = after.attributes.get(gone) {
                return Err(fail(
                    Operation::UpdateAccount,
                    &input,
                    format!("{gone} removed"),
                    format!("{gone} = {v}"),
                ));
            }
        }
        ctx.remove([&id]).await
    })
    .await
}

/// A login change renames the account; the new id (if it changed) reads back.
pub async fn rename_changes_the_login(
    conn: &dyn Connector,
    ns: &Namespace,
    opts: &SuiteOptions,
) -> Outcome {
    let ctx = &Ctx::new(conn, ns, opts);
    need!(ctx, create, delete, update, rename);
    with_accounts(ctx, &["old"], |made| async move {
        let acct = &made[0];
        let new_login = ns.login("new");
        let input = format!("{} rename to {new_login}", acct.id);
        let delta = AttributeDelta::default().rename(new_login.clone());
        let id = ok(
            Operation::UpdateAccount,
            &input,
            conn.update_account(UpdateAccount::new(acct.id.clone(), delta))
                .await,
        )?;
        let after = ok(Operation::GetAccount, &id, conn.get_account(&id).await);
        let cleanup = ctx.remove([&id]).await;
        let after = after?;
        cleanup?;
        if after.login != new_login {
            return Err(fail(
                Operation::UpdateAccount,
                &input,
                format!("login {new_login}"),
                format!("login {}", after.login),
            ));
        }
        Ok(())
    })
    .await
}

/// Disable and enable take effect and are harmless to repeat.
pub async fn disable_enable_are_idempotent(
    conn: &dyn Connector,
    ns: &Namespace,
    opts: &SuiteOptions,
) -> Outcome {
    let ctx = &Ctx::new(conn, ns, opts);
    need!(ctx, create, delete, disable);
    with_accounts(ctx, &["dis"], |made| async move {
        let id = &made[0].id;
        for enabled in [false, false, true, true] {
            let input = format!("{id}, {enabled}");
            ok(
                Operation::SetEnabled,
                &input,
                conn.set_enabled(id, enabled).await,
            )?;
            let got = ok(Operation::GetAccount, id, conn.get_account(id).await)?;
            if got.enabled != enabled {
                return Err(fail(
                    Operation::SetEnabled,
                    &input,
                    format!("enabled = {enabled}"),
                    format!("enabled = {}", got.enabled),
                ));
            }
        }
        Ok(())
    })
    .await
}

/// Following pages visits every account exactly once.
pub async fn listing_pages_visit_each_account_once(
    conn: &dyn Connector,
    ns: &Namespace,
    opts: &SuiteOptions,
) -> Outcome {
    let ctx = &Ctx::new(conn, ns, opts);
    need!(ctx, create, delete);
    let names = ["p1", "p2", "p3", "p4", "p5"];
    with_accounts(ctx, &names, |made| async move {
        let mut seen: Vec<AccountId> = Vec::new();
        let mut req = ListRequest::first().with_page_size(2);
        let mut pages = 0usize;
        loop {
            let input = format!("page_size 2, cursor {:?}", req.cursor);
            let page = ok(
                Operation::ListAccounts,
                &input,
                conn.list_accounts(req).await,
            )?;
            pages += 1;
            if page.items.len() > 2 {
                return Err(fail(
                    Operation::ListAccounts,
                    &input,
                    "at most 2 items",
                    format!("{} items", page.items.len()),
                ));
            }
            seen.extend(
                page.items
                    .into_iter()
                    .filter(|a| ns.owns(&a.login))
                    .map(|a| a.id),
            );
            match page.next {
                Some(c) => req = ListRequest::after(c).with_page_size(2),
                None => break,
            }
            if pages > 100_000 {
                return Err(fail(
                    Operation::ListAccounts,
                    &input,
                    "the listing to end",
                    "more than 100000 pages",
                ));
            }
        }
        let unique: BTreeSet<&AccountId> = seen.iter().collect();
        if unique.len() != seen.len() {
            return Err(fail(
                Operation::ListAccounts,
                "page_size 2",
                "each account once",
                format!("duplicates among {seen:?}"),
            ));
        }
        let want: BTreeSet<&AccountId> = made.iter().map(|a| &a.id).collect();
        if unique != want {
            return Err(fail(
                Operation::ListAccounts,
                "page_size 2",
                format!("the {} accounts created", want.len()),
                format!("{unique:?}"),
            ));
        }
        Ok(())
    })
    .await
}

/// Grant and revoke a batch larger than the connector's limit; repeats are harmless.
pub async fn grant_revoke_in_batches(
    conn: &dyn Connector,
    ns: &Namespace,
    opts: &SuiteOptions,
) -> Outcome {
    let ctx = &Ctx::new(conn, ns, opts);
    need!(ctx, create, delete, grant_revoke);
    let ent = match ctx.entitlement().await {
        Ok(e) => e,
        Err(why) => return Outcome::Skipped(why),
    };
    let n = (ctx.caps.max_batch + 2).min(opts.max_batch_accounts).max(2);
    let names: Vec<String> = (0..n).map(|i| format!("b{i:04}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let ent2 = ent.clone();
    with_accounts(ctx, &refs, |made| async move {
        let ent = ent2;
        let ids: Vec<AccountId> = made.iter().map(|a| a.id.clone()).collect();
        let input = format!(
            "{ent}, {} accounts (max_batch {})",
            ids.len(),
            ctx.caps.max_batch
        );
        for (op, round) in [
            (Operation::Grant, 1),
            (Operation::Grant, 2),
            (Operation::Revoke, 1),
            (Operation::Revoke, 2),
        ] {
            let change = MembershipChange::new(ent.clone(), ids.clone());
            let res = if op == Operation::Grant {
                conn.grant(change).await
            } else {
                conn.revoke(change).await
            };
            let what = if round == 1 {
                "success"
            } else {
                "success on a repeat (idempotent)"
            };
            let outcome = res.map_err(|e| fail(op, &input, what, format!("error {e}")))?;
            if let Some(f) = outcome.failures.first() {
                return Err(fail(
                    op,
                    &input,
                    what,
                    format!(
                        "{} failed accounts, first {}: {}",
                        outcome.failures.len(),
                        f.account,
                        f.error
                    ),
                ));
            }
            if let Some(holders) = ctx.holders(&ent, &ids).await? {
                let want = if op == Operation::Grant { ids.len() } else { 0 };
                if holders.len() != want {
                    return Err(fail(
                        op,
                        &input,
                        format!("{want} of the accounts to hold {ent}"),
                        format!("{} do", holders.len()),
                    ));
                }
            }
        }
        Ok(())
    })
    .await
}

/// One missing account in a batch fails alone; the others are granted.
pub async fn batch_failures_are_per_account(
    conn: &dyn Connector,
    ns: &Namespace,
    opts: &SuiteOptions,
) -> Outcome {
    let ctx = &Ctx::new(conn, ns, opts);
    need!(ctx, create, delete, grant_revoke);
    let ent = match ctx.entitlement().await {
        Ok(e) => e,
        Err(why) => return Outcome::Skipped(why),
    };
    with_accounts(ctx, &["live", "gone"], |made| async move {
        let live = made[0].id.clone();
        let gone = made[1].id.clone();
        ctx.remove([&gone]).await?;
        let input = format!("{ent}, [{live}, {gone} (deleted)]");
        let change = MembershipChange::new(ent.clone(), vec![live.clone(), gone.clone()]);
        match conn.grant(change).await {
            Ok(outcome) => {
                let failed: Vec<&AccountId> = outcome.failures.iter().map(|f| &f.account).collect();
                if failed != [&gone] {
                    return Err(fail(
                        Operation::Grant,
                        &input,
                        format!("exactly {gone} in failures"),
                        format!("{failed:?}"),
                    ));
                }
                if let Some(f) = outcome.failures.first()
                    && f.error.kind() != ErrorKind::NotFound
                {
                    return Err(fail(
                        Operation::Grant,
                        &input,
                        "the failure to be not_found",
                        f.error.to_string(),
                    ));
                }
            }
            Err(e) => {
                return Err(fail(
                    Operation::Grant,
                    &input,
                    "a per-account failure, not a failed batch",
                    format!("error {e}"),
                ));
            }
        }
        if let Some(holders) = ctx.holders(&ent, std::slice::from_ref(&live)).await?
            && !holders.contains(&live)
        {
            return Err(fail(
                Operation::Grant,
                &input,
                format!("{live} to hold {ent}"),
                "it does not",
            ));
        }
        Ok(())
    })
    .await
}

/// Operations the capabilities leave out answer `Unsupported`.
pub async fn unsupported_operations_say_so(
    conn: &dyn Connector,
    _ns: &Namespace,
    _opts: &SuiteOptions,
) -> Outcome {
    let caps = conn.capabilities();
    let id = AccountId::new("prov-conformance-no-such-account");
    let ent = EntitlementId::new("prov-conformance-no-such-entitlement");
    let mut checked = 0;
    // Each call is made only when its capability is absent: on a connector
    // that supports it, the call would really create or delete something.
    macro_rules! check {
        ($op:expr, $supported:expr, $call:expr) => {
            if !$supported {
                checked += 1;
                match $call.await.map(|_| ()) {
                    Err(e) if e.kind() == ErrorKind::Unsupported => {}
                    Err(e) => {
                        return Outcome::Failed(fail(
                            $op,
                            "(capability absent)",
                            "an unsupported error",
                            format!("a {} error: {e}", e.kind()),
                        ));
                    }
                    Ok(()) => {
                        return Outcome::Failed(fail(
                            $op,
                            "(capability absent)",
                            "an unsupported error",
                            "success",
                        ));
                    }
                }
            }
        };
    }
    check!(
        Operation::CreateAccount,
        caps.create,
        conn.create_account(CreateAccount::new(
            "prov-conformance-unsupported",
            Attributes::new()
        ))
    );
    check!(
        Operation::UpdateAccount,
        caps.update,
        conn.update_account(UpdateAccount::new(
            id.clone(),
            AttributeDelta::default().set("x", "y")
        ))
    );
    check!(
        Operation::SetEnabled,
        caps.disable,
        conn.set_enabled(&id, false)
    );
    check!(
        Operation::DeleteAccount,
        caps.delete,
        conn.delete_account(&id)
    );
    check!(
        Operation::ListEntitlements,
        caps.list_entitlements,
        conn.list_entitlements(ListRequest::first())
    );
    check!(
        Operation::ListMembers,
        caps.list_members,
        conn.list_members(&ent, ListRequest::first())
    );
    check!(
        Operation::Grant,
        caps.grant_revoke,
        conn.grant(MembershipChange::new(ent.clone(), vec![id.clone()]))
    );
    check!(
        Operation::Revoke,
        caps.grant_revoke,
        conn.revoke(MembershipChange::new(ent.clone(), vec![id.clone()]))
    );
    check!(
        Operation::ChangesSince,
        caps.changes_since,
        conn.changes_since(None)
    );
    check!(
        Operation::CreateEntitlement,
        caps.create_entitlement,
        conn.create_entitlement(&Entitlement::group(ent.clone()))
    );
    check!(
        Operation::DeleteEntitlement,
        caps.create_entitlement,
        conn.delete_entitlement(&ent)
    );
    if checked == 0 {
        Outcome::Skipped("every operation is supported".to_owned())
    } else {
        Outcome::Passed
    }
}

/// Every change since `token`, page after page, and the token after the last.
async fn drain_changes(
    conn: &dyn Connector,
    mut token: String,
) -> Result<(Vec<prov_core::Change>, String), Failure> {
    let mut all = Vec::new();
    for _ in 0..10_000 {
        let set = ok(
            Operation::ChangesSince,
            &token,
            conn.changes_since(Some(&token)).await,
        )?;
        all.extend(set.changes);
        token = set.token;
        if !set.more {
            return Ok((all, token));
        }
    }
    Err(fail(
        Operation::ChangesSince,
        &token,
        "more: false within 10,000 calls",
        "more: true every time",
    ))
}

/// The last change `changes` report about `id`.
fn last_about<'c>(
    changes: &'c [prov_core::Change],
    id: &AccountId,
) -> Option<&'c prov_core::Change> {
    changes.iter().rev().find(|c| match c {
        prov_core::Change::Upserted(a) => &a.id == id,
        prov_core::Change::Deleted(d) => d == id,
        _ => false,
    })
}

/// `changes_since` tells the truth about what happened after the token
/// was taken: an account created, changed and renamed is last reported
/// as it is now (under its new id; its old id, if the rename changed it,
/// last as deleted or not at all), an account deleted is last reported
/// deleted, and the token it ends with reports none of them again.
pub async fn changes_since_reports_every_change(
    conn: &dyn Connector,
    ns: &Namespace,
    opts: &SuiteOptions,
) -> Outcome {
    let ctx = &Ctx::new(conn, ns, opts);
    need!(ctx, create, delete, changes_since);
    let start = match conn.changes_since(None).await {
        Ok(c) => c.token,
        Err(e) => {
            return Outcome::Failed(fail(
                Operation::ChangesSince,
                "None",
                "a first token",
                format!("error {e}"),
            ));
        }
    };
    let caps = ctx.caps.clone();
    with_accounts(ctx, &["chg-gone", "chg-kept"], |made| async move {
        let (gone, kept) = (&made[0], &made[1]);
        let attr = &opts.mutable_attribute;
        let mut id = kept.id.clone();
        if caps.update {
            let delta = AttributeDelta::default().set(attr.clone(), "Changed Name");
            id = ok(
                Operation::UpdateAccount,
                format!("{id} set {attr}"),
                conn.update_account(UpdateAccount::new(id.clone(), delta))
                    .await,
            )?;
        }
        let new_login = ns.login("chg-moved");
        if caps.update && caps.rename {
            let delta = AttributeDelta::default().rename(new_login.clone());
            id = ok(
                Operation::UpdateAccount,
                format!("{id} rename to {new_login}"),
                conn.update_account(UpdateAccount::new(id.clone(), delta))
                    .await,
            )?;
        }
        ok(
            Operation::DeleteAccount,
            &gone.id,
            conn.delete_account(&gone.id).await,
        )?;
        let checked = async {
            let (changes, end) = drain_changes(conn, start).await?;
            let what = "the changes since the token taken before";
            match last_about(&changes, &gone.id) {
                Some(prov_core::Change::Deleted(_)) => {}
                other => {
                    return Err(fail(
                        Operation::ChangesSince,
                        what,
                        format!("{} last reported deleted", gone.id),
                        format!("{other:?}"),
                    ));
                }
            }
            match last_about(&changes, &id) {
                Some(prov_core::Change::Upserted(a))
                    if (!caps.rename || a.login == new_login)
                        && (!caps.update
                            || a.attributes.get(attr) == Some(&Value::from("Changed Name"))) => {}
                other => {
                    return Err(fail(
                        Operation::ChangesSince,
                        what,
                        format!(
                            "{id} last reported as it is now (login {}, {attr} Changed Name)",
                            if caps.rename { &new_login } else { &kept.login }
                        ),
                        format!("{other:?}"),
                    ));
                }
            }
            if id != kept.id
                && let Some(c @ prov_core::Change::Upserted(_)) = last_about(&changes, &kept.id)
            {
                return Err(fail(
                    Operation::ChangesSince,
                    what,
                    format!(
                        "{} (renamed away) last reported deleted, or not at all",
                        kept.id
                    ),
                    format!("{c:?}"),
                ));
            }
            let (again, _) = drain_changes(conn, end.clone()).await?;
            for x in [&gone.id, &kept.id, &id] {
                if let Some(c) = last_about(&again, x) {
                    return Err(fail(
                        Operation::ChangesSince,
                        &end,
                        format!("nothing more about {x}"),
                        format!("{c:?}"),
                    ));
                }
            }
            Ok(())
        }
        .await;
        let cleanup = ctx.remove([&id]).await;
        checked.and(cleanup)
    })
    .await
}

/// An entitlement made by `create_entitlement` is listed, can be granted
/// and revoked, and is gone after `delete_entitlement`; creating it twice
/// is `AlreadyExists`, deleting it twice is `NotFound`.
pub async fn entitlements_are_created_and_deleted(
    conn: &dyn Connector,
    ns: &Namespace,
    opts: &SuiteOptions,
) -> Outcome {
    let ctx = &Ctx::new(conn, ns, opts);
    need!(ctx, create_entitlement, list_entitlements);
    let id = EntitlementId::new(ns.login("grp"));
    let result = entitlement_lifecycle(ctx, &id).await;
    // Whatever happened, the group goes.
    let cleanup = match conn.delete_entitlement(&id).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(fail(
            Operation::DeleteEntitlement,
            &id,
            "success or not_found",
            format!("error {e}"),
        )),
    };
    match result.and(cleanup) {
        Ok(()) => Outcome::Passed,
        Err(f) => Outcome::Failed(f),
    }
}

async fn entitlement_lifecycle(ctx: &Ctx<'_>, id: &EntitlementId) -> CaseResult {
    let conn = ctx.conn;
    let same = |a: &EntitlementId| {
        if ctx.caps.login_case_insensitive {
            a.as_str().eq_ignore_ascii_case(id.as_str())
        } else {
            a == id
        }
    };
    let listed = || async {
        let all = ok(
            Operation::ListEntitlements,
            "all pages",
            conn.list_all_entitlements().await,
        )?;
        Ok::<bool, Failure>(all.iter().any(|e| same(&e.id)))
    };
    let op = Operation::CreateEntitlement;
    let made = ok(
        op,
        id,
        conn.create_entitlement(&Entitlement::group(id.clone()))
            .await,
    )?;
    if !same(&made.id) {
        return Err(fail(
            op,
            id,
            format!("an entitlement with id {id}"),
            format!("id {}", made.id),
        ));
    }
    expect_kind(
        op,
        format!("{id} again"),
        conn.create_entitlement(&Entitlement::group(id.clone()))
            .await,
        ErrorKind::AlreadyExists,
    )?;
    if !listed().await? {
        return Err(fail(
            Operation::ListEntitlements,
            "all pages, after the create",
            format!("{id} listed"),
            "not listed",
        ));
    }
    if ctx.caps.create && ctx.caps.delete && ctx.caps.grant_revoke {
        // Granted and revoked like any other: members can be added at once.
        let ent = &made.id;
        let outcome = with_accounts(ctx, &["grp-m"], |accts| async move {
            let ids = vec![accts[0].id.clone()];
            let change = || MembershipChange::new(ent.clone(), ids.clone());
            let out = ok(Operation::Grant, ent, conn.grant(change()).await)?;
            if !out.is_ok() {
                return Err(fail(
                    Operation::Grant,
                    ent,
                    "every member added",
                    format!("{:?}", out.failures),
                ));
            }
            if let Some(h) = ctx.holders(ent, &ids).await?
                && h.len() != 1
            {
                return Err(fail(
                    Operation::Grant,
                    ent,
                    "the new member listed",
                    format!("{h:?}"),
                ));
            }
            ok(Operation::Revoke, ent, conn.revoke(change()).await)?;
            Ok(())
        })
        .await;
        if let Outcome::Failed(f) = outcome {
            return Err(f);
        }
    }
    let op = Operation::DeleteEntitlement;
    ok(op, &made.id, conn.delete_entitlement(&made.id).await)?;
    if listed().await? {
        return Err(fail(
            Operation::ListEntitlements,
            "all pages, after the delete",
            format!("{id} not listed"),
            "still listed",
        ));
    }
    expect_kind(
        op,
        format!("{} again", made.id),
        conn.delete_entitlement(&made.id).await,
        ErrorKind::NotFound,
    )
}

/// Nothing the suite created is left on the target.
pub async fn suite_left_nothing_behind(
    conn: &dyn Connector,
    ns: &Namespace,
    _opts: &SuiteOptions,
) -> Outcome {
    let mut left: Vec<String> = match conn.list_all_accounts().await {
        Ok(all) => all
            .into_iter()
            .filter(|a| ns.owns(&a.login))
            .map(|a| a.login)
            .collect(),
        Err(e) => {
            return Outcome::Failed(fail(
                Operation::ListAccounts,
                "all pages",
                "success",
                format!("error {e}"),
            ));
        }
    };
    if conn.capabilities().list_entitlements {
        match conn.list_all_entitlements().await {
            Ok(all) => left.extend(
                all.into_iter()
                    .filter(|e| ns.owns(e.id.as_str()))
                    .map(|e| format!("entitlement {}", e.id)),
            ),
            Err(e) => {
                return Outcome::Failed(fail(
                    Operation::ListEntitlements,
                    "all pages",
                    "success",
                    format!("error {e}"),
                ));
            }
        }
    }
    if left.is_empty() {
        Outcome::Passed
    } else {
        Outcome::Failed(fail(
            Operation::ListAccounts,
            "all pages",
            "no account or entitlement of this run left",
            format!("{left:?}"),
        ))
    }
}

/// Every case, in order, with cleanup checked last.
pub async fn run_all(conn: &dyn Connector, ns: &Namespace, opts: &SuiteOptions) -> Report {
    let mut report = Report::default();
    // Each case is reported under its function's name.
    macro_rules! cases {
        ($($case:ident),+ $(,)?) => {
            $(report.cases.push((stringify!($case), $case(conn, ns, opts).await));)+
        };
    }
    cases!(
        create_get_delete,
        duplicate_create_is_already_exists,
        logins_compare_as_capabilities_say,
        create_marker_is_kept,
        missing_account_is_not_found,
        update_is_a_delta,
        rename_changes_the_login,
        disable_enable_are_idempotent,
        listing_pages_visit_each_account_once,
        grant_revoke_in_batches,
        batch_failures_are_per_account,
        unsupported_operations_say_so,
        changes_since_reports_every_change,
        entitlements_are_created_and_deleted,
        suite_left_nothing_behind,
    );
    report
}
