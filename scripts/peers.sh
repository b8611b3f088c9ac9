#!/usr/bin/env bash
# Real servers for the tests, started on free loopback ports in throwaway
# directories and stopped by their own pid files when the caller exits.
# Sourced by scripts/test.sh; each start_* exports the address its tests read.

PEERS_DIR=$(mktemp -d /tmp/prov-peers.XXXXXX)
# Servers run as their own users (postgres) and must reach their directories.
chmod 755 "$PEERS_DIR"
PEERS_STOP=()

stop_peers() {
  local i
  for (( i=${#PEERS_STOP[@]}-1; i>=0; i-- )); do
    eval "${PEERS_STOP[$i]}" || true
  done
  rm -rf "$PEERS_DIR"
}
trap stop_peers EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Runs a command as `postgres` when we are root (initdb refuses root), else as ourselves.
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    su postgres -s /bin/sh -c "$*"
  else
    sh -c "$*"
  fi
}

apt_install() {
  if [ "$(id -u)" != 0 ]; then
    echo "need root to install Debian packages: $*" >&2
    return 1
  fi
  if [ -z "${PEERS_APT_UPDATED:-}" ]; then
    apt-get update -qq
    PEERS_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# A private PostgreSQL cluster; exports PROV_TEST_POSTGRES_URL.
start_postgres() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  # The server, and psql (postgresql-client), which tests use to break a store on purpose.
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ] || ! command -v psql >/dev/null; then
    echo "installing PostgreSQL (Debian packages postgresql, postgresql-client)"
    apt_install postgresql postgresql-client
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi
  command -v openssl >/dev/null || apt_install openssl
  local dir="$PEERS_DIR/postgres" port
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
  port=$(free_port)
  as_pg "'$bin/initdb' -D '$dir/data' -A trust -U postgres" >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; return 1; }
  # TLS with a throwaway CA, so that the store's verify-full path is tested
  # (PROV_TEST_POSTGRES_TLS_URL, PROV_TEST_POSTGRES_CA).
  ( cd "$dir" \
    && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=prov test CA" \
         -keyout ca.key -out ca.pem \
    && openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr \
    && printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > server.ext \
    && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
         -extfile server.ext -out server.pem \
    && chmod 600 server.key ca.key ) >"$dir/openssl.log" 2>&1 \
    || { cat "$dir/openssl.log" >&2; return 1; }
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"/server.key "$dir"/server.pem
  as_pg "'$bin/pg_ctl' -D '$dir/data' -o \"-k '$dir' -h 127.0.0.1 -p $port -c ssl=on -c ssl_cert_file='$dir/server.pem' -c ssl_key_file='$dir/server.key'\" -l '$dir/log' -w start" >/dev/null \
    || { cat "$dir/log" >&2; return 1; }
  PEERS_STOP+=("as_pg \"'$bin/pg_ctl' -D '$dir/data' -m fast -w stop\" >/dev/null")
  export PROV_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
  export PROV_TEST_POSTGRES_CA="$dir/ca.pem"
  export PROV_TEST_POSTGRES_TLS_URL="postgres://postgres@localhost:$port/postgres?sslmode=verify-full&sslrootcert=$dir/ca.pem"
  echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
}

# OpenLDAP slapd and its client tools. Tests start their own throwaway
# servers (prov_testkit::slapd) on free ports; this only installs them.
ensure_slapd() {
  if [ ! -x /usr/sbin/slapd ] || ! command -v ldapadd >/dev/null || ! command -v openssl >/dev/null; then
    echo "installing OpenLDAP (Debian packages slapd, ldap-utils) and openssl"
    if [ "$(id -u)" = 0 ]; then
      echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
    fi
    apt_install slapd ldap-utils openssl
  fi
  echo "slapd $(/usr/sbin/slapd -VV 2>&1 | grep -o 'slapd [0-9.]*' | head -n 1 | awk '{print $2}')"
}

# Samba 4's AD domain controller (Debian samba, samba-ad-provision,
# ldb-tools). Tests provision and start their own throwaway domain
# (prov_testkit::samba) under PROV_TEST_SAMBA_DIR, removed when we exit;
# this only installs it, without letting the packages start Samba's
# system services.
ensure_samba() {
  if ! command -v samba >/dev/null || ! command -v samba-tool >/dev/null \
    || [ ! -d /usr/share/samba/setup ] || ! dpkg -s samba-dsdb-modules samba-vfs-modules >/dev/null 2>&1 \
    || ! command -v ldapsearch >/dev/null; then
    echo "installing Samba AD DC (Debian packages samba, samba-ad-provision, ldb-tools)"
    local guard=/usr/sbin/policy-rc.d added=""
    if [ "$(id -u)" = 0 ] && [ ! -e "$guard" ]; then
      printf '#!/bin/sh\nexit 101\n' >"$guard"
      chmod 755 "$guard"
      added=1
    fi
    # samba-dsdb-modules and samba-vfs-modules hold the LDB and VFS modules a
    # DC needs (both only recommended by samba).
    apt_install samba samba-ad-provision samba-dsdb-modules samba-vfs-modules ldb-tools ldap-utils openssl
    if [ -n "$added" ]; then rm -f "$guard"; fi
  fi
  mkdir -p "$PEERS_DIR/samba"
  export PROV_TEST_SAMBA_DIR="$PEERS_DIR/samba"
  echo "Samba $(samba --version | awk '{print $2}')"
}

# A Python venv NAME in the user's cache holding PACKAGES, made once (its
# BIN checked); prints its directory. Installs Debian's venv support first
# when missing. Progress goes to standard error.
python_venv() {
  local name="$1" bin="$2"
  shift 2
  local dir="${XDG_CACHE_HOME:-$HOME/.cache}/prov-peers/$name"
  if [ ! -x "$dir/bin/$bin" ]; then
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
      echo "installing Python venv support (Debian packages python3, python3-venv)" >&2
      apt_install python3 python3-venv >&2
    fi
    echo "installing $* into $dir" >&2
    rm -rf "$dir"
    mkdir -p "$(dirname "$dir")"
    python3 -m venv "$dir" >&2 || return 1
    "$dir/bin/pip" install -q --disable-pip-version-check "$@" >&2 || return 1
  fi
  echo "$dir"
}

# Canaille, an identity provider with a SCIM client, in its own venv (kept
# in the user's cache between runs); exports PROV_TEST_CANAILLE, its bin
# directory. The pins are those ../shared/PEERS.md gives.
ensure_canaille() {
  local dir
  dir=$(python_venv canaille-0.3.6 canaille \
    "canaille[scim,sqlite,oidc]==0.3.6" "scim2-client==0.7.5" "scim2-models==0.7.0") || return 1
  export PROV_TEST_CANAILLE="$dir/bin"
  echo "Canaille $("$dir/bin/pip" show canaille 2>/dev/null | awk '/^Version/ {print $2}')"
}

# The SCIM reference server (PyPI scim2-server 0.8.3) in its own venv,
# kept in the user's cache; exports PROV_TEST_SCIM2_SERVER, its bin
# directory. Tests and benchmarks start it themselves on free ports.
ensure_scim2_server() {
  local dir
  dir=$(python_venv scim2-server-0.8.3 scim2-server "scim2-server==0.8.3") || return 1
  export PROV_TEST_SCIM2_SERVER="$dir/bin"
}

# moto 5.2.5 (PyPI `moto[server]`), the AWS emulator, in a venv of its own.
# Tests start their own servers (prov_testkit::moto) on free loopback ports;
# this only installs it and exports PROV_TEST_MOTO (its bin directory).
ensure_moto() {
  local dir
  dir=$(python_venv moto-5.2.5 moto_server "moto[server]==5.2.5") || return 1
  export PROV_TEST_MOTO="$dir/bin"
}

