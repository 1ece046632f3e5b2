#!/usr/bin/env bash
# pcifleet-agent plan and apply's refusals, on fixture hosts (read only:
# plan never writes, and apply is only run where it must refuse before
# touching anything). apply --simulate end to end waits for the simulator's
# boot commands.
set -euo pipefail
AGENT=${PCIFLEET_AGENT:?run through ctest}
FIX=${PCIFLEET_FIXTURES:?run through ctest}
command -v jq >/dev/null || { echo "jq is required (scripts/install-deps.sh installs it)"; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok()   { pass=$((pass+1)); }
bad()  { echo "FAIL: $*"; fail=$((fail+1)); }

# Ready nodes: no steps, nothing printed.
for f in amd-default-on pve-intel-sdboot-i225 sriov-82599; do
  out=$("$AGENT" plan --root "$FIX/$f") && [ -z "$out" ] && ok || bad "plan $f printed: $out"
done
# Intel with VT-d off in the kernel: the six steps, in order.
want='1. set-kernel-args: add intel_iommu=on iommu=pt
2. ensure-modules: vfio vfio_iommu_type1 vfio_pci vfio_virqfd
3. refresh-boot
4. refresh-initramfs
5. reboot
6. verify'
out=$("$AGENT" plan --root "$FIX/intel-grub-vtd-off" --pt)
[ "$out" = "$want" ] && ok || bad "plan intel-grub-vtd-off --pt: $out"
kinds=$("$AGENT" plan --root "$FIX/intel-grub-vtd-off" --json | jq -r '[.steps[].kind]|join(",")')
[ "$kinds" = "set-kernel-args,ensure-modules,refresh-boot,refresh-initramfs,reboot,verify" ] && ok || bad "json kinds: $kinds"
# Firmware needed: no steps, the reason on stderr and in JSON.
out=$("$AGENT" plan --root "$FIX/no-firmware-table" 2>"$tmp/err")
[ -z "$out" ] && grep -q "needs-firmware" "$tmp/err" && ok || bad "no-firmware-table: $out $(cat "$tmp/err")"
n=$("$AGENT" plan --root "$FIX/no-firmware-table" --json | jq '.steps|length')
why=$("$AGENT" plan --root "$FIX/no-firmware-table" --json | jq -r '.why')
[ "$n" = 0 ] && [[ "$why" == *VT-d* ]] && ok || bad "no-firmware-table json: $n $why"
# Usage.
"$AGENT" plan --help | grep -q -- "--pt" && ok || bad "plan --help"
"$AGENT" apply --help | grep -q -- "--allow-reboot" && ok || bad "apply --help"
set +e
"$AGENT" plan --yes >/dev/null 2>&1; [ $? = 1 ] && ok || bad "plan --yes is not an option of plan"
"$AGENT" plan --root "$tmp/none" >/dev/null 2>&1; [ $? = 2 ] && ok || bad "plan on a missing root"
# apply refuses before doing anything: no terminal and no --yes; a fixture
# root without --simulate (its commands would run on this host).
cp -a "$FIX/intel-grub-vtd-off" "$tmp/node"
sum=$(cd "$tmp/node" && find . -type f -exec md5sum {} + | sort | md5sum)
"$AGENT" apply --root "$tmp/node" </dev/null 2>"$tmp/err"; rc=$?
[ $rc = 1 ] && grep -q -- "--yes" "$tmp/err" && ok || bad "apply without a terminal: $rc $(cat "$tmp/err")"
"$AGENT" apply --root "$tmp/node" --yes </dev/null 2>"$tmp/err"; rc=$?
[ $rc = 1 ] && grep -q -- "--simulate" "$tmp/err" && ok || bad "apply on a fixture without --simulate: $rc $(cat "$tmp/err")"
set -e
[ "$(cd "$tmp/node" && find . -type f -exec md5sum {} + | sort | md5sum)" = "$sum" ] && ok || bad "a refused apply changed the tree"

echo "cli_plan: $pass passed, $fail failed"
[ $fail = 0 ]
