//! Listings: accounts page by page (read ahead), entitlements, members, cursors.

use super::*;

impl Inner {
    /// The account filter, with an optional equality on a model attribute.
    pub(super) fn account_filter(
        &self,
        op: Operation,
        filter: Option<&(String, String)>,
    ) -> Result<String> {
        let base = &self.cfg.accounts.filter;
        let Some((attr, value)) = filter else {
            return Ok(base.clone());
        };
        let ldap_attr = if attr == "login" {
            self.cfg.accounts.login_attribute.as_str()
        } else if let Some(m) = self.cfg.accounts.attributes.get(attr) {
            m.ldap.as_str()
        } else {
            return Err(Error::invalid_input(
                "filter",
                format!("cannot filter on `{attr}`: it is not mapped to a directory attribute"),
            )
            .with_operation(op));
        };
        Ok(format!("(&{base}{})", equality(ldap_attr, value)))
    }

    pub(super) async fn read_account(&self, op: Operation, id: &AccountId) -> Result<Account> {
        self.account_dn(op, id)?;
        self.load_primary_groups(op).await?;
        let entry = self
            .conn
            .read(op, id.as_str(), &self.cfg.accounts.filter, &self.read_attrs)
            .await?
            .ok_or_else(|| not_found(op, id))?;
        if self.cfg.groups.member_of.is_some() {
            return self.to_account(op, &entry, None);
        }
        // No memberOf: ask the groups holding this one account.
        let g = &self.cfg.groups;
        let value = match &g.members {
            MemberStyle::Dn(_) => entry.dn.clone(),
            MemberStyle::Login(_) => entry
                .first(&self.cfg.accounts.login_attribute)
                .unwrap_or_default(),
        };
        let filter = format!("(&{}{})", g.filter, equality(g.members.attribute(), &value));
        let attrs = vec![g.name_attribute.clone()];
        let groups = self
            .search_groups(op, Scope::OneLevel, &filter, &attrs)
            .await?;
        let mut index = MemberIndex::new();
        let key = match &g.members {
            MemberStyle::Dn(_) => self.member_key(&entry.dn),
            MemberStyle::Login(_) => value.to_lowercase(),
        };
        let names: BTreeSet<EntitlementId> = groups
            .iter()
            .filter_map(|e| self.group_name_of(&e.dn))
            .collect();
        index.insert(key, names);
        self.to_account(op, &entry, Some(&index))
    }

    /// A page of accounts, reading the next one ahead.
    pub(super) async fn list_accounts_ahead(
        this: &Arc<Inner>,
        req: ListRequest,
    ) -> Result<Page<Account>> {
        let key_of = |cursor: Option<&String>| {
            (
                cursor.cloned().unwrap_or_default(),
                format!("{:?}", req.filter),
                req.page_size.unwrap_or(0),
            )
        };
        let ahead = {
            let key = key_of(req.cursor.as_ref());
            let mut pending = this
                .read_ahead
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            pending
                .iter()
                .position(|r| r.key == key)
                .map(|i| pending.remove(i).task)
        };
        let page = match ahead {
            Some(task) => match task.await {
                Ok(page) => page?,
                // Cancelled: read it now.
                Err(_) => this.list_accounts(req.clone()).await?,
            },
            None => this.list_accounts(req.clone()).await?,
        };
        if let Some(next) = &page.next {
            let mut next_req = req.clone();
            next_req.cursor = Some(next.clone());
            let key = key_of(Some(next));
            let inner = Arc::clone(this);
            let task = tokio::spawn(async move { inner.list_accounts(next_req).await });
            let mut pending = this
                .read_ahead
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            pending.push(ReadAhead { key, task });
            if pending.len() > READ_AHEAD {
                // More listings under way than are kept (or abandoned
                // ones): the oldest is dropped, and its cursor expires.
                pending.remove(0).task.abort();
            }
        }
        Ok(page)
    }

    /// Every entry matching `filter` under every account base.
    pub(super) async fn search_accounts(
        &self,
        op: Operation,
        filter: &str,
        attrs: &[String],
    ) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        for (base, _) in &self.bases {
            let s = Search {
                base,
                scope: Scope::Subtree,
                filter,
                attrs,
                show_deleted: false,
            };
            out.extend(self.conn.search_all(op, s, self.cfg.page_size).await?);
        }
        Ok(out)
    }

    /// The page size a request asks for, within the configured one.
    pub(super) fn page_size(&self, req: &ListRequest) -> usize {
        req.page_size
            .unwrap_or(self.cfg.page_size)
            .clamp(1, self.cfg.page_size)
    }

    /// A cursor this connector gave: `<base index>:<hex cookie>`.
    pub(super) fn cursor(op: Operation, req: &ListRequest) -> Result<(usize, Vec<u8>)> {
        match &req.cursor {
            None => Ok((0, Vec::new())),
            Some(c) => parse_cursor(c).ok_or_else(|| bad_cursor(op, c)),
        }
    }

    pub(super) async fn list_accounts(&self, req: ListRequest) -> Result<Page<Account>> {
        let op = Operation::ListAccounts;
        let filter = self.account_filter(op, req.filter.as_ref())?;
        self.load_primary_groups(op).await?;
        let (mut base_ix, mut cookie) = Self::cursor(op, &req)?;
        let size = self.page_size(&req);
        let search = |base| Search {
            base,
            scope: Scope::Subtree,
            filter: &filter,
            attrs: &self.read_attrs,
            show_deleted: false,
        };
        // Without memberOf, memberships come from reading every group once
        // per listing: read them while the first page is read.
        let mut first: Option<(Vec<Entry>, Option<Vec<u8>>)> = None;
        let index = if self.cfg.groups.member_of.is_some() {
            None
        } else {
            let mut slot = self.index.lock().await;
            match (&req.cursor, slot.as_ref()) {
                (Some(_), Some(ix)) => Some(Arc::clone(ix)),
                _ => {
                    let base = self.bases.get(base_ix).map(|(b, _)| b.as_str());
                    let page = async {
                        match base {
                            Some(b) => self
                                .conn
                                .search_page(op, search(b), size, cookie.clone())
                                .await
                                .map(Some),
                            None => Ok(None),
                        }
                    };
                    let (ix, page) = tokio::join!(self.member_index(op), page);
                    let ix = ix?;
                    first = page?;
                    *slot = Some(Arc::clone(&ix));
                    Some(ix)
                }
            }
        };
        // Empty pages are skipped here; a server that sends them for ever
        // (the same cookie again, or no end) is stopped by the guard.
        let mut guard = prov_core::PageGuard::new();
        loop {
            let Some((base, _)) = self.bases.get(base_ix) else {
                return Ok(Page::last(Vec::new()));
            };
            let (items, next) = match first.take() {
                Some((entries, next)) => (
                    entries
                        .iter()
                        .map(|e| self.to_account(op, e, index.as_deref()))
                        .collect::<Result<Vec<_>>>()?,
                    next,
                ),
                None => {
                    let convert = |e: Entry| self.to_account(op, &e, index.as_deref());
                    self.conn
                        .search_page_map(op, search(base), size, cookie, &convert)
                        .await?
                }
            };
            let cursor = match next {
                Some(c) => Some(format!("{base_ix}:{}", hex(&c))),
                None if base_ix + 1 < self.bases.len() => Some(format!("{}:", base_ix + 1)),
                None => None,
            };
            if items.is_empty()
                && let Some(next) = cursor.as_deref()
            {
                // An empty page (another base, or a server that pages oddly): go on.
                guard
                    .next(next, "listing accounts")
                    .map_err(|e| e.with_operation(op))?;
                let (b, c) = parse_cursor(next).unwrap_or((usize::MAX, Vec::new()));
                base_ix = b;
                cookie = c;
                continue;
            }
            return Ok(Page::new(items, cursor));
        }
    }

    pub(super) async fn get_account(&self, id: &AccountId) -> Result<Account> {
        self.read_account(Operation::GetAccount, id).await
    }

    pub(super) async fn list_entitlements(&self, req: ListRequest) -> Result<Page<Entitlement>> {
        let op = Operation::ListEntitlements;
        let g = &self.cfg.groups;
        let (_, cookie) = Self::cursor(op, &req)?;
        let size = self.page_size(&req);
        let attrs = vec![g.name_attribute.clone(), "description".to_owned()];
        let (entries, next) = self
            .conn
            .search_page(
                op,
                Search {
                    base: &g.base,
                    scope: Scope::OneLevel,
                    filter: &g.filter,
                    attrs: &attrs,
                    show_deleted: false,
                },
                size,
                cookie,
            )
            .await?;
        let items = entries
            .iter()
            .filter_map(|e| {
                let mut ent = Entitlement::group(self.group_name_of(&e.dn)?);
                ent.display_name = e.first("description");
                Some(ent)
            })
            .collect();
        Ok(Page::new(items, next.map(|c| format!("0:{}", hex(&c)))))
    }

    pub(super) async fn list_members(
        &self,
        entitlement: &EntitlementId,
        req: ListRequest,
    ) -> Result<Page<AccountId>> {
        let op = Operation::ListMembers;
        let size = self.page_size(&req);
        // Later pages come from the member list the first page read: one
        // read of the group per listing, and a group changing meanwhile
        // neither skips nor repeats anyone.
        if let Some(c) = &req.cursor {
            let (n, from) = c
                .split_once(':')
                .and_then(|(n, from)| Some((n.parse::<u64>().ok()?, from.parse::<usize>().ok()?)))
                .ok_or_else(|| bad_cursor(op, c))?;
            let mut kept = self
                .member_lists
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let Some((group, members)) = kept.get(n).cloned() else {
                return Err(expired_cursor(op, "member list", &kept));
            };
            if &group != entitlement || from > members.len() {
                // A cursor from another group's listing, or edited.
                return Err(bad_cursor(op, c));
            }
            let page: Vec<AccountId> = members.iter().skip(from).take(size).cloned().collect();
            let to = from.saturating_add(size);
            let next = if to < members.len() {
                Some(format!("{n}:{to}"))
            } else {
                kept.take(n);
                None
            };
            return Ok(Page::new(page, next));
        }
        let group = self.group_dn(entitlement);
        let attrs = vec![self.cfg.groups.members.attribute().to_owned()];
        let entry = self
            .conn
            .read(op, &group, &self.cfg.groups.filter, &attrs)
            .await?
            .ok_or_else(|| not_found(op, format!("group {group}")))?;
        let values = self.all_members(op, &entry).await?;
        let mut members: Vec<AccountId> = match &self.cfg.groups.members {
            MemberStyle::Dn(_) => values
                .into_iter()
                .filter(|v| {
                    Dn::parse(v).is_ok_and(|d| self.bases.iter().any(|(_, b)| d.is_within(b)))
                })
                .map(|v| AccountId::new(canonical(&v)))
                .collect(),
            MemberStyle::Login(_) => {
                let mut out = Vec::new();
                let no_attrs = ["1.1".to_owned()];
                for chunk in values.chunks(100) {
                    let any: String = chunk
                        .iter()
                        .map(|v| equality(&self.cfg.accounts.login_attribute, v))
                        .collect();
                    let filter = format!("(&{}(|{any}))", self.cfg.accounts.filter);
                    let found = self.search_accounts(op, &filter, &no_attrs).await?;
                    out.extend(found.into_iter().map(|e| AccountId::new(canonical(&e.dn))));
                }
                out
            }
        };
        members.sort();
        if members.len() <= size {
            return Ok(Page::last(members));
        }
        let page: Vec<AccountId> = members.iter().take(size).cloned().collect();
        let n = self
            .member_lists
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keep((entitlement.clone(), Arc::new(members)));
        Ok(Page::new(page, Some(format!("{n}:{size}"))))
    }
}

pub(super) fn bad_cursor(op: Operation, cursor: &str) -> Error {
    Error::invalid_input(
        "cursor",
        format!("`{cursor}` is not a cursor this connector gave"),
    )
    .with_operation(op)
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn parse_cursor(c: &str) -> Option<(usize, Vec<u8>)> {
    let (ix, cookie) = c.split_once(':')?;
    let ix = ix.parse().ok()?;
    if cookie.len() % 2 != 0 {
        return None;
    }
    let cookie = (0..cookie.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(cookie.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some((ix, cookie))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        assert_eq!(
            parse_cursor(&format!("1:{}", hex(b"\x00\xffab"))),
            Some((1, b"\x00\xffab".to_vec()))
        );
        assert_eq!(parse_cursor("2:"), Some((2, Vec::new())));
        for bad in ["", "x:00", "1:0", "1:zz", "1"] {
            assert_eq!(parse_cursor(bad), None, "{bad}");
        }
    }
}
