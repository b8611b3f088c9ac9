//! The `file` target kind: accounts and group memberships kept in files
//! next to the config, for trials, demos and tests without a server.
//!
//! Two files: `PATH`, a snapshot (JSON), and `PATH.journal`, the changes
//! since it (JSON Lines, its first line naming the snapshot generation it
//! follows). A write appends its changes to the journal and syncs it once
//! per call (a grant of 100 accounts is one append and one fsync), so a
//! call costs the same at a million accounts as at ten. When the journal
//! has grown past the snapshot, the state is written to a new snapshot
//! (temporary file, fsync, rename, directory fsync) and the journal starts
//! again. One writer at a time across processes: every write holds an
//! exclusive lock on `PATH.lock`, and first reads the journal lines other
//! processes appended since its own last read; readers take a shared lock
//! for that catch-up. A process killed mid-write leaves at worst a torn
//! last journal line, which is ignored (its call never returned).
//!
//! Secret attributes (an initial password) are kept as a salted SHA-256,
//! never in the clear.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use prov_core::{
    Account, AccountId, BatchOutcome, Capabilities, Connector, CreateAccount, Entitlement,
    EntitlementId, Error, ErrorKind, ListRequest, MemberFailure, MembershipChange, Operation, Page,
    Result, UpdateAccount, Value, async_trait,
};
use serde::{Deserialize, Serialize};

/// Most accounts per grant or revoke (bigger batches are split by the engine).
const MAX_BATCH: usize = 1000;
/// Most items per page.
const MAX_PAGE: usize = 1000;
/// The journal is folded into a new snapshot past this many lines and
/// past the snapshot's own number of accounts.
const COMPACT_AFTER: u64 = 10_000;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Snapshot {
    generation: u64,
    next_id: u64,
    accounts: BTreeMap<AccountId, Account>,
    entitlements: BTreeSet<EntitlementId>,
}

/// One journal line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Line {
    /// The journal's first line: the snapshot generation it follows.
    Follows(u64),
    /// An account as it now is.
    Put { next_id: u64, account: Account },
    /// An account deleted.
    Delete(AccountId),
    /// An entitlement the target offers.
    Offer(EntitlementId),
}

#[derive(Debug, Default)]
struct State {
    snap: Snapshot,
    /// ASCII-lowercased login -> ids (logins compare ignoring case, as a
    /// directory compares them).
    logins: HashMap<String, BTreeSet<AccountId>>,
    /// Whether the snapshot has been read.
    loaded: bool,
    /// The snapshot file as read (inode, length, modification time): a
    /// compaction by another process renames a new one over it.
    snap_file: Option<(u64, u64, std::time::SystemTime)>,
    /// Whether the journal follows this snapshot (else the next write
    /// starts one).
    journal_ok: bool,
    /// Journal bytes applied (from its start).
    offset: u64,
    /// Journal lines applied.
    lines: u64,
}

impl State {
    fn reindex(&mut self) {
        self.logins.clear();
        for a in self.snap.accounts.values() {
            self.logins
                .entry(a.login.to_ascii_lowercase())
                .or_default()
                .insert(a.id.clone());
        }
    }

    fn put(&mut self, account: Account) {
        if let Some(old) = self.snap.accounts.get(&account.id) {
            let key = old.login.to_ascii_lowercase();
            if let Some(ids) = self.logins.get_mut(&key) {
                ids.remove(&account.id);
            }
        }
        self.logins
            .entry(account.login.to_ascii_lowercase())
            .or_default()
            .insert(account.id.clone());
        self.snap.accounts.insert(account.id.clone(), account);
    }

    fn delete(&mut self, id: &AccountId) -> bool {
        let Some(old) = self.snap.accounts.remove(id) else {
            return false;
        };
        if let Some(ids) = self.logins.get_mut(&old.login.to_ascii_lowercase()) {
            ids.remove(id);
        }
        true
    }

    fn apply(&mut self, line: Line) {
        match line {
            Line::Follows(_) => {}
            Line::Put { next_id, account } => {
                self.snap.next_id = self.snap.next_id.max(next_id);
                self.put(account);
            }
            Line::Delete(id) => {
                self.delete(&id);
            }
            Line::Offer(e) => {
                self.snap.entitlements.insert(e);
            }
        }
    }

    fn taken(&self, login: &str, except: Option<&AccountId>) -> bool {
        self.logins
            .get(&login.to_ascii_lowercase())
            .is_some_and(|ids| ids.iter().any(|id| Some(id) != except))
    }
}

/// A target kept in files (see the module docs).
#[derive(Debug)]
pub(crate) struct FileTarget {
    path: PathBuf,
    journal: PathBuf,
    lock: PathBuf,
    state: Mutex<State>,
    /// Journal lines after which a write compacts ([`COMPACT_AFTER`]).
    compact_after: u64,
}

fn io(what: &str, path: &Path, e: &std::io::Error) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!("file target: cannot {what} {}: {e}", path.display()),
    )
}

/// Opens `path` for writing, owner-only: a target's files hold accounts.
fn private(path: &Path, append: bool) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = OpenOptions::new();
    o.create(true).mode(0o600);
    if append {
        o.append(true).read(true);
    } else {
        o.write(true).truncate(true);
    }
    o.open(path)
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => File::open(dir)?.sync_all(),
        None => File::open(".")?.sync_all(),
    }
}

/// A secret as the file keeps it: `sha256:SALT:DIGEST`, never the value.
fn sealed(value: &Value, salt: &str) -> Value {
    use sha2::{Digest, Sha256};
    let text = value.to_string();
    let digest = Sha256::digest(format!("{salt}:{text}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Value::String(format!("sha256:{salt}:{hex}"))
}

/// A `file` target's settings in the config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileSettings {
    /// The state file, relative to the config (its journal and lock file
    /// go beside it: `PATH.journal`, `PATH.lock`). Required.
    pub(crate) path: PathBuf,
}

impl FileTarget {
    /// The target kept in `path` (and `path.journal`, `path.lock`), offering
    /// `entitlements` besides those it has; made if missing.
    pub(crate) fn open(
        path: &Path,
        entitlements: impl IntoIterator<Item = EntitlementId>,
    ) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io("make the directory of", path, &e))?;
        }
        let with = |ext: &str| {
            let mut p = path.as_os_str().to_owned();
            p.push(ext);
            PathBuf::from(p)
        };
        let target = FileTarget {
            path: path.to_path_buf(),
            journal: with(".journal"),
            lock: with(".lock"),
            state: Mutex::new(State::default()),
            compact_after: COMPACT_AFTER,
        };
        let wanted: Vec<EntitlementId> = entitlements.into_iter().collect();
        target.write(|state| {
            let offers = wanted
                .iter()
                .filter(|e| !state.snap.entitlements.contains(*e))
                .map(|e| Line::Offer(e.clone()))
                .collect();
            Ok(((), offers))
        })?;
        Ok(target)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the cross-process lock (exclusive to write, shared to read).
    fn lock_file(&self, exclusive: bool) -> Result<File> {
        let f = private(&self.lock, true).map_err(|e| io("open", &self.lock, &e))?;
        if exclusive { f.lock() } else { f.lock_shared() }
            .map_err(|e| io("lock", &self.lock, &e))?;
        Ok(f)
    }

    /// The snapshot file's identity, or `None` when there is none yet.
    fn snap_file(&self) -> Result<Option<(u64, u64, std::time::SystemTime)>> {
        use std::os::unix::fs::MetadataExt;
        match std::fs::metadata(&self.path) {
            Ok(m) => Ok(Some((
                m.ino(),
                m.len(),
                m.modified().map_err(|e| io("read", &self.path, &e))?,
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &self.path, &e)),
        }
    }

    /// Reads the snapshot again.
    fn reload(
        &self,
        state: &mut State,
        snap_file: Option<(u64, u64, std::time::SystemTime)>,
    ) -> Result<()> {
        *state = State::default();
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                state.snap = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::new(
                        ErrorKind::Config,
                        format!("{} is not a file target's state: {e}", self.path.display()),
                    )
                })?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("read", &self.path, &e)),
        }
        state.reindex();
        state.loaded = true;
        state.snap_file = snap_file;
        Ok(())
    }

    /// Brings `state` up to the files: the snapshot again when it is new
    /// to us (first use, or another process compacted), then the journal
    /// lines appended since the last read.
    fn catch_up(&self, state: &mut State) -> Result<()> {
        let snap_file = self.snap_file()?;
        if !state.loaded || state.snap_file != snap_file {
            self.reload(state, snap_file)?;
        }
        let mut journal = match File::open(&self.journal) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                state.journal_ok = false;
                return Ok(());
            }
            Err(e) => return Err(io("read", &self.journal, &e)),
        };
        let len = journal
            .metadata()
            .map_err(|e| io("read", &self.journal, &e))?
            .len();
        let mut first = String::new();
        BufReader::new(&journal)
            .read_line(&mut first)
            .map_err(|e| io("read", &self.journal, &e))?;
        let follows = match serde_json::from_str::<Line>(first.trim_end()) {
            Ok(Line::Follows(g)) => Some(g),
            _ => None,
        };
        if state.journal_ok && (follows != Some(state.snap.generation) || len < state.offset) {
            // Started again under us: read everything again.
            self.reload(state, snap_file)?;
        }
        if !state.journal_ok {
            // A journal of an older generation is already in the snapshot
            // (a compaction stopped between its two renames): the next
            // write starts a new one.
            if follows != Some(state.snap.generation) {
                return Ok(());
            }
            state.journal_ok = true;
            state.offset = 0;
            state.lines = 0;
        }
        journal
            .seek(SeekFrom::Start(state.offset))
            .map_err(|e| io("read", &self.journal, &e))?;
        let mut reader = BufReader::new(journal);
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader
                .read_line(&mut line)
                .map_err(|e| io("read", &self.journal, &e))?;
            // Nothing more, or a torn last line (its writer died before
            // its call returned): stop before it.
            if n == 0 || !line.ends_with('\n') {
                break;
            }
            let parsed: Line = serde_json::from_str(line.trim_end()).map_err(|e| {
                Error::new(
                    ErrorKind::Config,
                    format!(
                        "{} has a line that is not a change: {e}",
                        self.journal.display()
                    ),
                )
            })?;
            state.apply(parsed);
            state.offset += n as u64;
            state.lines += 1;
        }
        Ok(())
    }

    /// Runs `read` on the state as the files have it.
    fn read<T>(&self, read: impl FnOnce(&State) -> T) -> Result<T> {
        let lock = self.lock_file(false)?;
        let mut state = self.state();
        self.catch_up(&mut state)?;
        drop(lock);
        Ok(read(&state))
    }

    /// Runs `change` under the exclusive lock on the caught-up state; the
    /// journal lines it returns are appended (one fsync) and applied.
    fn write<T>(&self, change: impl FnOnce(&State) -> Result<(T, Vec<Line>)>) -> Result<T> {
        let lock = self.lock_file(true)?;
        let mut state = self.state();
        self.catch_up(&mut state)?;
        let (out, lines) = change(&state)?;
        if !lines.is_empty() {
            if !state.journal_ok {
                self.new_journal(&state)?;
                state.offset = self.journal_len()?;
                state.lines = 0;
                state.journal_ok = true;
            }
            let mut text = String::new();
            for l in &lines {
                text.push_str(&serde_json::to_string(l).map_err(|e| {
                    Error::new(
                        ErrorKind::Unexpected,
                        format!("cannot encode a change: {e}"),
                    )
                })?);
                text.push('\n');
            }
            let mut f = private(&self.journal, true).map_err(|e| io("write", &self.journal, &e))?;
            f.write_all(text.as_bytes())
                .and_then(|()| f.sync_data())
                .map_err(|e| io("write", &self.journal, &e))?;
            state.offset += text.len() as u64;
            state.lines += lines.len() as u64;
            for l in lines {
                state.apply(l);
            }
            if state.lines > self.compact_after && state.lines > state.snap.accounts.len() as u64 {
                self.compact(&mut state)?;
            }
        }
        drop(state);
        drop(lock);
        Ok(out)
    }

    fn journal_len(&self) -> Result<u64> {
        std::fs::metadata(&self.journal)
            .map(|m| m.len())
            .map_err(|e| io("read", &self.journal, &e))
    }

    /// Starts the journal again after the snapshot of `state`.
    fn new_journal(&self, state: &State) -> Result<()> {
        let tmp = self.journal.with_extension("journal.tmp");
        let head = serde_json::to_string(&Line::Follows(state.snap.generation))
            .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?;
        let mut f = private(&tmp, false).map_err(|e| io("write", &tmp, &e))?;
        f.write_all(format!("{head}\n").as_bytes())
            .and_then(|()| f.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &self.journal))
            .and_then(|()| sync_dir(&self.journal))
            .map_err(|e| io("write", &self.journal, &e))
    }

    /// Folds the journal into a new snapshot.
    fn compact(&self, state: &mut State) -> Result<()> {
        state.snap.generation += 1;
        let bytes = serde_json::to_vec(&state.snap)
            .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?;
        let tmp = self.path.with_extension("tmp");
        let mut f = private(&tmp, false).map_err(|e| io("write", &tmp, &e))?;
        f.write_all(&bytes)
            .and_then(|()| f.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .and_then(|()| sync_dir(&self.path))
            .map_err(|e| io("write", &self.path, &e))?;
        state.snap_file = self.snap_file()?;
        self.new_journal(state)?;
        state.offset = self.journal_len()?;
        state.lines = 0;
        state.journal_ok = true;
        Ok(())
    }

    fn membership(&self, req: &MembershipChange, add: bool) -> Result<BatchOutcome> {
        let op = if add {
            Operation::Grant
        } else {
            Operation::Revoke
        };
        self.write(|state| {
            if !state.snap.entitlements.contains(&req.entitlement) {
                return Err(
                    Error::not_found(format!("no entitlement {}", req.entitlement))
                        .with_operation(op),
                );
            }
            let mut outcome = BatchOutcome::ok();
            let mut lines = Vec::new();
            for id in &req.accounts {
                match state.snap.accounts.get(id) {
                    None => outcome.failures.push(MemberFailure::new(
                        id.clone(),
                        Error::not_found(format!("no account {id}")).with_operation(op),
                    )),
                    Some(a) if a.entitlements.contains(&req.entitlement) == add => {}
                    Some(a) => {
                        let mut a = a.clone();
                        if add {
                            a.entitlements.insert(req.entitlement.clone());
                        } else {
                            a.entitlements.remove(&req.entitlement);
                        }
                        lines.push(Line::Put {
                            next_id: state.snap.next_id,
                            account: a,
                        });
                    }
                }
            }
            Ok((outcome, lines))
        })
    }
}

fn page<T: Clone>(items: impl Iterator<Item = (String, T)>, req: &ListRequest) -> Page<T> {
    let size = req.page_size.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    let mut out = Vec::with_capacity(size.min(64));
    let mut last = None;
    let mut more = false;
    for (key, item) in items {
        if req
            .cursor
            .as_ref()
            .is_some_and(|c| key.as_str() <= c.as_str())
        {
            continue;
        }
        if out.len() == size {
            more = true;
            break;
        }
        last = Some(key);
        out.push(item);
    }
    Page::new(out, if more { last } else { None })
}

#[async_trait]
impl Connector for FileTarget {
    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::full(MAX_BATCH);
        caps.max_page_size = MAX_PAGE;
        caps.create_marker = true;
        caps.login_case_insensitive = true;
        // No change feed: a full listing is cheap from memory.
        caps.changes_since = false;
        caps
    }

    async fn check(&self) -> Result<()> {
        self.read(|_| ())
            .map_err(|e| e.with_operation(Operation::Check))
    }

    async fn list_accounts(&self, req: ListRequest) -> Result<Page<Account>> {
        let op = Operation::ListAccounts;
        if let Some((attr, _)) = &req.filter
            && attr != "login"
        {
            return Err(Error::invalid_input(
                attr.clone(),
                format!("cannot filter on `{attr}`; only on `login`"),
            )
            .with_operation(op));
        }
        self.read(|state| {
            let key = |a: &Account| (a.id.as_str().to_owned(), a.clone());
            match &req.filter {
                Some((_, login)) => page(
                    state
                        .logins
                        .get(&login.to_ascii_lowercase())
                        .into_iter()
                        .flatten()
                        .filter_map(|id| state.snap.accounts.get(id))
                        .map(key),
                    &req,
                ),
                None => page(state.snap.accounts.values().map(key), &req),
            }
        })
        .map_err(|e| e.with_operation(op))
    }

    async fn get_account(&self, id: &AccountId) -> Result<Account> {
        let op = Operation::GetAccount;
        self.read(|state| state.snap.accounts.get(id).cloned())
            .map_err(|e| e.with_operation(op))?
            .ok_or_else(|| Error::not_found(format!("no account {id}")).with_operation(op))
    }

    async fn create_account(&self, req: CreateAccount) -> Result<Account> {
        let op = Operation::CreateAccount;
        if req.login.trim().is_empty() {
            return Err(Error::invalid_input("login", "the login is empty").with_operation(op));
        }
        let acct = self
            .write(|state| {
                if state.taken(&req.login, None) {
                    return Err(
                        Error::already_exists(format!("login {} is taken", req.login))
                            .with_operation(op),
                    );
                }
                let next_id = state.snap.next_id + 1;
                let id = AccountId::new(format!("file-{next_id:08}"));
                let mut acct = Account::new(id.clone(), req.login.clone());
                acct.attributes = req.attributes.clone();
                for (k, v) in &req.secrets {
                    acct.attributes
                        .insert(k.clone(), sealed(v.expose(), id.as_str()));
                }
                acct.enabled = req.enabled;
                acct.marker.clone_from(&req.marker);
                let line = Line::Put {
                    next_id,
                    account: acct.clone(),
                };
                Ok((acct.clone(), vec![line]))
            })
            .map_err(|e| e.with_operation(op))?;
        Ok(acct)
    }

    async fn update_account(&self, req: UpdateAccount) -> Result<AccountId> {
        let op = Operation::UpdateAccount;
        self.write(|state| {
            if let Some(login) = &req.delta.login
                && state.taken(login, Some(&req.id))
            {
                return Err(
                    Error::already_exists(format!("login {login} is taken")).with_operation(op)
                );
            }
            let Some(old) = state.snap.accounts.get(&req.id) else {
                return Err(Error::not_found(format!("no account {}", req.id)).with_operation(op));
            };
            let mut acct = old.clone();
            for (k, v) in &req.delta.set {
                acct.attributes.insert(k.clone(), v.clone());
            }
            for (k, v) in &req.secrets {
                acct.attributes
                    .insert(k.clone(), sealed(v.expose(), req.id.as_str()));
            }
            for k in &req.delta.remove {
                acct.attributes.remove(k);
            }
            if let Some(login) = &req.delta.login {
                acct.login.clone_from(login);
            }
            let line = Line::Put {
                next_id: state.snap.next_id,
                account: acct,
            };
            Ok(((), vec![line]))
        })?;
        Ok(req.id)
    }

    async fn set_enabled(&self, id: &AccountId, enabled: bool) -> Result<()> {
        let op = Operation::SetEnabled;
        self.write(|state| {
            let Some(old) = state.snap.accounts.get(id) else {
                return Err(Error::not_found(format!("no account {id}")).with_operation(op));
            };
            if old.enabled == enabled {
                return Ok(((), Vec::new()));
            }
            let mut acct = old.clone();
            acct.enabled = enabled;
            Ok((
                (),
                vec![Line::Put {
                    next_id: state.snap.next_id,
                    account: acct,
                }],
            ))
        })
    }

    async fn delete_account(&self, id: &AccountId) -> Result<()> {
        let op = Operation::DeleteAccount;
        self.write(|state| {
            if !state.snap.accounts.contains_key(id) {
                return Err(Error::not_found(format!("no account {id}")).with_operation(op));
            }
            Ok(((), vec![Line::Delete(id.clone())]))
        })
    }

    async fn list_entitlements(&self, req: ListRequest) -> Result<Page<Entitlement>> {
        self.read(|state| {
            page(
                state
                    .snap
                    .entitlements
                    .iter()
                    .map(|e| (e.as_str().to_owned(), Entitlement::group(e.clone()))),
                &req,
            )
        })
        .map_err(|e| e.with_operation(Operation::ListEntitlements))
    }

    async fn list_members(
        &self,
        entitlement: &EntitlementId,
        req: ListRequest,
    ) -> Result<Page<AccountId>> {
        let op = Operation::ListMembers;
        self.read(|state| {
            if !state.snap.entitlements.contains(entitlement) {
                return Err(
                    Error::not_found(format!("no entitlement {entitlement}")).with_operation(op)
                );
            }
            Ok(page(
                state
                    .snap
                    .accounts
                    .values()
                    .filter(|a| a.entitlements.contains(entitlement))
                    .map(|a| (a.id.as_str().to_owned(), a.id.clone())),
                &req,
            ))
        })
        .map_err(|e| e.with_operation(op))?
    }

    async fn grant(&self, req: MembershipChange) -> Result<BatchOutcome> {
        self.membership(&req, true)
    }

    async fn revoke(&self, req: MembershipChange) -> Result<BatchOutcome> {
        self.membership(&req, false)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use prov_core::{ConnectorExt, SecretAttributes};
    use prov_testkit::conformance::{self, Namespace, SuiteOptions};

    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "prov-file-target-{tag}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn ents(names: &[&str]) -> Vec<EntitlementId> {
        names.iter().map(|n| EntitlementId::new(*n)).collect()
    }

    #[tokio::test]
    async fn the_file_target_passes_the_conformance_suite() {
        let d = dir("suite");
        let target = FileTarget::open(&d.join("t.json"), ents(&["staff", "admins"])).unwrap();
        let report =
            conformance::run_all(&target, &Namespace::new("file"), &SuiteOptions::default()).await;
        assert!(report.is_success(), "{report}");
        // Again, on the files it left, through a second instance (another process).
        let again = FileTarget::open(&d.join("t.json"), ents(&[])).unwrap();
        let report =
            conformance::run_all(&again, &Namespace::new("file2"), &SuiteOptions::default()).await;
        assert!(report.is_success(), "{report}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// Two instances on one path (two processes) see each other's writes,
    /// through compactions, and a torn last line is ignored.
    #[tokio::test]
    async fn writers_take_turns_and_readers_catch_up() {
        let d = dir("turns");
        let path = d.join("t.json");
        let mut a = FileTarget::open(&path, ents(&["g"])).unwrap();
        a.compact_after = 5;
        let b = FileTarget::open(&path, ents(&[])).unwrap();
        let mut ids = Vec::new();
        for i in 0..12 {
            let acct = a
                .create_account(CreateAccount::new(format!("u{i}"), Default::default()))
                .await
                .unwrap();
            ids.push(acct.id);
        }
        assert!(
            std::fs::metadata(&path).is_ok(),
            "compacted into a snapshot"
        );
        // b catches up across the compactions.
        assert_eq!(b.list_all_accounts().await.unwrap().len(), 12);
        // b writes; a sees it.
        b.grant(MembershipChange::new(EntitlementId::new("g"), ids.clone()))
            .await
            .unwrap();
        assert!(
            a.list_all_accounts()
                .await
                .unwrap()
                .iter()
                .all(|x| x.entitlements.contains(&EntitlementId::new("g")))
        );
        // b's login index follows a's rename.
        a.update_account(UpdateAccount::new(
            ids[0].clone(),
            prov_core::AttributeDelta::default().rename("renamed"),
        ))
        .await
        .unwrap();
        assert_eq!(b.accounts_with_login("RENAMED").await.unwrap().len(), 1);
        assert!(b.accounts_with_login("u0").await.unwrap().is_empty());
        // A torn last line (a writer killed mid-append) is not read.
        let mut journal = path.as_os_str().to_owned();
        journal.push(".journal");
        let mut f = OpenOptions::new().append(true).open(&journal).unwrap();
        f.write_all(b"{\"delete\":\"file-0000").unwrap();
        let fresh = FileTarget::open(&path, ents(&[])).unwrap();
        assert_eq!(fresh.list_all_accounts().await.unwrap().len(), 12);
        // Files are the owner's only.
        use std::os::unix::fs::PermissionsExt;
        for p in [&path, &PathBuf::from(journal)] {
            assert_eq!(
                std::fs::metadata(p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[tokio::test]
    async fn a_secret_is_kept_hashed() {
        let d = dir("secret");
        let path = d.join("t.json");
        let t = FileTarget::open(&path, ents(&[])).unwrap();
        let mut secrets = SecretAttributes::new();
        secrets.insert(
            "password".to_owned(),
            prov_core::SecretValue::new(Value::String("Welcome-1".to_owned())),
        );
        let mut req = CreateAccount::new("ada", Default::default());
        req.secrets = secrets;
        let acct = t.create_account(req).await.unwrap();
        let mut journal = path.as_os_str().to_owned();
        journal.push(".journal");
        let text = std::fs::read_to_string(journal).unwrap();
        assert!(
            !text.contains("Welcome-1") && text.contains("sha256:"),
            "{text}"
        );
        assert!(
            acct.attributes["password"]
                .to_string()
                .starts_with("sha256:")
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
