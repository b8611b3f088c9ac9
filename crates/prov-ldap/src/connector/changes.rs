//! Incremental changes (`changes_since`), deletions included: from
//! OpenLDAP's accesslog database, or from Active Directory's update
//! sequence numbers and its deleted objects.
//!
//! Each call reports every account touched since the token once, in the
//! order of its last change: `Upserted` with its state now, or `Deleted`
//! (an account renamed is `Deleted` under its old DN where the log says
//! so, and `Upserted` under its new one). At most [`MAX_CHANGES`]
//! changes (log records on OpenLDAP) are read per call; `more` says when
//! the caller should call again at once.

use super::*;
use crate::config::ChangeLog;

/// The most log records (OpenLDAP) or changed objects (AD) one call reads.
pub(super) const MAX_CHANGES: usize = 1000;

/// A token's prefixes: which log it belongs to.
const LOG_TOKEN: &str = "log:";
const USN_TOKEN: &str = "usn:";

/// What happened to one account DN, by the log's order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// Added, modified or renamed to: report its state now.
    Touched,
    /// Deleted, or renamed away from.
    Gone,
}

fn bad_token(op: Operation, token: &str, why: &str) -> Error {
    Error::invalid_input(
        "token",
        format!("`{token}` is not a token this connector gave: {why}"),
    )
    .with_operation(op)
}

impl Inner {
    pub(super) async fn changes_since(&self, token: Option<&str>) -> Result<ChangeSet> {
        let op = Operation::ChangesSince;
        match &self.cfg.changes {
            ChangeLog::None => Err(Error::unsupported(op)),
            ChangeLog::AccessLog { base } => self.log_changes(op, base, token).await,
            ChangeLog::Usn => self.usn_changes(op, token).await,
        }
    }

    /// The log records (the log database's children) matching `filter`.
    async fn search_log(
        &self,
        op: Operation,
        log: &str,
        filter: &str,
        attrs: &[String],
    ) -> Result<Vec<Entry>> {
        let s = Search {
            base: log,
            scope: Scope::OneLevel,
            filter,
            attrs,
            show_deleted: false,
        };
        self.conn.search_all(op, s, self.cfg.page_size).await
    }

    /// Whether `dn` is under one of the account bases.
    fn in_bases(&self, dn: &str) -> bool {
        Dn::parse(dn).is_ok_and(|d| self.bases.iter().any(|(_, b)| d.is_within(b)))
    }

    /// The accounts at `dns` now, in that order: `Upserted` with the
    /// state now, `Deleted` when no entry is there any more, `None` where
    /// the entry there is not an account.
    async fn states_now(&self, op: Operation, dns: &[String]) -> Result<Vec<Option<Change>>> {
        if dns.is_empty() {
            return Ok(Vec::new());
        }
        self.load_primary_groups(op).await?;
        let index = if self.cfg.groups.member_of.is_none() {
            Some(self.member_index(op).await?)
        } else {
            None
        };
        let filter = &self.cfg.accounts.filter;
        let attrs = &self.read_attrs;
        let index = index.as_deref();
        let reads = dns.iter().map(|dn| async move {
            match self.conn.read(op, dn, filter, attrs).await? {
                Some(e) => Ok(Some(Change::Upserted(self.to_account(op, &e, index)?))),
                None if self.exists(op, dn).await? => Ok(None),
                None => Ok(Some(Change::Deleted(AccountId::new(dn.clone())))),
            }
        });
        join_all(reads).await.into_iter().collect()
    }

    /// OpenLDAP: the accesslog database's write records after the token.
    async fn log_changes(
        &self,
        op: Operation,
        log: &str,
        token: Option<&str>,
    ) -> Result<ChangeSet> {
        let Some(token) = token else {
            return Ok(ChangeSet::new(
                Vec::new(),
                format!("{LOG_TOKEN}{}", self.newest_log_record(op, log).await?),
                false,
            ));
        };
        let since = token
            .strip_prefix(LOG_TOKEN)
            .filter(|t| {
                t.len() >= 15
                    && t.ends_with('Z')
                    && t.bytes()
                        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'Z')
            })
            .ok_or_else(|| bad_token(op, token, "an accesslog token is `log:` and a reqStart"))?;
        let member_attr = match &self.cfg.groups.members {
            MemberStyle::Dn(a) => Some(a.as_str()),
            MemberStyle::Login(_) => None,
        };
        let filter = format!(
            "(&(objectClass=auditWriteObject)(reqResult=0)(reqStart>={}))",
            crate::dn::escape_filter_value(since)
        );
        let attrs: Vec<String> = [
            "reqStart",
            "reqType",
            "reqDN",
            "reqNewRDN",
            "reqNewSuperior",
            "reqNewDN",
            "reqMod",
            "reqOld",
        ]
        .map(str::to_owned)
        .to_vec();
        let mut records: Vec<(String, Entry)> = self
            .search_log(op, log, &filter, &attrs)
            .await?
            .into_iter()
            .filter_map(|e| e.first("reqStart").map(|t| (t, e)))
            .filter(|(t, _)| t.as_str() > since)
            .collect();
        records.sort_by(|a, b| a.0.cmp(&b.0));
        let more = records.len() > MAX_CHANGES;
        records.truncate(MAX_CHANGES);
        let next = records
            .last()
            .map_or_else(|| since.to_owned(), |(t, _)| t.clone());
        // Each DN's last event, in the order of the last events.
        let mut seen: Vec<(String, Seen)> = Vec::new();
        let mut note = |dn: &str, what: Seen| {
            if !self.in_bases(dn) {
                return;
            }
            let key = canonical(dn);
            seen.retain(|(d, _)| !d.eq_ignore_ascii_case(&key));
            seen.push((key, what));
        };
        for (_, e) in &records {
            let Some(dn) = e.first("reqDN") else { continue };
            match e.first("reqType").as_deref() {
                Some("add" | "modify") => note(&dn, Seen::Touched),
                Some("delete") => note(&dn, Seen::Gone),
                Some("modrdn") => {
                    note(&dn, Seen::Gone);
                    if let Some(new) = new_dn(e, &dn) {
                        note(&new, Seen::Touched);
                    }
                }
                _ => {}
            }
            // A group's members changed: so did those accounts' groups.
            if let Some(attr) = member_attr {
                for v in e.values("reqMod").iter().chain(e.values("reqOld")) {
                    if let Some(member) = member_value(v, attr) {
                        note(member, Seen::Touched);
                    }
                }
            }
        }
        let touched: Vec<String> = seen
            .iter()
            .filter(|(_, what)| *what == Seen::Touched)
            .map(|(dn, _)| dn.clone())
            .collect();
        let mut now = self.states_now(op, &touched).await?.into_iter();
        let mut changes = Vec::with_capacity(seen.len());
        for (dn, what) in seen {
            match what {
                Seen::Gone => changes.push(Change::Deleted(AccountId::new(dn))),
                Seen::Touched => changes.extend(now.next().flatten()),
            }
        }
        Ok(ChangeSet::new(changes, format!("{LOG_TOKEN}{next}"), more))
    }

    /// The newest write record's `reqStart` (the log's own clock), or the
    /// earliest time when the log is empty. Records since an hour before
    /// this host's time are read first; all of them only when there are
    /// none (the newest record is among them whatever the clocks say).
    async fn newest_log_record(&self, op: Operation, log: &str) -> Result<String> {
        let now = DateTime::<Utc>::from(std::time::SystemTime::now());
        let recent = now
            .checked_sub_signed(chrono::Duration::hours(1))
            .unwrap_or(now)
            .format("%Y%m%d%H%M%SZ")
            .to_string();
        let attrs = vec!["reqStart".to_owned()];
        for filter in [
            format!("(&(objectClass=auditWriteObject)(reqStart>={recent}))"),
            "(objectClass=auditWriteObject)".to_owned(),
        ] {
            let newest = self
                .search_log(op, log, &filter, &attrs)
                .await?
                .iter()
                .filter_map(|e| e.first("reqStart"))
                .max();
            if let Some(t) = newest {
                return Ok(t);
            }
        }
        // Nothing logged yet: everything from now on is after this.
        Ok("19700101000000Z".to_owned())
    }

    /// AD: objects whose `uSNChanged` is past the token, up to the
    /// directory's `highestCommittedUSN` read first (so that nothing
    /// committed during the call is skipped or reported twice).
    async fn usn_changes(&self, op: Operation, token: Option<&str>) -> Result<ChangeSet> {
        let attrs = ["highestCommittedUSN", "defaultNamingContext", "dnsHostName"]
            .map(str::to_owned)
            .to_vec();
        let dse = self
            .conn
            .read(op, "", "(objectClass=*)", &attrs)
            .await?
            .ok_or_else(|| {
                Error::new(ErrorKind::Unexpected, "the directory has no root DSE")
                    .with_operation(op)
            })?;
        let high: u64 = dse
            .first("highestCommittedUSN")
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Unexpected,
                    "the root DSE has no highestCommittedUSN: is this Active Directory?",
                )
                .with_operation(op)
            })?;
        let host = dse.first("dnsHostName").unwrap_or_default().to_lowercase();
        let token_of = |usn: u64| format!("{USN_TOKEN}{usn}@{host}");
        let Some(token) = token else {
            return Ok(ChangeSet::new(Vec::new(), token_of(high), false));
        };
        let (since, at) = token
            .strip_prefix(USN_TOKEN)
            .and_then(|t| t.split_once('@'))
            .and_then(|(n, h)| Some((n.parse::<u64>().ok()?, h)))
            .ok_or_else(|| bad_token(op, token, "an AD token is `usn:N@HOST`"))?;
        if at != host {
            return Err(bad_token(
                op,
                token,
                &format!(
                    "it was taken on {at} and this is {host}; update sequence numbers belong \
                     to one domain controller, so take a new token here (after a full listing)"
                ),
            ));
        }
        if since > high {
            return Err(bad_token(
                op,
                token,
                &format!(
                    "its USN {since} is past {host}'s highestCommittedUSN {high} (was the \
                     domain controller restored from a backup?): take a new token after a full \
                     listing"
                ),
            ));
        }
        let Some(from) = since.checked_add(1) else {
            return Ok(ChangeSet::new(Vec::new(), token_of(since), false));
        };
        let window = format!("(uSNChanged>={from})(uSNChanged<={high})");
        self.load_primary_groups(op).await?;
        let mut attrs = self.read_attrs.clone();
        attrs.push("uSNChanged".to_owned());
        let live = format!("(&{}{window})", self.cfg.accounts.filter);
        let usn = |e: &Entry| {
            e.first("uSNChanged")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(high)
        };
        let mut found: Vec<(u64, Change)> = Vec::new();
        for e in self.search_accounts(op, &live, &attrs).await? {
            found.push((usn(&e), Change::Upserted(self.to_account(op, &e, None)?)));
        }
        // Tombstones keep their last parent and their name (the RDN value,
        // then a newline and "DEL:" and the GUID) but lose objectCategory,
        // so the accounts filter cannot be asked of them.
        if let Some(nc) = dse.first("defaultNamingContext") {
            let deleted = format!("CN=Deleted Objects,{nc}");
            let filter =
                format!("(&(isDeleted=TRUE)(objectClass=user)(!(objectClass=computer)){window})");
            let attrs = ["lastKnownParent", "msDS-LastKnownRDN", "name", "uSNChanged"]
                .map(str::to_owned)
                .to_vec();
            let s = Search {
                base: &deleted,
                scope: Scope::Subtree,
                filter: &filter,
                attrs: &attrs,
                show_deleted: true,
            };
            for e in self.conn.search_all(op, s, self.cfg.page_size).await? {
                let (Some(parent), Some(name)) = (
                    e.first("lastKnownParent"),
                    e.first("msDS-LastKnownRDN").or_else(|| {
                        e.first("name")
                            .and_then(|n| n.split('\n').next().map(str::to_owned))
                    }),
                ) else {
                    continue;
                };
                let dn = child(&self.cfg.accounts.rdn_attribute, &name, &parent);
                if self.in_bases(&dn) {
                    found.push((usn(&e), Change::Deleted(AccountId::new(canonical(&dn)))));
                }
            }
        }
        found.sort_by_key(|(u, _)| *u);
        let more = found.len() > MAX_CHANGES;
        found.truncate(MAX_CHANGES);
        let next = if more {
            found.last().map_or(high, |(u, _)| *u)
        } else {
            high
        };
        Ok(ChangeSet::new(
            found.into_iter().map(|(_, c)| c).collect(),
            token_of(next),
            more,
        ))
    }
}

/// The DN a modrdn record moved `dn` to: `reqNewDN` (OpenLDAP 2.5), else
/// the new RDN under the new superior or the old parent.
fn new_dn(e: &Entry, dn: &str) -> Option<String> {
    if let Some(new) = e.first("reqNewDN") {
        return Some(new);
    }
    let rdn = e.first("reqNewRDN")?;
    let parent = match e.first("reqNewSuperior") {
        Some(p) => p,
        None => dn.get(first_rdn_end(dn)? + 1..)?.to_owned(),
    };
    Some(format!("{rdn},{parent}"))
}

/// The member DN in a `reqMod` (`member:+ DN`, `member:- DN`, `member:=
/// DN`) or `reqOld` (`member: DN`) value for the member attribute `attr`.
fn member_value<'a>(v: &'a [u8], attr: &str) -> Option<&'a str> {
    let text = std::str::from_utf8(v).ok()?;
    let (name, rest) = text.split_once(':')?;
    if !name.eq_ignore_ascii_case(attr) {
        return None;
    }
    let rest = rest.strip_prefix(['+', '-', '=']).unwrap_or(rest);
    let value = rest.strip_prefix(' ')?;
    (!value.is_empty()).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_values_name_the_members_and_renames_their_new_dn() {
        assert_eq!(
            member_value(b"member:+ uid=a,ou=people,dc=x", "member"),
            Some("uid=a,ou=people,dc=x")
        );
        assert_eq!(
            member_value(b"Member:- uid=b,dc=x", "member"),
            Some("uid=b,dc=x")
        );
        assert_eq!(
            member_value(b"member: uid=c,dc=x", "member"),
            Some("uid=c,dc=x")
        );
        assert_eq!(member_value(b"member:-", "member"), None);
        assert_eq!(member_value(b"memberUid:+ a", "member"), None);
        assert_eq!(member_value(b"cn:+ a", "member"), None);
        let mut e = Entry::default();
        e.attrs
            .push(("reqNewRDN".to_owned(), vec![b"uid=b".to_vec()]));
        assert_eq!(
            new_dn(&e, "uid=a\\,x,ou=people,dc=x").as_deref(),
            Some("uid=b,ou=people,dc=x")
        );
        e.attrs
            .push(("reqNewSuperior".to_owned(), vec![b"ou=old,dc=x".to_vec()]));
        assert_eq!(
            new_dn(&e, "uid=a,ou=people,dc=x").as_deref(),
            Some("uid=b,ou=old,dc=x")
        );
    }
}
