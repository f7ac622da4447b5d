#!/usr/bin/env bash
# Builds the three services and their Lambda functions with their named fail
# points compiled in (the `failpoints` feature, see
# shared/platform/src/failpoints.rs) and puts them in
# target/<profile>/failpoints/, where the stack launcher looks for them when a
# test or a chaos experiment arms FAILPOINTS. The plain binaries in
# target/<profile>/, which the demo runs and the Dockerfile ships, are built
# again without them at the end, so no shipped build ever carries fail points.
#   scripts/build-failpoint-services.sh            # debug, for the tests
#   scripts/build-failpoint-services.sh --release  # release, for `target/release/chaos`
set -euo pipefail
cd "$(dirname "$0")/.."
profile=debug
flags=(--locked)
if [ "${1:-}" = "--release" ]; then
    profile=release
    flags+=(--release)
fi
services=(order invoice notification)
bins=()
for service in "${services[@]}"; do bins+=(--bin "$service-service" --bin "$service-function"); done
features=$(printf '%s/failpoints,' "${services[@]}")
# --workspace resolves the dependencies' features as the plain workspace build
# does, so only our own crates are compiled a second time; --bin builds just
# the three services.
cargo build "${flags[@]}" --workspace "${bins[@]}" --features "${features%,}"
target=${CARGO_TARGET_DIR:-target}
mkdir -p "$target/$profile/failpoints"
for service in "${services[@]}"; do
    for binary in "$service-service" "$service-function"; do
        cp "$target/$profile/$binary" "$target/$profile/failpoints/$binary"
    done
done
cargo build "${flags[@]}" --workspace "${bins[@]}"
