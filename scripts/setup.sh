#!/usr/bin/env bash
# Installs what the demo and the tests need, only where it is missing:
#   - a project-local Python venv (.venv) with moto[server], pinned;
#   - PostgreSQL server binaries (initdb, postgres) from the OS packages.
# Safe to run again: it checks before it installs. Needs root or sudo only when
# an OS package is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_VERSION="5.2.5"

say() { printf '[setup] %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=""
apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        say "missing: $* — install it with your package manager and run this again"
        exit 1
    fi
    if [ -z "$apt_updated" ]; then
        as_root apt-get update -qq
        apt_updated=1
    fi
    say "installing OS packages: $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! command -v cargo >/dev/null 2>&1; then
    say "cargo not found: install Rust with rustup (https://rustup.rs) and run this again"
    exit 1
fi

# --- moto in a project-local venv -------------------------------------------
if ! .venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('moto') != '$MOTO_VERSION')" 2>/dev/null; then
    command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
    if [ ! -x .venv/bin/python ]; then
        if ! python3 -m venv .venv >/dev/null 2>&1; then
            rm -rf .venv
            apt_install python3-venv
            python3 -m venv .venv
        fi
    fi
    say "installing moto[server]==$MOTO_VERSION into .venv"
    .venv/bin/pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi

# --- PostgreSQL server binaries ------------------------------------------------
have_postgres() {
    [ -n "${PG_BIN_DIR:-}" ] && [ -x "$PG_BIN_DIR/initdb" ] && return 0
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && return 0
    command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1
}
if ! have_postgres; then
    apt_install postgresql
fi
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    say "running as root: creating the unprivileged 'postgres' user that owns test clusters"
    as_root useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

say "ready: moto $MOTO_VERSION in .venv, PostgreSQL binaries present"
