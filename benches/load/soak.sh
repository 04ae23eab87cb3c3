#!/usr/bin/env bash
# Is memory flat under steady load? ssogate on Redis serves signed-in requests for
# DURATION seconds (default 600) with wrk round-robining over SESSIONS cookies (default
# 20000, each with 20 groups; cache_ttl 10s, so sessions keep leaving and re-entering the
# in-process cache), and every INTERVAL seconds (default 30) the script records the
# gateway's resident memory, open file descriptors, threads, cached sessions and Redis'
# used memory. It prints the series, then the change from the first sample after the
# warm-up (WARMUP, default 60 s) to the last, and fails on any non-200.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/setup.sh
. scripts/ports.sh
. benches/load/lib.sh
DURATION=${DURATION:-600}; INTERVAL=${INTERVAL:-30}; WARMUP=${WARMUP:-60}; SESSIONS=${SESSIONS:-20000}
command -v wrk >/dev/null || { SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo; $SUDO apt-get install -y -qq wrk >&2; }
ulimit -n 65536 2>/dev/null || true
load_setup
UP=$(free_port); GW=$(free_port); AD=$(free_port)
"$BIN/examples/upstream" "127.0.0.1:$UP" 1 2>/dev/null & PIDS+=($!)
cp config/example-idp.pem "$WORK/idp.pem"
{
  toml_head "$GW" "$AD"
  echo 'cache_ttl = "10s"'
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
  printf '%6s %10.1f %6s %8s %8s %10.1f\n' "$1" "$(echo "$rss" | awk '{print $1/1024}')" "$fds" "$threads" "${cached:-?}" "$(echo "$redis" | awk '{print $1/1048576}')"
}
echo "steady load for ${DURATION}s over $SESSIONS sessions; a sample every ${INTERVAL}s"
printf '%6s %10s %6s %8s %8s %10s\n' "t s" "RSS MiB" fds threads cached "Redis MiB"
t=0
while [ "$t" -le "$DURATION" ] && kill -0 "$WRK" 2>/dev/null; do
  sample "$t" | tee -a "$WORK/samples"
  sleep "$INTERVAL"; t=$((t + INTERVAL))
done
wait "$WRK" || true
grep '^RESULT' "$WORK/wrk.out"
case "$(grep '^RESULT' "$WORK/wrk.out")" in *" bad=0") ;; *) echo "FAIL: non-200 responses" >&2; cat "$WORK/wrk.out" >&2; exit 1;; esac
awk -v w="$WARMUP" '$1 >= w && !f {f = 1; r0 = $2; d0 = $3; m0 = $6} {r1 = $2; d1 = $3; m1 = $6; if ($2 > rmax) rmax = $2}
  END {printf "after the warm-up (t >= %ds): RSS %.1f -> %.1f MiB (%+.1f%%, max %.1f), fds %d -> %d, Redis %.1f -> %.1f MiB\n",
    w, r0, r1, (r1 - r0) / r0 * 100, rmax, d0, d1, m0, m1}' "$WORK/samples"
