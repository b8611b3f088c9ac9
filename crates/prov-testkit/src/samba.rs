//! A throwaway Samba 4 Active Directory domain controller, for tests of
//! the AD dialect against a real implementation of AD's LDAP behaviour
//! (userAccountControl, unicodePwd, memberOf backlinks, tombstones,
//! isCriticalSystemObject and adminCount).
//!
//! The domain (`PROVTEST.LOCAL`, base `DC=provtest,DC=local`) is
//! provisioned once per process into a temp directory (about 8 s); each
//! [`Samba::start`] copies that directory (a fresh domain) and starts
//! `samba` on the loopback from the copy (about 1 s), with a certificate
//! for `127.0.0.1` signed by a CA of its own ([`Samba::ca_file`]). Samba's
//! LDAP ports are fixed at 389 and 636: the instances of a process take
//! turns (the guard [`Samba::start`] returns holds the turn), and a port
//! already taken is an error saying so. Needs the Debian packages
//! `samba`, `samba-ad-provision` and `ldb-tools` (`scripts/test.sh`
//! installs them) and root (the ports are privileged).

use std::io;
use std::net::TcpListener;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::slapd::{Slapd, run};

/// The domain's administrator password (a throwaway test domain).
pub const ADMIN_PASSWORD: &str = "Passw0rd!Test1";

/// A running domain controller, stopped (SIGTERM to its pid) when dropped.
#[derive(Debug)]
pub struct Samba {
    child: Child,
    dir: PathBuf,
    /// `ldaps://127.0.0.1:636`.
    pub ldaps_url: String,
    /// `ldap://127.0.0.1:389` (simple binds there need StartTLS).
    pub url: String,
    /// `DC=provtest,DC=local`.
    pub base: String,
    /// `CN=Administrator,CN=Users,DC=provtest,DC=local`.
    pub admin_dn: String,
    /// [`ADMIN_PASSWORD`].
    pub admin_password: String,
}

/// A started [`Samba`] and this test's turn on its ports.
#[derive(Debug)]
pub struct SambaGuard {
    samba: Samba,
    _turn: MutexGuard<'static, ()>,
}

impl Deref for SambaGuard {
    type Target = Samba;
    fn deref(&self) -> &Samba {
        &self.samba
    }
}

static TURN: Mutex<()> = Mutex::new(());
static TEMPLATE: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// A new directory name under `PROV_TEST_SAMBA_DIR` (which
/// `scripts/test.sh` sets and removes when it ends), else the temp dir.
fn unique(what: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let root = std::env::var_os("PROV_TEST_SAMBA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    root.join(format!("prov-samba-{what}-{}-{nanos}", std::process::id()))
}

fn samba_tool() -> io::Result<PathBuf> {
    for p in ["/usr/bin/samba-tool", "/usr/local/bin/samba-tool"] {
        if Path::new(p).exists() {
            return Ok(PathBuf::from(p));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        "samba-tool not found: install the Debian packages samba, samba-ad-provision and \
         ldb-tools (./scripts/test.sh installs them)",
    ))
}

/// Provisions the template domain (stopped), once per process.
fn provision() -> Result<PathBuf, String> {
    let tool = samba_tool().map_err(|e| e.to_string())?;
    let dir = unique("template");
    let made = (|| -> io::Result<()> {
        for sub in ["run/ncalrpc", "run/winbindd", "run/ntp_signd", "log", "tls"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        Slapd::make_certificates(&dir.join("tls"))?;
        let d = dir.display();
        let mut args: Vec<String> = [
            "domain",
            "provision",
            "-s",
            "/dev/null",
            "--realm=PROVTEST.LOCAL",
            "--domain=PROVTEST",
            "--host-name=dc1",
            "--server-role=dc",
            "--dns-backend=NONE",
            "--use-rfc2307",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.push(format!("--targetdir={d}"));
        args.push(format!("--adminpass={ADMIN_PASSWORD}"));
        for option in [
            "interfaces=lo".to_owned(),
            "bind interfaces only=yes".to_owned(),
            "server services=ldap".to_owned(),
            "ldb:nosync=true".to_owned(),
            format!("pid directory={d}/run"),
            format!("ncalrpc dir={d}/run/ncalrpc"),
            format!("winbindd socket directory={d}/run/winbindd"),
            format!("ntp signd socket directory={d}/run/ntp_signd"),
            format!("log file={d}/log/samba.log"),
        ] {
            args.push(format!("--option={option}"));
        }
        run(
            Command::new(&tool).args(&args),
            "samba-tool domain provision",
        )?;
        // The test CA's certificate for 127.0.0.1, not the self-signed one
        // Samba would make (it names no IP address).
        let conf = dir.join("etc/smb.conf");
        let text = std::fs::read_to_string(&conf)?;
        let tls = format!(
            "[global]\n\ttls enabled = yes\n\ttls keyfile = {d}/tls/server.key\n\t\
             tls certfile = {d}/tls/server.pem\n\ttls cafile = {d}/tls/ca.pem\n"
        );
        std::fs::write(&conf, text.replacen("[global]\n", &tls, 1))?;
        // Test users may change their own password at once.
        run(
            Command::new(&tool).args([
                "domain",
                "passwordsettings",
                "set",
                "-s",
                &conf.display().to_string(),
                "-H",
                &dir.join("private/sam.ldb").display().to_string(),
                "--min-pwd-age=0",
            ]),
            "samba-tool domain passwordsettings",
        )?;
        Ok(())
    })();
    match made {
        Ok(()) => Ok(dir),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            // The end of samba-tool's output says what went wrong.
            let text = e.to_string();
            let lines: Vec<&str> = text.lines().collect();
            Err(lines[lines.len().saturating_sub(12)..].join("\n"))
        }
    }
}

fn port_free(port: u16) -> io::Result<()> {
    TcpListener::bind(("127.0.0.1", port)).map(drop).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "127.0.0.1:{port} is taken ({e}): Samba's LDAP ports are fixed; stop what holds \
                 it (another Samba, or a slapd on the standard port)"
            ),
        )
    })
}

impl Samba {
    /// A fresh domain, started; waits for this process's earlier
    /// instances to stop (the ports are fixed).
    pub fn start() -> io::Result<SambaGuard> {
        let turn = TURN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let template = TEMPLATE
            .get_or_init(provision)
            .as_ref()
            .map_err(|e| io::Error::other(e.clone()))?;
        port_free(389)?;
        port_free(636)?;
        let dir = unique("dc");
        run(
            Command::new("cp").arg("-a").arg(template).arg(&dir),
            "copying the provisioned domain",
        )?;
        // The copy's own paths.
        let conf = dir.join("etc/smb.conf");
        let text = std::fs::read_to_string(&conf)?;
        std::fs::write(
            &conf,
            text.replace(&template.display().to_string(), &dir.display().to_string()),
        )?;
        let out = std::fs::File::create(dir.join("log/samba.out"))?;
        let child = Command::new("samba")
            .arg("-s")
            .arg(&conf)
            .args(["-i", "-M", "single"])
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("samba: {e}")))?;
        let samba = Samba {
            child,
            dir,
            ldaps_url: "ldaps://127.0.0.1:636".to_owned(),
            url: "ldap://127.0.0.1:389".to_owned(),
            base: "DC=provtest,DC=local".to_owned(),
            admin_dn: "CN=Administrator,CN=Users,DC=provtest,DC=local".to_owned(),
            admin_password: ADMIN_PASSWORD.to_owned(),
        };
        samba.wait_ready()?;
        Ok(SambaGuard { samba, _turn: turn })
    }

    /// Until the root DSE answers over LDAPS (the first start makes keys).
    fn wait_ready(&self) -> io::Result<()> {
        let started = Instant::now();
        loop {
            let ok = Command::new("ldapsearch")
                .args(["-x", "-H", &self.ldaps_url, "-b", "", "-s", "base"])
                .env("LDAPTLS_CACERT", self.ca_file())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(30) {
                let log =
                    std::fs::read_to_string(self.dir.join("log/samba.out")).unwrap_or_default();
                return Err(io::Error::other(format!(
                    "samba did not answer on {} within 30 s: {log}",
                    self.ldaps_url
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The CA certificate (PEM) that signed the server's.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("tls/ca.pem")
    }

    /// `CN=Users,DC=provtest,DC=local`.
    pub fn users(&self) -> String {
        format!("CN=Users,{}", self.base)
    }

    /// Runs an OpenLDAP client tool (`ldapsearch`, `ldapmodify`, ...) over
    /// LDAPS as the administrator, with `input` on stdin; its output.
    pub fn tool(&self, tool: &str, args: &[&str], input: &str) -> io::Result<String> {
        crate::slapd::run_tool(
            Command::new(tool)
                .args([
                    "-x",
                    "-H",
                    &self.ldaps_url,
                    "-D",
                    &self.admin_dn,
                    "-w",
                    &self.admin_password,
                ])
                .args(args)
                .env("LDAPTLS_CACERT", self.ca_file())
                .env("LDAPREFERRALS", "off"),
            tool,
            input,
        )
    }

    /// Whether `dn` can bind with `password` over LDAPS.
    pub fn can_bind(&self, dn: &str, password: &str) -> bool {
        self.bind_error(dn, password).is_none()
    }

    /// Why `dn` cannot bind with `password` over LDAPS (`None`: it can).
    pub fn bind_error(&self, dn: &str, password: &str) -> Option<String> {
        // A bind and a read of the root DSE (Samba has no WhoAmI).
        match Command::new("ldapsearch")
            .args(["-x", "-H", &self.ldaps_url, "-D", dn, "-w", password])
            .args(["-b", "", "-s", "base", "1.1"])
            .env("LDAPTLS_CACERT", self.ca_file())
            .output()
        {
            Ok(out) if out.status.success() => None,
            Ok(out) => Some(String::from_utf8_lossy(&out.stderr).into_owned()),
            Err(e) => Some(format!("ldapsearch: {e}")),
        }
    }
}

impl Drop for Samba {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
