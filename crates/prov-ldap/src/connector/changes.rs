//! Incremental changes (`changes_since`).

use super::*;

impl Inner {
    pub(super) async fn changes_since(&self, token: Option<&str>) -> Result<ChangeSet> {
        let op = Operation::ChangesSince;
        self.load_primary_groups(op).await?;
        let attrs: Vec<String> = self
            .read_attrs
            .iter()
            .cloned()
            .chain(std::iter::once("modifyTimestamp".to_owned()))
            .collect();
        let (since, first) = match token {
            Some(t) => {
                if parse_time(t).is_none() {
                    return Err(Error::invalid_input(
                        "token",
                        format!("`{t}` is not a token this connector gave"),
                    )
                    .with_operation(op));
                }
                (t.to_owned(), false)
            }
            // From now on: the newest change of the last day is where the
            // next call starts (the directory's clock, not ours).
            None => (
                (DateTime::<Utc>::from(std::time::SystemTime::now()) - chrono::Duration::days(1))
                    .format("%Y%m%d%H%M%SZ")
                    .to_string(),
                true,
            ),
        };
        let filter = format!(
            "(&{}(modifyTimestamp>={}))",
            self.cfg.accounts.filter,
            crate::dn::escape_filter_value(&since)
        );
        let index = if self.cfg.groups.member_of.is_none() && !first {
            Some(self.member_index(op).await?)
        } else {
            None
        };
        let mut newest = since.clone();
        let mut changes = Vec::new();
        for e in &self.search_accounts(op, &filter, &attrs).await? {
            if let Some(ts) = e.first("modifyTimestamp")
                && ts > newest
            {
                newest = ts;
            }
            if !first {
                changes.push(Change::Upserted(self.to_account(
                    op,
                    e,
                    index.as_deref(),
                )?));
            }
        }
        Ok(ChangeSet::new(changes, newest, false))
    }
}
