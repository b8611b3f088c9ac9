//! What only an LDAP directory has: hostile values, renames, disabling
//! verified by a failing bind, large groups, result codes, bases, TLS and
//! reconnection.

use std::collections::BTreeSet;

use ldap3::LdapConnAsync;
use prov_core::{
    AccountId, AttributeDelta, Attributes, Connector, ConnectorExt, CreateAccount, EntitlementId,
    ErrorKind, ListRequest, MembershipChange, UpdateAccount, Value,
};
use prov_ldap::{AttributeMap, Dialect, LdapConnector, Tls};
use prov_testkit::slapd::{Slapd, SlapdOptions};

use crate::common::{add_groups, attribute, config, connector, slapd};

fn person(family: &str) -> Attributes {
    let mut a = Attributes::new();
    a.insert("family_name".to_owned(), Value::from(family));
    a
}

async fn create(conn: &LdapConnector, login: &str) -> AccountId {
    conn.create_account(CreateAccount::new(login, person("Doe")))
        .await
        .unwrap_or_else(|e| panic!("create {login:?}: {e}"))
        .id
}

/// Binds as `dn` with `password`: the result code (0 is success).
async fn bind(url: &str, dn: &str, password: &str) -> u32 {
    let (conn, mut ldap) = LdapConnAsync::new(url).await.unwrap();
    ldap3::drive!(conn);
    let rc = ldap.simple_bind(dn, password).await.unwrap().rc;
    let _ = ldap.unbind().await;
    rc
}

fn set_password(server: &Slapd, dn: &str, password: &str) {
    server
        .tool(
            "ldapmodify",
            &[],
            &format!(
                "dn: {dn}\nchangetype: modify\nreplace: userPassword\nuserPassword: {password}\n"
            ),
        )
        .unwrap();
}

const HOSTILE: &[&str] = &[
    "*)(uid=*))(|(uid=*",
    "smith, john",
    "a+b=c",
    "back\\slash",
    "#hash",
    " padded ",
    "quote\"semi;<angle>",
    "zoë.ångström-李",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_are_escaped_in_dns_and_filters() {
    let server = slapd();
    add_groups(&server, &["groupOfNames"], "member", &["staff"]);
    let conn = connector(&server, Dialect::OpenLdap);
    let plain = create(&conn, "plain").await;
    let mut ids = Vec::new();
    for login in HOSTILE {
        let id = create(&conn, login).await;
        let got = conn.get_account(&id).await.unwrap();
        assert_eq!(got.login, *login, "{id}");
        // A filter on the login finds exactly that account: nothing injected.
        let page = conn
            .list_accounts(ListRequest::first().with_filter("login", *login))
            .await
            .unwrap();
        let logins: Vec<&str> = page.items.iter().map(|a| a.login.as_str()).collect();
        assert_eq!(logins, [*login], "filter on {login:?}");
        ids.push(id);
    }
    // A value that would match everything unescaped matches nothing.
    let star = conn
        .list_accounts(ListRequest::first().with_filter("login", "*"))
        .await
        .unwrap();
    assert!(star.items.is_empty(), "{:?}", star.items);
    // A NUL cannot be in a uid: refused with a clear error, nothing written.
    let nul = conn
        .create_account(CreateAccount::new("nul\0byte", person("Doe")))
        .await;
    let nul_made = nul.is_ok();
    match nul {
        Ok(a) => assert_eq!(conn.get_account(&a.id).await.unwrap().login, "nul\0byte"),
        Err(e) => assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}"),
    }
    // Groups take hostile DNs; renames to hostile logins keep them.
    let staff = EntitlementId::new("staff");
    let outcome = conn
        .grant(MembershipChange::new(staff.clone(), ids.clone()))
        .await
        .unwrap();
    assert!(outcome.is_ok(), "{:?}", outcome.failures);
    let renamed = conn
        .update_account(UpdateAccount::new(
            ids[0].clone(),
            AttributeDelta::default().rename(",=+<>#;\\\" x"),
        ))
        .await
        .unwrap();
    let after = conn.get_account(&renamed).await.unwrap();
    assert_eq!(after.login, ",=+<>#;\\\" x");
    assert!(after.entitlements.contains(&staff), "{after:?}");
    let members: BTreeSet<AccountId> = conn
        .list_all_members(&staff)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert!(members.contains(&renamed) && !members.contains(&ids[0]));
    assert!(!members.contains(&plain));
    assert_eq!(members.len(), HOSTILE.len());
    // Everything is there and nothing else was touched.
    let all = conn.list_all_accounts().await.unwrap();
    assert_eq!(all.len(), HOSTILE.len() + 1 + usize::from(nul_made));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_accounts_cannot_bind_and_enabled_ones_can() {
    let server = slapd();
    let conn = connector(&server, Dialect::OpenLdap);
    let id = create(&conn, "alice").await;
    set_password(&server, id.as_str(), "pw-alice");
    assert_eq!(bind(&server.url, id.as_str(), "pw-alice").await, 0);

    conn.set_enabled(&id, false).await.unwrap();
    conn.set_enabled(&id, false).await.unwrap();
    assert!(!conn.get_account(&id).await.unwrap().enabled);
    assert_eq!(
        bind(&server.url, id.as_str(), "pw-alice").await,
        49,
        "a locked account binds"
    );

    conn.set_enabled(&id, true).await.unwrap();
    conn.set_enabled(&id, true).await.unwrap();
    assert!(conn.get_account(&id).await.unwrap().enabled);
    assert_eq!(bind(&server.url, id.as_str(), "pw-alice").await, 0);

    // Created disabled: locked from the start.
    let mut req = CreateAccount::new("bob", person("Roe"));
    req.enabled = false;
    let bob = conn.create_account(req).await.unwrap();
    assert!(!bob.enabled);
    assert!(!conn.get_account(&bob.id).await.unwrap().enabled);
    assert_eq!(
        attribute(&server, bob.id.as_str(), "pwdAccountLockedTime"),
        "000001010000Z"
    );
    // OpenLDAP's ppolicy unlocks an account whose password an administrator
    // resets: the account is enabled again, and the listing says so, so
    // that the next plan disables it again.
    set_password(&server, bob.id.as_str(), "pw-bob");
    assert_eq!(bind(&server.url, bob.id.as_str(), "pw-bob").await, 0);
    assert!(conn.get_account(&bob.id).await.unwrap().enabled);
    conn.set_enabled(&bob.id, false).await.unwrap();
    assert_eq!(bind(&server.url, bob.id.as_str(), "pw-bob").await, 49);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribute_disable_method_writes_the_configured_values() {
    let server = slapd();
    let mut cfg = config(&server, Dialect::OpenLdap);
    cfg.disable = prov_ldap::DisableMethod::Attribute {
        name: "employeeType".to_owned(),
        disabled: "disabled".to_owned(),
        enabled: Some("active".to_owned()),
    };
    let conn = LdapConnector::new(cfg).unwrap();
    let id = create(&conn, "carol").await;
    assert_eq!(attribute(&server, id.as_str(), "employeeType"), "active");
    conn.set_enabled(&id, false).await.unwrap();
    assert!(!conn.get_account(&id).await.unwrap().enabled);
    assert_eq!(attribute(&server, id.as_str(), "employeeType"), "disabled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renames_move_the_entry_and_its_memberships() {
    let server = slapd();
    add_groups(&server, &["groupOfNames"], "member", &["staff", "admins"]);
    let conn = connector(&server, Dialect::OpenLdap);
    let id = create(&conn, "dave").await;
    for g in ["staff", "admins"] {
        conn.grant(MembershipChange::new(
            EntitlementId::new(g),
            vec![id.clone()],
        ))
        .await
        .unwrap();
    }
    // A rename with an attribute change in the same delta.
    let delta = AttributeDelta::default()
        .rename("david")
        .set("title", "Engineer");
    let new = conn
        .update_account(UpdateAccount::new(id.clone(), delta))
        .await
        .unwrap();
    assert_eq!(new.as_str(), format!("uid=david,{}", server.people()));
    assert_eq!(
        conn.get_account(&id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let after = conn.get_account(&new).await.unwrap();
    assert_eq!(after.login, "david");
    assert_eq!(
        after.attributes.get("title"),
        Some(&Value::from("Engineer"))
    );
    assert_eq!(after.entitlements.len(), 2, "{after:?}");
    // A rename whose attribute change the directory refuses changes nothing:
    // the entry keeps its id, so the caller's link still holds.
    let refused = conn
        .update_account(UpdateAccount::new(
            new.clone(),
            AttributeDelta::default()
                .rename("dee")
                .set("mail", "zoë@例え.jp"),
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.field(), Some("mail"), "{refused}");
    assert_eq!(conn.get_account(&new).await.unwrap().login, "david");
    // Renaming onto an existing login is AlreadyExists, naming the login.
    create(&conn, "erin").await;
    let clash = conn
        .update_account(UpdateAccount::new(
            new.clone(),
            AttributeDelta::default().rename("erin"),
        ))
        .await
        .unwrap_err();
    assert_eq!(clash.kind(), ErrorKind::AlreadyExists, "{clash}");
    assert_eq!(clash.field(), Some("login"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_groups_batch_page_and_repeat_harmlessly() {
    let server = slapd();
    add_groups(&server, &["groupOfNames"], "member", &["everyone"]);
    let mut cfg = config(&server, Dialect::OpenLdap);
    cfg.page_size = 700;
    let conn = LdapConnector::new(cfg).unwrap();
    let n = 2_100;
    // Created eight at a time over the one connection.
    let mut ids = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(8) {
        let made = futures_util::future::join_all(chunk.iter().map(|i| {
            let conn = &conn;
            async move { create(conn, &format!("user{i:05}")).await }
        }))
        .await;
        ids.extend(made);
    }
    let everyone = EntitlementId::new("everyone");
    // The first 1,000 once, then all of them: the repeat is harmless.
    let first = conn
        .grant(MembershipChange::new(
            everyone.clone(),
            ids[..1000].to_vec(),
        ))
        .await
        .unwrap();
    assert!(first.is_ok());
    let all = conn
        .grant(MembershipChange::new(everyone.clone(), ids.clone()))
        .await
        .unwrap();
    assert!(all.is_ok(), "{:?}", all.failures.first());
    let page = conn
        .list_members(&everyone, ListRequest::first())
        .await
        .unwrap();
    assert_eq!(page.items.len(), 700);
    let members = conn.list_all_members(&everyone).await.unwrap();
    assert_eq!(members.len(), n, "the placeholder is not an account");
    let listed = conn.list_all_accounts().await.unwrap();
    assert_eq!(listed.len(), n);
    assert!(listed.iter().all(|a| a.entitlements.contains(&everyone)));
    // Revoking half, twice, and some that never were members.
    let half = ids[..n / 2].to_vec();
    for _ in 0..2 {
        let out = conn
            .revoke(MembershipChange::new(everyone.clone(), half.clone()))
            .await
            .unwrap();
        assert!(out.is_ok(), "{:?}", out.failures.first());
    }
    assert_eq!(
        conn.list_all_members(&everyone).await.unwrap().len(),
        n - n / 2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_codes_become_clear_errors() {
    let server = slapd();
    let mut cfg = config(&server, Dialect::OpenLdap);
    cfg.accounts.defaults.remove("sn");
    let conn = LdapConnector::new(cfg).unwrap();
    // inetOrgPerson needs sn: objectClassViolation names it.
    let e = conn
        .create_account(CreateAccount::new("nosn", Attributes::new()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert_eq!(e.field(), Some("sn"), "{e}");
    assert_eq!(e.detail().unwrap().code.as_deref(), Some("65"));
    // mail is IA5: a non-ASCII address is invalidAttributeSyntax naming mail.
    let mut attrs = person("Doe");
    attrs.insert("mail".to_owned(), Value::from("zoë@例え.jp"));
    let e = conn
        .create_account(CreateAccount::new("badmail", attrs))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert_eq!(e.field(), Some("mail"), "{e}");
    assert_eq!(e.detail().unwrap().code.as_deref(), Some("21"));
    // An attribute the config does not map names the model attribute.
    let mut attrs = person("Doe");
    attrs.insert("shoe_size".to_owned(), Value::Int(44));
    let e = conn
        .create_account(CreateAccount::new("shoes", attrs))
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.field()),
        (ErrorKind::InvalidInput, Some("shoe_size")),
        "{e}"
    );
    // A duplicate keeps the code and the server's message.
    create(&conn, "twice").await;
    let e = conn
        .create_account(CreateAccount::new("twice", person("Doe")))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    assert_eq!(e.detail().unwrap().code.as_deref(), Some("68"));
    // A wrong password: Unauthenticated, code 49, and the password nowhere.
    let mut cfg = config(&server, Dialect::OpenLdap);
    cfg.connection.password = Some(prov_ldap::Password::new("wrong-password-123"));
    let e = LdapConnector::new(cfg.clone())
        .unwrap()
        .check()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert_eq!(e.detail().unwrap().code.as_deref(), Some("49"));
    assert!(!format!("{e} {e:?} {cfg:?}").contains("wrong-password-123"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_outside_the_configured_bases_is_read_or_written() {
    let server = slapd();
    server
        .tool(
            "ldapadd",
            &[],
            &format!(
                "dn: ou=contractors,{s}\nobjectClass: organizationalUnit\nou: contractors\n\n\
                 dn: uid=outsider,ou=contractors,{s}\nobjectClass: inetOrgPerson\nuid: outsider\ncn: o\nsn: o\n",
                s = server.suffix
            ),
        )
        .unwrap();
    let conn = connector(&server, Dialect::OpenLdap);
    create(&conn, "insider").await;
    let outsider = AccountId::new(format!("uid=outsider,ou=contractors,{}", server.suffix));
    let logins: Vec<String> = conn
        .list_all_accounts()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.login)
        .collect();
    assert_eq!(logins, ["insider"]);
    assert_eq!(
        conn.get_account(&outsider).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        conn.delete_account(&outsider).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        conn.set_enabled(&outsider, false).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(attribute(&server, outsider.as_str(), "uid"), "outsider");
    // With the second base configured, it is listed.
    let mut cfg = config(&server, Dialect::OpenLdap);
    cfg.accounts.more_bases = vec![format!("ou=contractors,{}", server.suffix)];
    let both = LdapConnector::new(cfg).unwrap();
    let mut pages = 0;
    let mut seen = Vec::new();
    let mut req = ListRequest::first().with_page_size(1);
    loop {
        let page = both.list_accounts(req).await.unwrap();
        pages += 1;
        seen.extend(page.items.into_iter().map(|a| a.login));
        match page.next {
            Some(c) => req = ListRequest::after(c).with_page_size(1),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, ["insider", "outsider"]);
    assert!(pages >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldaps_and_starttls_verify_the_server() {
    let server = Slapd::start_with(&{
        let mut o = SlapdOptions::default();
        o.tls = true;
        o
    })
    .unwrap();
    let ldaps = server.ldaps_url.clone().unwrap();
    // ldaps:// with the test CA.
    let mut cfg = config(&server, Dialect::OpenLdap);
    cfg.connection.url = ldaps.clone();
    cfg.connection.ca_file = Some(server.ca_file());
    let conn = LdapConnector::new(cfg).unwrap();
    conn.check().await.unwrap();
    create(&conn, "tls-user").await;
    // Listings page on connections of their own: over TLS too.
    assert_eq!(conn.list_all_accounts().await.unwrap().len(), 1);
    // StartTLS on ldap://.
    let mut cfg = config(&server, Dialect::OpenLdap);
    cfg.connection.tls = Tls::StartTls;
    cfg.connection.ca_file = Some(server.ca_file());
    let conn = LdapConnector::new(cfg).unwrap();
    assert_eq!(conn.list_all_accounts().await.unwrap().len(), 1);
    // Without the CA the server is not trusted: a Config error naming the
    // cause and ca_file, never retried (it was Unavailable, retried as an
    // outage).
    let mut cfg = config(&server, Dialect::OpenLdap);
    cfg.connection.url = ldaps.clone();
    let e = LdapConnector::new(cfg).unwrap().check().await.unwrap_err();
    assert!(e.to_string().contains("certificate is not trusted"), "{e}");
    assert_eq!(e.kind(), prov_core::ErrorKind::Config, "{e}");
    assert_eq!(e.field(), Some("connection.ca_file"), "{e}");
    assert!(!e.is_retryable(), "{e}");
    // Another CA's certificate file: the same, for StartTLS too.
    let other = Slapd::start_with(&{
        let mut o = SlapdOptions::default();
        o.tls = true;
        o
    })
    .unwrap();
    let mut cfg = config(&server, Dialect::OpenLdap);
    cfg.connection.tls = Tls::StartTls;
    cfg.connection.ca_file = Some(other.ca_file());
    let e = LdapConnector::new(cfg).unwrap().check().await.unwrap_err();
    assert_eq!(e.kind(), prov_core::ErrorKind::Config, "{e}");
    assert!(!e.is_retryable(), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_is_reopened() {
    let mut server = slapd();
    let conn = connector(&server, Dialect::OpenLdap);
    create(&conn, "before").await;
    // Leaves an idle connection for the next listing.
    assert_eq!(conn.list_all_accounts().await.unwrap().len(), 1);
    server.restart().unwrap();
    // A search that finds its idle connection closed starts again on a new
    // one: nothing was read yet.
    assert_eq!(conn.list_all_accounts().await.unwrap().len(), 1);
    // A write may see the drop (retryable); the next reconnects and binds again.
    let mut tries = 0;
    loop {
        tries += 1;
        match conn
            .create_account(CreateAccount::new("after", person("Doe")))
            .await
        {
            Ok(_) => break,
            Err(e) => {
                assert!(e.is_retryable(), "{e}");
                assert!(tries < 3, "still failing: {e}");
            }
        }
    }
    assert_eq!(conn.list_all_accounts().await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_attributes_keep_every_byte() {
    let server = slapd();
    let mut cfg = config(&server, Dialect::OpenLdap);
    cfg.accounts.attributes.insert(
        "photo".to_owned(),
        prov_ldap::AttributeMap::with_syntax("jpegPhoto", prov_ldap::Syntax::Binary),
    );
    let conn = LdapConnector::new(cfg).unwrap();
    let mut attrs = person("Doe");
    attrs.insert(
        "photo".to_owned(),
        Value::Bytes(vec![0xff, 0xd8, 0x00, 0x01, 0x80]),
    );
    let made = conn
        .create_account(CreateAccount::new("pic", attrs))
        .await
        .unwrap();
    let got = conn.get_account(&made.id).await.unwrap();
    assert_eq!(
        got.attributes.get("photo"),
        Some(&Value::Bytes(vec![0xff, 0xd8, 0x00, 0x01, 0x80]))
    );
    let delta = AttributeDelta::default().set("photo", Value::Bytes(vec![0x00, 0xfe, 0xc3]));
    conn.update_account(UpdateAccount::new(made.id.clone(), delta))
        .await
        .unwrap();
    let got = conn.get_account(&made.id).await.unwrap();
    assert_eq!(
        got.attributes.get("photo"),
        Some(&Value::Bytes(vec![0x00, 0xfe, 0xc3]))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_bound_a_silent_server() {
    use std::time::{Duration, Instant};
    let server = slapd();
    let mut cfg = config(&server, Dialect::OpenLdap);
    cfg.connection.operation_timeout = Duration::from_millis(300);
    cfg.connection.connect_timeout = Duration::from_millis(300);
    let conn = LdapConnector::new(cfg).unwrap();
    create(&conn, "before").await;
    // A server that stops answering: the operation gives up in time, retryably.
    server.pause().unwrap();
    let started = Instant::now();
    let e = conn.list_all_accounts().await.unwrap_err();
    let waited = started.elapsed();
    server.resume().unwrap();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.is_retryable());
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    // Once it answers again, so do we.
    assert_eq!(conn.list_all_accounts().await.unwrap().len(), 1);

    // A port that accepts and never speaks LDAP: connecting (the bind) times out.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cfg = config(&server, Dialect::OpenLdap);
    cfg.connection.url = format!("ldap://{}", silent.local_addr().unwrap());
    cfg.connection.connect_timeout = Duration::from_millis(300);
    let e = LdapConnector::new(cfg).unwrap().check().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    drop(silent);
}

/// OpenLDAP keeps one paged search per connection: a second one started on
/// the same connection voids the first one's cookie. Listings that run at
/// the same time (accounts, groups, members, and each listing's own
/// read-ahead) must each still see every page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paged_listings_at_the_same_time_each_see_every_page() {
    let server = slapd();
    let names: Vec<String> = (0..30).map(|g| format!("team{g:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    add_groups(&server, &["groupOfUniqueNames"], "uniqueMember", &refs);
    let mut cfg = config(&server, Dialect::OpenLdapUniqueMember);
    cfg.page_size = 7;
    let conn = LdapConnector::new(cfg).unwrap();
    let n = 80;
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(create(&conn, &format!("p{i:03}")).await);
    }
    for (g, name) in names.iter().enumerate().take(5) {
        let members: Vec<AccountId> = ids.iter().skip(g).step_by(5).cloned().collect();
        let out = conn
            .grant(MembershipChange::new(
                EntitlementId::new(name.clone()),
                members,
            ))
            .await
            .unwrap();
        assert!(out.is_ok(), "{:?}", out.failures.first());
    }
    let team00 = EntitlementId::new("team00");
    for round in 0..5 {
        let (a, b, groups, members) = tokio::join!(
            conn.list_all_accounts(),
            conn.list_all_accounts(),
            conn.list_all_entitlements(),
            conn.list_all_members(&team00),
        );
        for listed in [a, b] {
            let listed = listed.unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert_eq!(listed.len(), n, "round {round}");
            let held: usize = listed.iter().map(|a| a.entitlements.len()).sum();
            assert_eq!(held, n, "round {round}: each account is in one team");
        }
        let groups = groups.unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(groups.len(), 30, "round {round}");
        let members = members.unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(members.len(), n / 5, "round {round}");
    }
    // A cursor whose search is gone is refused, naming the cursor.
    let first = conn.list_accounts(ListRequest::first()).await.unwrap();
    let cursor = first.next.expect("more than one page");
    let (base, _) = cursor.split_once(':').unwrap();
    let gone = format!("{base}:ffffffffffffffff01");
    let e = conn
        .list_accounts(ListRequest::after(gone))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert_eq!(e.field(), Some("cursor"));
    assert!(
        e.message().contains("list again from the first page"),
        "{e}"
    );
    // The live cursor still works.
    let second = conn
        .list_accounts(ListRequest::after(cursor))
        .await
        .unwrap();
    assert_eq!(second.items.len(), 7);

    // Members are paged from the list the first page read: a group that
    // changes meanwhile neither skips nor repeats anyone.
    let before = conn.list_all_members(&team00).await.unwrap();
    let mut req = ListRequest::first().with_page_size(5);
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = conn.list_members(&team00, req.clone()).await.unwrap();
        pages += 1;
        if pages == 1 {
            let out = conn
                .revoke(MembershipChange::new(
                    team00.clone(),
                    page.items[..3].to_vec(),
                ))
                .await
                .unwrap();
            assert!(out.is_ok());
        }
        seen.extend(page.items);
        match page.next {
            Some(c) => req = ListRequest::after(c).with_page_size(5),
            None => break,
        }
    }
    assert_eq!(pages, 4);
    assert_eq!(seen, before, "the list as the first page saw it");
    assert_eq!(conn.list_all_members(&team00).await.unwrap().len(), 13);
    // A cursor of one group's listing is not taken for another group.
    let first = conn
        .list_members(&team00, ListRequest::first().with_page_size(5))
        .await
        .unwrap();
    let e = conn
        .list_members(
            &EntitlementId::new("team01"),
            ListRequest::after(first.next.clone().expect("more than one page")),
        )
        .await
        .unwrap_err();
    assert_eq!(e.field(), Some("cursor"), "{e}");
    // The live listing's number with an offset past its end: refused, not
    // wrapped around.
    let live = first.next.clone().expect("more than one page");
    let (n, _) = live.split_once(':').expect("number:offset");
    let edited = format!("{n}:{}", usize::MAX);
    for (cursor, what) in [
        ("12345:5", "list again"),
        ("x", "not a cursor"),
        (edited.as_str(), "not a cursor"),
    ] {
        let e = conn
            .list_members(&team00, ListRequest::after(cursor))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert_eq!(e.field(), Some("cursor"));
        assert!(e.message().contains(what), "{e}");
    }
}

/// Two model attributes may read one directory attribute, and one may read
/// the login attribute: each gets the value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_directory_attribute_feeds_several_model_attributes() {
    let server = slapd();
    let mut cfg = config(&server, Dialect::OpenLdap);
    cfg.accounts
        .attributes
        .insert("surname".to_owned(), AttributeMap::string("sn"));
    cfg.accounts
        .attributes
        .insert("username".to_owned(), AttributeMap::string("uid"));
    let conn = LdapConnector::new(cfg).unwrap();
    create(&conn, "shared").await;
    let listed = conn.list_all_accounts().await.unwrap();
    let a = listed.first().expect("one account");
    assert_eq!(a.attributes.get("family_name"), Some(&Value::from("Doe")));
    assert_eq!(a.attributes.get("surname"), Some(&Value::from("Doe")));
    assert_eq!(a.attributes.get("username"), Some(&Value::from("shared")));
    assert_eq!(a.login, "shared");
    let read = conn.get_account(&a.id).await.unwrap();
    assert_eq!(&read, a);
}

/// A secret attribute (an initial password) is written with the create:
/// the person can bind with it; the request never shows it; the marker
/// the create carried comes back with the account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_writes_its_secret_and_keeps_its_marker() {
    let server = slapd();
    let mut cfg = config(&server, Dialect::OpenLdap);
    cfg.accounts
        .attributes
        .insert("password".to_owned(), AttributeMap::string("userPassword"));
    cfg.accounts.marker_attribute = Some("description".to_owned());
    let conn = LdapConnector::new(cfg).unwrap();
    assert!(conn.capabilities().create_marker);
    let mut req = CreateAccount::new("newbie", person("Doe")).with_marker("prov:run-1:op-9");
    req.secrets.insert(
        "password".to_owned(),
        prov_core::SecretValue::new(Value::from("Initial-9qv!")),
    );
    assert!(!format!("{req:?}").contains("Initial-9qv!"), "{req:?}");
    let made = conn.create_account(req).await.unwrap();
    assert!(!made.attributes.contains_key("password"));
    assert_eq!(made.marker.as_deref(), Some("prov:run-1:op-9"));
    assert_eq!(bind(&server.url, made.id.as_str(), "Initial-9qv!").await, 0);
    assert_eq!(bind(&server.url, made.id.as_str(), "wrong").await, 49);
    let listed = conn.accounts_with_login("newbie").await.unwrap();
    assert_eq!(listed[0].marker.as_deref(), Some("prov:run-1:op-9"));
    assert_eq!(
        attribute(&server, made.id.as_str(), "description"),
        "prov:run-1:op-9"
    );
}

/// The engine's lookups for correlation go through the directory's own
/// filters, which compare `uid` and `mail` ignoring case: `JSmith` is found
/// for `jsmith` and its mail in other case, a hostile value finds nothing,
/// and the capabilities say logins ignore case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_by_login_and_attribute_ignore_case_as_the_directory_does() {
    let server = slapd();
    let conn = connector(&server, Dialect::OpenLdap);
    assert!(conn.capabilities().login_case_insensitive);
    let mut attrs = person("Smith");
    attrs.insert("mail".to_owned(), Value::from("John.Smith@Example.COM"));
    let id = conn
        .create_account(CreateAccount::new("JSmith", attrs))
        .await
        .unwrap()
        .id;
    create(&conn, "other").await;
    let ids = |found: Vec<prov_core::Account>| -> Vec<String> {
        found.into_iter().map(|a| a.id.to_string()).collect()
    };
    let id = id.to_string();
    assert_eq!(
        ids(conn.accounts_with_login("jsmith").await.unwrap()),
        [id.as_str()]
    );
    assert_eq!(
        ids(conn
            .accounts_where("mail", "john.smith@example.com")
            .await
            .unwrap()),
        [id.as_str()]
    );
    assert_eq!(
        ids(conn.accounts_where("login", "JSMITH").await.unwrap()),
        [id.as_str()]
    );
    for hostile in HOSTILE {
        assert!(
            conn.accounts_where("mail", hostile)
                .await
                .unwrap()
                .is_empty(),
            "{hostile:?}"
        );
    }
    let again = conn
        .create_account(CreateAccount::new("jsmith", person("Smith")))
        .await;
    assert_eq!(
        again.map(|a| a.id).unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
}

/// Issue 17 item 2: a backlog larger than one call reads (1,000 log
/// records) comes in parts, `more` set until the last; every account once,
/// the first token from the log itself; a group's member changes are its
/// members' changes; a deleted group (logold) is a change of its members.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_come_in_parts_and_group_changes_reach_their_members() {
    let server = Slapd::start_with(&{
        let mut o = SlapdOptions::default();
        o.access_log = true;
        o
    })
    .unwrap();
    add_groups(&server, &["groupOfNames"], "member", &["staff"]);
    let mut cfg = config(&server, Dialect::OpenLdap);
    cfg.changes = prov_ldap::ChangeLog::AccessLog {
        base: Slapd::ACCESS_LOG.to_owned(),
    };
    let conn = LdapConnector::new(cfg).unwrap();
    assert!(conn.capabilities().changes_since);
    let start = conn.changes_since(None).await.unwrap();
    assert!(start.changes.is_empty() && !start.more);
    let mut ldif = String::new();
    for i in 0..1100 {
        ldif.push_str(&format!(
            "dn: uid=bulk{i:04},{p}\nobjectClass: inetOrgPerson\nuid: bulk{i:04}\ncn: B\nsn: B\n\n",
            p = server.people()
        ));
    }
    server.tool("ldapadd", &[], &ldif).unwrap();
    let first = conn.changes_since(Some(&start.token)).await.unwrap();
    assert!(first.more, "1,100 records: more than one call reads");
    assert_eq!(first.changes.len(), 1000);
    let second = conn.changes_since(Some(&first.token)).await.unwrap();
    assert!(!second.more);
    assert_eq!(second.changes.len(), 100);
    let ids: BTreeSet<String> = first
        .changes
        .iter()
        .chain(&second.changes)
        .map(|c| match c {
            prov_core::Change::Upserted(a) => a.id.to_string(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids.len(), 1100, "each once");
    // A member added to a group by hand: a change of that account.
    let one = format!("uid=bulk0007,{}", server.people());
    server
        .tool(
            "ldapmodify",
            &[],
            &format!(
                "dn: cn=staff,{}\nchangetype: modify\nadd: member\nmember: {one}\n",
                server.groups()
            ),
        )
        .unwrap();
    let set = conn.changes_since(Some(&second.token)).await.unwrap();
    match set.changes.as_slice() {
        [prov_core::Change::Upserted(a)] => {
            assert_eq!(a.id.as_str(), one);
            assert!(
                a.entitlements.contains(&EntitlementId::new("staff")),
                "{a:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    // The group deleted: its members (from the logged old entry) changed.
    server
        .tool(
            "ldapdelete",
            &[&format!("cn=staff,{}", server.groups())],
            "",
        )
        .unwrap();
    let gone = conn.changes_since(Some(&set.token)).await.unwrap();
    match gone.changes.as_slice() {
        [prov_core::Change::Upserted(a)] => {
            assert_eq!(a.id.as_str(), one);
            assert!(a.entitlements.is_empty(), "{a:?}");
        }
        other => panic!("{other:?}"),
    }
    // A token of another kind is refused, naming the field.
    let e = conn.changes_since(Some("usn:5@dc1")).await.unwrap_err();
    assert_eq!(e.field(), Some("token"), "{e}");
}
