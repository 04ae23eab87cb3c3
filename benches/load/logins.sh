#!/usr/bin/env bash
# Logins per second through ssogate's ACS (Redis store), with an Entra-shaped response
# signed by a development IdP: see examples/login_load.rs. N=2000 CONC=8 by default.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/setup.sh
. scripts/ports.sh
N=${N:-2000}; CONC=${CONC:-8}
cargo build --release --locked --examples --bin ssogate >&2
BIN=target/release
WORK=$(mktemp -d); PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
RP=$(free_port); UP=$(free_port); GW=$(free_port); AD=$(free_port)
redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" >/dev/null 2>&1 & PIDS+=($!)
"$BIN/examples/upstream" "127.0.0.1:$UP" 1 2>/dev/null & PIDS+=($!)
"$BIN/examples/login_load" "$WORK" "http://127.0.0.1:$GW" "$N" "$CONC" & LOADER=$!
for _ in $(seq 1 100); do [ -s "$WORK/idp.pem" ] && break; sleep 0.1; done
cat >"$WORK/ssogate.toml" <<TOML
[listen]
public = "127.0.0.1:$GW"
admin = "127.0.0.1:$AD"
[server]
threads = 2
grace_period = "1s"
[session]
store = "redis"
redis_url = "redis://127.0.0.1:$RP/0"
cookie_secure = false
# Every sign-in comes from one loopback client here.
max_pending_per_client = 10000000
[[app]]
name = "load"
hosts = ["*"]
upstream = "http://127.0.0.1:$UP"
[app.sp]
entity_id = "http://127.0.0.1:$GW/saml"
acs_url = "http://127.0.0.1:$GW/saml/acs"
[app.idp]
entity_id = "https://idp.example.test/"
sso_url = "https://idp.example.test/saml2"
certificate_file = "idp.pem"
TOML
RUST_LOG=warn "$BIN/ssogate" run --config "$WORK/ssogate.toml" 2>"$WORK/ssogate.log" & PIDS+=($!)
wait "$LOADER"
