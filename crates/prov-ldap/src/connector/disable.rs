//! How accounts are disabled and enabled: every disable method in one place.

use super::*;

impl Inner {
    pub(super) async fn set_enabled(&self, id: &AccountId, enabled: bool) -> Result<()> {
        let op = Operation::SetEnabled;
        self.account_dn(op, id)?;
        let dn = id.as_str();
        let mods = match &self.cfg.disable {
            DisableMethod::None => return Err(Error::unsupported(op)),
            DisableMethod::PasswordPolicy => {
                let values: HashSet<String> = if enabled {
                    HashSet::new()
                } else {
                    [LOCKED_FOREVER.to_owned()].into_iter().collect()
                };
                vec![Mod::Replace("pwdAccountLockedTime".to_owned(), values)]
            }
            DisableMethod::Attribute {
                name,
                disabled,
                enabled: on,
            } => {
                let values: HashSet<String> = match (enabled, on) {
                    (false, _) => [disabled.clone()].into_iter().collect(),
                    (true, Some(v)) => [v.clone()].into_iter().collect(),
                    (true, None) => HashSet::new(),
                };
                vec![Mod::Replace(name.clone(), values)]
            }
            DisableMethod::UserAccountControl => {
                let attrs = vec!["userAccountControl".to_owned()];
                let entry = self
                    .conn
                    .read(op, dn, "(objectClass=*)", &attrs)
                    .await?
                    .ok_or_else(|| not_found(op, id))?;
                let uac = entry
                    .first("userAccountControl")
                    .and_then(|v| v.trim().parse::<i64>().ok())
                    .unwrap_or(UAC_NORMAL);
                let want = if enabled {
                    uac & !UAC_DISABLED
                } else {
                    uac | UAC_DISABLED
                };
                if want == uac {
                    return Ok(());
                }
                vec![Mod::Replace(
                    "userAccountControl".to_owned(),
                    [want.to_string()].into_iter().collect(),
                )]
            }
        };
        self.modify_account(op, dn, mods.into_iter().map(bytes_mod).collect())
            .await
    }
}

/// `pwdAccountLockedTime` value that locks an account until it is removed.
pub(super) const LOCKED_FOREVER: &str = "000001010000Z";

/// `userAccountControl` bits.
pub(super) const UAC_DISABLED: i64 = 0x2;

pub(super) const UAC_NORMAL: i64 = 0x200;

/// The attribute that says whether an account is disabled, if any.
pub(super) fn attribute(method: &DisableMethod) -> Option<&str> {
    match method {
        DisableMethod::None => None,
        DisableMethod::PasswordPolicy => Some("pwdAccountLockedTime"),
        DisableMethod::Attribute { name, .. } => Some(name),
        DisableMethod::UserAccountControl => Some("userAccountControl"),
    }
}

/// Whether the entry `e` (read with [`attribute`]) is enabled.
pub(super) fn is_enabled(method: &DisableMethod, e: &Entry) -> bool {
    match method {
        DisableMethod::None => true,
        DisableMethod::PasswordPolicy => e.values("pwdAccountLockedTime").is_empty(),
        DisableMethod::Attribute { name, disabled, .. } => !e
            .values(name)
            .iter()
            .any(|v| v.eq_ignore_ascii_case(disabled.as_bytes())),
        DisableMethod::UserAccountControl => e
            .first("userAccountControl")
            .and_then(|v| v.trim().parse::<i64>().ok())
            .is_none_or(|uac| uac & UAC_DISABLED == 0),
    }
}

/// The attributes a new account gets so that it starts `enabled` or not,
/// in the add itself: one operation, never a created account left enabled
/// because a second call failed.
pub(super) fn on_create(
    method: &DisableMethod,
    enabled: bool,
    attrs: &mut BTreeMap<String, Vec<Vec<u8>>>,
) {
    match method {
        DisableMethod::UserAccountControl => {
            let uac = UAC_NORMAL | if enabled { 0 } else { UAC_DISABLED };
            attrs.insert(
                "userAccountControl".to_owned(),
                vec![uac.to_string().into_bytes()],
            );
        }
        DisableMethod::Attribute {
            name,
            disabled,
            enabled: on,
        } => match (enabled, on) {
            (false, _) => {
                attrs.insert(name.clone(), vec![disabled.clone().into_bytes()]);
            }
            (true, Some(v)) => {
                attrs.insert(name.clone(), vec![v.clone().into_bytes()]);
            }
            (true, None) => {}
        },
        DisableMethod::PasswordPolicy if !enabled => {
            attrs.insert(
                "pwdAccountLockedTime".to_owned(),
                vec![LOCKED_FOREVER.as_bytes().to_vec()],
            );
        }
        DisableMethod::PasswordPolicy => {}
        DisableMethod::None => {}
    }
}
