//! The LDAP connector against OpenLDAP's own command-line tools, on the same
//! throwaway slapd (prov_testkit::slapd: mdb, equality indexes only), in one
//! run, medians of several runs, for each durability mode:
//!
//! - bulk create of N users (default 10,000): `LdapConnector::create_account`
//!   pipelined over one connection, against one `ldapadd` of the same
//!   entries (single stream);
//! - 100 groups x 200 new members: one `grant` per group (one modify each),
//!   against one `ldapmodify` sending one modify per member;
//! - full read of the N users into the model (`list_all_accounts`, paged,
//!   memberships included), against one `ldapsearch` of the same
//!   attributes: both on the same server after our writes, taking turns,
//!   `PROV_BENCH_LDAP_READS` (5) times each per run.
//!
//! `cargo bench --bench ldap`. Environment: `PROV_BENCH_LDAP_USERS` (10000),
//! `PROV_BENCH_LDAP_RUNS` (3), `PROV_BENCH_LDAP_MODES` (`nosync,fsync`),
//! `PROV_BENCH_LDAP_MEMBEROF` (`0`: groups without the memberof overlay,
//! the default; `1`: with it, so every member added also rewrites the
//! member's entry).

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // a benchmark with a broken fixture has nothing to measure

/// The allocator the `prov` binary uses; `RUSTFLAGS="--cfg prov_system_alloc"`
/// measures with the system allocator instead.
#[cfg(not(prov_system_alloc))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use prov::core::{
    AccountId, Attributes, Connector, ConnectorExt, CreateAccount, EntitlementId, MembershipChange,
    Value,
};
use prov::ldap::{Dialect, LdapConfig, LdapConnector, Password};
use prov_testkit::slapd::{Slapd, SlapdOptions};

const GROUPS: usize = 100;
const MEMBERS: usize = 200;

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn server(no_sync: bool, member_of: bool) -> Slapd {
    let mut o = SlapdOptions::default();
    o.no_sync = no_sync;
    o.member_of = member_of;
    Slapd::start_with(&o).unwrap_or_else(|e| panic!("{e}"))
}

fn connector(s: &Slapd, member_of: bool) -> LdapConnector {
    let mut cfg = LdapConfig::new(Dialect::OpenLdap, s.url.clone(), &s.suffix)
        .bind(s.admin_dn.clone(), Password::new(s.admin_password.clone()));
    cfg.groups.placeholder_member = Some(s.nobody());
    // The benchmark's slapd is on the loopback, without TLS.
    cfg.connection.danger_allow_plaintext_bind = true;
    if !member_of {
        cfg.groups.member_of = None;
    }

    LdapConnector::new(cfg).unwrap()
}

fn login(i: usize) -> String {
    format!("user{i:06}")
}

fn attributes(i: usize) -> Attributes {
    let mut a = Attributes::new();
    a.insert("full_name".to_owned(), Value::from(format!("User {i}")));
    a.insert("family_name".to_owned(), Value::from(format!("Family{i}")));
    a.insert("given_name".to_owned(), Value::from("User"));
    a.insert(
        "mail".to_owned(),
        Value::from(format!("user{i}@example.org")),
    );
    a.insert("display_name".to_owned(), Value::from(format!("User {i}")));
    a.insert("title".to_owned(), Value::from("Engineer"));
    a
}

/// The same entries as LDIF, as `ldapadd` takes them.
fn users_ldif(s: &Slapd, n: usize) -> String {
    let mut out = String::new();
    for i in 0..n {
        let _ = write!(
            out,
            "dn: uid={l},{p}\nobjectClass: inetOrgPerson\nuid: {l}\ncn: User {i}\nsn: Family{i}\n\
             givenName: User\nmail: user{i}@example.org\ndisplayName: User {i}\ntitle: Engineer\n\n",
            l = login(i),
            p = s.people()
        );
    }
    out
}

fn add_groups(s: &Slapd) {
    let names: Vec<String> = (0..GROUPS).map(|g| format!("group{g:03}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    s.add_groups(&["groupOfNames"], "member", &names).unwrap();
}

fn members_of(g: usize, n: usize) -> impl Iterator<Item = usize> {
    (0..MEMBERS).map(move |k| (g * MEMBERS + k) % n)
}

/// One modify per member, as a script adding members one by one would send.
fn members_ldif(s: &Slapd, n: usize) -> String {
    let mut out = String::new();
    for g in 0..GROUPS {
        for i in members_of(g, n) {
            let _ = write!(
                out,
                "dn: cn=group{g:03},{}\nchangetype: modify\nadd: member\nmember: uid={},{}\n\n",
                s.groups(),
                login(i),
                s.people()
            );
        }
    }
    out
}

/// `ldapsearch` of the attributes the connector reads, as text.
fn peer_read(s: &Slapd) -> String {
    s.tool(
        "ldapsearch",
        &[
            "-LLL",
            "-b",
            &s.people(),
            "(objectClass=inetOrgPerson)",
            "uid",
            "cn",
            "sn",
            "givenName",
            "mail",
            "displayName",
            "title",
            "memberOf",
        ],
        "",
    )
    .unwrap()
}

fn timed<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let t = Instant::now();
    let out = f();
    (t.elapsed(), out)
}

#[derive(Default)]
struct Samples {
    ours: Vec<Duration>,
    peer: Vec<Duration>,
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn main() {
    let n: usize = env("PROV_BENCH_LDAP_USERS", "10000").parse().unwrap();
    let runs: usize = env("PROV_BENCH_LDAP_RUNS", "3").parse().unwrap();
    let reads: usize = env("PROV_BENCH_LDAP_READS", "5").parse().unwrap();
    let member_of = env("PROV_BENCH_LDAP_MEMBEROF", "0") == "1";
    let modes = env("PROV_BENCH_LDAP_MODES", "nosync,fsync");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for mode in modes.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let no_sync = match mode {
            "nosync" => true,
            "fsync" => false,
            other => panic!("unknown mode {other}: nosync or fsync"),
        };
        let (mut create, mut groups, mut read) =
            (Samples::default(), Samples::default(), Samples::default());
        for run in 0..runs {
            eprintln!("{mode}: run {} of {runs} ({n} users)", run + 1);
            // The peers on their own server.
            let peer = server(no_sync, member_of);
            let ldif = users_ldif(&peer, n);
            let (t, r) = timed(|| peer.tool("ldapadd", &[], &ldif));
            r.unwrap();
            create.peer.push(t);
            add_groups(&peer);
            let mods = members_ldif(&peer, n);
            let (t, r) = timed(|| peer.tool("ldapmodify", &[], &mods));
            r.unwrap();
            groups.peer.push(t);
            drop(peer);

            // Ours on a fresh server of the same kind.
            let ours = server(no_sync, member_of);
            let conn = Arc::new(connector(&ours, member_of));
            let in_flight = conn.capabilities().max_concurrency;
            let (t, ids) = timed(|| {
                rt.block_on(async {
                    conn.check().await.unwrap();
                    let made: Vec<AccountId> = futures_util::stream::iter(0..n)
                        .map(|i| {
                            let conn = Arc::clone(&conn);
                            async move {
                                conn.create_account(CreateAccount::new(login(i), attributes(i)))
                                    .await
                                    .unwrap()
                                    .id
                            }
                        })
                        .buffered(in_flight)
                        .collect()
                        .await;
                    made
                })
            });
            create.ours.push(t);
            add_groups(&ours);
            let (t, ()) = timed(|| {
                rt.block_on(async {
                    futures_util::stream::iter(0..GROUPS)
                        .map(|g| {
                            let conn = Arc::clone(&conn);
                            let members: Vec<AccountId> =
                                members_of(g, n).map(|i| ids[i].clone()).collect();
                            async move {
                                let out = conn
                                    .grant(MembershipChange::new(
                                        EntitlementId::new(format!("group{g:03}")),
                                        members,
                                    ))
                                    .await
                                    .unwrap();
                                assert!(out.is_ok());
                            }
                        })
                        .buffer_unordered(in_flight)
                        .collect::<()>()
                        .await;
                })
            });
            groups.ours.push(t);
            // Reads: both on this server (same entries), taking turns.
            for _ in 0..reads {
                let (t, text) = timed(|| peer_read(&ours));
                assert_eq!(
                    text.matches("\ndn: ").count() + 1,
                    n,
                    "ldapsearch read them all"
                );
                read.peer.push(t);
                let (t, accounts) = timed(|| rt.block_on(conn.list_all_accounts()).unwrap());
                assert_eq!(accounts.len(), n);
                let held: usize = accounts.iter().map(|a| a.entitlements.len()).sum();
                assert_eq!(held, GROUPS * MEMBERS.min(n), "every membership read");
                read.ours.push(t);
            }
        }
        for (what, mut s, peer) in [
            (format!("bulk create {n} users"), create, "ldapadd"),
            (
                format!("{GROUPS} groups x {MEMBERS} new members"),
                groups,
                "ldapmodify, one member per modify",
            ),
            (format!("read {n} users into the model"), read, "ldapsearch"),
        ] {
            let ours = median(&mut s.ours);
            let peer_t = median(&mut s.peer);
            rows.push((
                what,
                mode,
                ours,
                peer,
                peer_t,
                peer_t.as_secs_f64() / ours.as_secs_f64().max(1e-9),
            ));
        }
    }
    println!(
        "\nslapd {}: mdb, equality indexes, memberof overlay {}; {runs} runs each ({reads} reads each per run), medians\n",
        slapd_version(),
        if member_of { "on" } else { "off" }
    );
    println!(
        "| operation | slapd mode | prov-ldap | peer | peer time | ratio (peer / ours) |\n|---|---|---:|---|---:|---:|"
    );
    for (what, mode, ours, peer, peer_t, ratio) in rows {
        let mode = if mode == "nosync" {
            "dbnosync"
        } else {
            "fsync on"
        };
        println!(
            "| {what} | {mode} | {:.3} s | {peer} | {:.3} s | {ratio:.2}x |",
            ours.as_secs_f64(),
            peer_t.as_secs_f64()
        );
    }
}

fn slapd_version() -> String {
    std::process::Command::new("/usr/sbin/slapd")
        .arg("-VV")
        .output()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stderr).into_owned();
            text.split_whitespace()
                .skip_while(|w| *w != "slapd")
                .nth(1)
                .unwrap_or("?")
                .to_owned()
        })
        .unwrap_or_else(|_| "?".to_owned())
}
