//! The config file: sources, targets, policy and store. Errors name the
//! file, the line and the field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use prov_engine::{Correlation, OrphanPolicy, PlanOptions, Safety, TargetOptions};
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
    /// The connector: `file` (a target kept in a JSON file, for trials and
    /// tests). `ldap`, `scim` and the cloud connectors come with their crates.
    pub(crate) kind: String,
    /// For `file`: the state file, relative to the config.
    #[serde(default)]
    pub(crate) path: Option<PathBuf>,
    /// Orphan handling: `report` (default), `disable` or `delete`.
    #[serde(default)]
    pub(crate) orphans: Option<OrphanPolicy>,
    /// The deletion safeguard: most removals as a share of the target (default 0.2).
    #[serde(default)]
    pub(crate) max_removal_share: Option<f64>,
    /// The deletion safeguard: most removals in number.
    #[serde(default)]
    pub(crate) max_removals: Option<usize>,
    /// Correlation rules as `account_field = "identity_field"` (default: by login).
    #[serde(default)]
    pub(crate) correlate: BTreeMap<String, String>,
    /// Whether linked (not created) accounts may be deleted.
    #[serde(default)]
    pub(crate) delete_linked: bool,
}

/// A config error: the file, the line and what is wrong.
pub(crate) fn load(path: &Path) -> Result<Config, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        match line {
            Some(l) => format!("{}:{l}: {}", path.display(), e.message()),
            None => format!("{}: {}", path.display(), e.message()),
        }
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
            opts.targets.insert(prov_core::TargetId::new(id), o);
        }
        opts
    }
}
