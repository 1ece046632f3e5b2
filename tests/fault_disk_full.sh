#!/usr/bin/env bash
# fault_disk_full.sh — the disk fills up during a VM-config edit: nothing is
# half-written.
#
# The script runs itself again inside a private mount namespace (`unshare
# --mount --propagation private`); there a 64 KiB tmpfs is mounted over the
# VM config folder (etc/pve/nodes/NODE/qemu-server) of a copy of a fixture
# host, so neither the mount nor the full disk is ever seen outside. A
# controller and one agent (--simulate: `qm set` is carried out by the node
# simulator, which writes the config through agent/atomic.c) run as in
# e2e_vm_edit.sh. The tmpfs is filled to the last block (and then, blocks
# free again, limited to the inodes it uses), and each time
# `pcifleet assign NODE NIC 102 --apply` must:
#   - exit non-zero with a reason naming the full disk ("No space left");
#   - leave 102.conf byte for byte as it was, and the folder holding exactly
#     the files it held (no temporary or partial file);
#   - roll the claim back (the NIC is free again).
# With the filler removed, the same command must succeed and add hostpci0,
# again leaving no temporary file. Where a mount namespace cannot be made
# (not root, no unshare) the test is skipped (exit 77). Every wait has a
# deadline. Environment as e2e_vm_edit.sh (ctest sets it);
# PCIFLEET_E2E_KEEP=1 keeps the temp folder.
set -uo pipefail
export LC_ALL=C

if [ "${PF_FAULT_DISK_FULL_NS:-0}" != 1 ]; then
    if ! command -v unshare >/dev/null || ! unshare --mount --propagation private true 2>/dev/null; then
        echo "# skipped: fault_disk_full needs a private mount namespace (root and unshare --mount)"
        exit 77
    fi
    PF_FAULT_DISK_FULL_NS=1 exec unshare --mount --propagation private bash "$0" "$@"
fi

# shellcheck source=lib/e2e.sh
. "$(dirname "$0")/lib/e2e.sh"
AGENT=${PCIFLEET_AGENT:?run through ctest (PCIFLEET_AGENT)}
PFD=${PCIFLEETD:?run through ctest (PCIFLEETD)}
PF=${PCIFLEET:?run through ctest (PCIFLEET)}
FIX=${PCIFLEET_FIXTURES:?run through ctest (PCIFLEET_FIXTURES)}
command -v jq >/dev/null || { echo "fault_disk_full: jq is required"; exit 1; }
e2e_init diskfull
QDIR=
# the mount goes with the namespace anyway; unmount first so that the temp
# folder can be removed
trap '[ -n "$QDIR" ] && umount -l "$QDIR" 2>/dev/null; e2e_cleanup' EXIT

FX=pve-intel-sdboot-i225
A=$FX
[ -d "$FIX/$FX/sys" ] || { echo "fault_disk_full: fixture $FX is missing"; exit 1; }
cp -a "$FIX/$FX" "$tmp/$A"
CONF=$tmp/$A/etc/pve/qemu-server/102.conf
QDIR=$(readlink -f "$(dirname "$CONF")")
cp -a "$QDIR" "$tmp/qemu-server.orig"
mount -t tmpfs -o size=64k,mode=0755 pf-fault-disk-full "$QDIR" || { echo "fault_disk_full: cannot mount a tmpfs"; exit 1; }
cp -a "$tmp/qemu-server.orig/." "$QDIR/"
check "the VM config folder is a 64 KiB tmpfs holding the fixture's configs" \
    bash -c '[ "$(stat -f -c %T "$0")" = tmpfs ] && diff -r "$0" "$1"' "$QDIR" "$tmp/qemu-server.orig"

e2e_free_port
KEYS=$tmp/keys
AK=$tmp/agent-keys
export PCIFLEET_ADMIN=ipc://$tmp/admin.sock
pf() { "$PF" --timeout 10 "$@"; }
e2e_controller || exit 1
e2e_accept "$A"
"$AGENT" run --controller "tcp://127.0.0.1:$PORT" --controller-key "$KEYS/controller.key" \
    --key "$AK/$A.key_secret" --node "$A" --root "$tmp/$A" --interval 0.5 --simulate \
    >>"$tmp/agent.log" 2>&1 &
PIDS+=($!)
check "the agent reports" wait_for 20 bash -c '"$0" --timeout 5 --json nodes |
    jq -e --arg n "$1" "any(.[]; .name == \$n and .online == true and .verdict != null)"' "$PF" "$A"
free_nic() { pf --json nics --free --node "$A" | jq -r '.[0].address // empty'; }
ADDR=$(free_nic)
[ -n "$ADDR" ] || bad "a free NIC on $A"

# ---- fill the tmpfs to the last block (dd stops at ENOSPC)
dd if=/dev/zero of="$QDIR/.filler" bs=1k count=128 2>/dev/null
avail=$(stat -f -c %a "$QDIR")
check "the VM config folder is full ($avail blocks free)" [ "$avail" = 0 ]
cp "$CONF" "$tmp/102.before"

# refused_when_full WHAT: assign --apply must fail naming the full disk and
# leave the folder as it was
refused_when_full() {
    local what=$1 before out rc
    before=$(ls -A "$QDIR")
    out=$(pf assign "$A" "$ADDR" 102 --apply 2>&1)
    rc=$?
    echo "$out" | sed 's/^/#   /'
    check "$what: assign --apply fails (exit $rc)" [ "$rc" != 0 ]
    check "$what: the reason names the full disk" grep -q "No space left on device" <<<"$out"
    check "$what: 102.conf is byte for byte as before" cmp "$CONF" "$tmp/102.before"
    check "$what: the folder holds exactly the files it held (no temporary or partial file)" \
        diff <(echo "$before") <(ls -A "$QDIR")
    check "$what: the claim was rolled back, $ADDR is free again" \
        bash -c '"$0" --timeout 5 --json nics --free --node "$1" | jq -e --arg a "$2" "any(.[]; .address == \$a)"' \
        "$PF" "$A" "$ADDR"
}
refused_when_full "no block free"

# ---- no inode free (blocks free): the temporary file cannot even be made
rm -f "$QDIR/.filler"
used=$(($(stat -f -c %c "$QDIR") - $(stat -f -c %d "$QDIR")))
mount -o remount,nr_inodes=$used "$QDIR"
check "the VM config folder has blocks but no inode free ($(stat -f -c %a "$QDIR") blocks, $(stat -f -c %d "$QDIR") inodes)" \
    [ "$(stat -f -c %d "$QDIR")" = 0 ]
refused_when_full "no inode free"
mount -o remount,nr_inodes=0 "$QDIR" # 0: no limit

# ---- room again: the same edit goes through
out=$(pf assign "$A" "$ADDR" 102 --apply 2>&1)
rc=$?
echo "$out" | sed 's/^/#   /'
check "with room again the same assign --apply succeeds (exit $rc)" [ "$rc" = 0 ]
check "102.conf now passes $ADDR through as hostpci0" grep -qx "hostpci0: $ADDR" "$CONF"
check "every other line of 102.conf is unchanged" \
    bash -c 'diff <(grep -v "^hostpci0:" "$0") "$1"' "$CONF" "$tmp/102.before"
check "no temporary file left beside it" \
    diff <(ls -A "$tmp/qemu-server.orig") <(ls -A "$QDIR")

e2e_finish
