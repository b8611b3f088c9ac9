//! The schemas of RFC 7643 as data: the core User (section 4.1) with its
//! common attributes (section 3.1), the enterprise extension (section
//! 4.3) and Group (section 4.2). They say which names are attributes (in
//! which case they are canonically spelled), which are multi-valued,
//! case-exact, read-only or never returned; the filter evaluator, PATCH and
//! the server's `/Schemas` follow them. Names compare ignoring case, as
//! the RFC says.

use serde_json::{Map, Value};

/// The core User schema's URN.
pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The core Group schema's URN.
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The enterprise User extension's URN.
pub const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// An attribute's data type (RFC 7643 section 2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttrType {
    /// A string.
    String,
    /// `true` or `false`.
    Boolean,
    /// A real number.
    Decimal,
    /// A whole number.
    Integer,
    /// An RFC 3339 date-time string.
    DateTime,
    /// Base64 text.
    Binary,
    /// A URI.
    Reference,
    /// Sub-attributes.
    Complex,
}

impl AttrType {
    /// The name `/Schemas` gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::Decimal => "decimal",
            AttrType::Integer => "integer",
            AttrType::DateTime => "dateTime",
            AttrType::Binary => "binary",
            AttrType::Reference => "reference",
            AttrType::Complex => "complex",
        }
    }
}

/// Whether and how a client may change an attribute (section 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mutability {
    /// The service provider's alone (`id`, `meta`, a user's `groups`).
    ReadOnly,
    /// Changed freely.
    ReadWrite,
    /// Set on create, never changed after.
    Immutable,
    /// Set, never returned (`password`).
    WriteOnly,
}

impl Mutability {
    /// The name `/Schemas` gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        }
    }
}

/// When an attribute is returned (section 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Returned {
    /// Always, even when `attributes` leaves it out (`id`).
    Always,
    /// Never (`password`).
    Never,
    /// Unless `attributes` or `excludedAttributes` leave it out.
    Default,
    /// Only when `attributes` names it.
    Request,
}

impl Returned {
    /// The name `/Schemas` gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
            Returned::Request => "request",
        }
    }
}

/// One attribute of a schema.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct AttrDef {
    /// The canonical name.
    pub name: &'static str,
    /// Its type.
    pub kind: AttrType,
    /// Whether it holds a list.
    pub multi_valued: bool,
    /// Whether a resource must have it.
    pub required: bool,
    /// Whether its strings compare case-exact.
    pub case_exact: bool,
    /// Who may change it.
    pub mutability: Mutability,
    /// When it is returned.
    pub returned: Returned,
    /// Whether the service keeps it unique (`server`) or not (`none`).
    pub unique: bool,
    /// A complex attribute's sub-attributes.
    pub sub_attributes: &'static [AttrDef],
    /// What it is, for `/Schemas`.
    pub description: &'static str,
}

const fn a(name: &'static str, kind: AttrType, description: &'static str) -> AttrDef {
    AttrDef {
        name,
        kind,
        multi_valued: false,
        required: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        returned: Returned::Default,
        unique: false,
        sub_attributes: &[],
        description,
    }
}

const fn s(name: &'static str, description: &'static str) -> AttrDef {
    a(name, AttrType::String, description)
}

const fn complex(
    name: &'static str,
    multi_valued: bool,
    sub_attributes: &'static [AttrDef],
    description: &'static str,
) -> AttrDef {
    let mut d = a(name, AttrType::Complex, description);
    d.multi_valued = multi_valued;
    d.sub_attributes = sub_attributes;
    d
}

const fn exact(mut d: AttrDef) -> AttrDef {
    d.case_exact = true;
    d
}

const fn read_only(mut d: AttrDef) -> AttrDef {
    d.mutability = Mutability::ReadOnly;
    d
}

const fn immutable(mut d: AttrDef) -> AttrDef {
    d.mutability = Mutability::Immutable;
    d
}

/// The usual sub-attributes of a multi-valued attribute: value, display, type, primary.
const MULTI: &[AttrDef] = &[
    s("value", "The value."),
    s("display", "A human-readable name."),
    s("type", "A label: work, home, other, ..."),
    a("primary", AttrType::Boolean, "The preferred value."),
];

const REF: AttrDef = exact(a("$ref", AttrType::Reference, "The URI of the resource."));

/// The attributes every resource has (RFC 7643 section 3.1).
pub const COMMON: &[AttrDef] = &[
    {
        let mut d = read_only(exact(s("id", "The service provider's unique identifier.")));
        d.returned = Returned::Always;
        d.unique = true;
        d
    },
    exact(s("externalId", "The provisioning client's identifier.")),
    read_only(complex(
        "meta",
        false,
        &[
            read_only(exact(s("resourceType", "The resource type."))),
            read_only(a("created", AttrType::DateTime, "When it was created.")),
            read_only(a(
                "lastModified",
                AttrType::DateTime,
                "When it last changed.",
            )),
            read_only(exact(a("location", AttrType::Reference, "Its URI."))),
            read_only(exact(s("version", "Its version (the ETag)."))),
        ],
        "Resource metadata.",
    )),
];

/// The core User schema's own attributes (RFC 7643 section 4.1).
pub const USER_ATTRIBUTES: &[AttrDef] = &[
    {
        let mut d = s("userName", "The unique login.");
        d.required = true;
        d.unique = true;
        d
    },
    complex(
        "name",
        false,
        &[
            s("formatted", "The full name, formatted."),
            s("familyName", "The family name."),
            s("givenName", "The given name."),
            s("middleName", "The middle name."),
            s("honorificPrefix", "Ms., Dr., ..."),
            s("honorificSuffix", "III, PhD, ..."),
        ],
        "The person's name.",
    ),
    s("displayName", "The name to display."),
    s("nickName", "The casual name."),
    a("profileUrl", AttrType::Reference, "The profile page."),
    s("title", "The job title."),
    s("userType", "Employee, Contractor, ..."),
    s("preferredLanguage", "The preferred language (RFC 7231)."),
    s("locale", "The locale (en-US)."),
    s("timezone", "The time zone (Olson)."),
    a("active", AttrType::Boolean, "Whether the user may sign in."),
    {
        let mut d = exact(s("password", "The cleartext password, set only."));
        d.mutability = Mutability::WriteOnly;
        d.returned = Returned::Never;
        d
    },
    complex("emails", true, MULTI, "Email addresses."),
    complex("phoneNumbers", true, MULTI, "Phone numbers."),
    complex("ims", true, MULTI, "Instant messaging addresses."),
    complex("photos", true, MULTI, "Photo URIs."),
    complex(
        "addresses",
        true,
        &[
            s("formatted", "The full address, formatted."),
            s("streetAddress", "The street."),
            s("locality", "The city."),
            s("region", "The state or region."),
            s("postalCode", "The postal code."),
            s("country", "The country (ISO 3166-1 alpha-2)."),
            s("type", "work, home, other."),
            a("primary", AttrType::Boolean, "The preferred address."),
        ],
        "Physical addresses.",
    ),
    read_only(complex(
        "groups",
        true,
        &[
            read_only(exact(s("value", "The group's id."))),
            read_only(REF),
            read_only(s("display", "The group's name.")),
            read_only(s("type", "direct or indirect.")),
        ],
        "The groups the user belongs to, kept by the service provider.",
    )),
    complex("entitlements", true, MULTI, "Entitlements."),
    complex("roles", true, MULTI, "Roles."),
    complex("x509Certificates", true, MULTI, "Certificates."),
];

/// The enterprise User extension's attributes (RFC 7643 section 4.3).
pub const ENTERPRISE_ATTRIBUTES: &[AttrDef] = &[
    s("employeeNumber", "The employee number."),
    s("costCenter", "The cost center."),
    s("organization", "The organization."),
    s("division", "The division."),
    s("department", "The department."),
    complex(
        "manager",
        false,
        &[
            exact(s("value", "The manager's id.")),
            REF,
            read_only(s("displayName", "The manager's name.")),
        ],
        "The user's manager.",
    ),
];

/// The core Group schema's own attributes (RFC 7643 section 4.2).
pub const GROUP_ATTRIBUTES: &[AttrDef] = &[
    {
        let mut d = s("displayName", "The group's name.");
        d.required = true;
        d
    },
    complex(
        "members",
        true,
        &[
            immutable(exact(s("value", "The member's id."))),
            immutable(REF),
            immutable(s("type", "User or Group.")),
            s("display", "The member's name."),
        ],
        "The group's members.",
    ),
];

/// A resource type's schemas: its core schema and its extensions.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ResourceSchema {
    /// The core schema's URN.
    pub urn: &'static str,
    /// The core schema's attributes, besides [`COMMON`].
    pub attributes: &'static [AttrDef],
    /// Extensions: URN and attributes.
    pub extensions: &'static [(&'static str, &'static [AttrDef])],
}

/// Users with the enterprise extension.
pub const USER_RESOURCE: ResourceSchema = ResourceSchema {
    urn: USER,
    attributes: USER_ATTRIBUTES,
    extensions: &[(ENTERPRISE_USER, ENTERPRISE_ATTRIBUTES)],
};

/// Groups.
pub const GROUP_RESOURCE: ResourceSchema = ResourceSchema {
    urn: GROUP,
    attributes: GROUP_ATTRIBUTES,
    extensions: &[],
};

fn find<'a>(defs: &'a [AttrDef], name: &str) -> Option<&'a AttrDef> {
    defs.iter().find(|d| d.name.eq_ignore_ascii_case(name))
}

impl ResourceSchema {
    /// The attribute `name` (of the core schema, or of the extension
    /// `urn` when given), ignoring case.
    pub fn attribute(&self, urn: Option<&str>, name: &str) -> Option<&'static AttrDef> {
        match urn {
            None => find(COMMON, name).or_else(|| find(self.attributes, name)),
            Some(u) if u.eq_ignore_ascii_case(self.urn) => {
                find(COMMON, name).or_else(|| find(self.attributes, name))
            }
            Some(u) => self
                .extensions
                .iter()
                .find(|(x, _)| x.eq_ignore_ascii_case(u))
                .and_then(|(_, defs)| find(defs, name)),
        }
    }

    /// The definition of `name[.sub]`, ignoring case.
    pub fn definition(
        &self,
        urn: Option<&str>,
        name: &str,
        sub: Option<&str>,
    ) -> Option<&'static AttrDef> {
        let top = self.attribute(urn, name)?;
        match sub {
            None => Some(top),
            Some(sub) => find(top.sub_attributes, sub),
        }
    }

    /// The extension whose URN is `urn`, spelled canonically.
    pub fn extension(&self, urn: &str) -> Option<&'static str> {
        self.extensions
            .iter()
            .map(|(u, _)| *u)
            .find(|u| u.eq_ignore_ascii_case(urn))
    }

    /// Whether strings at `name[.sub]` compare case-exact (unknown: no).
    pub fn case_exact(&self, path: &crate::filter::AttrPath) -> bool {
        self.definition(path.urn.as_deref(), &path.name, path.sub.as_deref())
            .is_some_and(|d| d.case_exact)
    }

    /// Spells every known attribute of `resource` canonically (ignoring
    /// case: `USERNAME` becomes `userName`, an extension's URN its own
    /// spelling), in sub-attributes and extensions too, and reads the
    /// strings `"True"`/`"False"` (any case) of boolean attributes as
    /// booleans (Entra ID sends them). Unknown attributes are kept as sent.
    pub fn canonicalise(&self, resource: &mut Map<String, Value>) {
        let keys: Vec<String> = resource.keys().cloned().collect();
        for key in keys {
            if let Some(urn) = self.extension(&key) {
                let Some(mut v) = resource.remove(&key) else {
                    continue;
                };
                if let Value::Object(ext) = &mut v {
                    let defs = self
                        .extensions
                        .iter()
                        .find(|(u, _)| *u == urn)
                        .map_or(&[][..], |(_, d)| *d);
                    canonical_keys(ext, defs);
                }
                resource.insert(urn.to_owned(), v);
            }
        }
        canonical_keys_with(resource, &[COMMON, self.attributes]);
    }
}

fn canonical_keys(obj: &mut Map<String, Value>, defs: &[AttrDef]) {
    canonical_keys_with(obj, &[defs]);
}

fn canonical_keys_with(obj: &mut Map<String, Value>, sets: &[&[AttrDef]]) {
    let keys: Vec<String> = obj.keys().cloned().collect();
    for key in keys {
        let Some(def) = sets.iter().find_map(|defs| find(defs, &key)) else {
            continue;
        };
        let Some(mut v) = obj.remove(&key) else {
            continue;
        };
        canonical_value(&mut v, def);
        obj.insert(def.name.to_owned(), v);
    }
}

/// A value as its definition says: sub-attributes spelled canonically,
/// booleans sent as strings read as booleans.
pub(crate) fn canonical_value(v: &mut Value, def: &AttrDef) {
    match v {
        Value::Array(items) => {
            for item in items {
                canonical_value(item, def);
            }
        }
        Value::Object(sub) if def.kind == AttrType::Complex => {
            canonical_keys(sub, def.sub_attributes);
        }
        Value::String(text) if def.kind == AttrType::Boolean => {
            if text.eq_ignore_ascii_case("true") {
                *v = Value::Bool(true);
            } else if text.eq_ignore_ascii_case("false") {
                *v = Value::Bool(false);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn names_are_spelled_canonically_and_unknown_ones_kept() {
        let mut user = json!({
            "USERNAME": "bjensen",
            "Name": {"GIVENNAME": "Barbara", "nickname2": "x"},
            "emails": [{"VALUE": "b@example.org", "Primary": "True"}],
            "Active": "False",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user": {"EMPLOYEENUMBER": "7", "Manager": {"VALUE": "m"}},
            "urn:example:custom:2.0:User": {"Badge": "42"},
            "x-custom": [1, 2]
        });
        USER_RESOURCE.canonicalise(user.as_object_mut().unwrap());
        assert_eq!(
            user,
            json!({
                "userName": "bjensen",
                "name": {"givenName": "Barbara", "nickname2": "x"},
                "emails": [{"value": "b@example.org", "primary": true}],
                "active": false,
                ENTERPRISE_USER: {"employeeNumber": "7", "manager": {"value": "m"}},
                "urn:example:custom:2.0:User": {"Badge": "42"},
                "x-custom": [1, 2]
            })
        );
    }

    #[test]
    fn definitions_answer_ignoring_case() {
        let d = USER_RESOURCE
            .definition(None, "EMAILS", Some("Primary"))
            .unwrap();
        assert_eq!(d.kind, AttrType::Boolean);
        let d = USER_RESOURCE
            .definition(
                Some(&ENTERPRISE_USER.to_uppercase()),
                "manager",
                Some("value"),
            )
            .unwrap();
        assert!(d.case_exact);
        assert!(
            USER_RESOURCE
                .definition(Some(USER), "id", None)
                .unwrap()
                .case_exact
        );
        assert!(USER_RESOURCE.definition(None, "nope", None).is_none());
        assert!(
            GROUP_RESOURCE
                .attribute(None, "members")
                .unwrap()
                .multi_valued
        );
    }
}
