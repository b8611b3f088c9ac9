//! `/ServiceProviderConfig`, `/Schemas` and `/ResourceTypes`: what the
//! server really does.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};

use super::http::{answer, fail, tenant};
use super::{Inner, Route, ScimStore, St};
use crate::types::{self, ListResponse};

#[derive(Clone, Copy)]
pub(super) enum Discovery {
    Config,
    Schemas,
    ResourceTypes,
}

pub(super) fn schemas() -> Vec<types::Schema> {
    use crate::schema::{
        COMMON, ENTERPRISE_ATTRIBUTES, ENTERPRISE_USER, GROUP, GROUP_ATTRIBUTES, USER,
        USER_ATTRIBUTES,
    };
    vec![
        types::Schema::from_defs(USER, "User", "User Account", &[COMMON, USER_ATTRIBUTES]),
        types::Schema::from_defs(
            ENTERPRISE_USER,
            "EnterpriseUser",
            "Enterprise User",
            &[ENTERPRISE_ATTRIBUTES],
        ),
        types::Schema::from_defs(GROUP, "Group", "Group", &[COMMON, GROUP_ATTRIBUTES]),
    ]
}

pub(super) fn resource_types() -> Vec<Value> {
    use crate::schema::{ENTERPRISE_USER, GROUP, USER};
    vec![
        json!({"schemas": [types::RESOURCE_TYPE], "id": "User", "name": "User", "endpoint": "/Users",
               "description": "User Account", "schema": USER,
               "schemaExtensions": [{"schema": ENTERPRISE_USER, "required": false}]}),
        json!({"schemas": [types::RESOURCE_TYPE], "id": "Group", "name": "Group", "endpoint": "/Groups",
               "description": "Group", "schema": GROUP}),
    ]
}

pub(super) fn config_json<S>(inner: &Inner<S>) -> Value {
    json!({
        "schemas": [types::SERVICE_PROVIDER_CONFIG],
        "patch": {"supported": true},
        "bulk": {"supported": inner.config.bulk, "maxOperations": inner.config.bulk_max_operations,
                 "maxPayloadSize": inner.config.bulk_max_payload},
        "filter": {"supported": true, "maxResults": inner.config.max_results},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication with a bearer token issued per tenant",
            "specUri": "https://www.rfc-editor.org/info/rfc6750",
            "primary": true
        }],
        "meta": {"resourceType": "ServiceProviderConfig"}
    })
}

pub(super) fn discovery<S: ScimStore>(what: Discovery) -> Route<S> {
    get(move |State(inner): St<S>, headers: HeaderMap| async move {
        if let Err(e) = tenant(&inner, &headers) {
            return e.into_response();
        }
        let body = match what {
            Discovery::Config => config_json(&inner),
            Discovery::Schemas => {
                let all: Vec<Value> = schemas()
                    .iter()
                    .map(|s| serde_json::to_value(s).unwrap_or(Value::Null))
                    .collect();
                serde_json::to_value(ListResponse::new(all, 3, 1)).unwrap_or(Value::Null)
            }
            Discovery::ResourceTypes => {
                serde_json::to_value(ListResponse::new(resource_types(), 2, 1))
                    .unwrap_or(Value::Null)
            }
        };
        answer(StatusCode::OK, &body)
    })
}

pub(super) fn discovery_one<S: ScimStore>(what: Discovery) -> Route<S> {
    get(
        move |State(inner): St<S>, headers: HeaderMap, Path(id): Path<String>| async move {
            if let Err(e) = tenant(&inner, &headers) {
                return e.into_response();
            }
            let found = match what {
                Discovery::Schemas => schemas()
                    .into_iter()
                    .find(|s| s.id.eq_ignore_ascii_case(&id))
                    .and_then(|s| serde_json::to_value(s).ok()),
                Discovery::ResourceTypes => resource_types().into_iter().find(|r| {
                    r["id"]
                        .as_str()
                        .is_some_and(|i| i.eq_ignore_ascii_case(&id))
                }),
                Discovery::Config => None,
            };
            match found {
                Some(v) => answer(StatusCode::OK, &v),
                None => fail(StatusCode::NOT_FOUND, None, format!("no {id}")).into_response(),
            }
        },
    )
}
