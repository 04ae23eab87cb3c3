#!/usr/bin/env bash
# What a reload and a binary upgrade cost under load. ssogate on Redis serves signed-in
# requests (wrk over 50 keep-alive connections, round-robin over 1000 sessions) to a fast
# upstream, while:
#   reload   RELOADS (default 10) config reloads, one a second, alternating two valid
#            configs (`ssogate reload`, which is what SIGHUP does);
#   upgrade  a new process started with `run --upgrade` takes the listening sockets over
#            (SIGQUIT to the old one), as README "Signals" describes;
#   restart  a rolling restart of two replicas (127.0.0.1 and 127.0.0.2, the same Redis)
#            behind a readiness-aware load balancer: caddy's reverse_proxy probing each
#            replica's /readyz every 500 ms (as a Kubernetes Service follows readiness).
#            Each replica in turn gets SIGTERM (drain_period 2s: /readyz fails at once,
#            requests are still served), exits, starts again, becomes ready.
# For each it prints the requests served, the non-200 answers and wrk's socket errors
# (connect, read, write, timeout), and fails on any non-200 or socket error. Targets
# (issue 14): 0 failed requests for all three.
#   benches/load/lifecycle.sh           # PHASE_SECONDS=15 by default (restart: 2x + 6)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/setup.sh
. scripts/ports.sh
. benches/load/lib.sh
PHASE_SECONDS=${PHASE_SECONDS:-15}; RELOADS=${RELOADS:-10}
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
command -v wrk >/dev/null || $SUDO apt-get install -y -qq wrk >&2
command -v caddy >/dev/null || $SUDO apt-get install -y -qq caddy >&2
ulimit -n 65536 2>/dev/null || true
load_setup
UP=$(free_port); GW=$(free_port); AD=$(free_port)
"$BIN/examples/upstream" "127.0.0.1:$UP" 1 2>/dev/null & PIDS+=($!)
cp config/example-idp.pem "$WORK/idp.pem"
# A replica's config on loopback address IP (the upgrade socket in WORK), to FILE.
# EXTRA_ROUTE: 0 or 1.
replica_config() { # EXTRA_ROUTE IP FILE
  {
    toml_head "$GW" "$AD" | sed -e "/^\(public\|admin\) = /s|127\.0\.0\.1:|$2:|" \
      -e "s|^\[server\]\$|[server]\nupgrade_socket = \"$WORK/upgrade-$2.sock\"\ndrain_period = \"2s\"|"
    toml_app "$GW" "127.0.0.1:$UP"
    printf '[app.headers]\n"X-Remote-User" = "name_id"\n'
    if [ "$1" = 1 ]; then printf '[[app.route]]\npath = "/news/"\npublic = true\n'; fi
  } >"$3"
}
write_config() { replica_config "$1" 127.0.0.1 "$WORK/ssogate.toml"; }
write_config 0
RUST_LOG=warn "$BIN/ssogate" run --config "$WORK/ssogate.toml" 2>"$WORK/old.log" & OLD=$!; PIDS+=($OLD)
for p in "$RP" "$UP" "$GW"; do wait_port "$p"; done
MINT_COUNT=1000 "$BIN/examples/mint_session" "redis://127.0.0.1:$RP/0" load user@contoso.example \
  e7f3c0ba-0000-4000-8000-000000000001 >"$WORK/cookies"

load() { # NAME [PORT] [SECONDS] -> wrk in the background, output in WORK/NAME.wrk
  COOKIES="$WORK/cookies" wrk -t2 -c50 -d"${3:-$PHASE_SECONDS}s" -s benches/load/rotate.lua \
    "http://127.0.0.1:${2:-$GW}/" >"$WORK/$1.wrk" 2>&1 &
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

# A rolling restart behind a readiness-aware load balancer. The upgraded process is
# replica 1 (127.0.0.1); replica 2 (127.0.0.2) joins it; caddy spreads over the ready ones.
replica_config 0 127.0.0.2 "$WORK/replica2.toml"
R1=$NEW
RUST_LOG=warn "$BIN/ssogate" run --config "$WORK/replica2.toml" 2>"$WORK/replica2.log" & R2=$!; PIDS+=($R2)
LB=$(free_port)
cat >"$WORK/Caddyfile" <<CADDY
{
  admin off
  auto_https off
}
http://127.0.0.1:$LB {
  reverse_proxy 127.0.0.1:$GW 127.0.0.2:$GW {
    lb_policy least_conn
    health_uri /readyz
    health_port $AD
    health_interval 500ms
    health_timeout 400ms
  }
}
CADDY
XDG_DATA_HOME="$WORK" XDG_CONFIG_HOME="$WORK" caddy run --config "$WORK/Caddyfile" --adapter caddyfile \
  >"$WORK/caddy.log" 2>&1 & PIDS+=($!)
ready() { curl -sf -o /dev/null "http://$1:$AD/readyz"; }
until_ready() { # IP
  for _ in $(seq 1 100); do ready "$1" && return 0; sleep 0.1; done
  echo "replica $1 never became ready" >&2; return 1
}
until_ready 127.0.0.2; wait_port "$LB"
sleep 1 # both in the balancer's view
RESTART_SECONDS=$((PHASE_SECONDS * 2 + 6))
load restart "$LB" "$RESTART_SECONDS"
sleep 2
restart_exits=""
restart() { # IP PID CONFIG LOG -> the new PID in RESTARTED
  local code=0
  kill -TERM "$2"; wait "$2" || code=$?
  restart_exits="$restart_exits $code"
  RUST_LOG=warn "$BIN/ssogate" run --config "$3" 2>>"$4" & RESTARTED=$!; PIDS+=($RESTARTED)
  until_ready "$1"
}
restart 127.0.0.1 "$R1" "$WORK/ssogate.toml" "$WORK/new.log"; R1=$RESTARTED
sleep 2
restart 127.0.0.2 "$R2" "$WORK/replica2.toml" "$WORK/replica2.log"; R2=$RESTARTED
wait "$WRK" || true
served=""
for ip in 127.0.0.1 127.0.0.2; do
  served="$served $(curl -s "http://$ip:$AD/metrics" | awk '/^ssogate_requests_total/ {n += $2} END {print n + 0}')"
done

echo "lifecycle under load: wrk -c50, ${PHASE_SECONDS}s a phase (restart ${RESTART_SECONDS}s), signed-in requests"
report reload
echo "         ($reloads reloads took effect)"
report upgrade
echo "         (old process exit status $old_exit, new process serving: $new_alive)"
report restart
echo "         (exit statuses on SIGTERM:$restart_exits; requests served since each replica's restart:$served)"
[ "$new_alive" = yes ] || FAILED=1
case "$restart_exits" in *[1-9]*) FAILED=1;; esac
[ "$FAILED" = 0 ] || { echo "FAIL: requests failed (details above)" >&2; exit 1; }
