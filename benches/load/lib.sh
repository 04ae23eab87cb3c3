#!/usr/bin/env bash
# What every load script shares (sourced after scripts/setup.sh and scripts/ports.sh):
# the release build, a work directory cleaned up on exit with every process in PIDS, a
# throwaway redis-server on RP, and the gateway configuration's common parts.

# Build, make WORK, start redis on RP; kill PIDS and remove WORK on exit.
load_setup() {
  cargo build --release --locked --examples --bin ssogate >&2
  BIN=target/release
  WORK=$(mktemp -d); PIDS=()
  trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
  RP=$(free_port)
  redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" >/dev/null 2>&1 &
  PIDS+=($!)
}

# [listen], [server] and the Redis [session] of a gateway on GW (admin AD); the caller
# may add [session] keys right after.
toml_head() { # GW AD
  cat <<TOML
[listen]
public = "127.0.0.1:$1"
admin = "127.0.0.1:$2"
[server]
threads = 2
grace_period = "1s"
[session]
store = "redis"
redis_url = "redis://127.0.0.1:$RP/0"
cookie_secure = false
TOML
}

# The app "load" for every host, in front of UPSTREAM (host:port), trusting idp.pem.
toml_app() { # GW UPSTREAM
  cat <<TOML
[[app]]
name = "load"
hosts = ["*"]
upstream = "http://$2"
[app.sp]
entity_id = "http://127.0.0.1:$1/saml"
acs_url = "http://127.0.0.1:$1/saml/acs"
[app.idp]
entity_id = "https://idp.example.test/"
sso_url = "https://idp.example.test/saml2"
certificate_file = "idp.pem"
TOML
}
