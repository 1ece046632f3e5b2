#!/usr/bin/env bash
# e2e_rollout.sh — an IOMMU rollout end to end with the node simulator: a
# controller and six agents (real processes, loopback, --simulate
# --allow-reboot, each on a copy of a fixture host), batch 1, in name order:
#   n1-grub       Intel, GRUB, VT-d off           -> done
#   n2-sdboot     Intel, systemd-boot, intel_iommu=off, its agent comes back
#                 4 s late after the reboot          -> done
#   n3-amd        AMD, IOMMU on by default         -> skipped (ready)
#   n4-nofw       no DMAR table                    -> skipped (firmware)
#   n5-pinned     a running VM with passthrough    -> refused (drain guard)
#   n6-badverify  the IOMMU stays off after boot   -> failed: the rollout halts
# Checked: the order (n2 starts only after n1 is done), skips and refusal
# with their reasons, the halt and its reason, the final states, that every
# node that rebooted did so once (one node-rebooted event, the simulator's
# boot id changed once), the backups listed, and that a controller killed
# with SIGKILL in the middle of the rollout carries on where it was.
# Nothing outside the temp folder is touched. Every wait has a deadline.
# PCIFLEET_E2E_KEEP=1 keeps the temp folder.
set -uo pipefail
export LC_ALL=C
# shellcheck source=lib/e2e.sh
. "$(dirname "$0")/lib/e2e.sh"

AGENT=${PCIFLEET_AGENT:?run through ctest (PCIFLEET_AGENT)}
PFD=${PCIFLEETD:?run through ctest (PCIFLEETD)}
PF=${PCIFLEET:?run through ctest (PCIFLEET)}
FIX=${PCIFLEET_FIXTURES:?run through ctest (PCIFLEET_FIXTURES)}
command -v jq >/dev/null || { echo "e2e_rollout: jq is required"; exit 1; }
e2e_init rollout

# ---- the fleet
cp -a "$FIX/intel-grub-vtd-off" "$tmp/n1-grub"
sd=$tmp/n2-sdboot # systemd-boot with the IOMMU turned off
cp -a "$FIX/pve-intel-sdboot-i225" "$sd"
rm -rf "$sd"/sys/class/iommu/* "$sd"/sys/kernel/iommu_groups/*
find "$sd/sys" \( -name iommu_group -o -name iommu \) -type l -delete
sed -i 's/intel_iommu=on/intel_iommu=off/' "$sd/proc/cmdline" "$sd/etc/kernel/cmdline"
sed -i 's/IR-PCI-MSI/PCI-MSI/g; s/IR-IO-APIC/IO-APIC/g' "$sd/proc/interrupts"
printf 'boot_delay_ms = 4000\n' >"$sd/sim-profile.conf"
rm -f "$sd"/run/qemu-server/*.pid # its VMs are stopped: the drain guard lets it through
# its corosync.conf names the fixture hosts, not this fleet's nodes: members
# pcifleet does not know count as down, so quorum would hold it forever
# (quorum has its own test in test_rollout.c)
rm -f "$sd/etc/pve/corosync.conf"
cp -a "$FIX/amd-default-on" "$tmp/n3-amd"
rm -f "$tmp/n3-amd/etc/pve/corosync.conf"
cp -a "$FIX/no-firmware-table" "$tmp/n4-nofw"
cp -a "$FIX/intel-grub-vtd-off" "$tmp/n5-pinned" # its libvirt VM runs
mkdir -p "$tmp/n5-pinned/run/libvirt/qemu" "$tmp/n5-pinned/proc/4242"
echo 4242 >"$tmp/n5-pinned/run/libvirt/qemu/router.pid"
cp -a "$FIX/intel-grub-vtd-off" "$tmp/n6-badverify"
printf 'iommu_after_boot = off\n' >"$tmp/n6-badverify/sim-profile.conf"
NODES=(n1-grub n2-sdboot n3-amd n4-nofw n5-pinned n6-badverify)
for n in "${NODES[@]}"; do
    cp "$tmp/$n/proc/sys/kernel/random/boot_id" "$tmp/$n.boot0" 2>/dev/null || : >"$tmp/$n.boot0"
done

e2e_free_port
KEYS=$tmp/keys
AK=$tmp/agent-keys
export PCIFLEET_ADMIN=ipc://$tmp/admin.sock
pf() { "$PF" --timeout 20 "$@"; }
e2e_controller --offline-after 60 || exit 1
e2e_accept "${NODES[@]}"
for n in "${NODES[@]}"; do
    "$AGENT" run --controller "tcp://127.0.0.1:$PORT" --controller-key "$KEYS/controller.key" \
        --key "$AK/$n.key_secret" --node "$n" --root "$tmp/$n" --interval 0.5 --simulate --allow-reboot \
        >"$tmp/agent-$n.log" 2>&1 &
    PIDS+=($!)
done
online() { [ "$(pf --json nodes | jq '[.[] | select(.online and .verdict != null)] | length')" = 6 ]; }
wait_for 30 online || { echo "e2e_rollout: the agents did not come online"; pf nodes; exit 1; }
check "before: n1, n2, n5, n6 need kernel args; n3 ready; n4 needs firmware" \
    bash -c '"$0" --json nodes | jq -e "map({(.name): .verdict}) | add | . == {\"n1-grub\":\"needs-kernel-args\",
             \"n2-sdboot\":\"needs-kernel-args\", \"n3-amd\":\"ready\", \"n4-nofw\":\"needs-firmware\",
             \"n5-pinned\":\"needs-kernel-args\", \"n6-badverify\":\"needs-kernel-args\"}"' "$PF"

# ---- the rollout
id=$(pf rollout start iommu --all --reboot-timeout 60)
check "rollout start prints the id" [ "$id" = 1 ]
status() { pf --json rollout status "$id"; }
node_state() { status | jq -r --arg n "$1" '.nodes[] | select(.node == $n) | .state'; }
check "the precheck settles n3 (ready), n4 (firmware) and n5 (pinned VM) at once" \
    bash -c 'j=$("$0" --json rollout status 1); jq -e ".nodes | map({(.node): .state}) | add |
             .\"n3-amd\" == \"skipped\" and .\"n4-nofw\" == \"skipped\" and .\"n5-pinned\" == \"refused\"" <<<"$j"' "$PF"
check "batch 1: n1 is in progress, n2 waits" \
    bash -c '[ "$0" != waiting ] && [ "$1" = waiting ]' "$(node_state n1-grub)" "$(node_state n2-sdboot)"

# SIGKILL of the controller while n1 is on its way, then a restart
wait_for 30 bash -c '[ "$("$0" --json rollout status 1 | jq -r ".nodes[0].step")" -ge 2 ]' "$PF"
status >"$tmp/before-kill.json" # the last state the controller answered with
kill -KILL "$CTL"
wait "$CTL" 2>/dev/null
# With no controller running: the database is whole, and holds the rollout
# at least as far as the controller last said (each node's state settled or
# its step index not behind; a step may have been answered since).
check "after SIGKILL mid-rollout: PRAGMA integrity_check is ok" \
    bash -c '[ "$(sqlite3 "$0" "PRAGMA integrity_check")" = ok ]' "$tmp/fleet.db"
sqlite3 -json "$tmp/fleet.db" "SELECT node, state, step FROM rollout_nodes WHERE rollout = $id ORDER BY node" \
    >"$tmp/after-kill.json"
check "after SIGKILL mid-rollout: every node's stored step is at least the last one reported" \
    jq -e --slurpfile before "$tmp/before-kill.json" '
        (map({(.node): .}) | add) as $db
        | $before[0].nodes | length > 0 and all(.[]; $db[.node] != null and
            ($db[.node].step >= .step) and (if (.state | IN("skipped", "refused", "done", "failed"))
                                             then $db[.node].state == .state else true end))' "$tmp/after-kill.json"
e2e_controller --offline-after 60
check "the controller restarts after SIGKILL mid-rollout" [ $? = 0 ]

done_or_halted() { status | jq -e '.state == "halted" or .state == "done"'; }
wait_for 150 done_or_halted
status >"$tmp/final.json"
check "the rollout halts at n6, the node whose verification fails" \
    jq -e '.state == "halted" and (.reason | test("n6-badverify: step verify failed"))' "$tmp/final.json"
check "final states: n1, n2 done; n3, n4 skipped; n5 refused; n6 failed" \
    jq -e '.nodes | map({(.node): .state}) | add | . == {"n1-grub":"done", "n2-sdboot":"done", "n3-amd":"skipped",
           "n4-nofw":"skipped", "n5-pinned":"refused", "n6-badverify":"failed"}' "$tmp/final.json"
check "the reasons: already ready, a firmware change, the pinned VM" \
    jq -e '(.nodes[2].detail | test("already ready")) and (.nodes[3].detail | test("firmware change"))
           and (.nodes[4].detail | test("cannot live-migrate"))' "$tmp/final.json"
check "status lists the backups of the edited nodes" \
    jq -e '(.nodes[0].backups | length) >= 1 and (.nodes[1].backups | length) >= 1' "$tmp/final.json"
check "n1 and n2 are ready now" \
    bash -c '"$0" --json nodes | jq -e "map(select(.name == \"n1-grub\" or .name == \"n2-sdboot\") | .verdict)
             == [\"ready\", \"ready\"]"' "$PF"
order=$(pf --json sql "SELECT node, kind FROM v_events WHERE kind IN ('rollout-stepping', 'rollout-done') ORDER BY id")
check "order: n2 started only after n1 was done" \
    bash -c 'jq -e "[.[] | select(.node == \"n1-grub\" or .node == \"n2-sdboot\") | .node + \":\" + .kind]
             | index(\"n1-grub:rollout-done\") < index(\"n2-sdboot:rollout-stepping\")" <<<"$0"' "$order"
for n in n1-grub n2-sdboot n6-badverify; do
    reboots=$(pf --json sql "SELECT count(*) AS n FROM v_events WHERE kind = 'node-rebooted' AND node = '$n'" | jq '.[0].n')
    check "$n rebooted exactly once (across the controller's SIGKILL)" [ "$reboots" = 1 ]
done
check "n3, n4, n5 were never touched (same boot id)" \
    bash -c 'for n in n3-amd n4-nofw n5-pinned; do cmp -s "$0/$n.boot0" "$0/$n/proc/sys/kernel/random/boot_id" || exit 1; done' "$tmp"
out=$(timeout 20 "$PF" rollout watch "$id" 2>&1)
rc=$?
check "rollout watch ends at once on a halted rollout, exit 1" bash -c '[ "$0" = 1 ] && grep -q halted <<<"$1"' "$rc" "$out"
pf rollout resume "$id" >/dev/null 2>&1
check "a halted rollout cannot be resumed (exit 1)" [ $? = 1 ]

# ---- an agent whose policy allows fewer steps: refused, with the reason, nothing changed
cp -a "$FIX/intel-grub-vtd-off" "$tmp/n7-limited"
e2e_accept n7-limited
"$AGENT" run --controller "tcp://127.0.0.1:$PORT" --controller-key "$KEYS/controller.key" \
    --key "$AK/n7-limited.key_secret" --node n7-limited --root "$tmp/n7-limited" --interval 0.5 --simulate \
    --allow-reboot --allow-steps verify,reboot >"$tmp/agent-n7-limited.log" 2>&1 &
PIDS+=($!)
online7() { [ "$(pf --json nodes | jq '[.[] | select(.online and .verdict != null)] | length')" = 7 ]; }
wait_for 30 online7
id2=$(pf rollout start iommu --nodes n7-limited)
check "a second rollout may start once the first has halted" [ "$id2" = 2 ]
halted2() { pf --json rollout status 2 | jq -e '.state == "halted"'; }
wait_for 30 halted2
check "the agent's allow-steps refuses set-kernel-args: the rollout halts with that reason" \
    bash -c '"$0" --json rollout status 2 | jq -e ".reason | test(\"n7-limited: step set-kernel-args refused: this agent.s policy does not allow set-kernel-args steps\")"' "$PF"
check "the limited node's GRUB file is untouched" cmp -s "$FIX/intel-grub-vtd-off/etc/default/grub" "$tmp/n7-limited/etc/default/grub"

e2e_finish
