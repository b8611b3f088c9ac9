//! Planning for some identities only (an event, or the accounts a
//! target reports changed), and incremental sync from the targets'
//! change logs ([`Connector::changes_since`]).

use std::collections::{BTreeMap, BTreeSet};

use prov_core::{
    Account, AccountId, Change, ConnectorExt, ErrorKind, Identity, IdentityId, TargetId,
};
use prov_resolver::Extra;

use super::{Engine, EngineError, granting};
use crate::executor::ApplyReport;
use crate::plan::Plan;
use crate::planner::PlanInput;

/// The most `changes_since` calls one sync makes per target; what is left
/// waits for the next sync (the token kept is where it stopped).
const MAX_CHANGE_PAGES: usize = 100;

/// What [`Engine::plan_changes`] read from the targets and planned.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ChangesPlan {
    /// The plan for the identities the changes touched.
    pub plan: Plan,
    /// The token to keep per target once the plan is applied.
    pub tokens: BTreeMap<TargetId, String>,
    /// How many changes the targets reported.
    pub changes: usize,
    /// The identities the changes touched, each planned.
    pub identities: Vec<IdentityId>,
    /// Accounts reported changed that no link and no identity's login
    /// claims: orphans, which a full plan decides about.
    pub unclaimed: Vec<(TargetId, AccountId)>,
    /// Targets with no token kept yet: their first token was taken and
    /// nothing read (a full plan covers what came before it).
    pub started: Vec<TargetId>,
    /// Targets with more changes than one sync reads: sync again.
    pub more: Vec<TargetId>,
    /// The tokens read from the store, kept again (with the identities
    /// planned, to plan them again) when the apply fails.
    kept: BTreeMap<TargetId, String>,
}

/// A target's change token as the store keeps it, with the identities a
/// failed sync planned: the changes that touched them are read again, but
/// their links may be gone by then (an unlink done, the create after it
/// failed), so they are planned again by name.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Kept {
    token: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pending: Vec<IdentityId>,
}

impl Kept {
    fn parse(text: &str) -> Kept {
        serde_json::from_str(text).unwrap_or_else(|_| Kept {
            token: text.to_owned(),
            pending: Vec::new(),
        })
    }

    fn text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| self.token.clone())
    }
}

impl Engine {
    /// Plans for `people` only, as a full [`plan`](Self::plan) decides
    /// for them (after [`recover`](Self::recover)): their linked accounts
    /// are read one by one, and where someone has none on a target, the
    /// accounts each of the target's correlation rules could match are
    /// looked up (by the target's filter where its capabilities offer
    /// one, otherwise by listing it) with the links that hold them. A link
    /// whose account the target no longer has is forgotten, as a full
    /// plan forgets it. Each operation gives `reason` among its reasons.
    pub(crate) async fn plan_people(
        &self,
        people: Vec<Identity>,
        reason: &str,
    ) -> Result<Plan, EngineError> {
        let now = self.clock.now();
        let mut people = people;
        // Leaver records, if any, decide as in a full plan.
        let mut records = Vec::new();
        for who in &people {
            records.extend(
                self.store
                    .leaver(&who.id)
                    .await
                    .map_err(EngineError::Store)?,
            );
        }
        if !records.is_empty() {
            people = crate::leavers::departures(&people, &records, &[], now, self.executor.actor())
                .identities;
        }
        // Only these identities' links and leases: an event costs the same
        // whether the store holds ten identities or a million. Read after
        // recovery, which may have changed them.
        self.recover().await?;
        let mut links = Vec::new();
        let mut leases = Vec::new();
        for who in &people {
            links.extend(
                self.store
                    .links_of(&who.id)
                    .await
                    .map_err(EngineError::Store)?,
            );
            leases.extend(
                self.store
                    .leases_of(&who.id)
                    .await
                    .map_err(EngineError::Store)?,
            );
        }
        let leases = granting(&leases);
        let extra = Extra::new(&[], &leases);
        // Resolved once: the lookups below and the planner both use it.
        let resolutions: Vec<_> = people
            .iter()
            .map(|who| self.policy.resolve_with(who, now, extra))
            .collect();
        let mut actual: BTreeMap<TargetId, Vec<Account>> = BTreeMap::new();
        let own = links.clone();
        for (t, conn) in &self.connectors {
            let target_err = |error| EngineError::Target {
                target: t.clone(),
                error,
            };
            let mut accounts: Vec<Account> = Vec::new();
            for (who, res) in people.iter().zip(&resolutions) {
                let mut found_linked = false;
                for l in own
                    .iter()
                    .filter(|l| &l.target == t && l.identity == who.id)
                {
                    match conn.get_account(&l.account).await {
                        Ok(a) => {
                            found_linked = true;
                            if !accounts.iter().any(|b| b.id == a.id) {
                                accounts.push(a);
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::NotFound => {}
                        Err(error) => return Err(target_err(error)),
                    }
                }
                let want = self
                    .policy
                    .targets_of(res)
                    .find(|v| v.target == Some(t))
                    .and_then(|v| v.account.filter(|a| a.login_held.is_none()))
                    .map(|a| a.login.to_owned());
                let (false, Some(login)) = (found_linked, want) else {
                    continue;
                };
                // No live linked account: every account a correlation
                // rule could match, in the rules' order, each once.
                let opts = self.plan_options.for_target(t);
                for rule in crate::planner::correlation_rules(opts) {
                    let Some(key) = crate::planner::correlation_key(&rule, who, &login) else {
                        continue;
                    };
                    let found = if rule.account_field == "login" {
                        self.find_by_login(conn.as_ref(), &key).await
                    } else {
                        conn.accounts_where(&rule.account_field, &key).await
                    }
                    .map_err(target_err)?;
                    for a in found {
                        if accounts.iter().any(|b: &Account| b.id == a.id) {
                            continue;
                        }
                        // A found account's own link (to someone else) must
                        // be seen, or the plan would take it over.
                        if let Some(l) = self
                            .store
                            .link(t, &a.id)
                            .await
                            .map_err(EngineError::Store)?
                            && !links.contains(&l)
                        {
                            links.push(l);
                        }
                        accounts.push(a);
                    }
                }
            }
            actual.insert(t.clone(), accounts);
        }
        let grants = self.grants_for(&resolutions, &links).await?;
        let (listed, created) = self.entitlements_now().await?;
        let input = PlanInput::new(&self.policy, &people, now, &actual, &links)
            .partial()
            .with_extra(extra)
            .with_grants(&grants)
            .with_entitlements(&listed, &created);
        let mut the_plan = crate::planner::plan_resolved(&input, &resolutions, &self.plan_options);
        for op in &mut the_plan.ops {
            op.reasons.push(reason.to_owned());
        }
        the_plan.seal();
        Ok(the_plan)
    }

    /// Reads what each target that offers `changes_since` reports since
    /// the token the store keeps for it, and plans for the identities
    /// among `identities` those changes touch: an account changed or
    /// deleted by hand is set right (recreated, disabled again, its groups
    /// put back) without reading anyone else's. An account is someone's by
    /// its link, else by the login the policy gives them there. Nothing
    /// is applied and no token kept: [`sync`](Self::sync) does both.
    ///
    /// A target with no token kept yet gets its first one (nothing read):
    /// run a full [`plan`](Self::plan) for what came before it.
    pub async fn plan_changes(&self, identities: &[Identity]) -> Result<ChangesPlan, EngineError> {
        let mut tokens = BTreeMap::new();
        let mut started = Vec::new();
        let mut more = Vec::new();
        let mut reported: Vec<(TargetId, Change)> = Vec::new();
        let mut kept_now = BTreeMap::new();
        let mut touched: BTreeSet<IdentityId> = BTreeSet::new();
        for (t, conn) in &self.connectors {
            if !conn.capabilities().changes_since {
                continue;
            }
            let target_err = |error| EngineError::Target {
                target: t.clone(),
                error,
            };
            let kept = self
                .store
                .change_token(t)
                .await
                .map_err(EngineError::Store)?;
            if let Some(k) = &kept {
                kept_now.insert(t.clone(), k.clone());
            }
            let kept = kept.map(|k| Kept::parse(&k));
            let Some(Kept { mut token, pending }) = kept else {
                let first = conn.changes_since(None).await.map_err(target_err)?;
                tokens.insert(t.clone(), first.token);
                started.push(t.clone());
                continue;
            };
            touched.extend(pending);
            let mut pages = 0;
            loop {
                let set = conn.changes_since(Some(&token)).await.map_err(target_err)?;
                reported.extend(set.changes.into_iter().map(|c| (t.clone(), c)));
                token = set.token;
                pages += 1;
                if !set.more {
                    break;
                }
                if pages >= MAX_CHANGE_PAGES {
                    more.push(t.clone());
                    break;
                }
            }
            tokens.insert(t.clone(), token);
        }
        let changes = reported.len();
        // Whose accounts changed: by link, else by the login wanted there.
        let now = self.clock.now();
        let mut unclaimed = Vec::new();
        let mut logins: Option<BTreeMap<(TargetId, String), IdentityId>> = None;
        for (t, change) in &reported {
            let (id, login) = match change {
                Change::Upserted(a) => (&a.id, Some(&a.login)),
                Change::Deleted(id) => (id, None),
                _ => continue,
            };
            if let Some(l) = self.store.link(t, id).await.map_err(EngineError::Store)? {
                touched.insert(l.identity);
                continue;
            }
            let Some(login) = login else { continue };
            let by_login = logins.get_or_insert_with(|| {
                let mut m = BTreeMap::new();
                for who in identities {
                    let res = self.policy.resolve_with(who, now, Extra::new(&[], &[]));
                    for v in self.policy.targets_of(&res) {
                        if let (Some(target), Some(a)) = (v.target, v.account) {
                            m.insert((target.clone(), a.login.to_lowercase()), who.id.clone());
                        }
                    }
                }
                m
            });
            match by_login.get(&(t.clone(), login.to_lowercase())) {
                Some(who) => {
                    touched.insert(who.clone());
                }
                None => unclaimed.push((t.clone(), id.clone())),
            }
        }
        let people: Vec<Identity> = identities
            .iter()
            .filter(|i| touched.contains(&i.id))
            .cloned()
            .collect();
        let plan = self.plan_people(people.clone(), "target change").await?;
        Ok(ChangesPlan {
            plan,
            tokens,
            changes,
            identities: people.into_iter().map(|i| i.id).collect(),
            unclaimed,
            started,
            more,
            kept: kept_now,
        })
    }

    /// Incremental sync: [`plan_changes`](Self::plan_changes), applied
    /// (holding every target's claim, as [`apply`](Self::apply) does),
    /// and each target's new token kept only when every operation is done
    /// and recorded; after a failure the same changes are read again next
    /// time.
    pub async fn sync(
        &self,
        identities: &[Identity],
    ) -> Result<(ChangesPlan, ApplyReport), EngineError> {
        self.claimed(|run| async move {
            let changes = self.plan_changes(identities).await?;
            let (plan, report) = self.applied(run, changes.plan.clone()).await?;
            let keep = if report.is_success() {
                changes
                    .tokens
                    .iter()
                    .map(|(t, token)| {
                        let k = Kept {
                            token: token.clone(),
                            pending: Vec::new(),
                        };
                        (t, k.text())
                    })
                    .collect::<Vec<_>>()
            } else {
                // The same changes next time, and these people by name.
                changes
                    .kept
                    .iter()
                    .map(|(t, text)| {
                        let mut k = Kept::parse(text);
                        for id in &changes.identities {
                            if !k.pending.contains(id) {
                                k.pending.push(id.clone());
                            }
                        }
                        (t, k.text())
                    })
                    .collect()
            };
            for (t, text) in keep {
                self.store
                    .put_change_token(t, &text)
                    .await
                    .map_err(EngineError::Store)?;
            }
            Ok((ChangesPlan { plan, ..changes }, report))
        })
        .await
    }
}
