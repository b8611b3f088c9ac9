//! prov-aws integration tests: against moto in server mode (PEERS.md),
//! started here on a free loopback port.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test reports failure by panicking

mod fake;
mod iam;
mod identity_center;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A moto server of this test's own.
pub(crate) struct Moto {
    child: Child,
    pub(crate) url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts moto (`PROV_TEST_MOTO`, its venv's bin directory, as the README
/// test command sets it) on a free port and waits for it to answer.
pub(crate) fn moto() -> Moto {
    let dir = std::env::var("PROV_TEST_MOTO").unwrap_or_else(|_| {
        panic!("PROV_TEST_MOTO (moto's bin directory) is not set: run the README test command")
    });
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(std::path::Path::new(&dir).join("moto_server"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "moto did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Moto {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// The SDK configuration for `moto`: fixed test credentials (moto takes
/// any), us-east-1, retries off.
pub(crate) async fn sdk(moto: &Moto) -> aws_config::SdkConfig {
    sdk_at(&moto.url).await
}

/// The SDK configuration for an endpoint at `url` (moto, or the fake).
pub(crate) async fn sdk_at(url: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(aws_credential_types::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "prov-tests",
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await
}
