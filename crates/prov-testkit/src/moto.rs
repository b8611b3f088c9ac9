//! A throwaway moto server (the AWS emulator, PyPI `moto[server]`) on a
//! free loopback port, for the AWS connectors' tests. `PROV_TEST_MOTO`
//! names its venv's bin directory; the README test command installs it
//! (`scripts/peers.sh ensure_moto`) and sets it.

use std::io;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running moto server, stopped when dropped.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`: every service, routed by the signing name.
    pub url: String,
}

impl Moto {
    /// Starts moto and waits (up to 30 s) until it takes connections.
    pub fn start() -> io::Result<Moto> {
        let dir = std::env::var("PROV_TEST_MOTO").map_err(|_| {
            io::Error::other(
                "PROV_TEST_MOTO (moto's bin directory) is not set: run the README test command",
            )
        })?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut child = Command::new(std::path::Path::new(&dir).join("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("moto_server in {dir}: {e}")))?;
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = child.try_wait()? {
                return Err(io::Error::other(format!("moto exited at start: {status}")));
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::other(
                    "moto did not take connections within 30 s",
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        })
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
