//! Target profiles: what a SCIM service publishes about itself beyond its
//! ServiceProviderConfig (how many membership changes one PATCH may carry,
//! the largest page, which filters it takes, its rate limits), as data.
//! Every number has its source in the profile's doc comment; what a
//! vendor does not publish is left at the generic value and said so.
//!
//! A profile is picked by name ([`Profile::named`], `profile = "aws"` in a
//! settings file) and checked against the service's own
//! ServiceProviderConfig when the connector first talks to it: where they
//! disagree, the connector follows the stricter of the two and says so
//! ([`Connector::notices`](prov_core::Connector::notices)).

use reqwest::Method;

/// Which requests a [`Pace`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Route {
    /// Every request.
    Any,
    /// The collection itself: `/Users`, `/Users?filter=...`.
    Collection(&'static str),
    /// One resource of the collection: `/Users/ID`.
    Resource(&'static str),
}

impl Route {
    fn matches(&self, path: &str) -> bool {
        let path = path.split('?').next().unwrap_or(path);
        match self {
            Route::Any => true,
            Route::Collection(c) => path == *c,
            Route::Resource(c) => path
                .strip_prefix(c)
                .and_then(|rest| rest.strip_prefix('/'))
                .is_some_and(|id| !id.is_empty() && !id.contains('/')),
        }
    }
}

/// Every request (GET, POST, PUT, PATCH, DELETE).
pub const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];
/// Read requests (GET).
pub const READS: &[&str] = &["GET"];
/// Write requests (POST, PUT, PATCH, DELETE).
pub const WRITES: &[&str] = &["POST", "PUT", "PATCH", "DELETE"];

/// A published rate limit: `per_minute` requests a minute with bursts of
/// `burst`, over the requests whose method is in `methods` and whose path
/// `route` matches. A read costs `cost` of them and a write `write_cost`
/// (GitHub counts a GET as one point of its 900 a minute, a write as five).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Pace {
    /// What the vendor calls it (`writes`, `POST /Users`).
    pub what: &'static str,
    /// The methods counted.
    pub methods: &'static [&'static str],
    /// The paths counted.
    pub route: Route,
    /// Allowed a minute.
    pub per_minute: u32,
    /// Allowed at once after a quiet spell.
    pub burst: u32,
    /// What one GET costs.
    pub cost: u32,
    /// What one POST, PUT, PATCH or DELETE costs.
    pub write_cost: u32,
}

impl Pace {
    /// `per_minute` with bursts of `burst`, each request costing 1.
    pub const fn new(
        what: &'static str,
        methods: &'static [&'static str],
        route: Route,
        per_minute: u32,
        burst: u32,
    ) -> Self {
        Pace {
            what,
            methods,
            route,
            per_minute,
            burst,
            cost: 1,
            write_cost: 1,
        }
    }

    const fn costing(mut self, read: u32, write: u32) -> Self {
        self.cost = read;
        self.write_cost = write;
        self
    }

    /// What `method` costs.
    pub fn cost_of(&self, method: &Method) -> u32 {
        if *method == Method::GET || *method == Method::HEAD {
            self.cost
        } else {
            self.write_cost
        }
    }

    /// Whether `method` on `path` counts.
    pub fn counts(&self, method: &Method, path: &str) -> bool {
        self.methods.iter().any(|m| *m == method.as_str()) && self.route.matches(path)
    }
}

/// What a SCIM service publishes about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Profile {
    /// The name a settings file picks it by.
    pub name: &'static str,
    /// What it is.
    pub summary: &'static str,
    /// Most membership changes one PATCH of a group may carry.
    pub members_per_patch: usize,
    /// Most resources one page returns.
    pub page_size: usize,
    /// Filters may join comparisons with `or` (AWS takes only `eq` joined by `and`).
    pub filter_or: bool,
    /// Users may be filtered on `id` (when not, each account is read by its URL).
    pub filter_by_id: bool,
    /// Groups may be filtered on `members.value`.
    pub filter_by_member: bool,
    /// `/Bulk` is offered.
    pub bulk: bool,
    /// Users may hold more than one value of a multi-valued attribute
    /// (AWS: one email, one address, one phone number).
    pub multi_valued: bool,
    /// Creates also look the user up by `externalId` (services that match
    /// identities on it).
    pub lookup_external_id: bool,
    /// Requests worth having in flight at once.
    pub max_concurrency: usize,
    /// The published rate limits, each paced by the client.
    pub paces: &'static [Pace],
    /// Whether `members_per_patch` and `page_size` are the vendor's
    /// published caps (a settings file may then only lower them) rather
    /// than the generic defaults (which it may raise).
    pub published_limits: bool,
}

/// Any RFC 7644 service.
pub const GENERIC: Profile = Profile {
    name: "generic",
    summary: "any RFC 7644 service: the connector follows its ServiceProviderConfig",
    members_per_patch: 1000,
    page_size: 100,
    filter_or: true,
    filter_by_id: true,
    filter_by_member: true,
    bulk: true,
    multi_valued: true,
    lookup_external_id: false,
    max_concurrency: 4,
    paces: &[],
    published_limits: false,
};

/// AWS IAM Identity Center's SCIM endpoint
/// (`https://scim.REGION.amazonaws.com/TENANT/scim/v2`), from the IAM
/// Identity Center SCIM Implementation Developer Guide:
/// - at most 100 membership changes in one PatchGroup, and 100 members
///   in one CreateGroup (PatchGroup and CreateGroup, "Constraints");
/// - ListUsers and ListGroups return at most 50 results (document
///   history, April 2021);
/// - "Only `eq` with `and` is supported" in filters; no `/Bulk`, `/Me`
///   or `/.search`; no multi-valued user attributes ("Limitations from
///   SCIM specification");
/// - PatchGroup takes no "remove all" and no `replace` of members, so
///   members are removed one `members[value eq "ID"]` operation each.
///
/// AWS publishes no request rate for the SCIM endpoint (a 429
/// ThrottlingException is answered when it is exceeded).
pub const AWS: Profile = Profile {
    name: "aws",
    summary: "AWS IAM Identity Center SCIM",
    members_per_patch: 100,
    page_size: 50,
    filter_or: false,
    filter_by_id: false,
    filter_by_member: false,
    bulk: false,
    multi_valued: false,
    published_limits: true,
    ..GENERIC
};

/// GitHub Enterprise Managed Users
/// (`https://api.github.com/scim/v2/enterprises/ENTERPRISE`). GitHub
/// matches identities on `externalId` ("Provisioning users and groups
/// with SCIM using the REST API"), so a create also looks the user up by
/// it. The REST API's secondary rate limits apply ("Rate limits for the
/// REST API"): at most 100 requests at once, and 900 points a minute per
/// endpoint where a GET costs 1 point and a POST, PATCH, PUT or DELETE 5.
/// Batch and page limits are not published: the generic ones are used.
pub const GITHUB: Profile = Profile {
    name: "github",
    summary: "GitHub Enterprise Managed Users",
    bulk: false,
    lookup_external_id: true,
    paces: &[Pace::new("points (a GET 1, a write 5)", METHODS, Route::Any, 900, 900).costing(1, 5)],
    ..GENERIC
};

/// Slack's SCIM API (`https://api.slack.com/scim/v2`), limits from "SCIM
/// API rate limits" (docs.slack.dev/reference/scim-api/rate-limits),
/// org-wide across every SCIM app: writes 600 a minute with bursts of
/// 180, reads 1,000 a minute; POST /Users, PUT or PATCH /Users/ID and
/// DELETE /Users/ID 180 a minute with bursts of 20; POST /Groups and
/// DELETE /Groups/ID 180 with bursts of 20; PUT or PATCH /Groups/ID 180
/// with bursts of 80; GET /Users/ID and GET /Groups/ID 300 a minute.
/// Batch and page limits are not published: the generic ones are used.
pub const SLACK: Profile = Profile {
    name: "slack",
    summary: "Slack SCIM API",
    bulk: false,
    paces: &[
        Pace::new("writes", WRITES, Route::Any, 600, 180),
        Pace::new("reads", READS, Route::Any, 1000, 1000),
        Pace::new(
            "POST /Users",
            &["POST"],
            Route::Collection("/Users"),
            180,
            20,
        ),
        Pace::new(
            "PUT or PATCH /Users/ID",
            &["PUT", "PATCH"],
            Route::Resource("/Users"),
            180,
            20,
        ),
        Pace::new(
            "DELETE /Users/ID",
            &["DELETE"],
            Route::Resource("/Users"),
            180,
            20,
        ),
        Pace::new("GET /Users/ID", READS, Route::Resource("/Users"), 300, 300),
        Pace::new(
            "POST /Groups",
            &["POST"],
            Route::Collection("/Groups"),
            180,
            20,
        ),
        Pace::new(
            "PUT or PATCH /Groups/ID",
            &["PUT", "PATCH"],
            Route::Resource("/Groups"),
            180,
            80,
        ),
        Pace::new(
            "DELETE /Groups/ID",
            &["DELETE"],
            Route::Resource("/Groups"),
            180,
            20,
        ),
        Pace::new(
            "GET /Groups/ID",
            READS,
            Route::Resource("/Groups"),
            300,
            300,
        ),
    ],
    ..GENERIC
};

/// Atlassian's user provisioning API
/// (`https://api.atlassian.com/scim/directory/DIRECTORY`), from its REST
/// reference: users are filtered "with a single exact match (eq) against
/// the userName and externalId attributes", so no `or` and no `id`
/// filter; sorting is not supported. No rate limit is published for it.
pub const ATLASSIAN: Profile = Profile {
    name: "atlassian",
    summary: "Atlassian user provisioning (Atlassian Guard)",
    filter_or: false,
    filter_by_id: false,
    filter_by_member: false,
    bulk: false,
    max_concurrency: 2,
    ..GENERIC
};

/// Zoom's SCIM2 API (`https://api.zoom.us/scim2`): "Each SCIM2 API
/// endpoint has a rate limit of 1 request/second per account" (the
/// SCIM2 API reference), paced here as 60 a minute per collection and per
/// resource route, one at a time. Batch and page limits are not
/// published: the generic ones are used.
pub const ZOOM: Profile = Profile {
    name: "zoom",
    summary: "Zoom SCIM2 API",
    bulk: false,
    max_concurrency: 1,
    paces: &[
        Pace::new("/Users", METHODS, Route::Collection("/Users"), 60, 1),
        Pace::new("/Users/ID", METHODS, Route::Resource("/Users"), 60, 1),
        Pace::new("/Groups", METHODS, Route::Collection("/Groups"), 60, 1),
        Pace::new("/Groups/ID", METHODS, Route::Resource("/Groups"), 60, 1),
    ],
    ..GENERIC
};

impl Profile {
    /// The generic RFC 7644 profile.
    pub const GENERIC: Profile = GENERIC;

    /// Every profile, generic first.
    pub const ALL: &'static [Profile] = &[GENERIC, AWS, GITHUB, SLACK, ATLASSIAN, ZOOM];

    /// The profile called `name`.
    pub fn named(name: &str) -> Option<&'static Profile> {
        Self::ALL.iter().find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// The names, for error messages.
    pub fn names() -> String {
        Self::ALL
            .iter()
            .map(|p| p.name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Default for Profile {
    fn default() -> Self {
        GENERIC
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_tell_a_collection_from_its_resources() {
        let users = Route::Collection("/Users");
        assert!(users.matches("/Users") && users.matches("/Users?filter=x"));
        assert!(!users.matches("/Users/1") && !users.matches("/UsersX"));
        let user = Route::Resource("/Users");
        assert!(user.matches("/Users/1") && user.matches("/Users/1?attributes=id"));
        assert!(!user.matches("/Users") && !user.matches("/Users/") && !user.matches("/Users/1/x"));
        let post = Pace::new("POST /Users", &["POST"], users, 1, 1);
        assert!(post.counts(&Method::POST, "/Users"));
        assert!(!post.counts(&Method::GET, "/Users"));
    }

    #[test]
    fn every_profile_has_a_unique_name_and_sane_numbers() {
        let mut names = std::collections::HashSet::new();
        for p in Profile::ALL {
            assert!(names.insert(p.name), "{} twice", p.name);
            assert!(p.members_per_patch >= 1 && p.page_size >= 1 && p.max_concurrency >= 1);
            for pace in p.paces {
                assert!(pace.per_minute >= 1 && pace.burst >= 1, "{}", pace.what);
                assert!(
                    pace.cost.max(pace.write_cost) <= pace.burst,
                    "{}: a request could never pass",
                    pace.what
                );
            }
        }
        assert_eq!(
            Profile::named("AWS").map(|p| p.members_per_patch),
            Some(100)
        );
        assert!(Profile::named("nope").is_none());
    }
}
