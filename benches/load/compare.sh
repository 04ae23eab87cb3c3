#!/usr/bin/env bash
# Side-by-side load comparison on this machine (README "Performance"):
#   passthrough = a bare pingora pass-through (examples/passthrough.rs, same pingora
#                 version, same allocator)
#   ssogate     = ssogate with a signed-in session on the Redis store, injecting three
#                 identity headers (user, e-mail, 20 group IDs) and X-Forwarded-*
#   passthrough_h6 = the bare pass-through also setting six constant request headers
#                 through the same pingora calls (as many as ssogate adds: three identity
#                 headers and X-Forwarded-For/-Proto/-Host): what that header work costs
#                 any gateway on pingora, apart from ssogate's own work
#   ssogate_noid = the same gateway and session without identity headers (authentication,
#                 route and group check, X-Forwarded-* only): where the rest of the gap goes
#   (TLS=1, the default) ssogate_tls = ssogate with the store on TLS (rediss://, the same
#                 Redis on its TLS port, a CA made for the run); ssogate_miss and
#                 ssogate_tls_miss = both with cache_ttl = 0s, so that every request reads
#                 the session from Redis: what TLS to Redis costs on a cache hit (the usual
#                 request) and on a miss. Not in the steady measures.
# all in front of the same fast upstream (examples/upstream.rs), driven in turn by wrk at
# 50 and at 1000 connections, ROUNDS times alternately. Prints requests/s, p50, p99 and the
# proxy's own CPU time per request (user+sys from /proc, steadier than requests/s on a
# noisy machine) per run, the medians, and the ratios to the pass-through. Fails if any
# response was not a 200.
#
# Then the measures noise cannot move, for each target serving a fixed workload
# (examples/fixed_requests: exactly N requests over keep-alive connections):
#   threads        the proxy's threads while serving
#   ctxsw/req      context switches (voluntary + involuntary, all threads) per request,
#                  STEADY_N requests over 50 connections
#   syscalls/req   system calls per request (strace -c -f), STEADY_N/4 requests
#   instr/req      instructions per request under valgrind --tool=callgrind: a second
#                  instance of the target, counters zeroed after a warm-up, then
#                  INSTR_N requests over 10 connections. Valgrind's CPU has no SHA-NI,
#                  so SHA-256 counts in software (about 3,500 instructions a digest).
# STEADY=0 skips them. KEEP_PROFILES=DIR keeps the callgrind profiles there (read them
# with callgrind_annotate, compare two with `callgrind_annotate --inclusive=no`).
#
#   benches/load/compare.sh            # DURATION=10s ROUNDS=3 by default
#   BASELINE_BIN=/path/to/older/ssogate benches/load/compare.sh
#                                      # also an older ssogate build ("baseline", same
#                                      # config): what a change cost, in the same run
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/setup.sh
. scripts/ports.sh
. benches/load/lib.sh
STEADY=${STEADY:-1}
TLS=${TLS:-1}
LOAD_TLS=$TLS
TOOLS="wrk curl openssl"
[ "$STEADY" = 0 ] || TOOLS="$TOOLS valgrind strace"
for tool in $TOOLS; do
  command -v "$tool" >/dev/null || { SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo; $SUDO apt-get install -y -qq "$tool" >&2; }
done
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-"50 1000"}
STEADY_N=${STEADY_N:-20000}
INSTR_N=${INSTR_N:-2000}
ulimit -n 65536 2>/dev/null || true

load_setup
UP=$(free_port); PT=$(free_port); GW=$(free_port); AD=$(free_port)
GN=$(free_port); AN=$(free_port)
"$BIN/examples/upstream" "127.0.0.1:$UP" 1 2>"$WORK/upstream.log" & PIDS+=($!)
"$BIN/examples/passthrough" "127.0.0.1:$PT" "127.0.0.1:$UP" 2 2>"$WORK/passthrough.log" & PIDS+=($!)
PT_PID=$!
PH=$(free_port)
"$BIN/examples/passthrough" "127.0.0.1:$PH" "127.0.0.1:$UP" 2 6 2>"$WORK/passthrough_h6.log" & PIDS+=($!)
PH_PID=$!
# Each target's command line with the port it listens on as @PORT@ and its admin port as
# @ADMIN@: the steady measures start a second instance under valgrind.
declare -A CMD PORT PID
CMD[passthrough]="$BIN/examples/passthrough 127.0.0.1:@PORT@ 127.0.0.1:$UP 2"
PORT[passthrough]=$PT; PID[passthrough]=$PT_PID
CMD[passthrough_h6]="$BIN/examples/passthrough 127.0.0.1:@PORT@ 127.0.0.1:$UP 2 6"
PORT[passthrough_h6]=$PH; PID[passthrough_h6]=$PH_PID
cp config/example-idp.pem "$WORK/idp.pem"
{
  toml_head "$GW" "$AD"
  toml_app "$GW" "127.0.0.1:$UP"
  cat <<TOML
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
} >"$WORK/ssogate.toml"
RUST_LOG=warn "$BIN/ssogate" run --config "$WORK/ssogate.toml" 2>"$WORK/ssogate.log" & PIDS+=($!)
GW_PID=$!
templated() { sed -e "s/127.0.0.1:$2\"/127.0.0.1:@PORT@\"/g" -e "s/127.0.0.1:$3\"/127.0.0.1:@ADMIN@\"/" "$1" >"$1.in"; }
templated "$WORK/ssogate.toml" "$GW" "$AD"
CMD[ssogate]="$BIN/ssogate run --config $WORK/ssogate.toml.vg"
PORT[ssogate]=$GW; PID[ssogate]=$GW_PID
# The same without [app.headers]: no identity headers.
sed -e "s/127.0.0.1:$GW/127.0.0.1:$GN/g" -e "s/127.0.0.1:$AD/127.0.0.1:$AN/" \
    -e '/^\[app.headers\]/,/^"X-Remote-Groups"/d' "$WORK/ssogate.toml" >"$WORK/ssogate-noid.toml"
RUST_LOG=warn "$BIN/ssogate" run --config "$WORK/ssogate-noid.toml" 2>"$WORK/ssogate-noid.log" & PIDS+=($!)
GN_PID=$!
templated "$WORK/ssogate-noid.toml" "$GN" "$AN"
CMD[ssogate_noid]="$BIN/ssogate run --config $WORK/ssogate-noid.toml.vg"
PORT[ssogate_noid]=$GN; PID[ssogate_noid]=$GN_PID
TARGETS="passthrough passthrough_h6 ssogate ssogate_noid"
STEADY_TARGETS=$TARGETS
if [ "$TLS" = 1 ]; then
  # variant NAME SED-EXPRESSION...: ssogate.toml on new ports, edited, started.
  variant() {
    local name=$1 port admin; shift
    port=$(free_port); admin=$(free_port)
    sed -e "s/127.0.0.1:$GW/127.0.0.1:$port/g" -e "s/127.0.0.1:$AD/127.0.0.1:$admin/" "$@" \
      "$WORK/ssogate.toml" >"$WORK/$name.toml"
    RUST_LOG=warn "$BIN/ssogate" run --config "$WORK/$name.toml" 2>"$WORK/$name.log" & PIDS+=($!)
    PID[$name]=$!; PORT[$name]=$port
    TARGETS="$TARGETS $name"
  }
  on_tls=(-e "s|^redis_url = .*|redis_url = \"rediss://localhost:$RTP/0\"\nredis_ca_file = \"$WORK/redis-ca.pem\"|")
  no_cache=(-e 's|^cookie_secure = false|cookie_secure = false\ncache_ttl = "0s"|')
  variant ssogate_tls "${on_tls[@]}"
  variant ssogate_miss "${no_cache[@]}"
  variant ssogate_tls_miss "${on_tls[@]}" "${no_cache[@]}"
fi
if [ -n "${BASELINE_BIN:-}" ]; then
  GB=$(free_port); AB=$(free_port)
  sed -e "s/127.0.0.1:$GW/127.0.0.1:$GB/g" -e "s/127.0.0.1:$AD/127.0.0.1:$AB/" \
      "$WORK/ssogate.toml" >"$WORK/ssogate-baseline.toml"
  RUST_LOG=warn "$BASELINE_BIN" run --config "$WORK/ssogate-baseline.toml" 2>"$WORK/baseline.log" & PIDS+=($!)
  GB_PID=$!
  templated "$WORK/ssogate-baseline.toml" "$GB" "$AB"
  CMD[baseline]="$BASELINE_BIN run --config $WORK/ssogate-baseline.toml.vg"
  PORT[baseline]=$GB; PID[baseline]=$GB_PID
  wait_port "$GB"
  TARGETS="$TARGETS baseline"
  STEADY_TARGETS="$STEADY_TARGETS baseline"
fi
for p in "$RP" "$UP" "$PT" "$PH" "$GW" "$GN"; do wait_port "$p"; done
for t in $TARGETS; do [ -z "${PORT[$t]:-}" ] || wait_port "${PORT[$t]}"; done

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
    run passthrough_h6 "http://127.0.0.1:$PH/app/page" "$c" "$PH_PID" | tee -a "$RESULTS"
    run ssogate "http://127.0.0.1:$GW/app/page" "$c" "$GW_PID" | tee -a "$RESULTS"
    run ssogate_noid "http://127.0.0.1:$GN/app/page" "$c" "$GN_PID" | tee -a "$RESULTS"
    if [ -n "${BASELINE_BIN:-}" ]; then
      run baseline "http://127.0.0.1:$GB/app/page" "$c" "$GB_PID" | tee -a "$RESULTS"
    fi
    if [ "$TLS" = 1 ]; then
      for t in ssogate_tls ssogate_miss ssogate_tls_miss; do
        run "$t" "http://127.0.0.1:${PORT[$t]}/app/page" "$c" "${PID[$t]}" | tee -a "$RESULTS"
      done
    fi
  done
done

echo
printf '%-15s %6s %12s %10s %10s %14s\n' target conns "req/s" "p50 µs" "p99 µs" "proxy CPU µs/req"
med() { grep "^$1 c=$2 " "$RESULTS" | field "$3" | median; }
for c in $CONNS; do
  for t in $TARGETS; do
    printf '%-15s %6s %12s %10s %10s %14s\n' "$t" "$c" \
      "$(med "$t" "$c" rps)" "$(med "$t" "$c" p50_us)" "$(med "$t" "$c" p99_us)" "$(med "$t" "$c" cpu_us)"
  done
  for t in ${TARGETS#passthrough }; do
    awk -v a="$(med passthrough "$c" rps)" -v b="$(med "$t" "$c" rps)" \
        -v a50="$(med passthrough "$c" p50_us)" -v b50="$(med "$t" "$c" p50_us)" \
        -v a99="$(med passthrough "$c" p99_us)" -v b99="$(med "$t" "$c" p99_us)" \
        -v acpu="$(med passthrough "$c" cpu_us)" -v bcpu="$(med "$t" "$c" cpu_us)" -v c="$c" -v t="$t" 'BEGIN {
      printf "ratio %s/passthrough at %s connections: throughput %.3f; added latency p50 %+d µs, p99 %+d µs; proxy CPU %+.1f µs/req\n", t, c, b/a, b50-a50, b99-a99, bcpu-acpu }'
  done
  if [ "$TLS" = 1 ]; then
    for pair in ssogate_tls/ssogate ssogate_tls_miss/ssogate_miss ssogate_miss/ssogate; do
      b=${pair%/*}; a=${pair#*/}
      awk -v a="$(med "$a" "$c" rps)" -v b="$(med "$b" "$c" rps)" \
          -v a99="$(med "$a" "$c" p99_us)" -v b99="$(med "$b" "$c" p99_us)" \
          -v acpu="$(med "$a" "$c" cpu_us)" -v bcpu="$(med "$b" "$c" cpu_us)" -v c="$c" -v p="$pair" 'BEGIN {
        printf "ratio %s at %s connections: throughput %.3f; p99 %+d µs; proxy CPU %+.1f µs/req\n", p, c, b/a, b99-a99, bcpu-acpu }'
    done
  fi
  awk -v a="$(med passthrough_h6 "$c" rps)" -v b="$(med ssogate "$c" rps)" \
      -v acpu="$(med passthrough_h6 "$c" cpu_us)" -v bcpu="$(med ssogate "$c" cpu_us)" -v c="$c" 'BEGIN {
    printf "ratio ssogate/passthrough_h6 at %s connections (the same header work): throughput %.3f; proxy CPU %+.1f µs/req\n", c, b/a, bcpu-acpu }'
done

[ "$STEADY" = 0 ] && exit 0

ctxsw() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^(non)?voluntary_ctxt_switches/ {n += $2} END {print n + 0}'; }
fixed() { "$BIN/examples/fixed_requests" "127.0.0.1:$1" /app/page "$COOKIE" "$2" "$3"; }
steady() { # target
  local t=$1 port=${PORT[$1]} pid=${PID[$1]} before after threads cs sc vport vadmin vpid cmd
  threads=$(ls /proc/"$pid"/task | wc -l)
  before=$(ctxsw "$pid"); fixed "$port" 50 "$STEADY_N"; after=$(ctxsw "$pid")
  cs=$(awk -v d=$((after - before)) -v n="$STEADY_N" 'BEGIN {printf "%.3f", d / n}')
  strace -f -c -o "$WORK/$t.strace" -p "$pid" 2>/dev/null & local spid=$!
  sleep 1
  fixed "$port" 50 $((STEADY_N / 4))
  kill -INT "$spid"; wait "$spid" 2>/dev/null || true
  sc=$(awk -v n=$((STEADY_N / 4)) '$NF == "total" {printf "%.2f", $(NF-2) / n}' "$WORK/$t.strace")
  # The instruction count, from a second instance under callgrind.
  vport=$(free_port); vadmin=$(free_port)
  for f in "$WORK"/*.toml.in; do
    [ -e "$f" ] && sed -e "s/@PORT@/$vport/g" -e "s/@ADMIN@/$vadmin/g" "$f" >"${f%.in}.vg"
  done
  cmd=${CMD[$t]//@PORT@/$vport}
  # shellcheck disable=SC2086
  RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$WORK/$t.cg" $cmd 2>"$WORK/$t.valgrind.log" &
  vpid=$!; PIDS+=("$vpid")
  wait_port "$vport" 60
  fixed "$vport" 10 200
  callgrind_control -z "$vpid" >/dev/null
  fixed "$vport" 10 "$INSTR_N"
  callgrind_control -d "$vpid" >/dev/null
  kill -INT "$vpid" 2>/dev/null || true; wait "$vpid" 2>/dev/null || true
  local ir
  ir=$(cat "$WORK/$t.cg".* | awk -v n="$INSTR_N" '/^summary:/ {printf "%.0f", $2 / n}')
  if [ -n "${KEEP_PROFILES:-}" ]; then mkdir -p "$KEEP_PROFILES"; cp "$WORK/$t.cg".* "$KEEP_PROFILES/"; fi
  echo "STEADY $t threads=$threads ctxsw=$cs syscalls=$sc instr=$ir"
}

echo
echo "steady measures: $STEADY_N requests (strace: $((STEADY_N / 4))) over 50 connections; instructions: $INSTR_N over 10 under callgrind"
for t in $STEADY_TARGETS; do steady "$t" | tee -a "$RESULTS"; done
echo
printf '%-15s %8s %10s %13s %10s\n' target threads "ctxsw/req" "syscalls/req" "instr/req"
for t in $STEADY_TARGETS; do
  grep "^STEADY $t " "$RESULTS" | awk '{for (i = 3; i <= NF; i++) {split($i, kv, "="); v[kv[1]] = kv[2]}
    printf "%-15s %8s %10s %13s %10s\n", $2, v["threads"], v["ctxsw"], v["syscalls"], v["instr"]}'
done
for t in ${STEADY_TARGETS#passthrough }; do
  awk -v t="$t" '$1 == "STEADY" {for (i = 3; i <= NF; i++) {split($i, kv, "="); v[$2, kv[1]] = kv[2]}}
    END {printf "ratio %s/passthrough: instructions %.3f (%+d/req); context switches %.2f; syscalls %.2f\n", t,
      v[t, "instr"] / v["passthrough", "instr"], v[t, "instr"] - v["passthrough", "instr"],
      v[t, "ctxsw"] / v["passthrough", "ctxsw"], v[t, "syscalls"] / v["passthrough", "syscalls"]}' "$RESULTS"
done
awk '$1 == "STEADY" {for (i = 3; i <= NF; i++) {split($i, kv, "="); v[$2, kv[1]] = kv[2]}}
  END {printf "ratio ssogate/passthrough_h6 (the same header work): instructions %.3f (%+d/req)\n",
    v["ssogate", "instr"] / v["passthrough_h6", "instr"], v["ssogate", "instr"] - v["passthrough_h6", "instr"]}' "$RESULTS"
