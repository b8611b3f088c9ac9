#!/usr/bin/env bash
# The whole test suite, as README.md gives it: formatting, lints, the
# dependency rules, and every test, including those against real servers
# (PostgreSQL, OpenLDAP slapd, Samba AD DC, Canaille as a SCIM client, scim2-server, moto as the AWS emulator), which this
# script installs if missing, starts on free loopback ports and stops when it exits.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/peers.sh

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "docs build without warnings (broken links are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

step "prov-core stays free of runtimes, HTTP and TLS"
tree=$(cargo tree -p prov-core --edges normal --prefix none --locked)
for banned in tokio hyper reqwest rustls openssl native-tls; do
  if grep -qE "^${banned}( |-)" <<<"$tree"; then
    echo "prov-core depends on ${banned}:" >&2
    cargo tree -p prov-core -i "$banned" >&2 || true
    exit 1
  fi
done
echo "ok"

step "cargo deny (licenses, bans, sources)"
if ! command -v cargo-deny >/dev/null; then
  cargo install --locked cargo-deny
fi
cargo deny check licenses bans sources

step "real servers for the tests"
start_postgres
ensure_slapd
ensure_samba
ensure_canaille
ensure_scim2_server
ensure_moto

step "tests (those needing a real server included)"
cargo test --workspace --locked --lib --tests --examples -- --include-ignored
cargo test --workspace --locked --doc

step "the README's main job: the quickstart"
cargo run --locked --quiet --example quickstart > /dev/null

step "the connector authors' example: its own REST service, the suite, the engine"
cargo run --locked --quiet --example custom_connector > /dev/null

step "the SCIM server example: a service an identity provider provisions into"
cargo run --locked --quiet --example scim_server -- --self-test > /dev/null

step "the integrators' LDAP example: HR CSV + policy into a throwaway slapd"
cargo run --locked --quiet --example hr_csv_to_ldap -- --throwaway-slapd > /dev/null

# The benchmarks are built and the LDAP one run in the test profile, which
# shares the build above: a release build of every dependency would add a
# third of the run's time. This checks that they build and work; the numbers
# in docs/benchmarks.md come from `cargo bench` (optimised).
step "benchmarks build"
cargo test --workspace --locked --benches --no-run

step "the LDAP benchmark against slapd and Samba, small and unoptimised (docs/benchmarks.md has the full run)"
PROV_BENCH_LDAP_USERS=2000 PROV_BENCH_SAMBA_USERS=500 PROV_BENCH_LDAP_RUNS=1 cargo test --locked --bench ldap

step "the integrators' AWS example: HR CSV + policy into IAM Identity Center on a throwaway moto"
cargo run --locked --quiet --example aws_identity_center_sync -- --throwaway-moto > /dev/null
