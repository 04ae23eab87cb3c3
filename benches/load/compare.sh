#!/usr/bin/env bash
# Side-by-side load comparison on this machine (README "Performance"):
#   passthrough = a bare pingora pass-through (examples/passthrough.rs, same pingora
#                 version, same allocator)
#   ssogate     = ssogate with a signed-in session on the Redis store, injecting three
#                 identity headers (user, e-mail, 20 group IDs) and X-Forwarded-*
#   ssogate_noid = the same gateway and session without identity headers (authentication,
#                 route and group check, X-Forwarded-* only): where the rest of the gap goes
# all in front of the same fast upstream (examples/upstream.rs), driven in turn by wrk at
# 50 and at 1000 connections, ROUNDS times alternately. Prints requests/s, p50, p99 and the
# proxy's own CPU time per request (user+sys from /proc, steadier than requests/s on a
# noisy machine) per run, the medians, and the ratios to the pass-through. Fails if any
# response was not a 200.
#
#   benches/load/compare.sh            # DURATION=10s ROUNDS=3 by default
#   BASELINE_BIN=/path/to/older/ssogate benches/load/compare.sh
#                                      # also an older ssogate build ("baseline", same
#                                      # config): what a change cost, in the same run
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/setup.sh
. scripts/ports.sh
for tool in wrk curl; do
  command -v "$tool" >/dev/null || { SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo; $SUDO apt-get install -y -qq "$tool" >&2; }
done
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-"50 1000"}
ulimit -n 65536 2>/dev/null || true

cargo build --release --locked --examples --bin ssogate >&2
BIN=target/release


WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

RP=$(free_port); UP=$(free_port); PT=$(free_port); GW=$(free_port); AD=$(free_port)
GN=$(free_port); AN=$(free_port)
redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" >/dev/null 2>&1 &
PIDS+=($!)
"$BIN/examples/upstream" "127.0.0.1:$UP" 1 2>"$WORK/upstream.log" & PIDS+=($!)
"$BIN/examples/passthrough" "127.0.0.1:$PT" "127.0.0.1:$UP" 2 2>"$WORK/passthrough.log" & PIDS+=($!)
PT_PID=$!
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
[app.headers]
"X-Remote-User" = "name_id"
"X-Remote-Email" = "email"
"X-Remote-Groups" = "groups"
[app.groups]
staff = "e7f3c0ba-0000-4000-8000-000000000001"
[[app.route]]
path = "/"
allow_groups = ["staff"]
TOML
RUST_LOG=warn "$BIN/ssogate" run --config "$WORK/ssogate.toml" 2>"$WORK/ssogate.log" & PIDS+=($!)
GW_PID=$!
# The same without [app.headers]: no identity headers.
sed -e "s/127.0.0.1:$GW/127.0.0.1:$GN/g" -e "s/127.0.0.1:$AD/127.0.0.1:$AN/" \
    -e '/^\[app.headers\]/,/^"X-Remote-Groups"/d' "$WORK/ssogate.toml" >"$WORK/ssogate-noid.toml"
RUST_LOG=warn "$BIN/ssogate" run --config "$WORK/ssogate-noid.toml" 2>"$WORK/ssogate-noid.log" & PIDS+=($!)
GN_PID=$!
TARGETS="passthrough ssogate ssogate_noid"
if [ -n "${BASELINE_BIN:-}" ]; then
  GB=$(free_port); AB=$(free_port)
  sed -e "s/127.0.0.1:$GW/127.0.0.1:$GB/g" -e "s/127.0.0.1:$AD/127.0.0.1:$AB/" \
      "$WORK/ssogate.toml" >"$WORK/ssogate-baseline.toml"
  RUST_LOG=warn "$BASELINE_BIN" run --config "$WORK/ssogate-baseline.toml" 2>"$WORK/baseline.log" & PIDS+=($!)
  GB_PID=$!
  wait_port "$GB"
  TARGETS="$TARGETS baseline"
fi
for p in "$RP" "$UP" "$PT" "$GW" "$GN"; do wait_port "$p"; done

COOKIE=$("$BIN/examples/mint_session" "redis://127.0.0.1:$RP/0" load alice@contoso.example e7f3c0ba-0000-4000-8000-000000000001)
got=$(curl -s -H "Cookie: $COOKIE" "http://127.0.0.1:$GW/app/page")
[ "$got" = "hello alice@contoso.example" ] || { echo "ssogate did not proxy the signed-in request: $got" >&2; cat "$WORK/ssogate.log" >&2; exit 1; }
got=$(curl -s "http://127.0.0.1:$PT/app/page")
[ "$got" = "hello " ] || { echo "pass-through broken: $got" >&2; exit 1; }
got=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $COOKIE" "http://127.0.0.1:$GN/app/page")
[ "$got" = "200" ] || { echo "ssogate (no identity headers) did not proxy: $got" >&2; exit 1; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() { # name url conns pid
  local out before after
  before=$(cpu_ticks "$4")
  out=$(wrk -t2 -c"$3" -d"$DURATION" --latency -s benches/load/status.lua -H "Cookie: $COOKIE" "$2" | grep '^RESULT')
  after=$(cpu_ticks "$4")
  out="$out $(echo "$out" | awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" '{
    for (i = 1; i <= NF; i++) if ($i ~ /^requests=/) { split($i, kv, "="); n = kv[2] }
    printf "cpu_us=%.1f", (n > 0) ? t / hz * 1e6 / n : 0 }')"
  echo "$1 c=$3 $out"
  case "$out" in *" bad=0 errors=0"*) ;; *) echo "FAIL: $1 at $3 connections had non-200 responses or errors: $out" >&2; exit 1;; esac
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }

echo "machine: $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB; duration $DURATION, $ROUNDS rounds, alternating"
RESULTS="$WORK/results"
for c in $CONNS; do
  for r in $(seq 1 "$ROUNDS"); do
    run passthrough "http://127.0.0.1:$PT/app/page" "$c" "$PT_PID" | tee -a "$RESULTS"
    run ssogate "http://127.0.0.1:$GW/app/page" "$c" "$GW_PID" | tee -a "$RESULTS"
    run ssogate_noid "http://127.0.0.1:$GN/app/page" "$c" "$GN_PID" | tee -a "$RESULTS"
    if [ -n "${BASELINE_BIN:-}" ]; then
      run baseline "http://127.0.0.1:$GB/app/page" "$c" "$GB_PID" | tee -a "$RESULTS"
    fi
  done
done

echo
printf '%-13s %6s %12s %10s %10s %14s\n' target conns "req/s" "p50 µs" "p99 µs" "proxy CPU µs/req"
med() { grep "^$1 c=$2 " "$RESULTS" | field "$3" | median; }
for c in $CONNS; do
  for t in $TARGETS; do
    printf '%-13s %6s %12s %10s %10s %14s\n' "$t" "$c" \
      "$(med "$t" "$c" rps)" "$(med "$t" "$c" p50_us)" "$(med "$t" "$c" p99_us)" "$(med "$t" "$c" cpu_us)"
  done
  for t in ${TARGETS#passthrough }; do
    awk -v a="$(med passthrough "$c" rps)" -v b="$(med "$t" "$c" rps)" \
        -v a50="$(med passthrough "$c" p50_us)" -v b50="$(med "$t" "$c" p50_us)" \
        -v a99="$(med passthrough "$c" p99_us)" -v b99="$(med "$t" "$c" p99_us)" \
        -v acpu="$(med passthrough "$c" cpu_us)" -v bcpu="$(med "$t" "$c" cpu_us)" -v c="$c" -v t="$t" 'BEGIN {
      printf "ratio %s/passthrough at %s connections: throughput %.3f; added latency p50 %+d µs, p99 %+d µs; proxy CPU %+.1f µs/req\n", t, c, b/a, b50-a50, b99-a99, bcpu-acpu }'
  done
done
