//! Access reviews: every entitlement every account holds, with the reason
//! chain that explains it, or a flag when nothing does.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use prov_core::{Account, AccountId, EntitlementId, Identity, IdentityId, TargetId};
use prov_resolver::{CompiledPolicy, Extra};
use serde::{Deserialize, Serialize};

use crate::ledger::Link;

/// What a review row says about a piece of access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Finding {
    /// The policy gives it; the reasons say how.
    Explained,
    /// The account holds it and no rule, assignment or lease explains it:
    /// privilege creep, or access granted by hand outside the policy.
    Unexplained,
    /// The account belongs to no known identity.
    Orphan,
    /// The policy gives it but the account does not hold it yet.
    Pending,
}

impl Finding {
    fn as_str(self) -> &'static str {
        match self {
            Finding::Explained => "explained",
            Finding::Unexplained => "unexplained",
            Finding::Orphan => "orphan",
            Finding::Pending => "pending",
        }
    }
}

/// One line of a review: an account and one entitlement (or the account alone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ReviewRow {
    /// The identity, when the account is linked to one.
    pub identity: Option<IdentityId>,
    /// The target.
    pub target: TargetId,
    /// The account.
    pub account: AccountId,
    /// Its login.
    pub login: String,
    /// Whether it is enabled.
    pub enabled: bool,
    /// The entitlement (`None` for an account row without any).
    pub entitlement: Option<EntitlementId>,
    /// What the review found.
    pub finding: Finding,
    /// The reason chains, when explained.
    pub reasons: Vec<String>,
    /// Segregation-of-duties rules the identity violates.
    pub sod: Vec<String>,
}

/// A whole review.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Review {
    /// When it was made.
    pub at: Option<DateTime<Utc>>,
    /// The rows, by target, login and entitlement.
    pub rows: Vec<ReviewRow>,
}

impl Review {
    /// Rows with a given finding.
    pub fn with(&self, finding: Finding) -> impl Iterator<Item = &ReviewRow> {
        self.rows.iter().filter(move |r| r.finding == finding)
    }

    /// The review as CSV (a header, then a row per line; reasons joined with ` | `).
    pub fn to_csv(&self) -> Result<String, csv::Error> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record([
            "identity",
            "target",
            "account",
            "login",
            "enabled",
            "entitlement",
            "finding",
            "reasons",
            "sod",
        ])?;
        for r in &self.rows {
            w.write_record([
                r.identity.as_ref().map_or("", |i| i.as_str()),
                r.target.as_str(),
                r.account.as_str(),
                &r.login,
                if r.enabled { "true" } else { "false" },
                r.entitlement.as_ref().map_or("", |e| e.as_str()),
                r.finding.as_str(),
                &r.reasons.join(" | "),
                &r.sod.join(" | "),
            ])?;
        }
        let bytes = w.into_inner().map_err(|e| e.into_error())?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// Reviews every account on every target against the policy at `now`.
pub fn review(
    policy: &CompiledPolicy,
    identities: &[Identity],
    actual: &BTreeMap<TargetId, Vec<Account>>,
    links: &[Link],
    extra: Extra<'_>,
    now: DateTime<Utc>,
) -> Review {
    let by_id: HashMap<&IdentityId, &Identity> = identities.iter().map(|i| (&i.id, i)).collect();
    let owner: HashMap<(&TargetId, &AccountId), &IdentityId> = links
        .iter()
        .map(|l| ((&l.target, &l.account), &l.identity))
        .collect();
    let mut resolved = HashMap::new();
    let mut rows = Vec::new();
    for (target, accounts) in actual {
        for acct in accounts {
            let who = owner
                .get(&(target, &acct.id))
                .and_then(|i| by_id.get(*i))
                .copied();
            let base = |entitlement: Option<EntitlementId>,
                        finding: Finding,
                        reasons: Vec<String>,
                        sod: Vec<String>| ReviewRow {
                identity: who.map(|w| w.id.clone()),
                target: target.clone(),
                account: acct.id.clone(),
                login: acct.login.clone(),
                enabled: acct.enabled,
                entitlement,
                finding,
                reasons,
                sod,
            };
            let Some(who) = who else {
                if acct.entitlements.is_empty() {
                    rows.push(base(None, Finding::Orphan, Vec::new(), Vec::new()));
                }
                for e in &acct.entitlements {
                    rows.push(base(
                        Some(e.clone()),
                        Finding::Orphan,
                        Vec::new(),
                        Vec::new(),
                    ));
                }
                continue;
            };
            let res = resolved
                .entry(&who.id)
                .or_insert_with(|| policy.resolve_with(who, now, extra));
            let desired = policy.describe(res);
            let sod: Vec<String> = desired.violations.iter().map(|v| v.rule.clone()).collect();
            let wanted = desired.targets.get(target).map(|t| &t.entitlements);
            for e in &acct.entitlements {
                let reasons: Vec<String> = policy
                    .chains(res, target, e)
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                let finding = if reasons.is_empty() {
                    Finding::Unexplained
                } else {
                    Finding::Explained
                };
                rows.push(base(Some(e.clone()), finding, reasons, sod.clone()));
            }
            for e in wanted.into_iter().flat_map(|w| w.keys()) {
                if !acct.entitlements.contains(e) {
                    let reasons = policy
                        .chains(res, target, e)
                        .iter()
                        .map(ToString::to_string)
                        .collect();
                    rows.push(base(
                        Some(e.clone()),
                        Finding::Pending,
                        reasons,
                        sod.clone(),
                    ));
                }
            }
        }
    }
    rows.sort_by(|a, b| {
        (&a.target, &a.login, &a.entitlement).cmp(&(&b.target, &b.login, &b.entitlement))
    });
    Review {
        at: Some(now),
        rows,
    }
}
