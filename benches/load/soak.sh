#!/usr/bin/env bash
# Is memory flat under steady load? ssogate on Redis serves signed-in requests for
# DURATION seconds (default 600) with wrk round-robining over SESSIONS cookies (default
# 20000, each with 20 groups; cache_ttl 10s, so sessions keep leaving and re-entering the
# in-process cache), and every INTERVAL seconds (default 30) the script records the
# gateway's resident memory, open file descriptors, threads, cached sessions and Redis'
# used memory. Beside that load, examples/soak_traffic.rs signs users in and out and
# sends SCIM writes, RATE (default 10) of each a second: a full sign-in through the ACS
# (page, sign-out, page refused after it), and Entra's create / add to group / disable /
# remove from group / delete of a user. It prints the series, then the change from the
# first sample after the warm-up (WARMUP, default 60 s) to the last, and over the second
# half of the run (once the replay cache has filled); it fails on any
# non-200 of the steady load and any failed sign-in or SCIM request.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/setup.sh
. scripts/ports.sh
. benches/load/lib.sh
DURATION=${DURATION:-600}; INTERVAL=${INTERVAL:-30}; WARMUP=${WARMUP:-60}; SESSIONS=${SESSIONS:-20000}; RATE=${RATE:-10}
command -v wrk >/dev/null || { SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo; $SUDO apt-get install -y -qq wrk >&2; }
ulimit -n 65536 2>/dev/null || true
load_setup
UP=$(free_port); GW=$(free_port); AD=$(free_port)
"$BIN/examples/upstream" "127.0.0.1:$UP" 1 2>/dev/null & PIDS+=($!)
TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "$TOKEN" >"$WORK/scim-token"; chmod 600 "$WORK/scim-token"
# Writes the IdP's certificate (WORK/idp.pem), then waits for the gateway.
"$BIN/examples/soak_traffic" "$WORK" "http://127.0.0.1:$GW" "$TOKEN" "$DURATION" "$RATE" \
  >"$WORK/traffic.out" 2>&1 & TRAFFIC=$!; PIDS+=($TRAFFIC)
for _ in $(seq 1 100); do [ -s "$WORK/idp.pem" ] && break; sleep 0.1; done
{
  toml_head "$GW" "$AD"
  echo 'cache_ttl = "10s"'
  echo '# Every sign-in comes from one loopback client here.'
  echo 'max_pending_per_client = 10000000'
  printf '[scim]\nenabled = true\ntoken_file = "scim-token"\n'
  toml_app "$GW" "127.0.0.1:$UP"
  printf '[app.headers]\n"X-Remote-User" = "name_id"\n"X-Remote-Groups" = "groups"\n'
} >"$WORK/ssogate.toml"
RUST_LOG=warn "$BIN/ssogate" run --config "$WORK/ssogate.toml" 2>"$WORK/ssogate.log" & GWPID=$!; PIDS+=($GWPID)
for p in "$RP" "$UP" "$GW"; do wait_port "$p"; done
MINT_COUNT=$SESSIONS "$BIN/examples/mint_session" "redis://127.0.0.1:$RP/0" load user@contoso.example \
  $(for i in $(seq 1 20); do printf 'e7f3c0ba-0000-4000-8000-%012d ' "$i"; done) >"$WORK/cookies"
COOKIES="$WORK/cookies" wrk -t2 -c50 -d"${DURATION}s" -s benches/load/rotate.lua \
  "http://127.0.0.1:$GW/" >"$WORK/wrk.out" 2>&1 & WRK=$!; PIDS+=($WRK)
sample() { # t
  local rss fds threads cached redis
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$GWPID/status")
  fds=$(ls "/proc/$GWPID/fd" | wc -l)
  threads=$(ls "/proc/$GWPID/task" | wc -l)
  cached=$(curl -s "http://127.0.0.1:$AD/metrics" | awk '/^ssogate_session_cache_entries / {print $2}')
  redis=$(redis-cli -p "$RP" info memory | awk -F: '/^used_memory:/ {print $2}' | tr -d '\r')
  keys=$(redis-cli -p "$RP" dbsize)
  printf '%6s %10.1f %6s %8s %8s %10.1f %8s\n' "$1" "$(echo "$rss" | awk '{print $1/1024}')" "$fds" "$threads" "${cached:-?}" "$(echo "$redis" | awk '{print $1/1048576}')" "$keys"
}
echo "steady load for ${DURATION}s over $SESSIONS sessions, $RATE sign-ins and $RATE SCIM cycles a second; a sample every ${INTERVAL}s"
printf '%6s %10s %6s %8s %8s %10s %8s\n' "t s" "RSS MiB" fds threads cached "Redis MiB" "keys"
t=0
while [ "$t" -le "$DURATION" ] && kill -0 "$WRK" 2>/dev/null; do
  sample "$t" | tee -a "$WORK/samples"
  sleep "$INTERVAL"; t=$((t + INTERVAL))
done
wait "$WRK" || true
traffic=0; wait "$TRAFFIC" || traffic=$?
grep '^RESULT' "$WORK/wrk.out"
grep '^RESULT' "$WORK/traffic.out" || true
case "$(grep '^RESULT' "$WORK/wrk.out")" in *" bad=0") ;; *) echo "FAIL: non-200 responses" >&2; cat "$WORK/wrk.out" >&2; exit 1;; esac
[ "$traffic" = 0 ] || { echo "FAIL: sign-ins or SCIM writes failed" >&2; cat "$WORK/traffic.out" >&2; exit 1; }
awk -v w="$WARMUP" '$1 >= w && !f {f = 1; r0 = $2; d0 = $3; m0 = $6} {r1 = $2; d1 = $3; m1 = $6; if ($2 > rmax) rmax = $2}
  END {printf "after the warm-up (t >= %ds): RSS %.1f -> %.1f MiB (%+.1f%%, max %.1f), fds %d -> %d, Redis %.1f -> %.1f MiB\n",
    w, r0, r1, (r1 - r0) / r0 * 100, rmax, d0, d1, m0, m1}' "$WORK/samples"
# The replay cache (one key per accepted assertion, kept for NotOnOrAfter + clock skew:
# 60 s + 3 min here) fills for its first 241 s, and Redis reclaims expired keys gradually
# after that; the second half of the run is the level.
awk -v h="$((DURATION / 2))" '$1 >= h && !f {f = 1; r0 = $2; m0 = $6; k0 = $7; t0 = $1} {r1 = $2; m1 = $6; k1 = $7; t1 = $1}
  END {if (f) printf "second half (t = %ds to %ds): RSS %.1f -> %.1f MiB (%+.1f%%), Redis %.1f -> %.1f MiB (%+.1f%%), keys %d -> %d\n",
    t0, t1, r0, r1, (r1 - r0) / r0 * 100, m0, m1, (m1 - m0) / m0 * 100, k0, k1}' "$WORK/samples"
