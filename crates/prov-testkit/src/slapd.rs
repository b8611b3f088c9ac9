//! A throwaway OpenLDAP `slapd` for tests and benchmarks: its own config
//! and database in a temp dir, on a free loopback port, stopped (and its
//! directory removed) when dropped. Needs the Debian packages `slapd` and
//! `ldap-utils` (`./scripts/test.sh` installs them).
//!
//! The server has the `core`, `cosine`, `nis` and `inetorgperson` schemas,
//! equality indexes only, `ou=people`, `ou=groups` and `ou=policies` under
//! the suffix, and the overlays a provisioning test wants: `memberof`
//! (with dangling members refused), `refint` and `ppolicy` (a default policy
//! with `pwdLockout: TRUE`, so `pwdAccountLockedTime` locks an account).
//! `cn=nobody,SUFFIX` exists to be a group's placeholder member.

use std::fmt::Write as _;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to start a server.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SlapdOptions {
    /// The naming context (default `dc=example,dc=org`).
    pub suffix: String,
    /// Skip fsync on writes (`dbnosync`): fast, not durable. Default true.
    pub no_sync: bool,
    /// Also serve `ldaps://` and StartTLS with a certificate made for
    /// `localhost` and `127.0.0.1` by a fresh CA ([`Slapd::ca_file`]).
    pub tls: bool,
    /// Load the memberof overlay (default true): groups of names keep
    /// their members' `memberOf` and refuse members that do not exist.
    pub member_of: bool,
    /// Also load a small Active Directory look-alike schema (`user` with
    /// `sAMAccountName`, `userAccountControl`, `userPrincipalName`;
    /// `group` with `member`; `container`), with `CN=Users,SUFFIX`, and
    /// keep `memberOf` for `group` instead of `groupOfNames`. Not an AD:
    /// it lets the AD dialect's naming, renaming and disabling run against
    /// a real server.
    pub ad_like: bool,
    /// RFC2307bis instead of RFC 2307: `posixGroup` is auxiliary, so a
    /// group can be a `groupOfNames` (member DNs) and a `posixGroup` at once.
    /// Made from Debian's nis.schema with that one change.
    pub rfc2307bis: bool,
    /// Keep a change log: the accesslog overlay writes every successful
    /// write (and a deleted or modified group's old members, `logold`)
    /// to a database at [`Slapd::ACCESS_LOG`]. Default false.
    pub access_log: bool,
}

/// The AD look-alike schema (Microsoft's OIDs and names; types simplified).
const AD_SCHEMA: &str = "\
attributetype ( 1.2.840.113556.1.4.221 NAME 'sAMAccountName' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.8 NAME 'userAccountControl' EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.656 NAME 'userPrincipalName' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.2.141 NAME 'department' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.2 NAME 'objectGUID' EQUALITY octetStringMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 SINGLE-VALUE )
objectclass ( 1.2.840.113556.1.5.9 NAME 'user' SUP organizationalPerson STRUCTURAL MAY ( sAMAccountName $ userAccountControl $ userPrincipalName $ displayName $ givenName $ mail $ department $ employeeNumber $ objectGUID ) )
objectclass ( 1.2.840.113556.1.5.8 NAME 'group' SUP top STRUCTURAL MUST cn MAY ( member $ sAMAccountName $ description ) )
objectclass ( 1.2.840.113556.1.3.23 NAME 'container' SUP top STRUCTURAL MUST cn )
";

impl Default for SlapdOptions {
    fn default() -> Self {
        SlapdOptions {
            suffix: "dc=example,dc=org".to_owned(),
            no_sync: true,
            tls: false,
            member_of: true,
            ad_like: false,
            rfc2307bis: false,
            access_log: false,
        }
    }
}

/// A running `slapd`.
#[derive(Debug)]
pub struct Slapd {
    child: Child,
    dir: PathBuf,
    /// The `-h` argument it was started with.
    listen: String,
    /// `ldap://127.0.0.1:PORT`.
    pub url: String,
    /// `ldaps://127.0.0.1:PORT2` when started with TLS.
    pub ldaps_url: Option<String>,
    /// The naming context.
    pub suffix: String,
    /// The administrator's DN (`cn=admin,SUFFIX`).
    pub admin_dn: String,
    /// The administrator's password.
    pub admin_password: String,
    /// Whether writes skip fsync.
    pub no_sync: bool,
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Whether every thread of process `pid` is stopped (state `T` in
/// `/proc/PID/task/*/stat`). Without /proc there is no telling: true.
fn all_threads_stopped(pid: u32) -> io::Result<bool> {
    let tasks = match std::fs::read_dir(format!("/proc/{pid}/task")) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(e),
    };
    for task in tasks {
        let stat = match std::fs::read_to_string(task?.path().join("stat")) {
            Ok(s) => s,
            // A thread that ended meanwhile.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        // `PID (COMM) STATE ...`: the state follows the last `)`.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        if !matches!(state, Some('T' | 't')) {
            return Ok(false);
        }
    }
    Ok(true)
}

pub(crate) fn run(cmd: &mut Command, what: &str) -> io::Result<()> {
    let out = cmd.output().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("{what}: {e} (are the Debian packages slapd and ldap-utils installed? ./scripts/test.sh installs them)"),
        )
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

fn slapd_binary() -> PathBuf {
    for p in ["/usr/sbin/slapd", "/usr/local/libexec/slapd"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    PathBuf::from("slapd")
}

/// Whether `child` is up on its ports: it wrote its pid file, which slapd
/// does only once its listeners are bound, and `port` answers.
///
/// A TCP connect alone is not proof. Tests start servers side by side on
/// ports picked as free; when two pick the same one, the loser exits, but
/// a connect made before it does reaches the winner, and the loser's test
/// would run (and pause, and restart) against another test's server: the
/// cause of `timeouts_bound_a_silent_server` listing accounts "while its
/// server was paused".
fn is_up(dir: &Path, child: &Child, port: u16) -> bool {
    let ours = std::fs::read_to_string(dir.join("slapd.pid"))
        .is_ok_and(|pid| pid.trim() == child.id().to_string());
    ours && TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Starts slapd in the foreground (`-d 0`), so that the child is the server.
fn spawn(dir: &Path, urls: &str) -> io::Result<Child> {
    let log = std::fs::File::create(dir.join("slapd.log"))?;
    // A pid file left by an earlier start must not vouch for this one.
    match std::fs::remove_file(dir.join("slapd.pid")) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    Command::new(slapd_binary())
        .args(["-d", "0", "-f"])
        .arg(dir.join("slapd.conf"))
        .arg("-h")
        .arg(urls)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("starting slapd: {e}")))
}

impl Slapd {
    /// The suffix of the change log database, with
    /// [`SlapdOptions::access_log`].
    pub const ACCESS_LOG: &'static str = "cn=accesslog";

    /// Stops the server (clients see their connections drop), then starts
    /// it again on the same ports with the same data.
    pub fn restart(&mut self) -> io::Result<()> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let port = self
            .url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok())
            .ok_or_else(|| io::Error::other("no port in the URL"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.child = spawn(&self.dir, &self.listen)?;
            let up = loop {
                if let Ok(Some(_)) = self.child.try_wait() {
                    break false; // the port may still be held: try again
                }
                if is_up(&self.dir, &self.child, port) {
                    break true;
                }
                if Instant::now() > deadline {
                    break false;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            if up {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::other("slapd did not come back within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    /// Returns once every thread of the server is stopped: the signal is
    /// only queued when `kill` returns, and on a busy machine a thread can
    /// still answer a request sent right after.
    pub fn pause(&self) -> io::Result<()> {
        let pid = self.child.id();
        run(
            Command::new("kill").args(["-STOP", &pid.to_string()]),
            "kill -STOP slapd",
        )?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !all_threads_stopped(pid)? {
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "slapd (pid {pid}) did not stop within 10 s of SIGSTOP"
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) -> io::Result<()> {
        run(
            Command::new("kill").args(["-CONT", &self.child.id().to_string()]),
            "kill -CONT slapd",
        )
    }

    /// Starts a server with default options.
    pub fn start() -> io::Result<Slapd> {
        Self::start_with(&SlapdOptions::default())
    }

    /// Starts a server.
    pub fn start_with(opts: &SlapdOptions) -> io::Result<Slapd> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let dir = std::env::temp_dir().join(format!("prov-slapd-{}-{nanos:x}", std::process::id()));
        std::fs::create_dir_all(dir.join("db"))?;
        let started = Self::start_in(&dir, opts);
        if started.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        started
    }

    fn start_in(dir: &Path, opts: &SlapdOptions) -> io::Result<Slapd> {
        let suffix = &opts.suffix;
        let admin_dn = format!("cn=admin,{suffix}");
        let admin_password = "prov-test-secret".to_owned();
        let d = dir.display();
        let mut conf = String::new();
        for schema in ["core", "cosine", "nis", "inetorgperson"] {
            if schema == "nis" && opts.rfc2307bis {
                let nis = std::fs::read_to_string("/etc/ldap/schema/nis.schema")?;
                let bis = nis.replace(
                    "SUP top STRUCTURAL\n\tMUST ( cn $ gidNumber )",
                    "SUP top AUXILIARY\n\tMUST gidNumber",
                );
                if bis == nis {
                    return Err(io::Error::other(
                        "nis.schema does not define posixGroup as expected; cannot make RFC2307bis",
                    ));
                }
                std::fs::write(dir.join("rfc2307bis.schema"), bis)?;
                let _ = writeln!(conf, "include {d}/rfc2307bis.schema");
                continue;
            }
            let _ = writeln!(conf, "include /etc/ldap/schema/{schema}.schema");
        }
        if opts.ad_like {
            std::fs::write(dir.join("ad.schema"), AD_SCHEMA)?;
            let _ = writeln!(conf, "include {d}/ad.schema");
        }
        let _ = writeln!(
            conf,
            "pidfile {d}/slapd.pid\nargsfile {d}/slapd.args\nmodulepath /usr/lib/ldap\n\
             moduleload back_mdb\nmoduleload memberof\nmoduleload refint\nmoduleload ppolicy\n\
             moduleload accesslog\nsizelimit unlimited"
        );
        if opts.tls {
            Self::make_certificates(dir)?;
            let _ = writeln!(
                conf,
                "TLSCACertificateFile {d}/ca.pem\nTLSCertificateFile {d}/server.pem\nTLSCertificateKeyFile {d}/server.key"
            );
        }
        if opts.access_log {
            std::fs::create_dir_all(dir.join("log"))?;
            let _ = writeln!(
                conf,
                "database mdb\nmaxsize 1073741824\nsuffix \"{}\"\nrootdn \"{admin_dn}\"\n\
                 directory {d}/log\nindex reqStart eq",
                Self::ACCESS_LOG
            );
            if opts.no_sync {
                let _ = writeln!(conf, "dbnosync");
            }
        }
        let _ = writeln!(
            conf,
            "database mdb\nmaxsize 4294967296\nsuffix \"{suffix}\"\nrootdn \"{admin_dn}\"\n\
             rootpw {admin_password}\ndirectory {d}/db"
        );
        if opts.no_sync {
            let _ = writeln!(conf, "dbnosync");
        }
        for attr in [
            "objectClass",
            "uid",
            "cn",
            "member",
            "uniqueMember",
            "memberUid",
            "mail",
        ] {
            let _ = writeln!(conf, "index {attr} eq");
        }
        if opts.member_of {
            let _ = writeln!(
                conf,
                "overlay memberof\nmemberof-dangling error\nmemberof-refint TRUE"
            );
            if opts.ad_like {
                let _ = writeln!(conf, "memberof-group-oc group\nmemberof-member-ad member");
            }
        }
        if opts.access_log {
            let _ = writeln!(
                conf,
                "overlay accesslog\nlogdb {}\nlogops writes\nlogsuccess TRUE\n\
                 logold (|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)\
                 (objectClass=posixGroup)(objectClass=group))",
                Self::ACCESS_LOG
            );
        }
        let _ = writeln!(
            conf,
            "overlay refint\nrefint_attributes member uniqueMember\n\
             overlay ppolicy\nppolicy_default \"cn=default,ou=policies,{suffix}\"\n\
             access to attrs=userPassword by self write by anonymous auth by * none\n\
             access to * by * read"
        );
        std::fs::write(dir.join("slapd.conf"), conf)?;
        let first = suffix
            .split(',')
            .next()
            .and_then(|rdn| rdn.split_once('='))
            .map(|(_, v)| v.to_owned())
            .unwrap_or_else(|| "example".to_owned());
        let base = format!(
            "dn: {suffix}\nobjectClass: dcObject\nobjectClass: organization\ndc: {first}\no: {first}\n\n\
             dn: ou=people,{suffix}\nobjectClass: organizationalUnit\nou: people\n\n\
             dn: ou=groups,{suffix}\nobjectClass: organizationalUnit\nou: groups\n\n\
             dn: ou=policies,{suffix}\nobjectClass: organizationalUnit\nou: policies\n\n\
             dn: cn=nobody,{suffix}\nobjectClass: organizationalRole\ncn: nobody\n\n\
             dn: cn=default,ou=policies,{suffix}\nobjectClass: organizationalRole\nobjectClass: pwdPolicy\n\
             cn: default\npwdAttribute: userPassword\npwdLockout: TRUE\n"
        );
        let base = if opts.ad_like {
            format!("{base}\ndn: CN=Users,{suffix}\nobjectClass: container\ncn: Users\n")
        } else {
            base
        };
        std::fs::write(dir.join("base.ldif"), base)?;
        run(
            Command::new("/usr/sbin/slaptest")
                .args(["-u", "-Q", "-f"])
                .arg(dir.join("slapd.conf")),
            "slaptest",
        )?;
        run(
            Command::new("/usr/sbin/slapadd")
                .arg("-q")
                .arg("-f")
                .arg(dir.join("slapd.conf"))
                .arg("-b")
                .arg(suffix)
                .arg("-l")
                .arg(dir.join("base.ldif")),
            "slapadd of the base entries",
        )?;
        let mut last = io::Error::other("slapd did not start");
        for _ in 0..3 {
            let port = free_port()?;
            let tls_port = if opts.tls { Some(free_port()?) } else { None };
            let mut urls = format!("ldap://127.0.0.1:{port}/");
            if let Some(p) = tls_port {
                let _ = write!(urls, " ldaps://127.0.0.1:{p}/");
            }
            let mut child = spawn(dir, &urls)?;
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    let log = std::fs::read_to_string(dir.join("slapd.log")).unwrap_or_default();
                    last = io::Error::other(format!("slapd exited with {status}: {log}"));
                    break;
                }
                if is_up(dir, &child, port) {
                    return Ok(Slapd {
                        child,
                        dir: dir.to_owned(),
                        listen: urls,
                        url: format!("ldap://127.0.0.1:{port}"),
                        ldaps_url: tls_port.map(|p| format!("ldaps://127.0.0.1:{p}")),
                        suffix: suffix.clone(),
                        admin_dn,
                        admin_password,
                        no_sync: opts.no_sync,
                    });
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    last = io::Error::other("slapd did not answer within 10 s");
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Err(last)
    }

    /// A CA and a server certificate for localhost / 127.0.0.1 signed by it.
    pub(crate) fn make_certificates(dir: &Path) -> io::Result<()> {
        let ossl = |args: &[&str], what: &str| {
            run(Command::new("openssl").current_dir(dir).args(args), what)
        };
        ossl(
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=prov test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
            "openssl (test CA)",
        )?;
        ossl(
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
            "openssl (server key)",
        )?;
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )?;
        ossl(
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "server.pem",
            ],
            "openssl (server certificate)",
        )?;
        // slapd may run as another user: let it read the key.
        let _ = std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755));
        Ok(())
    }

    /// The CA certificate (PEM) that signed the server's, when started with TLS.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// `CN=Users,SUFFIX` (with [`SlapdOptions::ad_like`]).
    pub fn ad_users(&self) -> String {
        format!("CN=Users,{}", self.suffix)
    }

    /// `ou=people,SUFFIX`.
    pub fn people(&self) -> String {
        format!("ou=people,{}", self.suffix)
    }

    /// `ou=groups,SUFFIX`.
    pub fn groups(&self) -> String {
        format!("ou=groups,{}", self.suffix)
    }

    /// `cn=nobody,SUFFIX`, an entry to keep groups of names non-empty.
    pub fn nobody(&self) -> String {
        format!("cn=nobody,{}", self.suffix)
    }

    /// Adds groups `names` under `ou=groups` with these object classes, each
    /// holding the placeholder member in `member_attribute` (`cn=nobody,SUFFIX`,
    /// or `nobody` for `memberUid`) and, for a `posixGroup`, a `gidNumber`.
    pub fn add_groups(
        &self,
        object_classes: &[&str],
        member_attribute: &str,
        names: &[&str],
    ) -> io::Result<()> {
        let member = if member_attribute.eq_ignore_ascii_case("memberUid") {
            "nobody".to_owned()
        } else {
            self.nobody()
        };
        let mut ldif = String::new();
        for n in names {
            let _ = writeln!(ldif, "dn: cn={n},{}", self.groups());
            for c in object_classes {
                let _ = writeln!(ldif, "objectClass: {c}");
            }
            let _ = writeln!(ldif, "cn: {n}\n{member_attribute}: {member}");
            if object_classes
                .iter()
                .any(|c| c.eq_ignore_ascii_case("posixGroup"))
            {
                let _ = writeln!(ldif, "gidNumber: 5000");
            }
            ldif.push('\n');
        }
        self.tool("ldapadd", &[], &ldif).map(|_| ())
    }

    /// Runs an OpenLDAP client tool (`ldapadd`, `ldapmodify`, `ldapsearch`)
    /// against the server as the administrator, with `input` on stdin.
    pub fn tool(&self, tool: &str, args: &[&str], input: &str) -> io::Result<String> {
        run_tool(
            Command::new(tool)
                .args([
                    "-x",
                    "-H",
                    &self.url,
                    "-D",
                    &self.admin_dn,
                    "-w",
                    &self.admin_password,
                ])
                .args(args),
            tool,
            input,
        )
    }
}

/// Runs `cmd` (an OpenLDAP client tool named `tool`) with `input` on its
/// standard input; its standard output, or an error with what it said.
pub(crate) fn run_tool(cmd: &mut Command, tool: &str, input: &str) -> io::Result<String> {
    use std::io::Write as _;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("{tool}: {e}")))?;
    // Fed from another thread: the tool writes as it reads, and a full
    // stdout pipe would otherwise stop both sides.
    let feeder = child.stdin.take().map(|mut stdin| {
        let input = input.to_owned();
        std::thread::spawn(move || stdin.write_all(input.as_bytes()))
    });
    let out = child.wait_with_output()?;
    if let Some(feeder) = feeder {
        feeder
            .join()
            .map_err(|_| io::Error::other(format!("{tool}: feeding stdin panicked")))??;
    }
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(io::Error::other(format!(
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    /// Two servers started side by side that picked the same port: the one
    /// that lost the port must not pass for started, though the port answers.
    #[test]
    #[ignore = "needs slapd: run the README test command"]
    fn a_server_that_lost_its_port_is_not_taken_for_up() {
        let a = Slapd::start().unwrap();
        let mut b = Slapd::start().unwrap();
        let port: u16 = a.url.rsplit(':').next().unwrap().parse().unwrap();
        let _ = b.child.kill();
        let _ = b.child.wait();
        // B starts again on A's port, as after a port race.
        b.child = spawn(&b.dir, &a.url).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while b.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            assert!(
                TcpStream::connect(("127.0.0.1", port)).is_ok(),
                "A answers: a connect alone would say B is up"
            );
            assert!(
                !is_up(&b.dir, &b.child, port),
                "B is not the server on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            b.child.try_wait().unwrap().is_some(),
            "B exits: its port was taken"
        );
        assert!(!is_up(&b.dir, &b.child, port));
        // And A, which holds the port, is up by the same test.
        assert!(is_up(&a.dir, &a.child, port));
    }
}
