#!/usr/bin/env bash
# Loopback port helpers shared by scripts/test.sh and benches/load/*.sh (sourced).

# A port on 127.0.0.1 that nothing listens on.
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$(( 20000 + RANDOM % 30000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}

# Wait up to 10 s until something listens on 127.0.0.1:$1.
wait_port() { # PORT [SECONDS, default 10]
  for _ in $(seq 1 $((${2:-10} * 10))); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on $1" >&2
  return 1
}
