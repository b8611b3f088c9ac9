//! The config file: sources, targets, policy and store. Errors name the
//! file, the line and the field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use prov_engine::{Correlation, Exclude, OrphanPolicy, PlanOptions, Safety, TargetOptions};
use prov_sources::Mapping;
use serde::Deserialize;

/// The whole config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// The policy file, relative to the config.
    pub(crate) policy: PathBuf,
    /// The store: `sqlite:PATH` (relative to the config), `postgres://...`,
    /// or `{ env = "VAR" }` holding either. Default: `sqlite:prov.db` next to the config.
    #[serde(default)]
    pub(crate) store: Option<Secret>,
    /// Where identities come from.
    pub(crate) source: SourceConfig,
    /// Targets by id.
    #[serde(default)]
    pub(crate) targets: BTreeMap<String, TargetConfig>,
    /// Who acts, in the audit log (default: `$USER` or `prov`).
    #[serde(default)]
    pub(crate) actor: Option<String>,
    /// How long a saved plan may wait to be applied: `30m`, `12h`, `7d`
    /// (default `24h`). `prov apply plan.json` refuses an older plan.
    #[serde(default)]
    pub(crate) max_plan_age: Option<String>,
    /// The longest `Retry-After` a target may ask an apply to wait: `15m`
    /// (the default), `1h`. A target asking for more fails the call as
    /// retryable, for a later run.
    #[serde(default)]
    pub(crate) max_retry_after: Option<String>,
    /// The key that seals the audit chain (HMAC-SHA256), from
    /// `{ env = "VAR" }` or `{ file = "PATH" }`, at least 16 bytes. Once
    /// set, records are sealed with it, and `prov audit verify` needs it.
    /// Never written inline: the config file is not a secret store.
    #[serde(default)]
    pub(crate) audit_key: Option<Secret>,
}

/// A value that may be secret: written inline, or read from an environment
/// variable or a file. Never printed.
#[derive(Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Secret {
    Inline(String),
    Env { env: String },
    File { file: PathBuf },
}

impl Secret {
    /// Whether the value is written in the config itself.
    pub(crate) fn is_inline(&self) -> bool {
        matches!(self, Secret::Inline(_))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Inline(_) => f.write_str("Secret(<inline, redacted>)"),
            Secret::Env { env } => write!(f, "Secret(env {env})"),
            Secret::File { file } => write!(f, "Secret(file {})", file.display()),
        }
    }
}

impl Secret {
    pub(crate) fn reveal(&self, base: &Path) -> Result<String, String> {
        match self {
            Secret::Inline(s) => Ok(s.clone()),
            Secret::Env { env } => {
                std::env::var(env).map_err(|_| format!("the environment variable {env} is not set"))
            }
            Secret::File { file } => std::fs::read_to_string(base.join(file))
                .map(|s| s.trim_end_matches(['\n', '\r']).to_owned())
                .map_err(|e| format!("cannot read {}: {e}", base.join(file).display())),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SourceConfig {
    /// `csv` or `jsonl`.
    pub(crate) kind: String,
    /// The file, relative to the config.
    pub(crate) path: PathBuf,
    /// Column mapping.
    pub(crate) mapping: Mapping,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TargetConfig {
    /// The connector: `ldap` (an LDAP directory; the fields marked "for
    /// `ldap`" below) or `file` (accounts and groups kept in files next to
    /// the config, for trials and tests: a snapshot and a journal, one
    /// writer at a time). `scim` and the cloud connectors come with their crates.
    pub(crate) kind: String,
    /// For `file`: the state file, relative to the config.
    #[serde(default)]
    pub(crate) path: Option<PathBuf>,
    /// Orphan handling: `report` (default), `disable` or `delete`.
    #[serde(default)]
    pub(crate) orphans: Option<OrphanPolicy>,
    /// What an identity gone from the source means here: `leaver`
    /// (default: disabled now, deleted after the grace period, under the
    /// deletion safeguard) or `ignore` (its accounts are orphans).
    #[serde(default)]
    pub(crate) absent: Option<prov_engine::Absent>,
    /// Whether `orphans` also acts on accounts no link holds (the engine
    /// neither created nor linked them); default no: they are reported.
    #[serde(default)]
    pub(crate) orphans_unlinked: bool,
    /// Accounts left alone unless linked (never correlated, never
    /// orphans), as `FIELD=VALUE` with an optional final `*`:
    /// `["login=svc-*", "employeeType=service"]`.
    #[serde(default, deserialize_with = "exclusions")]
    pub(crate) exclude: Vec<Exclude>,
    /// The deletion safeguard: most removals as a share of the target, and
    /// most revokes as a share of an entitlement's holders (default 0.2;
    /// more than 0, at most 1).
    #[serde(default, deserialize_with = "share")]
    pub(crate) max_removal_share: Option<f64>,
    /// The deletion safeguard: most removals in number.
    #[serde(default)]
    pub(crate) max_removals: Option<usize>,
    /// Correlation rules as `account_field = "identity_field"`, tried in
    /// the order written (default: by login).
    #[serde(default, deserialize_with = "in_order")]
    pub(crate) correlate: Vec<(String, String)>,
    /// Whether an existing account no link holds is taken as someone's on
    /// the strength of its login alone: `none` (default: such a match is a
    /// conflict for a person) or `login`.
    #[serde(default)]
    pub(crate) adopt: Option<prov_engine::Adopt>,
    /// How long one apply may spend on this target: `1h` (the default),
    /// `20m`. What is not sent by then fails as retryable, recorded.
    #[serde(default)]
    pub(crate) apply_deadline: Option<String>,
    /// Whether linked (not created) accounts may be deleted.
    #[serde(default)]
    pub(crate) delete_linked: bool,
    /// For `ldap`: `ldap://host:389` or `ldaps://host:636`.
    #[serde(default)]
    pub(crate) url: Option<String>,
    /// For `ldap`: `openldap` (default), `openldap-unique-member`, `posix`,
    /// `rfc2307bis` or `active-directory`.
    #[serde(default)]
    pub(crate) dialect: Option<String>,
    /// For `ldap`: the naming context, e.g. `dc=example,dc=org`.
    #[serde(default)]
    pub(crate) suffix: Option<String>,
    /// For `ldap`: the DN to bind as.
    #[serde(default)]
    pub(crate) bind_dn: Option<String>,
    /// For `ldap`: the bind password (`{ env = "VAR" }` or `{ file = "PATH" }`).
    #[serde(default)]
    pub(crate) password: Option<Secret>,
    /// For `ldap`: upgrade `ldap://` with StartTLS.
    #[serde(default)]
    pub(crate) starttls: bool,
    /// For `ldap`: PEM file of the CA certificates to trust, relative to the config.
    #[serde(default)]
    pub(crate) ca_file: Option<PathBuf>,
    /// For `ldap`: where accounts live (default from the dialect).
    #[serde(default)]
    pub(crate) accounts_base: Option<String>,
    /// For `ldap`: where groups live (default from the dialect).
    #[serde(default)]
    pub(crate) groups_base: Option<String>,
    /// For `ldap`: a member every group keeps (groupOfNames needs one).
    #[serde(default)]
    pub(crate) placeholder_member: Option<String>,
    /// For `ldap`: members per modify (default 500).
    #[serde(default)]
    pub(crate) batch_size: Option<usize>,
    /// For `ldap`: entries per page (default 1000).
    #[serde(default)]
    pub(crate) page_size: Option<usize>,
    /// For `ldap`: operations in flight on the connection (default 32).
    #[serde(default)]
    pub(crate) max_in_flight: Option<usize>,
    /// For `ldap`: more model-to-directory attribute names, e.g.
    /// `{ employee_id = "employeeNumber" }`.
    #[serde(default)]
    pub(crate) attributes: BTreeMap<String, String>,
    /// For `ldap`: the directory attribute that keeps each create's marker,
    /// the proof after a lost reply that prov made the account (e.g.
    /// `description` where nothing else writes it). Unset: no marker.
    #[serde(default)]
    pub(crate) marker_attribute: Option<String>,
}

impl TargetConfig {
    /// The LDAP connector's settings, or what is wrong with them (naming the field).
    pub(crate) fn ldap(&self, target: &str, base: &Path) -> Result<prov_ldap::LdapConfig, String> {
        use prov_ldap::{AttributeMap, Dialect, LdapConfig, Password, Tls};
        let field = |f: &str| format!("targets.{target}.{f}");
        let url = self
            .url
            .clone()
            .ok_or_else(|| format!("{} is required for kind `ldap`", field("url")))?;
        let suffix = self
            .suffix
            .clone()
            .ok_or_else(|| format!("{} is required for kind `ldap`", field("suffix")))?;
        let dialect = match self.dialect.as_deref().unwrap_or("openldap") {
            "openldap" => Dialect::OpenLdap,
            "openldap-unique-member" => Dialect::OpenLdapUniqueMember,
            "posix" => Dialect::Posix,
            "rfc2307bis" => Dialect::Rfc2307bis,
            "active-directory" => Dialect::ActiveDirectory,
            other => {
                return Err(format!(
                    "{}: `{other}` is not a dialect (openldap, openldap-unique-member, posix, rfc2307bis, active-directory)",
                    field("dialect")
                ));
            }
        };
        let mut cfg = LdapConfig::new(dialect, url, &suffix);
        if let Some(dn) = &self.bind_dn {
            let password = match &self.password {
                Some(p) => p
                    .reveal(base)
                    .map_err(|e| format!("{}: {e}", field("password")))?,
                None => return Err(format!("{} is required with bind_dn", field("password"))),
            };
            cfg = cfg.bind(dn.clone(), Password::new(password));
        }
        if self.starttls {
            cfg.connection.tls = Tls::StartTls;
        }
        cfg.connection.ca_file = self.ca_file.as_ref().map(|f| base.join(f));
        if let Some(b) = &self.accounts_base {
            cfg.accounts.base.clone_from(b);
        }
        if let Some(b) = &self.groups_base {
            cfg.groups.base.clone_from(b);
        }
        cfg.groups
            .placeholder_member
            .clone_from(&self.placeholder_member);
        if let Some(n) = self.batch_size {
            cfg.groups.batch_size = n;
        }
        if let Some(n) = self.page_size {
            cfg.page_size = n;
        }
        if let Some(n) = self.max_in_flight {
            cfg.connection.max_in_flight = n;
        }
        cfg.accounts
            .marker_attribute
            .clone_from(&self.marker_attribute);
        for (model, ldap) in &self.attributes {
            cfg.accounts
                .attributes
                .insert(model.clone(), AttributeMap::string(ldap.clone()));
        }
        cfg.validate().map_err(|e| {
            let f = e.field().map(|f| format!(" ({f})")).unwrap_or_default();
            format!("targets.{target}: {}{f}", e.message())
        })?;
        Ok(cfg)
    }

    /// Fields only `ldap` targets take, set on a target of another kind.
    pub(crate) fn stray_ldap_fields(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (set, name) in [
            (self.url.is_some(), "url"),
            (self.dialect.is_some(), "dialect"),
            (self.suffix.is_some(), "suffix"),
            (self.bind_dn.is_some(), "bind_dn"),
            (self.password.is_some(), "password"),
            (self.starttls, "starttls"),
            (self.ca_file.is_some(), "ca_file"),
            (self.accounts_base.is_some(), "accounts_base"),
            (self.groups_base.is_some(), "groups_base"),
            (self.placeholder_member.is_some(), "placeholder_member"),
            (self.batch_size.is_some(), "batch_size"),
            (self.page_size.is_some(), "page_size"),
            (self.max_in_flight.is_some(), "max_in_flight"),
            (!self.attributes.is_empty(), "attributes"),
            (self.marker_attribute.is_some(), "marker_attribute"),
        ] {
            if set {
                out.push(name);
            }
        }
        out
    }
}

/// A table's entries in the order the file writes them (the TOML parser
/// keeps it: the `preserve_order` feature), where a map would sort them.
/// A share of a target (more than 0, at most 1): `20` or `nan` would
/// switch the safeguard off.
fn share<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let v: f64 = serde::Deserialize::deserialize(d)?;
    if v > 0.0 && v <= 1.0 {
        Ok(Some(v))
    } else {
        Err(serde::de::Error::custom(format!(
            "max_removal_share must be a share: more than 0 and at most 1 (0.2 is 20%), not {v}"
        )))
    }
}

/// `FIELD=VALUE` exclusions.
fn exclusions<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Exclude>, D::Error> {
    let items: Vec<String> = serde::Deserialize::deserialize(d)?;
    items
        .iter()
        .map(|s| Exclude::parse(s).map_err(serde::de::Error::custom))
        .collect()
}

fn in_order<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    struct Pairs;
    impl<'de> serde::de::Visitor<'de> for Pairs {
        type Value = Vec<(String, String)>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a table of account_field = \"identity_field\"")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((k, v)) = map.next_entry::<String, String>()? {
                out.push((k, v));
            }
            Ok(out)
        }
    }
    d.deserialize_map(Pairs)
}

/// Reads the config; an error names the file and the line (kind `config`, exit 2).
pub(crate) fn load(path: &Path) -> Result<Config, crate::output::Fail> {
    use crate::output::{Fail, code};
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        Fail::new(code::USAGE, format!("{file}: cannot read: {e}"))
            .kind("config")
            .file(file.clone())
    })?;
    toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let message = match line {
            Some(l) => format!("{file}:{l}: {}", e.message()),
            None => format!("{file}: {}", e.message()),
        };
        Fail::new(code::USAGE, message)
            .kind("config")
            .file(file.clone())
            .line(line)
    })
}

impl Config {
    pub(crate) fn plan_options(&self) -> PlanOptions {
        let mut opts = PlanOptions::default();
        for (id, t) in &self.targets {
            let mut o = TargetOptions::default();
            if let Some(p) = t.orphans {
                o.orphans = p;
            }
            o.orphans_unlinked = t.orphans_unlinked;
            if let Some(a) = t.absent {
                o.absent = a;
            }
            o.exclude = t.exclude.clone();
            let mut safety = Safety::default();
            if let Some(share) = t.max_removal_share {
                safety.max_share = share;
            }
            safety.max_count = t.max_removals;
            o.safety = safety;
            if !t.correlate.is_empty() {
                o.correlation = t
                    .correlate
                    .iter()
                    .map(|(a, i)| Correlation::new(a.clone(), i.clone()))
                    .collect();
            }
            o.delete_linked = t.delete_linked;
            if let Some(a) = t.adopt {
                o.adopt = a;
            }
            opts.targets.insert(prov_core::TargetId::new(id), o);
        }
        opts
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// Issue 13 item 2: the rules were sorted by account field (`login`
    /// before `mail`), not tried in the order written.
    #[test]
    fn correlation_rules_keep_the_order_written() {
        let text = "policy = \"p.toml\"\n[source]\nkind = \"csv\"\npath = \"hr.csv\"\n[source.mapping]\nid = \"id\"\n\n[targets.ldap]\nkind = \"file\"\npath = \"t.json\"\n[targets.ldap.correlate]\nmail = \"email\"\nlogin = \"login\"\nemployeeNumber = \"id\"\n";
        let cfg: Config = toml::from_str(text).unwrap();
        let opts = cfg.plan_options();
        let rules: Vec<(&str, &str)> = opts.targets[&prov_core::TargetId::new("ldap")]
            .correlation
            .iter()
            .map(|r| (r.account_field.as_str(), r.identity_field.as_str()))
            .collect();
        assert_eq!(
            rules,
            [
                ("mail", "email"),
                ("login", "login"),
                ("employeeNumber", "id")
            ]
        );
    }

    /// Issue 13 item 7: `20` (meant as 20%) switched the share check off,
    /// and `nan` never fired; both are config errors naming the line.
    #[test]
    fn a_removal_share_that_is_not_a_share_is_refused_with_its_line() {
        let dir = std::env::temp_dir().join(format!("prov-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let base = "policy = \"p.toml\"\n[source]\nkind = \"csv\"\npath = \"hr.csv\"\n[source.mapping]\nid = \"id\"\n\n[targets.ldap]\nkind = \"file\"\npath = \"t.json\"\n";
        for (value, ok) in [
            ("20", false),
            ("nan", false),
            ("0", false),
            ("-0.1", false),
            ("0.5", true),
            ("1", true),
        ] {
            let path = dir.join("prov.toml");
            std::fs::write(
                &path,
                format!("{base}max_removal_share = {value}\nexclude = [\"login=svc-*\"]\n"),
            )
            .unwrap();
            match load(&path) {
                Ok(cfg) => {
                    assert!(ok, "{value} was accepted");
                    let t = &cfg.plan_options().targets[&prov_core::TargetId::new("ldap")];
                    assert_eq!(t.exclude, [Exclude::new("login", "svc-*")]);
                }
                Err(e) => {
                    assert!(!ok, "{value}: {e:?}");
                    assert!(
                        e.message.contains(":11:")
                            && e.message.contains("must be a share")
                            && e.line == Some(11),
                        "{value}: {e:?}"
                    );
                }
            }
        }
        std::fs::write(
            dir.join("prov.toml"),
            format!("{base}exclude = [\"svc\"]\n"),
        )
        .unwrap();
        let e = load(&dir.join("prov.toml")).unwrap_err();
        assert!(e.message.contains("is not FIELD=VALUE"), "{e:?}");
    }

    /// What serde's derive says a type's keys (a struct's fields) or words
    /// (an enum's variants) are: a deserializer that records the names it
    /// is asked for and gives up.
    fn names_of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
        use serde::de::value::Error;
        use serde::de::{Error as _, Visitor};
        struct Recorder<'a>(&'a mut &'static [&'static str]);
        impl<'de> serde::Deserializer<'de> for Recorder<'_> {
            type Error = Error;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
                Err(Error::custom("not a struct or an enum"))
            }
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Error> {
                *self.0 = fields;
                Err(Error::custom("recorded"))
            }
            fn deserialize_enum<V: Visitor<'de>>(
                self,
                _: &'static str,
                variants: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Error> {
                *self.0 = variants;
                Err(Error::custom("recorded"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
                bytes byte_buf option unit unit_struct newtype_struct seq tuple
                tuple_struct map identifier ignored_any
            }
        }
        let mut names: &'static [&'static str] = &[];
        let _ = T::deserialize(Recorder(&mut names));
        assert!(
            !names.is_empty(),
            "{} has no names",
            std::any::type_name::<T>()
        );
        names
    }

    /// The lines of `doc` under the heading `heading`, up to the next heading.
    fn section<'d>(doc: &'d str, heading: &str) -> Vec<&'d str> {
        let mut lines = doc.lines().skip_while(|l| *l != heading);
        assert!(
            lines.next().is_some(),
            "docs/config.md has no heading `{heading}`"
        );
        lines.take_while(|l| !l.starts_with('#')).collect()
    }

    /// Issue 14 item 3: every key the config, the policy and the source
    /// mapping take is in docs/config.md, in its section's table (and
    /// every key a table lists is one the code takes); every word of the
    /// closed vocabularies (states, orphan policies, ...) is written out.
    #[test]
    fn config_reference_lists_every_key() {
        use prov_resolver::{
            Assignment, AttrType, Enforce, Lease, Leaver, LeaverAction, Policy, Resolve, Role,
            Rule, SodException, SodRule, TargetPolicy,
        };
        let doc = include_str!("../../../docs/config.md");
        let tables: [(&str, &[&str]); 15] = [
            ("## prov.toml", names_of::<Config>()),
            ("### `[source]`", names_of::<SourceConfig>()),
            ("### `[source.mapping]`", names_of::<Mapping>()),
            ("### Column tables", names_of::<prov_sources::ColumnTable>()),
            (
                "### `[targets.ID]` in prov.toml",
                names_of::<TargetConfig>(),
            ),
            ("## The policy file", names_of::<Policy>()),
            (
                "### `[targets.ID]` in the policy",
                names_of::<TargetPolicy>(),
            ),
            ("### `leaver`", names_of::<Leaver>()),
            ("### `[roles.ID]`", names_of::<Role>()),
            ("### `[rules.ID]`", names_of::<Rule>()),
            ("### `[[assignments]]`", names_of::<Assignment>()),
            ("### `[[leases]]`", names_of::<Lease>()),
            ("### `[sod.ID]`", names_of::<SodRule>()),
            ("### `exceptions`", names_of::<SodException>()),
            ("### Attribute types", names_of::<AttrType>()),
        ];
        let mut missing = Vec::new();
        let mut stale = Vec::new();
        for (heading, keys) in tables {
            let lines = section(doc, heading);
            let listed: Vec<&str> = lines
                .iter()
                .filter_map(|l| l.strip_prefix("| `"))
                .filter_map(|l| l.split_once('`').map(|(k, _)| k))
                .collect();
            for key in keys {
                if !listed.contains(key) {
                    missing.push(format!("{heading}: {key}"));
                }
            }
            for key in &listed {
                if !keys.contains(key) {
                    stale.push(format!("{heading}: {key}"));
                }
            }
        }
        // Closed vocabularies: each word written, in backticks, where its key is.
        let words: [(&str, &[&str]); 6] = [
            (
                "### Lifecycle states",
                names_of::<prov_core::LifecycleState>(),
            ),
            ("### `leaver`", names_of::<LeaverAction>()),
            ("### `[sod.ID]`", names_of::<Enforce>()),
            ("### `[sod.ID]`", names_of::<Resolve>()),
            (
                "### `[targets.ID]` in prov.toml",
                names_of::<OrphanPolicy>(),
            ),
            (
                "### `[targets.ID]` in prov.toml",
                names_of::<prov_engine::Absent>(),
            ),
        ];
        let adopt = names_of::<prov_engine::Adopt>();
        for (heading, vocabulary) in words
            .into_iter()
            .chain([("### `[targets.ID]` in prov.toml", adopt)])
        {
            let text = section(doc, heading).join("\n");
            for word in vocabulary {
                if !text.contains(&format!("`{word}`")) {
                    missing.push(format!("{heading}: the word {word}"));
                }
            }
        }
        assert!(
            missing.is_empty() && stale.is_empty(),
            "docs/config.md lacks {missing:#?} and lists keys the code does not take: {stale:#?}"
        );
    }
}
