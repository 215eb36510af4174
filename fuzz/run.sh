#!/usr/bin/env bash
# Builds every fuzz target with libFuzzer on the stable toolchain and runs each for the given
# number of seconds (default 30) on a copy of its committed seed corpus. Prints execs/s, total
# execs and coverage per target; exits non-zero if any target crashed (the crashing input is
# left in fuzz/artifacts/<target>/).
#
#   fuzz/run.sh [seconds] [target...]
#
# cargo-fuzz needs nightly for its sanitizers; this script passes the same coverage flags it
# uses with `-s none` (SanitizerCoverage through the stable `-C passes` and `-C llvm-args`) to
# cargo directly, and builds for the explicit host target so that build scripts and proc macros
# are not instrumented.
# Environment: FUZZ_TARGET_DIR (default fuzz/target), FUZZ_JOBS (parallel runs, default 1),
# FUZZ_LOG_DIR (keep each target's libFuzzer log there).
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-30}"
shift || true
all_targets=(frame_decode packet_header handshake_message server_endpoint established_connection)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")

host="$(rustc -vV | sed -n 's/^host: //p')"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/target}"
export CARGO_INCREMENTAL=0
export RUSTFLAGS="-Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 --cfg fuzzing -Cdebug-assertions -Coverflow-checks -Cdebuginfo=line-tables-only"

echo "== building ${#targets[@]} fuzz target(s) for $host"
bins=()
for t in "${targets[@]}"; do bins+=(--bin "$t"); done
cargo build --release --target "$host" "${bins[@]}"
bindir="$CARGO_TARGET_DIR/$host/release"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=0

run_one() {
  local t="$1" log="$work/$1.log"
  # Run on a scratch copy: new inputs found stay out of the committed corpus.
  mkdir -p "$work/corpus/$t" "artifacts/$t"
  cp -r "corpus/$t/." "$work/corpus/$t/" 2>/dev/null || true
  set +e
  "$bindir/$t" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=8192 -timeout=20 -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/" "$work/corpus/$t" >"$log" 2>&1
  echo $? >"$work/$t.rc"
  set -e
  if [ -n "${FUZZ_LOG_DIR:-}" ]; then mkdir -p "$FUZZ_LOG_DIR" && cp "$log" "$FUZZ_LOG_DIR/"; fi
}

jobs="${FUZZ_JOBS:-1}"
running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then wait -n || true; running=$((running - 1)); fi
done
wait

printf '%-24s %10s %14s %8s %8s %s\n' target execs/s total_execs cov ft result
for t in "${targets[@]}"; do
  log="$work/$t.log" rc="$(cat "$work/$t.rc")"
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1 || true)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1 || true)"
  last="$(grep -E '^#[0-9]+.* cov: ' "$log" | tail -n 1 || true)"
  cov="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")"
  ft="$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")"
  result=ok
  if [ "$rc" != 0 ]; then
    result="CRASH (exit $rc)"
    failed=1
    echo "---- $t: last lines of the libFuzzer log"
    tail -n 40 "$log"
  fi
  # The first and last coverage figures, to show that coverage grew.
  first="$(grep -E '^#[0-9]+.* cov: ' "$log" | head -n 1 | sed -n 's/.* cov: \([0-9]*\).*/\1/p' || true)"
  printf '%-24s %10s %14s %8s %8s %s (cov %s -> %s)\n' "$t" "${rate:-?}" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$result" "${first:-?}" "${cov:-?}"
done
exit "$failed"
