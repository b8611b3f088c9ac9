//! IAM Identity Center permission-set account assignments (sso-admin), as
//! entitlements named `PermissionSet@AccountId` (the permission set by name
//! or by ARN, the account by its 12 digits).
//!
//! CreateAccountAssignment and DeleteAccountAssignment are asynchronous:
//! each answers a request id, whose status is polled until it is SUCCEEDED
//! or FAILED (with AWS's reason), at most [`OUTSTANDING`] at once, as AWS
//! documents. A grant or revoke first lists the assignments of that
//! permission set in that account (one paged call for the whole batch), so
//! granting what is there or revoking what is not sends nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_ssoadmin::Client;
use aws_sdk_ssoadmin::types::{
    AccountAssignmentOperationStatus, PrincipalType, StatusValues, TargetType,
};
use prov_core::{
    AccountId, BackendDetail, BatchOutcome, Entitlement, EntitlementId, EntitlementKind, Error,
    ErrorKind, Operation, Page, Result,
};
use tokio::sync::{Mutex, Semaphore};

use crate::error::from_sdk;
use crate::pace::{Paced, Pacer};

/// Assignment requests in progress at once: AWS documents at most 10
/// outstanding CreateAccountAssignment / DeleteAccountAssignment requests.
pub(crate) const OUTSTANDING: usize = 10;

/// The first wait before a status is read again, and the longest.
const FIRST_POLL: Duration = Duration::from_millis(200);
const LONGEST_POLL: Duration = Duration::from_secs(2);

/// The most results sso-admin gives per page.
const PAGE: i32 = 100;

/// Where an assignment entitlement points: a permission set in an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) permission_set_arn: String,
    pub(crate) account: String,
}

/// The two halves of `PermissionSet@AccountId`, when `id` has that shape
/// (the account twelve digits).
pub(crate) fn split(id: &str) -> Option<(&str, &str)> {
    let (set, account) = id.rsplit_once('@')?;
    (!set.is_empty() && account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))
        .then_some((set, account))
}

/// The ARN of the permission set `set` names (by ARN or by name).
fn find(sets: &PermissionSets, set: &str) -> Option<String> {
    if set.starts_with("arn:") {
        sets.by_arn.contains_key(set).then(|| set.to_owned())
    } else {
        sets.by_name.get(set).cloned()
    }
}

#[derive(Default)]
struct PermissionSets {
    loaded: bool,
    /// Name -> ARN.
    by_name: HashMap<String, String>,
    /// ARN -> (name, description), in ARN order.
    by_arn: BTreeMap<String, (String, Option<String>)>,
}

pub(crate) struct Assignments {
    client: Client,
    instance: String,
    /// Accounts whose assignments are listed even before any is made
    /// (AWS lists the accounts a permission set is provisioned to).
    accounts: Vec<String>,
    outstanding: Arc<Semaphore>,
    timeout: Duration,
    sets: Mutex<PermissionSets>,
    pace: Arc<Pacer>,
}

impl Assignments {
    pub(crate) fn new(
        sdk: &aws_config::SdkConfig,
        instance: String,
        accounts: Vec<String>,
        timeout: Duration,
        pace: Arc<Pacer>,
    ) -> Result<Self> {
        if !instance.starts_with("arn:") || !instance.contains(":instance/") {
            return Err(Error::invalid_input(
                "instance_arn",
                format!(
                    "`{instance}` is not an Identity Center instance ARN \
                     (arn:aws:sso:::instance/ssoins-...)"
                ),
            ));
        }
        for a in &accounts {
            if a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::invalid_input(
                    "accounts",
                    format!("`{a}` is not an AWS account id (twelve digits)"),
                ));
            }
        }
        if timeout.is_zero() {
            return Err(Error::invalid_input(
                "assignment_timeout",
                "must be more than zero",
            ));
        }
        Ok(Assignments {
            client: Client::new(sdk),
            instance,
            accounts,
            outstanding: Arc::new(Semaphore::new(OUTSTANDING)),
            timeout,
            sets: Mutex::new(PermissionSets::default()),
            pace,
        })
    }

    fn pace(&self) -> &Pacer {
        &self.pace
    }

    async fn load_sets(
        &self,
        op: Operation,
    ) -> Result<tokio::sync::MutexGuard<'_, PermissionSets>> {
        let mut sets = self.sets.lock().await;
        if sets.loaded {
            return Ok(sets);
        }
        let mut arns = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_permission_sets()
                .instance_arn(&self.instance)
                .max_results(PAGE)
                .set_next_token(token)
                .send()
                .paced(self.pace())
                .await
                .map_err(|e| from_sdk(e, op, "listing permission sets"))?;
            arns.extend(page.permission_sets().iter().cloned());
            token = page
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        for arn in arns {
            let what = format!("reading permission set {arn}");
            let d = self
                .client
                .describe_permission_set()
                .instance_arn(&self.instance)
                .permission_set_arn(&arn)
                .send()
                .paced(self.pace())
                .await
                .map_err(|e| from_sdk(e, op, &what))?;
            let Some(ps) = d.permission_set() else {
                continue;
            };
            let name = ps.name().unwrap_or(&arn).to_owned();
            sets.by_name.insert(name.clone(), arn.clone());
            sets.by_arn
                .insert(arn, (name, ps.description().map(str::to_owned)));
        }
        sets.loaded = true;
        Ok(sets)
    }

    /// The permission set and account `id` names.
    pub(crate) async fn resolve(&self, op: Operation, id: &EntitlementId) -> Result<Target> {
        let (set, account) = split(id.as_str()).ok_or_else(|| {
            Error::invalid_input(
                "entitlement",
                format!("{id}: an assignment is named PermissionSet@AccountId"),
            )
            .with_operation(op)
        })?;
        let found = find(&*self.load_sets(op).await?, set);
        let arn = match found {
            Some(arn) => arn,
            None => {
                // Made since the list was read? Read it again, once.
                *self.sets.lock().await = PermissionSets::default();
                find(&*self.load_sets(op).await?, set).ok_or_else(|| {
                    Error::new(
                        ErrorKind::NotFound,
                        format!("{id}: no permission set `{set}` in {}", self.instance),
                    )
                    .with_operation(op)
                })?
            }
        };
        Ok(Target {
            permission_set_arn: arn,
            account: account.to_owned(),
        })
    }

    /// The principals of `kind` holding `t`, each as often as it is listed
    /// (AWS lists an assignment once; an emulator may hold it twice).
    pub(crate) async fn principals(
        &self,
        op: Operation,
        t: &Target,
        kind: &PrincipalType,
    ) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut token = None;
        let what = format!(
            "listing the assignments of {} in {}",
            t.permission_set_arn, t.account
        );
        loop {
            let page = self
                .client
                .list_account_assignments()
                .instance_arn(&self.instance)
                .account_id(&t.account)
                .permission_set_arn(&t.permission_set_arn)
                .max_results(PAGE)
                .set_next_token(token)
                .send()
                .paced(self.pace())
                .await
                .map_err(|e| from_sdk(e, op, &what))?;
            out.extend(
                page.account_assignments()
                    .iter()
                    .filter(|a| a.principal_type() == Some(kind))
                    .filter_map(|a| a.principal_id().map(str::to_owned)),
            );
            token = page
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    /// Grants (`add`) or revokes `id` for user principals `accounts`, up to
    /// `in_flight` at once (and never more than [`OUTSTANDING`] requests
    /// in progress).
    pub(crate) async fn change(
        &self,
        id: &EntitlementId,
        accounts: Vec<AccountId>,
        add: bool,
        in_flight: usize,
    ) -> Result<BatchOutcome> {
        let op = if add {
            Operation::Grant
        } else {
            Operation::Revoke
        };
        let t = self.resolve(op, id).await?;
        let mut held: HashMap<String, usize> = HashMap::new();
        for p in self.principals(op, &t, &PrincipalType::User).await? {
            *held.entry(p).or_default() += 1;
        }
        let (t, held) = (&t, &held);
        Ok(
            crate::per_account(accounts, in_flight, |account| async move {
                let n = held.get(account.as_str()).copied().unwrap_or(0);
                let r = if add && n == 0 {
                    self.apply(op, t, PrincipalType::User, account.as_str(), true)
                        .await
                } else if !add {
                    let mut r = Ok(());
                    for _ in 0..n {
                        r = self
                            .apply(op, t, PrincipalType::User, account.as_str(), false)
                            .await;
                        if r.is_err() {
                            break;
                        }
                    }
                    r
                } else {
                    Ok(())
                };
                (account, r)
            })
            .await,
        )
    }

    /// Grants or revokes `t` for one principal, to the end.
    pub(crate) async fn apply(
        &self,
        op: Operation,
        t: &Target,
        kind: PrincipalType,
        principal: &str,
        add: bool,
    ) -> Result<()> {
        // Held until the request is SUCCEEDED or FAILED.
        let _permit = self
            .outstanding
            .acquire()
            .await
            .map_err(|_| Error::new(ErrorKind::Unexpected, "the assignment gate is closed"))?;
        let what = format!(
            "{} {} {principal} {} {} in {}",
            if add { "assigning" } else { "unassigning" },
            kind.as_str().to_lowercase(),
            if add { "to" } else { "from" },
            t.permission_set_arn,
            t.account
        );
        let mut status = if add {
            match self
                .client
                .create_account_assignment()
                .instance_arn(&self.instance)
                .target_id(&t.account)
                .target_type(TargetType::AwsAccount)
                .permission_set_arn(&t.permission_set_arn)
                .principal_type(kind.clone())
                .principal_id(principal)
                .send()
                .paced(self.pace())
                .await
                .map_err(|e| from_sdk(e, op, &what))
            {
                Ok(o) => o.account_assignment_creation_status().cloned(),
                // There already: done.
                Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(()),
                Err(e) => return Err(e),
            }
        } else {
            match self
                .client
                .delete_account_assignment()
                .instance_arn(&self.instance)
                .target_id(&t.account)
                .target_type(TargetType::AwsAccount)
                .permission_set_arn(&t.permission_set_arn)
                .principal_type(kind.clone())
                .principal_id(principal)
                .send()
                .paced(self.pace())
                .await
                .map_err(|e| from_sdk(e, op, &what))
            {
                Ok(o) => o.account_assignment_deletion_status().cloned(),
                // Gone already: done.
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            }
        };
        let started = Instant::now();
        let mut wait = FIRST_POLL;
        loop {
            let Some(s) = status.as_ref() else {
                return Err(Error::new(
                    ErrorKind::Unexpected,
                    format!("{what}: the reply carried no request status"),
                )
                .with_operation(op));
            };
            match s.status() {
                Some(StatusValues::Succeeded) => return Ok(()),
                Some(StatusValues::Failed) => return Err(failed(op, &what, s)),
                _ => {}
            }
            let Some(request) = s.request_id().map(str::to_owned) else {
                return Err(Error::new(
                    ErrorKind::Unexpected,
                    format!("{what}: the request is in progress and has no request id"),
                )
                .with_operation(op));
            };
            if started.elapsed() >= self.timeout {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "{what}: request {request} still IN_PROGRESS after {} s \
                         (assignment_timeout); it may yet finish",
                        self.timeout.as_secs()
                    ),
                )
                .with_operation(op));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(LONGEST_POLL);
            let reading = format!("{what}: reading request {request}");
            let read = if add {
                self.client
                    .describe_account_assignment_creation_status()
                    .instance_arn(&self.instance)
                    .account_assignment_creation_request_id(&request)
                    .send()
                    .paced(self.pace())
                    .await
                    .map(|o| o.account_assignment_creation_status().cloned())
                    .map_err(|e| from_sdk(e, op, &reading))
            } else {
                self.client
                    .describe_account_assignment_deletion_status()
                    .instance_arn(&self.instance)
                    .account_assignment_deletion_request_id(&request)
                    .send()
                    .paced(self.pace())
                    .await
                    .map(|o| o.account_assignment_deletion_status().cloned())
                    .map_err(|e| from_sdk(e, op, &reading))
            };
            match read {
                Ok(now) => status = now,
                // The request is under way: a throttled or failed read is
                // read again, until the timeout, not reported as the
                // assignment's failure.
                Err(e) if e.is_retryable() => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The assignments held by user `principal` directly, as entitlements.
    pub(crate) async fn held_by(
        &self,
        op: Operation,
        principal: &str,
    ) -> Result<Vec<EntitlementId>> {
        let what = format!("listing the assignments of {principal}");
        let mut pairs = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_account_assignments_for_principal()
                .instance_arn(&self.instance)
                .principal_id(principal)
                .principal_type(PrincipalType::User)
                .max_results(PAGE)
                .set_next_token(token)
                .send()
                .paced(self.pace())
                .await
                .map_err(|e| from_sdk(e, op, &what))?;
            pairs.extend(page.account_assignments().iter().filter_map(|a| {
                Some((
                    a.permission_set_arn()?.to_owned(),
                    a.account_id()?.to_owned(),
                ))
            }));
            token = page
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let sets = self.load_sets(op).await?;
        Ok(pairs
            .into_iter()
            .filter_map(|(arn, account)| {
                let (name, _) = sets.by_arn.get(&arn)?;
                Some(EntitlementId::new(format!("{name}@{account}")))
            })
            .collect())
    }

    /// One page of assignment entitlements: the permission set at index
    /// `at` (in ARN order) in every account it is provisioned to and every
    /// configured account; the next index, while there is one.
    pub(crate) async fn list_page(&self, at: usize) -> Result<Page<Entitlement>> {
        let op = Operation::ListEntitlements;
        let Some((arn, name, description)) = self
            .load_sets(op)
            .await?
            .by_arn
            .iter()
            .nth(at)
            .map(|(a, (n, d))| (a.clone(), n.clone(), d.clone()))
        else {
            return Ok(Page::last(Vec::new()));
        };
        let mut accounts = self.accounts.clone();
        let mut token = None;
        let what = format!("listing the accounts of permission set {name}");
        loop {
            let page = self
                .client
                .list_accounts_for_provisioned_permission_set()
                .instance_arn(&self.instance)
                .permission_set_arn(&arn)
                .max_results(PAGE)
                .set_next_token(token)
                .send()
                .paced(self.pace())
                .await
                .map_err(|e| from_sdk(e, op, &what))?;
            accounts.extend(page.account_ids().iter().cloned());
            token = page
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        accounts.sort();
        accounts.dedup();
        let items = accounts
            .iter()
            .map(|a| assignment_entitlement(&name, a, description.clone()))
            .collect();
        let more = at + 1 < self.sets.lock().await.by_arn.len();
        Ok(Page::new(items, more.then(|| (at + 1).to_string())))
    }

    /// Whether the permission set `id` names exists (an assignment comes
    /// into being when it is first granted).
    pub(crate) async fn create(&self, e: &Entitlement) -> Result<Entitlement> {
        let op = Operation::CreateEntitlement;
        self.resolve(op, &e.id).await?;
        let mut out = e.clone();
        out.kind = EntitlementKind::Policy;
        Ok(out)
    }

    /// Unassigns every user holding `id` directly. Groups it is assigned
    /// to are left alone: an engine that retires an assignment it "made"
    /// made none of them (an assignment exists once granted, and groups
    /// are assigned by hand or by infrastructure code).
    pub(crate) async fn delete(&self, id: &EntitlementId) -> Result<()> {
        let op = Operation::DeleteEntitlement;
        let t = self.resolve(op, id).await?;
        for p in self.principals(op, &t, &PrincipalType::User).await? {
            self.apply(op, &t, PrincipalType::User, &p, false).await?;
        }
        Ok(())
    }

    /// Adds to `held`, beside each `Name@Account` assignment, the same
    /// assignment by ARN: a policy may name either, and the engine compares
    /// names as written.
    pub(crate) async fn with_arn_forms(
        &self,
        op: Operation,
        held: &mut std::collections::BTreeSet<EntitlementId>,
    ) -> Result<()> {
        let named: Vec<(String, String)> = held
            .iter()
            .filter_map(|e| split(e.as_str()))
            .filter(|(set, _)| !set.starts_with("arn:"))
            .map(|(s, a)| (s.to_owned(), a.to_owned()))
            .collect();
        if named.is_empty() {
            return Ok(());
        }
        let sets = self.load_sets(op).await?;
        for (set, account) in named {
            if let Some(arn) = sets.by_name.get(&set) {
                held.insert(EntitlementId::new(format!("{arn}@{account}")));
            }
        }
        Ok(())
    }
}

fn assignment_entitlement(name: &str, account: &str, description: Option<String>) -> Entitlement {
    let mut e = Entitlement::group(format!("{name}@{account}"));
    e.kind = EntitlementKind::Policy;
    e.display_name = description;
    e
}

/// A FAILED request: AWS's reason, the request id kept.
fn failed(op: Operation, what: &str, s: &AccountAssignmentOperationStatus) -> Error {
    let reason = s.failure_reason().unwrap_or("no reason given");
    let mut detail = BackendDetail::new("FAILED", reason);
    detail.request_id = s.request_id().map(str::to_owned);
    Error::new(
        ErrorKind::Unexpected,
        format!(
            "{what}: request {} FAILED: {reason}",
            s.request_id().unwrap_or("?")
        ),
    )
    .with_operation(op)
    .with_detail(detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_names_split_at_the_last_at_sign() {
        assert_eq!(
            split("ReadOnly@123456789012"),
            Some(("ReadOnly", "123456789012"))
        );
        assert_eq!(split("a@b@123456789012"), Some(("a@b", "123456789012")));
        assert_eq!(split("staff"), None);
        assert_eq!(split("ops@example.com"), None);
        assert_eq!(split("@123456789012"), None);
        assert_eq!(split("ReadOnly@12345678901x"), None);
    }
}
