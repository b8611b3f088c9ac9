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
//! The `samba` mode runs the same three against a throwaway Samba AD DC
//! (prov_testkit::samba, over LDAPS with the AD preset; the peers are the
//! same OpenLDAP tools over LDAPS to the same Samba), with
//! `PROV_BENCH_SAMBA_USERS` (2000) users and 20 groups x 100 members:
//! Samba writes an order of magnitude slower than slapd.
//!
//! `cargo bench --bench ldap`. Environment: `PROV_BENCH_LDAP_USERS` (10000),
//! `PROV_BENCH_LDAP_RUNS` (3), `PROV_BENCH_LDAP_MODES` (`nosync,fsync`, and
//! `samba` when `PROV_TEST_SAMBA_DIR` is set, as the README test command does),
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
use prov_testkit::samba::{Samba, SambaGuard};
use prov_testkit::slapd::{Slapd, SlapdOptions};

/// The size of one mode's run.
#[derive(Clone, Copy)]
struct Shape {
    users: usize,
    groups: usize,
    members: usize,
}

/// The directory a run writes to: a slapd, or a Samba AD DC.
enum Dir {
    Slapd(Slapd),
    Samba(SambaGuard),
}

impl Dir {
    fn start(mode: &str, member_of: bool) -> Dir {
        match mode {
            "samba" => Dir::Samba(Samba::start().unwrap_or_else(|e| panic!("{e}"))),
            _ => Dir::Slapd(server(mode == "nosync", member_of)),
        }
    }

    fn tool(&self, tool: &str, args: &[&str], input: &str) -> String {
        match self {
            Dir::Slapd(s) => s.tool(tool, args, input),
            Dir::Samba(s) => s.tool(tool, args, input),
        }
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn people(&self) -> String {
        match self {
            Dir::Slapd(s) => s.people(),
            Dir::Samba(s) => s.users(),
        }
    }

    fn groups(&self) -> String {
        match self {
            Dir::Slapd(s) => s.groups(),
            Dir::Samba(s) => s.users(),
        }
    }

    fn connector(&self, member_of: bool) -> LdapConnector {
        match self {
            Dir::Slapd(s) => connector(s, member_of),
            Dir::Samba(s) => {
                let mut cfg =
                    LdapConfig::new(Dialect::ActiveDirectory, s.ldaps_url.clone(), &s.base)
                        .bind(s.admin_dn.clone(), Password::new(s.admin_password.clone()));
                cfg.connection.ca_file = Some(s.ca_file());
                // The peers' entries have no password either (Samba takes them).
                cfg.accounts.enabled_needs = None;
                LdapConnector::new(cfg).unwrap()
            }
        }
    }

    /// The RDN of user `i` (the connector names AD users by `cn`, its
    /// login here).
    fn user_dn(&self, i: usize) -> String {
        match self {
            Dir::Slapd(_) => format!("uid={},{}", login(i), self.people()),
            Dir::Samba(_) => format!("CN={},{}", login(i), self.people()),
        }
    }

    fn users_ldif(&self, n: usize) -> String {
        let mut out = String::new();
        for i in 0..n {
            let (class, naming) = match self {
                Dir::Slapd(_) => ("inetOrgPerson", format!("uid: {}", login(i))),
                Dir::Samba(_) => ("user", format!("sAMAccountName: {}", login(i))),
            };
            let _ = write!(
                out,
                "dn: {}\nobjectClass: {class}\n{naming}\ncn: {}\nsn: Family{i}\n\
                 givenName: User\nmail: user{i}@example.org\ndisplayName: User {i}\ntitle: Engineer\n\n",
                self.user_dn(i),
                if matches!(self, Dir::Samba(_)) {
                    login(i)
                } else {
                    format!("User {i}")
                },
            );
        }
        out
    }

    fn add_groups(&self, shape: Shape) {
        match self {
            Dir::Slapd(s) => {
                let names: Vec<String> =
                    (0..shape.groups).map(|g| format!("group{g:03}")).collect();
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                s.add_groups(&["groupOfNames"], "member", &names).unwrap();
            }
            Dir::Samba(_) => {
                let mut ldif = String::new();
                for g in 0..shape.groups {
                    let _ = write!(
                        ldif,
                        "dn: CN=group{g:03},{}\nobjectClass: group\nsAMAccountName: group{g:03}\n\n",
                        self.groups()
                    );
                }
                self.tool("ldapadd", &[], &ldif);
            }
        }
    }

    fn group_dn(&self, g: usize) -> String {
        match self {
            Dir::Slapd(_) => format!("cn=group{g:03},{}", self.groups()),
            Dir::Samba(_) => format!("CN=group{g:03},{}", self.groups()),
        }
    }

    /// One modify per member, as a script adding members one by one would send.
    fn members_ldif(&self, shape: Shape) -> String {
        let mut out = String::new();
        for g in 0..shape.groups {
            for i in members_of(g, shape) {
                let _ = write!(
                    out,
                    "dn: {}\nchangetype: modify\nadd: member\nmember: {}\n\n",
                    self.group_dn(g),
                    self.user_dn(i)
                );
            }
        }
        out
    }

    /// `ldapsearch` of the attributes the connector reads, as text.
    fn peer_read(&self) -> String {
        let (filter, attrs): (&str, &[&str]) = match self {
            Dir::Slapd(_) => (
                "(objectClass=inetOrgPerson)",
                &[
                    "uid",
                    "cn",
                    "sn",
                    "givenName",
                    "mail",
                    "displayName",
                    "title",
                    "memberOf",
                ],
            ),
            Dir::Samba(_) => (
                "(&(objectCategory=person)(objectClass=user)(!(isCriticalSystemObject=TRUE))(!(adminCount=1)))",
                &[
                    "sAMAccountName",
                    "cn",
                    "sn",
                    "givenName",
                    "mail",
                    "displayName",
                    "title",
                    "memberOf",
                    "userAccountControl",
                    "primaryGroupID",
                    "userPrincipalName",
                ],
            ),
        };
        let base = self.people();
        let mut args = vec![
            "-LLL",
            "-E",
            "pr=1000/noprompt",
            "-b",
            base.as_str(),
            filter,
        ];
        args.extend_from_slice(attrs);
        self.tool("ldapsearch", &args, "")
    }
}

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

/// User `i`'s attributes (on AD, `cn` is the RDN: the login).
fn attributes(i: usize, ad: bool) -> Attributes {
    let mut a = Attributes::new();
    if !ad {
        a.insert("full_name".to_owned(), Value::from(format!("User {i}")));
    }
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

fn members_of(g: usize, shape: Shape) -> impl Iterator<Item = usize> {
    (0..shape.members).map(move |k| (g * shape.members + k) % shape.users)
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
    let samba_users: usize = env("PROV_BENCH_SAMBA_USERS", "2000").parse().unwrap();
    let runs: usize = env("PROV_BENCH_LDAP_RUNS", "3").parse().unwrap();
    let reads: usize = env("PROV_BENCH_LDAP_READS", "5").parse().unwrap();
    let member_of = env("PROV_BENCH_LDAP_MEMBEROF", "0") == "1";
    let default_modes = if std::env::var_os("PROV_TEST_SAMBA_DIR").is_some() {
        "nosync,fsync,samba"
    } else {
        "nosync,fsync"
    };
    let modes = env("PROV_BENCH_LDAP_MODES", default_modes);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for mode in modes.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let shape = match mode {
            "nosync" | "fsync" => Shape {
                users: n,
                groups: 100,
                members: 200,
            },
            "samba" => Shape {
                users: samba_users,
                groups: 20,
                members: 100,
            },
            other => panic!("unknown mode {other}: nosync, fsync or samba"),
        };
        let n = shape.users;
        let memberships = shape.groups * shape.members.min(n);
        let (mut create, mut groups, mut read) =
            (Samples::default(), Samples::default(), Samples::default());
        for run in 0..runs {
            eprintln!("{mode}: run {} of {runs} ({n} users)", run + 1);
            // The peers on their own server.
            let peer = Dir::start(mode, member_of);
            let ldif = peer.users_ldif(n);
            let (t, _) = timed(|| peer.tool("ldapadd", &[], &ldif));
            create.peer.push(t);
            peer.add_groups(shape);
            let mods = peer.members_ldif(shape);
            let (t, _) = timed(|| peer.tool("ldapmodify", &[], &mods));
            groups.peer.push(t);
            drop(peer);

            // Ours on a fresh server of the same kind.
            let ours = Dir::start(mode, member_of);
            let conn = Arc::new(ours.connector(member_of));
            let ad = matches!(ours, Dir::Samba(_));
            let in_flight = conn.capabilities().max_concurrency;
            let (t, ids) = timed(|| {
                rt.block_on(async {
                    conn.check().await.unwrap();
                    let made: Vec<AccountId> = futures_util::stream::iter(0..n)
                        .map(|i| {
                            let conn = Arc::clone(&conn);
                            async move {
                                conn.create_account(CreateAccount::new(login(i), attributes(i, ad)))
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
            ours.add_groups(shape);
            let (t, ()) = timed(|| {
                rt.block_on(async {
                    futures_util::stream::iter(0..shape.groups)
                        .map(|g| {
                            let conn = Arc::clone(&conn);
                            let members: Vec<AccountId> =
                                members_of(g, shape).map(|i| ids[i].clone()).collect();
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
                let (t, text) = timed(|| ours.peer_read());
                let entries = text.lines().filter(|l| l.starts_with("dn: ")).count();
                assert!(entries >= n, "ldapsearch read them all: {entries}");
                read.peer.push(t);
                let (t, accounts) = timed(|| rt.block_on(conn.list_all_accounts()).unwrap());
                let ours_read: Vec<_> = accounts
                    .iter()
                    .filter(|a| a.login.starts_with("user"))
                    .collect();
                assert_eq!(ours_read.len(), n);
                let held: usize = ours_read
                    .iter()
                    .map(|a| {
                        a.entitlements
                            .iter()
                            .filter(|e| e.as_str().starts_with("group"))
                            .count()
                    })
                    .sum();
                assert_eq!(held, memberships, "every membership read");
                read.ours.push(t);
            }
        }
        for (what, mut s, peer) in [
            (format!("bulk create {n} users"), create, "ldapadd"),
            (
                format!("{} groups x {} new members", shape.groups, shape.members),
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
        "\nslapd {}: mdb, equality indexes, memberof overlay {}; Samba {} (AD DC, over LDAPS); \
         {runs} runs each ({reads} reads each per run), medians\n",
        slapd_version(),
        if member_of { "on" } else { "off" },
        samba_version()
    );
    println!(
        "| operation | directory | prov-ldap | peer | peer time | ratio (peer / ours) |\n|---|---|---:|---|---:|---:|"
    );
    for (what, mode, ours, peer, peer_t, ratio) in rows {
        let mode = match mode {
            "nosync" => "slapd, dbnosync",
            "fsync" => "slapd, fsync on",
            _ => "Samba AD DC",
        };
        println!(
            "| {what} | {mode} | {:.3} s | {peer} | {:.3} s | {ratio:.2}x |",
            ours.as_secs_f64(),
            peer_t.as_secs_f64()
        );
    }
}

fn samba_version() -> String {
    std::process::Command::new("samba")
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .replace("Version ", "")
        })
        .unwrap_or_else(|_| "?".to_owned())
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
