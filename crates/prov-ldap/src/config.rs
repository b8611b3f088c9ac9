//! What the connector needs to know about a directory: where it is, how to
//! bind, and the directory's dialect (object classes, naming, groups,
//! disabling) as data. Presets give the usual dialects; every field can be
//! changed afterwards.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A password that never shows in `Debug` output, errors or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(secret: impl Into<String>) -> Self {
        Password(secret.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Tls {
    /// As the URL says: `ldaps://` is TLS from the first byte, `ldap://` is plain.
    #[default]
    FromUrl,
    /// `ldap://` upgraded with StartTLS before the bind.
    StartTls,
}

/// Connection settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectionConfig {
    /// `ldap://host:389` or `ldaps://host:636`.
    pub url: String,
    /// The DN to bind as; anonymous when `None`.
    pub bind_dn: Option<String>,
    /// The bind password.
    pub password: Option<Password>,
    /// StartTLS or as the URL says.
    pub tls: Tls,
    /// PEM file with the CA certificates to trust; the system's roots when `None`.
    pub ca_file: Option<PathBuf>,
    /// How long connecting (TCP, TLS and bind) may take.
    pub connect_timeout: Duration,
    /// How long one operation may take.
    pub operation_timeout: Duration,
    /// Operations in flight at once on the connection (pipelining).
    pub max_in_flight: usize,
    /// Bind with a password over a connection with no TLS (`ldap://`
    /// without StartTLS), where anyone on the path reads the password.
    /// Refused unless this is set: for a test server on the loopback.
    pub danger_allow_plaintext_bind: bool,
}

impl ConnectionConfig {
    /// Plain settings for `url`, anonymous, with 10 s / 30 s timeouts and 32 operations in flight.
    pub fn new(url: impl Into<String>) -> Self {
        ConnectionConfig {
            url: url.into(),
            bind_dn: None,
            password: None,
            tls: Tls::FromUrl,
            ca_file: None,
            connect_timeout: Duration::from_secs(10),
            operation_timeout: Duration::from_secs(30),
            max_in_flight: 32,
            danger_allow_plaintext_bind: false,
        }
    }
}

/// How the value of a model attribute is written in the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Syntax {
    /// One string value.
    #[default]
    String,
    /// Several string values (a model list).
    Strings,
    /// An integer in decimal.
    Integer,
    /// `TRUE` or `FALSE`.
    Boolean,
    /// GeneralizedTime, `YYYYMMDDHHMMSSZ`.
    Time,
    /// Raw bytes (`jpegPhoto`, `objectGUID`).
    Binary,
}

/// One model attribute's place in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttributeMap {
    /// The directory attribute.
    pub ldap: String,
    /// How values are written.
    pub syntax: Syntax,
}

impl AttributeMap {
    /// A single-valued string attribute.
    pub fn string(ldap: impl Into<String>) -> Self {
        AttributeMap {
            ldap: ldap.into(),
            syntax: Syntax::String,
        }
    }

    /// An attribute with the given syntax.
    pub fn with_syntax(ldap: impl Into<String>, syntax: Syntax) -> Self {
        AttributeMap {
            ldap: ldap.into(),
            syntax,
        }
    }
}

/// Where accounts live and what they look like.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AccountsConfig {
    /// Where new accounts are created, and the first base searched.
    pub base: String,
    /// More bases searched for accounts (never written outside `base` and these).
    pub more_bases: Vec<String>,
    /// Which entries under the bases are accounts, e.g. `(objectClass=inetOrgPerson)`.
    pub filter: String,
    /// The attribute that holds the login (`uid`, `sAMAccountName`).
    pub login_attribute: String,
    /// The naming attribute of an account's DN (`uid`, `cn`): the DN is
    /// `rdn_attribute=<value>,base`, the value being the login unless the
    /// attributes set `rdn_attribute` themselves.
    pub rdn_attribute: String,
    /// Object classes of a new account.
    pub object_classes: Vec<String>,
    /// Model attribute name to directory attribute. Only these are read and written.
    pub attributes: BTreeMap<String, AttributeMap>,
    /// Directory attributes a new entry gets when the request does not set
    /// them; `{login}` is replaced by the login (e.g. `cn = "{login}"` for
    /// `inetOrgPerson`, which must have `cn` and `sn`).
    pub defaults: BTreeMap<String, String>,
    /// A directory attribute the connector keeps each create's marker in
    /// (`CreateAccount::marker`, read back as `Account::marker`), e.g.
    /// `description` where nothing else writes it, or `adminDescription`
    /// on Active Directory. Unset, creates carry no marker, and after a
    /// create whose reply was lost the engine leaves an account with the
    /// login to correlation (linked, not created) rather than guess.
    pub marker_attribute: Option<String>,
    /// A directory attribute an enabled new account must be given a value
    /// of: `unicodePwd` on Active Directory, which refuses an enabled user
    /// without a password (53, `0000052D`). A create of an enabled account
    /// without it is refused before anything is sent (`InvalidInput`,
    /// field `password`); create it disabled, or map a secret attribute to
    /// it. Default: none, `unicodePwd` for the AD preset.
    pub enabled_needs: Option<String>,
}

/// How a group lists its members.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemberStyle {
    /// Members by DN in this attribute (`member` for groupOfNames, AD and
    /// RFC2307bis; `uniqueMember` for groupOfUniqueNames).
    Dn(String),
    /// Members by login in this attribute (`memberUid` for posixGroup).
    Login(String),
}

impl MemberStyle {
    /// The attribute that holds members.
    pub fn attribute(&self) -> &str {
        match self {
            MemberStyle::Dn(a) | MemberStyle::Login(a) => a,
        }
    }
}

/// Where groups live and how they hold members.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GroupsConfig {
    /// Groups are the entries under this base matching `filter`; an
    /// entitlement id is a group's name (`name_attribute`), its DN
    /// `name_attribute=<name>,base`.
    pub base: String,
    /// Which entries are groups, e.g. `(objectClass=groupOfNames)`.
    pub filter: String,
    /// The naming attribute (`cn`).
    pub name_attribute: String,
    /// How members are held.
    pub members: MemberStyle,
    /// How an account's groups are found when accounts are read: an
    /// attribute of the account listing its groups' DNs (`memberOf`, kept by
    /// the memberof overlay and by AD), or `None` to read every group under
    /// `base` once per listing and invert.
    pub member_of: Option<String>,
    /// A member value kept in every group so that a group whose schema
    /// needs a member (groupOfNames) never becomes empty; never reported
    /// as an account.
    pub placeholder_member: Option<String>,
    /// Members per modify request (default 500).
    pub batch_size: usize,
    /// The object classes of a group the engine creates
    /// (`create_entitlement`), e.g. `groupOfNames`; empty: groups are not
    /// created here.
    pub object_classes: Vec<String>,
    /// Whether the schema needs a group to hold a member (groupOfNames and
    /// groupOfUniqueNames: `MUST member`): a created group then holds
    /// `placeholder_member`, without which groups are not created.
    pub member_required: bool,
    /// The `gidNumber`s a created `posixGroup` takes, first to last: one
    /// above the highest in use in the range, else the lowest free one;
    /// a full range is an error. `None` for groups without a gidNumber.
    pub gid_numbers: Option<(u32, u32)>,
    /// Read each account before granting it a group, so that a missing
    /// account fails alone. Needed where the directory accepts members
    /// that do not exist (groupOfUniqueNames, posixGroup); off where it
    /// refuses them itself (AD; OpenLDAP with `memberof-dangling error`).
    pub verify_members: bool,
}

/// How an account is disabled.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisableMethod {
    /// The account cannot be disabled here.
    None,
    /// OpenLDAP's ppolicy overlay: `pwdAccountLockedTime: 000001010000Z`
    /// locks the account until the attribute is removed (the overlay needs
    /// a default policy with `pwdLockout: TRUE`).
    PasswordPolicy,
    /// An attribute that holds `disabled` when disabled and is removed (or
    /// set to `enabled`, when given) when enabled, e.g. 389-DS
    /// `nsAccountLock: TRUE`.
    Attribute {
        /// The attribute.
        name: String,
        /// Its value on a disabled account.
        disabled: String,
        /// Its value on an enabled account; removed when `None`.
        enabled: Option<String>,
    },
    /// Active Directory: bit 0x2 (ACCOUNTDISABLE) of `userAccountControl`.
    UserAccountControl,
}

/// Where `changes_since` reads what changed, deletions included. Without
/// one the connector does not offer `changes_since`: a search by
/// `modifyTimestamp` cannot see an entry that is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChangeLog {
    /// None: `changes_since` is unsupported.
    None,
    /// OpenLDAP's accesslog overlay (`slapo-accesslog`), its log database
    /// at `base` (e.g. `cn=accesslog`), logging at least `writes` with
    /// `logsuccess TRUE`. For a deleted group to count as a change of its
    /// members, the overlay needs `logold` matching groups (the delete
    /// record then holds the members).
    AccessLog {
        /// The log database's suffix.
        base: String,
    },
    /// Active Directory: update sequence numbers (`uSNChanged`, the first
    /// token from the root DSE's `highestCommittedUSN`), deleted accounts
    /// read from `CN=Deleted Objects` with the show-deleted control. USNs
    /// belong to one domain controller: a token is refused by another.
    Usn,
}

/// The directory's dialect: presets for the usual servers. In settings
/// files: `openldap`, `openldap-unique-member`, `posix`, `rfc2307bis`,
/// `active-directory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[non_exhaustive]
pub enum Dialect {
    /// OpenLDAP: inetOrgPerson under `ou=people`, groupOfNames under
    /// `ou=groups` with `member` DNs and the memberof overlay, ppolicy to disable.
    #[serde(rename = "openldap")]
    OpenLdap,
    /// OpenLDAP with groupOfUniqueNames (`uniqueMember`).
    #[serde(rename = "openldap-unique-member")]
    OpenLdapUniqueMember,
    /// posixAccount and posixGroup with `memberUid` logins (RFC 2307).
    #[serde(rename = "posix")]
    Posix,
    /// RFC2307bis: posixGroup that is also a groupOfNames (`member` DNs).
    #[serde(rename = "rfc2307bis")]
    Rfc2307bis,
    /// Active Directory: user objects named by `cn` under `CN=Users`,
    /// `sAMAccountName` logins, `userAccountControl` to disable, groups
    /// with `member` DNs and `memberOf`.
    #[serde(rename = "active-directory")]
    ActiveDirectory,
}

/// Everything the connector is configured with.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LdapConfig {
    /// The connection.
    pub connection: ConnectionConfig,
    /// Which preset the rest came from (AD-only behaviour such as ranged
    /// retrieval of `member` and `unicodePwd` follows it).
    pub dialect: Dialect,
    /// Accounts.
    pub accounts: AccountsConfig,
    /// Groups.
    pub groups: GroupsConfig,
    /// Disabling.
    pub disable: DisableMethod,
    /// Where changes are read from (default: [`ChangeLog::Usn`] on Active
    /// Directory, none elsewhere).
    pub changes: ChangeLog,
    /// Entries per page when listing (RFC 2696 paged results; default
    /// 1000, the most Active Directory gives by default).
    pub page_size: usize,
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, AttributeMap> {
    pairs
        .iter()
        .map(|(m, l)| ((*m).to_owned(), AttributeMap::string(*l)))
        .collect()
}

/// The gidNumbers created posixGroups take by default: above the range
/// distributions give users' private groups (1000-9999 on most), below
/// 60000 where Debian's reserved ranges start.
pub(crate) const GID_NUMBERS: (u32, u32) = (10_000, 59_999);

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

impl LdapConfig {
    /// The preset `dialect` for a directory at `url` whose naming context is
    /// `suffix` (e.g. `dc=example,dc=org`).
    pub fn new(dialect: Dialect, url: impl Into<String>, suffix: &str) -> Self {
        let connection = ConnectionConfig::new(url);
        let people = format!("ou=people,{suffix}");
        let groups = format!("ou=groups,{suffix}");
        let inet = map(&[
            ("display_name", "displayName"),
            ("full_name", "cn"),
            ("given_name", "givenName"),
            ("family_name", "sn"),
            ("mail", "mail"),
            ("title", "title"),
            ("department", "departmentNumber"),
            ("employee_number", "employeeNumber"),
            ("phone", "telephoneNumber"),
        ]);
        let inet_defaults: BTreeMap<String, String> = [("cn", "{login}"), ("sn", "{login}")]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let group = |filter: &str, members: MemberStyle, member_of: Option<&str>| GroupsConfig {
            base: groups.clone(),
            filter: filter.to_owned(),
            name_attribute: "cn".to_owned(),
            members,
            member_of: member_of.map(str::to_owned),
            placeholder_member: None,
            object_classes: Vec::new(),
            member_required: false,
            gid_numbers: None,
            batch_size: 500,
            verify_members: member_of.is_none(),
        };
        // What a created group is, per dialect.
        let made = |mut g: GroupsConfig, classes: &[&str], member_required: bool| {
            g.object_classes = strings(classes);
            g.member_required = member_required;
            if classes.contains(&"posixGroup") {
                g.gid_numbers = Some(GID_NUMBERS);
            }
            g
        };
        let accounts = |filter: &str, classes: &[&str], attributes, defaults| AccountsConfig {
            base: people.clone(),
            more_bases: Vec::new(),
            filter: filter.to_owned(),
            login_attribute: "uid".to_owned(),
            rdn_attribute: "uid".to_owned(),
            object_classes: strings(classes),
            attributes,
            defaults,
            marker_attribute: None,
            enabled_needs: None,
        };
        let (accounts, groups, disable) = match dialect {
            Dialect::OpenLdap => (
                accounts(
                    "(objectClass=inetOrgPerson)",
                    &["inetOrgPerson"],
                    inet,
                    inet_defaults,
                ),
                made(
                    group(
                        "(objectClass=groupOfNames)",
                        MemberStyle::Dn("member".to_owned()),
                        Some("memberOf"),
                    ),
                    &["groupOfNames"],
                    true,
                ),
                DisableMethod::PasswordPolicy,
            ),
            Dialect::OpenLdapUniqueMember => (
                accounts(
                    "(objectClass=inetOrgPerson)",
                    &["inetOrgPerson"],
                    inet,
                    inet_defaults,
                ),
                made(
                    group(
                        "(objectClass=groupOfUniqueNames)",
                        MemberStyle::Dn("uniqueMember".to_owned()),
                        None,
                    ),
                    &["groupOfUniqueNames"],
                    true,
                ),
                DisableMethod::PasswordPolicy,
            ),
            Dialect::Posix | Dialect::Rfc2307bis => {
                let mut attributes = inet;
                for (m, l, s) in [
                    ("uid_number", "uidNumber", Syntax::Integer),
                    ("gid_number", "gidNumber", Syntax::Integer),
                    ("home_directory", "homeDirectory", Syntax::String),
                    ("login_shell", "loginShell", Syntax::String),
                ] {
                    attributes.insert(m.to_owned(), AttributeMap::with_syntax(l, s));
                }
                let (members, classes, required): (_, &[&str], _) = if dialect == Dialect::Posix {
                    (
                        MemberStyle::Login("memberUid".to_owned()),
                        &["posixGroup"],
                        false,
                    )
                } else {
                    (
                        MemberStyle::Dn("member".to_owned()),
                        &["groupOfNames", "posixGroup"],
                        true,
                    )
                };
                (
                    accounts(
                        "(objectClass=posixAccount)",
                        &["inetOrgPerson", "posixAccount"],
                        attributes,
                        inet_defaults,
                    ),
                    made(
                        group("(objectClass=posixGroup)", members, None),
                        classes,
                        required,
                    ),
                    DisableMethod::PasswordPolicy,
                )
            }
            Dialect::ActiveDirectory => {
                let users = format!("CN=Users,{suffix}");
                let mut attributes = map(&[
                    ("display_name", "displayName"),
                    ("given_name", "givenName"),
                    ("family_name", "sn"),
                    ("mail", "mail"),
                    ("title", "title"),
                    ("department", "department"),
                    ("employee_number", "employeeNumber"),
                    ("phone", "telephoneNumber"),
                    ("upn", "userPrincipalName"),
                ]);
                attributes.insert(
                    "object_guid".to_owned(),
                    AttributeMap::with_syntax("objectGUID", Syntax::Binary),
                );
                (
                    AccountsConfig {
                        base: users.clone(),
                        more_bases: Vec::new(),
                        // Built-in and protected objects (Administrator, krbtgt,
                        // members of the protected groups) are never the
                        // engine's: never listed, so never orphans, never matched.
                        filter: "(&(objectCategory=person)(objectClass=user)\
                                 (!(isCriticalSystemObject=TRUE))(!(adminCount=1)))"
                            .to_owned(),
                        login_attribute: "sAMAccountName".to_owned(),
                        rdn_attribute: "cn".to_owned(),
                        object_classes: strings(&["top", "person", "organizationalPerson", "user"]),
                        attributes,
                        defaults: BTreeMap::new(),
                        marker_attribute: None,
                        enabled_needs: Some("unicodePwd".to_owned()),
                    },
                    GroupsConfig {
                        base: users,
                        // The built-in groups (Domain Users, Domain Admins,
                        // ...) are never the engine's: not listed, so never
                        // granted or retired.
                        filter: "(&(objectClass=group)(!(isCriticalSystemObject=TRUE))\
                                 (!(adminCount=1)))"
                            .to_owned(),
                        name_attribute: "cn".to_owned(),
                        members: MemberStyle::Dn("member".to_owned()),
                        member_of: Some("memberOf".to_owned()),
                        placeholder_member: None,
                        // A global security group (AD's default groupType).
                        object_classes: strings(&["top", "group"]),
                        member_required: false,
                        gid_numbers: None,
                        batch_size: 500,
                        verify_members: false,
                    },
                    DisableMethod::UserAccountControl,
                )
            }
        };
        let changes = if dialect == Dialect::ActiveDirectory {
            ChangeLog::Usn
        } else {
            ChangeLog::None
        };
        LdapConfig {
            connection,
            dialect,
            accounts,
            groups,
            disable,
            changes,
            page_size: 1000,
        }
    }

    /// Binds as `dn` with `password`.
    pub fn bind(mut self, dn: impl Into<String>, password: Password) -> Self {
        self.connection.bind_dn = Some(dn.into());
        self.connection.password = Some(password);
        self
    }

    /// Whether a password is bound in the clear (allowed only by
    /// `danger_allow_plaintext_bind`): say so wherever the config is used.
    pub fn binds_in_the_clear(&self) -> bool {
        self.connection.password.is_some()
            && self.connection.url.starts_with("ldap://")
            && self.connection.tls != Tls::StartTls
    }

    /// Checks the settings that would otherwise fail later and less clearly.
    pub fn validate(&self) -> Result<(), prov_core::Error> {
        let bad = |field: &str, msg: String| Err(prov_core::Error::invalid_input(field, msg));
        let url = &self.connection.url;
        if !(url.starts_with("ldap://") || url.starts_with("ldaps://")) {
            return bad(
                "connection.url",
                format!("{url:?} is not an ldap:// or ldaps:// URL"),
            );
        }
        if self.connection.tls == Tls::StartTls && url.starts_with("ldaps://") {
            return bad(
                "connection.tls",
                "StartTLS is for ldap:// URLs; ldaps:// is TLS already".to_owned(),
            );
        }
        if self.connection.password.is_some() && self.connection.bind_dn.is_none() {
            return bad(
                "connection.bind_dn",
                "a password is set but no DN to bind as".to_owned(),
            );
        }
        if self.connection.password.is_some()
            && url.starts_with("ldap://")
            && self.connection.tls != Tls::StartTls
            && !self.connection.danger_allow_plaintext_bind
        {
            return bad(
                "connection.tls",
                format!(
                    "binding with a password over {url:?} sends it in the clear: use ldaps:// \
                     or StartTLS (danger_allow_plaintext_bind allows it, for a test server)"
                ),
            );
        }
        if self.connection.max_in_flight == 0 {
            return bad("connection.max_in_flight", "must be at least 1".to_owned());
        }
        for (field, dn) in [
            ("accounts.base", &self.accounts.base),
            ("groups.base", &self.groups.base),
        ] {
            if crate::dn::Dn::parse(dn).is_err() {
                return bad(field, format!("{dn:?} is not a valid DN"));
            }
        }
        for dn in &self.accounts.more_bases {
            if crate::dn::Dn::parse(dn).is_err() {
                return bad("accounts.more_bases", format!("{dn:?} is not a valid DN"));
            }
        }
        if let Some(m) = &self.accounts.marker_attribute {
            let taken = m.is_empty()
                || m.eq_ignore_ascii_case(&self.accounts.login_attribute)
                || m.eq_ignore_ascii_case(&self.accounts.rdn_attribute)
                || self
                    .accounts
                    .attributes
                    .values()
                    .any(|a| a.ldap.eq_ignore_ascii_case(m));
            if taken {
                return bad(
                    "accounts.marker_attribute",
                    format!(
                        "{m:?} is empty or already holds the login, the RDN or a mapped attribute"
                    ),
                );
            }
        }
        if self.groups.batch_size == 0 {
            return bad("groups.batch_size", "must be at least 1".to_owned());
        }
        if let Some((first, last)) = self.groups.gid_numbers
            && (first == 0 || first > last)
        {
            return bad(
                "groups.gid_numbers",
                format!("{first}-{last} is not a range of gidNumbers (0 < first <= last)"),
            );
        }
        if self.page_size == 0 {
            return bad("page_size", "must be at least 1".to_owned());
        }
        match &self.changes {
            ChangeLog::AccessLog { base } if crate::dn::Dn::parse(base).is_err() => {
                return bad("changes", format!("{base:?} is not a valid DN"));
            }
            ChangeLog::Usn if self.dialect != Dialect::ActiveDirectory => {
                return bad(
                    "changes",
                    "update sequence numbers are Active Directory's; use the accesslog \
                     overlay's database on OpenLDAP"
                        .to_owned(),
                );
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{Dialect, LdapConfig};

    #[test]
    fn the_active_directory_preset_never_lists_built_in_or_protected_objects() {
        let cfg = LdapConfig::new(
            Dialect::ActiveDirectory,
            "ldaps://dc.corp.example",
            "DC=corp,DC=example",
        );
        let f = &cfg.accounts.filter;
        assert_eq!(
            f,
            "(&(objectCategory=person)(objectClass=user)(!(isCriticalSystemObject=TRUE))(!(adminCount=1)))"
        );
    }
}
