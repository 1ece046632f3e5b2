#!/usr/bin/env bash
# fault_ingest_kill.sh — SIGKILL of the controller while full inventories
# stream in, three times on one database, each time checked before the
# controller comes back.
#
# bench/bench_ingest drives a real pcifleetd with NODES simulated agents over
# CURVE on loopback; every agent sends a full Inventory and --ack-log records
# each Ack as it arrives. Each round sends a different device count (so each
# round's reports differ from what is stored) and the controller is killed
# once a set share of the Acks has come (10 %, 40 %, 60 %). Then, with
# no controller running:
#   - `PRAGMA integrity_check` says ok and `PRAGMA foreign_key_check` is empty;
#   - every node whose Inventory was acknowledged is stored with that
#     inventory: its hash, its device count, as many device rows;
#   - no node is half-stored: for every node the device rows match
#     device_count, and device_count is 0, the previous round's count or
#     this round's (nothing in between);
#   - a negative control: the same checks on a copy of the database with one
#     acknowledged node deleted and one device row of another node deleted
#     must report both (so the checks can fail);
#   - pcifleetd restarted on the same database answers `pcifleet nodes --json`
#     with every stored node (the time to that answer is printed).
# Every wait has a deadline; the benchmark runs in its own process group and
# is killed with it. Environment: PCIFLEETD, PCIFLEET (ctest sets them),
# PCIFLEET_BENCH_INGEST (default: bench/bench_ingest beside pcifleet);
# PCIFLEET_E2E_KEEP=1 keeps the temp folder.
set -uo pipefail
export LC_ALL=C
# shellcheck source=lib/e2e.sh
. "$(dirname "$0")/lib/e2e.sh"

PFD=${PCIFLEETD:?run through ctest (PCIFLEETD)}
PF=${PCIFLEET:?run through ctest (PCIFLEET)}
BENCH=${PCIFLEET_BENCH_INGEST:-$(dirname "$PF")/bench/bench_ingest}
for t in jq sqlite3 setsid; do
    command -v $t >/dev/null || { echo "fault_ingest_kill: $t is required (scripts/install-deps.sh)"; exit 1; }
done
[ -x "$BENCH" ] || { echo "fault_ingest_kill: $BENCH is missing (built from bench/bench_ingest.c)"; exit 1; }

NODES=1600
DEVS=(40 56 72)
# Acks received before the kill, per round. The controller acknowledges a
# whole batch (up to 256, pcifleetd.c BATCH) after its commit, so the count
# jumps by up to 256 at once, and on a loaded machine (CI runs this beside
# the sanitizer build and the fuzzers) the polling below can miss a batch or
# two: the last target stays 640 Acks (2.5 batches) below NODES, or the kill
# could come after the end.
KILL_AT=(160 640 960)
BENCH_PID=
stop_bench() {
    if [ -n "$BENCH_PID" ]; then
        kill -KILL -- "-$BENCH_PID" 2>/dev/null
        wait "$BENCH_PID" 2>/dev/null
        BENCH_PID=
    fi
}
e2e_init ingestkill
trap 'stop_bench; e2e_cleanup' EXIT
DIR=$tmp/fleet
DB=$DIR/fleet.db
ADMIN=ipc://$DIR/admin.sock
now_ms() { date +%s%3N; }
q() { sqlite3 -batch -noheader "$@"; }

# check_acked DB ACKLOG: prints every acknowledged node not stored as sent
check_acked() {
    {
        echo "CREATE TEMP TABLE acked (node TEXT, devs INTEGER, hash TEXT);"
        echo "BEGIN;"
        awk 'NF == 3 { printf "INSERT INTO acked VALUES (%c%s%c, %d, %c%s%c);\n", 39, $1, 39, $2, 39, $3, 39 }' "$2"
        echo "COMMIT;"
        echo "SELECT a.node || ' sent ' || a.devs || ' ' || a.hash || ', stored: ' ||
                ifnull(n.device_count || ' ' || lower(hex(n.inventory_hash)) || ', ' ||
                       (SELECT count(*) FROM devices d WHERE d.node = a.node) || ' device rows', 'nothing')
              FROM acked a LEFT JOIN nodes n ON n.name = a.node
              WHERE n.name IS NULL OR lower(hex(n.inventory_hash)) <> a.hash OR n.device_count <> a.devs
                 OR (SELECT count(*) FROM devices d WHERE d.node = a.node) <> a.devs;"
    } | q "$1"
}
# check_whole DB PREV CUR: prints every node whose stored devices are not a whole inventory
check_whole() {
    q "$1" "SELECT name || ': device_count ' || device_count || ', ' || rows || ' device rows'
              FROM (SELECT name, device_count,
                           (SELECT count(*) FROM devices d WHERE d.node = n.name) AS rows FROM nodes n)
              WHERE rows <> device_count OR device_count NOT IN (0, $2, $3);"
}
must_be_empty() { [ ! -s "$1" ] || { head -5 "$1"; false; }; }

prev=0
for r in 0 1 2; do
    devs=${DEVS[r]} target=${KILL_AT[r]}
    acks=$tmp/acks.$r out=$tmp/bench.$r.out
    : >"$acks"
    reuse=()
    [ "$r" -gt 0 ] && reuse=(--reuse)
    setsid "$BENCH" --nodes $NODES --devices "$devs" --rounds 1 --queries 1 --keep "$DIR" "${reuse[@]}" \
        --ack-log "$acks" --pcifleetd "$PFD" --pcifleet "$PF" >"$out" 2>"$tmp/bench.$r.err" &
    BENCH_PID=$!
    check "round $r: the benchmark runs in its own process group" \
        bash -c '[ "$(ps -o pgid= -p "$0" | tr -d " ")" = "$0" ]' "$BENCH_PID"
    if ! wait_for 20 grep -q '^controller: pid' "$out"; then
        bad "round $r: the benchmark started no controller"
        sed 's/^/#   /' "$tmp/bench.$r.err"
        break
    fi
    cpid=$(sed -n 's/^controller: pid \([0-9]*\)$/\1/p' "$out")
    # kill once `target` Acks are in (bounded: 60 s)
    end=$((SECONDS + 60))
    while [ "$(wc -l <"$acks")" -lt "$target" ] && [ $SECONDS -lt $end ] && kill -0 "$cpid" 2>/dev/null; do
        sleep 0.01
    done
    kill -KILL "$cpid" 2>/dev/null
    at_kill=$(wc -l <"$acks")
    t_kill=$(now_ms)
    # Acks already in the agents' sockets may still be read: give them a moment
    sleep 0.5
    stop_bench
    acked=$(wc -l <"$acks")
    check "round $r: killed mid-ingest ($at_kill of $NODES Acks in at the kill, target $target)" \
        bash -c '[ "$0" -ge "$1" ] && [ "$0" -lt "$2" ] && ! grep -q "^full reports" "$3"' \
        "$at_kill" "$target" "$NODES" "$out"

    ic=$(q "$DB" 'PRAGMA integrity_check' 2>&1)
    check "round $r: PRAGMA integrity_check says ok (got: $ic)" [ "$ic" = ok ]
    q "$DB" 'PRAGMA foreign_key_check' >"$tmp/fk.$r" 2>&1
    check "round $r: PRAGMA foreign_key_check finds nothing" must_be_empty "$tmp/fk.$r"
    check_acked "$DB" "$acks" >"$tmp/missing.$r" 2>&1
    check "round $r: all $acked acknowledged nodes stored with the hash and $devs devices sent" \
        must_be_empty "$tmp/missing.$r"
    check_whole "$DB" "$prev" "$devs" >"$tmp/half.$r" 2>&1
    check "round $r: no node half-stored (device rows = device_count, in {0, $prev, $devs})" \
        must_be_empty "$tmp/half.$r"
    stored=$(q "$DB" "SELECT count(*) FROM nodes WHERE device_count = $devs")
    total=$(q "$DB" "SELECT count(*) FROM nodes")

    if [ "$r" = 0 ]; then
        # negative control: a copy with an acknowledged node and one device row gone
        q "$DB" ".backup '$tmp/neg.db'"
        gone=$(head -1 "$acks" | cut -d' ' -f1)
        other=$(q "$DB" "SELECT name FROM nodes WHERE device_count = $devs AND name <> '$gone' LIMIT 1")
        q "$tmp/neg.db" "DELETE FROM nodes WHERE name = '$gone';
            DELETE FROM devices WHERE node = '$other'
              AND address = (SELECT min(address) FROM devices WHERE node = '$other');"
        check_acked "$tmp/neg.db" "$acks" >"$tmp/neg.acked" 2>&1
        check_whole "$tmp/neg.db" 0 "$devs" >"$tmp/neg.whole" 2>&1
        check "negative control: the acked check reports the deleted acknowledged node $gone" \
            grep -q "^$gone sent .*stored: nothing" "$tmp/neg.acked"
        check "negative control: the whole-inventory check reports $other with a device row missing" \
            grep -q "^$other: device_count $devs, $((devs - 1)) device rows" "$tmp/neg.whole"
    fi

    # restart on the same database; time to the first answer
    e2e_free_port
    t0=$(now_ms)
    "$PFD" --db "$DB" --listen "tcp://127.0.0.1:$PORT" --admin "$ADMIN" --keys "$DIR/keys" \
        --log-level warn --offline-after 3600 >>"$tmp/restart.log" 2>&1 &
    CTL=$!
    if wait_for 20 "$PF" --admin "$ADMIN" --timeout 5 nodes --json; then
        t1=$(now_ms)
        n=$("$PF" --admin "$ADMIN" --timeout 5 nodes --json | jq length)
        check "round $r: restarted controller answers nodes --json with all $total stored nodes (got $n)" \
            [ "$n" = "$total" ]
    else
        t1=$(now_ms)
        bad "round $r: the restarted controller did not answer within 20 s"
        tail -5 "$tmp/restart.log" | sed 's/^/#   /'
    fi
    kill -TERM "$CTL"
    wait "$CTL" 2>/dev/null
    CTL=
    echo "# figures round $r: devices $devs, Acks at the kill $at_kill, Acks read after it $acked," \
        "stored with $devs devices $stored of $total nodes, integrity_check $ic," \
        "restart to first nodes --json $((t1 - t0)) ms (kill to answer $((t1 - t_kill)) ms)"
    prev=$devs
done

e2e_finish
