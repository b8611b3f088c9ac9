//! Groups the engine creates and deletes (issue 16 item 3), per schema:
//! groupOfNames keeps the placeholder member, a posixGroup takes a free
//! gidNumber from the configured range, AD groups get a sAMAccountName.

use prov_core::{Connector, ConnectorExt, Entitlement, EntitlementId, ErrorKind};
use prov_ldap::{Dialect, LdapConnector};
use prov_testkit::slapd::{Slapd, SlapdOptions};

use crate::common::{add_groups, attribute, config, slapd};

fn bis() -> Slapd {
    let mut o = SlapdOptions::default();
    o.rfc2307bis = true;
    Slapd::start_with(&o).unwrap()
}

async fn make(conn: &LdapConnector, name: &str) -> prov_core::Result<Entitlement> {
    conn.create_entitlement(&Entitlement::group(name)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_posix_group_of_names_holds_the_placeholder_and_a_free_gid_number() {
    let server = bis();
    // An existing group at gidNumber 5000, outside the range.
    add_groups(
        &server,
        &["groupOfNames", "posixGroup"],
        "member",
        &["staff"],
    );
    let mut cfg = config(&server, Dialect::Rfc2307bis);
    cfg.groups.gid_numbers = Some((10_000, 10_005));
    let conn = LdapConnector::new(cfg).unwrap();
    assert!(conn.capabilities().create_entitlement);
    assert!(group_notices(&conn).is_empty());
    let dn = |n: &str| conn.group_dn(&EntitlementId::new(n));
    let gid = |n: &str| attribute(&server, &dn(n), "gidNumber");

    let mut shown = Entitlement::group("eng");
    shown.display_name = Some("Engineering".to_owned());
    let made = conn.create_entitlement(&shown).await.unwrap();
    assert_eq!(made.id, EntitlementId::new("eng"));
    assert_eq!(gid("eng"), "10000");
    assert_eq!(attribute(&server, &dn("eng"), "member"), server.nobody());
    assert_eq!(attribute(&server, &dn("eng"), "description"), "Engineering");
    // The placeholder is never a member.
    assert!(
        conn.list_all_members(&EntitlementId::new("eng"))
            .await
            .unwrap()
            .is_empty()
    );
    // Two at once from one connector never share a number.
    let (a, b) = tokio::join!(make(&conn, "a"), make(&conn, "b"));
    a.unwrap();
    b.unwrap();
    let mut two = [gid("a"), gid("b")];
    two.sort();
    assert_eq!(two, ["10001", "10002"]);
    // A name that needs escaping in a DN is one group, found again by name.
    let hostile = "R&D, Europe + \"Lab\"";
    make(&conn, hostile).await.unwrap();
    assert_eq!(gid(hostile), "10003");
    let listed: Vec<String> = conn
        .list_all_entitlements()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id.to_string())
        .collect();
    assert!(listed.contains(&hostile.to_owned()), "{listed:?}");
    // Twice is AlreadyExists, and takes no number.
    let again = make(&conn, "eng").await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::AlreadyExists, "{again}");
    // The top of the range reached, the lowest free number is taken.
    make(&conn, "c").await.unwrap();
    make(&conn, "d").await.unwrap();
    assert_eq!(
        (gid("c"), gid("d")),
        ("10004".to_owned(), "10005".to_owned())
    );
    conn.delete_entitlement(&EntitlementId::new("a"))
        .await
        .unwrap();
    make(&conn, "e").await.unwrap();
    assert_eq!(gid("e"), "10001");
    // A full range is an error naming the setting.
    let full = make(&conn, "f").await.unwrap_err();
    assert_eq!(full.kind(), ErrorKind::Config, "{full}");
    assert_eq!(full.field(), Some("groups.gid_numbers"), "{full}");
    assert!(
        full.to_string()
            .contains("every gidNumber from 10000 to 10005"),
        "{full}"
    );
    // Deleted twice: NotFound.
    conn.delete_entitlement(&EntitlementId::new(hostile))
        .await
        .unwrap();
    let gone = conn
        .delete_entitlement(&EntitlementId::new(hostile))
        .await
        .unwrap_err();
    assert_eq!(gone.kind(), ErrorKind::NotFound, "{gone}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_names_without_a_placeholder_is_not_created_and_check_says_why() {
    let server = slapd();
    let mut cfg = config(&server, Dialect::OpenLdap);
    cfg.groups.placeholder_member = None;
    let conn = LdapConnector::new(cfg).unwrap();
    assert!(!conn.capabilities().create_entitlement);
    assert_eq!(
        group_notices(&conn),
        [
            "a groupOfNames needs a member and groups.placeholder_member is unset: groups are not \
          created on this directory"
        ]
    );
    let e = make(&conn, "eng").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posix_groups_with_member_uids_need_no_placeholder() {
    let server = slapd();
    let mut cfg = config(&server, Dialect::Posix);
    cfg.groups.placeholder_member = None;
    let conn = LdapConnector::new(cfg).unwrap();
    assert!(conn.capabilities().create_entitlement);
    make(&conn, "ops").await.unwrap();
    let dn = conn.group_dn(&EntitlementId::new("ops"));
    assert_eq!(attribute(&server, &dn, "gidNumber"), "10000");
    assert_eq!(attribute(&server, &dn, "memberUid"), "");
}

/// The connector's notices but the one about its test server's plaintext bind.
fn group_notices(conn: &LdapConnector) -> Vec<String> {
    conn.notices()
        .into_iter()
        .filter(|n| !n.starts_with("danger_allow_plaintext_bind"))
        .collect()
}
