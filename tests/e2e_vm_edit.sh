#!/usr/bin/env bash
# e2e_vm_edit.sh — `pcifleet assign/release --apply` end to end: a controller
# and two agents as real processes on loopback, each on a copy of a fixture
# host. Nothing real is ever run: agent A has --simulate (its VM configs are
# edited by the node simulator), agent B has a fixture root without
# --simulate and must refuse.
#
# What it checks: assign --apply on A adds hostpciN to the VM's config file
# in the fixture copy (no pcie=1 on an i440fx VM), and the controller's vms
# answer shows it (the agent rescanned and sent its inventory); release
# --apply removes it again, leaving the file byte for byte as it was; on B
# the step is refused with the reason, the claim rolled back and the config
# untouched; `--no-vm-edits` refuses too; `run --simulate --root /` does not
# start. Every wait has a deadline. Environment as e2e_fleet.sh (ctest sets
# it); PCIFLEET_E2E_KEEP=1 keeps the temp folder.
set -uo pipefail
export LC_ALL=C
# shellcheck source=lib/e2e.sh
. "$(dirname "$0")/lib/e2e.sh"

AGENT=${PCIFLEET_AGENT:?run through ctest (PCIFLEET_AGENT)}
PFD=${PCIFLEETD:?run through ctest (PCIFLEETD)}
PF=${PCIFLEET:?run through ctest (PCIFLEET)}
FIX=${PCIFLEET_FIXTURES:?run through ctest (PCIFLEET_FIXTURES)}
command -v jq >/dev/null || { echo "e2e_vm_edit: jq is required"; exit 1; }
e2e_init vmedit

# B is a second copy of the same host under another node name: it has a
# free NIC and a VM for it too.
FX=pve-intel-sdboot-i225
A=$FX
B=pve-copy-b
[ -d "$FIX/$FX/sys" ] || { echo "e2e_vm_edit: fixture $FX is missing"; exit 1; }
cp -a "$FIX/$FX" "$tmp/$A"
cp -a "$FIX/$FX" "$tmp/$B"
CONF_A=$tmp/$A/etc/pve/qemu-server/102.conf
CONF_B=$tmp/$B/etc/pve/qemu-server/102.conf
cp "$CONF_A" "$tmp/102.orig"
cp "$CONF_B" "$tmp/102b.orig"

e2e_free_port
KEYS=$tmp/keys
AK=$tmp/agent-keys
export PCIFLEET_ADMIN=ipc://$tmp/admin.sock
pf() { "$PF" --timeout 10 "$@"; }

e2e_controller || exit 1

out=$("$AGENT" run --controller "tcp://127.0.0.1:$PORT" --controller-key "$KEYS/controller.key" \
    --key /nonexistent.key_secret --root / --simulate 2>&1)
rc=$?
check "run --simulate on the live root does not start (exit 2, says why)" \
    bash -c '[ "$0" = 2 ] && grep -q "simulat" <<<"$1" && grep -q "fixture" <<<"$1"' "$rc" "$out"

start_agent() { # node extra-options...
    local node=$1
    shift
    e2e_accept "$node"
    "$AGENT" run --controller "tcp://127.0.0.1:$PORT" --controller-key "$KEYS/controller.key" \
        --key "$AK/$node.key_secret" --node "$node" --root "$tmp/$node" --interval 0.5 "$@" \
        >>"$tmp/agent-$node.log" 2>&1 &
    AGENT_PID=$!
    PIDS+=($AGENT_PID)
}
start_agent $A --simulate
PID_A=$AGENT_PID
start_agent $B
check "both agents report" wait_for 20 bash -c 'for n in "$@"; do "$0" --timeout 5 --json nodes |
    jq -e --arg n "$n" "any(.[]; .name == \$n and .online == true and .verdict != null)" || exit 1; done' "$PF" $A $B
check "agent A says VM edits run in the simulator" grep -q "allowed, commands run in the node simulator" \
    "$tmp/agent-$A.log"
check "agent B says VM edits are refused without --simulate" grep -q "refused (this agent reads the node tree" \
    "$tmp/agent-$B.log"

free_nic() { pf --json nics --free --node "$1" | jq -r '.[0].address // empty'; }
ADDR_A=$(free_nic $A)
ADDR_B=$(free_nic $B)
[ -n "$ADDR_A" ] || bad "a free NIC on $A"
[ -n "$ADDR_B" ] || bad "a free NIC on $B"
echo "# free NICs: $A $ADDR_A, $B $ADDR_B"

# ---- A: assign --apply edits the fixture's config through the simulator
out=$(pf assign $A "$ADDR_A" 102 --apply 2>&1)
rc=$?
check "assign --apply on $A: exit 0" bash -c '[ "$0" = 0 ]' "$rc"
echo "$out" | sed 's/^/#   /'
check "102.conf now passes $ADDR_A through as hostpci0, without pcie=1 (i440fx)" \
    grep -qx "hostpci0: $ADDR_A" "$CONF_A"
check "every other line of 102.conf is unchanged" \
    bash -c 'diff <(grep -v "^hostpci0:" "$0") "$1"' "$CONF_A" "$tmp/102.orig"
check "no temporary file left beside it" \
    bash -c '! ls -a "$(dirname "$(readlink -f "$0")")" | grep -q pcifleet-' "$CONF_A"
check "the controller's vms answer shows the new entry (the agent rescanned)" \
    wait_for 10 bash -c '"$0" --timeout 5 --json vms | jq -e --arg a "$1" \
        "any(.[]; .vm_id == \"102\" and (tostring | contains(\$a)))"' "$PF" "$ADDR_A"
check "agent A logged the step as done" grep -q "done: added hostpci0" "$tmp/agent-$A.log"

out=$(pf release $A "$ADDR_A" --apply 2>&1)
rc=$?
check "release --apply on $A: exit 0" bash -c '[ "$0" = 0 ]' "$rc"
echo "$out" | sed 's/^/#   /'
check "102.conf is byte for byte as before" cmp "$CONF_A" "$tmp/102.orig"

# ---- B: no --simulate on a fixture root: refused, claim rolled back
out=$(pf assign $B "$ADDR_B" 102 --apply 2>&1)
rc=$?
check "assign --apply on $B is refused (non-zero) with the agent's reason" \
    bash -c '[ "$0" != 0 ] && grep -q "without --simulate" <<<"$1"' "$rc" "$out"
echo "$out" | sed 's/^/#   /'
check "B's 102.conf untouched" cmp "$CONF_B" "$tmp/102b.orig"
check "the claim was rolled back: $ADDR_B is free again" \
    bash -c '"$0" --timeout 5 --json nics --free --node "$1" | jq -e --arg a "$2" "any(.[]; .address == \$a)"' \
    "$PF" $B "$ADDR_B"

# ---- A again with --no-vm-edits: refused
kill -TERM "$PID_A"
wait "$PID_A" 2>/dev/null
mv "$tmp/agent-$A.log" "$tmp/agent-$A.1.log"
cmark=$(wc -l <"$tmp/controller.log")
start_agent $A --simulate --no-vm-edits
# Online alone could still be the old connection's: the controller sends a
# node's steps to the connection it last heard the node on, so wait until
# the new process's hello is in the controller's log.
new_hello() { tail -n +$((cmark + 1)) "$tmp/controller.log" | grep -q "hello from .*node $A)"; }
check "agent A is back" wait_for 20 new_hello
out=$(pf assign $A "$ADDR_A" 102 --apply 2>&1)
rc=$?
check "with --no-vm-edits the step is refused, naming allow-vm-edits" \
    bash -c '[ "$0" != 0 ] && grep -q "allow-vm-edits" <<<"$1"' "$rc" "$out"
echo "$out" | sed 's/^/#   /'
check "102.conf still as before" cmp "$CONF_A" "$tmp/102.orig"

e2e_finish
