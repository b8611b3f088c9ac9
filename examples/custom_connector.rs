//! A complete connector for a system prov does not ship with, as a connector
//! author would write it: a small "app users and roles" REST service (served
//! by this example itself on 127.0.0.1, with its own storage), the connector
//! for it over HTTP, the conformance suite run against it, and then the
//! quickstart's HR data provisioned into it through the engine.
//!
//! `cargo run --example custom_connector`. Read docs/connector-guide.md
//! alongside; copy the `connector` module to start your own.
// The modules are written as they would be in a library of their own.
#![allow(unreachable_pub)]

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use prov::core::{Connector, Identity, TargetId};
use prov::engine::{Engine, MemoryStore};
use prov::resolver::Policy;
use prov::sources::{CsvSource, Mapping, Source};
use prov_testkit::ManualClock;
use prov_testkit::conformance::{self, Namespace, SuiteOptions};

/// The target: a tiny REST API with users and roles, in memory. Not part of
/// a connector; it stands in for the SaaS or in-house app you integrate.
mod app {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use axum::extract::{Path, Query, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, post, put};
    use axum::{Json, Router};
    use serde::{Deserialize, Serialize};

    /// The most user ids one membership call takes.
    pub const MAX_MEMBERS_PER_CALL: usize = 25;

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct User {
        pub id: String,
        pub username: String,
        pub active: bool,
        pub attributes: BTreeMap<String, String>,
        pub roles: Vec<String>,
    }

    #[derive(Default)]
    struct Db {
        next: u64,
        users: BTreeMap<String, User>,
        roles: Vec<String>,
    }

    #[derive(Clone)]
    struct AppState {
        db: Arc<Mutex<Db>>,
        token: Arc<String>,
    }

    fn err(status: StatusCode, msg: impl Into<String>) -> Response {
        (status, Json(serde_json::json!({ "error": msg.into() }))).into_response()
    }

    /// Compares the bearer token in constant time.
    fn authorised(state: &AppState, headers: &HeaderMap) -> bool {
        let given = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let want = format!("Bearer {}", state.token);
        given.len() == want.len()
            && given
                .bytes()
                .zip(want.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    macro_rules! guard {
        ($state:expr, $headers:expr) => {
            if !authorised(&$state, &$headers) {
                return err(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
            }
        };
    }

    fn db(state: &AppState) -> std::sync::MutexGuard<'_, Db> {
        state
            .db
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[derive(Deserialize)]
    struct ListQuery {
        after: Option<String>,
        limit: Option<usize>,
        username: Option<String>,
    }

    async fn list(State(s): State<AppState>, h: HeaderMap, Query(q): Query<ListQuery>) -> Response {
        guard!(s, h);
        let limit = q.limit.unwrap_or(50).clamp(1, 100);
        let db = db(&s);
        let mut users: Vec<User> = db
            .users
            .values()
            .filter(|u| q.after.as_ref().is_none_or(|a| &u.id > a))
            .filter(|u| q.username.as_ref().is_none_or(|n| &u.username == n))
            .take(limit + 1)
            .cloned()
            .collect();
        let next = if users.len() > limit {
            users.truncate(limit);
            users.last().map(|u| u.id.clone())
        } else {
            None
        };
        Json(serde_json::json!({ "users": users, "next": next })).into_response()
    }

    async fn get_user(State(s): State<AppState>, h: HeaderMap, Path(id): Path<String>) -> Response {
        guard!(s, h);
        match db(&s).users.get(&id) {
            Some(u) => Json(u.clone()).into_response(),
            None => err(StatusCode::NOT_FOUND, format!("no user {id}")),
        }
    }

    #[derive(Deserialize)]
    struct NewUser {
        username: String,
        #[serde(default)]
        attributes: BTreeMap<String, String>,
        #[serde(default = "yes")]
        active: bool,
    }

    fn yes() -> bool {
        true
    }

    async fn create(State(s): State<AppState>, h: HeaderMap, Json(n): Json<NewUser>) -> Response {
        guard!(s, h);
        if n.username.trim().is_empty() {
            return err(StatusCode::BAD_REQUEST, "username: must not be empty");
        }
        let mut db = db(&s);
        if db.users.values().any(|u| u.username == n.username) {
            return err(
                StatusCode::CONFLICT,
                format!("username {} is taken", n.username),
            );
        }
        db.next += 1;
        let id = format!("u{:06}", db.next);
        let user = User {
            id: id.clone(),
            username: n.username,
            active: n.active,
            attributes: n.attributes,
            roles: Vec::new(),
        };
        db.users.insert(id, user.clone());
        (StatusCode::CREATED, Json(user)).into_response()
    }

    #[derive(Deserialize)]
    struct Patch {
        #[serde(default)]
        set: BTreeMap<String, String>,
        #[serde(default)]
        remove: Vec<String>,
        username: Option<String>,
    }

    async fn patch(
        State(s): State<AppState>,
        h: HeaderMap,
        Path(id): Path<String>,
        Json(p): Json<Patch>,
    ) -> Response {
        guard!(s, h);
        let mut db = db(&s);
        if let Some(name) = &p.username
            && db.users.values().any(|u| &u.username == name && u.id != id)
        {
            return err(StatusCode::CONFLICT, format!("username {name} is taken"));
        }
        let Some(user) = db.users.get_mut(&id) else {
            return err(StatusCode::NOT_FOUND, format!("no user {id}"));
        };
        user.attributes.extend(p.set);
        for k in p.remove {
            user.attributes.remove(&k);
        }
        if let Some(name) = p.username {
            user.username = name;
        }
        Json(user.clone()).into_response()
    }

    #[derive(Deserialize)]
    struct Active {
        active: bool,
    }

    async fn set_active(
        State(s): State<AppState>,
        h: HeaderMap,
        Path(id): Path<String>,
        Json(a): Json<Active>,
    ) -> Response {
        guard!(s, h);
        match db(&s).users.get_mut(&id) {
            Some(u) => {
                u.active = a.active;
                StatusCode::NO_CONTENT.into_response()
            }
            None => err(StatusCode::NOT_FOUND, format!("no user {id}")),
        }
    }

    async fn delete(State(s): State<AppState>, h: HeaderMap, Path(id): Path<String>) -> Response {
        guard!(s, h);
        match db(&s).users.remove(&id) {
            Some(_) => StatusCode::NO_CONTENT.into_response(),
            None => err(StatusCode::NOT_FOUND, format!("no user {id}")),
        }
    }

    async fn list_roles(State(s): State<AppState>, h: HeaderMap) -> Response {
        guard!(s, h);
        Json(db(&s).roles.clone()).into_response()
    }

    #[derive(Deserialize)]
    struct Members {
        #[serde(default)]
        add: Vec<String>,
        #[serde(default)]
        remove: Vec<String>,
    }

    /// Adds and removes members; unknown users are listed in `missing`,
    /// the others are changed. Repeats are harmless.
    async fn members(
        State(s): State<AppState>,
        h: HeaderMap,
        Path(role): Path<String>,
        Json(m): Json<Members>,
    ) -> Response {
        guard!(s, h);
        if m.add.len() + m.remove.len() > MAX_MEMBERS_PER_CALL {
            return err(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("at most {MAX_MEMBERS_PER_CALL} users per call"),
            );
        }
        let mut db = db(&s);
        if !db.roles.contains(&role) {
            return err(StatusCode::NOT_FOUND, format!("no role {role}"));
        }
        let mut missing = Vec::new();
        for id in m.add {
            match db.users.get_mut(&id) {
                Some(u) if !u.roles.contains(&role) => {
                    u.roles.push(role.clone());
                    u.roles.sort();
                }
                Some(_) => {}
                None => missing.push(id),
            }
        }
        for id in m.remove {
            match db.users.get_mut(&id) {
                Some(u) => u.roles.retain(|r| r != &role),
                None => missing.push(id),
            }
        }
        Json(serde_json::json!({ "missing": missing })).into_response()
    }

    /// Serves the app on 127.0.0.1 on a free port; returns its base URL.
    pub async fn serve(token: &str, roles: &[&str]) -> std::io::Result<String> {
        let state = AppState {
            db: Arc::new(Mutex::new(Db {
                roles: roles.iter().map(|r| (*r).to_owned()).collect(),
                ..Db::default()
            })),
            token: Arc::new(token.to_owned()),
        };
        let router = Router::new()
            .route("/users", get(list).post(create))
            .route("/users/{id}", get(get_user).patch(patch).delete(delete))
            .route("/users/{id}/active", put(set_active))
            .route("/roles", get(list_roles))
            .route("/roles/{role}/members", post(members))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                eprintln!("app server stopped: {e}");
            }
        });
        Ok(format!("http://{addr}"))
    }
}

/// The connector: what a connector author writes. Everything target-specific
/// is here; the engine and the suite know it only as `dyn Connector`.
mod connector {
    use std::fmt;
    use std::time::Duration;

    use prov::core::{
        Account, AccountId, Attributes, BackendDetail, BatchOutcome, Capabilities, Connector,
        CreateAccount, Entitlement, EntitlementId, Error, ErrorKind, ListRequest, MemberFailure,
        MembershipChange, Operation, Page, Result, UpdateAccount, Value, async_trait,
    };
    use serde::Deserialize;

    use super::app::{MAX_MEMBERS_PER_CALL, User};

    /// A bearer token that never shows in `Debug` or errors.
    #[derive(Clone)]
    pub struct Token(String);

    impl Token {
        pub fn new(t: impl Into<String>) -> Self {
            Token(t.into())
        }
    }

    impl fmt::Debug for Token {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("Token(<redacted>)")
        }
    }

    #[derive(Debug)]
    pub struct AppConnector {
        base: String,
        token: Token,
        http: reqwest::Client,
    }

    impl AppConnector {
        pub fn new(base: impl Into<String>, token: Token) -> Self {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default();
            AppConnector {
                base: base.into(),
                token,
                http,
            }
        }

        fn url(&self, path: &str) -> String {
            format!("{}{path}", self.base)
        }

        /// Sends a request; maps transport failures and HTTP errors to kinds.
        async fn send(
            &self,
            req: reqwest::RequestBuilder,
            op: Operation,
        ) -> Result<reqwest::Response> {
            let resp = req.bearer_auth(&self.token.0).send().await.map_err(|e| {
                let kind = if e.is_timeout() {
                    ErrorKind::Timeout
                } else {
                    ErrorKind::Unavailable
                };
                Error::new(kind, format!("cannot reach the app: {e}")).with_operation(op)
            })?;
            let status = resp.status().as_u16();
            if resp.status().is_success() {
                return Ok(resp);
            }
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_secs);
            let body = resp.text().await.unwrap_or_default();
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
                .unwrap_or(body);
            let kind = match status {
                400 | 413 | 422 => ErrorKind::InvalidInput,
                401 => ErrorKind::Unauthenticated,
                403 => ErrorKind::PermissionDenied,
                404 => ErrorKind::NotFound,
                409 => ErrorKind::AlreadyExists,
                429 => ErrorKind::RateLimited,
                500..=599 => ErrorKind::Unavailable,
                _ => ErrorKind::Unexpected,
            };
            let mut e = Error::new(kind, message.clone())
                .with_operation(op)
                .with_detail(BackendDetail::new(status.to_string(), message));
            if let Some(wait) = retry_after {
                e = e.with_retry_after(wait);
            }
            Err(e)
        }

        async fn json<T: for<'de> Deserialize<'de>>(
            resp: reqwest::Response,
            op: Operation,
        ) -> Result<T> {
            resp.json().await.map_err(|e| {
                Error::new(
                    ErrorKind::Unexpected,
                    format!("the app sent something unreadable: {e}"),
                )
                .with_operation(op)
            })
        }
    }

    /// The app stores text attributes: the model's strings map to them.
    fn to_app(
        attrs: &Attributes,
        op: Operation,
    ) -> Result<serde_json::Map<String, serde_json::Value>> {
        attrs
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), serde_json::Value::String(s.clone()))),
                other => Err(Error::invalid_input(
                    k.clone(),
                    format!("the app stores text; {k} is {}", other.type_name()),
                )
                .with_operation(op)),
            })
            .collect()
    }

    fn to_account(u: User) -> Account {
        let mut a = Account::new(u.id, u.username);
        a.enabled = u.active;
        a.attributes = u
            .attributes
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        a.entitlements = u.roles.into_iter().map(EntitlementId::from).collect();
        a
    }

    #[derive(Deserialize)]
    struct UserPage {
        users: Vec<User>,
        next: Option<String>,
    }

    #[async_trait]
    impl Connector for AppConnector {
        fn capabilities(&self) -> Capabilities {
            let mut c = Capabilities::default();
            c.create = true;
            c.update = true;
            c.rename = true;
            c.disable = true;
            c.delete = true;
            c.list_entitlements = true;
            c.grant_revoke = true;
            c.lists_memberships = true;
            c.max_batch = MAX_MEMBERS_PER_CALL;
            c.max_page_size = 100;
            c.max_concurrency = 4;
            c.filter_attributes = vec!["login".to_owned()];
            c
        }

        async fn list_accounts(&self, req: ListRequest) -> Result<Page<Account>> {
            let op = Operation::ListAccounts;
            let mut q: Vec<(&str, String)> =
                vec![("limit", req.page_size.unwrap_or(100).to_string())];
            if let Some(c) = &req.cursor {
                q.push(("after", c.clone()));
            }
            match &req.filter {
                Some((attr, v)) if attr == "login" => q.push(("username", v.clone())),
                Some((attr, _)) => {
                    return Err(
                        Error::invalid_input(attr.clone(), "only `login` can be filtered")
                            .with_operation(op),
                    );
                }
                None => {}
            }
            let resp = self
                .send(self.http.get(self.url("/users")).query(&q), op)
                .await?;
            let page: UserPage = Self::json(resp, op).await?;
            Ok(Page::new(
                page.users.into_iter().map(to_account).collect(),
                page.next,
            ))
        }

        async fn get_account(&self, id: &AccountId) -> Result<Account> {
            let op = Operation::GetAccount;
            let resp = self
                .send(self.http.get(self.url(&format!("/users/{id}"))), op)
                .await?;
            Ok(to_account(Self::json(resp, op).await?))
        }

        async fn create_account(&self, req: CreateAccount) -> Result<Account> {
            let op = Operation::CreateAccount;
            let body = serde_json::json!({ "username": req.login, "attributes": to_app(&req.attributes, op)?, "active": req.enabled });
            let resp = self
                .send(self.http.post(self.url("/users")).json(&body), op)
                .await?;
            Ok(to_account(Self::json(resp, op).await?))
        }

        async fn update_account(&self, req: UpdateAccount) -> Result<AccountId> {
            let op = Operation::UpdateAccount;
            let body = serde_json::json!({
                "set": to_app(&req.delta.set, op)?,
                "remove": req.delta.remove,
                "username": req.delta.login,
            });
            self.send(
                self.http
                    .patch(self.url(&format!("/users/{}", req.id)))
                    .json(&body),
                op,
            )
            .await?;
            Ok(req.id)
        }

        async fn set_enabled(&self, id: &AccountId, enabled: bool) -> Result<()> {
            let op = Operation::SetEnabled;
            let body = serde_json::json!({ "active": enabled });
            self.send(
                self.http
                    .put(self.url(&format!("/users/{id}/active")))
                    .json(&body),
                op,
            )
            .await
            .map(|_| ())
        }

        async fn delete_account(&self, id: &AccountId) -> Result<()> {
            self.send(
                self.http.delete(self.url(&format!("/users/{id}"))),
                Operation::DeleteAccount,
            )
            .await
            .map(|_| ())
        }

        async fn list_entitlements(&self, _req: ListRequest) -> Result<Page<Entitlement>> {
            let op = Operation::ListEntitlements;
            let resp = self.send(self.http.get(self.url("/roles")), op).await?;
            let roles: Vec<String> = Self::json(resp, op).await?;
            Ok(Page::last(
                roles.into_iter().map(Entitlement::group).collect(),
            ))
        }

        async fn grant(&self, req: MembershipChange) -> Result<BatchOutcome> {
            self.membership(req, "add", Operation::Grant).await
        }

        async fn revoke(&self, req: MembershipChange) -> Result<BatchOutcome> {
            self.membership(req, "remove", Operation::Revoke).await
        }
    }

    #[derive(Deserialize)]
    struct Missing {
        missing: Vec<String>,
    }

    impl AppConnector {
        /// One call per batch of at most MAX_MEMBERS_PER_CALL; users the app
        /// does not know fail alone.
        async fn membership(
            &self,
            req: MembershipChange,
            verb: &str,
            op: Operation,
        ) -> Result<BatchOutcome> {
            let mut outcome = BatchOutcome::ok();
            for chunk in req.accounts.chunks(MAX_MEMBERS_PER_CALL) {
                let ids: Vec<&str> = chunk.iter().map(AccountId::as_str).collect();
                let body = serde_json::json!({ verb: ids });
                let url = self.url(&format!("/roles/{}/members", req.entitlement));
                let resp = self.send(self.http.post(url).json(&body), op).await?;
                let missing: Missing = Self::json(resp, op).await?;
                for id in missing.missing {
                    let e = Error::not_found(format!("no user {id}")).with_operation(op);
                    outcome
                        .failures
                        .push(MemberFailure::new(AccountId::new(id), e));
                }
            }
            Ok(outcome)
        }
    }
}

const POLICY: &str = r#"
[attributes]
given_name = "string"
family_name = "string"
department = "string"
title = "string"

[targets.app]
account = "always"
login = '(given_name + "." + family_name).lowerAscii().replace(" ", "").replace("-", "")'
leaver = { action = "delete", grace_days = 30 }
[targets.app.attributes]
display_name = 'given_name + " " + family_name'
title = "title"

[roles.staff]
grants.app = ["viewer"]
[roles.engineering]
grants.app = ["developer"]
[roles.sales]
grants.app = ["crm"]

[rules.everyone]
when = "true"
roles = ["staff"]
[rules.engineering]
when = 'department == "Engineering"'
roles = ["engineering"]
[rules.sales]
when = 'department == "Sales"'
roles = ["sales"]
"#;

async fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let token = "example-secret-token";
    let base = app::serve(token, &["viewer", "developer", "crm", "admin"]).await?;
    println!("app serving on {base}");
    let conn = connector::AppConnector::new(base.clone(), connector::Token::new(token));

    // 1. The conformance suite, as a connector author runs it.
    let mut opts = SuiteOptions::default();
    opts.max_batch_accounts = 60;
    let report = conformance::run_all(&conn, &Namespace::new("ct"), &opts).await;
    println!("\nconformance suite against the app:\n{report}");

    // A wrong token is refused as Unauthenticated, not as something retryable.
    let wrong = connector::AppConnector::new(base, connector::Token::new("nope"));
    match wrong.check().await {
        Err(e) => println!("\nwith a wrong token: {e}"),
        Ok(()) => println!("\nwith a wrong token: accepted (wrong!)"),
    }

    // 2. The quickstart's HR data, provisioned into the app through the engine.
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/hr.csv");
    let people: Vec<Identity> = CsvSource::new(
        &data,
        Mapping::new("employee_id")
            .state("status")
            .dates("start_date", "end_date")
            .manager("manager_id"),
    )
    .load()?;
    let policy = Arc::new(Policy::from_toml(POLICY)?.compile()?);
    let mut connectors: BTreeMap<TargetId, Arc<dyn Connector>> = BTreeMap::new();
    connectors.insert(TargetId::new("app"), Arc::new(conn));
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0)
            .single()
            .ok_or("bad date")?,
    ));
    let engine = Engine::new(policy, connectors, Arc::new(MemoryStore::new())).with_clock(clock);
    let (plan, applied) = engine.reconcile(&people).await?;
    let counts: Vec<String> = plan
        .counts()
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    println!(
        "\nprovisioning {} people into the app: {}",
        people.len(),
        counts.join(", ")
    );
    println!(
        "  {} of {} operations done, {} HTTP calls, {} retries",
        applied.done(),
        applied.outcomes.len(),
        applied.calls,
        applied.retries
    );
    for f in applied.failures() {
        println!("  {f}");
    }
    let again = engine.plan(&people).await?;
    println!(
        "plan again: {}",
        if again.is_empty() {
            "no changes".to_owned()
        } else {
            format!("{} operations", again.ops.len())
        }
    );
    Ok(report.is_success() && applied.is_success() && again.is_empty())
}

fn main() -> std::process::ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("custom_connector: cannot start a runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run()) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("custom_connector: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
