//! Active Directory specifics: primary groups, unicodePwd.

use super::*;

impl Inner {
    /// AD: reads every group's RID (the last part of its objectSid) once,
    /// so that an account's `primaryGroupID` names its group. The groups
    /// base is read whatever the groups filter says (Domain Users is a
    /// built-in group, not listed). Other dialects: nothing.
    pub(super) async fn load_primary_groups(&self, op: Operation) -> Result<()> {
        if self.cfg.dialect != crate::config::Dialect::ActiveDirectory {
            return Ok(());
        }
        self.primary_groups
            .get_or_try_init(|| async {
                let attrs = vec![
                    self.cfg.groups.name_attribute.clone(),
                    "objectSid".to_owned(),
                ];
                let entries = self
                    .search_groups(op, Scope::OneLevel, "(objectClass=group)", &attrs)
                    .await?;
                let mut out = HashMap::new();
                for e in &entries {
                    let sid = e.values("objectSid").first();
                    // A SID ends with its RID, 4 bytes little-endian.
                    let rid = sid
                        .and_then(|s| s.len().checked_sub(4).and_then(|i| s.get(i..)))
                        .and_then(|b| <[u8; 4]>::try_from(b).ok())
                        .map(u32::from_le_bytes);
                    if let (Some(rid), Some(name)) = (rid, self.group_name_of(&e.dn)) {
                        out.insert(rid, name);
                    }
                }
                Ok::<_, Error>(out)
            })
            .await
            .map(|_| ())
    }
}

/// AD's `unicodePwd`: the password in double quotes, UTF-16LE.
pub(super) fn unicode_pwd(password: &str) -> Vec<u8> {
    format!("\"{password}\"")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unicode_pwd_is_quoted_utf16le() {
        assert_eq!(unicode_pwd("pw"), b"\"\0p\0w\0\"\0".to_vec());
        assert_eq!(unicode_pwd("é").len(), 6);
    }

    #[tokio::test]
    async fn unicode_pwd_is_refused_without_tls_before_anything_is_sent() {
        use crate::config::{AttributeMap, Dialect, LdapConfig};
        // Port 9 (discard): nothing is listening, and nothing may be sent.
        let mut cfg = LdapConfig::new(
            Dialect::ActiveDirectory,
            "ldap://127.0.0.1:9",
            "DC=corp,DC=example",
        );
        cfg.accounts
            .attributes
            .insert("password".to_owned(), AttributeMap::string("unicodePwd"));
        let conn = LdapConnector::new(cfg).unwrap();
        let mut attrs = Attributes::new();
        attrs.insert("password".to_owned(), Value::from("S3cret!pass"));
        let e = conn
            .create_account(CreateAccount::new("ghopper", attrs))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert_eq!(e.field(), Some("password"));
        assert!(e.to_string().contains("only over TLS"), "{e}");
        assert!(!format!("{e} {e:?}").contains("S3cret"), "{e:?}");
    }

    /// (e) of issue 17: the AD preset created enabled users without a
    /// password, which Windows refuses (53, 0000052D) after the request
    /// was sent; now refused before anything is sent, naming the field.
    #[tokio::test]
    async fn an_enabled_ad_account_without_a_password_is_refused_before_sending() {
        use crate::config::{AttributeMap, Dialect, LdapConfig};
        // Port 9 (discard): nothing is listening.
        let cfg = |mapped: bool| {
            let mut cfg = LdapConfig::new(
                Dialect::ActiveDirectory,
                "ldaps://127.0.0.1:9",
                "DC=corp,DC=example",
            );
            if mapped {
                cfg.accounts.attributes.insert(
                    "initial_password".to_owned(),
                    AttributeMap::string("unicodePwd"),
                );
            }
            LdapConnector::new(cfg).unwrap()
        };
        for (mapped, field) in [(false, "password"), (true, "initial_password")] {
            let e = cfg(mapped)
                .create_account(CreateAccount::new("ghopper", Attributes::new()))
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            assert_eq!(e.field(), Some(field), "{e}");
            assert!(e.to_string().contains("0000052D"), "{e}");
        }
        // Disabled, it goes on to the directory (none here: unavailable).
        let mut disabled = CreateAccount::new("ghopper", Attributes::new());
        disabled.enabled = false;
        let e = cfg(false).create_account(disabled).await.unwrap_err();
        assert_ne!(e.kind(), ErrorKind::InvalidInput, "{e}");
    }
}
