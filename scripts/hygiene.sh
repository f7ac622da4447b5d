#!/usr/bin/env bash
# The checks a reviewer runs before reading a change: formatting, lints with
# warnings as errors, unused dependencies, licences, bans and sources of the
# dependency tree, the AsyncAPI document against its specification, and the
# CloudFormation templates and their IAM policies under checkov and parliament.
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
# The CloudFormation templates, rendered by infra/src/cloudformation.rs: checkov's
# CloudFormation checks (offline: nothing fetched from its vendor's platform),
# then parliament on each service role's IAM policy. What they check and why no
# check is skipped: docs/deployment.md.
if [ ! -x .venv-iac/bin/checkov ] || [ ! -x .venv-iac/bin/parliament ]; then
    say ".venv-iac has no checkov or parliament: run scripts/setup.sh --for-tests"
    exit 1
fi
templates=(infra/cloudformation/messaging-*.json)
say "checkov (CloudFormation templates: ${templates[*]})"
if ! .venv-iac/bin/checkov --quiet --compact --skip-download --framework cloudformation \
    "${templates[@]/#/--file=}"; then
    say "checkov failed: fix the renderer (infra/src/cloudformation.rs) and run \`cargo run -p infra --bin ops -- cloudformation write\`;" \
        "only a check that does not apply may be skipped, in the resource's Metadata (checkov: skip: id, comment saying why)"
    exit 1
fi
say "parliament (the IAM policy of each service role)"
policies=$(mktemp -d)
trap 'rm -rf "$policies"' EXIT
.venv-iac/bin/python infra/cloudformation/scan/iam_policies.py "$policies" "${templates[@]}" | sed 's/^/[hygiene]   /'
if ! .venv-iac/bin/parliament --include-community-auditors --minimum_severity INFO \
    --files "$(printf '%s,' "$policies"/*.json | sed 's/,$//')"; then
    say "parliament found problems in a service role's policy (the file is named template.role.policy):" \
        "fix service_policy in infra/src/cloudformation.rs and run \`cargo run -p infra --bin ops -- cloudformation write\`" \
        "(a finding that does not apply: docs/deployment.md says how to ignore it, with the reason)"
    exit 1
fi
