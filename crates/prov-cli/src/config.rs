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
    /// Targets by id, as written: [`load`] reads each into `targets`.
    #[serde(default, rename = "targets")]
    _targets: serde::de::IgnoredAny,
    /// Targets by id.
    #[serde(skip)]
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
    /// The file as read, for the target kinds' settings (their errors name lines).
    #[serde(skip)]
    pub(crate) text: String,
    /// The file's name as given.
    #[serde(skip)]
    pub(crate) file: String,
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

/// A target: the keys every kind takes (what the engine does with the
/// target); the kind's own keys are read by the kind's settings type (see
/// [`crate::connectors`]). [`load`] splits each `[targets.ID]` between the
/// two, each read with its lines.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TargetConfig {
    /// The connector: `ldap` (an LDAP directory or Active Directory),
    /// `scim` (a SCIM 2.0 service) or `file` (accounts and groups kept in
    /// files next to the config, for trials and tests). Each kind's keys
    /// are in its own section.
    pub(crate) kind: String,
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
    /// Whether the engine creates the groups the policy names and the
    /// target lacks, and deletes the ones it created once no policy names
    /// them (after revoking them, under the deletion safeguard).
    #[serde(default)]
    pub(crate) create_entitlements: bool,
    /// The other keys written: the kind's settings, read by the kind's
    /// own type (unknown keys refused there, with their line).
    #[serde(skip)]
    pub(crate) own_keys: Vec<String>,
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
    parse(text, file)
}

/// Reads a config's text (`file` names it in errors).
pub(crate) fn parse(text: String, file: String) -> Result<Config, crate::output::Fail> {
    use crate::output::{Fail, code};
    let mut cfg: Config = toml::from_str(&text).map_err(|e| {
        let line = e.span().map(|s| line_at(&text, s.start));
        let message = match line {
            Some(l) => format!("{file}:{l}: {}", e.message()),
            None => format!("{file}: {}", e.message()),
        };
        Fail::new(code::USAGE, message)
            .kind("config")
            .file(file.clone())
            .line(line)
    })?;
    cfg.targets = targets(&text, &file)?;
    cfg.text = text;
    cfg.file = file;
    Ok(cfg)
}

/// Each `[targets.ID]`: the common keys read as a [`TargetConfig`] (with
/// their lines), the others kept for the kind's settings type.
fn targets(text: &str, file: &str) -> Result<BTreeMap<String, TargetConfig>, crate::output::Fail> {
    use crate::output::{Fail, code};
    use serde::Deserialize as _;
    use toml::de::{DeTable, DeValue, ValueDeserializer};
    let fail = |message: String, offset: Option<usize>| {
        let line = offset.map(|o| line_at(text, o));
        let at = line.map(|l| format!(":{l}")).unwrap_or_default();
        Fail::new(code::USAGE, format!("{file}{at}: {message}"))
            .kind("config")
            .file(file.to_owned())
            .line(line)
    };
    let doc = DeTable::parse(text).map_err(|e| fail(e.message().to_owned(), None))?;
    let common = crate::connectors::keys_of::<TargetConfig>();
    let mut out = BTreeMap::new();
    let Some((_, targets)) = doc.get_ref().iter().find(|(k, _)| k.get_ref() == "targets") else {
        return Ok(out);
    };
    let Some(targets) = targets.get_ref().as_table() else {
        return Err(fail(
            "targets: must be a table of targets ([targets.ID])".to_owned(),
            Some(targets.span().start),
        ));
    };
    for (id, table) in targets {
        let Some(entries) = table.get_ref().as_table() else {
            return Err(fail(
                format!("targets.{}: must be a table", id.get_ref()),
                Some(table.span().start),
            ));
        };
        let mut mine = DeTable::new();
        let mut own_keys = Vec::new();
        for (k, v) in entries {
            if common.contains(&k.get_ref().as_ref()) {
                mine.insert(k.clone(), v.clone());
            } else {
                own_keys.push(k.get_ref().to_string());
            }
        }
        let value = toml::Spanned::new(table.span(), DeValue::Table(mine));
        let mut target =
            TargetConfig::deserialize(ValueDeserializer::from(value)).map_err(|e| {
                fail(
                    format!("targets.{}: {}", id.get_ref(), e.message()),
                    e.span().map(|s| s.start),
                )
                .field(Some(format!("targets.{}", id.get_ref())))
            })?;
        target.own_keys = own_keys;
        out.insert(id.get_ref().to_string(), target);
    }
    Ok(out)
}

/// The 1-based line of byte `offset` in `text`.
fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .get(..offset.min(text.len()))
        .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
        + 1
}

impl Config {
    /// Target `target`'s settings for its kind, read as `T` (which refuses
    /// keys it does not take): an error names the file, the line and the key.
    pub(crate) fn settings_of<T: serde::de::DeserializeOwned>(
        &self,
        target: &str,
    ) -> Result<T, crate::output::Fail> {
        use toml::de::{DeTable, DeValue, ValueDeserializer};
        let own = |k: &str| {
            self.targets
                .get(target)
                .is_some_and(|t| t.own_keys.iter().any(|o| o == k))
        };
        let doc = DeTable::parse(&self.text)
            .map_err(|e| self.target_fail(target, e.message().to_owned(), None))?;
        let Some(table) = target_table(doc.get_ref(), target) else {
            return Err(self.target_fail(target, "is not in the file".to_owned(), None));
        };
        let mut mine = DeTable::new();
        if let Some(t) = table.get_ref().as_table() {
            for (k, v) in t.iter().filter(|(k, _)| own(k.get_ref())) {
                mine.insert(k.clone(), v.clone());
            }
        }
        let value = toml::Spanned::new(table.span(), DeValue::Table(mine));
        T::deserialize(ValueDeserializer::from(value)).map_err(|e| {
            let line = e.span().map(|s| line_at(&self.text, s.start));
            self.target_fail(target, e.message().to_owned(), line)
        })
    }

    /// A target's settings refused: the file, the line (that of `key`
    /// when given, else of the target's table) and the field.
    pub(crate) fn settings_fail(
        &self,
        target: &str,
        key: Option<&str>,
        message: &str,
    ) -> crate::output::Fail {
        use toml::de::DeTable;
        let line = DeTable::parse(&self.text).ok().and_then(|doc| {
            let table = target_table(doc.get_ref(), target)?;
            let at = key
                .and_then(|key| {
                    let t = table.get_ref().as_table()?;
                    t.iter()
                        .find(|(k, _)| k.get_ref() == key)
                        .map(|(k, _)| k.span())
                })
                .unwrap_or_else(|| table.span());
            Some(line_at(&self.text, at.start))
        });
        let field = match key {
            Some(k) => format!("targets.{target}.{k}"),
            None => format!("targets.{target}"),
        };
        self.field_fail(target, field, message, line)
    }

    fn target_fail(
        &self,
        target: &str,
        message: String,
        line: Option<usize>,
    ) -> crate::output::Fail {
        self.field_fail(target, format!("targets.{target}"), &message, line)
    }

    fn field_fail(
        &self,
        target: &str,
        field: String,
        message: &str,
        line: Option<usize>,
    ) -> crate::output::Fail {
        let kind = self.targets.get(target).map_or("", |t| t.kind.as_str());
        let at = line.map(|l| format!(":{l}")).unwrap_or_default();
        crate::output::Fail::new(
            crate::output::code::USAGE,
            format!("{}{at}: {field}: {message} (kind `{kind}`)", self.file),
        )
        .kind("config")
        .file(self.file.clone())
        .line(line)
        .field(Some(field))
    }
}

/// `[targets.ID]` in a parsed document.
fn target_table<'a, 'i>(
    doc: &'a toml::de::DeTable<'i>,
    target: &str,
) -> Option<&'a toml::Spanned<toml::de::DeValue<'i>>> {
    doc.iter()
        .find(|(k, _)| k.get_ref() == "targets")
        .and_then(|(_, v)| v.get_ref().as_table())
        .and_then(|t| t.iter().find(|(k, _)| k.get_ref() == target))
        .map(|(_, v)| v)
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
            o.create_entitlements = t.create_entitlements;
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
        let cfg = parse(text.to_owned(), "prov.toml".to_owned()).unwrap();
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

    /// A type's keys or words, which must exist.
    fn names_of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
        let names = crate::connectors::keys_of::<T>();
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
        // Each target kind's own keys, under `### kind = "NAME"`.
        let kinds: Vec<(String, &[&str])> = crate::connectors::KINDS
            .iter()
            .map(|k| (format!("### `kind = \"{}\"`", k.name), (k.keys)()))
            .collect();
        let mut missing = Vec::new();
        let mut stale = Vec::new();
        for (heading, keys) in tables
            .iter()
            .map(|(h, k)| ((*h).to_owned(), *k))
            .chain(kinds)
        {
            let heading = heading.as_str();
            assert!(!keys.is_empty(), "{heading} has no keys");
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
        let dialects = names_of::<prov_ldap::Dialect>();
        for (heading, vocabulary) in words.into_iter().chain([
            ("### `[targets.ID]` in prov.toml", adopt),
            ("### `kind = \"ldap\"`", dialects),
        ]) {
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
