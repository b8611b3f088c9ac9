//! Recovery: what a killed run left in the outbox is looked up on its
//! target and recorded, one audit record per entry.
//!
//! An open entry means the operation may or may not have reached its
//! target. Recovery reads the account and decides which: a create whose
//! login now exists carrying the create's marker (an account with the
//! login and no such proof may be anyone's: it is recorded as unknown and
//! left to correlation), a grant whose member now holds the entitlement, a
//! disable whose account is now disabled, a delete whose account is gone,
//! a rename whose new login exists, an update whose values are now set
//! were applied, and get the record (and the ledger change) the crash
//! kept them from; the rest were not applied, and the next plan redoes
//! them if they are still needed. An entry for a target no longer
//! configured is closed with an "unknown" record naming it. Each entry is closed in the same
//! transaction that writes its record, so recovery killed half-way
//! leaves the rest open for the next try.

use prov_core::{Account, AccountId, Connector, ErrorKind};

use crate::audit::AuditEvent;
use crate::engine::{Engine, EngineError};
use crate::executor::{create_marker, operation_name};
use crate::ledger::{GrantChange, LedgerChange, Link, LinkOrigin};
use crate::plan::{AccountRef, OpKind};
use crate::store::{Completion, OutboxEntry};

/// What recovery found for one entry.
struct Finding {
    outcome: String,
    account: Option<AccountId>,
    ledger: Option<LedgerChange>,
    applied: bool,
}

impl Finding {
    fn applied(account: AccountId, how: &str) -> Self {
        Finding {
            outcome: format!("recovered: applied before the crash ({how})"),
            account: Some(account),
            ledger: None,
            applied: true,
        }
    }

    fn not_applied(account: Option<AccountId>, how: &str) -> Self {
        Finding {
            outcome: format!(
                "recovered: not applied ({how}); the next plan redoes it if it is still needed"
            ),
            account,
            ledger: None,
            applied: false,
        }
    }
}

impl Engine {
    /// Recovers what a killed run left in the outbox: each entry's
    /// operation is looked up on its target (see the module docs), recorded
    /// in the audit log as applied or not, and closed, with the ledger
    /// change an applied create, delete or rename makes. Writes only to the
    /// store. A target that cannot be read leaves its entries open and is
    /// an error. Returns how many entries it closed.
    pub async fn recover(&self) -> Result<usize, EngineError> {
        let open = self
            .store()
            .outbox_open()
            .await
            .map_err(EngineError::Store)?;
        if open.is_empty() {
            return Ok(0);
        }
        let run = self.executor().run_id();
        // A run whose claim has not lapsed, and whose process is not known
        // to be gone, is still applying: its entries are its own.
        let now = self.now();
        let live: std::collections::BTreeSet<String> = self
            .store()
            .claims()
            .await
            .map_err(EngineError::Store)?
            .into_iter()
            .filter(|c| c.until >= now && !crate::executor::is_gone(&c.owner))
            .map(|c| c.run)
            .collect();
        let mut done = Vec::with_capacity(open.len());
        for entry in open.iter().filter(|e| !live.contains(&e.run)) {
            let op = &entry.op;
            let finding = match self.connector(&op.target) {
                Some(conn) => {
                    self.inspect(conn, entry)
                        .await
                        .map_err(|error| EngineError::Target {
                            target: op.target.clone(),
                            error,
                        })?
                }
                // The target left the configuration: nobody can look, so the
                // record says so (and what to check) rather than the entry
                // staying open, unseen, forever.
                None => Finding {
                    outcome: format!(
                        "recovered: unknown (target {} has no connector now; check the account by hand)",
                        op.target
                    ),
                    account: op.existing_account().cloned(),
                    ledger: None,
                    applied: false,
                },
            };
            let mut event = AuditEvent::new(
                self.now(),
                self.executor().actor(),
                operation_name(op),
                format!(
                    "{}; operation {} of run {} ({}), begun {}, was never recorded as finished",
                    op.reasons.join("; "),
                    op.id,
                    entry.run,
                    if entry.owner.is_empty() {
                        "owner unknown"
                    } else {
                        &entry.owner
                    },
                    entry.begun.to_rfc3339()
                ),
                finding.outcome,
            );
            event.identity.clone_from(&op.identity);
            event.target = Some(op.target.clone());
            // A grant found applied is dated when it was found.
            let grant = finding
                .account
                .as_ref()
                .filter(|_| finding.applied)
                .and_then(|a| GrantChange::of(&op.target, &op.kind, a, event.time));
            event.account = finding.account;
            event.run = Some(run.clone());
            let mut c = Completion::new(entry.run.clone(), op.id.clone(), event);
            c.ledger = finding.ledger;
            c.grant = grant;
            // Another process recovering the same entry at once: one record.
            c.if_open = true;
            done.push(c);
        }
        let n = done.len();
        self.store()
            .complete(done)
            .await
            .map_err(EngineError::Store)?;
        Ok(n)
    }

    async fn account_by_login(
        &self,
        conn: &dyn Connector,
        login: &str,
    ) -> prov_core::Result<Option<Account>> {
        Ok(self.find_by_login(conn, login).await?.into_iter().next())
    }

    /// Whether the target lists `entitlement` now.
    async fn entitlement_listed(
        &self,
        conn: &dyn Connector,
        entitlement: &prov_core::EntitlementId,
    ) -> prov_core::Result<bool> {
        use prov_core::ConnectorExt;
        let caps = conn.capabilities();
        Ok(conn.list_all_entitlements().await?.iter().any(|e| {
            if caps.login_case_insensitive {
                e.id.as_str().eq_ignore_ascii_case(entitlement.as_str())
            } else {
                e.id == *entitlement
            }
        }))
    }

    async fn account_now(
        &self,
        conn: &dyn Connector,
        account: &AccountRef,
    ) -> prov_core::Result<Option<Account>> {
        match account {
            AccountRef::Existing { id } => match conn.get_account(id).await {
                Ok(a) => Ok(Some(a)),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            },
            AccountRef::New { login } => self.account_by_login(conn, login).await,
        }
    }

    async fn inspect(
        &self,
        conn: &dyn Connector,
        entry: &OutboxEntry,
    ) -> prov_core::Result<Finding> {
        let op = &entry.op;
        Ok(match &op.kind {
            OpKind::Create { login, .. } => match self.account_by_login(conn, login).await? {
                // Ours only with proof: the marker this create carried.
                Some(a)
                    if conn.capabilities().create_marker
                        && a.marker.as_deref()
                            == Some(create_marker(&entry.run, &op.id).as_str()) =>
                {
                    let linked = self.store().link(&op.target, &a.id).await?;
                    let mut f = Finding::applied(
                        a.id.clone(),
                        "an account with its login carries its marker",
                    );
                    if let (None, Some(who)) = (linked, &op.identity) {
                        f.ledger = Some(LedgerChange::Put(Link::new(
                            op.target.clone(),
                            a.id,
                            who.clone(),
                            LinkOrigin::Created,
                        )));
                        f.outcome.push_str("; linked as created");
                    }
                    f
                }
                Some(a) => Finding {
                    outcome: format!(
                        "recovered: unknown (account {} has its login, but {}); not adopted as \
                         created: the next plan correlates it (linked) or reports it for a person",
                        a.id,
                        if conn.capabilities().create_marker {
                            "it does not carry this create's marker"
                        } else {
                            "the connector keeps no create marker to prove who made it"
                        }
                    ),
                    account: Some(a.id),
                    ledger: None,
                    applied: false,
                },
                None => Finding::not_applied(None, "no account has its login"),
            },
            OpKind::Link { account } | OpKind::Unlink { account } => {
                Finding::not_applied(Some(account.clone()), "a link is a store write")
            }
            // The plan saw it absent; there now, it may still be anyone's:
            // used, never recorded as the engine's, so never deleted by it.
            OpKind::CreateEntitlement { entitlement } => {
                if self.entitlement_listed(conn, entitlement).await? {
                    Finding {
                        outcome: format!(
                            "recovered: unknown (the target has {entitlement}, and nothing proves \
                             this create made it); not recorded as the engine's, so never deleted by it"
                        ),
                        account: None,
                        ledger: None,
                        applied: false,
                    }
                } else {
                    Finding::not_applied(None, "the target does not have it")
                }
            }
            OpKind::DeleteEntitlement { entitlement } => {
                if self.entitlement_listed(conn, entitlement).await? {
                    Finding::not_applied(None, "the target still has it")
                } else {
                    Finding {
                        outcome:
                            "recovered: applied before the crash (the target no longer has it)"
                                .to_owned(),
                        account: None,
                        ledger: Some(LedgerChange::Retired {
                            target: op.target.clone(),
                            entitlement: entitlement.clone(),
                        }),
                        applied: true,
                    }
                }
            }
            OpKind::Grant {
                account,
                entitlement,
            }
            | OpKind::Revoke {
                account,
                entitlement,
            } => {
                let grant = matches!(op.kind, OpKind::Grant { .. });
                match self.account_now(conn, account).await? {
                    Some(a) if a.entitlements.contains(entitlement) == grant => Finding::applied(
                        a.id,
                        if grant {
                            "it is a member"
                        } else {
                            "it is no longer a member"
                        },
                    ),
                    Some(a) => Finding::not_applied(
                        Some(a.id),
                        if grant {
                            "it is not a member"
                        } else {
                            "it is still a member"
                        },
                    ),
                    None => Finding::not_applied(None, "the account is not there"),
                }
            }
            OpKind::SetEnabled { account, enabled } => {
                match self.account_now(conn, account).await? {
                    Some(a) if a.enabled == *enabled => Finding::applied(
                        a.id,
                        if *enabled {
                            "it is enabled"
                        } else {
                            "it is disabled"
                        },
                    ),
                    Some(a) => Finding::not_applied(
                        Some(a.id),
                        if *enabled {
                            "it is disabled"
                        } else {
                            "it is enabled"
                        },
                    ),
                    None => Finding::not_applied(None, "the account is not there"),
                }
            }
            OpKind::Delete { account } => {
                match self
                    .account_now(
                        conn,
                        &AccountRef::Existing {
                            id: account.clone(),
                        },
                    )
                    .await?
                {
                    None => {
                        let mut f = Finding::applied(account.clone(), "the account is gone");
                        f.ledger = Some(LedgerChange::Remove {
                            target: op.target.clone(),
                            account: account.clone(),
                        });
                        f
                    }
                    Some(a) => Finding::not_applied(Some(a.id), "the account is still there"),
                }
            }
            // A secret cannot be read back: whether a reset landed is unknown.
            OpKind::Update { secret, .. } if !secret.is_empty() => Finding {
                outcome: format!(
                    "recovered: unknown (a reset of {} cannot be read back; reset it again if in doubt)",
                    secret.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
                account: op.existing_account().cloned(),
                ledger: None,
                applied: false,
            },
            OpKind::Update { account, delta, .. } => {
                if let Some(new_login) = &delta.login {
                    match self.account_by_login(conn, new_login).await? {
                        Some(a) => {
                            let mut f = Finding::applied(a.id.clone(), "the new login exists");
                            if let AccountRef::Existing { id } = account
                                && *id != a.id
                            {
                                f.ledger = Some(LedgerChange::Move {
                                    target: op.target.clone(),
                                    from: id.clone(),
                                    to: a.id,
                                });
                            }
                            f
                        }
                        None => Finding::not_applied(None, "the new login does not exist"),
                    }
                } else {
                    match self.account_now(conn, account).await? {
                        Some(a) => {
                            let set = delta
                                .set
                                .iter()
                                .all(|(k, v)| a.attributes.get(k) == Some(v));
                            let removed =
                                delta.remove.iter().all(|k| !a.attributes.contains_key(k));
                            if set && removed {
                                Finding::applied(a.id, "its attributes hold the new values")
                            } else {
                                Finding::not_applied(Some(a.id), "its attributes differ")
                            }
                        }
                        None => Finding::not_applied(None, "the account is not there"),
                    }
                }
            }
        })
    }
}
