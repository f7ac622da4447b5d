# syntax=docker/dockerfile:1
#
# One image for the three services, the provisioner, the ops command and the
# development issuer of the compose stack (dev-issuer: never deploy it).
#
#   chef     the pinned Rust toolchain with cargo-chef
#   planner  reduces the workspace to a recipe: its manifests and lockfile
#   builder  builds the dependencies from the recipe (a layer that stays cached
#            until Cargo.toml or Cargo.lock change), then the workspace
#   runtime  distroless: glibc, CA certificates and a non-root user; no shell,
#            no package manager, no build tools
#
# docker compose builds it (see docker-compose.yml); by hand:
#   docker build -t message-driven .
#   docker run --rm message-driven order-service

ARG RUST_VERSION=1.95.0

FROM rust:${RUST_VERSION}-slim-bookworm AS chef
ARG RUST_VERSION
# The image's toolchain: rustup then ignores rust-toolchain.toml (same version)
# instead of downloading the components it lists.
ENV RUSTUP_TOOLCHAIN=${RUST_VERSION}
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /build

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /build/recipe.json recipe.json
# The dependencies of exactly the binaries built below (not the test crates'):
# the layer to cache. tests/tests/system/compose.rs keeps the two lists equal.
RUN cargo chef cook --release --locked --recipe-path recipe.json \
    --bin order-service --bin invoice-service --bin notification-service \
    --bin provision --bin ops --bin healthcheck --bin dev-issuer
COPY . .
# Only the shipped binaries. Their packages do not ask for the `failpoints`
# feature (only scripts/build-failpoint-services.sh does, for the tests), so
# no fail point is compiled in.
RUN cargo build --release --locked \
    --bin order-service --bin invoice-service --bin notification-service \
    --bin provision --bin ops --bin healthcheck --bin dev-issuer

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=builder \
    /build/target/release/order-service \
    /build/target/release/invoice-service \
    /build/target/release/notification-service \
    /build/target/release/provision \
    /build/target/release/ops \
    /build/target/release/healthcheck \
    /build/target/release/dev-issuer \
    /usr/local/bin/
# 65532: distroless's `nonroot`, by number so that runtimes can check it is not root.
USER 65532:65532
EXPOSE 8081 8082 8083
