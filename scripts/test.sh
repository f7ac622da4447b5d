#!/usr/bin/env bash
# Runs every test: unit, integration (real Postgres and moto) and end to end
# (the three services as processes). Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The end-to-end tests run the service binaries, so build them first.
cargo build --workspace --bins --locked
cargo test --workspace --locked "$@"
