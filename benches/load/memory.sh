#!/usr/bin/env bash
# Resident memory of ssogate holding N sessions (default 100000) in its in-process cache.
# Mints N real sessions in Redis (examples/mint_session.rs), has wrk send each cookie
# through the gateway (every response must be a 200), then reads VmRSS before and after.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/setup.sh
. scripts/ports.sh
. benches/load/lib.sh
N=${N:-100000}
command -v wrk >/dev/null || { SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo; $SUDO apt-get install -y -qq wrk >&2; }
ulimit -n 65536 2>/dev/null || true
load_setup
UP=$(free_port); GW=$(free_port); AD=$(free_port)
"$BIN/examples/upstream" "127.0.0.1:$UP" 1 2>/dev/null & PIDS+=($!)
cp config/example-idp.pem "$WORK/idp.pem"
{
  toml_head "$GW" "$AD"
  echo 'cache_ttl = "5m"'
  echo "cache_max_entries = $((N + 1000))"
  toml_app "$GW" "127.0.0.1:$UP"
  printf '[app.headers]\n"X-Remote-User" = "name_id"\n"X-Remote-Groups" = "groups"\n'
} >"$WORK/ssogate.toml"
RUST_LOG=warn "$BIN/ssogate" run --config "$WORK/ssogate.toml" 2>"$WORK/ssogate.log" & GWPID=$!; PIDS+=($GWPID)
for p in "$RP" "$UP" "$GW"; do wait_port "$p"; done
sleep 1
rss() { awk '/VmRSS/ {print $2}' "/proc/$GWPID/status"; }
before=$(rss)
echo "minting $N sessions ..." >&2
MINT_COUNT=$N "$BIN/examples/mint_session" "redis://127.0.0.1:$RP/0" load user@contoso.example \
  $(for i in $(seq 1 20); do printf 'e7f3c0ba-0000-4000-8000-%012d ' "$i"; done) >"$WORK/cookies"
out=$(COOKIES="$WORK/cookies" wrk -t2 -c50 -d$((N / 4000 + 10))s -s benches/load/rotate.lua "http://127.0.0.1:$GW/" | grep '^RESULT')
echo "$out"
case "$out" in *" bad=0") ;; *) echo "FAIL: non-200 responses" >&2; exit 1;; esac
cached=$(curl -s "http://127.0.0.1:$AD/metrics" | awk '/^ssogate_session_cache_entries / {print $2}')
after=$(rss)
echo "sessions cached: ${cached:-?} (of $N minted)"
awk -v b="$before" -v a="$after" -v n="$N" 'BEGIN { printf "VmRSS before %.1f MiB, after %.1f MiB: %.2f KiB per cached session (20 groups each)\n", b/1024, a/1024, (a-b)/n }'
