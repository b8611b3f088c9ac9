//! `Policy::compile`: check everything once, then build the fast form.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use cel::Env;

pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;
use prov_core::{EntitlementId, Identity, IdentityId, TargetId, Value};

use crate::error::{PolicyError, PolicyErrors};
use crate::expr::{self, BUILTINS, Compiled, Fast, Lit};
use crate::policy::{AccountWhen, Assignment, AttrType, Lease, Leaver, Policy};

/// The longest grace period a leaver's account may be kept before deletion
/// (ten years): a longer one is a policy error, not an overflow.
pub const MAX_GRACE_DAYS: u32 = 3_660;

/// A policy checked and compiled for resolving: ids interned, role
/// closures precomputed, equality rules indexed by attribute value.
///
/// Build it with [`Policy::compile`]. It is immutable and `Sync`: share one
/// behind an `Arc` between threads.
pub struct CompiledPolicy {
    pub(crate) env: Arc<Env>,
    pub(crate) roles: Vec<RoleInfo>,
    pub(crate) role_index: HashMap<String, u32>,
    pub(crate) targets: Vec<TargetInfo>,
    pub(crate) target_index: HashMap<String, u32>,
    /// Every entitlement any role grants, sorted by (target id, entitlement id).
    pub(crate) entitlements: Vec<(u32, EntitlementId)>,
    pub(crate) entitlement_index: HashMap<(u32, EntitlementId), u32>,
    /// For each target, one past the index of its last entitlement.
    pub(crate) target_ends: Vec<u32>,
    pub(crate) rules: Vec<RuleInfo>,
    /// attribute -> value -> rules whose condition requires that value.
    /// Hashed with foldhash: this lookup runs per identity and attribute, and
    /// the keys come from the policy, not from an attacker.
    pub(crate) rule_index: Vec<(String, FastMap<String, Vec<u32>>)>,
    /// Rules the index cannot pick: evaluated for everyone.
    pub(crate) unindexed_rules: Vec<u32>,
    /// Every identity value some rule's condition reads, sorted: an
    /// identity lacking none of them has no rule gap to look for.
    pub(crate) rule_vars: Vec<String>,
    pub(crate) assignments: Vec<Assignment>,
    pub(crate) assignments_by_identity: HashMap<IdentityId, Vec<u32>>,
    pub(crate) leases: Vec<Lease>,
    pub(crate) leases_by_identity: HashMap<IdentityId, Vec<u32>>,
    pub(crate) sod: Vec<SodInfo>,
    /// SHA-256 of the policy's canonical JSON.
    pub(crate) digest: String,
}

#[derive(Debug)]
pub(crate) struct RoleInfo {
    pub(crate) id: String,
    pub(crate) description: Option<String>,
    pub(crate) inherits: Vec<u32>,
    /// Entitlements this role grants itself (not through inheritance).
    pub(crate) direct: Vec<u32>,
    /// Roles reached through inheritance, itself included, sorted.
    pub(crate) closure: Vec<u32>,
    /// Entitlements of the whole closure, sorted.
    pub(crate) all_entitlements: Vec<u32>,
    pub(crate) max_lease_days: Option<u32>,
    /// Identities who may approve its leases.
    pub(crate) approvers: Vec<String>,
    /// Roles whose holders may approve its leases.
    pub(crate) approver_roles: Vec<u32>,
}

#[derive(Debug)]
pub(crate) struct TargetInfo {
    pub(crate) id: TargetId,
    pub(crate) when: When,
    pub(crate) login: Option<Template>,
    pub(crate) attributes: Vec<(String, Template)>,
    /// Names of the attributes that are secret, sorted.
    pub(crate) secret: Vec<String>,
    /// Names of the attributes an empty input clears, sorted.
    pub(crate) empty_clears: Vec<String>,
    pub(crate) leaver: Leaver,
}

#[derive(Debug)]
pub(crate) enum When {
    Entitled,
    Always,
    Never,
    If(Template),
}

#[derive(Debug)]
pub(crate) struct Template {
    pub(crate) source: String,
    pub(crate) compiled: Compiled,
    pub(crate) vars: Vec<String>,
}

/// Whether `identity` lacks value `var` or has it empty (an empty string
/// or list).
pub(crate) fn lacks(identity: &Identity, var: &str) -> bool {
    let mut scratch = None;
    match crate::expr::lookup(identity, &mut scratch, var) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        Some(Value::List(l)) => l.is_empty(),
        Some(_) => false,
    }
}

impl Template {
    /// The identity values this expression reads that `identity` lacks or
    /// has empty (an empty string or list): what a blank HR cell or a
    /// renamed column looks like.
    pub(crate) fn missing(&self, identity: &Identity) -> Vec<&str> {
        self.vars
            .iter()
            .filter(|v| lacks(identity, v))
            .map(String::as_str)
            .collect()
    }

    /// Why a result of this expression cannot be trusted for `identity`, if
    /// it reads a missing or empty value: "`email` reads email, which E1 lacks (missing or empty)".
    pub(crate) fn gap(&self, identity: &Identity) -> Option<String> {
        let missing = self.missing(identity);
        (!missing.is_empty()).then(|| {
            format!(
                "`{}` reads {}, which {} lacks (missing or empty in the source)",
                self.source,
                missing.join(", "),
                identity.id
            )
        })
    }
}

#[derive(Debug)]
pub(crate) struct RuleInfo {
    pub(crate) id: String,
    pub(crate) when: Template,
    pub(crate) roles: Vec<u32>,
}

#[derive(Debug)]
pub(crate) struct SodInfo {
    pub(crate) id: String,
    pub(crate) description: Option<String>,
    pub(crate) enforce: crate::policy::Enforce,
    pub(crate) resolve: crate::policy::Resolve,
    pub(crate) exceptions: Vec<crate::policy::SodException>,
    pub(crate) roles: Vec<u32>,
    pub(crate) entitlements: Vec<u32>,
}

impl std::fmt::Debug for CompiledPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledPolicy")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

struct Checker<'p> {
    policy: &'p Policy,
    env: Arc<Env>,
    errors: Vec<PolicyError>,
    sample: Identity,
}

impl Checker<'_> {
    fn error(&mut self, path: String, needle: Option<&str>, message: impl Into<String>) {
        self.errors
            .push(PolicyError::new(path, message).locate(self.policy.origin.as_ref(), needle));
    }

    /// Compiles and checks one expression. `want` is the type its result must have.
    fn template(&mut self, path: String, source: &str, want: Want) -> Option<Template> {
        let (compiled, vars) = match expr::compile(&self.env, source, want == Want::Bool) {
            Ok(c) => c,
            Err(msg) => {
                self.error(path, None, format!("cannot parse `{source}`: {msg}"));
                return None;
            }
        };
        let schema = &self.policy.attributes;
        let mut ok = true;
        if !schema.is_empty() {
            for v in &vars {
                if !schema.contains_key(v) && !BUILTINS.contains(&v.as_str()) {
                    let known: Vec<&str> = schema.keys().map(String::as_str).collect();
                    self.error(
                        path.clone(),
                        None,
                        format!("`{source}` uses `{v}`, which is not a declared attribute (declared: {})", known.join(", ")),
                    );
                    ok = false;
                }
            }
        }
        if !ok {
            return None;
        }
        let template = Template {
            source: source.to_owned(),
            compiled,
            vars,
        };
        if !schema.is_empty()
            && let Err(msg) = self.type_check(&template, want)
        {
            self.error(path, None, format!("`{source}`: {msg}"));
            return None;
        }
        Some(template)
    }

    fn type_check(&self, t: &Template, want: Want) -> Result<(), String> {
        let schema = &self.policy.attributes;
        match &t.compiled {
            Compiled::Fast(f) => check_fast(f, schema),
            Compiled::Attr(name) => match (schema.get(name), want) {
                (Some(AttrType::String), _) | (_, Want::Any) => Ok(()),
                (Some(ty), Want::String) => {
                    Err(format!("`{name}` is {ty:?}, a login must be a string"))
                }
                (Some(AttrType::Bool), Want::Bool) => Ok(()),
                (Some(ty), _) => Err(format!("`{name}` is {ty:?}, a condition must be a bool")),
                (None, _) => Ok(()),
            },
            Compiled::Const(_) => Ok(()),
            Compiled::Cel(program) => {
                match expr::run_cel(&self.env, program, &self.sample, &t.vars) {
                    Ok(v) => match (want, &v) {
                        (Want::Bool, Value::Bool(_))
                        | (Want::String, Value::String(_))
                        | (Want::Any, _) => Ok(()),
                        (Want::Bool, other) => Err(format!(
                            "a condition must give a bool, this gives {}",
                            other.type_name()
                        )),
                        (Want::String, other) => Err(format!(
                            "a login must give a string, this gives {}",
                            other.type_name()
                        )),
                    },
                    Err(e) if expr::is_type_error(&e) => Err(format!("type error: {e}")),
                    // Failing on the sample's values (an index past its end) is not a type error.
                    Err(_) => Ok(()),
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Bool,
    String,
    Any,
}

fn check_fast(f: &Fast, schema: &BTreeMap<String, AttrType>) -> Result<(), String> {
    let lit_ok = |name: &str, lit: &Lit| -> Result<(), String> {
        let Some(ty) = schema.get(name) else {
            return Ok(());
        };
        match (ty, lit) {
            (AttrType::String, Lit::Str(_))
            | (AttrType::Int, Lit::Int(_))
            | (AttrType::Bool, Lit::Bool(_)) => Ok(()),
            (ty, lit) => Err(format!(
                "type error: `{name}` is {ty:?} but is compared with {lit:?}"
            )),
        }
    };
    match f {
        Fast::Const(_) => Ok(()),
        Fast::Truthy(name) => match schema.get(name) {
            Some(AttrType::Bool) | None => Ok(()),
            Some(ty) => Err(format!(
                "type error: `{name}` is {ty:?}, a condition must be a bool"
            )),
        },
        Fast::Eq(name, lit) | Fast::Ne(name, lit) => lit_ok(name, lit),
        Fast::In(name, lits) => lits.iter().try_for_each(|l| lit_ok(name, l)),
        Fast::Contains(name, _) => match schema.get(name) {
            Some(AttrType::List) | None => Ok(()),
            Some(ty) => Err(format!("type error: `{name}` is {ty:?}, `in` needs a list")),
        },
        Fast::And(parts) | Fast::Or(parts) => parts.iter().try_for_each(|p| check_fast(p, schema)),
        Fast::Not(inner) => check_fast(inner, schema),
    }
}

impl Policy {
    /// Checks the whole policy and builds its fast form.
    ///
    /// Every problem is reported, not just the first: unknown roles and
    /// targets, inheritance cycles (naming the cycle), CEL parse and type
    /// errors, undeclared attributes, bad leases. Each error names the role,
    /// rule or field, and the file and line when the policy came from a file.
    pub fn compile(&self) -> Result<CompiledPolicy, PolicyErrors> {
        let env = expr::env().map_err(|e| PolicyErrors::from(PolicyError::new("", e)))?;
        let mut sample = Identity::new("sample");
        for (name, ty) in &self.attributes {
            sample.attributes.insert(name.clone(), expr::sample(*ty));
        }
        let mut ck = Checker {
            policy: self,
            env: Arc::clone(&env),
            errors: Vec::new(),
            sample,
        };

        // Ids are interned in sorted order, so the compiled form (and every
        // result) is the same whatever order the policy was written in.
        let role_index: HashMap<String, u32> = self
            .roles
            .keys()
            .enumerate()
            .map(|(i, id)| (id.clone(), index(i)))
            .collect();
        let target_index: HashMap<String, u32> = self
            .targets
            .keys()
            .enumerate()
            .map(|(i, id)| (id.clone(), index(i)))
            .collect();

        // Targets and their templates.
        let mut targets = Vec::with_capacity(self.targets.len());
        for (tid, t) in &self.targets {
            let when = match &t.account {
                AccountWhen::Entitled => When::Entitled,
                AccountWhen::Always => When::Always,
                AccountWhen::Never => When::Never,
                AccountWhen::If(cond) => {
                    match ck.template(format!("targets.{tid}.account"), cond, Want::Bool) {
                        Some(tpl) => When::If(tpl),
                        None => When::Never,
                    }
                }
            };
            let login = t
                .login
                .as_ref()
                .and_then(|src| ck.template(format!("targets.{tid}.login"), src, Want::String));
            let mut attributes = Vec::new();
            for (name, src) in &t.attributes {
                if let Some(tpl) =
                    ck.template(format!("targets.{tid}.attributes.{name}"), src, Want::Any)
                {
                    attributes.push((name.clone(), tpl));
                }
            }
            for (key, names) in [("secret", &t.secret), ("empty_clears", &t.empty_clears)] {
                for name in names {
                    if !t.attributes.contains_key(name) {
                        ck.error(
                            format!("targets.{tid}.{key}"),
                            Some(name),
                            format!("`{name}` is not one of the target's attributes"),
                        );
                    }
                }
            }
            if t.leaver.grace_days > MAX_GRACE_DAYS {
                ck.error(
                    format!("targets.{tid}.leaver.grace_days"),
                    None,
                    format!(
                        "{} days is longer than the {MAX_GRACE_DAYS}-day maximum",
                        t.leaver.grace_days
                    ),
                );
            }
            targets.push(TargetInfo {
                id: TargetId::new(tid),
                when,
                login,
                attributes,
                secret: t.secret.iter().cloned().collect(),
                empty_clears: t.empty_clears.iter().cloned().collect(),
                leaver: t.leaver,
            });
        }

        // Entitlements, interned sorted by (target, id).
        let mut ent_set: BTreeSet<(u32, EntitlementId)> = BTreeSet::new();
        for (rid, role) in &self.roles {
            for (tid, ents) in &role.grants {
                match target_index.get(tid) {
                    Some(&t) => ent_set.extend(ents.iter().map(|e| (t, EntitlementId::new(e)))),
                    None => ck.error(
                        format!("roles.{rid}.grants"),
                        Some(tid),
                        format!(
                            "grants on unknown target `{tid}` (targets: {})",
                            keys(&self.targets)
                        ),
                    ),
                }
            }
        }
        let entitlements: Vec<(u32, EntitlementId)> = ent_set.into_iter().collect();
        let target_ends: Vec<u32> = (0..targets.len())
            .map(|t| index(entitlements.partition_point(|(et, _)| (*et as usize) <= t)))
            .collect();
        let entitlement_index: HashMap<(u32, EntitlementId), u32> = entitlements
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), index(i)))
            .collect();

        // Roles.
        let mut roles = Vec::with_capacity(self.roles.len());
        for (rid, role) in &self.roles {
            // Roles a role names (its parents, its approvers' roles), each
            // unknown one an error at its field.
            let mut known = |field: &str, names: &[String], says: &str| -> Vec<u32> {
                let mut out = Vec::new();
                for name in names {
                    match role_index.get(name) {
                        Some(&r) => out.push(r),
                        None => ck.error(
                            format!("roles.{rid}.{field}"),
                            Some(name),
                            format!("{says} unknown role `{name}`"),
                        ),
                    }
                }
                out
            };
            let mut inherits = known("inherits", &role.inherits, "inherits");
            let approver_roles = known("approver_roles", &role.approver_roles, "names");
            inherits.sort_unstable();
            inherits.dedup();
            let mut direct: Vec<u32> = Vec::new();
            for (tid, ents) in &role.grants {
                if let Some(&t) = target_index.get(tid) {
                    for e in ents {
                        if let Some(&i) = entitlement_index.get(&(t, EntitlementId::new(e))) {
                            direct.push(i);
                        }
                    }
                }
            }
            direct.sort_unstable();
            direct.dedup();
            for approver in &role.approvers {
                if approver.trim().is_empty() {
                    ck.error(
                        format!("roles.{rid}.approvers"),
                        None,
                        "an approver is an identity id and cannot be empty".to_owned(),
                    );
                }
            }
            roles.push(RoleInfo {
                id: rid.clone(),
                description: role.description.clone(),
                inherits,
                direct,
                closure: Vec::new(),
                all_entitlements: Vec::new(),
                max_lease_days: role.max_lease_days,
                approvers: role.approvers.clone(),
                approver_roles,
            });
        }
        for cycle in find_cycles(&roles) {
            let names: Vec<&str> = cycle
                .iter()
                .filter_map(|&r| roles.get(r as usize))
                .map(|r| r.id.as_str())
                .collect();
            let first = names.first().copied().unwrap_or_default();
            ck.error(
                format!("roles.{first}.inherits"),
                None,
                format!("inheritance cycle: {} -> {first}", names.join(" -> ")),
            );
        }
        if ck
            .errors
            .iter()
            .all(|e| !e.message.starts_with("inheritance cycle"))
        {
            compute_closures(&mut roles);
        }

        let role_list = |ck: &mut Checker<'_>, path: String, names: &[String]| -> Vec<u32> {
            let mut out = Vec::new();
            for name in names {
                match role_index.get(name) {
                    Some(&r) => out.push(r),
                    None => ck.error(path.clone(), Some(name), format!("unknown role `{name}`")),
                }
            }
            out.sort_unstable();
            out.dedup();
            out
        };

        // Rules.
        let mut rules = Vec::with_capacity(self.rules.len());
        for (id, rule) in &self.rules {
            let role_ids = role_list(&mut ck, format!("rules.{id}.roles"), &rule.roles);
            if rule.roles.is_empty() {
                ck.error(
                    format!("rules.{id}.roles"),
                    None,
                    "a rule must give at least one role",
                );
            }
            if let Some(when) = ck.template(format!("rules.{id}.when"), &rule.when, Want::Bool) {
                rules.push(RuleInfo {
                    id: id.clone(),
                    when,
                    roles: role_ids,
                });
            }
        }
        let mut by_attr: BTreeMap<String, FastMap<String, Vec<u32>>> = BTreeMap::new();
        let mut unindexed_rules = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            let key = match &rule.when.compiled {
                Compiled::Fast(f) => f.index_key(),
                _ => None,
            };
            match key {
                Some((attr, values)) => {
                    let slot = by_attr.entry(attr.to_owned()).or_default();
                    for v in values {
                        let list = slot.entry(v.to_owned()).or_default();
                        if list.last() != Some(&index(i)) {
                            list.push(index(i));
                        }
                    }
                }
                None => unindexed_rules.push(index(i)),
            }
        }
        let rule_index: Vec<(String, FastMap<String, Vec<u32>>)> = by_attr.into_iter().collect();
        let rule_vars: Vec<String> = rules
            .iter()
            .flat_map(|r| r.when.vars.iter().cloned())
            .collect::<BTreeSet<String>>()
            .into_iter()
            .collect();

        // Assignments and leases.
        let mut assignments = self.assignments.clone();
        assignments.sort();
        let mut seen = BTreeSet::new();
        for a in &assignments {
            if !seen.insert(a.id.as_str()) {
                ck.error(
                    "assignments".to_owned(),
                    Some(&a.id),
                    format!("assignment id `{}` is used twice", a.id),
                );
            }
            if !role_index.contains_key(&a.role) {
                ck.error(
                    "assignments".to_owned(),
                    Some(&a.role),
                    format!("assignment `{}` names unknown role `{}`", a.id, a.role),
                );
            }
        }
        let mut leases = self.leases.clone();
        leases.sort();
        let mut seen = BTreeSet::new();
        for l in &leases {
            if !seen.insert(l.id.as_str()) {
                ck.error(
                    "leases".to_owned(),
                    Some(&l.id),
                    format!("lease id `{}` is used twice", l.id),
                );
            }
            if let Err(msg) = check_lease(l, &role_index, &roles) {
                ck.error(
                    "leases".to_owned(),
                    Some(&l.id),
                    format!("lease `{}`: {msg}", l.id),
                );
            }
        }
        let assignments_by_identity = group_by_identity(assignments.iter().map(|a| &a.identity));
        let leases_by_identity = group_by_identity(leases.iter().map(|l| &l.identity));

        // Segregation of duties.
        let mut sod = Vec::new();
        for (id, rule) in &self.sod {
            let rs = role_list(&mut ck, format!("sod.{id}.roles"), &rule.roles);
            let mut es = Vec::new();
            for e in &rule.entitlements {
                let found = e.split_once(':').and_then(|(t, ent)| {
                    let t = *target_index.get(t)?;
                    entitlement_index
                        .get(&(t, EntitlementId::new(ent)))
                        .copied()
                });
                match found {
                    Some(i) => es.push(i),
                    None => ck.error(
                        format!("sod.{id}.entitlements"),
                        Some(e),
                        format!(
                            "`{e}` is not `target:entitlement` for an entitlement some role grants"
                        ),
                    ),
                }
            }
            if rule.roles.len() + rule.entitlements.len() < 2 {
                ck.error(
                    format!("sod.{id}"),
                    None,
                    "a segregation-of-duties rule needs at least two roles or entitlements",
                );
            }
            if rule.resolve == crate::policy::Resolve::RemoveNewer
                && rule.enforce != crate::policy::Enforce::Prevent
            {
                ck.error(
                    format!("sod.{id}.resolve"),
                    None,
                    "resolve = \"remove_newer\" takes access away, and needs enforce = \"prevent\"",
                );
            }
            for x in &rule.exceptions {
                let ok_approver = rule.approvers.iter().any(|a| a == &x.approver);
                if !ok_approver || x.approver == x.identity.as_str() || x.reason.trim().is_empty() {
                    ck.error(
                        format!("sod.{id}.exceptions"),
                        Some(x.identity.as_str()),
                        format!(
                            "the exception for `{}` needs a reason and an approver among the rule's approvers ({}), not the identity itself",
                            x.identity,
                            rule.approvers.join(", ")
                        ),
                    );
                }
            }
            sod.push(SodInfo {
                id: id.clone(),
                description: rule.description.clone(),
                enforce: rule.enforce,
                resolve: rule.resolve,
                exceptions: rule.exceptions.clone(),
                roles: rs,
                entitlements: es,
            });
        }

        if !ck.errors.is_empty() {
            return Err(PolicyErrors { errors: ck.errors });
        }
        let digest = {
            use sha2::{Digest, Sha256};
            let text = serde_json::to_vec(self).unwrap_or_default();
            Sha256::digest(&text)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        Ok(CompiledPolicy {
            digest,
            env,
            roles,
            role_index,
            targets,
            target_index,
            entitlements,
            entitlement_index,
            target_ends,
            rules,
            rule_index,
            unindexed_rules,
            rule_vars,
            assignments,
            assignments_by_identity,
            leases,
            leases_by_identity,
            sod,
        })
    }
}

/// Checks a lease against the policy: a known role, a start before the
/// end, and no longer than the role's maximum.
pub(crate) fn check_lease(
    l: &Lease,
    role_index: &HashMap<String, u32>,
    roles: &[RoleInfo],
) -> Result<(), String> {
    let Some(&r) = role_index.get(&l.role) else {
        return Err(format!("unknown role `{}`", l.role));
    };
    if l.valid_until <= l.valid_from {
        return Err(format!(
            "ends ({}) before it starts ({})",
            l.valid_until.to_rfc3339(),
            l.valid_from.to_rfc3339()
        ));
    }
    if let Some(max) = roles.get(r as usize).and_then(|r| r.max_lease_days) {
        let days = (l.valid_until - l.valid_from).num_seconds() as f64 / 86_400.0;
        if days > f64::from(max) {
            return Err(format!(
                "lasts {days:.1} days, longer than the {max}-day maximum of role `{}`",
                l.role
            ));
        }
    }
    Ok(())
}

fn group_by_identity<'a>(
    ids: impl Iterator<Item = &'a IdentityId>,
) -> HashMap<IdentityId, Vec<u32>> {
    let mut out: HashMap<IdentityId, Vec<u32>> = HashMap::new();
    for (i, id) in ids.enumerate() {
        out.entry(id.clone()).or_default().push(index(i));
    }
    out
}

fn keys<V>(map: &BTreeMap<String, V>) -> String {
    let k: Vec<&str> = map.keys().map(String::as_str).collect();
    if k.is_empty() {
        "none".to_owned()
    } else {
        k.join(", ")
    }
}

/// Policies hold far fewer than 2^32 roles, rules or entitlements; the
/// saturating conversion keeps the code panic-free all the same.
pub(crate) fn index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// Every elementary cycle found by a depth-first search, each once.
fn find_cycles(roles: &[RoleInfo]) -> Vec<Vec<u32>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut marks = vec![Mark::New; roles.len()];
    let mut cycles = Vec::new();
    let mut stack: Vec<u32> = Vec::new();
    fn visit(
        r: u32,
        roles: &[RoleInfo],
        marks: &mut [Mark],
        stack: &mut Vec<u32>,
        cycles: &mut Vec<Vec<u32>>,
    ) {
        let Some(m) = marks.get_mut(r as usize) else {
            return;
        };
        match *m {
            Mark::Done => return,
            Mark::Open => {
                if let Some(pos) = stack.iter().position(|&s| s == r) {
                    cycles.push(stack.get(pos..).unwrap_or_default().to_vec());
                }
                return;
            }
            Mark::New => *m = Mark::Open,
        }
        stack.push(r);
        for &p in roles
            .get(r as usize)
            .map(|x| x.inherits.as_slice())
            .unwrap_or_default()
        {
            visit(p, roles, marks, stack, cycles);
        }
        stack.pop();
        if let Some(m) = marks.get_mut(r as usize) {
            *m = Mark::Done;
        }
    }
    for r in 0..roles.len() {
        visit(index(r), roles, &mut marks, &mut stack, &mut cycles);
    }
    cycles
}

/// Fills each role's closure and entitlements; the graph has no cycles here.
fn compute_closures(roles: &mut [RoleInfo]) {
    let n = roles.len();
    let mut done = vec![false; n];
    fn fill(r: usize, roles: &mut [RoleInfo], done: &mut [bool]) {
        if done.get(r).copied().unwrap_or(true) {
            return;
        }
        let parents = roles.get(r).map(|x| x.inherits.clone()).unwrap_or_default();
        let mut closure = vec![index(r)];
        let mut ents = roles.get(r).map(|x| x.direct.clone()).unwrap_or_default();
        for p in parents {
            fill(p as usize, roles, done);
            if let Some(parent) = roles.get(p as usize) {
                closure.extend_from_slice(&parent.closure);
                ents.extend_from_slice(&parent.all_entitlements);
            }
        }
        closure.sort_unstable();
        closure.dedup();
        ents.sort_unstable();
        ents.dedup();
        if let Some(role) = roles.get_mut(r) {
            role.closure = closure;
            role.all_entitlements = ents;
        }
        if let Some(d) = done.get_mut(r) {
            *d = true;
        }
    }
    for r in 0..n {
        fill(r, roles, &mut done);
    }
}
