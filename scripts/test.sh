#!/usr/bin/env bash
# Runs every test: the hygiene checks, then unit, integration (real Postgres
# and the emulator) and end-to-end tests (the services as processes).
# Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --for-tests
scripts/hygiene.sh
# The end-to-end tests run the service binaries: the plain ones, and for the
# crash and chaos tests the ones with fail points (built into a folder of
# their own, so the plain binaries never carry them).
scripts/build-failpoint-services.sh
cargo build --workspace --bins --locked
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run: cargo prints one result per test binary.
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
exit "$status"
