//! Accounts: create, update (with renames), delete.

use super::*;

impl Inner {
    /// The directory attributes of a create or update, in directory names.
    pub(super) fn encode_attributes(
        &self,
        op: Operation,
        login: &str,
        attrs: &Attributes,
    ) -> Result<BTreeMap<String, Vec<Vec<u8>>>> {
        let mut out = BTreeMap::new();
        for (model, value) in attrs {
            let Some(m) = self.cfg.accounts.attributes.get(model) else {
                return Err(Error::invalid_input(
                    model.clone(),
                    format!(
                        "{login}: attribute `{model}` is not mapped to a directory attribute (accounts.attributes)"
                    ),
                )
                .with_operation(op));
            };
            let values = if m.ldap.eq_ignore_ascii_case("unicodePwd") {
                // AD takes a password only over an encrypted connection, quoted, in UTF-16LE.
                let tls = self.cfg.connection.url.starts_with("ldaps://")
                    || self.cfg.connection.tls == crate::config::Tls::StartTls;
                if !tls {
                    return Err(Error::invalid_input(
                        model.clone(),
                        format!(
                            "{login}: `{model}` is AD's unicodePwd, which is written only over TLS (ldaps:// or StartTLS)"
                        ),
                    )
                    .with_operation(op));
                }
                match value {
                    Value::String(p) => vec![unicode_pwd(p)],
                    _ => {
                        return Err(Error::invalid_input(
                            model.clone(),
                            format!("{login}: `{model}` (a password) must be a string"),
                        )
                        .with_operation(op));
                    }
                }
            } else {
                encode(m.syntax, value).map_err(|why| {
                    Error::invalid_input(model.clone(), format!("{login}: `{model}` {why}"))
                        .with_operation(op)
                })?
            };
            out.insert(m.ldap.clone(), values);
        }
        Ok(out)
    }

    pub(super) async fn create_account(&self, req: CreateAccount) -> Result<Account> {
        let op = Operation::CreateAccount;
        let accounts = &self.cfg.accounts;
        if req.login.is_empty() {
            return Err(Error::invalid_input("login", "the login is empty").with_operation(op));
        }
        let mut attrs = if req.secrets.is_empty() {
            self.encode_attributes(op, &req.login, &req.attributes)?
        } else {
            let mut all = req.attributes.clone();
            for (k, v) in &req.secrets {
                all.insert(k.clone(), v.expose().clone());
            }
            self.encode_attributes(op, &req.login, &all)?
        };
        attrs.retain(|_, v| !v.is_empty());
        if let Some(needed) = &accounts.enabled_needs
            && req.enabled
            && !attrs.keys().any(|k| k.eq_ignore_ascii_case(needed))
        {
            let field = accounts
                .attributes
                .iter()
                .find(|(_, m)| m.ldap.eq_ignore_ascii_case(needed))
                .map_or("password", |(model, _)| model.as_str());
            return Err(Error::invalid_input(
                field,
                format!(
                    "{}: an enabled account needs a {needed} value here (Active Directory \
                     refuses an enabled user without a password: 53, 0000052D); give the \
                     account a password (a secret attribute mapped to {needed}), or create \
                     it disabled",
                    req.login
                ),
            )
            .with_operation(op));
        }
        attrs.insert(
            accounts.login_attribute.clone(),
            vec![req.login.clone().into_bytes()],
        );
        for (name, template) in &accounts.defaults {
            if !attrs.keys().any(|k| k.eq_ignore_ascii_case(name)) {
                attrs.insert(
                    name.clone(),
                    vec![template.replace("{login}", &req.login).into_bytes()],
                );
            }
        }
        if let (Some(attr), Some(marker)) = (&accounts.marker_attribute, &req.marker) {
            attrs.insert(attr.clone(), vec![marker.clone().into_bytes()]);
        }
        let rdn_value = attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&accounts.rdn_attribute))
            .and_then(|(_, v)| v.first())
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_else(|| req.login.clone());
        attrs
            .entry(accounts.rdn_attribute.clone())
            .or_insert_with(|| vec![rdn_value.clone().into_bytes()]);
        disable::on_create(&self.cfg.disable, req.enabled, &mut attrs);
        // New DNs use the directory's own spelling of the base, so that the
        // id given now is the one every listing gives later.
        let parent = self
            .base_spelling
            .get_or_try_init(|| async {
                let entry = self
                    .conn
                    .read(op, &accounts.base, "(objectClass=*)", &["1.1".to_owned()])
                    .await?;
                Ok::<String, Error>(entry.map_or_else(|| accounts.base.clone(), |e| e.dn))
            })
            .await?;
        let dn = child(&accounts.rdn_attribute, &rdn_value, parent);
        let mut entry: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = vec![(
            b"objectClass".to_vec(),
            accounts
                .object_classes
                .iter()
                .map(|c| c.clone().into_bytes())
                .collect(),
        )];
        for (k, v) in attrs {
            entry.push((k.into_bytes(), v.into_iter().collect()));
        }
        let what = format!("creating {dn}");
        let dn_ref = dn.as_str();
        let res = self
            .conn
            .run(op, &what, |mut l| async move { l.add(dn_ref, entry).await })
            .await?;
        if res.rc != 0 {
            let e = from_result(&res, op, &what);
            return Err(if res.rc == 68 {
                e.with_field("login")
            } else {
                e
            });
        }
        let id = AccountId::new(canonical(&dn));
        let mut acct = Account::new(id, req.login);
        acct.attributes = req.attributes;
        acct.attributes.retain(|_, v| *v != Value::Null);
        acct.enabled = req.enabled;
        if accounts.marker_attribute.is_some() {
            acct.marker = req.marker;
        }
        Ok(acct)
    }

    pub(super) async fn update_account(&self, req: UpdateAccount) -> Result<AccountId> {
        let op = Operation::UpdateAccount;
        let accounts = &self.cfg.accounts;
        let dn = self.account_dn(op, &req.id)?;
        let delta = &req.delta;
        let login = dn
            .rdn_value(&accounts.rdn_attribute)
            .unwrap_or(req.id.as_str())
            .to_owned();
        let set = if req.secrets.is_empty() {
            self.encode_attributes(op, &login, &delta.set)?
        } else {
            let mut all = delta.set.clone();
            for (k, v) in &req.secrets {
                all.insert(k.clone(), v.expose().clone());
            }
            self.encode_attributes(op, &login, &all)?
        };
        let mut mods: Vec<Mod<Vec<u8>>> = Vec::new();
        let mut new_rdn: Option<String> = None;
        for (attr, values) in set {
            if attr.eq_ignore_ascii_case(&accounts.rdn_attribute) {
                // The naming attribute changes through a rename.
                if let Some(v) = values.first() {
                    new_rdn = Some(String::from_utf8_lossy(v).into_owned());
                }
                continue;
            }
            mods.push(Mod::Replace(
                attr.into_bytes(),
                values.into_iter().collect(),
            ));
        }
        for model in &delta.remove {
            let Some(m) = accounts.attributes.get(model) else {
                return Err(Error::invalid_input(
                    model.clone(),
                    format!("attribute `{model}` is not mapped to a directory attribute"),
                )
                .with_operation(op));
            };
            if m.ldap.eq_ignore_ascii_case(&accounts.rdn_attribute) {
                return Err(Error::invalid_input(
                    model.clone(),
                    format!(
                        "`{model}` names the entry ({}); it cannot be removed",
                        m.ldap
                    ),
                )
                .with_operation(op));
            }
            mods.push(Mod::Replace(m.ldap.clone().into_bytes(), HashSet::new()));
        }
        if let Some(new_login) = &delta.login {
            if new_login.is_empty() {
                return Err(
                    Error::invalid_input("login", "the new login is empty").with_operation(op)
                );
            }
            if accounts
                .rdn_attribute
                .eq_ignore_ascii_case(&accounts.login_attribute)
            {
                new_rdn = Some(new_login.clone());
            } else {
                mods.push(Mod::Replace(
                    accounts.login_attribute.clone().into_bytes(),
                    [new_login.clone().into_bytes()].into_iter().collect(),
                ));
                self.follow_login(op, &req.id, &dn, new_login, &mut mods, &mut new_rdn)
                    .await?;
            }
        }
        // Attributes first, the rename last: if the rename fails, the entry
        // keeps its id and the next plan asks for the rename again; the
        // other way round a failed modify would leave a renamed entry the
        // caller still knows by its old id.
        self.modify_account(op, req.id.as_str(), mods).await?;
        let mut id = req.id.clone();
        if let Some(value) = new_rdn.filter(|v| dn.rdn_value(&accounts.rdn_attribute) != Some(v)) {
            let rdn = child(&accounts.rdn_attribute, &value, "");
            let rdn = rdn.trim_end_matches(',').to_owned();
            let what = format!("renaming {} to {rdn}", req.id);
            let (old, rdn_ref) = (req.id.as_str(), rdn.as_str());
            let res = self
                .conn
                .run(op, &what, |mut l| async move {
                    l.modifydn(old, rdn_ref, true, None).await
                })
                .await?;
            match res.rc {
                0 => {}
                32 => return Err(not_found(op, &req.id)),
                68 => {
                    return Err(from_result(&res, op, &what).with_field("login"));
                }
                _ => return Err(from_result(&res, op, &what)),
            }
            // The parent is what follows the first unescaped comma.
            let parent = first_rdn_end(req.id.as_str())
                .and_then(|i| req.id.as_str().get(i + 1..))
                .unwrap_or_default();
            id = AccountId::new(canonical(&format!("{rdn},{parent}")));
        }
        Ok(id)
    }

    /// A login rename where the login is not the naming attribute (AD:
    /// `sAMAccountName`, named by `cn`): the RDN follows when it was the
    /// old login, and on AD the `userPrincipalName` when its name part
    /// was (unless this update sets it), so that the user does not keep
    /// signing in with the old name.
    pub(super) async fn follow_login(
        &self,
        op: Operation,
        id: &AccountId,
        dn: &Dn,
        new_login: &str,
        mods: &mut Vec<Mod<Vec<u8>>>,
        new_rdn: &mut Option<String>,
    ) -> Result<()> {
        const UPN: &str = "userPrincipalName";
        let accounts = &self.cfg.accounts;
        let want = vec![accounts.login_attribute.clone(), UPN.to_owned()];
        let Some(e) = self
            .conn
            .read(op, id.as_str(), "(objectClass=*)", &want)
            .await?
        else {
            return Err(not_found(op, id));
        };
        let Some(old) = e.first(&accounts.login_attribute) else {
            return Ok(());
        };
        if new_rdn.is_none()
            && dn
                .rdn_value(&accounts.rdn_attribute)
                .is_some_and(|v| v.eq_ignore_ascii_case(&old))
        {
            *new_rdn = Some(new_login.to_owned());
        }
        let sets_upn = mods.iter().any(|m| match m {
            Mod::Replace(a, _) | Mod::Add(a, _) | Mod::Delete(a, _) => {
                a.eq_ignore_ascii_case(UPN.as_bytes())
            }
            _ => false,
        });
        if self.cfg.dialect == crate::config::Dialect::ActiveDirectory
            && !sets_upn
            && let Some(upn) = e.first(UPN)
            && let Some((name, realm)) = upn.rsplit_once('@')
            && name.eq_ignore_ascii_case(&old)
        {
            mods.push(Mod::Replace(
                UPN.as_bytes().to_vec(),
                [format!("{new_login}@{realm}").into_bytes()]
                    .into_iter()
                    .collect(),
            ));
        }
        Ok(())
    }

    pub(super) async fn delete_account(&self, id: &AccountId) -> Result<()> {
        let op = Operation::DeleteAccount;
        self.account_dn(op, id)?;
        let what = format!("deleting {id}");
        let dn = id.as_str();
        let res = self
            .conn
            .run(op, &what, |mut l| async move { l.delete(dn).await })
            .await?;
        match res.rc {
            0 => Ok(()),
            32 => Err(not_found(op, id)),
            _ => Err(from_result(&res, op, &what)),
        }
    }
}
