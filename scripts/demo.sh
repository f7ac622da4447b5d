#!/usr/bin/env bash
# Starts the whole system on this machine (no Docker): MiniStack on :4566 (or
# the emulator --emulator names), an
# ephemeral Postgres, the topology and the three services on :8081-8083, places
# sample orders and prints their journey. Ctrl-C stops everything.
# Options are passed to the demo: scripts/demo.sh --help
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --workspace --bins --locked
exec "${CARGO_TARGET_DIR:-target}/debug/demo" "$@"
