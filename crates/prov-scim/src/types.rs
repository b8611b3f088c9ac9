//! The resources and messages of RFC 7643 and RFC 7644 as Rust types with
//! serde. Attribute names are read ignoring case (a resource is first
//! spelled canonically, see [`ResourceSchema::canonicalise`]), booleans
//! sent as `"True"`/`"False"` are read as booleans, and attributes the
//! types do not name (other extensions, custom attributes) are kept in
//! `extra` and written back as they came. A PUT body reads as these types
//! too: there, an attribute absent and one set to `null` both mean
//! "unassigned" (RFC 7644 section 3.5.1); PATCH, where they differ, keeps
//! the difference in [`crate::patch::PatchOperation::value`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::schema::{AttrDef, ENTERPRISE_USER, GROUP_RESOURCE, ResourceSchema, USER_RESOURCE};

/// The ListResponse message's URN.
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// The Error message's URN.
pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
/// The SearchRequest message's URN.
pub const SEARCH_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
/// The BulkRequest message's URN.
pub const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
/// The BulkResponse message's URN.
pub const BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";
/// The ServiceProviderConfig schema's URN.
pub const SERVICE_PROVIDER_CONFIG: &str =
    "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
/// The Schema schema's URN.
pub const SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
/// The ResourceType schema's URN.
pub const RESOURCE_TYPE: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";

/// A resource, spelled canonically by `schema`.
fn canonical<'de, D: Deserializer<'de>>(d: D, schema: &ResourceSchema) -> Result<Value, D::Error> {
    let mut map = Map::<String, Value>::deserialize(d)?;
    schema.canonicalise(&mut map);
    Ok(Value::Object(map))
}

/// Resource metadata (RFC 7643 section 3.1), the service provider's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Meta {
    /// `User`, `Group`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// When it was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
    /// When it last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<DateTime<Utc>>,
    /// Its URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Its version, as its ETag (`W/"3"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A value of a multi-valued attribute (emails, phone numbers, roles, ...).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MultiValue {
    /// The value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    /// `work`, `home`, `other`, ...
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The preferred value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<bool>,
    /// What else a client sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl MultiValue {
    /// A value of type `kind`.
    pub fn new(value: impl Into<String>, kind: impl Into<String>) -> Self {
        MultiValue {
            value: Some(value.into()),
            kind: Some(kind.into()),
            ..MultiValue::default()
        }
    }
}

/// A reference to another resource (a group member, a user's group, a manager).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Reference {
    /// The resource's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Its URI.
    #[serde(default, rename = "$ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// `User` or `Group` (members), `direct` or `indirect` (a user's groups).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    /// A manager's name (the enterprise extension's `manager.displayName`).
    #[serde(
        default,
        rename = "displayName",
        skip_serializing_if = "Option::is_none"
    )]
    pub display_name: Option<String>,
}

impl Reference {
    /// A reference to the resource with id `value`.
    pub fn to(value: impl Into<String>) -> Self {
        Reference {
            value: Some(value.into()),
            ..Reference::default()
        }
    }
}

/// A person's name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Name {
    /// The full name, formatted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formatted: Option<String>,
    /// The family name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    /// The given name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    /// The middle name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    /// Ms., Dr., ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub honorific_prefix: Option<String>,
    /// III, PhD, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub honorific_suffix: Option<String>,
}

/// The enterprise User extension (RFC 7643 section 4.3).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct EnterpriseUser {
    /// The employee number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employee_number: Option<String>,
    /// The cost center.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_center: Option<String>,
    /// The organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// The division.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub division: Option<String>,
    /// The department.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// The manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<Reference>,
    /// What else a client sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A User (RFC 7643 section 4.1) with the enterprise extension.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", remote = "Self")]
#[non_exhaustive]
pub struct User {
    /// The schemas the resource has.
    #[serde(default)]
    pub schemas: Vec<String>,
    /// The service provider's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The provisioning client's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The login, unique ignoring case.
    #[serde(default)]
    pub user_name: String,
    /// The name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Name>,
    /// The name to display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The casual name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nick_name: Option<String>,
    /// The job title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Employee, Contractor, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_type: Option<String>,
    /// The preferred language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_language: Option<String>,
    /// The locale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// The time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Whether the user may sign in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// A password being set: write-only, never serialised.
    #[serde(default, skip_serializing)]
    pub password: Option<Password>,
    /// Email addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<MultiValue>,
    /// Phone numbers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phone_numbers: Vec<MultiValue>,
    /// The groups the user is in (read-only, the service provider's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Reference>,
    /// Entitlements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entitlements: Vec<MultiValue>,
    /// Roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<MultiValue>,
    /// The enterprise extension.
    #[serde(
        default,
        rename = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        skip_serializing_if = "Option::is_none"
    )]
    pub enterprise: Option<EnterpriseUser>,
    /// Metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    /// Every other attribute (ims, photos, addresses, other extensions,
    /// custom ones), as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Serialize for User {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        User::serialize(self, s)
    }
}

impl<'de> Deserialize<'de> for User {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = canonical(d, &USER_RESOURCE)?;
        User::deserialize(v).map_err(serde::de::Error::custom)
    }
}

impl User {
    /// A user with the login `user_name`, of the core schema.
    pub fn new(user_name: impl Into<String>) -> Self {
        User {
            schemas: vec![crate::schema::USER.to_owned()],
            user_name: user_name.into(),
            ..User::default()
        }
    }

    /// With the enterprise extension (listed in `schemas` too).
    pub fn with_enterprise(mut self, ext: EnterpriseUser) -> Self {
        if !self
            .schemas
            .iter()
            .any(|s| s.eq_ignore_ascii_case(ENTERPRISE_USER))
        {
            self.schemas.push(ENTERPRISE_USER.to_owned());
        }
        self.enterprise = Some(ext);
        self
    }
}

/// A password in a request: never in `Debug`, never serialised.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(secret: impl Into<String>) -> Self {
        Password(secret.into())
    }

    /// The password itself, for the code that sets it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A Group (RFC 7643 section 4.2).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", remote = "Self")]
#[non_exhaustive]
pub struct Group {
    /// The schemas the resource has.
    #[serde(default)]
    pub schemas: Vec<String>,
    /// The service provider's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The provisioning client's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The group's name.
    #[serde(default)]
    pub display_name: String,
    /// The members.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<Reference>,
    /// Metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    /// Every other attribute, as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Serialize for Group {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Group::serialize(self, s)
    }
}

impl<'de> Deserialize<'de> for Group {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = canonical(d, &GROUP_RESOURCE)?;
        Group::deserialize(v).map_err(serde::de::Error::custom)
    }
}

impl Group {
    /// A group named `display_name`.
    pub fn new(display_name: impl Into<String>) -> Self {
        Group {
            schemas: vec![crate::schema::GROUP.to_owned()],
            display_name: display_name.into(),
            ..Group::default()
        }
    }
}

/// A page of a list or search (RFC 7644 section 3.4.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ListResponse<T> {
    /// `[LIST_RESPONSE]`.
    #[serde(default)]
    pub schemas: Vec<String>,
    /// How many match in all.
    pub total_results: u64,
    /// The 1-based index of the first resource of this page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_index: Option<u64>,
    /// How many this page holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items_per_page: Option<u64>,
    /// The resources.
    #[serde(rename = "Resources", alias = "resources", default = "Vec::new")]
    pub resources: Vec<T>,
}

impl<T> ListResponse<T> {
    /// A page of `resources` starting at `start_index` of `total_results`.
    pub fn new(resources: Vec<T>, total_results: u64, start_index: u64) -> Self {
        ListResponse {
            schemas: vec![LIST_RESPONSE.to_owned()],
            total_results,
            start_index: Some(start_index),
            items_per_page: Some(u64::try_from(resources.len()).unwrap_or(u64::MAX)),
            resources,
        }
    }
}

/// An error response (RFC 7644 section 3.12): `status` is a string on the
/// wire (`"409"`); a number is accepted when read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ScimError {
    /// `[ERROR]`.
    #[serde(default)]
    pub schemas: Vec<String>,
    /// The HTTP status.
    #[serde(serialize_with = "status_out", deserialize_with = "status_in")]
    pub status: u16,
    /// `uniqueness`, `invalidFilter`, `mutability`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scim_type: Option<String>,
    /// What happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl ScimError {
    /// An error with `status`, `scim_type` and `detail`.
    pub fn new(status: u16, scim_type: Option<&str>, detail: impl Into<String>) -> Self {
        ScimError {
            schemas: vec![ERROR.to_owned()],
            status,
            scim_type: scim_type.map(str::to_owned),
            detail: Some(detail.into()),
        }
    }
}

impl std::fmt::Display for ScimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SCIM error {}", self.status)?;
        if let Some(t) = &self.scim_type {
            write!(f, " ({t})")?;
        }
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ScimError {}

fn status_out<S: Serializer>(status: &u16, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&status.to_string())
}

fn status_in<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => s.trim().parse().map_err(serde::de::Error::custom),
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .ok_or_else(|| serde::de::Error::custom("a status is an HTTP status code")),
        _ => Err(serde::de::Error::custom("a status is an HTTP status code")),
    }
}

/// `{"supported": bool}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Supported {
    /// Whether the feature is supported.
    pub supported: bool,
}

impl Supported {
    /// Supported or not.
    pub fn new(supported: bool) -> Self {
        Supported { supported }
    }
}

/// Bulk's limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct BulkConfig {
    /// Whether `/Bulk` is served.
    pub supported: bool,
    /// Most operations per request.
    pub max_operations: u32,
    /// Most bytes per request.
    pub max_payload_size: u64,
}

/// Filtering's limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct FilterConfig {
    /// Whether `filter` is served.
    pub supported: bool,
    /// Most resources a list returns.
    pub max_results: u32,
}

/// An authentication scheme the service provider takes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct AuthenticationScheme {
    /// `oauthbearertoken`, `httpbasic`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Its name.
    pub name: String,
    /// What it is.
    pub description: String,
    /// Its specification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_uri: Option<String>,
    /// Whether it is the preferred one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<bool>,
}

/// What the service provider does (RFC 7643 section 5).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ServiceProviderConfig {
    /// `[SERVICE_PROVIDER_CONFIG]`.
    #[serde(default)]
    pub schemas: Vec<String>,
    /// Where the service's documentation is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documentation_uri: Option<String>,
    /// PATCH.
    pub patch: Supported,
    /// Bulk.
    pub bulk: BulkConfig,
    /// Filtering.
    pub filter: FilterConfig,
    /// Changing passwords.
    pub change_password: Supported,
    /// Sorting.
    pub sort: Supported,
    /// ETags.
    pub etag: Supported,
    /// How clients authenticate.
    #[serde(default)]
    pub authentication_schemes: Vec<AuthenticationScheme>,
    /// Metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
}

/// One attribute in a [`Schema`] (RFC 7643 section 7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SchemaAttribute {
    /// The name.
    pub name: String,
    /// `string`, `boolean`, `complex`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether it holds a list.
    pub multi_valued: bool,
    /// What it is.
    #[serde(default)]
    pub description: String,
    /// Whether a resource must have it.
    pub required: bool,
    /// Whether strings compare case-exact.
    pub case_exact: bool,
    /// `readOnly`, `readWrite`, `immutable`, `writeOnly`.
    pub mutability: String,
    /// `always`, `never`, `default`, `request`.
    pub returned: String,
    /// `none`, `server`, `global`.
    pub uniqueness: String,
    /// A complex attribute's sub-attributes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sub_attributes: Vec<SchemaAttribute>,
    /// What a reference may point to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reference_types: Vec<String>,
}

impl From<&AttrDef> for SchemaAttribute {
    fn from(d: &AttrDef) -> Self {
        SchemaAttribute {
            name: d.name.to_owned(),
            kind: d.kind.as_str().to_owned(),
            multi_valued: d.multi_valued,
            description: d.description.to_owned(),
            required: d.required,
            case_exact: d.case_exact,
            mutability: d.mutability.as_str().to_owned(),
            returned: d.returned.as_str().to_owned(),
            uniqueness: if d.unique { "server" } else { "none" }.to_owned(),
            sub_attributes: d.sub_attributes.iter().map(SchemaAttribute::from).collect(),
            reference_types: if d.kind == crate::schema::AttrType::Reference {
                vec!["external".to_owned()]
            } else {
                Vec::new()
            },
        }
    }
}

/// A schema (RFC 7643 section 7), as `/Schemas` serves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Schema {
    /// `[SCHEMA]`.
    #[serde(default)]
    pub schemas: Vec<String>,
    /// The schema's URN.
    pub id: String,
    /// Its name.
    pub name: String,
    /// What it is.
    #[serde(default)]
    pub description: String,
    /// Its attributes.
    pub attributes: Vec<SchemaAttribute>,
    /// Metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
}

impl Schema {
    /// The schema `id` named `name` with the attributes `defs`.
    pub fn from_defs(id: &str, name: &str, description: &str, defs: &[&[AttrDef]]) -> Self {
        Schema {
            schemas: vec![SCHEMA.to_owned()],
            id: id.to_owned(),
            name: name.to_owned(),
            description: description.to_owned(),
            attributes: defs
                .iter()
                .flat_map(|d| d.iter())
                // The common attributes (id, externalId, meta) are not part of a schema (RFC 7643 section 3.1).
                .filter(|d| !matches!(d.name, "id" | "externalId" | "meta"))
                .map(SchemaAttribute::from)
                .collect(),
            meta: None,
        }
    }
}

/// An extension a resource type has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SchemaExtension {
    /// The extension's URN.
    pub schema: String,
    /// Whether every resource must have it.
    pub required: bool,
}

/// A resource type (RFC 7643 section 6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ResourceType {
    /// `[RESOURCE_TYPE]`.
    #[serde(default)]
    pub schemas: Vec<String>,
    /// `User`, `Group`.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its endpoint, relative to the base URL (`/Users`).
    pub endpoint: String,
    /// What it is.
    #[serde(default)]
    pub description: String,
    /// Its core schema's URN.
    pub schema: String,
    /// Its extensions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schema_extensions: Vec<SchemaExtension>,
    /// Metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
}

/// One operation of a bulk request (RFC 7644 section 3.7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct BulkOperation {
    /// `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: String,
    /// The client's name for a resource a POST creates, which later
    /// operations reference as `bulkId:NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulk_id: Option<String>,
    /// The version the operation expects (`If-Match`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `/Users`, `/Groups/ID`, ...
    pub path: String,
    /// The body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// A bulk request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct BulkRequest {
    /// `[BULK_REQUEST]`.
    #[serde(default)]
    pub schemas: Vec<String>,
    /// Stop after this many errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_on_errors: Option<u32>,
    /// The operations, in order.
    #[serde(rename = "Operations", alias = "operations")]
    pub operations: Vec<BulkOperation>,
}

/// One operation's result in a bulk response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct BulkResult {
    /// The operation's method.
    pub method: String,
    /// The operation's bulkId.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulk_id: Option<String>,
    /// The resource's version after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The resource's URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The HTTP status, as a string.
    #[serde(serialize_with = "status_out", deserialize_with = "status_in")]
    pub status: u16,
    /// An error's body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
}

/// A bulk response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BulkResponse {
    /// `[BULK_RESPONSE]`.
    #[serde(default)]
    pub schemas: Vec<String>,
    /// The results, in the order of the operations done.
    #[serde(rename = "Operations", alias = "operations")]
    pub operations: Vec<BulkResult>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn a_user_reads_ignoring_case_and_keeps_what_it_does_not_name() {
        let sent = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
                        "urn:example:custom"],
            "USERNAME": "bjensen",
            "Active": "True",
            "name": {"GivenName": "Barbara"},
            "emails": [{"value": "b@example.org", "type": "work", "primary": "true", "x-note": 1}],
            "addresses": [{"locality": "Oslo"}],
            "password": "hunter2",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user": {"department": "Tour", "manager": {"value": "m1"}, "x-floor": 3},
            "urn:example:custom": {"badge": "42"}
        });
        let u: User = serde_json::from_value(sent).unwrap();
        assert_eq!(u.user_name, "bjensen");
        assert_eq!(u.active, Some(true));
        assert_eq!(
            u.name.as_ref().and_then(|n| n.given_name.as_deref()),
            Some("Barbara")
        );
        assert_eq!(u.emails[0].primary, Some(true));
        assert_eq!(u.emails[0].extra["x-note"], 1);
        assert_eq!(u.password.as_ref().map(Password::expose), Some("hunter2"));
        assert!(!format!("{u:?}").contains("hunter2"));
        let ent = u.enterprise.as_ref().unwrap();
        assert_eq!(ent.department.as_deref(), Some("Tour"));
        assert_eq!(ent.extra["x-floor"], 3);
        let back = serde_json::to_value(&u).unwrap();
        assert_eq!(back["urn:example:custom"], json!({"badge": "42"}));
        assert_eq!(back["addresses"], json!([{"locality": "Oslo"}]));
        assert!(
            back.get("password").is_none(),
            "a password is never written"
        );
        assert_eq!(
            back["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["manager"],
            json!({"value": "m1"})
        );
        let again: User = serde_json::from_value(back.clone()).unwrap();
        assert_eq!(
            serde_json::to_value(&again).unwrap(),
            back,
            "a round trip keeps everything"
        );
    }

    #[test]
    fn messages_read_as_the_rfc_writes_them() {
        let e: ScimError = serde_json::from_value(json!({
            "schemas": [ERROR], "scimType": "uniqueness", "detail": "taken", "status": "409"
        }))
        .unwrap();
        assert_eq!(e.status, 409);
        assert_eq!(serde_json::to_value(&e).unwrap()["status"], "409");
        let e: ScimError = serde_json::from_value(json!({"status": 404})).unwrap();
        assert_eq!(e.status, 404);
        let list: ListResponse<Group> = serde_json::from_value(json!({
            "schemas": [LIST_RESPONSE], "totalResults": 2, "startIndex": 1, "itemsPerPage": 1,
            "Resources": [{"displayName": "eng", "members": [{"value": "u1", "$ref": "https://x/Users/u1", "type": "User"}]}]
        }))
        .unwrap();
        assert_eq!(list.total_results, 2);
        assert_eq!(
            list.resources[0].members[0].reference.as_deref(),
            Some("https://x/Users/u1")
        );
        let bulk: BulkRequest = serde_json::from_value(json!({
            "schemas": [BULK_REQUEST], "failOnErrors": 1,
            "Operations": [{"method": "POST", "path": "/Users", "bulkId": "qwerty", "data": {"userName": "a"}}]
        }))
        .unwrap();
        assert_eq!(bulk.operations[0].bulk_id.as_deref(), Some("qwerty"));
        let schema = Schema::from_defs(
            crate::schema::USER,
            "User",
            "User Account",
            &[crate::schema::COMMON, crate::schema::USER_ATTRIBUTES],
        );
        let user_name = &schema.attributes[0];
        assert_eq!(
            (
                user_name.name.as_str(),
                user_name.uniqueness.as_str(),
                user_name.required
            ),
            ("userName", "server", true)
        );
        assert!(schema.attributes.iter().all(|a| a.name != "id"));
    }
}
