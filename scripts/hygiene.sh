#!/usr/bin/env bash
# The checks a reviewer runs before reading a change: formatting, lints with
# warnings as errors, unused dependencies, licences, bans and sources of the
# dependency tree, and the AsyncAPI document against its specification.
# `scripts/test.sh` runs it first; it needs what `scripts/setup.sh --for-tests` installs.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '[hygiene] %s\n' "$*"; }
say "cargo fmt --check"
cargo fmt --all --check
say "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked --quiet -- -D warnings
# The pinned checkers setup.sh builds into .tools/bin.
export PATH="$PWD/.tools/bin:$PATH"
say "cargo machete (unused dependencies)"
cargo machete
# Advisories are not checked: their database is a git repository on GitHub,
# which this project's CI network (package registries only) cannot reach. Run
# `cargo deny check advisories` where it can.
say "cargo deny check licenses bans sources"
# Errors only: `cargo deny check bans` lists the duplicate versions it warns about.
cargo deny --offline --log-level error check licenses bans sources
say "asyncapi validate"
# Offline and silent: no telemetry (CI), no update check against the registry,
# the CLI's analytics file kept in .tools rather than $HOME, no node-config notes.
CI=true ASYNCAPI_SKIP_NEW_VERSION_CHECK=true ASYNCAPI_METRICS_CONFIG_PATH=.tools/asyncapi/analytics.json \
    SUPPRESS_NO_CONFIG_WARNING=1 SUPPRESS_STRICTNESS_CHECK=1 \
    .tools/asyncapi/node_modules/.bin/asyncapi validate contracts/asyncapi.json --fail-severity error </dev/null
