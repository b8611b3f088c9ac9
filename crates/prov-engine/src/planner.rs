//! The planner: desired state (from the resolver) against actual state
//! (from the targets' listings and the store's links) gives a [`Plan`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use prov_core::{
    Account, AccountId, AttributeDelta, EntitlementId, Identity, IdentityId, LifecycleState,
    TargetId, Value,
};
use prov_resolver::{AccountView, CompiledPolicy, Extra, LeaverAction, Resolution};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::plan::{
    AccountRef, Conflict, OpKind, Orphan, PLAN_VERSION, Plan, PlannedOp, SafetyBlock, hex,
};

/// How the engine came to manage an account: the ownership ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LinkOrigin {
    /// The engine created it: it may disable and delete it.
    Created,
    /// It existed and correlation linked it: disabled when its identity
    /// leaves, deleted only if the target's options allow.
    Linked,
}

impl LinkOrigin {
    /// `created` or `linked`, as stores write it.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkOrigin::Created => "created",
            LinkOrigin::Linked => "linked",
        }
    }

    /// Reads what [`as_str`](Self::as_str) wrote.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "created" => Some(LinkOrigin::Created),
            "linked" => Some(LinkOrigin::Linked),
            _ => None,
        }
    }
}

/// A record in the ownership ledger: this account on this target is this identity's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Link {
    /// The target.
    pub target: TargetId,
    /// The account.
    pub account: AccountId,
    /// Its identity.
    pub identity: IdentityId,
    /// How it came to be managed.
    pub origin: LinkOrigin,
}

impl Link {
    /// A link.
    pub fn new(
        target: TargetId,
        account: AccountId,
        identity: IdentityId,
        origin: LinkOrigin,
    ) -> Self {
        Link {
            target,
            account,
            identity,
            origin,
        }
    }
}

/// A correlation rule: an existing account belongs to an identity when the
/// account's field equals the identity's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Correlation {
    /// `login` or an account attribute (`mail`, `employeeNumber`).
    pub account_field: String,
    /// `login` (the desired login), `id` (the identity id) or an identity attribute.
    pub identity_field: String,
}

impl Correlation {
    /// `account_field` on the account equals `identity_field` on the identity.
    pub fn new(account_field: impl Into<String>, identity_field: impl Into<String>) -> Self {
        Correlation {
            account_field: account_field.into(),
            identity_field: identity_field.into(),
        }
    }

    /// The account's login equals the login the policy gives the identity.
    pub fn login() -> Self {
        Self::new("login", "login")
    }
}

/// What happens to accounts no identity explains.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OrphanPolicy {
    /// Reported, left alone (the default).
    #[default]
    Report,
    /// Disabled.
    Disable,
    /// Deleted when the engine created them; disabled otherwise.
    Delete,
}

/// The deletion safeguard: a plan that would disable or delete more than
/// this on one target is blocked until explicitly allowed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Safety {
    /// Most removals as a share of the target's accounts (default 0.2, as
    /// Okta's import safeguard).
    pub max_share: f64,
    /// Most removals in absolute numbers, if set.
    pub max_count: Option<usize>,
    /// Removals always allowed whatever the share, so that one leaver on a
    /// small target is not blocked (default 5).
    pub always_allowed: usize,
}

impl Default for Safety {
    fn default() -> Self {
        Safety {
            max_share: 0.2,
            max_count: None,
            always_allowed: 5,
        }
    }
}

/// Per-target planning options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TargetOptions {
    /// Correlation rules, tried in order (default: by login).
    pub correlation: Vec<Correlation>,
    /// Orphan handling.
    pub orphans: OrphanPolicy,
    /// The deletion safeguard.
    pub safety: Safety,
    /// Whether accounts the engine linked but did not create may be
    /// deleted (leavers past their grace period, orphans); default no.
    pub delete_linked: bool,
}

impl Default for TargetOptions {
    fn default() -> Self {
        TargetOptions {
            correlation: vec![Correlation::login()],
            orphans: OrphanPolicy::Report,
            safety: Safety::default(),
            delete_linked: false,
        }
    }
}

/// Planning options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PlanOptions {
    /// Options per target; targets not named get `default`.
    pub targets: BTreeMap<TargetId, TargetOptions>,
    /// Options for targets not named.
    pub default: TargetOptions,
}

impl PlanOptions {
    fn for_target(&self, t: &TargetId) -> &TargetOptions {
        self.targets.get(t).unwrap_or(&self.default)
    }
}

/// What a plan is made from.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct PlanInput<'a> {
    /// The compiled policy.
    pub policy: &'a CompiledPolicy,
    /// Every identity the sources know.
    pub identities: &'a [Identity],
    /// The time to plan for (leases, end dates, grace periods).
    pub now: DateTime<Utc>,
    /// Each target's accounts as listed now, with their entitlements.
    pub actual: &'a BTreeMap<TargetId, Vec<Account>>,
    /// The ownership ledger.
    pub links: &'a [Link],
    /// Assignments and leases from the store.
    pub extra: Extra<'a>,
    /// The listing covers only these identities' accounts (an event, not a
    /// full reconcile): no orphans are reported, and the safeguard counts
    /// removals without a share of a total it does not know.
    pub partial: bool,
}

impl<'a> PlanInput<'a> {
    /// Plan input with no extra assignments or leases.
    pub fn new(
        policy: &'a CompiledPolicy,
        identities: &'a [Identity],
        now: DateTime<Utc>,
        actual: &'a BTreeMap<TargetId, Vec<Account>>,
        links: &'a [Link],
    ) -> Self {
        PlanInput {
            policy,
            identities,
            now,
            actual,
            links,
            extra: Extra::default(),
            partial: false,
        }
    }

    /// Marks the listing as covering only these identities' accounts (builder style).
    pub fn partial(mut self) -> Self {
        self.partial = true;
        self
    }

    /// Adds assignments and leases from the store (builder style).
    pub fn with_extra(mut self, extra: Extra<'a>) -> Self {
        self.extra = extra;
        self
    }
}

/// Per-target state the planner works on.
struct TargetCtx<'a> {
    target: &'a TargetId,
    opts: &'a TargetOptions,
    accounts: HashMap<&'a AccountId, &'a Account>,
    by_login: HashMap<&'a str, Vec<&'a Account>>,
    /// account -> (identity, origin), for links whose account still exists.
    link_of_account: HashMap<&'a AccountId, (&'a IdentityId, LinkOrigin)>,
    /// identity -> (account, origin).
    link_of_identity: HashMap<&'a IdentityId, (&'a AccountId, LinkOrigin)>,
    /// Accounts claimed this run (linked or correlated).
    claimed: BTreeSet<&'a AccountId>,
    managed_attributes: Vec<&'a str>,
}

/// Makes a plan. Pure: the same input gives the same plan, byte for byte.
pub fn plan(input: &PlanInput<'_>, options: &PlanOptions) -> Plan {
    let policy = input.policy;
    let empty = Vec::new();
    let mut ops: Vec<PlannedOp> = Vec::new();
    let mut conflicts = Vec::new();
    let mut problems = Vec::new();
    let mut orphans = Vec::new();

    let resolutions: Vec<Resolution> = input
        .identities
        .iter()
        .map(|who| policy.resolve_with(who, input.now, input.extra))
        .collect();
    for r in &resolutions {
        problems.extend(r.problems().iter().map(ToString::to_string));
    }
    let known: BTreeSet<&IdentityId> = input.identities.iter().map(|i| &i.id).collect();

    // Every target the policy or the listing names.
    let targets: BTreeSet<&TargetId> = policy.target_ids().chain(input.actual.keys()).collect();
    for target in targets {
        let accounts_vec = input.actual.get(target).unwrap_or(&empty);
        let mut ctx = TargetCtx {
            target,
            opts: options.for_target(target),
            accounts: accounts_vec.iter().map(|a| (&a.id, a)).collect(),
            by_login: HashMap::new(),
            link_of_account: HashMap::new(),
            link_of_identity: HashMap::new(),
            claimed: BTreeSet::new(),
            managed_attributes: policy.managed_attributes(target),
        };
        for a in accounts_vec {
            ctx.by_login.entry(a.login.as_str()).or_default().push(a);
        }
        for l in input.links.iter().filter(|l| &l.target == target) {
            if ctx.accounts.contains_key(&l.account) {
                ctx.link_of_account
                    .insert(&l.account, (&l.identity, l.origin));
                ctx.link_of_identity
                    .insert(&l.identity, (&l.account, l.origin));
            }
        }
        for (who, res) in input.identities.iter().zip(&resolutions) {
            plan_identity(
                policy,
                who,
                res,
                input.now,
                &mut ctx,
                &mut ops,
                &mut conflicts,
            );
        }
        // Accounts nobody claimed: orphans (only a full listing can tell).
        let mut unclaimed: Vec<&Account> = accounts_vec
            .iter()
            .filter(|a| !input.partial && !ctx.claimed.contains(&a.id))
            .collect();
        unclaimed.sort_by(|a, b| a.id.cmp(&b.id));
        for a in unclaimed {
            let link = ctx.link_of_account.get(&a.id).copied();
            let owned = link.is_some_and(|(_, o)| o == LinkOrigin::Created);
            let former = link.map(|(i, _)| i.clone()).filter(|i| !known.contains(i));
            orphans.push(Orphan {
                target: target.clone(),
                account: a.id.clone(),
                login: a.login.clone(),
                former_identity: former,
                owned,
            });
            let reason = match link {
                Some((who, _)) => {
                    format!("orphan: linked to {who}, who is no longer in any source")
                }
                None => "orphan: no identity explains this account".to_owned(),
            };
            let acct = AccountRef::Existing { id: a.id.clone() };
            match ctx.opts.orphans {
                OrphanPolicy::Report => {}
                OrphanPolicy::Delete if owned || (link.is_some() && ctx.opts.delete_linked) => {
                    ops.push(PlannedOp::new(
                        target.clone(),
                        None,
                        OpKind::Delete {
                            account: a.id.clone(),
                        },
                        vec![reason],
                    ));
                }
                OrphanPolicy::Disable | OrphanPolicy::Delete => {
                    if a.enabled {
                        ops.push(PlannedOp::new(
                            target.clone(),
                            None,
                            OpKind::SetEnabled {
                                account: acct,
                                enabled: false,
                            },
                            vec![reason],
                        ));
                    }
                }
            }
        }
    }

    // Name accounts by login for people reading the plan.
    let logins: HashMap<(&TargetId, &AccountId), &str> = input
        .actual
        .iter()
        .flat_map(|(t, accts)| accts.iter().map(move |a| ((t, &a.id), a.login.as_str())))
        .collect();
    for op in &mut ops {
        if op.account_login.is_none()
            && let Some(id) = op.existing_account()
            && let Some(login) = logins.get(&(&op.target, id))
        {
            op.account_login = Some((*login).to_owned());
        }
    }
    ops.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    let blocked = safety_blocks(&ops, (!input.partial).then_some(input.actual), options);
    conflicts.sort_by(|a: &Conflict, b: &Conflict| {
        (&a.target, &a.identity).cmp(&(&b.target, &b.identity))
    });
    problems.sort();
    Plan {
        version: PLAN_VERSION,
        planned_for: input.now,
        fingerprint: fingerprint(input),
        ops,
        orphans,
        conflicts,
        blocked,
        problems,
    }
}

fn plan_identity<'a>(
    policy: &CompiledPolicy,
    who: &'a Identity,
    res: &Resolution,
    now: DateTime<Utc>,
    ctx: &mut TargetCtx<'a>,
    ops: &mut Vec<PlannedOp>,
    conflicts: &mut Vec<Conflict>,
) {
    let target = ctx.target;
    let view = policy.targets_of(res).find(|v| v.target == Some(target));
    let desired_account = view.as_ref().and_then(|v| v.account);
    let desired_ents: Vec<&EntitlementId> = view
        .as_ref()
        .map(|v| v.entitlements().collect())
        .unwrap_or_default();
    let op = |kind: OpKind, reasons: Vec<String>| {
        PlannedOp::new(target.clone(), Some(who.id.clone()), kind, reasons)
    };

    // Find the identity's account: a link first, then correlation.
    let linked = ctx.link_of_identity.get(&who.id).copied();
    let mut current: Option<(&Account, LinkOrigin)> =
        linked.and_then(|(id, origin)| ctx.accounts.get(id).map(|a| (*a, origin)));
    if current.is_none()
        && let Some(want) = desired_account
    {
        match correlate(ctx, who, want) {
            Correlated::One(acct) => {
                ops.push(op(
                    OpKind::Link {
                        account: acct.id.clone(),
                    },
                    vec![format!(
                        "correlated: existing account {} matches",
                        acct.login
                    )],
                ));
                current = Some((acct, LinkOrigin::Linked));
            }
            Correlated::Many(ids) => {
                conflicts.push(Conflict {
                    target: target.clone(),
                    identity: who.id.clone(),
                    message:
                        "several existing accounts match the correlation rules; link one by hand"
                            .to_owned(),
                    accounts: ids,
                });
                return;
            }
            Correlated::None => {}
        }
    }
    if let Some((acct, _)) = current {
        ctx.claimed.insert(&acct.id);
    }

    let state_reason = || match res.state {
        LifecycleState::Terminated => format!("leaver: {} is terminated", who.id),
        LifecycleState::Suspended => format!("{} is suspended", who.id),
        LifecycleState::PreHire => {
            format!("joiner: {} starts later; account prepared disabled", who.id)
        }
        _ => format!("{} is active", who.id),
    };

    match (desired_account, current) {
        (None, None) => {}
        (Some(want), None) => {
            if res.state == LifecycleState::Terminated {
                return; // never create an account for a leaver
            }
            if let Some(taken) = ctx.by_login.get(want.login) {
                let ids: Vec<AccountId> = taken.iter().map(|a| a.id.clone()).collect();
                conflicts.push(Conflict {
                    target: target.clone(),
                    identity: who.id.clone(),
                    message: format!(
                        "login {} is taken by an account linked to someone else",
                        want.login
                    ),
                    accounts: ids,
                });
                return;
            }
            let login = want.login.to_owned();
            ops.push(op(
                OpKind::Create {
                    login: login.clone(),
                    attributes: want.attributes.clone(),
                    enabled: want.enabled,
                },
                vec![format!(
                    "joiner: {} should have an account on {target}",
                    who.id
                )],
            ));
            let acct = AccountRef::New { login };
            for e in desired_ents {
                ops.push(op(
                    OpKind::Grant {
                        account: acct.clone(),
                        entitlement: e.clone(),
                    },
                    reasons(policy, res, target, e),
                ));
            }
        }
        (want, Some((acct, origin))) => {
            let aref = AccountRef::Existing {
                id: acct.id.clone(),
            };
            if let Some(want) = want {
                let delta = attribute_delta(&ctx.managed_attributes, want, acct);
                if !delta.is_empty() {
                    let why = if delta.login.is_some() {
                        "the login template gives a new login"
                    } else {
                        "the account template changed"
                    };
                    ops.push(op(
                        OpKind::Update {
                            account: aref.clone(),
                            delta,
                        },
                        vec![format!("{why} for {}", who.id)],
                    ));
                }
            }
            // Entitlements: grant what is missing; revoke what the policy
            // manages and no longer gives. Entitlements the policy never
            // mentions are not the engine's to take.
            let want_set: BTreeSet<&EntitlementId> = desired_ents.iter().copied().collect();
            for e in &desired_ents {
                if !acct.entitlements.contains(*e) {
                    ops.push(op(
                        OpKind::Grant {
                            account: aref.clone(),
                            entitlement: (*e).clone(),
                        },
                        reasons(policy, res, target, e),
                    ));
                }
            }
            for e in &acct.entitlements {
                if !want_set.contains(e) && policy.manages(target, e) {
                    ops.push(op(
                        OpKind::Revoke {
                            account: aref.clone(),
                            entitlement: e.clone(),
                        },
                        vec![format!(
                            "no rule, assignment or lease gives it any more ({})",
                            state_reason()
                        )],
                    ));
                }
            }
            let enabled = want.is_some_and(|w| w.enabled);
            if acct.enabled != enabled {
                let why = match want {
                    Some(_) => state_reason(),
                    None => format!("{} is no longer entitled to an account on {target}", who.id),
                };
                ops.push(op(
                    OpKind::SetEnabled {
                        account: aref.clone(),
                        enabled,
                    },
                    vec![why],
                ));
            }
            if let Some(plan) = want.and_then(|w| w.leaver)
                && plan.action == LeaverAction::Delete
                && plan.delete_after.is_some_and(|d| d <= now.date_naive())
                && (origin == LinkOrigin::Created || ctx.opts.delete_linked)
            {
                let when = plan.delete_after.map(|d| d.to_string()).unwrap_or_default();
                ops.push(op(
                    OpKind::Delete {
                        account: acct.id.clone(),
                    },
                    vec![format!("leaver: grace period ended {when}")],
                ));
            }
        }
    }
}

fn reasons(
    policy: &CompiledPolicy,
    res: &Resolution,
    target: &TargetId,
    e: &EntitlementId,
) -> Vec<String> {
    policy
        .chains(res, target, e)
        .iter()
        .map(ToString::to_string)
        .collect()
}

enum Correlated<'a> {
    None,
    One(&'a Account),
    Many(Vec<AccountId>),
}

fn correlate<'a>(ctx: &TargetCtx<'a>, who: &Identity, want: AccountView<'_>) -> Correlated<'a> {
    for rule in &ctx.opts.correlation {
        let key = match rule.identity_field.as_str() {
            "login" => Some(want.login.to_owned()),
            "id" => Some(who.id.as_str().to_owned()),
            attr => who.attributes.get(attr).and_then(value_text),
        };
        let Some(key) = key.filter(|k| !k.is_empty()) else {
            continue;
        };
        let mut found: Vec<&'a Account> = if rule.account_field == "login" {
            ctx.by_login.get(key.as_str()).cloned().unwrap_or_default()
        } else {
            ctx.accounts
                .values()
                .copied()
                .filter(|a| {
                    a.attributes
                        .get(&rule.account_field)
                        .and_then(value_text)
                        .is_some_and(|v| v.eq_ignore_ascii_case(&key))
                })
                .collect()
        };
        // An account linked to someone else is theirs, not a candidate.
        found.retain(|a| {
            ctx.link_of_account
                .get(&a.id)
                .is_none_or(|(i, _)| *i == &who.id)
        });
        found.sort_by(|a, b| a.id.cmp(&b.id));
        match found.as_slice() {
            [] => continue,
            [one] => return Correlated::One(one),
            many => return Correlated::Many(many.iter().map(|a| a.id.clone()).collect()),
        }
    }
    Correlated::None
}

fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// The change that brings `acct` to `want`, touching only the attributes
/// the target's template manages.
fn attribute_delta(managed: &[&str], want: AccountView<'_>, acct: &Account) -> AttributeDelta {
    let mut delta = AttributeDelta::default();
    for (k, v) in want.attributes {
        if acct.attributes.get(k) != Some(v) {
            delta.set.insert(k.clone(), v.clone());
        }
    }
    for k in managed {
        if !want.attributes.contains_key(*k) && acct.attributes.contains_key(*k) {
            delta.remove.insert((*k).to_owned());
        }
    }
    if acct.login != want.login {
        delta.login = Some(want.login.to_owned());
    }
    delta
}

fn safety_blocks(
    ops: &[PlannedOp],
    actual: Option<&BTreeMap<TargetId, Vec<Account>>>,
    options: &PlanOptions,
) -> Vec<SafetyBlock> {
    let mut by_target: BTreeMap<&TargetId, Vec<&PlannedOp>> = BTreeMap::new();
    for op in ops.iter().filter(|o| o.kind.is_removal()) {
        by_target.entry(&op.target).or_default().push(op);
    }
    let mut out = Vec::new();
    for (target, removals) in by_target {
        let safety = options.for_target(target).safety;
        let total = actual.map_or(0, |a| a.get(target).map_or(0, Vec::len));
        // An account both disabled and deleted counts once.
        let accounts: BTreeSet<String> = removals.iter().map(|o| o.kind_account()).collect();
        let n = accounts.len();
        // Without a full listing there is no total to take a share of.
        let share = match (actual, total) {
            (None, _) => 0.0,
            (Some(_), 0) => 1.0,
            (Some(_), total) => n as f64 / total as f64,
        };
        let over_share = share > safety.max_share;
        let over_count = safety.max_count.is_some_and(|m| n > m);
        if n > safety.always_allowed && (over_share || over_count) {
            let threshold = match safety.max_count {
                Some(m) if over_count => format!("the limit of {m} accounts"),
                _ => format!("{:.0}% of them", safety.max_share * 100.0),
            };
            out.push(SafetyBlock {
                target: target.clone(),
                disable: removals
                    .iter()
                    .filter(|o| matches!(o.kind, OpKind::SetEnabled { .. }))
                    .count(),
                delete: removals
                    .iter()
                    .filter(|o| matches!(o.kind, OpKind::Delete { .. }))
                    .count(),
                total,
                threshold,
                ops: removals.iter().map(|o| o.id.clone()).collect(),
            });
        }
    }
    out
}

impl PlannedOp {
    fn kind_account(&self) -> String {
        match &self.kind {
            OpKind::Delete { account } | OpKind::Link { account } => account.to_string(),
            OpKind::SetEnabled { account, .. }
            | OpKind::Update { account, .. }
            | OpKind::Grant { account, .. }
            | OpKind::Revoke { account, .. } => account.to_string(),
            OpKind::Create { login, .. } => login.clone(),
        }
    }
}

/// A digest of a plan's inputs: the policy, the identities, the targets'
/// accounts, the links and the extra assignments and leases. The time is
/// not part of it: the same inputs planned a minute apart fingerprint alike.
pub fn fingerprint(input: &PlanInput<'_>) -> String {
    let mut h = Sha256::new();
    let mut feed = |label: &str, value: &dyn erased::Feed| {
        h.update(label.as_bytes());
        h.update([0u8]);
        value.feed(&mut h);
    };
    feed("policy", &input.policy.digest());
    feed(
        "identities",
        &sorted_by(input.identities, |i| i.id.as_str().to_owned()),
    );
    let mut actual: Vec<(&TargetId, Vec<&Account>)> = input
        .actual
        .iter()
        .map(|(t, accts)| (t, sorted_by(accts, |a| a.id.as_str().to_owned())))
        .collect();
    actual.sort_by(|a, b| a.0.cmp(b.0));
    feed("actual", &actual);
    let mut links: Vec<&crate::Link> = input.links.iter().collect();
    links.sort();
    feed("links", &links);
    let mut assignments: Vec<_> = input.extra.assignments.iter().collect();
    assignments.sort();
    feed("assignments", &assignments);
    let mut leases: Vec<_> = input.extra.leases.iter().collect();
    leases.sort();
    feed("leases", &leases);
    hex(&h.finalize())
}

fn sorted_by<T, K: Ord>(items: &[T], key: impl Fn(&T) -> K) -> Vec<&T> {
    let mut v: Vec<&T> = items.iter().collect();
    v.sort_by_key(|x| key(x));
    v
}

mod erased {
    use sha2::{Digest, Sha256};

    /// Streams a value's canonical JSON into the hash without building the string.
    pub(super) trait Feed {
        fn feed(&self, h: &mut Sha256);
    }

    impl<T: serde::Serialize> Feed for T {
        fn feed(&self, h: &mut Sha256) {
            struct Writer<'a>(&'a mut Sha256);
            impl std::io::Write for Writer<'_> {
                fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                    self.0.update(buf);
                    Ok(buf.len())
                }
                fn flush(&mut self) -> std::io::Result<()> {
                    Ok(())
                }
            }
            // Serialising plain data into a hash cannot fail; if it ever
            // did, the digest would differ and apply would refuse, safely.
            let _ = serde_json::to_writer(Writer(h), self);
        }
    }
}
