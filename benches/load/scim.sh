#!/usr/bin/env bash
# SCIM provisioning at tenant size (issue "SCIM as Entra really sends it"): a real Redis,
# ssogate (release) with SCIM on, and examples/scim_load.rs sending Entra's first cycle
# (lookup + create per user, groups, memberships) and an incremental cycle, then timing
# sign-in's group resolution. USERS=100000 N_GROUPS=5000 CONC=8 by default (not GROUPS:
# bash keeps that name for the caller's group IDs).
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/setup.sh
. scripts/ports.sh
USERS=${USERS:-100000}; N_GROUPS=${N_GROUPS:-5000}; CONC=${CONC:-8}
cargo build --release --locked --examples --bin ssogate >&2
BIN=target/release
WORK=$(mktemp -d); PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
RP=$(free_port); GW=$(free_port); AD=$(free_port)
redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" >/dev/null 2>&1 & PIDS+=($!)
TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "$TOKEN" >"$WORK/scim-token"; chmod 600 "$WORK/scim-token"
cp config/example-idp.pem "$WORK/idp.pem"
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
[scim]
enabled = true
token_file = "scim-token"
authoritative_groups = true
[[app]]
name = "load"
hosts = ["*"]
upstream = "http://127.0.0.1:9"
[app.sp]
entity_id = "http://127.0.0.1:$GW/saml"
acs_url = "http://127.0.0.1:$GW/saml/acs"
[app.idp]
entity_id = "https://idp.example.test/"
sso_url = "https://idp.example.test/saml2"
certificate_file = "idp.pem"
TOML
# Audit lines (one per change) at info would be the log's cost, not the directory's.
RUST_LOG=warn "$BIN/ssogate" run --config "$WORK/ssogate.toml" 2>"$WORK/ssogate.log" & PIDS+=($!)
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%Y-%m-%d)"
"$BIN/examples/scim_load" "http://127.0.0.1:$GW" "$TOKEN" "redis://127.0.0.1:$RP/0" "$USERS" "$N_GROUPS" "$CONC"
