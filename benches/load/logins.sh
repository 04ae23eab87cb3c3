#!/usr/bin/env bash
# Logins per second through ssogate's ACS (Redis store), with an Entra-shaped response
# signed by a development IdP: see examples/login_load.rs. N=2000 CONC=8 by default.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/setup.sh
. scripts/ports.sh
. benches/load/lib.sh
N=${N:-2000}; CONC=${CONC:-8}
load_setup
UP=$(free_port); GW=$(free_port); AD=$(free_port)
"$BIN/examples/upstream" "127.0.0.1:$UP" 1 2>/dev/null & PIDS+=($!)
"$BIN/examples/login_load" "$WORK" "http://127.0.0.1:$GW" "$N" "$CONC" & LOADER=$!
for _ in $(seq 1 100); do [ -s "$WORK/idp.pem" ] && break; sleep 0.1; done
{
  toml_head "$GW" "$AD"
  echo '# Every sign-in comes from one loopback client here.'
  echo 'max_pending_per_client = 10000000'
  toml_app "$GW" "127.0.0.1:$UP"
} >"$WORK/ssogate.toml"
RUST_LOG=warn "$BIN/ssogate" run --config "$WORK/ssogate.toml" 2>"$WORK/ssogate.log" & PIDS+=($!)
wait "$LOADER"
