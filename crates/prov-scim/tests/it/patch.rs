//! PATCH as RFC 7644 section 3.5.2 and the identity providers' guides
//! write it, and diff then apply giving back the new resource.

use proptest::prelude::*;
use prov_scim::patch::{PatchOp, diff};
use prov_scim::schema::{ENTERPRISE_USER, GROUP_RESOURCE, USER, USER_RESOURCE};
use serde_json::{Map, Value, json};

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(o) => o,
        other => panic!("not an object: {other}"),
    }
}

fn user() -> Map<String, Value> {
    obj(json!({
        "schemas": [USER],
        "id": "2819c223",
        "userName": "bjensen",
        "active": true,
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "meta": {"resourceType": "User", "version": "W/\"1\""}
    }))
}

fn patch(body: Value) -> PatchOp {
    serde_json::from_value(body).unwrap_or_else(|e| panic!("{e}"))
}

fn applied(mut r: Map<String, Value>, body: Value) -> Map<String, Value> {
    patch(body)
        .apply(&mut r, &USER_RESOURCE)
        .unwrap_or_else(|e| panic!("{e}"));
    r
}

fn refused(body: Value) -> (usize, &'static str, String) {
    let mut r = user();
    let before = r.clone();
    let e = patch(body.clone())
        .apply(&mut r, &USER_RESOURCE)
        .expect_err(&format!("{body} was applied"));
    assert_eq!(r, before, "a refused PATCH changed nothing");
    (e.operation, e.scim_type, e.detail)
}

#[test]
fn the_rfc_operations_with_paths() {
    let r = applied(
        user(),
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "add", "path": "emails", "value": [{"value": "b@work.example", "type": "other"}]},
            {"op": "replace", "path": "name.familyName", "value": "Jensen-Smith"},
            {"op": "remove", "path": "emails[type eq \"home\"]"},
            {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "barbara@example.com"},
            {"op": "add", "path": "nickName", "value": "Babs"},
            {"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Tour Operations"}
        ]}),
    );
    assert_eq!(
        r["name"],
        json!({"givenName": "Barbara", "familyName": "Jensen-Smith"})
    );
    assert_eq!(
        r["emails"],
        json!([
            {"value": "barbara@example.com", "type": "work", "primary": true},
            {"value": "b@work.example", "type": "other"}
        ])
    );
    assert_eq!(r["nickName"], "Babs");
    assert_eq!(r[ENTERPRISE_USER], json!({"department": "Tour Operations"}));
    assert_eq!(
        r["schemas"],
        json!([USER, ENTERPRISE_USER]),
        "schemas lists the extension"
    );
    let r = applied(
        r,
        json!({"Operations": [
            {"op": "remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"},
            {"op": "remove", "path": "nickName"},
            {"op": "remove", "path": "name.givenName"},
            {"op": "replace", "path": "emails", "value": {"value": "only@example.com", "primary": true}}
        ]}),
    );
    assert!(!r.contains_key(ENTERPRISE_USER) && !r.contains_key("nickName"));
    assert_eq!(r["schemas"], json!([USER]));
    assert_eq!(r["name"], json!({"familyName": "Jensen-Smith"}));
    assert_eq!(
        r["emails"],
        json!([{"value": "only@example.com", "primary": true}])
    );
}

#[test]
fn path_less_operations_with_dotted_and_urn_keys() {
    let r = applied(
        user(),
        json!({"Operations": [{"op": "add", "value": {
            "NICKNAME": "Babs",
            "name.middleName": "Jane",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "701984",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"costCenter": "4130"},
            "emails": [{"value": "new@example.com", "type": "other"}],
            "x-custom": "kept"
        }}]}),
    );
    assert_eq!(r["nickName"], "Babs");
    assert_eq!(r["name"]["middleName"], "Jane");
    assert_eq!(
        r["name"]["givenName"], "Barbara",
        "sub-attributes not given stay"
    );
    assert_eq!(
        r[ENTERPRISE_USER],
        json!({"employeeNumber": "701984", "costCenter": "4130"})
    );
    assert_eq!(r["emails"].as_array().map(Vec::len), Some(3), "add appends");
    assert_eq!(r["x-custom"], "kept", "an unknown attribute is kept");
    // A replace of a multi-valued attribute replaces the whole list.
    let r = applied(
        r,
        json!({"Operations": [{"op": "replace", "value": {"emails": [{"value": "x@example.com"}]}}]}),
    );
    assert_eq!(r["emails"], json!([{"value": "x@example.com"}]));
}

#[test]
fn what_okta_sends() {
    // Deactivate and reactivate (Okta's SCIM 2.0 guide).
    let off = applied(
        user(),
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": false}}]}),
    );
    assert_eq!(off["active"], false);
    let on = applied(
        off,
        json!({"Operations": [{"op": "replace", "value": {"active": true}}]}),
    );
    assert_eq!(on["active"], true);
    // Group push: rename with the group's own id, add and remove members.
    let mut group = obj(
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": "abf4dd94",
        "displayName": "Test SCIMv2", "members": [{"value": "u1", "display": "a@example.com"}]}),
    );
    patch(json!({"Operations": [{"op": "replace", "value": {"id": "abf4dd94", "displayName": "Test SCIMv2 renamed"}}]}))
        .apply(&mut group, &GROUP_RESOURCE)
        .unwrap();
    assert_eq!(group["displayName"], "Test SCIMv2 renamed");
    patch(json!({"Operations": [
        {"op": "add", "path": "members", "value": [{"value": "u2", "display": "b@example.com"}, {"value": "u1"}]},
        {"op": "remove", "path": "members[value eq \"u1\"]"}
    ]}))
    .apply(&mut group, &GROUP_RESOURCE)
    .unwrap();
    assert_eq!(
        group["members"],
        json!([{"value": "u2", "display": "b@example.com"}])
    );
    // Okta replaces all members with a list.
    patch(json!({"Operations": [{"op": "replace", "path": "members", "value": [{"value": "u3"}, {"value": "u4"}]}]}))
        .apply(&mut group, &GROUP_RESOURCE)
        .unwrap();
    assert_eq!(group["members"], json!([{"value": "u3"}, {"value": "u4"}]));
    // A changed id is refused.
    let e = patch(json!({"Operations": [{"op": "replace", "value": {"id": "other"}}]}))
        .apply(&mut group, &GROUP_RESOURCE)
        .unwrap_err();
    assert_eq!(e.scim_type, "mutability");
}

#[test]
fn what_entra_id_sends() {
    // Microsoft's "Develop a SCIM endpoint" examples.
    let r = applied(
        user(),
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
            {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "9a1c2b"},
            {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555 0100"}
        ]}),
    );
    assert_eq!(r["emails"][0]["value"], "updatedEmail@microsoft.com");
    assert_eq!(r["name"]["familyName"], "updatedFamilyName");
    assert_eq!(r["active"], false, "\"False\" is the boolean false");
    assert_eq!(r[ENTERPRISE_USER]["manager"], json!({"value": "9a1c2b"}));
    assert_eq!(
        r["phoneNumbers"],
        json!([{"type": "mobile", "value": "+1 555 0100"}])
    );
    // Members: add as Entra does, with "$ref": null; remove with a value list.
    let mut group = obj(
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": "g1", "displayName": "eng"}),
    );
    patch(json!({"Operations": [{"op": "Add", "path": "members",
        "value": [{"$ref": null, "value": "u1"}, {"$ref": null, "value": "u2"}, {"value": "u3"}]}]}))
        .apply(&mut group, &GROUP_RESOURCE)
        .unwrap();
    assert_eq!(
        group["members"],
        json!([{"value": "u1"}, {"value": "u2"}, {"value": "u3"}])
    );
    patch(json!({"Operations": [{"op": "Remove", "path": "members", "value": [{"value": "u1"}, {"value": "u3"}]}]}))
        .apply(&mut group, &GROUP_RESOURCE)
        .unwrap();
    assert_eq!(group["members"], json!([{"value": "u2"}]));
    patch(json!({"Operations": [{"op": "Remove", "path": "members", "value": [{"value": "u2"}]}]}))
        .apply(&mut group, &GROUP_RESOURCE)
        .unwrap();
    assert!(
        !group.contains_key("members"),
        "an empty list is unassigned"
    );
}

#[test]
fn refusals_name_the_operation_and_type() {
    let cases = [
        (json!({"Operations": [{"op": "remove"}]}), 0, "noTarget"),
        (
            json!({"Operations": [{"op": "add", "path": "nickName", "value": "x"}, {"op": "add", "path": "emails[type eq", "value": "x"}]}),
            1,
            "invalidPath",
        ),
        (
            json!({"Operations": [{"op": "replace", "path": "id", "value": "other"}]}),
            0,
            "mutability",
        ),
        (
            json!({"Operations": [{"op": "remove", "path": "userName"}]}),
            0,
            "mutability",
        ),
        (
            json!({"Operations": [{"op": "add", "path": "groups", "value": [{"value": "g"}]}]}),
            0,
            "mutability",
        ),
        (
            json!({"Operations": [{"op": "replace", "path": "emails[type co \"mob\"].value", "value": "x"}]}),
            0,
            "noTarget",
        ),
        (
            json!({"Operations": [{"op": "add", "value": "not an object"}]}),
            0,
            "invalidValue",
        ),
        (
            json!({"Operations": [{"op": "add", "path": "nickName"}]}),
            0,
            "invalidValue",
        ),
        (
            json!({"Operations": [{"op": "replace", "path": "name", "value": "x"}]}),
            0,
            "invalidValue",
        ),
    ];
    for (body, at, kind) in cases {
        let (i, t, detail) = refused(body.clone());
        assert_eq!((i, t), (at, kind), "{body}: {detail}");
    }
    assert!(serde_json::from_value::<PatchOp>(json!({"Operations": [{"op": "upsert"}]})).is_err());
}

#[test]
fn null_and_absent_differ() {
    let op: PatchOp =
        patch(json!({"Operations": [{"op": "replace", "path": "nickName", "value": null}]}));
    assert_eq!(op.operations[0].value, Some(Value::Null));
    let op: PatchOp = patch(json!({"Operations": [{"op": "remove", "path": "nickName"}]}));
    assert_eq!(op.operations[0].value, None);
    let mut r = user();
    r.insert("nickName".into(), json!("Babs"));
    let r = applied(
        r,
        json!({"Operations": [{"op": "replace", "path": "nickName", "value": null}]}),
    );
    assert!(!r.contains_key("nickName"), "replace with null unassigns");
    assert_eq!(
        serde_json::to_value(op).unwrap(),
        json!({"schemas": [], "Operations": [{"op": "remove", "path": "nickName"}]})
    );
}

#[test]
fn a_diff_is_minimal() {
    let old = user();
    let mut new = old.clone();
    new.insert("active".into(), json!(false));
    new["name"]["familyName"] = json!("Smith");
    new.insert(
        "emails".into(),
        json!([{"value": "bjensen@example.com", "type": "work", "primary": true},
               {"value": "b2@example.com", "type": "other"}]),
    );
    let p = diff(&old, &new, &USER_RESOURCE);
    assert_eq!(
        serde_json::to_value(&p.operations).unwrap(),
        json!([
            {"op": "replace", "path": "active", "value": false},
            {"op": "remove", "path": "emails[value eq \"babs@jensen.org\"]"},
            {"op": "add", "path": "emails", "value": [{"value": "b2@example.com", "type": "other"}]},
            {"op": "replace", "path": "name.familyName", "value": "Smith"}
        ])
    );
}

fn a_user() -> impl Strategy<Value = Map<String, Value>> {
    let word = "[a-z]{1,6}";
    (
        proptest::option::of(any::<bool>()),
        proptest::option::of(word),
        proptest::option::of((proptest::option::of(word), proptest::option::of(word))),
        proptest::collection::btree_set("[a-d]{1,2}", 0..4),
        proptest::option::of(word),
        proptest::collection::btree_set("[a-d]", 0..5),
    )
        .prop_map(|(active, nick, name, emails, dept, groups_like)| {
            let mut u = obj(json!({"schemas": [USER], "id": "1", "userName": "bjensen"}));
            if let Some(a) = active {
                u.insert("active".into(), json!(a));
            }
            if let Some(n) = nick {
                u.insert("nickName".into(), json!(n));
            }
            if let Some((g, f)) = name {
                let mut n = Map::new();
                if let Some(g) = g {
                    n.insert("givenName".into(), json!(g));
                }
                if let Some(f) = f {
                    n.insert("familyName".into(), json!(f));
                }
                if !n.is_empty() {
                    u.insert("name".into(), Value::Object(n));
                }
            }
            if !emails.is_empty() {
                let list: Vec<Value> = emails
                    .iter()
                    .map(|e| json!({"value": format!("{e}@example.org"), "type": "work"}))
                    .collect();
                u.insert("emails".into(), Value::Array(list));
            }
            if let Some(d) = dept {
                u.insert(ENTERPRISE_USER.into(), json!({"department": d}));
                u.insert("schemas".into(), json!([USER, ENTERPRISE_USER]));
            }
            if !groups_like.is_empty() {
                let list: Vec<Value> = groups_like.iter().map(|e| json!({"value": e})).collect();
                u.insert("entitlements".into(), Value::Array(list));
            }
            u
        })
}

fn unordered(v: Value) -> Value {
    match v {
        Value::Array(items) => {
            let mut items: Vec<Value> = items.into_iter().map(unordered).collect();
            items.sort_by_key(Value::to_string);
            Value::Array(items)
        }
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, unordered(v))).collect()),
        other => other,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Applying the diff of two users to the first gives the second.
    #[test]
    fn diff_then_apply_gives_the_new_resource(old in a_user(), new in a_user()) {
        let p = diff(&old, &new, &USER_RESOURCE);
        let mut got = old.clone();
        p.apply(&mut got, &USER_RESOURCE).map_err(|e| TestCaseError::fail(format!("{e}: {p:?}")))?;
        // Multi-valued attributes have no order (RFC 7643 section 2.4).
        prop_assert_eq!(unordered(Value::Object(got)), unordered(Value::Object(new.clone())), "{:?}", p);
        if old == new {
            prop_assert!(p.operations.is_empty());
        }
    }
}
