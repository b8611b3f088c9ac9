//! Connectors that break the contract in one way each: the suite must catch
//! every one, in the right case, with a message that says what to fix.

use prov_core::{
    Account, AccountId, BatchOutcome, Capabilities, ChangeSet, Connector, CreateAccount,
    Entitlement, EntitlementId, Error, ErrorKind, ListRequest, MembershipChange, Page, Result,
    UpdateAccount, async_trait,
};
use prov_testkit::MemoryConnector;
use prov_testkit::conformance::{self, Namespace, Outcome, SuiteOptions};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Flaw {
    /// A repeated grant fails with AlreadyExists.
    RepeatGrantFails,
    /// A missing account is reported as Unexpected.
    NotFoundAsUnexpected,
    /// update replaces all attributes instead of applying the delta.
    UpdateReplaces,
    /// A batch larger than max_batch is refused instead of split.
    RefusesBigBatches,
    /// Disabling a disabled account fails.
    DisableTwiceFails,
    /// A duplicate create silently makes a second account.
    DuplicateCreateSucceeds,
    /// Listing repeats the last item of each page on the next page.
    PagesOverlap,
    /// Claims no delete capability but deletes anyway.
    DeleteWithoutCapability,
    /// A missing account fails the whole batch.
    WholeBatchFails,
    /// Claims to keep create markers but reads them back as none.
    MarkerDropped,
    /// Claims to compare logins ignoring case, but filters on them exactly.
    CaseSensitiveLogins,
}

#[derive(Debug)]
struct Broken {
    inner: MemoryConnector,
    flaw: Flaw,
}

#[async_trait]
impl Connector for Broken {
    fn capabilities(&self) -> Capabilities {
        let mut c = self.inner.capabilities();
        if self.flaw == Flaw::DeleteWithoutCapability {
            c.delete = false;
        }
        c
    }
    async fn list_accounts(&self, req: ListRequest) -> Result<Page<Account>> {
        let mut page = self.inner.list_accounts(req.clone()).await?;
        if self.flaw == Flaw::CaseSensitiveLogins
            && let Some((_, login)) = &req.filter
        {
            page.items.retain(|a| &a.login == login);
        }
        if self.flaw == Flaw::PagesOverlap
            && let Some(c) = req.cursor
        {
            let mut items = vec![self.inner.get_account(&AccountId::new(c)).await?];
            items.extend(page.items);
            items.truncate(req.page_size.unwrap_or(100));
            return Ok(Page::new(items, page.next));
        }
        Ok(page)
    }
    async fn get_account(&self, id: &AccountId) -> Result<Account> {
        match self.inner.get_account(id).await {
            Err(e)
                if self.flaw == Flaw::NotFoundAsUnexpected && e.kind() == ErrorKind::NotFound =>
            {
                Err(Error::new(ErrorKind::Unexpected, "HTTP 404"))
            }
            Ok(mut a) if self.flaw == Flaw::MarkerDropped => {
                a.marker = None;
                Ok(a)
            }
            other => other,
        }
    }
    async fn create_account(&self, req: CreateAccount) -> Result<Account> {
        if self.flaw == Flaw::DuplicateCreateSucceeds {
            let mut renamed = req.clone();
            renamed.login = format!("{}~2", req.login);
            return match self.inner.create_account(req).await {
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    self.inner.create_account(renamed).await
                }
                other => other,
            };
        }
        self.inner.create_account(req).await
    }
    async fn update_account(&self, req: UpdateAccount) -> Result<AccountId> {
        if self.flaw == Flaw::UpdateReplaces {
            let current = self.inner.get_account(&req.id).await?;
            let mut delta = req.delta.clone();
            for k in current.attributes.keys() {
                if !delta.set.contains_key(k) {
                    delta.remove.insert(k.clone());
                }
            }
            return self
                .inner
                .update_account(UpdateAccount::new(req.id, delta))
                .await;
        }
        self.inner.update_account(req).await
    }
    async fn set_enabled(&self, id: &AccountId, enabled: bool) -> Result<()> {
        if self.flaw == Flaw::DisableTwiceFails
            && !enabled
            && !self.inner.get_account(id).await?.enabled
        {
            return Err(Error::new(ErrorKind::Conflict, "already disabled"));
        }
        self.inner.set_enabled(id, enabled).await
    }
    async fn delete_account(&self, id: &AccountId) -> Result<()> {
        self.inner.delete_account(id).await
    }
    async fn list_entitlements(&self, req: ListRequest) -> Result<Page<Entitlement>> {
        self.inner.list_entitlements(req).await
    }
    async fn list_members(&self, e: &EntitlementId, req: ListRequest) -> Result<Page<AccountId>> {
        self.inner.list_members(e, req).await
    }
    async fn grant(&self, req: MembershipChange) -> Result<BatchOutcome> {
        if self.flaw == Flaw::RefusesBigBatches
            && req.accounts.len() > self.capabilities().max_batch
        {
            return Err(Error::invalid_input("accounts", "too many members"));
        }
        if self.flaw == Flaw::WholeBatchFails {
            for id in &req.accounts {
                self.inner.get_account(id).await?;
            }
        }
        if self.flaw == Flaw::RepeatGrantFails {
            let members = self
                .inner
                .list_members(
                    &req.entitlement,
                    ListRequest::first().with_page_size(10_000),
                )
                .await?;
            if req.accounts.iter().any(|a| members.items.contains(a)) {
                return Err(Error::already_exists("member already present"));
            }
        }
        self.inner.grant(req).await
    }
    async fn revoke(&self, req: MembershipChange) -> Result<BatchOutcome> {
        self.inner.revoke(req).await
    }
    async fn changes_since(&self, token: Option<&str>) -> Result<ChangeSet> {
        self.inner.changes_since(token).await
    }
}

async fn run(flaw: Flaw) -> conformance::Report {
    let mut limits = prov_testkit::MemoryLimits::default();
    limits.max_batch = 4;
    let inner = MemoryConnector::with_limits(limits).with_entitlements(["staff"]);
    conformance::run_all(
        &Broken { inner, flaw },
        &Namespace::new("bad"),
        &SuiteOptions::default(),
    )
    .await
}

fn failure(report: &conformance::Report, case: &str) -> String {
    match report.outcome(case) {
        Some(Outcome::Failed(f)) => f.to_string(),
        other => panic!("{case} should fail, got {other:?}\n{report}"),
    }
}

#[tokio::test]
async fn each_contract_violation_is_caught_with_a_message_that_says_what_to_fix() {
    let cases: &[(Flaw, &str, &[&str])] = &[
        (
            Flaw::RepeatGrantFails,
            "grant_revoke_in_batches",
            &[
                "grant(",
                "success on a repeat (idempotent)",
                "already_exists",
            ],
        ),
        (
            Flaw::NotFoundAsUnexpected,
            "create_get_delete",
            &[
                "get_account(",
                "expected a not_found error, got a unexpected error",
            ],
        ),
        (
            Flaw::UpdateReplaces,
            "update_is_a_delta",
            &[
                "update_account(",
                "title left as Tester (updates are deltas)",
            ],
        ),
        (
            Flaw::RefusesBigBatches,
            "grant_revoke_in_batches",
            &["6 accounts (max_batch 4)", "invalid_input"],
        ),
        (
            Flaw::DisableTwiceFails,
            "disable_enable_are_idempotent",
            &["set_enabled(", "false): expected success"],
        ),
        (
            Flaw::DuplicateCreateSucceeds,
            "duplicate_create_is_already_exists",
            &["expected a already_exists error, got success"],
        ),
        (
            Flaw::PagesOverlap,
            "listing_pages_visit_each_account_once",
            &["each account once"],
        ),
        (
            Flaw::DeleteWithoutCapability,
            "unsupported_operations_say_so",
            &["delete_account((capability absent)): expected an unsupported error"],
        ),
        (
            Flaw::MarkerDropped,
            "create_marker_is_kept",
            &["get_account(", "marker prov-conformance:", "None"],
        ),
        (
            Flaw::CaseSensitiveLogins,
            "logins_compare_as_capabilities_say",
            &["(login_case_insensitive = true)", "got []"],
        ),
        (
            Flaw::WholeBatchFails,
            "batch_failures_are_per_account",
            &["a per-account failure, not a failed batch"],
        ),
    ];
    for (flaw, case, needles) in cases {
        let report = run(*flaw).await;
        let msg = failure(&report, case);
        for n in *needles {
            assert!(msg.contains(n), "{flaw:?}: `{n}` not in: {msg}");
        }
        assert!(
            report.to_string().contains(&format!("FAIL {case}: ")),
            "{report}"
        );
        println!("{flaw:?} -> FAIL {case}: {msg}");
    }
}
