//! `/Bulk` (RFC 7644 section 3.7): operations in order, each answered on
//! its own; `failOnErrors` stops after that many errors; a POST's
//! `bulkId` names the resource it creates to the operations after it
//! (`"value": "bulkId:qwerty"`, `"path": "/Groups/bulkId:qwerty"`).

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::http::{Refusal, answer, base, body_of, content_type_ok, etag, fail, tenant};
use super::resource::{do_create, do_delete, do_patch, do_replace};
use super::{Inner, Kind, ScimStore, St, Stored};
use crate::types::{BULK_RESPONSE, BulkOperation, BulkRequest, BulkResponse, BulkResult};

pub(super) async fn bulk<S: ScimStore>(
    State(inner): St<S>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    body: Body,
) -> Response {
    let run = async {
        let tenant = tenant(&inner, &headers)?;
        if !inner.config.bulk {
            return Err(fail(
                StatusCode::NOT_IMPLEMENTED,
                None,
                "/Bulk is not served here",
            ));
        }
        content_type_ok(&headers)?;
        let limit = inner.config.bulk_max_payload;
        let body = body_of(body, limit).await?;
        let req: BulkRequest = serde_json::from_value(body).map_err(|e| {
            fail(
                StatusCode::BAD_REQUEST,
                Some("invalidSyntax"),
                format!("not a BulkRequest: {e}"),
            )
        })?;
        let most = inner.config.bulk_max_operations;
        if req.operations.len() > most {
            return Err(fail(
                StatusCode::PAYLOAD_TOO_LARGE,
                None,
                format!(
                    "{} operations: the most a bulk request takes is {most}",
                    req.operations.len()
                ),
            ));
        }
        let base = base(&inner, &uri, "Bulk");
        let mut created: HashMap<String, String> = HashMap::new();
        let mut errors = 0u32;
        let mut results = Vec::new();
        for op in &req.operations {
            if req.fail_on_errors.is_some_and(|most| errors >= most) {
                break;
            }
            match one(&inner, tenant, &base, op, &mut created).await {
                Ok(r) => results.push(r),
                Err(refusal) => {
                    errors = errors.saturating_add(1);
                    results.push(BulkResult {
                        method: op.method.clone(),
                        bulk_id: op.bulk_id.clone(),
                        version: None,
                        location: None,
                        status: refusal.status.as_u16(),
                        response: Some(refusal.body()),
                    });
                }
            }
        }
        let out = BulkResponse {
            schemas: vec![BULK_RESPONSE.to_owned()],
            operations: results,
        };
        let body = serde_json::to_value(&out).unwrap_or(Value::Null);
        Ok::<_, Refusal>(answer(StatusCode::OK, &body))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// `bulkId:X` for a resource an earlier POST created, as its id.
fn resolve(text: &str, created: &HashMap<String, String>) -> Result<String, Refusal> {
    match text.strip_prefix("bulkId:") {
        Some(name) => created.get(name).cloned().ok_or_else(|| {
            fail(
                StatusCode::CONFLICT,
                Some("invalidValue"),
                format!("bulkId:{name} names no resource created before it in this request"),
            )
        }),
        None => Ok(text.to_owned()),
    }
}

/// Every string `bulkId:X` in `v`, resolved.
fn resolve_all(v: &mut Value, created: &HashMap<String, String>) -> Result<(), Refusal> {
    match v {
        Value::String(s) if s.starts_with("bulkId:") => {
            *s = resolve(s, created)?;
        }
        Value::Array(items) => {
            for item in items {
                resolve_all(item, created)?;
            }
        }
        Value::Object(o) => {
            for item in o.values_mut() {
                resolve_all(item, created)?;
            }
        }
        _ => {}
    }
    Ok(())
}

async fn one<S: ScimStore>(
    inner: &Inner<S>,
    tenant: &str,
    base: &str,
    op: &BulkOperation,
    created: &mut HashMap<String, String>,
) -> Result<BulkResult, Refusal> {
    let bad_path = || {
        fail(
            StatusCode::BAD_REQUEST,
            Some("invalidPath"),
            format!(
                "{:?} is not /Users, /Groups, /Users/ID or /Groups/ID",
                op.path
            ),
        )
    };
    let path = op.path.trim_start_matches('/');
    let (endpoint, id) = match path.split_once('/') {
        Some((e, id)) if !id.is_empty() && !id.contains('/') => (e, Some(id)),
        None => (path, None),
        _ => return Err(bad_path()),
    };
    let kind = match endpoint {
        "Users" => Kind::User,
        "Groups" => Kind::Group,
        _ => return Err(bad_path()),
    };
    let id = id.map(|i| resolve(i, created)).transpose()?;
    let mut data = op.data.clone().unwrap_or(Value::Null);
    resolve_all(&mut data, created)?;
    let want = op.version.as_deref();
    let method = op.method.to_ascii_uppercase();
    let done = |r: &Stored, status: StatusCode| BulkResult {
        method: op.method.clone(),
        bulk_id: op.bulk_id.clone(),
        version: Some(etag(r.version)),
        location: Some(format!("{base}/{}/{}", kind.endpoint(), r.id)),
        status: status.as_u16(),
        response: None,
    };
    match (method.as_str(), id) {
        ("POST", None) => {
            let Some(name) = &op.bulk_id else {
                return Err(fail(
                    StatusCode::BAD_REQUEST,
                    Some("invalidValue"),
                    "a POST in a bulk request needs a bulkId",
                ));
            };
            let r = do_create(inner, tenant, kind, data).await?;
            created.insert(name.clone(), r.id.clone());
            Ok(done(&r, StatusCode::CREATED))
        }
        ("PUT", Some(id)) => {
            let r = do_replace(inner, tenant, kind, &id, data, want).await?;
            Ok(done(&r, StatusCode::OK))
        }
        ("PATCH", Some(id)) => {
            let r = do_patch(inner, tenant, kind, &id, data, want).await?;
            Ok(done(&r, StatusCode::OK))
        }
        ("DELETE", Some(id)) => {
            do_delete(inner, tenant, kind, &id, want).await?;
            Ok(BulkResult {
                method: op.method.clone(),
                bulk_id: op.bulk_id.clone(),
                version: None,
                location: Some(format!("{base}/{}/{id}", kind.endpoint())),
                status: StatusCode::NO_CONTENT.as_u16(),
                response: None,
            })
        }
        ("POST" | "PUT" | "PATCH" | "DELETE", _) => Err(bad_path()),
        (other, _) => Err(fail(
            StatusCode::BAD_REQUEST,
            Some("invalidSyntax"),
            format!("{other} is not POST, PUT, PATCH or DELETE"),
        )),
    }
}
