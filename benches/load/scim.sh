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
. benches/load/lib.sh
USERS=${USERS:-100000}; N_GROUPS=${N_GROUPS:-5000}; CONC=${CONC:-8}
load_setup
GW=$(free_port); AD=$(free_port)
TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "$TOKEN" >"$WORK/scim-token"; chmod 600 "$WORK/scim-token"
cp config/example-idp.pem "$WORK/idp.pem"
{
  toml_head "$GW" "$AD"
  printf '[scim]\nenabled = true\ntoken_file = "scim-token"\nauthoritative_groups = true\n'
  toml_app "$GW" "127.0.0.1:9"
} >"$WORK/ssogate.toml"
# Audit lines (one per change) at info would be the log's cost, not the directory's.
RUST_LOG=warn "$BIN/ssogate" run --config "$WORK/ssogate.toml" 2>"$WORK/ssogate.log" & PIDS+=($!)
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%Y-%m-%d)"
"$BIN/examples/scim_load" "http://127.0.0.1:$GW" "$TOKEN" "redis://127.0.0.1:$RP/0" "$USERS" "$N_GROUPS" "$CONC"
