#!/usr/bin/env bash
# The checks a reviewer runs before reading a change: formatting, lints with
# warnings as errors, unused dependencies, licences, bans and sources of the
# dependency tree, and the AsyncAPI document against its specification.
# `scripts/test.sh` runs it first; it needs what `scripts/setup.sh` installs.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '[hygiene] %s\n' "$*"; }
say "cargo fmt --check"
cargo fmt --all --check
say "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked --quiet -- -D warnings
