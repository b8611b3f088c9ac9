//! Links made and removed by a person: how a conflict the planner reports
//! (an account that has someone's login, two links on one target) is
//! decided. Each change is checked against the target and the ledger and
//! recorded with its audit record in one transaction.

use prov_core::{Account, AccountId, ConnectorExt, ErrorKind, Identity, IdentityId, TargetId};

use super::{Engine, EngineError};
use crate::audit::AuditEvent;
use crate::ledger::{LedgerChange, Link, LinkOrigin};
use crate::store::Completion;

impl Engine {
    /// Links `account` on `target` (its id, or its login as the target
    /// compares logins) to `identity`, as a person's decision, recorded as
    /// `linked` (the engine never deletes it as its own unless the target
    /// allows deleting linked accounts) with an audit record naming the
    /// engine's actor. The next plan treats the account as the identity's.
    ///
    /// Refused, changing nothing, when the identity is not among
    /// `identities`, the target is unknown, the account is not on the
    /// target (or several accounts have that login), the account is linked
    /// to someone else, or the identity already has an account there.
    /// Linking an account already linked to the identity is a no-op.
    pub async fn link_account(
        &self,
        target: &TargetId,
        identity: &IdentityId,
        account: &str,
        identities: &[Identity],
    ) -> Result<Link, EngineError> {
        if !identities.iter().any(|i| &i.id == identity) {
            return Err(EngineError::NotFound(format!(
                "identity `{identity}` is not in the sources"
            )));
        }
        let acct = self.find_account(target, account).await?;
        self.claimed(|run| async move {
            self.recover().await?;
            if let Some(l) = self
                .store
                .link(target, &acct.id)
                .await
                .map_err(EngineError::Store)?
            {
                if &l.identity == identity {
                    return Ok(l);
                }
                return Err(EngineError::Refused(format!(
                    "account {} ({}) on {target} is linked to `{}`; unlink it first (prov unlink)",
                    acct.login, acct.id, l.identity
                )));
            }
            if let Some(l) = self
                .store
                .links_of(identity)
                .await
                .map_err(EngineError::Store)?
                .into_iter()
                .find(|l| &l.target == target)
            {
                return Err(EngineError::Refused(format!(
                    "`{identity}` already has account {} on {target}; unlink it first (prov unlink)",
                    l.account
                )));
            }
            let link = Link::new(
                target.clone(),
                acct.id.clone(),
                identity.clone(),
                LinkOrigin::Linked,
            );
            let event = self.hand_event(
                target,
                &acct.id,
                Some(identity),
                "link",
                format!("linked by hand: account {} is {identity}'s", acct.login),
            );
            self.record_by_hand(run, "link", event, LedgerChange::Put(link.clone()))
                .await?;
            Ok(link)
        })
        .await
    }

    /// Forgets the link of `account` on `target` (its id, or its login),
    /// as a person's decision, with an audit record: the account is then
    /// no one's to the engine (an orphan in the next full plan), and the
    /// target is not touched. Refused when no link holds it.
    pub async fn unlink_account(
        &self,
        target: &TargetId,
        account: &str,
    ) -> Result<Link, EngineError> {
        self.claimed(|run| async move {
            self.recover().await?;
            // The ledger first: a link whose account the target deleted can
            // still be forgotten by its id.
            let id = AccountId::new(account);
            let link = match self
                .store
                .link(target, &id)
                .await
                .map_err(EngineError::Store)?
            {
                Some(l) => l,
                None => {
                    let acct = self.find_account(target, account).await?;
                    self.store
                        .link(target, &acct.id)
                        .await
                        .map_err(EngineError::Store)?
                        .ok_or_else(|| {
                            EngineError::Refused(format!(
                                "account {} ({}) on {target} is linked to no one",
                                acct.login, acct.id
                            ))
                        })?
                }
            };
            let event = self.hand_event(
                target,
                &link.account,
                Some(&link.identity),
                "unlink",
                format!(
                    "unlinked by hand: account {} is no longer {}'s ({})",
                    link.account,
                    link.identity,
                    link.origin.as_str()
                ),
            );
            let forget = LedgerChange::Remove {
                target: target.clone(),
                account: link.account.clone(),
            };
            self.record_by_hand(run, "unlink", event, forget).await?;
            Ok(link)
        })
        .await
    }

    /// Writes a change made by hand, as run `run`: the ledger change and
    /// its audit record in one transaction.
    async fn record_by_hand(
        &self,
        run: String,
        op: &str,
        mut event: AuditEvent,
        change: LedgerChange,
    ) -> Result<(), EngineError> {
        event.run = Some(run.clone());
        let mut done = Completion::new(run, op, event);
        done.ledger = Some(change);
        self.store
            .complete(vec![done])
            .await
            .map_err(EngineError::Store)?;
        Ok(())
    }

    /// The account on `target` whose id, or else whose login, is `account`.
    async fn find_account(&self, target: &TargetId, account: &str) -> Result<Account, EngineError> {
        let conn = self
            .connectors
            .get(target)
            .ok_or_else(|| EngineError::NotFound(format!("there is no target `{target}`")))?;
        let target_err = |error| EngineError::Target {
            target: target.clone(),
            error,
        };
        match conn.get_account(&AccountId::new(account)).await {
            Ok(a) => return Ok(a),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::InvalidInput) => {}
            Err(e) => return Err(target_err(e)),
        }
        let mut found = conn
            .accounts_with_login(account)
            .await
            .map_err(target_err)?;
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(EngineError::NotFound(format!(
                "target {target} has no account with id or login `{account}`"
            ))),
            n => Err(EngineError::Refused(format!(
                "{n} accounts on {target} have the login `{account}` ({}); name one by its id",
                found
                    .iter()
                    .map(|a| a.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    fn hand_event(
        &self,
        target: &TargetId,
        account: &AccountId,
        identity: Option<&IdentityId>,
        operation: &str,
        reason: String,
    ) -> AuditEvent {
        let mut e = AuditEvent::new(
            self.clock.now(),
            self.executor.actor(),
            operation,
            reason,
            "done",
        );
        e.target = Some(target.clone());
        e.account = Some(account.clone());
        e.identity = identity.cloned();
        e
    }
}

impl Engine {
    /// The leavers the engine remembers ([`crate::leavers`]), by identity.
    pub async fn leavers(&self) -> Result<Vec<crate::leavers::LeaverRecord>, EngineError> {
        self.store.leavers().await.map_err(EngineError::Store)
    }

    /// Forgets `identity`'s leaver record, as a person's decision (a leaver
    /// event sent by mistake), with an audit record; the next plan follows
    /// the sources again. Refused when there is none.
    pub async fn clear_leaver(
        &self,
        identity: &IdentityId,
    ) -> Result<crate::leavers::LeaverRecord, EngineError> {
        let record = self
            .store
            .leaver(identity)
            .await
            .map_err(EngineError::Store)?
            .ok_or_else(|| {
                EngineError::NotFound(format!("the engine remembers no leaver `{identity}`"))
            })?;
        self.store
            .remove_leaver(identity)
            .await
            .map_err(EngineError::Store)?;
        let mut e = AuditEvent::new(
            self.clock.now(),
            self.executor.actor(),
            "leaver.clear",
            format!(
                "leaver record cleared by hand ({} at {})",
                record.why.as_str(),
                record.left_at.to_rfc3339()
            ),
            "done",
        );
        e.identity = Some(identity.clone());
        self.store
            .append_audit(vec![e])
            .await
            .map_err(EngineError::Store)?;
        Ok(record)
    }
}
