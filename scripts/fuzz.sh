#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser that sees network bytes (fuzz/, docs/fuzzing.md).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#   SSOGATE_FUZZ_SANITIZER=none scripts/fuzz.sh ...   # no AddressSanitizer: builds in about
#                                                     # two thirds of the time (scripts/test.sh)
#   SSOGATE_FUZZ_SEED=1 scripts/fuzz.sh ...           # a fixed libFuzzer seed (scripts/test.sh)
#
# Installs cargo-fuzz (pinned) when missing, builds every target once with the nightly
# toolchain (libFuzzer, AddressSanitizer unless told otherwise, debug assertions), then runs
# each target (all, or those named) for SECONDS (default 20; 0: only replay the inputs
# below) from its committed seeds (fuzz/seeds/<target>) and regressions
# (fuzz/regressions/<target>). New inputs go to a throwaway corpus, so a run leaves the
# tree clean; crash reproducers go to fuzz/artifacts/<target>/ (ignored by git). Prints,
# per target, executions, corpus size and the result; exits 1 on any crash, leak, timeout
# or out-of-memory, naming the reproducer.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SECONDS_PER_TARGET=${1:-20}
shift || true
case "$SECONDS_PER_TARGET" in
  '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac

CARGO_FUZZ_VERSION=0.13.2
SANITIZER=${SSOGATE_FUZZ_SANITIZER:-address}
# One build directory per sanitizer: switching does not rebuild the other.
FUZZ_ARGS=(--sanitizer "$SANITIZER")
[ "$SANITIZER" = address ] || FUZZ_ARGS+=(--target-dir "fuzz/target-$SANITIZER")
# Link Debian's OpenSSL (as scripts/setup.sh does for the main build).
export OPENSSL_NO_VENDOR=1

if ! command -v cargo >/dev/null 2>&1; then
  [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
fi
if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz: installing the nightly toolchain" >&2
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $CARGO_FUZZ_VERSION"; then
  echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION" >&2
  cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

if [ "$#" -gt 0 ]; then
  TARGETS=("$@")
else
  mapfile -t TARGETS < <(cargo +nightly fuzz list)
fi

echo "fuzz: building the targets (sanitizer: $SANITIZER)" >&2
start=$(date +%s)
cargo +nightly fuzz build "${FUZZ_ARGS[@]}"
echo "fuzz: built in $(($(date +%s) - start)) s" >&2

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# libFuzzer reads -max_total_time=0 as "no limit".
if [ "$SECONDS_PER_TARGET" -eq 0 ]; then LIMIT=(-runs=0); else LIMIT=(-max_total_time="$SECONDS_PER_TARGET"); fi
# A fixed libFuzzer seed (SSOGATE_FUZZ_SEED) repeats a run's mutations, as far as its
# time bound allows; unset, libFuzzer picks one (printed in the log).
[ -z "${SSOGATE_FUZZ_SEED:-}" ] || LIMIT+=(-seed="$SSOGATE_FUZZ_SEED")
failed=0
printf '%-22s %12s %10s %8s  %s\n' target executions exec/s corpus result
for t in "${TARGETS[@]}"; do
  corpus="$WORK/corpus/$t"
  artifacts="$ROOT/fuzz/artifacts/$t/"
  mkdir -p "$corpus" "$artifacts"
  dirs=("$corpus")
  for d in "fuzz/seeds/$t" "fuzz/regressions/$t"; do
    [ -d "$d" ] && dirs+=("$d")
  done
  log="$WORK/$t.log"
  rc=0
  cargo +nightly fuzz run "${FUZZ_ARGS[@]}" "$t" "${dirs[@]}" -- \
    "${LIMIT[@]}" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$artifacts" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  corp=$(grep -oE 'corp: [0-9]+' "$log" | tail -1 | cut -d' ' -f2 || true)
  artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
  if [ "$rc" -eq 0 ]; then
    result=ok
  else
    failed=1
    kind=$(grep -oE 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer): [a-z-]+|deadly signal|panicked at [^ ]+' "$log" | head -1 || true)
    result="FAILED (exit $rc${kind:+: $kind})${artifact:+ reproducer: $artifact}"
  fi
  printf '%-22s %12s %10s %8s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "${corp:-?}" "$result"
  if [ "$rc" -ne 0 ]; then
    # The panic and its message, the sanitizer's report, the gateway's frames.
    { grep -A2 -m1 "panicked at" "$log" || true
      grep -E "(^|== )(ERROR|SUMMARY):|^ +#[0-9]+ .* in (ssogate|ssogate_fuzz|$t)::" "$log" | head -12 || true
    } | sed 's/^/    /' >&2
    [ -n "$artifact" ] && echo "    reproduce: cargo +nightly fuzz run ${FUZZ_ARGS[*]} $t $artifact" >&2
  fi
done
if [ "$failed" -ne 0 ]; then
  echo "fuzz: FAILED (reproducers under fuzz/artifacts/; keep a fixed one under fuzz/regressions/<target>/)" >&2
  exit 1
fi
echo "fuzz: ${#TARGETS[@]} targets, ${SECONDS_PER_TARGET} s each, no failure" >&2
