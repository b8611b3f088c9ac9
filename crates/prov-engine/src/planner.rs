//! The planner: desired state (from the resolver) against actual state
//! (from the targets' listings and the store's links) gives a [`Plan`].

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use prov_core::{
    Account, AccountId, AttributeDelta, EntitlementId, Identity, IdentityId, LifecycleState,
    TargetId, Value,
};
use prov_resolver::{AccountView, CompiledPolicy, Extra, LeaverAction, Resolution};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ledger::{Link, LinkOrigin};
use crate::plan::{
    AccountRef, Conflict, OpKind, Orphan, PLAN_VERSION, Plan, PlannedOp, SafetyBlock, hex,
};

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
    /// Whether the target can disable accounts (from its capabilities; the
    /// `Engine` sets these three). When it cannot, leavers lose their access
    /// and the plan says their accounts stay enabled.
    pub can_disable: bool,
    /// Whether the target can delete accounts.
    pub can_delete: bool,
    /// Whether the target can change a login (rename).
    pub can_rename: bool,
}

impl Default for TargetOptions {
    fn default() -> Self {
        TargetOptions {
            correlation: vec![Correlation::login()],
            orphans: OrphanPolicy::Report,
            safety: Safety::default(),
            delete_linked: false,
            can_disable: true,
            can_delete: true,
            can_rename: true,
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
    /// The options of `t`.
    pub(crate) fn for_target(&self, t: &TargetId) -> &TargetOptions {
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
    /// removals without a share of a total it does not know. Each link
    /// given must have been looked up: one whose account a listed target
    /// lacks is dead and forgotten, as in a full plan.
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

/// A fast hash map: keys here come from the targets and the store, and the
/// planner builds maps over millions of them.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Positions of keys, as a table of 32-bit positions (4 bytes a slot
/// instead of a key reference and a value: about 10 MB for a million keys
/// where a `HashMap<&str, usize>` took 34 MB). The keys are hashed first on
/// every core, then inserted in one short loop that touches only the
/// table; a lookup checks its hit against the key array, not the item the
/// key came from. A key given twice keeps its last position, as a map
/// would.
struct KeyIndex<'a> {
    keys: Vec<&'a str>,
    state: foldhash::fast::RandomState,
    table: hashbrown::HashTable<u32>,
}

impl<'a> KeyIndex<'a> {
    /// `None` when there are more keys than 32-bit positions.
    fn new(keys: Vec<&'a str>) -> Option<Self> {
        use rayon::prelude::*;
        use std::hash::BuildHasher;
        u32::try_from(keys.len()).ok()?;
        let state = foldhash::fast::RandomState::default();
        let hashes: Vec<u64> = keys
            .par_iter()
            .with_min_len(4096)
            .map(|k| state.hash_one(*k))
            .collect();
        let mut table = hashbrown::HashTable::with_capacity(keys.len());
        let hash_of = |&j: &u32| hashes.get(j as usize).copied().unwrap_or(0);
        for (i, (k, &hash)) in (0u32..).zip(keys.iter().zip(&hashes)) {
            match table.entry(hash, |&j| keys.get(j as usize) == Some(k), hash_of) {
                hashbrown::hash_table::Entry::Occupied(mut e) => *e.get_mut() = i,
                hashbrown::hash_table::Entry::Vacant(e) => {
                    e.insert(i);
                }
            }
        }
        Some(KeyIndex { keys, state, table })
    }

    /// As [`new`](Self::new), with the positions of keys a later one
    /// repeats (the index holds the last of each).
    fn with_repeats(keys: Vec<&'a str>) -> Option<(Self, Vec<u32>)> {
        let index = Self::new(keys)?;
        use rayon::prelude::*;
        let repeats = index
            .keys
            .par_iter()
            .enumerate()
            .with_min_len(4096)
            .filter_map(|(j, k)| {
                let j = u32::try_from(j).ok()?;
                (index.get(k) != Some(j)).then_some(j)
            })
            .collect();
        Some((index, repeats))
    }

    fn get(&self, k: &str) -> Option<u32> {
        use std::hash::BuildHasher;
        self.table
            .find(self.state.hash_one(k), |&j| {
                self.keys.get(j as usize).is_some_and(|x| *x == k)
            })
            .copied()
    }

    /// The position of each item's key, on every core; `u32::MAX` (which
    /// no key has) where there is none: 4 bytes an item, not 8 for an Option.
    fn positions<T: Sync>(&self, items: &[T], key: impl Fn(&T) -> &str + Sync) -> Vec<u32> {
        use rayon::prelude::*;
        items
            .par_iter()
            .with_min_len(4096)
            .map(|x| self.get(key(x)).unwrap_or(u32::MAX))
            .collect()
    }
}

/// Positions of keys that may repeat (logins, attribute values), without
/// an allocation per key: each distinct key's last position in a table of
/// 32-bit positions, and from each position the previous one with the same
/// key. With `fold_case`, keys match ignoring ASCII case.
#[derive(Default)]
struct MultiIndex<'a> {
    keys: Vec<Option<Cow<'a, str>>>,
    fold_case: bool,
    state: foldhash::fast::RandomState,
    table: hashbrown::HashTable<u32>,
    prev: Vec<u32>,
}

impl<'a> MultiIndex<'a> {
    /// An index over `keys` (`None`: that position has no key). Past
    /// 2^32 - 1 positions the rest are left out of the index.
    fn new(keys: Vec<Option<Cow<'a, str>>>, fold_case: bool) -> Self {
        use rayon::prelude::*;
        let mut index = MultiIndex {
            keys: Vec::new(),
            fold_case,
            state: foldhash::fast::RandomState::default(),
            table: hashbrown::HashTable::with_capacity(keys.len()),
            prev: vec![u32::MAX; keys.len()],
        };
        let hashes: Vec<u64> = keys
            .par_iter()
            .with_min_len(4096)
            .map(|k| k.as_deref().map_or(0, |k| index.hash(k)))
            .collect();
        let hash_of = |&j: &u32| hashes.get(j as usize).copied().unwrap_or(0);
        for ((i, key), (&hash, prev)) in (0u32..u32::MAX)
            .zip(&keys)
            .zip(hashes.iter().zip(index.prev.iter_mut()))
        {
            let Some(key) = key.as_deref() else { continue };
            let same = |&j: &u32| {
                keys.get(j as usize)
                    .and_then(|k| k.as_deref())
                    .is_some_and(|k| Self::same(fold_case, k, key))
            };
            match index.table.entry(hash, same, hash_of) {
                hashbrown::hash_table::Entry::Occupied(mut e) => {
                    *prev = *e.get();
                    *e.get_mut() = i;
                }
                hashbrown::hash_table::Entry::Vacant(e) => {
                    e.insert(i);
                }
            }
        }
        index.keys = keys;
        index
    }

    fn same(fold_case: bool, a: &str, b: &str) -> bool {
        if fold_case {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    }

    fn hash(&self, key: &str) -> u64 {
        use std::hash::{BuildHasher, Hasher};
        if !self.fold_case {
            return self.state.hash_one(key);
        }
        // The key's bytes in ASCII lowercase, a chunk at a time: "ADA" and
        // "ada" feed the hasher the same bytes, with no allocation.
        let mut h = self.state.build_hasher();
        let mut buf = [0u8; 64];
        for chunk in key.as_bytes().chunks(buf.len()) {
            for (b, c) in buf.iter_mut().zip(chunk) {
                *b = c.to_ascii_lowercase();
            }
            h.write(buf.get(..chunk.len()).unwrap_or_default());
        }
        h.write_u8(0xff);
        h.finish()
    }

    /// Every position whose key is `key`, in order.
    fn get(&self, key: &str) -> Vec<usize> {
        let found = self.table.find(self.hash(key), |&j| {
            self.keys
                .get(j as usize)
                .and_then(|k| k.as_deref())
                .is_some_and(|k| Self::same(self.fold_case, k, key))
        });
        let mut out = Vec::new();
        let mut at = found.copied().unwrap_or(u32::MAX);
        while at != u32::MAX {
            out.push(at as usize);
            at = self.prev.get(at as usize).copied().unwrap_or(u32::MAX);
        }
        out.reverse();
        out
    }
}

/// Per-target state the planner works on (read-only while identities are planned).
struct TargetCtx<'a> {
    target: &'a TargetId,
    opts: &'a TargetOptions,
    accounts: &'a [Account],
    /// login -> accounts, built only when some identity needs correlation.
    by_login: MultiIndex<'a>,
    /// For each correlation rule on an account attribute, its value ->
    /// accounts, ignoring ASCII case. Built with `by_login`, so that
    /// correlating is a lookup, not a scan of every account per identity.
    by_attribute: FastMap<&'a str, MultiIndex<'a>>,
    /// Each account's link (identity, origin), by account position; built
    /// when correlation or orphans need it, empty before.
    link_of_account: Vec<Option<(&'a IdentityId, LinkOrigin)>>,
    managed_attributes: Vec<&'a str>,
}

/// What planning one identity on one target gives.
#[derive(Default)]
struct IdentityOutcome {
    ops: Vec<PlannedOp>,
    conflicts: Vec<Conflict>,
    /// What the target cannot do that the policy asks for.
    problems: Vec<String>,
    /// The account it holds (linked or correlated), by index.
    claimed: Option<usize>,
}

/// Makes a plan. Pure: the same input gives the same plan, byte for byte.
/// Resolves every identity (on every core), then [`plan_resolved`].
pub fn plan(input: &PlanInput<'_>, options: &PlanOptions) -> Plan {
    use rayon::prelude::*;
    let resolutions: Vec<Resolution> = input
        .identities
        .par_iter()
        .with_min_len(256)
        .map(|who| input.policy.resolve_with(who, input.now, input.extra))
        .collect();
    plan_resolved(input, &resolutions, options)
}

/// Makes a plan from resolutions already made (`resolutions[i]` is
/// `input.identities[i]` resolved at `input.now` with `input.extra`).
/// Identities with a linked account are planned on every core; the rest,
/// which may need correlation, one by one.
pub fn plan_resolved(
    input: &PlanInput<'_>,
    resolutions: &[Resolution],
    options: &PlanOptions,
) -> Plan {
    use rayon::prelude::*;
    // The fingerprint's digests of identities and links run beside the
    // planning, as does the gathering of the resolver's problems; the
    // accounts' digests are made by the planning itself, each account
    // hashed while it is at hand (a second pass over a million accounts'
    // strings costs as much again in memory traffic).
    let (((identities, links), mut problems), (planned, accounts)) = rayon::join(
        || {
            rayon::join(
                || {
                    rayon::join(
                        || SetDigest::of(input.identities),
                        || SetDigest::of(input.links),
                    )
                },
                || -> Vec<String> {
                    resolutions
                        .par_iter()
                        .with_min_len(4096)
                        .flat_map_iter(|r| r.problems().iter().map(ToString::to_string))
                        .collect()
                },
            )
        },
        || plan_targets(input, resolutions, options),
    );
    let fingerprint = fingerprint_of(input, identities, &accounts, links);
    let (mut ops, mut conflicts, orphans, limits) = planned;
    problems.extend(limits);
    ops.par_sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    let blocked = safety_blocks(&ops, (!input.partial).then_some(input.actual), options);
    conflicts.sort_by(|a: &Conflict, b: &Conflict| {
        (&a.target, &a.identity).cmp(&(&b.target, &b.identity))
    });
    problems.sort();
    let secrets = secrets_of(input, resolutions, &ops);
    Plan {
        version: PLAN_VERSION,
        planned_for: input.now,
        fingerprint,
        ops,
        orphans,
        conflicts,
        blocked,
        problems,
        digest: String::new(),
        secrets,
    }
}

/// The values of the creates' secret attributes, by operation id, from the
/// resolutions (kept out of the operations themselves).
fn secrets_of(
    input: &PlanInput<'_>,
    resolutions: &[Resolution],
    ops: &[PlannedOp],
) -> BTreeMap<String, prov_core::SecretAttributes> {
    let mut out = BTreeMap::new();
    let wanted: Vec<&PlannedOp> = ops
        .iter()
        .filter(|o| matches!(&o.kind, OpKind::Create { secret, .. } if !secret.is_empty()))
        .collect();
    if wanted.is_empty() {
        return out;
    }
    let position: HashMap<&str, usize> = input
        .identities
        .iter()
        .enumerate()
        .map(|(i, w)| (w.id.as_str(), i))
        .collect();
    for op in wanted {
        let Some(res) = op
            .identity
            .as_ref()
            .and_then(|who| position.get(who.as_str()))
            .and_then(|&i| resolutions.get(i))
        else {
            continue;
        };
        let values = input
            .policy
            .targets_of(res)
            .find(|v| v.target == Some(&op.target))
            .and_then(|v| v.account)
            .map(|a| a.secrets.clone());
        if let Some(values) = values {
            out.insert(op.id.clone(), values);
        }
    }
    out
}

/// What planning the targets gives: operations, conflicts, orphans and problems.
type Planned = (Vec<PlannedOp>, Vec<Conflict>, Vec<Orphan>, Vec<String>);

/// Plans every target, and digests each listed target's accounts for the
/// fingerprint on the way (in `input.actual`'s order).
fn plan_targets<'t>(
    input: &PlanInput<'t>,
    resolutions: &[Resolution],
    options: &PlanOptions,
) -> (Planned, Vec<(&'t TargetId, SetDigest)>) {
    use rayon::prelude::*;
    let policy = input.policy;
    let empty = Vec::new();
    let mut ops: Vec<PlannedOp> = Vec::new();
    let mut conflicts = Vec::new();
    let mut problems = Vec::new();
    let mut orphans = Vec::new();
    let mut digests = Vec::new();
    // Who the sources know: needed only to name orphans' former owners, so built on first use.
    let mut known: Option<std::collections::HashSet<&IdentityId>> = None;
    let n = input.identities.len().min(resolutions.len());
    let identities = input.identities.get(..n).unwrap_or_default();

    // Every target the policy or the listing names.
    let targets: BTreeSet<&TargetId> = policy.target_ids().chain(input.actual.keys()).collect();
    for target in targets {
        let listed = input.actual.get(target);
        let accounts = listed.unwrap_or(&empty);
        let target_links: Vec<&Link> = input
            .links
            .par_iter()
            .with_min_len(4096)
            .filter(|l| &l.target == target)
            .collect();
        let Some(index) = KeyIndex::new(accounts.par_iter().map(|a| a.id.as_str()).collect())
        else {
            problems.push(format!(
                "{target}: more than {} accounts or links; not planned",
                u32::MAX
            ));
            if listed.is_some() {
                digests.push((target, SetDigest::of(accounts)));
            }
            continue;
        };
        // A link whose account the target does not list is dead (someone
        // deleted the account there): it never stands for the identity's
        // account, and a complete listing forgets it, in the plan.
        let positions = index.positions(&target_links, |l| l.account.as_str());
        let mut live_links = Vec::with_capacity(target_links.len());
        let mut account_of_link = Vec::with_capacity(target_links.len());
        for (l, c) in target_links.iter().zip(positions) {
            if c == u32::MAX {
                if listed.is_some() {
                    let mut op = PlannedOp::new(
                        target.clone(),
                        Some(l.identity.clone()),
                        OpKind::Unlink {
                            account: l.account.clone(),
                        },
                        vec![format!(
                            "the target no longer lists account {}: its link ({}) is forgotten",
                            l.account,
                            l.origin.as_str()
                        )],
                    );
                    op.account_login = None;
                    ops.push(op);
                }
            } else {
                live_links.push(*l);
                account_of_link.push(c);
            }
        }
        drop(index);
        let target_links = live_links;
        let Some((by_identity, repeats)) = KeyIndex::with_repeats(
            target_links
                .par_iter()
                .map(|l| l.identity.as_str())
                .collect(),
        ) else {
            problems.push(format!(
                "{target}: more than {} accounts or links; not planned",
                u32::MAX
            ));
            digests.push((target, SetDigest::of(accounts)));
            continue;
        };
        // Each identity's linked account, looked up once, on every core.
        let link_of_identity = by_identity.positions(identities, |w| w.id.as_str());
        // An identity with two live links on one target: the ledger cannot
        // say which account is its own, so it is a conflict for a person
        // and nothing is planned for it there.
        let mut doubled: FastMap<&str, Vec<(&Link, u32)>> = FastMap::default();
        for &j in &repeats {
            if let (Some(l), Some(&c)) = (
                target_links.get(j as usize),
                account_of_link.get(j as usize),
            ) {
                doubled
                    .entry(l.identity.as_str())
                    .or_default()
                    .push((*l, c));
            }
        }
        drop(by_identity);
        // Identity i's account (position); with its link's origin.
        let account_held = |i: usize| -> Option<usize> {
            let j = *link_of_identity.get(i)? as usize;
            let c = *account_of_link.get(j)?;
            (c != u32::MAX).then_some(c as usize)
        };
        let held = |i: usize| -> Option<(usize, LinkOrigin)> {
            let c = account_held(i)?;
            let j = *link_of_identity.get(i)? as usize;
            Some((c, target_links.get(j)?.origin))
        };
        // Scattered in link order: an account two links hold keeps the
        // last, as a map would.
        let link_of_account = || -> Vec<Option<(&IdentityId, LinkOrigin)>> {
            let mut out = vec![None; accounts.len()];
            for (l, &c) in target_links.iter().zip(&account_of_link) {
                if let Some(slot) = out.get_mut(c as usize) {
                    *slot = Some((&l.identity, l.origin));
                }
            }
            out
        };
        let mut ctx = TargetCtx {
            target,
            opts: options.for_target(target),
            accounts,
            by_login: MultiIndex::default(),
            by_attribute: FastMap::default(),
            link_of_account: Vec::new(),
            managed_attributes: policy.managed_attributes(target),
        };
        let unlinked: Vec<usize> = (0..n).filter(|&i| account_held(i).is_none()).collect();
        if !unlinked.is_empty() {
            ctx.by_login = MultiIndex::new(
                accounts
                    .iter()
                    .map(|a| Some(Cow::Borrowed(a.login.as_str())))
                    .collect(),
                false,
            );
            ctx.by_attribute = attribute_indexes(accounts, &ctx.opts.correlation);
            ctx.link_of_account = link_of_account();
        }
        // A rule on an attribute no listed account has matches nothing,
        // whoever it is for: most likely a typo (`mial`), which would
        // otherwise make duplicates in silence. Reported on a complete
        // listing that has accounts; the scan stops at the first holder.
        if !input.partial && !accounts.is_empty() {
            let mut seen = BTreeSet::new();
            for rule in &ctx.opts.correlation {
                let field = rule.account_field.as_str();
                if field != "login"
                    && seen.insert(field)
                    && !accounts.iter().any(|a| a.attributes.contains_key(field))
                {
                    problems.push(format!(
                        "{target}: correlation rule {field} = {}: none of the {} listed accounts has attribute `{field}`, so the rule matches nothing",
                        rule.identity_field,
                        accounts.len()
                    ));
                }
            }
        }
        // Each account held by a link is hashed for the fingerprint when
        // its holder is planned; accounts held by no one are hashed here,
        // and one held twice (two links to it) is taken away again.
        let mut claimed = vec![false; accounts.len()];
        let mut digest = SetDigest::default();
        for c in (0..n).filter_map(account_held) {
            if let Some(slot) = claimed.get_mut(c) {
                if *slot {
                    digest.sum = digest
                        .sum
                        .wrapping_sub(accounts.get(c).map_or(0, SetDigest::hash));
                }
                *slot = true;
            }
        }
        // A doubly linked identity's other accounts are its, not orphans.
        if !doubled.is_empty() {
            for who in identities {
                for &(_, c) in doubled.get(who.id.as_str()).into_iter().flatten() {
                    if let Some(slot) = claimed.get_mut(c as usize)
                        && !*slot
                    {
                        *slot = true;
                        digest.sum = digest
                            .sum
                            .wrapping_add(accounts.get(c as usize).map_or(0, SetDigest::hash));
                    }
                }
            }
        }
        digest.count = u64::try_from(accounts.len()).unwrap_or(u64::MAX);
        digest.sum = digest.sum.wrapping_add(
            accounts
                .par_iter()
                .zip(&claimed)
                .with_min_len(4096)
                .filter(|(_, held)| !**held)
                .map(|(a, _)| SetDigest::hash(a))
                .reduce(|| 0, u64::wrapping_add),
        );
        let plan_one = |i: usize, claimed: &[bool]| -> IdentityOutcome {
            match (identities.get(i), resolutions.get(i)) {
                (Some(who), Some(_)) if doubled.contains_key(who.id.as_str()) => {
                    let mut accounts: Vec<AccountId> = doubled
                        .get(who.id.as_str())
                        .into_iter()
                        .flatten()
                        .map(|(l, _)| l.account.clone())
                        .chain(
                            account_held(i)
                                .and_then(|c| ctx.accounts.get(c))
                                .map(|a| a.id.clone()),
                        )
                        .collect();
                    accounts.sort();
                    accounts.dedup();
                    IdentityOutcome {
                        conflicts: vec![Conflict {
                            target: target.clone(),
                            identity: who.id.clone(),
                            message: format!(
                                "{} accounts on this target are linked to this identity; \
                                 nothing is planned for it here until a person keeps one link",
                                accounts.len()
                            ),
                            accounts,
                        }],
                        ..IdentityOutcome::default()
                    }
                }
                (Some(who), Some(res)) => {
                    plan_identity(policy, who, res, input.now, &ctx, held(i), claimed)
                }
                _ => IdentityOutcome::default(),
            }
        };
        // Linked identities on every core, keeping only outcomes with
        // something in them, and hashing each one's account.
        let (outcomes, held_sum) = (0..n)
            .into_par_iter()
            .with_min_len(1024)
            .filter_map(|i| account_held(i).map(|c| (i, c)))
            .fold(
                || (Vec::new(), 0u64),
                |(mut kept, sum), (i, c)| {
                    let o = plan_one(i, &[]);
                    if !o.ops.is_empty() || !o.conflicts.is_empty() || !o.problems.is_empty() {
                        kept.push(o);
                    }
                    let h = accounts.get(c).map_or(0, SetDigest::hash);
                    (kept, sum.wrapping_add(h))
                },
            )
            .reduce(
                || (Vec::new(), 0),
                |(mut a, x), (b, y)| {
                    a.extend(b);
                    (a, x.wrapping_add(y))
                },
            );
        digest.sum = digest.sum.wrapping_add(held_sum);
        if listed.is_some() {
            digests.push((target, digest));
        }
        let mut take = |o: IdentityOutcome, claimed: &mut Vec<bool>| {
            if let Some(c) = o.claimed.and_then(|c| claimed.get_mut(c)) {
                *c = true;
            }
            ops.extend(o.ops);
            conflicts.extend(o.conflicts);
            problems.extend(o.problems);
        };
        for o in outcomes {
            take(o, &mut claimed);
        }
        // Correlation claims accounts: one identity at a time, so two never take the same one.
        for i in unlinked {
            let o = plan_one(i, &claimed);
            take(o, &mut claimed);
        }
        // Accounts nobody claimed: orphans (only a full listing can tell).
        if input.partial {
            continue;
        }
        let mut unclaimed: Vec<usize> = (0..accounts.len())
            .filter(|&i| !claimed.get(i).copied().unwrap_or(true))
            .collect();
        if unclaimed.is_empty() {
            continue;
        }
        if ctx.link_of_account.is_empty() {
            ctx.link_of_account = link_of_account();
        }
        unclaimed.sort_by(|&x, &y| {
            accounts
                .get(x)
                .map(|a| &a.id)
                .cmp(&accounts.get(y).map(|a| &a.id))
        });
        for i in unclaimed {
            let Some(a) = accounts.get(i) else { continue };
            let link = ctx.link_of_account.get(i).copied().flatten();
            let owned = link.is_some_and(|(_, o)| o == LinkOrigin::Created);
            let known =
                known.get_or_insert_with(|| input.identities.iter().map(|i| &i.id).collect());
            let former = link
                .map(|(who, _)| who.clone())
                .filter(|who| !known.contains(who));
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
            let op = match ctx.opts.orphans {
                OrphanPolicy::Report => None,
                OrphanPolicy::Delete
                    if ctx.opts.can_delete
                        && (owned || (link.is_some() && ctx.opts.delete_linked)) =>
                {
                    Some(PlannedOp::new(
                        target.clone(),
                        None,
                        OpKind::Delete {
                            account: a.id.clone(),
                        },
                        vec![reason],
                    ))
                }
                OrphanPolicy::Disable | OrphanPolicy::Delete => (a.enabled && ctx.opts.can_disable)
                    .then(|| {
                        let acct = AccountRef::Existing { id: a.id.clone() };
                        PlannedOp::new(
                            target.clone(),
                            None,
                            OpKind::SetEnabled {
                                account: acct,
                                enabled: false,
                            },
                            vec![reason],
                        )
                    }),
            };
            if let Some(mut op) = op {
                op.account_login = Some(a.login.clone());
                ops.push(op);
            }
        }
    }
    ((ops, conflicts, orphans, problems), digests)
}

fn plan_identity<'a>(
    policy: &CompiledPolicy,
    who: &'a Identity,
    res: &Resolution,
    now: DateTime<Utc>,
    ctx: &TargetCtx<'a>,
    held: Option<(usize, LinkOrigin)>,
    claimed: &[bool],
) -> IdentityOutcome {
    let mut out = IdentityOutcome::default();
    let target = ctx.target;
    let view = policy.targets_of(res).find(|v| v.target == Some(target));
    let desired_account = view.as_ref().and_then(|v| v.account);
    let op = |kind: OpKind, reasons: Vec<String>| {
        PlannedOp::new(target.clone(), Some(who.id.clone()), kind, reasons)
    };

    // Find the identity's account: a link first, then correlation.
    let linked = held;
    let mut current: Option<(usize, &Account, LinkOrigin)> =
        linked.and_then(|(i, origin)| ctx.accounts.get(i).map(|a| (i, a, origin)));
    if current.is_none()
        && let Some(want) = desired_account
    {
        match correlate(ctx, who, want, claimed) {
            Correlated::One(i, acct) => {
                let mut link = op(
                    OpKind::Link {
                        account: acct.id.clone(),
                    },
                    vec![format!(
                        "correlated: existing account {} matches",
                        acct.login
                    )],
                );
                link.account_login = Some(acct.login.clone());
                out.ops.push(link);
                current = Some((i, acct, LinkOrigin::Linked));
            }
            Correlated::Many(ids) => {
                out.conflicts.push(Conflict {
                    target: target.clone(),
                    identity: who.id.clone(),
                    message:
                        "several existing accounts match the correlation rules; link one by hand"
                            .to_owned(),
                    accounts: ids,
                });
                return out;
            }
            Correlated::None => {}
        }
    }
    out.claimed = current.map(|(i, _, _)| i);

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
                return out; // never create an account for a leaver
            }
            let taken = ctx.by_login.get(want.login);
            if !taken.is_empty() {
                let ids: Vec<AccountId> = taken
                    .iter()
                    .filter_map(|&i| ctx.accounts.get(i))
                    .map(|a| a.id.clone())
                    .collect();
                out.conflicts.push(Conflict {
                    target: target.clone(),
                    identity: who.id.clone(),
                    message: format!(
                        "login {} is taken by an account linked to someone else",
                        want.login
                    ),
                    accounts: ids,
                });
                return out;
            }
            let login = want.login.to_owned();
            out.ops.push(op(
                OpKind::Create {
                    login: login.clone(),
                    attributes: want.attributes.clone(),
                    enabled: want.enabled,
                    secret: want.secrets.keys().cloned().collect(),
                },
                vec![format!(
                    "joiner: {} should have an account on {target}",
                    who.id
                )],
            ));
            let acct = AccountRef::New { login };
            for e in view.iter().flat_map(|v| v.entitlements()) {
                out.ops.push(op(
                    OpKind::Grant {
                        account: acct.clone(),
                        entitlement: e.clone(),
                    },
                    reasons(policy, res, target, e),
                ));
            }
        }
        (want, Some((_, acct, origin))) => {
            let aref = || AccountRef::Existing {
                id: acct.id.clone(),
            };
            let mut mine: Vec<PlannedOp> = Vec::new();
            if let Some(want) = want
                && differs(&ctx.managed_attributes, want, acct)
            {
                let mut delta = attribute_delta(&ctx.managed_attributes, want, acct);
                if let Some(new_login) = delta.login.take_if(|_| !ctx.opts.can_rename) {
                    out.problems.push(format!(
                        "{target}: {}'s login should change from {} to {new_login}, and the target cannot rename accounts",
                        who.id, acct.login
                    ));
                }
                let why = if delta.login.is_some() {
                    "the login template gives a new login"
                } else {
                    "the account template changed"
                };
                if !delta.is_empty() {
                    mine.push(op(
                        OpKind::Update {
                            account: aref(),
                            delta,
                            secret: BTreeSet::new(),
                        },
                        vec![format!("{why} for {}", who.id)],
                    ));
                }
            }
            // Entitlements: both sides are sorted by id, so one merge walk
            // finds what to grant and what to revoke, with no allocation when
            // nothing differs. What the policy never mentions is not the
            // engine's to take.
            let mut desired = view.iter().flat_map(|v| v.entitlements()).peekable();
            let mut held = acct.entitlements.iter().peekable();
            loop {
                match (desired.peek(), held.peek()) {
                    (None, None) => break,
                    (Some(d), Some(h)) if d == h => {
                        desired.next();
                        held.next();
                    }
                    (Some(d), h) if h.is_none_or(|h| d < h) => {
                        mine.push(op(
                            OpKind::Grant {
                                account: aref(),
                                entitlement: (*d).clone(),
                            },
                            reasons(policy, res, target, d),
                        ));
                        desired.next();
                    }
                    (_, Some(h)) => {
                        if policy.manages(target, h) {
                            let why = format!(
                                "no rule, assignment or lease gives it any more ({})",
                                state_reason()
                            );
                            mine.push(op(
                                OpKind::Revoke {
                                    account: aref(),
                                    entitlement: (*h).clone(),
                                },
                                vec![why],
                            ));
                        }
                        held.next();
                    }
                    (Some(_), None) => break,
                }
            }
            let enabled = want.is_some_and(|w| w.enabled);
            if acct.enabled != enabled && !ctx.opts.can_disable {
                if !enabled {
                    out.problems.push(format!(
                        "{target}: {}'s account {} should be disabled, and the target cannot disable accounts; its access is revoked, the account stays enabled",
                        who.id, acct.login
                    ));
                }
            } else if acct.enabled != enabled {
                let why = match want {
                    Some(_) => state_reason(),
                    None => format!("{} is no longer entitled to an account on {target}", who.id),
                };
                mine.push(op(
                    OpKind::SetEnabled {
                        account: aref(),
                        enabled,
                    },
                    vec![why],
                ));
            }
            if let Some(plan) = want.and_then(|w| w.leaver)
                && plan.action == LeaverAction::Delete
                && plan.delete_after.is_some_and(|d| d <= now.date_naive())
                && (origin == LinkOrigin::Created || ctx.opts.delete_linked)
                && ctx.opts.can_delete
            {
                let when = plan.delete_after.map(|d| d.to_string()).unwrap_or_default();
                mine.push(op(
                    OpKind::Delete {
                        account: acct.id.clone(),
                    },
                    vec![format!("leaver: grace period ended {when}")],
                ));
            }
            for mut o in mine {
                o.account_login = Some(acct.login.clone());
                out.ops.push(o);
            }
        }
    }
    out
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

/// The value `rule` looks for on accounts for `who`, whose login is
/// `login`: none when the identity has no such value (or an empty one).
/// The planner and the event's lookups both take it from here.
pub(crate) fn correlation_key(rule: &Correlation, who: &Identity, login: &str) -> Option<String> {
    let key = match rule.identity_field.as_str() {
        "login" => Some(login.to_owned()),
        "id" => Some(who.id.as_str().to_owned()),
        attr => who.attributes.get(attr).and_then(value_text),
    };
    key.filter(|k| !k.is_empty())
}

enum Correlated<'a> {
    None,
    One(usize, &'a Account),
    Many(Vec<AccountId>),
}

fn correlate<'a>(
    ctx: &TargetCtx<'a>,
    who: &Identity,
    want: AccountView<'_>,
    claimed: &[bool],
) -> Correlated<'a> {
    for rule in &ctx.opts.correlation {
        let Some(key) = correlation_key(rule, who, want.login) else {
            continue;
        };
        let mut found: Vec<usize> = if rule.account_field == "login" {
            ctx.by_login.get(&key)
        } else {
            ctx.by_attribute
                .get(rule.account_field.as_str())
                .map(|values| values.get(&key))
                .unwrap_or_default()
        };
        // An account linked to someone else, or claimed this run, is theirs.
        found.retain(|i| {
            !claimed.get(*i).copied().unwrap_or(false)
                && ctx
                    .link_of_account
                    .get(*i)
                    .copied()
                    .flatten()
                    .is_none_or(|(owner, _)| owner == &who.id)
        });
        let mut found: Vec<(usize, &'a Account)> = found
            .into_iter()
            .filter_map(|i| ctx.accounts.get(i).map(|a| (i, a)))
            .collect();
        found.sort_by(|a, b| a.1.id.cmp(&b.1.id));
        match found.as_slice() {
            [] => continue,
            [(i, one)] => return Correlated::One(*i, one),
            many => return Correlated::Many(many.iter().map(|(_, a)| a.id.clone()).collect()),
        }
    }
    Correlated::None
}

/// Each correlation rule's account attribute, indexed by value ignoring
/// ASCII case (a number by its text).
fn attribute_indexes<'a>(
    accounts: &'a [Account],
    rules: &'a [Correlation],
) -> FastMap<&'a str, MultiIndex<'a>> {
    let fields: BTreeSet<&str> = rules
        .iter()
        .map(|r| r.account_field.as_str())
        .filter(|f| *f != "login")
        .collect();
    fields
        .into_iter()
        .map(|field| {
            let values = accounts
                .iter()
                .map(|a| match a.attributes.get(field) {
                    Some(Value::String(s)) => Some(Cow::Borrowed(s.as_str())),
                    Some(Value::Int(i)) => Some(Cow::Owned(i.to_string())),
                    _ => None,
                })
                .collect();
            (field, MultiIndex::new(values, true))
        })
        .collect()
}

fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// Whether `acct` differs from `want` in anything the template manages,
/// checked without allocating (the common case is "no").
fn differs(managed: &[&str], want: AccountView<'_>, acct: &Account) -> bool {
    acct.login != want.login
        || want
            .attributes
            .iter()
            .any(|(k, v)| acct.attributes.get(k) != Some(v))
        || managed
            .iter()
            .any(|k| !want.attributes.contains_key(*k) && acct.attributes.contains_key(*k))
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
    // Forgetting links counts too: a listing that lost accounts would
    // otherwise make the engine forget what it owns.
    for op in ops
        .iter()
        .filter(|o| o.kind.is_removal() || matches!(o.kind, OpKind::Unlink { .. }))
    {
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
                unlink: removals
                    .iter()
                    .filter(|o| matches!(o.kind, OpKind::Unlink { .. }))
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
            OpKind::Delete { account } | OpKind::Link { account } | OpKind::Unlink { account } => {
                account.to_string()
            }
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
///
/// Large collections are digested as order-independent sums of per-item
/// 64-bit hashes, computed on every core, and the sums go into a SHA-256:
/// fast over millions of accounts, and an accidental change to an item
/// goes unnoticed with probability about 2^-64. This detects staleness; it
/// is not a defence against someone forging inputs. It is stable within one
/// build of prov; a plan saved by another version may be refused as stale.
pub fn fingerprint(input: &PlanInput<'_>) -> String {
    let (identities, (accounts, links)) = rayon::join(
        || SetDigest::of(input.identities),
        || {
            rayon::join(
                || {
                    input
                        .actual
                        .iter()
                        .map(|(t, accts)| (t, SetDigest::of(accts)))
                        .collect::<Vec<_>>()
                },
                || SetDigest::of(input.links),
            )
        },
    );
    fingerprint_of(input, identities, &accounts, links)
}

/// The fingerprint from the digests of the large collections (accounts in
/// `input.actual`'s order).
fn fingerprint_of(
    input: &PlanInput<'_>,
    identities: SetDigest,
    accounts: &[(&TargetId, SetDigest)],
    links: SetDigest,
) -> String {
    let mut h = Sha256::new();
    let mut put = |label: &str, bytes: &[u8]| {
        h.update(label.as_bytes());
        h.update([0u8]);
        h.update(u64::try_from(bytes.len()).unwrap_or(u64::MAX).to_le_bytes());
        h.update(bytes);
    };
    put("policy", input.policy.digest().as_bytes());
    put("identities", &identities.bytes());
    for (target, digest) in accounts {
        put(target.as_str(), &digest.bytes());
    }
    put("links", &links.bytes());
    let mut assignments: Vec<_> = input.extra.assignments.iter().collect();
    assignments.sort();
    put(
        "assignments",
        &serde_json::to_vec(&assignments).unwrap_or_default(),
    );
    let mut leases: Vec<_> = input.extra.leases.iter().collect();
    leases.sort();
    put("leases", &serde_json::to_vec(&leases).unwrap_or_default());
    hex(&h.finalize())
}

/// A collection's digest: its count and the wrapping sum of its items'
/// hashes. Independent of order, so no sort is needed; computed on every
/// core, or item by item where the items are read anyway.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct SetDigest {
    count: u64,
    sum: u64,
}

impl SetDigest {
    fn of<T: std::hash::Hash + Sync>(items: &[T]) -> Self {
        use rayon::prelude::*;
        SetDigest {
            count: u64::try_from(items.len()).unwrap_or(u64::MAX),
            sum: items
                .par_iter()
                .with_min_len(4096)
                .map(Self::hash)
                .reduce(|| 0, u64::wrapping_add),
        }
    }

    /// One item's hash (fixed seed: the same in every process of a build).
    fn hash<T: std::hash::Hash>(item: &T) -> u64 {
        use std::hash::BuildHasher;
        foldhash::fast::FixedState::with_seed(0x7072_6f76_0001).hash_one(item)
    }

    fn bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        let (count, sum) = out.split_at_mut(8);
        count.copy_from_slice(&self.count.to_le_bytes());
        sum.copy_from_slice(&self.sum.to_le_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::{KeyIndex, MultiIndex};
    use std::borrow::Cow;

    #[test]
    fn multi_index_gives_every_position_of_a_key_in_order() {
        let long = "A".repeat(100) + "@Example.com";
        let keys = [
            Some("ada@example.com"),
            None,
            Some("bob"),
            Some("ADA@Example.COM"),
            Some(long.as_str()),
            Some("ada@example.com"),
        ];
        let owned = || keys.iter().map(|k| k.map(Cow::Borrowed)).collect();
        let folded = MultiIndex::new(owned(), true);
        assert_eq!(folded.get("Ada@Example.Com"), [0, 3, 5]);
        assert_eq!(folded.get("BOB"), [2]);
        assert_eq!(
            folded.get(&long.to_lowercase()),
            [4],
            "past the 64-byte chunk"
        );
        assert!(folded.get("carol").is_empty());
        let exact = MultiIndex::new(owned(), false);
        assert_eq!(exact.get("ada@example.com"), [0, 5]);
        assert_eq!(exact.get("ADA@Example.COM"), [3]);
        assert!(exact.get("BOB").is_empty());
        assert!(MultiIndex::default().get("bob").is_empty());
    }

    #[test]
    fn key_index_finds_positions_and_keeps_the_last_of_a_repeated_key() {
        let items: Vec<String> = ["b", "a", "c", "a", "uid=x\\,y,ou=people"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let index = KeyIndex::new(items.iter().map(String::as_str).collect()).unwrap();
        assert_eq!(index.get("b"), Some(0));
        assert_eq!(index.get("c"), Some(2));
        assert_eq!(
            index.get("a"),
            Some(3),
            "a repeated key keeps its last position, as a map would"
        );
        assert_eq!(index.get("uid=x\\,y,ou=people"), Some(4));
        assert_eq!(index.get("d"), None);
        assert_eq!(index.get(""), None);
        assert_eq!(
            index.positions(&["c", "d", "a"], |s| s),
            vec![2, u32::MAX, 3],
            "positions of several keys, u32::MAX for a missing one"
        );
        let empty = KeyIndex::new(Vec::new()).unwrap();
        assert_eq!(empty.get("a"), None);
    }
}
