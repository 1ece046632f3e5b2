#!/usr/bin/env bash
# cli_apply.sh — `pcifleet-agent apply --simulate` on fixture copies, end to
# end through the node simulator: the Intel GRUB host with VT-d off becomes
# ready (kernel arguments, modules, update-grub, update-initramfs, a simulated
# reboot, verification); `plan` then has nothing left and a second apply
# changes nothing; without --allow-reboot apply stops before the reboot
# (exit 3) with the edits made and their backups beside the files; an AMD
# host that is already ready needs no step. Only copies under a temp folder
# are touched.
set -uo pipefail
export LC_ALL=C
AGENT=${PCIFLEET_AGENT:?run through ctest (PCIFLEET_AGENT)}
FIX=${PCIFLEET_FIXTURES:?run through ctest (PCIFLEET_FIXTURES)}
command -v jq >/dev/null || { echo "cli_apply: jq is required"; exit 1; }
tmp=$(mktemp -d /tmp/pf-apply.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
check() {
    local what=$1
    shift
    if "$@" >"$tmp/check.out" 2>&1; then pass=$((pass + 1)); echo "ok   - $what"; else
        fail=$((fail + 1))
        echo "FAIL - $what"
        sed 's/^/#   /' "$tmp/check.out" | head -20
    fi
}
verdict() { "$AGENT" scan --root "$1" --json | jq -r .iommu.verdict; }

cp -a "$FIX/intel-grub-vtd-off" "$tmp/grub"
check "before: needs-kernel-args" [ "$(verdict "$tmp/grub")" = needs-kernel-args ]
"$AGENT" apply --root "$tmp/grub" --simulate --yes --allow-reboot >"$tmp/apply.out" 2>&1
check "apply --simulate --yes --allow-reboot exits 0" [ $? = 0 ]
check "apply shows the GRUB diff before changing it" grep -q '^+GRUB_CMDLINE_LINUX_DEFAULT=.*intel_iommu=on' "$tmp/apply.out"
check "after: ready (IOMMU on, groups, interrupt remapping)" [ "$(verdict "$tmp/grub")" = ready ]
check "plan has nothing left" bash -c '[ -z "$("$0" plan --root "$1" 2>/dev/null)" ]' "$AGENT" "$tmp/grub"
cp "$tmp/grub/etc/default/grub" "$tmp/grub.after"
"$AGENT" apply --root "$tmp/grub" --simulate --yes --allow-reboot >/dev/null 2>&1
rc=$?
check "a second apply exits 0 and changes nothing" \
    bash -c '[ "$1" = 0 ] && cmp -s "$0/grub/etc/default/grub" "$0/grub.after"' "$tmp" "$rc"

cp -a "$FIX/intel-grub-vtd-off" "$tmp/noreboot"
"$AGENT" apply --root "$tmp/noreboot" --simulate --yes >"$tmp/noreboot.out" 2>&1
rc=$?
check "without --allow-reboot apply stops before the reboot (exit 3)" [ "$rc" = 3 ]
check "... with the kernel argument written and a backup beside the file" \
    bash -c 'grep -q intel_iommu=on "$0/etc/default/grub" && ls "$0"/etc/default/grub.pcifleet-*.bak' "$tmp/noreboot"
check "... and the node still needs its reboot" [ "$(verdict "$tmp/noreboot")" = needs-reboot ]

cp -a "$FIX/amd-default-on" "$tmp/amd"
check "an AMD host with the IOMMU on by default needs no step" \
    bash -c '[ -z "$("$0" plan --root "$1" 2>/dev/null)" ]' "$AGENT" "$tmp/amd"

echo "# $pass passed, $fail failed"
[ "$fail" = 0 ]
