# tests/lib/e2e.sh — what the end-to-end shell tests share (sourced, not a
# test itself: ctest runs only tests/*.sh).
#
# e2e_init NAME makes the temp folder $tmp (/tmp/pf-NAME.XXXXXX) and arms the
# cleanup: on exit every pid in PIDS and $CTL gets SIGTERM, then SIGKILL after
# 5 s, and $tmp is removed (PCIFLEET_E2E_KEEP=1 keeps it). ok/bad/check count
# and print results; wait_for SECONDS CMD... retries CMD every 0.2 s until it
# succeeds or the deadline passes; e2e_free_port sets PORT to a loopback port
# below the ephemeral range that nobody listens on; e2e_finish prints the
# tally and fails on any failure.
#
# e2e_controller [PCIFLEETD-OPTION...] starts $PFD on $tmp/fleet.db, listening
# on tcp://127.0.0.1:$PORT, admin $PCIFLEET_ADMIN, keys $KEYS (log appended to
# $tmp/controller.log; E2E_WRAP, an array, goes in front of the command), sets
# CTL and waits up to 15 s for it to answer; returns 1, log shown, if not. A
# first start that finds $PORT taken picks another PORT (at most 3 tries).
# e2e_accept NODE... makes each node's key pair in $AK (unless there), puts
# the public key into $KEYS/agents/ and has the controller re-read them.
pass=0
fail=0
declare -a PIDS=()
CTL=

e2e_cleanup() {
    local p end
    for p in "${PIDS[@]}" $CTL; do kill -TERM "$p" 2>/dev/null; done
    end=$((SECONDS + 5))
    for p in "${PIDS[@]}" $CTL; do
        while kill -0 "$p" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    if [ "${PCIFLEET_E2E_KEEP:-0}" = 1 ]; then echo "# kept $tmp"; else rm -rf "$tmp"; fi
}

e2e_init() {
    tmp=$(mktemp -d "/tmp/pf-$1.XXXXXX")
    trap e2e_cleanup EXIT
}

ok() { pass=$((pass + 1)); echo "ok   - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
check() {
    local what=$1
    shift
    if "$@" >"$tmp/check.out" 2>&1; then ok "$what"; else
        bad "$what"
        sed 's/^/#   /' "$tmp/check.out" | head -20
    fi
}

wait_for() {
    local end=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -ge $end ] && return 1
        sleep 0.2
    done
}

# The port comes from below the kernel's ephemeral range: an outgoing
# connection of a test running in parallel holds an ephemeral port as its
# local end, which no connect probe sees and which makes a later bind fail
# (CI once lost e2e_vm_edit to that). Listeners of parallel tests are what
# the probe is for; PORT + 1 stays in the range too (e2e_fleet uses it).
e2e_free_port() {
    local lo=32768 hi=60999 base=10000 span
    read -r lo hi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null
    if [ "$lo" -gt $((base + 1000)) ]; then span=$((lo - base - 2))
    elif [ "$hi" -lt 64000 ]; then base=$((hi + 1)) span=$((65534 - hi - 2))
    else base=20000 span=40000; fi
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        PORT=$((base + RANDOM % span))
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || return 0
    done
}

declare -a E2E_WRAP=()
E2E_CTL_STARTS=0
e2e_controller() {
    local try end up
    for try in 1 2 3; do
        "${E2E_WRAP[@]}" "$PFD" --db "$tmp/fleet.db" --listen "tcp://127.0.0.1:$PORT" --admin "$PCIFLEET_ADMIN" \
            --keys "$KEYS" "$@" >>"$tmp/controller.log" 2>&1 &
        CTL=$!
        end=$((SECONDS + 15)) up=0
        while kill -0 "$CTL" 2>/dev/null && [ $SECONDS -lt $end ]; do
            "$PF" --timeout 20 status >/dev/null 2>&1 && { up=1; break; }
            sleep 0.2
        done
        if [ $up = 1 ]; then
            E2E_CTL_STARTS=$((E2E_CTL_STARTS + 1))
            return 0
        fi
        # Only a first start may move: later ones restart a controller that
        # agents already know at $PORT.
        if [ $E2E_CTL_STARTS = 0 ] && ! kill -0 "$CTL" 2>/dev/null &&
            grep -q "cannot listen on tcp://127.0.0.1:$PORT: Address already in use" "$tmp/controller.log"; then
            echo "# port $PORT was taken between the probe and the bind; trying another"
            wait "$CTL" 2>/dev/null
            e2e_free_port
            continue
        fi
        break
    done
    echo "# the controller did not start:"
    sed 's/^/#   /' "$tmp/controller.log"
    return 1
}

e2e_accept() {
    local n
    mkdir -p "$KEYS/agents"
    for n in "$@"; do
        [ -f "$AK/$n.key" ] || "$PF" keygen --dir "$AK" "$n" >/dev/null || { echo "# keygen $n failed"; exit 1; }
        cp "$AK/$n.key" "$KEYS/agents/$n.key"
    done
    kill -HUP "$CTL"
}

e2e_finish() {
    echo "# $pass passed, $fail failed"
    [ "$fail" = 0 ]
}
