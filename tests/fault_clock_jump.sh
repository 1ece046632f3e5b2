#!/usr/bin/env bash
# fault_clock_jump.sh — the controller's wall clock is stepped two hours
# ahead, then back, while three agents report (loopback). The controller runs
# under libfaketime (package faketime) with its offset read from a file on
# every call, so the test steps the clock of that one process only; the
# monotonic clock is left alone, as a real `date -s` or NTP step leaves it.
# What it proves:
# - the controller notices the step (it logs it) and no node goes offline
#   because of a step ahead, over more than offline-after;
# - after the step back, a killed agent still goes offline within
#   offline-after + 4 s (a clock that went back would hide it for two hours);
# - the times it records (last_seen) stay within a minute of real time;
# - every other agent stays online throughout.
# Every wait has a deadline; the whole test takes about 30 s.
set -uo pipefail
export LC_ALL=C
# shellcheck source=lib/e2e.sh
. "$(dirname "$0")/lib/e2e.sh"

AGENT=${PCIFLEET_AGENT:?run through ctest (PCIFLEET_AGENT)}
PFD=${PCIFLEETD:?run through ctest (PCIFLEETD)}
# libfaketime cannot start under jemalloc, which pcifleetd is linked with
# when it is there (CMakeLists.txt): the same controller built on glibc's
# allocator runs here instead. The allocator is not what this test is about.
PFD=${PCIFLEETD_GLIBC:-$PFD}
PF=${PCIFLEET:?run through ctest (PCIFLEET)}
FIX=${PCIFLEET_FIXTURES:?run through ctest (PCIFLEET_FIXTURES)}
command -v jq >/dev/null || { echo "fault_clock_jump: jq is required"; exit 1; }
FTLIB=
for d in /usr/lib/*/faketime /usr/lib/faketime; do
    [ -e "$d/libfaketimeMT.so.1" ] && FTLIB=$d/libfaketimeMT.so.1 && break
done
[ -n "$FTLIB" ] || { echo "fault_clock_jump: libfaketime is missing (scripts/install-deps.sh installs faketime)"; exit 1; }
e2e_init clock
note() { echo "# $*"; }

OFFLINE_AFTER=4
declare -A SRC=([c1]=pve-intel-sdboot-i225 [c2]=intel-grub-vtd-off [c3]=amd-default-on)
for n in c1 c2 c3; do cp -a "$FIX/${SRC[$n]}" "$tmp/$n"; done
e2e_free_port
KEYS=$tmp/keys
AK=$tmp/agent-keys
export PCIFLEET_ADMIN=ipc://$tmp/admin.sock
pf() { "$PF" --timeout 20 "$@"; }

FTFILE=$tmp/faketime
echo "+0" >"$FTFILE"
# A sanitizer build must not object to the preload coming first.
E2E_WRAP=(env LD_PRELOAD="$FTLIB" FAKETIME_TIMESTAMP_FILE="$FTFILE" FAKETIME_NO_CACHE=1
          FAKETIME_DONT_FAKE_MONOTONIC=1 ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0")
e2e_controller --offline-after $OFFLINE_AFTER || exit 1
declare -A APID
e2e_accept c1 c2 c3
for n in c1 c2 c3; do
    "$AGENT" run --controller "tcp://127.0.0.1:$PORT" --controller-key "$KEYS/controller.key" \
        --key "$AK/$n.key_secret" --node "$n" --root "$tmp/$n" --interval 0.5 >"$tmp/agent-$n.log" 2>&1 &
    APID[$n]=$!
    PIDS+=($!)
done
online_count() { pf --json nodes | jq '[.[] | select(.online)] | length'; }
all3() { [ "$(online_count)" = 3 ]; }
wait_for 30 all3 || { echo "fault_clock_jump: the agents did not come online"; pf nodes; exit 1; }
offline_events() { pf --json events | jq '[.[] | select(.kind == "node-offline")] | length'; }
# last_seen of every node within 60 s of this machine's real time
sane_times() {
    pf --json nodes | jq -e --argjson now "$(date +%s)" 'all(.[]; (.last_seen - $now) | fabs < 60)' >/dev/null
}
check "three agents online, times sane, no offline event yet" \
    bash -c '[ "$1" = 3 ] && [ "$2" = 0 ]' _ "$(online_count)" "$(offline_events)"

# ---- two hours ahead
mark=$(wc -l <"$tmp/controller.log")
echo "+2h" >"$FTFILE"
stepped() { tail -n +$((mark + 1)) "$tmp/controller.log" | grep -q "wall clock was stepped by +7[0-9]*\.[0-9] s"; }
check "the controller notices the step ahead (logs it)" wait_for 10 stepped
sleep $((OFFLINE_AFTER + 3))
check "no node went offline over offline-after + 3 s after the step ahead" \
    bash -c '[ "$1" = 3 ] && [ "$2" = 0 ]' _ "$(online_count)" "$(offline_events)"
check "recorded times stay within a minute of real time after the step ahead" sane_times

# ---- and back
echo "+0" >"$FTFILE"
sleep 1
kill -KILL "${APID[c3]}"
wait "${APID[c3]}" 2>/dev/null
t0=$SECONDS
c3_offline() { [ "$(pf --json nodes | jq -r '.[] | select(.name == "c3") | .online')" = false ]; }
# after the step back the controller's clock runs ahead and slows to catch
# up (ctlclock.h), so detection can take offline-after / 0.9 plus a tick
check "after the step back a killed agent goes offline within offline-after + 6 s" \
    wait_for $((OFFLINE_AFTER + 6)) c3_offline
note "c3 went offline $((SECONDS - t0)) s after its agent was killed"
check "the other two stay online" [ "$(online_count)" = 2 ]
check "exactly one offline event (c3's)" \
    bash -c '[ "$("$0" --json events | jq -c "[.[] | select(.kind == \"node-offline\") | .node]")" = "[\"c3\"]" ]' "$PF"
check "recorded times stay within a minute of real time after the step back" sane_times
check "the controller is still running" kill -0 $CTL
e2e_finish
