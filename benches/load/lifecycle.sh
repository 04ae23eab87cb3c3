#!/usr/bin/env bash
# What a reload and a binary upgrade cost under load. ssogate on Redis serves signed-in
# requests (wrk over 50 keep-alive connections, round-robin over 1000 sessions) to a fast
# upstream, while:
#   reload   RELOADS (default 10) config reloads, one a second, alternating two valid
#            configs (`ssogate reload`, which is what SIGHUP does);
#   upgrade  a new process started with `run --upgrade` takes the listening sockets over
#            (SIGQUIT to the old one), as README "Signals" describes.
# For each it prints the requests served, the non-200 answers and wrk's socket errors
# (connect, read, write, timeout), and fails on any non-200 or socket error. Targets (issue 14): 0 failed
# requests for both.
#   benches/load/lifecycle.sh           # PHASE_SECONDS=15 by default
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/setup.sh
. scripts/ports.sh
. benches/load/lib.sh
PHASE_SECONDS=${PHASE_SECONDS:-15}; RELOADS=${RELOADS:-10}
command -v wrk >/dev/null || { SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo; $SUDO apt-get install -y -qq wrk >&2; }
ulimit -n 65536 2>/dev/null || true
load_setup
UP=$(free_port); GW=$(free_port); AD=$(free_port)
"$BIN/examples/upstream" "127.0.0.1:$UP" 1 2>/dev/null & PIDS+=($!)
cp config/example-idp.pem "$WORK/idp.pem"
# The gateway's config; the upgrade socket lives in WORK. EXTRA_ROUTE: 0 or 1.
write_config() { # EXTRA_ROUTE
  {
    toml_head "$GW" "$AD" | sed "s|^\[server\]\$|[server]\nupgrade_socket = \"$WORK/upgrade.sock\"|"
    toml_app "$GW" "127.0.0.1:$UP"
    printf '[app.headers]\n"X-Remote-User" = "name_id"\n'
    if [ "$1" = 1 ]; then printf '[[app.route]]\npath = "/news/"\npublic = true\n'; fi
  } >"$WORK/ssogate.toml"
}
write_config 0
RUST_LOG=warn "$BIN/ssogate" run --config "$WORK/ssogate.toml" 2>"$WORK/old.log" & OLD=$!; PIDS+=($OLD)
for p in "$RP" "$UP" "$GW"; do wait_port "$p"; done
MINT_COUNT=1000 "$BIN/examples/mint_session" "redis://127.0.0.1:$RP/0" load user@contoso.example \
  e7f3c0ba-0000-4000-8000-000000000001 >"$WORK/cookies"

load() { # NAME -> wrk in the background, output in WORK/NAME.wrk
  COOKIES="$WORK/cookies" wrk -t2 -c50 -d"${PHASE_SECONDS}s" -s benches/load/rotate.lua \
    "http://127.0.0.1:$GW/" >"$WORK/$1.wrk" 2>&1 &
  WRK=$!; PIDS+=($WRK)
}
report() { # NAME
  local result errors
  result=$(grep '^RESULT' "$WORK/$1.wrk" || echo "RESULT requests=? bad=?")
  errors=$(grep 'Socket errors' "$WORK/$1.wrk" | sed 's/^ *//' || true)
  printf '%-8s %s  socket errors: %s\n' "$1" "${result#RESULT }" "${errors:-none}"
  case "$result" in *" bad=0") ;; *) FAILED=1;; esac
  [ -z "$errors" ] || FAILED=1
}
FAILED=0

# Reloads, one a second, under load.
load reload
sleep 2
for i in $(seq 1 "$RELOADS"); do
  write_config $((i % 2))
  "$BIN/ssogate" reload --admin "127.0.0.1:$AD" >/dev/null || { echo "reload $i refused" >&2; FAILED=1; }
  sleep 1
done
wait "$WRK" || true
reloads=$(curl -s "http://127.0.0.1:$AD/metrics" | awk '/^ssogate_config_reload_total\{result="success"\}/ {print $2}')

# A binary upgrade under load: the new process waits on the socket, the old one hands over.
load upgrade
sleep 3
RUST_LOG=warn "$BIN/ssogate" run --upgrade --config "$WORK/ssogate.toml" 2>"$WORK/new.log" & NEW=$!; PIDS+=($NEW)
sleep 1
kill -QUIT "$OLD"
wait "$WRK" || true
old_exit=0; wait "$OLD" || old_exit=$?
kill -0 "$NEW" 2>/dev/null && new_alive=yes || new_alive=no

echo "lifecycle under load: wrk -c50, ${PHASE_SECONDS}s a phase, signed-in requests"
report reload
echo "         ($reloads reloads took effect)"
report upgrade
echo "         (old process exit status $old_exit, new process serving: $new_alive)"
[ "$new_alive" = yes ] || FAILED=1
[ "$FAILED" = 0 ] || { echo "FAIL: requests failed (details above)" >&2; exit 1; }
