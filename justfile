# fleetbus — the front door. `just up` runs the system, `just test` runs every test.

set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# Run every test: unit, property, conformance, integration and end-to-end.
test: deps
    cargo test --workspace --all-targets --locked
    cargo test --workspace --doc --locked

# Format and lint.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --locked -- -D warnings

# Benchmarks (figures go to docs/performance.md).
bench: deps
    cargo build --release --locked --bin fleetbus
    cargo bench -p fleetbus-codec --bench decode --locked
    cargo bench -p fleetbus-e2e --bench system --locked
    cargo bench -p fleetbus-e2e --bench opset --locked
    cargo bench -p fleetbus-e2e --bench connections --locked

# Fuzz one protocol's framer, session and parser (needs cargo-fuzz; stable toolchain via RUSTC_BOOTSTRAP).
fuzz protocol="teltonika" seconds="60":
    cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run {{protocol}} -- -max_total_time={{seconds}} -max_len=4096

# Find nats-server >= 2.11 ($NATS_SERVER, PATH) or install the pinned one into .tools/ (prints its path).
deps:
    @scripts/deps.sh

# The whole system locally: three nodes, provisioning, gateways, workers, a simulated fleet. Ctrl-C stops it all.
up: deps
    NATS_SERVER="$(scripts/deps.sh 2>/dev/null)" exec cargo run --locked --quiet --bin fleetbus -- dev up

# Stop a running `just up` and remove the local cluster's state (.data/).
down:
    scripts/down.sh

# `down`, and remove the tools `just deps` installed (.tools/).
clean: down
    rm -rf .tools
