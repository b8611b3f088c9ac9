//! Lists and searches: `GET /Users?filter=...` and `POST .search`.

use axum::body::Body;
use axum::extract::{OriginalUri, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::http::{
    Refusal, answer, base, body_of, content_type_ok, fail, int, param, params, store_fail, tenant,
};
use super::resource::rendered;
use super::shape::{Shape, listed, shape_of};
use super::{Inner, Kind, Query, ScimStore, St};
use crate::filter::Filter;
use crate::types::ListResponse;

/// What a list or search asks.
pub(super) struct Ask {
    pub(super) query: Query,
    pub(super) shape: Shape,
}

pub(super) fn ask<S>(
    inner: &Inner<S>,
    filter: Option<&str>,
    sort_by: Option<&str>,
    sort_order: Option<&str>,
    start: Option<i64>,
    count: Option<i64>,
    shape: Shape,
) -> Result<Ask, Refusal> {
    let filter = filter
        .filter(|f| !f.trim().is_empty())
        .map(|f| {
            f.parse::<Filter>().map_err(|e| {
                fail(
                    StatusCode::BAD_REQUEST,
                    Some(crate::filter::FilterError::SCIM_TYPE),
                    e.to_string(),
                )
            })
        })
        .transpose()?;
    if let Some(why) = filter
        .as_ref()
        .and_then(|f| inner.config.filters.refusal(f, false))
    {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            Some(crate::filter::FilterError::SCIM_TYPE),
            why,
        ));
    }
    let sort_by = sort_by
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            crate::filter::parse_attr_path(s.trim())
                .map_err(|e| fail(StatusCode::BAD_REQUEST, Some("invalidPath"), e))
        })
        .transpose()?;
    let descending = match sort_order.map(str::to_ascii_lowercase).as_deref() {
        None | Some("ascending") => false,
        Some("descending") => true,
        Some(other) => {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                Some("invalidValue"),
                format!("sortOrder is ascending or descending, not {other}"),
            ));
        }
    };
    // RFC 7644 section 3.4.2.4: below 1 is 1; a negative count is 0.
    let start_index = u64::try_from(start.unwrap_or(1).max(1)).unwrap_or(1);
    let count = u64::try_from(count.unwrap_or(i64::MAX).max(0))
        .unwrap_or(0)
        .min(inner.config.max_results);
    Ok(Ask {
        query: Query {
            filter,
            sort_by,
            descending,
            start_index,
            count,
        },
        shape,
    })
}

pub(super) async fn list<S: ScimStore>(
    State(inner): St<S>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    OriginalUri(uri): OriginalUri,
    kind: Kind,
) -> Response {
    let run = async {
        let tenant = tenant(&inner, &headers)?;
        let p = params(q.as_deref())?;
        let a = ask(
            &inner,
            param(&p, "filter"),
            param(&p, "sortby"),
            param(&p, "sortorder"),
            int(&p, "startIndex")?,
            int(&p, "count")?,
            shape_of(&p)?,
        )?;
        let base = base(&inner, &uri, kind.endpoint());
        page(&inner, tenant, &[kind], &a, &base).await
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

pub(super) async fn page<S: ScimStore>(
    inner: &Inner<S>,
    tenant: &str,
    kinds: &[Kind],
    a: &Ask,
    base: &str,
) -> Result<Response, Refusal> {
    let mut total = 0u64;
    let mut out = Vec::new();
    // Across kinds (a root search): users first, then groups, one index.
    let mut skip = a.query.start_index.saturating_sub(1);
    let mut left = a.query.count;
    for &kind in kinds {
        let mut q = a.query.clone();
        q.start_index = skip.saturating_add(1);
        q.count = left;
        let found = inner
            .store
            .query(tenant, kind, &q)
            .await
            .map_err(store_fail)?;
        total = total.saturating_add(found.total);
        skip = skip.saturating_sub(found.total);
        left = left.saturating_sub(u64::try_from(found.resources.len()).unwrap_or(u64::MAX));
        for r in &found.resources {
            out.push(rendered(inner, tenant, kind, r, base, &a.shape).await?);
        }
    }
    let list = ListResponse::new(out, total, a.query.start_index);
    let body = serde_json::to_value(&list).unwrap_or(Value::Null);
    Ok(answer(StatusCode::OK, &body))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SearchRequest {
    #[serde(default)]
    attributes: Option<Value>,
    #[serde(default)]
    excluded_attributes: Option<Value>,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    sort_by: Option<String>,
    #[serde(default)]
    sort_order: Option<String>,
    #[serde(default)]
    start_index: Option<i64>,
    #[serde(default)]
    count: Option<i64>,
}

pub(super) async fn search<S: ScimStore>(
    State(inner): St<S>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    body: Body,
    kind: Option<Kind>,
) -> Response {
    let run = async {
        let tenant = tenant(&inner, &headers)?;
        content_type_ok(&headers)?;
        let body = body_of(body, inner.config.max_body).await?;
        let s: SearchRequest = serde_json::from_value(body).map_err(|e| {
            fail(
                StatusCode::BAD_REQUEST,
                Some("invalidSyntax"),
                format!("not a SearchRequest: {e}"),
            )
        })?;
        let shape = Shape {
            attributes: listed(s.attributes)?,
            excluded: listed(s.excluded_attributes)?,
        };
        let a = ask(
            &inner,
            s.filter.as_deref(),
            s.sort_by.as_deref(),
            s.sort_order.as_deref(),
            s.start_index,
            s.count,
            shape,
        )?;
        let kinds: &[Kind] = match kind {
            Some(Kind::User) => &[Kind::User],
            Some(Kind::Group) => &[Kind::Group],
            None => &[Kind::User, Kind::Group],
        };
        let endpoint = kind.map_or(".search", Kind::endpoint);
        let base = base(&inner, &uri, endpoint);
        page(&inner, tenant, kinds, &a, &base).await
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}
