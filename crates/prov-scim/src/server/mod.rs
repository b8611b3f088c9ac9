//! The SCIM server (feature `server`): an axum [`Router`] that a host
//! service mounts at any prefix, over a [`ScimStore`] it implements on its
//! own tables ([`MemoryStore`] ships here).
//!
//! ```
//! use std::sync::Arc;
//! use prov_scim::server::{MemoryStore, ScimServer, Tenants};
//!
//! let mut tenants = Tenants::new();
//! tenants.add_token("acme", "a-long-random-token-from-the-environment")?;
//! let scim = ScimServer::new(Arc::new(MemoryStore::new()), tenants)
//!     .base_url("https://app.example.com/scim/v2");
//! let app: axum::Router = axum::Router::new().nest("/scim/v2", scim.router());
//! # Ok::<(), prov_scim::server::TokenError>(())
//! ```
//!
//! Every request needs `Authorization: Bearer TOKEN`; the token names the
//! tenant, and a tenant sees only its own resources. Every answer is
//! `application/scim+json`, errors included (RFC 7644 section 3.12).

mod auth;
mod bulk;
mod discovery;
mod events;
mod http;
mod limits;
mod list;
mod memory;
mod resource;
mod shape;
mod source;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{MethodRouter, get, post};
use prov_core::{Clock, SystemClock};

pub use auth::{MIN_TOKEN_LEN, Tenants, TokenError};
pub use events::ScimEvent;
pub use limits::FilterRules;
pub use memory::MemoryStore;
pub use source::{ScimSource, identities};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
pub use store::{Found, Kind, Query, ScimStore, StoreError, Stored};

use discovery::{Discovery, discovery, discovery_one};
use http::fail;
use list::{list, search};
use resource::{create, patch, read, remove, replace};
pub(crate) use resource::{first_value, resource_json};

/// The SCIM content type.
pub const SCIM_JSON: &str = "application/scim+json";

/// The server's settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The URL the router is reached at (`https://host/scim/v2`), for
    /// `Location` and `meta.location`; unset, they are paths from the
    /// request's own (`/scim/v2/Users/ID`).
    pub base_url: Option<String>,
    /// The largest request body, in bytes (larger: 413). Default 1 MiB.
    pub max_body: usize,
    /// The most resources a list returns (`count` above it is lowered).
    /// Default 1000.
    pub max_results: u64,
    /// The most operations one `/Bulk` request takes (more: 413). Default 1000.
    pub bulk_max_operations: usize,
    /// The largest `/Bulk` body, in bytes (larger: 413). Default 4 MiB.
    pub bulk_max_payload: usize,
    /// `/Bulk` is served (default true; false: 501, and the
    /// ServiceProviderConfig says so).
    pub bulk: bool,
    /// The filters taken, in queries and in PATCH paths (default: all).
    pub filters: FilterRules,
    /// The most membership changes one PATCH of a group may carry (more:
    /// 400). Default: no limit.
    pub max_member_changes: Option<usize>,
    /// Requests taken per period, across tenants, past which the answer
    /// is 429 with `Retry-After`. Default: no limit.
    pub rate_limit: Option<prov_core::RateLimit>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            base_url: None,
            max_body: 1024 * 1024,
            max_results: 1000,
            bulk_max_operations: 1000,
            bulk_max_payload: 4 * 1024 * 1024,
            bulk: true,
            filters: FilterRules::default(),
            max_member_changes: None,
            rate_limit: None,
        }
    }
}

/// The server: a store, the tenants' tokens and the settings.
pub struct ScimServer<S> {
    inner: Arc<Inner<S>>,
}

impl<S> std::fmt::Debug for ScimServer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScimServer")
            .field("tenants", &self.inner.tenants)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

pub(super) struct Inner<S> {
    pub(super) store: Arc<S>,
    pub(super) tenants: Tenants,
    pub(super) config: ServerConfig,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) listeners: Vec<events::Listener>,
    pub(super) limiter: Option<Arc<governor::DefaultDirectRateLimiter>>,
    /// Turns for read-modify-writes (PATCH, PUT), by a hash of the
    /// resource: concurrent PATCHes of one group (members added by many
    /// requests at once) take turns instead of failing the store's version
    /// check five times and answering 412 to clients that sent no If-Match.
    pub(super) turns: Arc<[tokio::sync::Mutex<()>]>,
}

/// How many turns read-modify-writes are spread over.
const TURNS: usize = 64;

fn turns() -> Arc<[tokio::sync::Mutex<()>]> {
    (0..TURNS).map(|_| tokio::sync::Mutex::new(())).collect()
}

impl<S> Inner<S> {
    /// The turn a write of `tenant`'s resource `id` takes.
    pub(super) fn turn(&self, tenant: &str, kind: Kind, id: &str) -> &tokio::sync::Mutex<()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        (tenant, kind == Kind::User, id).hash(&mut h);
        let i = usize::try_from(h.finish() % TURNS as u64).unwrap_or(0);
        &self.turns[i]
    }

    /// Tells every listener.
    pub(super) fn tell(&self, event: &ScimEvent) {
        for l in &self.listeners {
            l(event);
        }
    }
}

impl<S: ScimStore> ScimServer<S> {
    /// A server over `store` for `tenants`, with the default settings.
    pub fn new(store: Arc<S>, tenants: Tenants) -> Self {
        ScimServer {
            inner: Arc::new(Inner {
                store,
                tenants,
                config: ServerConfig::default(),
                clock: Arc::new(SystemClock),
                listeners: Vec::new(),
                limiter: None,
                turns: turns(),
            }),
        }
    }

    fn map(self, f: impl FnOnce(&mut Inner<S>)) -> Self {
        let mut inner = match Arc::try_unwrap(self.inner) {
            Ok(inner) => inner,
            Err(shared) => Inner {
                store: shared.store.clone(),
                tenants: shared.tenants.clone(),
                config: shared.config.clone(),
                clock: shared.clock.clone(),
                listeners: shared.listeners.clone(),
                limiter: shared.limiter.clone(),
                turns: shared.turns.clone(),
            },
        };
        f(&mut inner);
        inner.limiter = inner
            .config
            .rate_limit
            .as_ref()
            .and_then(limits::limiter)
            .map(Arc::new);
        ScimServer {
            inner: Arc::new(inner),
        }
    }

    /// With these settings.
    pub fn config(self, config: ServerConfig) -> Self {
        self.map(|i| i.config = config)
    }

    /// Reached at `url` (for `Location` and `meta.location`).
    pub fn base_url(self, url: impl Into<String>) -> Self {
        let url = url.into().trim_end_matches('/').to_owned();
        self.map(|i| i.config.base_url = Some(url))
    }

    /// Calls `listener` with every change the server accepts, after the
    /// store took it and before the client is answered (so a listener that
    /// blocks slows the client down: hand the event to a channel).
    pub fn on_event(self, listener: impl Fn(&ScimEvent) + Send + Sync + 'static) -> Self {
        let l: events::Listener = Arc::new(listener);
        self.map(|i| i.listeners.push(l))
    }

    /// With `clock` for `meta.created` and `meta.lastModified`.
    pub fn clock(self, clock: Arc<dyn Clock>) -> Self {
        self.map(|i| i.clock = clock)
    }

    /// The routes, relative: mount them with `Router::nest("/scim/v2", ...)`.
    pub fn router(&self) -> Router {
        let resource = |kind: Kind| -> (Route<S>, Route<S>, Route<S>) {
            (
                get(move |s, h, q, o| list(s, h, q, o, kind))
                    .post(move |s, h, o, b| create(s, h, o, b, kind)),
                get(move |s, h, p, q, o| read(s, h, p, q, o, kind))
                    .put(move |s, h, p, o, b| replace(s, h, p, o, b, kind))
                    .patch(move |s, h, p, q, o, b| patch(s, h, p, q, o, b, kind))
                    .delete(move |s, h, p| remove(s, h, p, kind)),
                post(move |s, h, o, b| search(s, h, o, b, Some(kind))),
            )
        };
        let (users, user, users_search) = resource(Kind::User);
        let (groups, group, groups_search) = resource(Kind::Group);
        Router::new()
            .route("/Users", users)
            .route("/Users/.search", users_search)
            .route("/Users/{id}", user)
            .route("/Groups", groups)
            .route("/Groups/.search", groups_search)
            .route("/Groups/{id}", group)
            .route("/.search", post(|s, h, o, b| search(s, h, o, b, None)))
            .route("/Bulk", post(bulk::bulk))
            .route("/ServiceProviderConfig", discovery(Discovery::Config))
            .route("/Schemas", discovery(Discovery::Schemas))
            .route("/Schemas/{id}", discovery_one(Discovery::Schemas))
            .route("/ResourceTypes", discovery(Discovery::ResourceTypes))
            .route(
                "/ResourceTypes/{id}",
                discovery_one(Discovery::ResourceTypes),
            )
            .fallback(|| async { fail(StatusCode::NOT_FOUND, None, "no such endpoint") })
            .method_not_allowed_fallback(|| async {
                fail(
                    StatusCode::METHOD_NOT_ALLOWED,
                    None,
                    "this endpoint does not take that method",
                )
            })
            .with_state(self.inner.clone())
    }
}

pub(super) type St<S> = State<Arc<Inner<S>>>;
pub(super) type Route<S> = MethodRouter<Arc<Inner<S>>>;
