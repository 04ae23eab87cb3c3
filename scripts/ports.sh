#!/usr/bin/env bash
# Loopback port helpers shared by scripts/test.sh and benches/load/*.sh (sourced).

# A port on 127.0.0.1 that nothing listens on, drawn from below the kernel's ephemeral
# range (ip_local_port_range): a port in that range can be taken by any process's
# outgoing connection between this check and the server's bind ("Address already in
# use"); one outside it cannot.
free_port() {
  local p lo=10000 hi=32767 elo ehi
  if read -r elo ehi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null; then
    if [ "$elo" -ge 11024 ]; then hi=$((elo - 1)); elif [ "$ehi" -le 64535 ]; then lo=$((ehi + 1)); hi=65535; fi
  fi
  for _ in $(seq 1 500); do
    p=$(( lo + (RANDOM * 32768 + RANDOM) % (hi - lo + 1) ))
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
