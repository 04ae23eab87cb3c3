#!/usr/bin/env bash
# Installs what building and testing ssogate needs on Debian/Ubuntu, only what is missing.
# Sourced by scripts/demo.sh and scripts/test.sh.
set -euo pipefail

SSOGATE_PACKAGES=(build-essential pkg-config perl cmake clang libclang-dev libssl-dev
  libxml2-dev libxmlsec1-dev libxmlsec1-openssl xmlsec1 redis-server)

missing=()
for p in "${SSOGATE_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

if ! command -v cargo >/dev/null 2>&1; then
  [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo not found (install Rust with rustup first)" >&2; exit 1; }

# Link Debian's OpenSSL instead of compiling a vendored copy (pingora-openssl asks for one):
# faster builds and one OpenSSL in the process, the one libxmlsec1 also uses.
export OPENSSL_NO_VENDOR=1
