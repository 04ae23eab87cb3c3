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
  local tls=()
  if [ "${LOAD_TLS:-0}" = 1 ]; then
    # The same server also on a TLS port (RTP), with a CA made here (the store trusts it
    # through redis_ca_file and checks the name "localhost").
    RTP=$(free_port)
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
      -subj /CN=bench-ca -keyout "$WORK/ca.key" -out "$WORK/redis-ca.pem" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
      -keyout "$WORK/redis.key" -out "$WORK/redis.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost\n' >"$WORK/redis.ext"
    openssl x509 -req -days 1 -in "$WORK/redis.csr" -CA "$WORK/redis-ca.pem" -CAkey "$WORK/ca.key" \
      -CAcreateserial -extfile "$WORK/redis.ext" -out "$WORK/redis.pem" 2>/dev/null
    tls=(--tls-port "$RTP" --tls-cert-file "$WORK/redis.pem" --tls-key-file "$WORK/redis.key"
      --tls-ca-cert-file "$WORK/redis-ca.pem" --tls-auth-clients no)
  fi
  redis-server --port "$RP" "${tls[@]}" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" >/dev/null 2>&1 &
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
