//! Groups: names and DNs, members (ranged retrieval), grants and revokes, groups the engine creates.

use super::*;

impl Inner {
    pub(super) fn group_name_of(&self, dn: &str) -> Option<EntitlementId> {
        let mut names = self
            .group_names
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(name) = names.get(dn) {
            return name.clone();
        }
        let name = self.parse_group_name(dn);
        if names.len() >= 100_000 {
            names.clear();
        }
        names.insert(dn.to_owned(), name.clone());
        name
    }

    pub(super) fn parse_group_name(&self, dn: &str) -> Option<EntitlementId> {
        let dn = Dn::parse(dn).ok()?;
        if !dn.is_child_of(&self.group_base) {
            return None;
        }
        dn.rdn_value(&self.cfg.groups.name_attribute)
            .map(EntitlementId::new)
    }

    /// The key a group's member value has in a [`MemberIndex`].
    pub(super) fn member_key(&self, value: &str) -> String {
        match &self.cfg.groups.members {
            // One spelling, then case folded: names compare without case.
            MemberStyle::Dn(_) => canonical(value).to_lowercase(),
            MemberStyle::Login(_) => value.to_lowercase(),
        }
    }

    /// Reads every group's members once (directories without `memberOf`).
    /// Every entry under the group base matching `filter`, with `attrs`,
    /// page after page (`Subtree`: a posixGroup's gidNumber is unique
    /// below the base, not only among its children).
    pub(super) async fn search_groups(
        &self,
        op: Operation,
        scope: Scope,
        filter: &str,
        attrs: &[String],
    ) -> Result<Vec<Entry>> {
        let s = Search {
            base: &self.cfg.groups.base,
            scope,
            filter,
            attrs,
            show_deleted: false,
        };
        self.conn.search_all(op, s, self.cfg.page_size).await
    }

    pub(super) async fn member_index(&self, op: Operation) -> Result<Arc<MemberIndex>> {
        let g = &self.cfg.groups;
        let attrs = vec![g.name_attribute.clone(), g.members.attribute().to_owned()];
        let groups = self
            .search_groups(op, Scope::OneLevel, &g.filter, &attrs)
            .await?;
        let mut index: MemberIndex = HashMap::new();
        for e in &groups {
            let Some(name) = self.group_name_of(&e.dn) else {
                continue;
            };
            for v in self.all_members(op, e).await? {
                index
                    .entry(self.member_key(&v))
                    .or_default()
                    .insert(name.clone());
            }
        }
        Ok(Arc::new(index))
    }

    /// The member values of a group entry, following AD's ranged retrieval
    /// (`member;range=0-1499`) when the directory cut the list short.
    pub(super) async fn all_members(&self, op: Operation, e: &Entry) -> Result<Vec<String>> {
        let attr = self.cfg.groups.members.attribute();
        let mut out: Vec<String> = e
            .values(attr)
            .iter()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        let bad = |why: String| {
            Error::new(
                ErrorKind::Unexpected,
                format!("reading the members of {}: {why}", e.dn),
            )
            .with_operation(op)
        };
        let mut next = match ranged(e, attr) {
            Some((values, end)) => {
                out.extend(values);
                end.map_err(bad)?
            }
            None => None,
        };
        // Each range must start past the last one, within a budget of
        // rounds: a directory that repeats a range cannot loop us for ever.
        let mut rounds = 0usize;
        let mut last = None;
        while let Some(from) = next {
            rounds += 1;
            if last.is_some_and(|l| from <= l) || rounds > prov_core::MAX_PAGES {
                return Err(bad(format!(
                    "the directory's ranges do not advance (range {from} after {}, round {rounds})",
                    last.unwrap_or_default()
                )));
            }
            last = Some(from);
            let want = vec![format!("{attr};range={from}-*")];
            let Some(more) = self.conn.read(op, &e.dn, "(objectClass=*)", &want).await? else {
                return Err(not_found(op, format!("group {}", e.dn)));
            };
            next = match ranged(&more, attr) {
                Some((values, end)) => {
                    out.extend(values);
                    end.map_err(bad)?
                }
                None => None,
            };
        }
        let placeholder = self.cfg.groups.placeholder_member.as_deref();
        out.retain(|v| Some(v.as_str()) != placeholder);
        Ok(out)
    }

    /// The values a group holds for these accounts: their DNs, or their
    /// logins (posixGroup `memberUid`), taken from the DN when the account
    /// is named by its login, else read. With `verify`, every account is
    /// read, so that one that does not exist fails alone (NotFound).
    pub(super) async fn member_values(
        &self,
        op: Operation,
        accounts: &[AccountId],
        verify: bool,
    ) -> Vec<(AccountId, Result<String>)> {
        let login_attr = &self.cfg.accounts.login_attribute;
        let (dn_style, from_dn) = match &self.cfg.groups.members {
            MemberStyle::Dn(_) => (true, true),
            MemberStyle::Login(_) => (
                false,
                self.cfg
                    .accounts
                    .rdn_attribute
                    .eq_ignore_ascii_case(login_attr),
            ),
        };
        let one = |a: AccountId| async move {
            let dn = match self.account_dn(op, &a) {
                Ok(dn) => dn,
                Err(e) => return (a, Err(e)),
            };
            if !verify && from_dn {
                let v = if dn_style {
                    Some(a.as_str().to_owned())
                } else {
                    dn.rdn_value(login_attr).map(str::to_owned)
                };
                if let Some(v) = v {
                    return (a, Ok(v));
                }
            }
            let attrs = vec![if dn_style {
                "1.1".to_owned()
            } else {
                login_attr.clone()
            }];
            let r = match self
                .conn
                .read(op, a.as_str(), &self.cfg.accounts.filter, &attrs)
                .await
            {
                Ok(Some(_)) if dn_style => Ok(a.as_str().to_owned()),
                Ok(Some(e)) => e
                    .first(login_attr)
                    .ok_or_else(|| not_found(op, format!("a login on {a}"))),
                Ok(None) => Err(not_found(op, &a)),
                Err(e) => Err(e),
            };
            (a, r)
        };
        join_all(accounts.iter().cloned().map(one)).await
    }

    /// The group's current member values, as member keys.
    pub(super) async fn current_members(
        &self,
        op: Operation,
        group: &str,
    ) -> Result<HashSet<String>> {
        let attrs = vec![self.cfg.groups.members.attribute().to_owned()];
        let entry = self
            .conn
            .read(op, group, "(objectClass=*)", &attrs)
            .await?
            .ok_or_else(|| not_found(op, format!("group {group}")))?;
        Ok(self
            .all_members(op, &entry)
            .await?
            .iter()
            .map(|v| self.member_key(v))
            .collect())
    }

    /// Adds (`add`) or removes values of a group's member attribute, one
    /// modify per batch. A batch the directory refuses because some value
    /// is already there (or already gone), or names a missing entry, is
    /// redone value by value, so that a repeat is harmless and a missing
    /// account fails alone.
    pub(super) async fn change_members(
        &self,
        req: MembershipChange,
        add: bool,
    ) -> Result<BatchOutcome> {
        let op = if add {
            Operation::Grant
        } else {
            Operation::Revoke
        };
        let group = self.group_dn(&req.entitlement);
        let attr = self.cfg.groups.members.attribute().to_owned();
        let mut outcome = BatchOutcome::ok();
        let placeholder = self.cfg.groups.placeholder_member.clone();
        let mut values: Vec<(AccountId, String)> = Vec::new();
        for (account, v) in self
            .member_values(op, &req.accounts, add && self.cfg.groups.verify_members)
            .await
        {
            match v {
                Ok(v) if Some(&v) == placeholder.as_ref() => {}
                Ok(v) => values.push((account, v)),
                // A missing account lacks the entitlement already.
                Err(e) if !add && e.kind() == ErrorKind::NotFound => {}
                Err(error) => outcome.failures.push(MemberFailure::new(account, error)),
            }
        }
        for batch in values.chunks(self.cfg.groups.batch_size.max(1)) {
            let (res, what) = self.modify_members(op, &group, &attr, batch, add).await?;
            match res.rc {
                0 => {}
                // Some values are there already (grant) or gone already
                // (revoke): send only the rest, once more. OpenLDAP says
                // 20 and 16; AD 68 (entryAlreadyExists) and 53 ("already
                // deleted"). Which values are done is read from the group,
                // never assumed from the code.
                16 | 20 | 53 | 68 => {
                    let current = self.current_members(op, &group).await?;
                    let rest: Vec<(AccountId, String)> = batch
                        .iter()
                        .filter(|(_, v)| current.contains(&self.member_key(v)) != add)
                        .cloned()
                        .collect();
                    if rest.is_empty() {
                        continue;
                    }
                    let (again, _) = self.modify_members(op, &group, &attr, &rest, add).await?;
                    if again.rc != 0 {
                        outcome
                            .failures
                            .extend(self.change_one_by_one(op, &group, &attr, &rest, add).await);
                    }
                }
                // A member refused (it does not exist) or a missing group.
                19 | 21 | 32 => {
                    if res.rc == 32 && !self.exists(op, &group).await? {
                        return Err(not_found(op, format!("group {group}")));
                    }
                    outcome
                        .failures
                        .extend(self.change_one_by_one(op, &group, &attr, batch, add).await);
                }
                _ => return Err(from_result(&res, op, &what)),
            }
        }
        Ok(outcome)
    }

    /// One modify adding or deleting these member values.
    pub(super) async fn modify_members(
        &self,
        op: Operation,
        group: &str,
        attr: &str,
        values: &[(AccountId, String)],
        add: bool,
    ) -> Result<(ldap3::LdapResult, String)> {
        let set: HashSet<String> = values.iter().map(|(_, v)| v.clone()).collect();
        let what = format!(
            "{} {} members of {group}",
            if add { "adding" } else { "removing" },
            set.len()
        );
        let m = if add {
            Mod::Add(attr.to_owned(), set)
        } else {
            Mod::Delete(attr.to_owned(), set)
        };
        let res = self
            .conn
            .run(
                op,
                &what,
                |mut l| async move { l.modify(group, vec![m]).await },
            )
            .await?;
        Ok((res, what))
    }

    pub(super) async fn change_one_by_one(
        &self,
        op: Operation,
        group: &str,
        attr: &str,
        batch: &[(AccountId, String)],
        add: bool,
    ) -> Vec<MemberFailure> {
        let one = |(account, value): (AccountId, String)| async move {
            let what = format!(
                "{} {account} in {group}",
                if add { "adding" } else { "removing" }
            );
            let key = self.member_key(&value);
            let set: HashSet<String> = [value].into_iter().collect();
            let m = if add {
                Mod::Add(attr.to_owned(), set)
            } else {
                Mod::Delete(attr.to_owned(), set)
            };
            let res = match self
                .conn
                .run(
                    op,
                    &what,
                    |mut l| async move { l.modify(group, vec![m]).await },
                )
                .await
            {
                Ok(res) => res,
                Err(error) => return Some(MemberFailure::new(account, error)),
            };
            match (res.rc, add) {
                (0, _) | (20 | 68, true) | (16, false) => None,
                // AD's answer for a value already gone, and for some
                // refusals: the group says which.
                (53, false) => match self.current_members(op, group).await {
                    Ok(now) if !now.contains(&key) => None,
                    Ok(_) => Some(MemberFailure::new(account, from_result(&res, op, &what))),
                    Err(error) => Some(MemberFailure::new(account, error)),
                },
                (19 | 21 | 32, true) => {
                    // Refused for the member: does the account exist?
                    match self.exists(op, account.as_str()).await {
                        Ok(false) => {
                            Some(MemberFailure::new(account.clone(), not_found(op, &account)))
                        }
                        Ok(true) => Some(MemberFailure::new(account, from_result(&res, op, &what))),
                        Err(error) => Some(MemberFailure::new(account, error)),
                    }
                }
                _ => Some(MemberFailure::new(account, from_result(&res, op, &what))),
            }
        };
        join_all(batch.iter().cloned().map(one))
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// Why this directory's groups cannot be created, if they cannot.
    pub(super) fn why_no_groups_made(&self) -> Option<String> {
        let g = &self.cfg.groups;
        if g.object_classes.is_empty() {
            return Some(
                "groups.object_classes is empty: groups are not created on this directory"
                    .to_owned(),
            );
        }
        if g.member_required && g.placeholder_member.is_none() {
            return Some(format!(
                "a {} needs a member and groups.placeholder_member is unset: groups are not \
                 created on this directory",
                g.object_classes.join("+")
            ));
        }
        None
    }

    /// A group named `entitlement`'s id under the group base, of the
    /// configured object classes, holding the placeholder member (where
    /// set), a gidNumber from the range (posixGroup), its display name as
    /// `description`, and on AD its `sAMAccountName`.
    pub(super) async fn create_group(&self, entitlement: &Entitlement) -> Result<Entitlement> {
        let op = Operation::CreateEntitlement;
        if let Some(why) = self.why_no_groups_made() {
            return Err(Error::new(ErrorKind::Unsupported, why).with_operation(op));
        }
        let g = &self.cfg.groups;
        let name = entitlement.id.as_str();
        if name.is_empty() {
            return Err(
                Error::invalid_input("entitlement", "the group name is empty").with_operation(op),
            );
        }
        let dn = self.group_dn(&entitlement.id);
        let mut entry: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = vec![
            (
                b"objectClass".to_vec(),
                g.object_classes
                    .iter()
                    .map(|c| c.clone().into_bytes())
                    .collect(),
            ),
            (
                g.name_attribute.clone().into_bytes(),
                HashSet::from([name.as_bytes().to_vec()]),
            ),
        ];
        if let Some(p) = &g.placeholder_member {
            entry.push((
                g.members.attribute().as_bytes().to_vec(),
                HashSet::from([p.clone().into_bytes()]),
            ));
        }
        if let Some(d) = entitlement
            .display_name
            .as_deref()
            .filter(|d| !d.is_empty())
        {
            entry.push((
                b"description".to_vec(),
                HashSet::from([d.as_bytes().to_vec()]),
            ));
        }
        if self.cfg.dialect == crate::config::Dialect::ActiveDirectory {
            entry.push((
                b"sAMAccountName".to_vec(),
                HashSet::from([name.as_bytes().to_vec()]),
            ));
        }
        let _held = match g.gid_numbers {
            Some(range) => {
                let held = self.gid_lock.lock().await;
                let gid = self.free_gid(op, range).await?;
                entry.push((
                    b"gidNumber".to_vec(),
                    HashSet::from([gid.to_string().into_bytes()]),
                ));
                Some(held)
            }
            None => None,
        };
        let what = format!("creating group {dn}");
        let dn_ref = dn.as_str();
        let res = self
            .conn
            .run(op, &what, |mut l| async move { l.add(dn_ref, entry).await })
            .await?;
        match res.rc {
            0 => {
                let mut made = Entitlement::group(entitlement.id.clone());
                made.display_name = entitlement.display_name.clone();
                Ok(made)
            }
            68 => Err(Error::already_exists(format!("group {dn} exists")).with_operation(op)),
            _ => Err(from_result(&res, op, &what)),
        }
    }

    /// The gidNumber a new posixGroup takes: one above the highest in
    /// `range` in use under the group base, else the lowest free one.
    pub(super) async fn free_gid(&self, op: Operation, (first, last): (u32, u32)) -> Result<u32> {
        let attrs = vec!["gidNumber".to_owned()];
        let entries = self
            .search_groups(op, Scope::Subtree, "(gidNumber=*)", &attrs)
            .await?;
        let used: BTreeSet<u32> = entries
            .iter()
            .filter_map(|e| e.first("gidNumber")?.trim().parse::<u32>().ok())
            .filter(|n| (first..=last).contains(n))
            .collect();
        let next = match used.last() {
            None => Some(first),
            Some(&top) if top < last => top.checked_add(1),
            Some(_) => (first..=last).find(|n| !used.contains(n)),
        };
        next.ok_or_else(|| {
            Error::new(
                ErrorKind::Config,
                format!(
                    "every gidNumber from {first} to {last} is taken under {}",
                    self.cfg.groups.base
                ),
            )
            .with_operation(op)
            .with_field("groups.gid_numbers")
        })
    }

    pub(super) async fn delete_group(&self, id: &EntitlementId) -> Result<()> {
        let op = Operation::DeleteEntitlement;
        if let Some(why) = self.why_no_groups_made() {
            return Err(Error::new(ErrorKind::Unsupported, why).with_operation(op));
        }
        let dn = self.group_dn(id);
        let what = format!("deleting group {dn}");
        let dn_ref = dn.as_str();
        let res = self
            .conn
            .run(op, &what, |mut l| async move { l.delete(dn_ref).await })
            .await?;
        match res.rc {
            0 => Ok(()),
            32 => Err(not_found(op, format!("group {dn}"))),
            _ => Err(from_result(&res, op, &what)),
        }
    }
}

/// Values from an AD ranged attribute (`member;range=0-1499`) and where the
/// next range starts (`None` after the last, whose end is `*`; an error
/// for an end that is not a number or has no successor).
#[allow(clippy::type_complexity)] // values, and where to go on: one use
pub(super) fn ranged(e: &Entry, attr: &str) -> Option<(Vec<String>, Result<Option<u64>, String>)> {
    let prefix = format!("{};range=", attr.to_ascii_lowercase());
    let (name, values) = e
        .attrs
        .iter()
        .find(|(k, _)| k.to_ascii_lowercase().starts_with(&prefix))?;
    let range = name.get(prefix.len()..)?;
    let (_, end) = range.split_once('-')?;
    let values = values
        .iter()
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    let next = if end == "*" {
        Ok(None)
    } else {
        end.parse::<u64>()
            .ok()
            .and_then(|n| n.checked_add(1))
            .map(Some)
            .ok_or_else(|| {
                format!("the range `{name}` ends at no number a next range can start after")
            })
    };
    Some((values, next))
}

/// Where the first RDN of a DN ends (its first unescaped comma).
pub(super) fn first_rdn_end(dn: &str) -> Option<usize> {
    let bytes = dn.as_bytes();
    let mut i = 0;
    while let Some(&c) = bytes.get(i) {
        match c {
            b'\\' => i += 2,
            b',' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranged_retrieval_follows_ad_ranges() {
        let mut e = Entry::default();
        e.attrs.push((
            "member;range=0-1499".to_owned(),
            vec![b"cn=a".to_vec(), b"cn=b".to_vec()],
        ));
        assert_eq!(
            ranged(&e, "member"),
            Some((vec!["cn=a".to_owned(), "cn=b".to_owned()], Ok(Some(1500))))
        );
        let mut last = Entry::default();
        last.attrs
            .push(("member;range=1500-*".to_owned(), vec![b"cn=c".to_vec()]));
        assert_eq!(
            ranged(&last, "member"),
            Some((vec!["cn=c".to_owned()], Ok(None)))
        );
        assert_eq!(ranged(&Entry::default(), "member"), None);
        // The largest end has no successor: an error, not an overflow.
        for end in ["18446744073709551615", "x", "-1"] {
            let mut huge = Entry::default();
            huge.attrs
                .push((format!("member;range=0-{end}"), vec![b"cn=a".to_vec()]));
            let (_, next) = ranged(&huge, "member").unwrap();
            assert!(next.is_err(), "{end}: {next:?}");
        }
    }
}
