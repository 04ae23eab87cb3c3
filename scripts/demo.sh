#!/usr/bin/env bash
# The demo command (README): installs what is missing, builds, and starts the gateway with
# an in-memory store, a development IdP (NOT FOR PRODUCTION) and an echo upstream on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
cargo build --locked --release
exec target/release/ssogate demo "$@"
