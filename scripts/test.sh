#!/usr/bin/env bash
# The test command (README): installs what is missing, starts a throwaway redis-server on
# a free loopback port, then runs formatting, lint and the whole test suite against it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
. scripts/ports.sh

# nginx (Debian) for the forward-auth test (nginx-light has auth_request).
ssogate_apt_install nginx-light

# Headless Chromium and chromedriver (Debian) for tests/browser.rs: a real browser's
# cookie rules (SameSite, Secure, __Host-) through sign-in and sign-out, driven over
# WebDriver; the tests fail, not skip, without them.
ssogate_apt_install chromium chromium-driver

# Real servers for the path-confusion interop tests (tests/utils/servers.rs, observed
# behaviour in tests/interop/COUNTERPARTS.md): gunicorn running a Flask app (Debian's
# /usr/bin/python3), a private Tomcat 10 and caddy v2.
# - tomcat10-user brings tomcat10-common and libtomcat10-java (CATALINA_HOME
#   /usr/share/tomcat10, Jasper with ECJ, so JSPs compile without javac) and the conf
#   skeleton the tests copy. tomcat10-common needs a Java 11+ runtime: openjdk-17 on this
#   machine provides it, elsewhere apt pulls default-jre-headless.
# - No system service is started. The `tomcat10` package (the system instance on 8080) is
#   not installed at all. caddy's package ships caddy.service (:80, admin on :2019) and
#   enables it, but without systemd (this container) its postinst only says
#   "policy-rc.d returned 101, not running 'start caddy.service'"; checked after install:
#   nothing listens on 80, 443, 2019, 8005 or 8080. Where systemd runs, a caddy.service that
#   this install started is stopped and disabled below; a caddy installed before is left
#   alone (the tests use their own free ports either way).
caddy_preinstalled=0
dpkg-query -W -f='${Status}' caddy 2>/dev/null | grep -q "install ok installed" && caddy_preinstalled=1
ssogate_apt_install gunicorn python3-flask tomcat10-user caddy
if [ "$caddy_preinstalled" = 0 ] && [ -d /run/systemd/system ] &&
  systemctl is-active --quiet caddy.service 2>/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then systemctl disable --now caddy.service >&2; else sudo systemctl disable --now caddy.service >&2; fi
fi

# promtool (Debian's prometheus package) checks the alert rules, runs their unit tests and
# lints a live gateway's /metrics (tests/prometheus.rs). Only the tool is needed: where
# systemd runs, the prometheus.service this install starts (on :9090, the admin port's
# default) is stopped and disabled; one installed before is left alone.
prometheus_preinstalled=0
dpkg-query -W -f='${Status}' prometheus 2>/dev/null | grep -q "install ok installed" && prometheus_preinstalled=1
ssogate_apt_install prometheus
if [ "$prometheus_preinstalled" = 0 ] && [ -d /run/systemd/system ] &&
  systemctl is-active --quiet prometheus.service 2>/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then systemctl disable --now prometheus.service >&2; else sudo systemctl disable --now prometheus.service >&2; fi
fi

# The runtime stage's packages of the Dockerfile: tests/deploy.rs builds a minimal root
# from exactly their files (and their dependencies') and runs the binary in it (chroot).
ssogate_apt_install ca-certificates libssl3 libxml2 libxmlsec1 libxmlsec1-openssl

# Independent counterparts from PyPI for the interop tests, in a venv under target/:
# pysaml2 (a real SAML IdP, signing and encrypting through xmlsec1) and scim2-tester
# (a SCIM compliance checker, with its client scim2-client over httpx2), PyJWT (an
# independent JWT verifier); for tests/deploy.rs, kubernetes-validate (the Kubernetes
# schemas, pinned) and cloudcoil-models-prometheus-operator (the ServiceMonitor CRD's
# model, which kubernetes-validate has no schema for).
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  ssogate_apt_install python3-venv
fi
VENV="$PWD/target/test-venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check \
  pysaml2==7.5.5 scim2-tester==0.5.2 scim2-client==0.13.2 scim2-models==0.12.3 httpx2==2.16.2 \
  pyjwt==2.15.1 kubernetes-validate==1.37.0 cloudcoil==0.6.0 \
  cloudcoil-models-prometheus-operator==0.80.1.0
export SSOGATE_PYSAML2_PYTHON="$VENV/bin/python"

# A throwaway redis-server; should its port be taken between the check and the bind, it
# is started again on another.
REDIS_DIR=$(mktemp -d)
REDIS_PID=
trap '[ -n "$REDIS_PID" ] && kill $REDIS_PID 2>/dev/null; rm -rf "$REDIS_DIR"' EXIT
for attempt in 1 2 3 4 5; do
  REDIS_PORT=$(free_port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$REDIS_DIR" --daemonize no >"$REDIS_DIR/redis.log" 2>&1 &
  REDIS_PID=$!
  for _ in $(seq 1 50); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    kill -0 "$REDIS_PID" 2>/dev/null || break
    sleep 0.1
  done
  redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
  echo "test: redis-server did not start on $REDIS_PORT (attempt $attempt):" >&2
  cat "$REDIS_DIR/redis.log" >&2
  kill "$REDIS_PID" 2>/dev/null || true
  wait "$REDIS_PID" 2>/dev/null || true
  REDIS_PID=
  [ "$attempt" = 5 ] && exit 1
done
export SSOGATE_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
echo "test: redis-server on 127.0.0.1:$REDIS_PORT" >&2

cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
LOG="$REDIS_DIR/cargo-test.log"
cargo test --locked --all-targets 2>&1 | tee "$LOG"
# One closing line for the whole suite (cargo prints one per test binary).
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "%d passed, %d failed, %d skipped\n", p, f, i }' "$LOG"

# Coverage-guided fuzzing (docs/fuzzing.md): cargo-fuzz installed on first use (under a
# minute), every target of fuzz/ built once without the sanitizer (the bulk: 7.5 to 9.5
# minutes on 2 cores from scratch), then each replays its seeds and regressions and runs
# SSOGATE_FUZZ_SECONDS (default 5: 12 targets, about 1.5 minutes) from a fixed libFuzzer
# seed, so that a run can be repeated. SSOGATE_FUZZ_SANITIZER=address for AddressSanitizer,
# SSOGATE_FUZZ_SECONDS=0 to only replay.
SSOGATE_FUZZ_SANITIZER=${SSOGATE_FUZZ_SANITIZER:-none} SSOGATE_FUZZ_SEED=${SSOGATE_FUZZ_SEED:-1} \
  scripts/fuzz.sh "${SSOGATE_FUZZ_SECONDS:-5}"
