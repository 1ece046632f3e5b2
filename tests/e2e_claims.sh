#!/usr/bin/env bash
# e2e_claims.sh — claims, conflicts and plans through real processes: a
# controller and three agents on loopback, each on a copy of a fixture host:
#   pve1 = pve-intel-sdboot-i225 (ready; I225 02:00.0 configured in VMs 100
#          and 101; free I225s 03:00.0 and 04:00.0; VM 102 without passthrough)
#   pve2 = a second copy of the same host (an equivalent free I225)
#   pve3 = intel-grub-vtd-off (IOMMU off: never a target)
# What it checks: `pcifleet conflicts` names the shared I225; `assign` is
# refused with its reason (exit 1) for the management NIC, a device in another
# VM's config, a node whose IOMMU is off, a VM on another node, an unknown
# device, and is a usage error (exit 2) without its words; 200 concurrent
# `assign` calls for one NIC give exactly one exit 0 and one stored claim;
# the claimed NIC leaves `nics --free`; `release` brings it back; `plan drain
# pve1` moves the firewall VMs to pve2 and live-migrates VM 102; `plan
# migrate` answers yes for pve2 and no for pve3; plans write nothing. Every
# wait has a deadline. Environment as e2e_fleet.sh (ctest sets it);
# PCIFLEET_E2E_KEEP=1 keeps the temp folder.
set -uo pipefail
export LC_ALL=C
# shellcheck source=lib/e2e.sh
. "$(dirname "$0")/lib/e2e.sh"

AGENT=${PCIFLEET_AGENT:?run through ctest (PCIFLEET_AGENT)}
PFD=${PCIFLEETD:?run through ctest (PCIFLEETD)}
PF=${PCIFLEET:?run through ctest (PCIFLEET)}
FIX=${PCIFLEET_FIXTURES:?run through ctest (PCIFLEET_FIXTURES)}
command -v jq >/dev/null || { echo "e2e_claims: jq is required"; exit 1; }
e2e_init claims

declare -A SRC=([pve1]=pve-intel-sdboot-i225 [pve2]=pve-intel-sdboot-i225 [pve3]=intel-grub-vtd-off)
for n in pve1 pve2 pve3; do
    [ -d "$FIX/${SRC[$n]}/sys" ] || { echo "e2e_claims: fixture ${SRC[$n]} is missing"; exit 1; }
    cp -a "$FIX/${SRC[$n]}" "$tmp/$n"
done

e2e_free_port
KEYS=$tmp/keys
AK=$tmp/agent-keys
export PCIFLEET_ADMIN=ipc://$tmp/admin.sock
pf() { "$PF" --timeout 20 "$@"; }

e2e_controller || exit 1
e2e_accept pve1 pve2 pve3
for n in pve1 pve2 pve3; do
    "$AGENT" run --controller "tcp://127.0.0.1:$PORT" --controller-key "$KEYS/controller.key" \
        --key "$AK/$n.key_secret" --node "$n" --root "$tmp/$n" --interval 0.5 >"$tmp/agent-$n.log" 2>&1 &
    PIDS+=($!)
done
online() { [ "$(pf --json nodes | jq '[.[] | select(.online and .verdict != null)] | length')" = 3 ]; }
wait_for 30 online || { echo "e2e_claims: the agents did not come online"; pf nodes; tail "$tmp"/*.log; exit 1; }
mgmt=$(pf --json nics --node pve1 | jq -r '.[] | select(.management) | .address' | head -1)
check "pve1 has a management NIC" [ -n "$mgmt" ]

# ---- conflicts
pf --json conflicts >"$tmp/conflicts.json"
check "conflicts: the I225 02:00.0 of pve1 is in VMs 100 and 101" \
    jq -e '.[] | select(.kind == "shared-device" and .node == "pve1" and .address == "0000:02:00.0"
            and .vm == "100,101")' "$tmp/conflicts.json"
check "conflicts: nothing on pve3, whose IOMMU is off and VM clean" \
    bash -c '! jq -e ".[] | select(.node == \"pve3\")" "$0"' "$tmp/conflicts.json"

# ---- refusals: exit 1 with the reason
refused() { # what want-substring args...
    local what=$1 want=$2
    shift 2
    local out rc
    out=$(pf assign "$@" 2>&1)
    rc=$?
    check "assign refused: $what (exit 1)" bash -c '[ "$0" = 1 ] && grep -qF -- "$1" <<<"$2"' "$rc" "$want" "$out"
}
refused "management NIC" "management NIC" pve1 "$mgmt" 102
refused "in another VM's config" "already in the config of VM" pve1 0000:02:00.0 102
refused "IOMMU off" "is not ready" pve3 0000:08:00.0 router
refused "VM on another node" "VM router lives on pve3, not on pve1" pve1 0000:03:00.0 router
refused "unknown device" "has no device at 0000:7f:00.0" pve1 0000:7f:00.0 102
pf assign pve1 >/dev/null 2>&1
check "assign without its words is a usage error (exit 2)" [ $? = 2 ]
check "no claim stored by any of them" \
    bash -c '[ "$("$0" --json sql "SELECT count(*) AS n FROM v_claims" | jq ".[0].n")" = 0 ]' "$PF"

# ---- 200 racing claims of one NIC
check "0000:04:00.0 on pve1 is free before" \
    bash -c '"$0" --json nics --node pve1 --free | jq -e ".[] | select(.address == \"0000:04:00.0\")"' "$PF"
mkdir -p "$tmp/race"
RACE=()
for i in $(seq 1 200); do
    ( "$PF" --timeout 60 assign pve1 0000:04:00.0 102 >"$tmp/race/$i.out" 2>&1; echo $? >"$tmp/race/$i.rc" ) &
    RACE+=($!)
done
# each CLI gives up after its --timeout, so this wait is bounded
wait "${RACE[@]}"
wins=$(grep -lx 0 "$tmp"/race/*.rc | wc -l)
losses=$(grep -lx 1 "$tmp"/race/*.rc | wc -l)
check "200 concurrent assign calls: exactly one wins (got $wins), 199 are refused (got $losses)" \
    bash -c '[ "$0" = 1 ] && [ "$1" = 199 ]' "$wins" "$losses"
check "exactly one claim stored" \
    bash -c '[ "$("$0" --json sql "SELECT count(*) AS n FROM v_claims WHERE node = '"'pve1'"'" | jq ".[0].n")" = 1 ]' "$PF"
check "the losers say it is already claimed" bash -c 'grep -l "already claimed" "$0"/*.out | wc -l | grep -qx 199' \
    "$tmp/race"
check "the claimed NIC is no longer free" \
    bash -c '"$0" --json nics --node pve1 | jq -e ".[] | select(.address == \"0000:04:00.0\" and .free == false)"' "$PF"
check "v_nics says whose it is" \
    bash -c '"$0" --json sql "SELECT claimed_by FROM v_nics WHERE node = '"'pve1'"' AND address = '"'0000:04:00.0'"'" \
             | jq -e ".[0].claimed_by == \"102\""' "$PF"

# ---- plans (read-only)
claim_events="SELECT count(*) AS n FROM v_events WHERE kind LIKE '%claim%' OR kind LIKE 'device-%ed'"
before=$(pf --json sql "$claim_events" | jq '.[0].n')
pf --json plan drain pve1 >"$tmp/drain.json"
check "plan drain: VM 100 must stop and can move to pve2's free I225" \
    jq -e '.vms[] | select(.vm == "100" and .action == "stop-and-move") | .targets[0]
           | select(.node == "pve2" and .devices[0].from == "0000:02:00.0")' "$tmp/drain.json"
check "plan drain: VM 102 (no passthrough) live-migrates" \
    jq -e '.vms[] | select(.vm == "102" and .action == "live-migrate")' "$tmp/drain.json"
check "plan drain never names pve3 (IOMMU off) as a target" \
    bash -c '! jq -e ".vms[].targets[]? | select(.node == \"pve3\")" "$0"' "$tmp/drain.json"
out=$(pf plan migrate 100 --to pve2)
check "plan migrate 100 --to pve2: yes" grep -q "^yes: VM 100 must stop; on pve2 it would get" <<<"$out"
out=$(pf plan migrate 100 --to pve3)
check "plan migrate 100 --to pve3: no, its IOMMU is not ready" grep -q "^no: the IOMMU of pve3 is not ready" <<<"$out"
after=$(pf --json sql "$claim_events" | jq '.[0].n')
check "plans changed nothing (no claim events, same claims)" \
    bash -c '[ "$0" = "$1" ] && [ "$("$2" --json sql "SELECT count(*) AS n FROM v_claims" | jq ".[0].n")" = 1 ]' \
    "$before" "$after" "$PF"

# ---- release
out=$(pf release pve1 0000:04:00.0)
rc=$?
check "release frees the claim (exit 0)" \
    bash -c '[ "$1" = 0 ] && grep -q "released 0000:04:00.0 on pve1 from VM 102" <<<"$0"' "$out" "$rc"
check "the NIC is free again" \
    bash -c '"$0" --json nics --node pve1 --free | jq -e ".[] | select(.address == \"0000:04:00.0\")"' "$PF"
pf release pve1 0000:04:00.0 >/dev/null 2>&1
check "releasing it again is refused (exit 1)" [ $? = 1 ]
check "claimed and released are in the event log" \
    bash -c '"$0" --json sql "SELECT kind FROM v_events WHERE kind IN ('"'device-claimed'"', '"'device-released'"')" | jq -e "length == 2"' "$PF"

e2e_finish
