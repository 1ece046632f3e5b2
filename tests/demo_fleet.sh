#!/usr/bin/env bash
# The README's main command (scripts/demo.sh) on the programs of this build
# (DEMO_BUILD skips install and build): it must finish, print every section a
# newcomer is promised with real answers (every node online in `nodes`, the
# shared-device conflict, a drain plan, a finished dry-run rollout whose
# trees did not change), leave no namespace, link or temp folder behind, and
# leave the repository's fixtures untouched.
# shellcheck source=lib/e2e.sh
. "$(dirname "$0")/lib/e2e.sh"
SRC=${PCIFLEET_SOURCE:?run through ctest (PCIFLEET_SOURCE)}
BUILD=${PCIFLEET_BUILD:?run through ctest (PCIFLEET_BUILD)}
e2e_init demo
mkdir "$tmp/t"
TMPDIR=$tmp/t DEMO_BUILD=$BUILD timeout 150 bash "$SRC/scripts/demo.sh" >"$tmp/out" 2>&1
rc=$?
check "scripts/demo.sh exits 0" [ "$rc" = 0 ]
[ "$rc" = 0 ] || tail -30 "$tmp/out" | sed 's/^/#   /'
nfx=$(for d in "$SRC"/tests/fixtures/*/; do [ -d "$d/sys" ] && echo; done | wc -l)
for s in "pcifleet nodes" "pcifleet nics --free" "pcifleet vms --non-migratable" "pcifleet conflicts" \
    "pcifleet plan drain" "pcifleet keys" "rollout start iommu"; do
    check "the demo shows: $s" grep -qF "$s" "$tmp/out"
done
# the nodes table: one line per node (fixtures + this machine), each online
nodes=$(sed -n '/(pcifleet nodes)/,/^=== /p' "$tmp/out" | grep -cE '^[^ =N].* yes ')
check "pcifleet nodes lists $((nfx + 1)) online nodes (got $nodes)" [ "$nodes" = $((nfx + 1)) ]
check "the shared NIC of VMs 100 and 101 is a conflict" grep -qE '^shared-device +pve-intel-sdboot-i225 +100,101' "$tmp/out"
check "the drain plan names each VM" grep -qE '^100 +opnsense' "$tmp/out"
check "the dry-run rollout finished with the node done as a dry run" grep -q 'dry run: nothing changed' "$tmp/out"
check "the dry run changed no file" grep -q 'checked: no file of the rolled-out nodes' "$tmp/out"
check "the demo says how long it took and which network mode" grep -qE '^demo: [0-9]+ nodes \((netns|loopback)\), fleet up and answered in [0-9]+ s' "$tmp/out"
check "no demo namespace is left" bash -c '! ip netns list 2>/dev/null | grep -q pfdemo'
check "the demo made no link in the machine's own namespace" bash -c '! ip -o link show | grep -q pfdemo'
check "no demo temp folder is left" [ -z "$(ls -A "$tmp/t")" ]
if git -C "$SRC" rev-parse >/dev/null 2>&1; then
    check "the repository's fixtures are untouched" bash -c '[ -z "$(git -C "$0" status --porcelain tests/fixtures)" ]' "$SRC"
fi
e2e_finish
