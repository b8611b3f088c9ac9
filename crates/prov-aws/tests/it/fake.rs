//! A FAKE of the IAM Identity Center identity store, in process: the
//! operations the connector calls, with AWS's published request and reply
//! shapes (awsJson 1.1, `X-Amz-Target: AWSIdentityStore.<Operation>`),
//! its error bodies (`{"__type": "...", "Message": "..."}` with HTTP 400,
//! `x-amzn-RequestId` on every reply), a duplicate membership refused with
//! ConflictException, and, on demand, ThrottlingException. It also fakes
//! sso-admin's account assignments (`X-Amz-Target:
//! SWBExternalService.<Operation>`): CreateAccountAssignment and
//! DeleteAccountAssignment answer IN_PROGRESS and settle a while later,
//! FAILED with a reason when the principal is not in the identity store.
//! It exists for what moto lacks (UpdateUser answers HTTP 500 there, and
//! its sso-admin takes any principal id at once); it is not AWS.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Default)]
pub(crate) struct Store {
    users: BTreeMap<String, Value>,
    groups: BTreeMap<String, Value>,
    /// Membership id -> (group id, user id).
    memberships: BTreeMap<String, (String, String)>,
    next: u64,
    /// The next this many requests are answered ThrottlingException.
    pub(crate) throttle: usize,
    /// Requests by operation.
    pub(crate) calls: BTreeMap<String, usize>,
    /// Permission set ARN -> name.
    permission_sets: BTreeMap<String, String>,
    /// (permission set ARN, account, principal type, principal id).
    assignments: Vec<(String, String, String, String)>,
    /// Assignment requests: id -> (status when settled, its reason, when made).
    requests: BTreeMap<String, (Value, std::time::Instant)>,
    /// How long an assignment request stays IN_PROGRESS.
    pub(crate) settle: std::time::Duration,
    /// The most assignment requests in progress at once, seen so far.
    pub(crate) peak_outstanding: usize,
    /// A token bucket over every request, when set: ThrottlingException
    /// when it is empty, as AWS answers beyond its rate.
    pub(crate) rate: Option<Bucket>,
    /// Requests answered ThrottlingException by the bucket.
    pub(crate) throttled: usize,
    /// The next this many requests of an operation are answered
    /// ThrottlingException.
    pub(crate) throttle_op: BTreeMap<String, usize>,
}

pub(crate) use prov_testkit::TokenBucket as Bucket;

/// The instance the fake answers for.
pub(crate) const INSTANCE: &str = "arn:aws:sso:::instance/ssoins-fake000000000000";

impl Store {
    /// A permission set named `name`; its ARN.
    pub(crate) fn add_permission_set(&mut self, name: &str) -> String {
        self.next += 1;
        let arn = format!("{INSTANCE}/ps-{:016}", self.next);
        self.permission_sets.insert(arn.clone(), name.to_owned());
        arn
    }

    /// The principals holding permission set `name` in `account`, as
    /// (type, id), each as often as held.
    pub(crate) fn holders(&self, name: &str, account: &str) -> Vec<(String, String)> {
        self.assignments
            .iter()
            .filter(|(ps, a, _, _)| {
                self.permission_sets.get(ps).map(String::as_str) == Some(name) && a == account
            })
            .map(|(_, _, t, p)| (t.clone(), p.clone()))
            .collect()
    }

    fn outstanding(&self) -> usize {
        self.requests
            .values()
            .filter(|(_, made)| made.elapsed() < self.settle)
            .count()
    }

    /// The status of request `rid` now.
    fn status(&self, rid: &str) -> Option<Value> {
        let (settled, made) = self.requests.get(rid)?;
        let mut out = settled.clone();
        if made.elapsed() < self.settle {
            out["Status"] = json!("IN_PROGRESS");
            if let Some(m) = out.as_object_mut() {
                m.remove("FailureReason");
            }
        }
        Some(out)
    }
}

pub(crate) struct Fake {
    pub(crate) url: String,
    pub(crate) store: Arc<Mutex<Store>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) async fn start() -> Fake {
    let store = Arc::new(Mutex::new(Store {
        settle: std::time::Duration::from_millis(300),
        ..Store::default()
    }));
    let app = axum::Router::new()
        .route("/", axum::routing::post(handle))
        .with_state(Arc::clone(&store));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Fake { url, store, task }
}

fn reply(status: StatusCode, body: Value, id: u64) -> Response {
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                "application/x-amz-json-1.1".to_owned(),
            ),
            (
                header::HeaderName::from_static("x-amzn-requestid"),
                format!("fake-{id:08}"),
            ),
        ],
        body.to_string(),
    )
        .into_response()
}

fn error(kind: &str, message: &str) -> (StatusCode, Value) {
    (
        StatusCode::BAD_REQUEST,
        json!({"__type": kind, "Message": message}),
    )
}

fn not_found(what: &str) -> (StatusCode, Value) {
    error("ResourceNotFoundException", &format!("{what} not found."))
}

fn page(items: Vec<Value>, req: &Value, key: &str) -> Value {
    let start: usize = req["NextToken"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let size = req["MaxResults"].as_u64().unwrap_or(100).clamp(1, 100) as usize;
    let end = (start + size).min(items.len());
    let mut out = json!({ key: items.get(start..end).unwrap_or_default() });
    if end < items.len() {
        out["NextToken"] = json!(end.to_string());
    }
    out
}

fn unique(req: &Value, path: &str) -> Option<String> {
    let u = &req["AlternateIdentifier"]["UniqueAttribute"];
    (u["AttributePath"].as_str()? == path)
        .then(|| u["AttributeValue"].as_str().map(str::to_owned))
        .flatten()
}

async fn handle(
    State(store): State<Arc<Mutex<Store>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let op = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| {
            t.strip_prefix("AWSIdentityStore.")
                .or_else(|| t.strip_prefix("SWBExternalService."))
        })
        .unwrap_or("")
        .to_owned();
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = store.lock().unwrap();
    s.next += 1;
    let id = s.next;
    *s.calls.entry(op.clone()).or_default() += 1;
    let over_rate = s.rate.as_mut().is_some_and(|b| !b.take());
    if over_rate {
        s.throttled += 1;
    }
    let op_throttled = match s.throttle_op.get_mut(&op) {
        Some(n) if *n > 0 => {
            *n -= 1;
            true
        }
        _ => false,
    };
    if s.throttle > 0 || over_rate || op_throttled {
        s.throttle = s.throttle.saturating_sub(1);
        let (st, b) = error("ThrottlingException", "Rate exceeded");
        return reply(st, b, id);
    }
    let (status, out) = run(&mut s, &op, &req, id);
    reply(status, out, id)
}

fn run(s: &mut Store, op: &str, req: &Value, id: u64) -> (StatusCode, Value) {
    let ok = |v: Value| (StatusCode::OK, v);
    let store_id = req["IdentityStoreId"].clone();
    match op {
        "CreateUser" => {
            let name = req["UserName"].as_str().unwrap_or("");
            if name.is_empty() {
                return error("ValidationException", "userName is a required attribute");
            }
            if req["Name"]["GivenName"].as_str().is_none()
                || req["Name"]["FamilyName"].as_str().is_none()
            {
                return error(
                    "ValidationException",
                    "name: The attribute name is required",
                );
            }
            if s.users.values().any(|u| u["UserName"] == name) {
                return error("ConflictException", "Duplicate UserName");
            }
            let uid = format!("u-{id:08}");
            let mut u = req.clone();
            u["UserId"] = json!(uid);
            s.users.insert(uid.clone(), u);
            ok(json!({"UserId": uid, "IdentityStoreId": store_id}))
        }
        "DescribeUser" => match s.users.get(req["UserId"].as_str().unwrap_or("")) {
            Some(u) => ok(u.clone()),
            None => not_found("USER"),
        },
        "ListUsers" => ok(page(s.users.values().cloned().collect(), req, "Users")),
        "GetUserId" => {
            let Some(name) = unique(req, "userName") else {
                return error("ValidationException", "unsupported AlternateIdentifier");
            };
            match s.users.values().find(|u| u["UserName"] == name.as_str()) {
                Some(u) => ok(json!({"UserId": u["UserId"], "IdentityStoreId": store_id})),
                None => not_found("USER"),
            }
        }
        "UpdateUser" => {
            let uid = req["UserId"].as_str().unwrap_or("").to_owned();
            let Some(mut u) = s.users.get(&uid).cloned() else {
                return not_found("USER");
            };
            for o in req["Operations"].as_array().cloned().unwrap_or_default() {
                let path = o["AttributePath"].as_str().unwrap_or("");
                let value = o.get("AttributeValue").cloned().unwrap_or(Value::Null);
                let (field, sub) = match path {
                    "displayName" => ("DisplayName", None),
                    "title" => ("Title", None),
                    "emails" => ("Emails", None),
                    "userName" => ("UserName", None),
                    "name.givenName" => ("Name", Some("GivenName")),
                    "name.familyName" => ("Name", Some("FamilyName")),
                    other => {
                        return error(
                            "ValidationException",
                            &format!("Invalid attribute path {other}"),
                        );
                    }
                };
                if field == "UserName" {
                    let taken = s
                        .users
                        .values()
                        .any(|x| x["UserId"] != uid.as_str() && x["UserName"] == value);
                    if taken {
                        return error("ConflictException", "Duplicate UserName");
                    }
                }
                match sub {
                    Some(k) => u[field][k] = value,
                    None if value.is_null() => {
                        if let Some(map) = u.as_object_mut() {
                            map.remove(field);
                        }
                    }
                    None => u[field] = value,
                }
            }
            s.users.insert(uid, u);
            ok(json!({}))
        }
        "DeleteUser" => {
            let uid = req["UserId"].as_str().unwrap_or("").to_owned();
            if s.users.remove(&uid).is_none() {
                return not_found("USER");
            }
            s.memberships.retain(|_, (_, u)| *u != uid);
            ok(json!({}))
        }
        "CreateGroup" => {
            let name = req["DisplayName"].as_str().unwrap_or("");
            if s.groups.values().any(|g| g["DisplayName"] == name) {
                return error("ConflictException", "Duplicate GroupDisplayName");
            }
            let gid = format!("g-{id:08}");
            let mut g = req.clone();
            g["GroupId"] = json!(gid);
            s.groups.insert(gid.clone(), g);
            ok(json!({"GroupId": gid, "IdentityStoreId": store_id}))
        }
        "ListGroups" => ok(page(s.groups.values().cloned().collect(), req, "Groups")),
        "GetGroupId" => {
            let Some(name) = unique(req, "displayName") else {
                return error("ValidationException", "unsupported AlternateIdentifier");
            };
            match s
                .groups
                .values()
                .find(|g| g["DisplayName"] == name.as_str())
            {
                Some(g) => ok(json!({"GroupId": g["GroupId"], "IdentityStoreId": store_id})),
                None => not_found("GROUP"),
            }
        }
        "DeleteGroup" => {
            let gid = req["GroupId"].as_str().unwrap_or("").to_owned();
            if s.groups.remove(&gid).is_none() {
                return not_found("GROUP");
            }
            s.memberships.retain(|_, (g, _)| *g != gid);
            ok(json!({}))
        }
        "CreateGroupMembership" => {
            let gid = req["GroupId"].as_str().unwrap_or("").to_owned();
            let uid = req["MemberId"]["UserId"].as_str().unwrap_or("").to_owned();
            if !s.groups.contains_key(&gid) {
                return not_found("GROUP");
            }
            if !s.users.contains_key(&uid) {
                return not_found("USER");
            }
            if s.memberships.values().any(|(g, u)| *g == gid && *u == uid) {
                return error("ConflictException", "Member is already in the group");
            }
            let mid = format!("m-{id:08}");
            s.memberships.insert(mid.clone(), (gid, uid));
            ok(json!({"MembershipId": mid, "IdentityStoreId": store_id}))
        }
        "GetGroupMembershipId" => {
            let gid = req["GroupId"].as_str().unwrap_or("");
            let uid = req["MemberId"]["UserId"].as_str().unwrap_or("");
            match s
                .memberships
                .iter()
                .find(|(_, (g, u))| g == gid && u == uid)
            {
                Some((m, _)) => ok(json!({"MembershipId": m, "IdentityStoreId": store_id})),
                None => not_found("GROUP_MEMBERSHIP"),
            }
        }
        "DeleteGroupMembership" => {
            if s.memberships
                .remove(req["MembershipId"].as_str().unwrap_or(""))
                .is_none()
            {
                return not_found("GROUP_MEMBERSHIP");
            }
            ok(json!({}))
        }
        "ListGroupMemberships" => {
            let gid = req["GroupId"].as_str().unwrap_or("");
            if !s.groups.contains_key(gid) {
                return not_found("GROUP");
            }
            let items = s
                .memberships
                .iter()
                .filter(|(_, (g, _))| g == gid)
                .map(|(m, (g, u))| {
                    json!({"IdentityStoreId": store_id, "MembershipId": m, "GroupId": g, "MemberId": {"UserId": u}})
                })
                .collect();
            ok(page(items, req, "GroupMemberships"))
        }
        "ListGroupMembershipsForMember" => {
            let uid = req["MemberId"]["UserId"].as_str().unwrap_or("");
            let items = s
                .memberships
                .iter()
                .filter(|(_, (_, u))| u == uid)
                .map(|(m, (g, u))| {
                    json!({"IdentityStoreId": store_id, "MembershipId": m, "GroupId": g, "MemberId": {"UserId": u}})
                })
                .collect();
            ok(page(items, req, "GroupMemberships"))
        }
        "ListAccountAssignmentsForPrincipal" if req["InstanceArn"] == INSTANCE => {
            let kind = req["PrincipalType"].as_str().unwrap_or("");
            let principal = req["PrincipalId"].as_str().unwrap_or("");
            let items = s
                .assignments
                .iter()
                .filter(|(_, _, t, p)| t == kind && p == principal)
                .map(|(ps, a, t, p)| {
                    json!({"AccountId": a, "PermissionSetArn": ps, "PrincipalType": t, "PrincipalId": p})
                })
                .collect();
            ok(page(items, req, "AccountAssignments"))
        }
        "DescribeGroup" => match s.groups.get(req["GroupId"].as_str().unwrap_or("")) {
            Some(g) => ok(g.clone()),
            None => not_found("GROUP"),
        },
        // sso-admin.
        "ListPermissionSets"
        | "DescribePermissionSet"
        | "ListAccountAssignments"
        | "ListAccountsForProvisionedPermissionSet"
        | "CreateAccountAssignment"
        | "DeleteAccountAssignment"
        | "DescribeAccountAssignmentCreationStatus"
        | "DescribeAccountAssignmentDeletionStatus"
            if req["InstanceArn"] != INSTANCE =>
        {
            not_found("Instance")
        }
        "ListPermissionSets" => {
            let arns = s.permission_sets.keys().map(|a| json!(a)).collect();
            ok(page(arns, req, "PermissionSets"))
        }
        "DescribePermissionSet" => {
            let arn = req["PermissionSetArn"].as_str().unwrap_or("");
            match s.permission_sets.get(arn) {
                Some(name) => ok(json!({"PermissionSet": {"Name": name, "PermissionSetArn": arn}})),
                None => not_found("PermissionSet"),
            }
        }
        "ListAccountsForProvisionedPermissionSet" => {
            let arn = req["PermissionSetArn"].as_str().unwrap_or("");
            let mut accounts: Vec<&String> = s
                .assignments
                .iter()
                .filter(|(ps, ..)| ps == arn)
                .map(|(_, a, ..)| a)
                .collect();
            accounts.sort();
            accounts.dedup();
            let items = accounts.into_iter().map(|a| json!(a)).collect();
            ok(page(items, req, "AccountIds"))
        }
        "ListAccountAssignments" => {
            let arn = req["PermissionSetArn"].as_str().unwrap_or("");
            let account = req["AccountId"].as_str().unwrap_or("");
            let items = s
                .assignments
                .iter()
                .filter(|(ps, a, ..)| ps == arn && a == account)
                .map(|(ps, a, t, p)| {
                    json!({"AccountId": a, "PermissionSetArn": ps, "PrincipalType": t, "PrincipalId": p})
                })
                .collect();
            ok(page(items, req, "AccountAssignments"))
        }
        "CreateAccountAssignment" | "DeleteAccountAssignment" => {
            let add = op == "CreateAccountAssignment";
            let arn = req["PermissionSetArn"].as_str().unwrap_or("").to_owned();
            let account = req["TargetId"].as_str().unwrap_or("").to_owned();
            let kind = req["PrincipalType"].as_str().unwrap_or("").to_owned();
            let principal = req["PrincipalId"].as_str().unwrap_or("").to_owned();
            if !s.permission_sets.contains_key(&arn) {
                return not_found("PermissionSet");
            }
            if req["TargetType"] != "AWS_ACCOUNT" || account.len() != 12 {
                return error("ValidationException", "TargetId must be an AWS account id");
            }
            if s.outstanding() >= 10 {
                return error(
                    "ThrottlingException",
                    "Too many outstanding account assignment requests",
                );
            }
            let exists = match kind.as_str() {
                "USER" => s.users.contains_key(&principal),
                "GROUP" => s.groups.contains_key(&principal),
                _ => return error("ValidationException", "PrincipalType must be USER or GROUP"),
            };
            let rid = format!("00000000-0000-4000-8000-{id:012}");
            let mut settled = json!({
                "Status": "SUCCEEDED", "RequestId": rid, "TargetId": account,
                "TargetType": "AWS_ACCOUNT", "PermissionSetArn": arn,
                "PrincipalType": kind, "PrincipalId": principal,
            });
            let held = (arn, account, kind, principal);
            if !exists {
                settled["Status"] = json!("FAILED");
                settled["FailureReason"] = json!(format!(
                    "Received a 404 status error: The principal {} does not exist in the identity store.",
                    held.3
                ));
            } else if add {
                if !s.assignments.contains(&held) {
                    s.assignments.push(held);
                }
            } else {
                s.assignments.retain(|h| *h != held);
            }
            s.requests
                .insert(rid.clone(), (settled, std::time::Instant::now()));
            s.peak_outstanding = s.peak_outstanding.max(s.outstanding());
            let key = if add {
                "AccountAssignmentCreationStatus"
            } else {
                "AccountAssignmentDeletionStatus"
            };
            ok(json!({ key: s.status(&rid) }))
        }
        "DescribeAccountAssignmentCreationStatus" | "DescribeAccountAssignmentDeletionStatus" => {
            let (field, key) = if op == "DescribeAccountAssignmentCreationStatus" {
                (
                    "AccountAssignmentCreationRequestId",
                    "AccountAssignmentCreationStatus",
                )
            } else {
                (
                    "AccountAssignmentDeletionRequestId",
                    "AccountAssignmentDeletionStatus",
                )
            };
            match s.status(req[field].as_str().unwrap_or("")) {
                Some(st) => ok(json!({ key: st })),
                None => not_found("Request"),
            }
        }
        other => (
            StatusCode::BAD_REQUEST,
            json!({"__type": "UnknownOperationException", "Message": format!("{other} is not in this fake")}),
        ),
    }
}
