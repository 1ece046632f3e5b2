#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this):
#   1. a normal build and every ctest test (unit, fixtures, CLI, valgrind, fuzz corpora),
#   2. the same under AddressSanitizer + UndefinedBehaviorSanitizer,
#   3. every libFuzzer target for FUZZ_SECONDS (default 60) each, FUZZ_JOBS
#      (default nproc) at a time, running while 1 and 2 run; its report comes last.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

JOBS=${JOBS:-$(nproc)}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_JOBS=${FUZZ_JOBS:-$(nproc)}
B=${BUILD_ROOT:-build/test}

# The libFuzzer runs take a fixed wall time (FUZZ_SECONDS each) and the test
# passes spend much of theirs waiting on daemons and deadlines, so the fuzzing
# runs beside the tests instead of after them: the suite takes about as long
# as the longer of the two, not their sum. Every target still gets its
# FUZZ_SECONDS; it makes fewer executions in them while tests share the CPU.
echo "== builds: normal, ASan + UBSan, libFuzzer"
cmake -S . -B "$B/normal" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$B/normal" -j"$JOBS" >/dev/null
cmake -S . -B "$B/asan" -DCMAKE_BUILD_TYPE=Debug -DPCIFLEET_SANITIZE=ON >/dev/null
cmake --build "$B/asan" -j"$JOBS" >/dev/null
cmake -S . -B "$B/fuzz" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
  -DPCIFLEET_FUZZ=ON -DPCIFLEET_SANITIZE=ON >/dev/null
cmake --build "$B/fuzz" -j"$JOBS" >/dev/null

# fuzz_one NAME: one libFuzzer run on a copy of the target's seed corpus; its
# log and any crash input stay in $fuzz_dir/NAME* for the report below.
fuzz_dir=$(mktemp -d)
fuzz_pid=
tree_pids() { # PID: the process and everything below it, deepest first
  local c
  for c in $(pgrep -P "$1" 2>/dev/null); do tree_pids "$c"; done
  echo "$1"
}
cleanup() {
  # A fuzzer killed mid-run still writes its corpus for a moment: wait (at
  # most 5 s) for the whole tree to be gone before removing its directory.
  if [ -n "$fuzz_pid" ]; then
    local pids i p
    pids=$(tree_pids "$fuzz_pid")
    kill $pids 2>/dev/null || true
    for i in $(seq 50); do
      for p in $pids; do kill -0 "$p" 2>/dev/null && break; p=; done
      [ -z "$p" ] && break
      sleep 0.1
    done
  fi
  rm -rf "$fuzz_dir"
}
trap cleanup EXIT
fuzz_one() {
  local name=$1 work=$fuzz_dir/$1
  mkdir -p "$work"
  cp -r "fuzz/corpus/$name/." "$work/" 2>/dev/null || true
  if "$B/fuzz/fuzz/$name" -max_total_time="$FUZZ_SECONDS" -max_len=65536 -rss_limit_mb=2048 \
       -artifact_prefix="$work/" "$work" >"$work.log" 2>&1; then
    echo "fuzz: $name $(grep -Eo 'Done [0-9]+ runs' "$work.log" | tail -1)"
  else
    echo "fuzz: $name found a crash:"; tail -40 "$work.log"; ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* 2>/dev/null
    return 1
  fi
}
fuzz_all() {
  local targets=() running=0 failed=0 f name
  for f in "$B"/fuzz/fuzz/fuzz_*; do [ -x "$f" ] && targets+=("$(basename "$f")"); done
  [ ${#targets[@]} -gt 0 ] || { echo "fuzz: no targets were built"; return 1; }
  for name in "${targets[@]}"; do
    if [ "$running" -ge "$FUZZ_JOBS" ]; then
      wait -n || failed=1
      running=$((running - 1))
    fi
    fuzz_one "$name" &
    running=$((running + 1))
  done
  while [ "$running" -gt 0 ]; do wait -n || failed=1; running=$((running - 1)); done
  [ "$failed" = 0 ] || { echo "fuzz: a target crashed (above)"; return 1; }
  echo "fuzz: ${#targets[@]} targets ran ${FUZZ_SECONDS}s each without a crash"
}
echo "== fuzzing started (${FUZZ_SECONDS}s per target, ${FUZZ_JOBS} at a time), beside the tests"
fuzz_all >"$fuzz_dir/report" 2>&1 &
fuzz_pid=$!

echo "== normal build: every ctest test"
ctest --test-dir "$B/normal" --output-on-failure -j"$JOBS"

echo "== ASan + UBSan build: every ctest test"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  PCIFLEET_SANITIZED=1 ctest --test-dir "$B/asan" --output-on-failure -j"$JOBS"

echo "== fuzzing (${FUZZ_SECONDS}s per target, ${FUZZ_JOBS} at a time)"
fuzz_rc=0
wait "$fuzz_pid" || fuzz_rc=$?
fuzz_pid=
cat "$fuzz_dir/report"
[ "$fuzz_rc" = 0 ] || { echo "fuzz: failed (above)" >&2; exit 1; }
