//! `resolve`, `describe` and `explain`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use prov_core::{Attributes, EntitlementId, Identity, IdentityId, LifecycleState, TargetId, Value};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::compile::{CompiledPolicy, Template, When, check_lease};
use crate::expr::{self, Compiled};
use crate::policy::{Assignment, Lease, Leaver, LeaverAction};

/// How a role reached an identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Src {
    Rule(u32),
    /// Index into [`Resolution::assignments`].
    Assignment(u32),
    /// Index into [`Resolution::leases`].
    Lease(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Grant {
    pub(crate) source: Src,
    pub(crate) role: u32,
}

/// Assignments and leases held outside the policy file (in the engine's
/// store), to resolve together with the policy's own.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct Extra<'a> {
    /// Extra assignments; those for other identities are ignored.
    pub assignments: &'a [Assignment],
    /// Extra leases; those for other identities or not active now are ignored.
    pub leases: &'a [Lease],
}

impl<'a> Extra<'a> {
    /// Extra assignments and leases.
    pub fn new(assignments: &'a [Assignment], leases: &'a [Lease]) -> Self {
        Extra {
            assignments,
            leases,
        }
    }
}

/// A resolved identity in compact form: what [`CompiledPolicy::resolve`]
/// returns, fast to make and to compare. Turn it into names and reasons
/// with [`CompiledPolicy::describe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// Who.
    pub identity: IdentityId,
    /// The state in effect at the time resolved (a past end date makes a leaver).
    pub state: LifecycleState,
    /// Inline for the usual handful: one heap allocation fewer per identity.
    pub(crate) grants: SmallVec<[Grant; 8]>,
    pub(crate) assignments: Vec<Assignment>,
    pub(crate) leases: Vec<Lease>,
    pub(crate) targets: Vec<TargetState>,
    /// Every entitlement, sorted (and so grouped by target).
    pub(crate) entitlements: Vec<u32>,
    pub(crate) violations: Vec<(u32, Vec<u32>, Vec<u32>)>,
    pub(crate) problems: Vec<Problem>,
    /// Rules that did not give their roles because a value their condition
    /// reads is missing or empty: whether they apply cannot be told, so no
    /// access may be taken away on the strength of them. (rule, why).
    pub(crate) gaps: Vec<(u32, String)>,
    /// Separation-of-duties rules the identity breaks under an approved
    /// exception: (rule, exception).
    pub(crate) excepted: Vec<(u32, u32)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TargetState {
    pub(crate) target: u32,
    pub(crate) account: Option<AccountState>,
    /// Why whether the identity should have an account here cannot be
    /// told (the account condition reads a missing value): every change
    /// on this target is held.
    pub(crate) held: Option<String>,
    /// This target's slice of [`Resolution::entitlements`].
    pub(crate) range: (u32, u32),
}

/// A desired account in compact form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AccountState {
    /// `None` when the login is the identity id (no template): saves an
    /// allocation per identity and target.
    pub(crate) login: Option<String>,
    pub(crate) attributes: Attributes,
    /// The secret attributes' values (redacted in `Debug`).
    pub(crate) secrets: prov_core::SecretAttributes,
    pub(crate) enabled: bool,
    pub(crate) leaver: Option<LeaverPlan>,
    /// Why the login cannot be computed (a value it reads is missing, or
    /// the expression failed): no account is made or matched by it, and
    /// an existing one keeps its login.
    pub(crate) login_held: Option<String>,
    /// Attributes left as they are on the target, each with why: their
    /// expression reads a missing value (and the policy does not say that
    /// clears them) or failed.
    pub(crate) kept: Vec<(String, String)>,
}

thread_local! {
    /// Scratch bitmap over entitlement indexes, all zero between uses.
    static BITMAP: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Resolution {
    /// How many entitlements the identity should hold, over all targets.
    pub fn entitlement_count(&self) -> usize {
        self.entitlements.len()
    }

    /// Problems met while resolving (an expression that failed on this
    /// identity's data); the affected attribute or account is left out.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// Whether the identity breaks a segregation-of-duties rule (one
    /// without an approved exception for it).
    pub fn breaks_sod(&self) -> bool {
        !self.violations.is_empty()
    }

    /// Birthright rules that did not give their roles because a value
    /// their condition reads is missing or empty (a blank HR cell): whether
    /// they apply cannot be told, so a planner takes away none of the
    /// access those rules could give (see [`CompiledPolicy::gap_for`]).
    /// Each names the rule, its condition and the value.
    pub fn gaps(&self) -> impl Iterator<Item = &str> {
        self.gaps.iter().map(|(_, why)| why.as_str())
    }

    /// Whether any segregation-of-duties rule is violated.
    pub fn has_violations(&self) -> bool {
        !self.violations.is_empty()
    }
}

/// The account a target should hold for an identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DesiredAccount {
    /// The login name.
    pub login: String,
    /// Attributes from the target's template, secret ones apart.
    pub attributes: Attributes,
    /// The names of the secret attributes it is created with (their values
    /// are never shown).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret: Vec<String>,
    /// Whether it should be enabled.
    pub enabled: bool,
    /// For leavers: what the account becomes and when it may be deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaver: Option<LeaverPlan>,
}

/// What happens to a leaver's account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LeaverPlan {
    /// The target's leaver action.
    pub action: LeaverAction,
    /// For `delete`: the moment deletion is allowed: the moment of
    /// leaving plus the grace period. The moment of leaving is
    /// `Identity::left_at` when known, else the end of the end date (the
    /// last working day); unknown without either (never deleted until the
    /// engine has recorded when it saw the identity leave).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_after: Option<DateTime<Utc>>,
}

/// A problem met while resolving one identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Problem {
    /// The identity.
    pub identity: IdentityId,
    /// Where: `rules.sales.when`, `targets.ldap.login`, `targets.ldap.attributes.mail`.
    pub path: String,
    /// What went wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "identity {}: {}: {}",
            self.identity, self.path, self.message
        )
    }
}

/// Where a role came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum Source {
    /// A birthright rule.
    Rule {
        /// The rule's id.
        id: String,
    },
    /// An assignment by hand.
    Assignment {
        /// The assignment's id.
        id: String,
    },
    /// A lease.
    Lease {
        /// The lease's id.
        id: String,
        /// When it ends.
        valid_until: DateTime<Utc>,
    },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Rule { id } => write!(f, "rule {id}"),
            Source::Assignment { id } => write!(f, "assignment {id}"),
            Source::Lease { id, valid_until } => {
                write!(f, "lease {id} (until {})", valid_until.to_rfc3339())
            }
        }
    }
}

/// A role an identity holds directly, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RoleGrant {
    /// The role.
    pub role: String,
    /// What gave it.
    pub source: Source,
}

/// One target's desired state for an identity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DesiredTarget {
    /// The account, or `None` when the identity should have none here.
    pub account: Option<DesiredAccount>,
    /// Entitlements, each with every source that gives it: access stays
    /// while any source remains (one lease ending never removes what a rule
    /// or another lease still gives).
    pub entitlements: BTreeMap<EntitlementId, Vec<Source>>,
    /// What is held on this target because a value the policy reads is
    /// missing or empty: every change (the account condition), the login,
    /// or an attribute left as it is (`mail: ...`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<String>,
}

/// A template that reads a value an identity lacks or has empty
/// ([`CompiledPolicy::missing_values`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MissingValue {
    /// The target whose template it is (`None` for a birthright rule).
    pub target: Option<TargetId>,
    /// `account`, `login`, `attribute NAME` or `rule ID`.
    pub place: String,
    /// The identity value it reads (`email`, `department`).
    pub value: String,
}

/// A segregation-of-duties violation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SodViolation {
    /// The rule's id.
    pub rule: String,
    /// Its description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The conflicting roles the identity holds.
    pub roles: Vec<String>,
    /// The conflicting entitlements, as `target:entitlement`.
    pub entitlements: Vec<String>,
    /// How the rule is enforced.
    pub enforce: crate::policy::Enforce,
}

/// An identity's desired state with names and reasons: serialisable, and
/// the same bytes for the same inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DesiredState {
    /// Who.
    pub identity: IdentityId,
    /// The state in effect.
    pub state: LifecycleState,
    /// Roles held directly, with their sources.
    pub roles: Vec<RoleGrant>,
    /// Per target.
    pub targets: BTreeMap<TargetId, DesiredTarget>,
    /// Segregation-of-duties violations (reported; access is not dropped).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<SodViolation>,
    /// Problems met while resolving.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
    /// Rules that could not be evaluated for a missing or empty value
    /// ([`Resolution::gaps`]): no access is taken away while any is listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<String>,
}

/// One way an identity comes to hold an entitlement.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Chain {
    /// What gave the first role.
    pub source: Source,
    /// The roles from the one given down to the one granting the entitlement.
    pub roles: Vec<String>,
    /// The target.
    pub target: TargetId,
    /// The entitlement.
    pub entitlement: EntitlementId,
}

impl std::fmt::Display for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.source)?;
        for r in &self.roles {
            write!(f, " -> role {r}")?;
        }
        write!(f, " -> {}:{}", self.target, self.entitlement)
    }
}

/// Most chains `explain` lists; inheritance DAGs can have many paths.
const MAX_CHAINS: usize = 256;

impl CompiledPolicy {
    /// Resolves one identity at `now` against the policy's own assignments and leases.
    pub fn resolve(&self, identity: &Identity, now: DateTime<Utc>) -> Resolution {
        self.resolve_with(identity, now, Extra::default())
    }

    /// Resolves many identities using every core. The output is in input order.
    pub fn resolve_many(&self, identities: &[Identity], now: DateTime<Utc>) -> Vec<Resolution> {
        identities
            .par_iter()
            .with_min_len(256)
            .map(|i| self.resolve(i, now))
            .collect()
    }

    /// Resolves one identity with assignments and leases from outside the policy.
    pub fn resolve_with(
        &self,
        identity: &Identity,
        now: DateTime<Utc>,
        extra: Extra<'_>,
    ) -> Resolution {
        let state = effective_state(identity, now);
        let mut res = Resolution {
            identity: identity.id.clone(),
            state,
            grants: SmallVec::new(),
            assignments: Vec::new(),
            leases: Vec::new(),
            targets: Vec::new(),
            entitlements: Vec::new(),
            violations: Vec::new(),
            problems: Vec::new(),
            gaps: Vec::new(),
            excepted: Vec::new(),
        };
        // A leaver holds nothing, except on targets whose leaver action is
        // `keep`: there it keeps what the birthright rules still give it
        // (a rule on `state == "terminated"`, say); assignments and leases end.
        let keeps_somewhere = self
            .targets
            .iter()
            .any(|t| t.leaver.action == LeaverAction::Keep);
        if state != LifecycleState::Terminated {
            self.collect_grants(identity, now, extra, false, &mut res);
            self.rule_gaps(identity, &mut res);
        } else if keeps_somewhere {
            self.collect_grants(identity, now, extra, true, &mut res);
        }
        res.grants.sort_unstable();
        res.grants.dedup();

        let ents = self.union_entitlements(&res.grants);
        if !self.sod.is_empty() && !res.grants.is_empty() {
            res.violations = self.check_sod(&res.grants, &ents);
            // An approved exception lifts the rule for this identity; the
            // exception stays on record for the plan's reasons.
            let excepted = |rule: u32| {
                self.sod
                    .get(rule as usize)
                    .and_then(|r| r.exceptions.iter().position(|x| x.identity == identity.id))
            };
            res.excepted = res
                .violations
                .iter()
                .filter_map(|(rule, _, _)| {
                    excepted(*rule).map(|x| (*rule, crate::compile::index(x)))
                })
                .collect();
            res.violations
                .retain(|(rule, _, _)| excepted(*rule).is_none());
        }

        // Split the sorted entitlements by target (they are sorted by target first).
        let mut at = 0usize;
        for (t, info) in self.targets.iter().enumerate() {
            let end = self.target_ends.get(t).copied().unwrap_or(u32::MAX);
            let rest = ents.get(at..).unwrap_or_default();
            let span = rest.partition_point(|&e| e < end);
            let t = crate::compile::index(t);
            let terminated = state == LifecycleState::Terminated;
            // A leaver keeps the account (disabled) until the leaver policy
            // removes it, whatever the condition says; where the action is
            // `keep`, the account stays enabled with what the rules still give.
            let leaving = terminated && info.leaver.action != LeaverAction::Keep;
            let keeps = terminated && info.leaver.action == LeaverAction::Keep;
            let n = if leaving { 0 } else { span };
            let mut held = None;
            let wanted = match &info.when {
                When::Never => false,
                When::Always => true,
                When::Entitled | When::If(_) if leaving || keeps => true,
                When::Entitled => n > 0,
                // A condition that is not true because a value it reads is
                // missing says nothing: the target's changes are held, never
                // turned into "no longer entitled".
                When::If(tpl) => match self.eval_bool(tpl, identity) {
                    Ok(true) => true,
                    Ok(false) => {
                        held = tpl.gap(identity);
                        false
                    }
                    Err(msg) => {
                        if tpl.gap(identity).is_none() {
                            res.problems.push(problem(
                                identity,
                                format!("targets.{}.account", info.id),
                                msg.clone(),
                            ));
                        }
                        held = Some(tpl.gap(identity).unwrap_or(msg));
                        false
                    }
                },
            };
            let held = held.map(|why| format!("the account condition {why}"));
            let account = if wanted || leaving {
                self.account(identity, state, info, &mut res)
            } else {
                None
            };
            if account.is_some() || n > 0 || held.is_some() {
                let range = (crate::compile::index(at), crate::compile::index(at + n));
                res.targets.push(TargetState {
                    target: t,
                    account,
                    held,
                    range,
                });
            }
            at += span;
        }
        res.entitlements = ents;
        res
    }

    /// The sorted union of the entitlements of every granted role's closure.
    ///
    /// Dense unions go through a per-thread bitmap (no sort, no hashing);
    /// sparse ones are sorted. Either way this is the one allocation that
    /// holds the result.
    fn union_entitlements(&self, grants: &[Grant]) -> Vec<u32> {
        let lists = || {
            grants
                .iter()
                .filter_map(|g| self.roles.get(g.role as usize))
                .map(|r| r.all_entitlements.as_slice())
        };
        let upper: usize = lists().map(<[u32]>::len).sum();
        let words = self.entitlements.len().div_ceil(64);
        if upper == 0 {
            return Vec::new();
        }
        if upper * 8 < words {
            let mut out: Vec<u32> = Vec::with_capacity(upper);
            lists().for_each(|l| out.extend_from_slice(l));
            out.sort_unstable();
            out.dedup();
            return out;
        }
        BITMAP.with_borrow_mut(|bits| {
            if bits.len() < words {
                bits.resize(words, 0);
            }
            for list in lists() {
                for &e in list {
                    if let Some(w) = bits.get_mut(e as usize >> 6) {
                        *w |= 1u64 << (e & 63);
                    }
                }
            }
            // Two slots of slack: each word writes two candidates unconditionally.
            let mut out = vec![0u32; upper + 2];
            let mut len = 0usize;
            for (i, word) in bits.iter_mut().enumerate().take(words) {
                let mut x = std::mem::take(word);
                let base = crate::compile::index(i * 64);
                // Most words hold 0 to 2 bits: take two without a branch on
                // the data (a mispredicted branch per word costs more than
                // the rest of the loop), then loop for the rare remainder.
                for _ in 0..2 {
                    if let Some(slot) = out.get_mut(len) {
                        *slot = base + x.trailing_zeros();
                    }
                    len += usize::from(x != 0);
                    x &= x.wrapping_sub(1);
                }
                while x != 0 {
                    if let Some(slot) = out.get_mut(len) {
                        *slot = base + x.trailing_zeros();
                    }
                    len += 1;
                    x &= x - 1;
                }
            }
            out.truncate(len);
            out
        })
    }

    /// Roles from the birthright rules, then (unless `rules_only`) from
    /// assignments and leases.
    fn collect_grants(
        &self,
        identity: &Identity,
        now: DateTime<Utc>,
        extra: Extra<'_>,
        rules_only: bool,
        res: &mut Resolution,
    ) {
        let fire = |rule: u32, res: &mut Resolution| {
            if let Some(info) = self.rules.get(rule as usize) {
                for &role in &info.roles {
                    res.grants.push(Grant {
                        source: Src::Rule(rule),
                        role,
                    });
                }
            }
        };
        for (attr, values) in &self.rule_index {
            let Some(Value::String(v)) = identity.attributes.get(attr) else {
                continue;
            };
            let Some(candidates) = values.get(v.as_str()) else {
                continue;
            };
            for &rule in candidates {
                let Some(info) = self.rules.get(rule as usize) else {
                    continue;
                };
                match &info.when.compiled {
                    // The first conjunct matched through the index; the rest is checked here.
                    Compiled::Fast(f) if f.eval(identity) => fire(rule, res),
                    _ => {}
                }
            }
        }
        for &rule in &self.unindexed_rules {
            let Some(info) = self.rules.get(rule as usize) else {
                continue;
            };
            match self.eval_bool(&info.when, identity) {
                Ok(true) => fire(rule, res),
                Ok(false) => {}
                Err(msg) => {
                    res.problems
                        .push(problem(identity, format!("rules.{}.when", info.id), msg))
                }
            }
        }

        if rules_only {
            return;
        }
        let own_assignments = self
            .assignments_by_identity
            .get(&identity.id)
            .into_iter()
            .flatten();
        let own = own_assignments.filter_map(|&i| self.assignments.get(i as usize));
        let extra_assignments = extra
            .assignments
            .iter()
            .filter(|a| a.identity == identity.id);
        for a in own.chain(extra_assignments) {
            match self.role_index.get(&a.role) {
                Some(&role) => {
                    let at = crate::compile::index(res.assignments.len());
                    res.assignments.push(a.clone());
                    res.grants.push(Grant {
                        source: Src::Assignment(at),
                        role,
                    });
                }
                None => res.problems.push(problem(
                    identity,
                    format!("assignments.{}", a.id),
                    format!("unknown role `{}`", a.role),
                )),
            }
        }
        let own_leases = self
            .leases_by_identity
            .get(&identity.id)
            .into_iter()
            .flatten();
        let own = own_leases.filter_map(|&i| self.leases.get(i as usize));
        let extra_leases = extra.leases.iter().filter(|l| l.identity == identity.id);
        for l in own.chain(extra_leases) {
            if !l.is_active(now) {
                continue;
            }
            if let Err(msg) = check_lease(l, &self.role_index, &self.roles) {
                res.problems
                    .push(problem(identity, format!("leases.{}", l.id), msg));
                continue;
            }
            if let Some(&role) = self.role_index.get(&l.role) {
                let at = crate::compile::index(res.leases.len());
                res.leases.push(l.clone());
                res.grants.push(Grant {
                    source: Src::Lease(at),
                    role,
                });
            }
        }
    }

    /// Records the rules that did not fire for `identity` because a value
    /// their condition reads is missing or empty. Costs a lookup per rule
    /// value when nothing is missing (the usual case).
    fn rule_gaps(&self, identity: &Identity, res: &mut Resolution) {
        if !self
            .rule_vars
            .iter()
            .any(|v| crate::compile::lacks(identity, v))
        {
            return;
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let i = crate::compile::index(i);
            if res.grants.iter().any(|g| g.source == Src::Rule(i)) {
                continue;
            }
            if let Some(gap) = rule.when.gap(identity) {
                res.gaps.push((i, format!("rule {} {gap}", rule.id)));
            }
        }
    }

    fn check_sod(&self, grants: &[Grant], ents: &[u32]) -> Vec<(u32, Vec<u32>, Vec<u32>)> {
        let mut violations = Vec::new();
        let mut closure: Vec<u32> = Vec::new();
        for g in grants {
            if let Some(role) = self.roles.get(g.role as usize) {
                closure.extend_from_slice(&role.closure);
            }
        }
        closure.sort_unstable();
        closure.dedup();
        for (i, rule) in self.sod.iter().enumerate() {
            let roles: Vec<u32> = rule
                .roles
                .iter()
                .copied()
                .filter(|r| closure.binary_search(r).is_ok())
                .collect();
            let es: Vec<u32> = rule
                .entitlements
                .iter()
                .copied()
                .filter(|e| ents.binary_search(e).is_ok())
                .collect();
            if roles.len() + es.len() >= 2 {
                violations.push((crate::compile::index(i), roles, es));
            }
        }
        violations
    }

    fn account(
        &self,
        identity: &Identity,
        state: LifecycleState,
        info: &crate::compile::TargetInfo,
        res: &mut Resolution,
    ) -> Option<AccountState> {
        // A login that cannot be computed holds what needs it (a create, a
        // match by login, a rename); it never means "no account".
        let mut login_held = None;
        let login = match &info.login {
            None => None,
            Some(tpl) => match self.eval(tpl, identity) {
                Ok(Value::String(s)) if !s.trim().is_empty() => Some(s),
                other => {
                    let msg = match other {
                        Ok(v) => format!(
                            "the login must be a non-empty string, `{}` gave {v:?}",
                            tpl.source
                        ),
                        Err(msg) => msg,
                    };
                    let why = match tpl.gap(identity) {
                        Some(gap) => gap,
                        None => {
                            res.problems.push(problem(
                                identity,
                                format!("targets.{}.login", info.id),
                                msg.clone(),
                            ));
                            msg
                        }
                    };
                    login_held = Some(format!("the login {why}"));
                    None
                }
            },
        };
        let mut attributes = Attributes::new();
        let mut secrets = prov_core::SecretAttributes::new();
        let mut kept = Vec::new();
        for (name, tpl) in &info.attributes {
            let value = self.eval(tpl, identity);
            let empty = match &value {
                Ok(Value::Null) | Err(_) => true,
                Ok(Value::String(s)) => s.trim().is_empty(),
                Ok(_) => false,
            };
            // Empty because an input is missing: left as it is, unless the
            // policy says an empty input clears it.
            if empty && let Some(gap) = tpl.gap(identity) {
                if info.empty_clears.binary_search(name).is_err() {
                    kept.push((name.clone(), gap));
                }
                continue;
            }
            match value {
                Ok(Value::Null) => {}
                Ok(v) if info.secret.binary_search(name).is_ok() => {
                    secrets.insert(name.clone(), prov_core::SecretValue::new(v));
                }
                Ok(v) => {
                    attributes.insert(name.clone(), v);
                }
                // A failing expression is a policy problem, and the value
                // on the target is kept, not removed.
                Err(msg) => {
                    res.problems.push(problem(
                        identity,
                        format!("targets.{}.attributes.{name}", info.id),
                        msg.clone(),
                    ));
                    kept.push((name.clone(), msg));
                }
            }
        }
        let leaver =
            (state == LifecycleState::Terminated).then(|| leaver_plan(identity, info.leaver));
        let enabled = match state {
            LifecycleState::Active => true,
            LifecycleState::Terminated => info.leaver.action == LeaverAction::Keep,
            _ => false,
        };
        Some(AccountState {
            login,
            attributes,
            secrets,
            enabled,
            leaver,
            login_held,
            kept,
        })
    }

    fn eval(&self, tpl: &Template, identity: &Identity) -> Result<Value, String> {
        match &tpl.compiled {
            Compiled::Const(v) => Ok(v.clone()),
            Compiled::Attr(name) => {
                let mut scratch = None;
                Ok(expr::lookup(identity, &mut scratch, name)
                    .cloned()
                    .unwrap_or(Value::Null))
            }
            Compiled::Fast(f) => Ok(Value::Bool(f.eval(identity))),
            Compiled::Cel(program) => expr::run_cel(&self.env, program, identity, &tpl.vars)
                .map_err(|e| {
                    let missing: Vec<&str> = tpl
                        .vars
                        .iter()
                        .filter(|v| expr::lookup(identity, &mut None, v).is_none())
                        .map(String::as_str)
                        .collect();
                    if missing.is_empty() {
                        format!("`{}` failed: {e}", tpl.source)
                    } else {
                        format!(
                            "`{}` failed: the identity has no {} ({e})",
                            tpl.source,
                            missing.join(", ")
                        )
                    }
                }),
        }
    }

    fn eval_bool(&self, tpl: &Template, identity: &Identity) -> Result<bool, String> {
        if let Compiled::Fast(f) = &tpl.compiled {
            return Ok(f.eval(identity));
        }
        match self.eval(tpl, identity)? {
            Value::Bool(b) => Ok(b),
            Value::Null => Ok(false),
            other => Err(format!(
                "`{}` gave {} where a bool was needed",
                tpl.source,
                other.type_name()
            )),
        }
    }

    fn source(&self, res: &Resolution, src: Src) -> Source {
        match src {
            Src::Rule(i) => Source::Rule {
                id: self
                    .rules
                    .get(i as usize)
                    .map(|r| r.id.clone())
                    .unwrap_or_default(),
            },
            Src::Assignment(i) => Source::Assignment {
                id: res
                    .assignments
                    .get(i as usize)
                    .map(|a| a.id.clone())
                    .unwrap_or_default(),
            },
            Src::Lease(i) => match res.leases.get(i as usize) {
                Some(l) => Source::Lease {
                    id: l.id.clone(),
                    valid_until: l.valid_until,
                },
                None => Source::Lease {
                    id: String::new(),
                    valid_until: DateTime::<Utc>::UNIX_EPOCH,
                },
            },
        }
    }

    pub(crate) fn role_name(&self, r: u32) -> String {
        self.roles
            .get(r as usize)
            .map(|x| x.id.clone())
            .unwrap_or_default()
    }

    pub(crate) fn entitlement_name(&self, e: u32) -> (TargetId, EntitlementId) {
        match self.entitlements.get(e as usize) {
            Some((t, id)) => (self.target_id(*t), id.clone()),
            None => (TargetId::new(""), EntitlementId::new("")),
        }
    }

    pub(crate) fn target_id(&self, t: u32) -> TargetId {
        self.targets
            .get(t as usize)
            .map(|x| x.id.clone())
            .unwrap_or_else(|| TargetId::new(""))
    }

    /// The desired state with names and every source of every entitlement.
    pub fn describe(&self, res: &Resolution) -> DesiredState {
        let mut roles: Vec<RoleGrant> = res
            .grants
            .iter()
            .map(|g| RoleGrant {
                role: self.role_name(g.role),
                source: self.source(res, g.source),
            })
            .collect();
        roles.sort();
        let mut targets = BTreeMap::new();
        for ts in &res.targets {
            let mut entitlements: BTreeMap<EntitlementId, Vec<Source>> = BTreeMap::new();
            let (lo, hi) = (ts.range.0 as usize, ts.range.1 as usize);
            for &e in res.entitlements.get(lo..hi).unwrap_or_default() {
                let mut sources: Vec<Source> = res
                    .grants
                    .iter()
                    .filter(|g| {
                        self.roles
                            .get(g.role as usize)
                            .is_some_and(|r| r.all_entitlements.binary_search(&e).is_ok())
                    })
                    .map(|g| self.source(res, g.source))
                    .collect();
                sources.sort();
                sources.dedup();
                entitlements.insert(self.entitlement_name(e).1, sources);
            }
            targets.insert(
                self.target_id(ts.target),
                DesiredTarget {
                    account: ts.account.as_ref().map(|a| DesiredAccount {
                        login: match (&a.login, &a.login_held) {
                            (_, Some(_)) => String::new(),
                            (Some(l), None) => l.clone(),
                            (None, None) => res.identity.to_string(),
                        },
                        attributes: a.attributes.clone(),
                        secret: a.secrets.keys().cloned().collect(),
                        enabled: a.enabled,
                        leaver: a.leaver,
                    }),
                    entitlements,
                    held: ts
                        .held
                        .iter()
                        .cloned()
                        .chain(ts.account.iter().flat_map(|a| {
                            a.login_held.iter().cloned().chain(
                                a.kept
                                    .iter()
                                    .map(|(name, why)| format!("{name} is left as it is: {why}")),
                            )
                        }))
                        .collect(),
                },
            );
        }
        let violations = self.sod_violations(res);
        DesiredState {
            identity: res.identity.clone(),
            state: res.state,
            roles,
            targets,
            violations,
            problems: res.problems.clone(),
            gaps: res.gaps().map(str::to_owned).collect(),
        }
    }

    /// Resolves and describes in one step.
    pub fn desired(&self, identity: &Identity, now: DateTime<Utc>) -> DesiredState {
        self.describe(&self.resolve(identity, now))
    }

    /// Every way `identity` holds `entitlement` on `target` at `now`: chains
    /// of rule, assignment or lease -> role -> inherited role ... -> entitlement.
    /// Empty when the identity does not hold it.
    pub fn explain(
        &self,
        identity: &Identity,
        target: &TargetId,
        entitlement: &EntitlementId,
        now: DateTime<Utc>,
    ) -> Vec<Chain> {
        self.explain_with(identity, target, entitlement, now, Extra::default())
    }

    /// [`explain`](Self::explain) with assignments and leases from outside the policy.
    pub fn explain_with(
        &self,
        identity: &Identity,
        target: &TargetId,
        entitlement: &EntitlementId,
        now: DateTime<Utc>,
        extra: Extra<'_>,
    ) -> Vec<Chain> {
        let Some(&t) = self.target_index.get(target.as_str()) else {
            return Vec::new();
        };
        let Some(&e) = self.entitlement_index.get(&(t, entitlement.clone())) else {
            return Vec::new();
        };
        let res = self.resolve_with(identity, now, extra);
        self.chains_for(&res, t, e)
    }

    /// [`explain`](Self::explain) over a resolution already made: no
    /// second resolve. Empty when the resolution does not hold the entitlement.
    pub fn chains(
        &self,
        res: &Resolution,
        target: &TargetId,
        entitlement: &EntitlementId,
    ) -> Vec<Chain> {
        let Some(&t) = self.target_index.get(target.as_str()) else {
            return Vec::new();
        };
        let Some(&e) = self.entitlement_index.get(&(t, entitlement.clone())) else {
            return Vec::new();
        };
        self.chains_for(res, t, e)
    }

    fn chains_for(&self, res: &Resolution, t: u32, e: u32) -> Vec<Chain> {
        let (target, entitlement) = (self.target_id(t), self.entitlement_name(e).1);
        let mut chains = Vec::new();
        for g in &res.grants {
            let source = self.source(res, g.source);
            let mut path = Vec::new();
            self.paths(g.role, e, &mut path, &mut |roles: &[u32]| {
                if chains.len() < MAX_CHAINS {
                    chains.push(Chain {
                        source: source.clone(),
                        roles: roles.iter().map(|&r| self.role_name(r)).collect(),
                        target: target.clone(),
                        entitlement: entitlement.clone(),
                    });
                }
            });
        }
        chains.sort();
        chains.dedup();
        chains
    }

    /// Each target's desired state for a resolution, borrowed: no copies,
    /// for planners that walk millions of identities.
    pub fn targets_of<'a>(
        &'a self,
        res: &'a Resolution,
    ) -> impl Iterator<Item = TargetView<'a>> + 'a {
        res.targets.iter().map(move |ts| TargetView {
            target: self.targets.get(ts.target as usize).map(|t| &t.id),
            account: ts.account.as_ref().map(|a| AccountView {
                login: match (&a.login, &a.login_held) {
                    (_, Some(_)) => "",
                    (Some(l), None) => l.as_str(),
                    (None, None) => res.identity.as_str(),
                },
                attributes: &a.attributes,
                secrets: &a.secrets,
                enabled: a.enabled,
                leaver: a.leaver,
                login_held: a.login_held.as_deref(),
                kept: &a.kept,
            }),
            held: ts.held.as_deref(),
            entitlements: res
                .entitlements
                .get(ts.range.0 as usize..ts.range.1 as usize)
                .unwrap_or_default(),
            policy: self,
        })
    }

    /// The identity attributes the policy's expressions read (birthright
    /// rules, account conditions, logins, account attributes), sorted, the
    /// built-in fields (`id`, `state`, `manager`, `start_date`,
    /// `end_date`) apart: what a source must be able to give. A source
    /// that cannot give one (a renamed column) should fail to load rather
    /// than read as blank for everyone.
    pub fn identity_attributes(&self) -> Vec<&str> {
        let mut templates: Vec<&crate::compile::Template> =
            self.rules.iter().map(|r| &r.when).collect();
        for t in &self.targets {
            if let crate::compile::When::If(tpl) = &t.when {
                templates.push(tpl);
            }
            templates.extend(&t.login);
            templates.extend(t.attributes.iter().map(|(_, tpl)| tpl));
        }
        let out: BTreeSet<&str> = templates
            .into_iter()
            .flat_map(|t| t.vars.iter().map(String::as_str))
            .filter(|v| !crate::expr::BUILTINS.contains(v))
            .collect();
        out.into_iter().collect()
    }

    /// Every place of the policy whose template reads a value `identity`
    /// lacks or has empty (a blank HR cell, a renamed column): a target's
    /// account condition, login or attribute, or a birthright rule. What
    /// `prov validate` reports before a plan would hold those changes.
    pub fn missing_values(&self, identity: &Identity) -> Vec<MissingValue> {
        let mut out = Vec::new();
        let mut add = |target: Option<&TargetId>, place: String, tpl: &Template| {
            for value in tpl.missing(identity) {
                if expr::BUILTINS.contains(&value) {
                    continue; // no manager, no end date: the usual case
                }
                out.push(MissingValue {
                    target: target.cloned(),
                    place: place.clone(),
                    value: value.to_owned(),
                });
            }
        };
        for r in &self.rules {
            add(None, format!("rule {}", r.id), &r.when);
        }
        for t in &self.targets {
            if let When::If(tpl) = &t.when {
                add(Some(&t.id), "account".to_owned(), tpl);
            }
            if let Some(tpl) = &t.login {
                add(Some(&t.id), "login".to_owned(), tpl);
            }
            for (name, tpl) in &t.attributes {
                if t.empty_clears.binary_search(name).is_err() {
                    add(Some(&t.id), format!("attribute {name}"), tpl);
                }
            }
        }
        out
    }

    /// The segregation-of-duties rules `res`'s identity breaks, named.
    pub fn sod_violations(&self, res: &Resolution) -> Vec<SodViolation> {
        res.violations
            .iter()
            .map(|(i, rs, es)| {
                let rule = self.sod.get(*i as usize);
                SodViolation {
                    rule: rule.map(|r| r.id.clone()).unwrap_or_default(),
                    description: rule.and_then(|r| r.description.clone()),
                    enforce: rule.map(|r| r.enforce).unwrap_or_default(),
                    roles: rs.iter().map(|&r| self.role_name(r)).collect(),
                    entitlements: es
                        .iter()
                        .map(|&e| {
                            let (t, id) = self.entitlement_name(e);
                            format!("{t}:{id}")
                        })
                        .collect(),
                }
            })
            .collect()
    }

    /// The segregation-of-duties rule enforced as `prevent` that giving
    /// `entitlement` on `target` to `res`'s identity is part of breaking:
    /// the identity would hold two or more of its roles or entitlements,
    /// and this entitlement is one of them or given by one of them. The
    /// rule's id and description, for the message.
    pub fn sod_conflict<'p>(
        &'p self,
        res: &Resolution,
        target: &TargetId,
        entitlement: &EntitlementId,
    ) -> Option<(&'p str, Option<&'p str>)> {
        if res.violations.is_empty() {
            return None;
        }
        let e = self.entitlement_of(target, entitlement)?;
        res.violations.iter().find_map(|(rule, roles, ents)| {
            let info = self.sod.get(*rule as usize)?;
            if info.enforce != crate::policy::Enforce::Prevent {
                return None;
            }
            let part = ents.contains(&e)
                || roles.iter().any(|&r| {
                    self.roles
                        .get(r as usize)
                        .is_some_and(|role| role.all_entitlements.binary_search(&e).is_ok())
                });
            part.then_some((info.id.as_str(), info.description.as_deref()))
        })
    }

    /// The index of `entitlement` on `target`, if the policy grants it there.
    fn entitlement_of(&self, target: &TargetId, entitlement: &EntitlementId) -> Option<u32> {
        let t = *self.target_index.get(target.as_str())?;
        self.entitlement_index
            .get(&(t, entitlement.clone()))
            .copied()
    }

    /// Whether `res`'s identity breaks a rule with `resolve =
    /// "remove_newer"` (whose decision needs the grant ledger's dates).
    pub fn breaks_remove_newer(&self, res: &Resolution) -> bool {
        res.violations.iter().any(|(rule, _, _)| {
            self.sod.get(*rule as usize).is_some_and(|info| {
                info.enforce == crate::policy::Enforce::Prevent
                    && info.resolve == crate::policy::Resolve::RemoveNewer
            })
        })
    }

    /// For a rule with `resolve = "remove_newer"` that `res`'s identity
    /// breaks, the side of it that `entitlement` on `target` belongs to:
    /// the rule's id and the side, `role NAME` or `TARGET:ENTITLEMENT` (an
    /// entitlement the rule names is its own side; one a role gives
    /// belongs to that role's side). The first such rule, in the policy's order.
    pub fn sod_side<'p>(
        &'p self,
        res: &Resolution,
        target: &TargetId,
        entitlement: &EntitlementId,
    ) -> Option<(&'p str, String)> {
        if res.violations.is_empty() {
            return None;
        }
        let e = self.entitlement_of(target, entitlement)?;
        res.violations.iter().find_map(|(rule, roles, ents)| {
            let info = self.sod.get(*rule as usize)?;
            if info.enforce != crate::policy::Enforce::Prevent
                || info.resolve != crate::policy::Resolve::RemoveNewer
            {
                return None;
            }
            if ents.contains(&e) {
                return Some((info.id.as_str(), format!("{target}:{entitlement}")));
            }
            roles.iter().find_map(|&r| {
                self.roles
                    .get(r as usize)
                    .filter(|role| role.all_entitlements.binary_search(&e).is_ok())
                    .map(|_| (info.id.as_str(), format!("role {}", self.role_name(r))))
            })
        })
    }

    /// The approved exception under which `res`'s identity gets
    /// `entitlement` on `target` although it breaks a separation-of-duties
    /// rule: "separation-of-duties rule payments: exception approved by
    /// E1001 (month-end cover)", for the grant's reasons.
    pub fn sod_exception(
        &self,
        res: &Resolution,
        target: &TargetId,
        entitlement: &EntitlementId,
    ) -> Option<String> {
        if res.excepted.is_empty() {
            return None;
        }
        let e = self.entitlement_of(target, entitlement)?;
        res.excepted.iter().find_map(|&(rule, x)| {
            let info = self.sod.get(rule as usize)?;
            let exception = info.exceptions.get(x as usize)?;
            let part = info.entitlements.contains(&e)
                || info.roles.iter().any(|&r| {
                    self.roles
                        .get(r as usize)
                        .is_some_and(|role| role.all_entitlements.binary_search(&e).is_ok())
                });
            part.then(|| {
                format!(
                    "separation-of-duties rule {}: exception approved by {} ({})",
                    info.id, exception.approver, exception.reason
                )
            })
        })
    }

    /// Why taking `entitlement` on `target` away from `res`'s identity
    /// cannot be decided: a rule whose roles could give it was not
    /// evaluated for a missing value ([`Resolution::gaps`]). `None` when
    /// no such rule could give it.
    pub fn gap_for<'r>(
        &self,
        res: &'r Resolution,
        target: &TargetId,
        entitlement: &EntitlementId,
    ) -> Option<&'r str> {
        if res.gaps.is_empty() {
            return None;
        }
        let e = self.entitlement_of(target, entitlement)?;
        self.gap_where(res, |ents| ents.binary_search(&e).is_ok())
    }

    /// Why whether `res`'s identity is still entitled to an account on
    /// `target` cannot be decided: a rule whose roles give something there
    /// was not evaluated for a missing value.
    pub fn gap_on<'r>(&self, res: &'r Resolution, target: &TargetId) -> Option<&'r str> {
        if res.gaps.is_empty() {
            return None;
        }
        let t = *self.target_index.get(target.as_str())? as usize;
        let start = match t.checked_sub(1) {
            Some(p) => self.target_ends.get(p).copied().unwrap_or(0),
            None => 0,
        };
        let end = self.target_ends.get(t).copied().unwrap_or(0);
        self.gap_where(res, |ents| ents.iter().any(|&e| e >= start && e < end))
    }

    fn gap_where<'r>(&self, res: &'r Resolution, hits: impl Fn(&[u32]) -> bool) -> Option<&'r str> {
        res.gaps.iter().find_map(|(rule, why)| {
            let rule = self.rules.get(*rule as usize)?;
            rule.roles
                .iter()
                .filter_map(|&r| self.roles.get(r as usize))
                .any(|role| hits(&role.all_entitlements))
                .then_some(why.as_str())
        })
    }

    /// The policy as a graph, each edge `(from, to)` between nodes named
    /// `rule ID`, `role ID` and `TARGET:ENTITLEMENT`: a rule gives a role,
    /// a role inherits a role, a role grants an entitlement. In the
    /// policy's order (rules, then roles), for `prov graph`.
    pub fn graph_edges(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for r in &self.rules {
            for &role in &r.roles {
                out.push((
                    format!("rule {}", r.id),
                    format!("role {}", self.role_name(role)),
                ));
            }
        }
        for role in &self.roles {
            for &inherited in &role.inherits {
                out.push((
                    format!("role {}", role.id),
                    format!("role {}", self.role_name(inherited)),
                ));
            }
            for &e in &role.direct {
                let (t, id) = self.entitlement_name(e);
                out.push((format!("role {}", role.id), format!("{t}:{id}")));
            }
        }
        out
    }

    /// The roles that grant `entitlement` on `target` themselves (not by
    /// inheriting it), by name: how a plan names a mover's old and new roles.
    pub fn roles_granting(&self, target: &TargetId, entitlement: &EntitlementId) -> Vec<&str> {
        let Some(e) = self.entitlement_of(target, entitlement) else {
            return Vec::new();
        };
        self.roles
            .iter()
            .filter(|r| r.direct.binary_search(&e).is_ok())
            .map(|r| r.id.as_str())
            .collect()
    }

    /// Whether the policy grants `entitlement` on `target` through any role:
    /// entitlements it never mentions are not its to revoke.
    pub fn manages(&self, target: &TargetId, entitlement: &EntitlementId) -> bool {
        self.target_index.get(target.as_str()).is_some_and(|&t| {
            self.entitlement_index
                .contains_key(&(t, entitlement.clone()))
        })
    }

    /// Every entitlement the policy grants on `target`, sorted.
    pub fn entitlements_on(&self, target: &TargetId) -> Vec<&EntitlementId> {
        let Some(&t) = self.target_index.get(target.as_str()) else {
            return Vec::new();
        };
        self.entitlements
            .iter()
            .filter(|(et, _)| *et == t)
            .map(|(_, id)| id)
            .collect()
    }

    /// The account attributes `target`'s template sets, sorted, secret
    /// ones apart: the only attributes a planner may compare and change.
    pub fn managed_attributes(&self, target: &TargetId) -> Vec<&str> {
        let Some(&t) = self.target_index.get(target.as_str()) else {
            return Vec::new();
        };
        self.targets
            .get(t as usize)
            .map(|info| {
                info.attributes
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .filter(|n| info.secret.binary_search_by(|s| s.as_str().cmp(n)).is_err())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn paths(&self, role: u32, ent: u32, path: &mut Vec<u32>, found: &mut dyn FnMut(&[u32])) {
        let Some(info) = self.roles.get(role as usize) else {
            return;
        };
        if info.all_entitlements.binary_search(&ent).is_err() {
            return;
        }
        path.push(role);
        if info.direct.binary_search(&ent).is_ok() {
            found(path);
        }
        for &p in &info.inherits {
            self.paths(p, ent, path, found);
        }
        path.pop();
    }

    /// A digest (SHA-256, hex) of the policy as written: plans record it, so
    /// that a plan made under another policy is known to be stale.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The role ids, sorted.
    pub fn role_ids(&self) -> impl Iterator<Item = &str> {
        self.roles.iter().map(|r| r.id.as_str())
    }

    /// A role's description.
    pub fn role_description(&self, role: &str) -> Option<&str> {
        let r = *self.role_index.get(role)?;
        self.roles.get(r as usize)?.description.as_deref()
    }

    /// The target ids, sorted.
    pub fn target_ids(&self) -> impl Iterator<Item = &TargetId> {
        self.targets.iter().map(|t| &t.id)
    }

    /// Checks a lease request against the policy (known role, start before
    /// end, within the role's maximum duration, naming it when exceeded).
    pub fn check_lease(&self, lease: &Lease) -> Result<(), String> {
        check_lease(lease, &self.role_index, &self.roles)
    }

    /// Whether the resolution holds `role` (given by a rule, an assignment
    /// or a lease, directly or through inheritance).
    pub fn holds_role(&self, res: &Resolution, role: &str) -> bool {
        let Some(&r) = self.role_index.get(role) else {
            return false;
        };
        res.grants.iter().any(|g| {
            self.roles
                .get(g.role as usize)
                .is_some_and(|info| info.closure.binary_search(&r).is_ok())
        })
    }

    /// Whether `approver` may approve a lease of `role` at `now`: named in
    /// the role's `approvers`, or holding one of its `approver_roles` by
    /// the policy's own rules and assignments (a lease never makes an
    /// approver), and active. The error says why not, for the person
    /// refused. Who asked, and who gets the access, are the engine's to
    /// compare: neither may approve.
    pub fn may_approve(
        &self,
        role: &str,
        approver: &Identity,
        now: DateTime<Utc>,
    ) -> Result<(), String> {
        let Some(info) = self
            .role_index
            .get(role)
            .and_then(|&r| self.roles.get(r as usize))
        else {
            return Err(format!("unknown role `{role}`"));
        };
        if info.approvers.is_empty() && info.approver_roles.is_empty() {
            return Err(format!(
                "role `{role}` names no approvers (set `approvers` or `approver_roles` in the policy)"
            ));
        }
        let res = self.resolve(approver, now);
        if res.state == LifecycleState::Terminated {
            return Err(format!("approver `{}` has left", approver.id));
        }
        if info.approvers.iter().any(|a| a == approver.id.as_str()) {
            return Ok(());
        }
        let holds = info.approver_roles.iter().any(|&a| {
            self.roles
                .get(a as usize)
                .is_some_and(|r| self.holds_role(&res, &r.id))
        });
        if holds {
            return Ok(());
        }
        let mut who: Vec<String> = info.approvers.iter().map(|a| format!("`{a}`")).collect();
        who.extend(info.approver_roles.iter().filter_map(|&a| {
            self.roles
                .get(a as usize)
                .map(|r| format!("holders of role `{}`", r.id))
        }));
        Err(format!(
            "`{}` may not approve leases of role `{role}` (approvers: {})",
            approver.id,
            who.join(", ")
        ))
    }

    /// Sizes of the compiled form, for diagnostics and benchmarks.
    pub fn stats(&self) -> PolicyStats {
        PolicyStats {
            roles: self.roles.len(),
            targets: self.targets.len(),
            entitlements: self.entitlements.len(),
            rules: self.rules.len(),
            indexed_rules: self.rules.len() - self.unindexed_rules.len(),
        }
    }
}

/// One target's desired state, borrowed from a [`Resolution`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TargetView<'a> {
    /// The target (`None` only if the resolution came from another policy).
    pub target: Option<&'a TargetId>,
    /// The account, when one should exist.
    pub account: Option<AccountView<'a>>,
    /// Why every change on this target is held for the identity: whether it
    /// should have an account cannot be told (its condition reads a
    /// missing or empty value). `account` is then `None`, meaning unknown.
    pub held: Option<&'a str>,
    entitlements: &'a [u32],
    policy: &'a CompiledPolicy,
}

impl<'a> TargetView<'a> {
    /// The entitlements, sorted by id.
    pub fn entitlements(&self) -> impl Iterator<Item = &'a EntitlementId> + 'a {
        let policy = self.policy;
        self.entitlements
            .iter()
            .filter_map(move |&e| policy.entitlements.get(e as usize).map(|(_, id)| id))
    }

    /// How many entitlements.
    pub fn entitlement_count(&self) -> usize {
        self.entitlements.len()
    }
}

/// A desired account, borrowed from a [`Resolution`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct AccountView<'a> {
    /// The login.
    pub login: &'a str,
    /// Attributes from the template, secret ones apart.
    pub attributes: &'a Attributes,
    /// The template's secret attributes (set on create only).
    pub secrets: &'a prov_core::SecretAttributes,
    /// Whether it should be enabled.
    pub enabled: bool,
    /// For leavers: what happens to it.
    pub leaver: Option<LeaverPlan>,
    /// Why the login cannot be computed: `login` is then empty, and no
    /// account may be created, matched by login or renamed.
    pub login_held: Option<&'a str>,
    /// Managed attributes to leave as they are on the target (neither set
    /// nor removed), each with why.
    pub kept: &'a [(String, String)],
}

/// Sizes of a compiled policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PolicyStats {
    /// Roles.
    pub roles: usize,
    /// Targets.
    pub targets: usize,
    /// Distinct entitlements granted by any role.
    pub entitlements: usize,
    /// Birthright rules.
    pub rules: usize,
    /// Rules picked through the equality index (never run by the CEL interpreter).
    pub indexed_rules: usize,
}

fn problem(identity: &Identity, path: String, message: String) -> Problem {
    Problem {
        identity: identity.id.clone(),
        path,
        message,
    }
}

fn leaver_plan(identity: &Identity, leaver: Leaver) -> LeaverPlan {
    let delete_after = (leaver.action == LeaverAction::Delete)
        .then(|| {
            leaving_moment(identity)
                // Past the last representable moment: never deleted (the
                // policy bounds grace_days, so only a far end date gets here).
                .and_then(|t| t.checked_add_days(chrono::Days::new(u64::from(leaver.grace_days))))
        })
        .flatten();
    LeaverPlan {
        action: leaver.action,
        delete_after,
    }
}

/// When `identity` left: `left_at` when recorded, else the end of its end
/// date (the last working day), else unknown.
pub fn leaving_moment(identity: &Identity) -> Option<DateTime<Utc>> {
    identity.left_at.or_else(|| {
        identity
            .end_date
            .and_then(|d| d.succ_opt())
            .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
    })
}

/// The state in effect at `now`: a past end date or leaving moment makes a
/// leaver; a future start date keeps an active identity pre-hire.
pub fn effective_state(identity: &Identity, now: DateTime<Utc>) -> LifecycleState {
    let today = now.date_naive();
    match identity.state {
        LifecycleState::Terminated => LifecycleState::Terminated,
        _ if identity.left_at.is_some_and(|t| t <= now) => LifecycleState::Terminated,
        _ if identity.end_date.is_some_and(|end| end < today) => LifecycleState::Terminated,
        LifecycleState::Active if identity.start_date.is_some_and(|s| s > today) => {
            LifecycleState::PreHire
        }
        other => other,
    }
}
