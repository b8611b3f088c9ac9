//! `prov validate`: what would hurt, found before anything runs. Reads the
//! config, the policy and the source (their errors are the usual ones, exit
//! 2) and touches no target unless `--online` asks the targets which
//! entitlements they have.

use std::collections::{BTreeMap, BTreeSet};

use prov_core::{ConnectorExt, Identity, LifecycleState, TargetId};
use prov_engine::Engine;
use prov_resolver::Extra;
use serde::Serialize;

/// At most this many identities are named in a line; the JSON has them all.
const NAMED: usize = 10;

/// One thing `validate` found.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Finding {
    /// `missing_value`, `duplicate_login`, `sod` or `unknown_entitlement`.
    pub(crate) kind: &'static str,
    /// The target, when the finding is about one.
    pub(crate) target: Option<String>,
    /// The line for people.
    pub(crate) message: String,
    /// The identities concerned.
    pub(crate) identities: Vec<String>,
}

fn named(ids: &BTreeSet<&str>) -> String {
    let mut out: Vec<&str> = ids.iter().copied().take(NAMED).collect();
    if ids.len() > NAMED {
        out.push("...");
    }
    out.join(", ")
}

fn people(n: usize) -> &'static str {
    if n == 1 { "person" } else { "people" }
}

/// Everything offline: empty values templates read, logins two people
/// would share, separation-of-duties rules the birthright rules and
/// assignments already break.
pub(crate) fn offline(engine: &Engine, identities: &[Identity]) -> Vec<Finding> {
    let policy = engine.policy();
    let now = chrono::Utc::now();
    let mut out = Vec::new();
    // value -> (who lacks it, where it is read)
    let mut missing: BTreeMap<String, (BTreeSet<&str>, BTreeSet<String>)> = BTreeMap::new();
    // (target, login folded) -> who would get it
    let mut logins: BTreeMap<(TargetId, String), BTreeSet<&str>> = BTreeMap::new();
    let mut sod = Vec::new();
    for who in identities {
        let res = policy.resolve_with(who, now, Extra::default());
        if res.state != LifecycleState::Terminated {
            for m in policy.missing_values(who) {
                let (ids, places) = missing.entry(m.value).or_default();
                ids.insert(who.id.as_str());
                places.insert(match m.target {
                    Some(t) => format!("{t} {}", m.place),
                    None => m.place,
                });
            }
        }
        for v in policy.targets_of(&res) {
            if let (Some(t), Some(a)) = (v.target, v.account)
                && a.login_held.is_none()
            {
                logins
                    .entry((t.clone(), a.login.to_ascii_lowercase()))
                    .or_default()
                    .insert(who.id.as_str());
            }
        }
        if res.breaks_sod() {
            for v in policy.sod_violations(&res) {
                let mut parts: Vec<String> = v.roles.iter().map(|r| format!("role {r}")).collect();
                parts.extend(v.entitlements.iter().cloned());
                sod.push(Finding {
                    kind: "sod",
                    target: None,
                    message: format!(
                        "{} already breaks separation-of-duties rule {} ({}) by the policy's rules \
                         and assignments: {}",
                        who.id,
                        v.rule,
                        v.enforce.as_str(),
                        parts.join(" + ")
                    ),
                    identities: vec![who.id.to_string()],
                });
            }
        }
    }
    for (value, (ids, places)) in missing {
        out.push(Finding {
            kind: "missing_value",
            target: None,
            message: format!(
                "{value} is empty for {} {}: {} (read by {}); their changes there would be held",
                ids.len(),
                people(ids.len()),
                named(&ids),
                places.into_iter().collect::<Vec<_>>().join(", ")
            ),
            identities: ids.iter().map(|s| (*s).to_owned()).collect(),
        });
    }
    for ((target, login), ids) in logins {
        if ids.len() > 1 {
            out.push(Finding {
                kind: "duplicate_login",
                target: Some(target.to_string()),
                message: format!(
                    "{target}: {} {} would get the login {login} (compared ignoring case): {}",
                    ids.len(),
                    people(ids.len()),
                    named(&ids)
                ),
                identities: ids.iter().map(|s| (*s).to_owned()).collect(),
            });
        }
    }
    out.extend(sod);
    out
}

/// Asks each target which entitlements it has: one the policy grants that
/// a target lacks fails every grant of it (unless the target has
/// `create_entitlements`, and the engine makes it first).
pub(crate) async fn online(engine: &Engine) -> Result<Vec<Finding>, prov_engine::EngineError> {
    let policy = engine.policy();
    let mut out = Vec::new();
    for target in policy.target_ids() {
        let Some(conn) = engine.connector(target) else {
            continue;
        };
        // A target that creates its groups makes the missing ones first.
        let o = engine.plan_options().for_target(target);
        if o.create_entitlements && o.can_create_entitlements {
            continue;
        }
        let listed = conn.list_all_entitlements().await.map_err(|error| {
            prov_engine::EngineError::Target {
                target: target.clone(),
                error,
            }
        })?;
        let listed: BTreeSet<&str> = listed.iter().map(|e| e.id.as_str()).collect();
        for e in policy.entitlements_on(target) {
            if !listed.contains(e.as_str()) {
                out.push(Finding {
                    kind: "unknown_entitlement",
                    target: Some(target.to_string()),
                    message: format!(
                        "{target}: the policy grants {e}, which the target does not list (create it, \
                         or fix the policy): every grant of it would fail"
                    ),
                    identities: Vec::new(),
                });
            }
        }
    }
    Ok(out)
}
