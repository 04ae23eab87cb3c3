#!/usr/bin/env bash
# Installs what building and testing ssogate needs on Debian/Ubuntu, only what is missing.
# Sourced by scripts/demo.sh and scripts/test.sh.
set -euo pipefail

SSOGATE_PACKAGES=(build-essential pkg-config perl cmake clang libclang-dev libssl-dev
  libxml2-dev libxmlsec1-dev libxmlsec1-openssl xmlsec1 redis-server)

# Install the given Debian packages that are not installed yet.
ssogate_apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ "${#missing[@]}" -gt 0 ] || return 0
  echo "setup: installing ${missing[*]}" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

ssogate_apt_install "${SSOGATE_PACKAGES[@]}"

if ! command -v cargo >/dev/null 2>&1; then
  [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo not found (install Rust with rustup first)" >&2; exit 1; }

# Link Debian's OpenSSL instead of compiling a vendored copy (pingora-openssl asks for one):
# faster builds and one OpenSSL in the process, the one libxmlsec1 also uses.
export OPENSSL_NO_VENDOR=1
