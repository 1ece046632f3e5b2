#!/usr/bin/env bash
# e2e_shared_answer.sh — a long kept answer read from the controller's memfd
# (pcifleet(1) LONG ANSWERS) is byte for byte the chunked one, and each path
# is taken when it should be.
#
# bench/bench_ingest fills a database with NODES simulated nodes (their
# `nics --free --json` is well over 256 KiB), then a real pcifleetd serves it
# on an ipc:// admin socket. Asserted:
#   - --no-share: the answer comes in chunks (shared_answers stays 0);
#   - stdout a pipe, stdout a regular file: shared (the counter moves by one
#     each) and identical to the chunked answer;
#   - `share = false` in the config file: chunks again;
#   - stdout a terminal (script(1), when there): chunks;
#   - in a new PID namespace (unshare(1), when allowed) /proc/PID is not the
#     controller: the CLI asks again (two cache lookups for one command) and
#     still prints the same answer.
# Environment: PCIFLEETD, PCIFLEET (ctest sets them), PCIFLEET_BENCH_INGEST
# (default: bench/bench_ingest beside pcifleet); PCIFLEET_E2E_KEEP=1 keeps
# the temp folder.
set -uo pipefail
export LC_ALL=C
# shellcheck source=lib/e2e.sh
. "$(dirname "$0")/lib/e2e.sh"

PFD=${PCIFLEETD:?run through ctest (PCIFLEETD)}
PF=${PCIFLEET:?run through ctest (PCIFLEET)}
BENCH=${PCIFLEET_BENCH_INGEST:-$(dirname "$PF")/bench/bench_ingest}
command -v jq >/dev/null || { echo "e2e_shared_answer: jq is required (scripts/install-deps.sh)"; exit 1; }
[ -x "$BENCH" ] || { echo "e2e_shared_answer: $BENCH is missing (built from bench/bench_ingest.c)"; exit 1; }

NODES=1200
e2e_init shared
DIR=$tmp/fleet
if ! "$BENCH" --nodes $NODES --rounds 1 --queries 1 --keep "$DIR" --pcifleetd "$PFD" --pcifleet "$PF" \
        >"$tmp/bench.out" 2>&1; then
    echo "e2e_shared_answer: the benchmark could not fill the database:"
    sed 's/^/#   /' "$tmp/bench.out"
    exit 1
fi

e2e_free_port
export PCIFLEET_ADMIN=ipc://$tmp/admin.sock
"$PFD" --db "$DIR/fleet.db" --listen "tcp://127.0.0.1:$PORT" --admin "$PCIFLEET_ADMIN" --keys "$DIR/keys" \
    --offline-after 3600 >>"$tmp/controller.log" 2>&1 &
CTL=$!
wait_for 20 "$PF" --timeout 20 status || { echo "# the controller did not start:"; cat "$tmp/controller.log"; exit 1; }
pf() { "$PF" --timeout 20 "$@"; }
counter() { pf status --json | jq ".$1"; }

pf --no-share nics --free --json >"$tmp/chunked.json"
check "the answer is long enough to be chunked (over 256 KiB) and is JSON of $((NODES * 3)) NICs" \
    bash -c '[ $(stat -c %s "$0") -gt 262144 ] && [ "$(jq length "$0")" = "$1" ]' "$tmp/chunked.json" $((NODES * 3))
check "--no-share: nothing was shared" [ "$(counter shared_answers)" = 0 ]

pf nics --free --json | cat >"$tmp/pipe.json"
check "stdout a pipe: the same bytes" cmp "$tmp/chunked.json" "$tmp/pipe.json"
check "stdout a pipe: read from the controller's memfd" [ "$(counter shared_answers)" = 1 ]

pf nics --free --json >"$tmp/file.json"
check "stdout a regular file: the same bytes" cmp "$tmp/chunked.json" "$tmp/file.json"
check "stdout a regular file: read from the controller's memfd" [ "$(counter shared_answers)" = 2 ]

printf 'share = false\n' >"$tmp/pcifleet.conf"
pf --config "$tmp/pcifleet.conf" nics --free --json | cat >"$tmp/conf.json"
check "share = false in the config file: the same bytes" cmp "$tmp/chunked.json" "$tmp/conf.json"
check "share = false in the config file: nothing shared" [ "$(counter shared_answers)" = 2 ]
printf 'share = maybe\n' >"$tmp/bad.conf"
out=$(pf --config "$tmp/bad.conf" nics --free --json 2>&1 >/dev/null)
check "a bad share value is a usage error naming it" \
    bash -c '[ "$0" = 2 ] && grep -q "share must be true or false" <<<"$1"' "$?" "$out"

if command -v script >/dev/null; then
    # a terminal gets the chunks, which are checked as they are printed
    script -qec "$PF --timeout 20 nics --free --json" /dev/null >"$tmp/tty.out" 2>&1
    check "stdout a terminal: nothing shared" [ "$(counter shared_answers)" = 2 ]
    check "stdout a terminal: the whole answer" \
        bash -c '[ "$(tr -d "\r" <"$0" | jq length)" = "$1" ]' "$tmp/tty.out" $((NODES * 3))
else
    echo "# script(1) not found: the terminal case is not run"
fi

if unshare --pid --fork --mount-proc true 2>/dev/null; then
    before=$(counter query_cache_lookups)
    unshare --pid --fork --mount-proc "$PF" --timeout 20 nics --free --json >"$tmp/ns.json" 2>"$tmp/ns.err"
    check "another PID namespace: the same bytes" cmp "$tmp/chunked.json" "$tmp/ns.json"
    check "another PID namespace: nothing on stderr" [ ! -s "$tmp/ns.err" ]
    # the status request itself is no lookup; the command asked twice
    check "another PID namespace: the CLI asked again without sharing (2 lookups)" \
        [ "$(counter query_cache_lookups)" = $((before + 2)) ]
else
    echo "# unshare --pid not allowed here: the fallback case is not run"
fi

e2e_finish
