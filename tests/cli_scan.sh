#!/usr/bin/env bash
# pcifleet-agent scan as operators and scripts use it: the JSON contract
# (every field the issue names, with its type) on this machine and on every
# fixture host, the human summary, --help, and the exit statuses.
set -euo pipefail
AGENT=${PCIFLEET_AGENT:?run through ctest}
FIX=${PCIFLEET_FIXTURES:?run through ctest}
command -v jq >/dev/null || { echo "jq is required (scripts/install-deps.sh installs it)"; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok()   { pass=$((pass+1)); }
bad()  { echo "FAIL: $*"; fail=$((fail+1)); }

# The contract: field names and types; null allowed where the issue says so.
CONTRACT='
def t(v; ts): (v|type) as $x | any(ts[]; . == $x);
(.node|type=="string") and (.agent_version|type=="string") and t(.kernel.release; ["string","null"])
and (.cpu.vendor|IN("intel","amd","other")) and t(.cpu.virtualization; ["boolean","null"])
and t(.iommu.firmware; ["string","null"]) and (.iommu.firmware|IN("DMAR","IVRS",null))
and (.iommu.enabled|type=="boolean") and (.iommu.units|type=="number") and (.iommu.groups|type=="number")
and (.iommu.default_domain|IN("translated","identity",null))
and t(.iommu.interrupt_remapping; ["boolean","null"]) and t(.iommu.cmdline; ["string","null"])
and (.iommu.verdict|IN("ready","needs-firmware","needs-kernel-args","needs-reboot","needs-modules","unsupported"))
and (.iommu.reasons|type=="array")
and (.boot.loader|IN("grub","systemd-boot","unknown")) and (.boot.cmdline_file|IN("/etc/default/grub","/etc/kernel/cmdline",null))
and (.boot.configured_args|type=="array") and t(.boot.refresh_command; ["string","null"])
and (.vfio.loaded|type=="array") and (.vfio.configured|type=="array") and (.vfio.missing|type=="array")
and (.devices|type=="array") and all(.devices[];
      (.address|test("^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\\.[0-7]$")) and (.class|test("^[0-9a-f]{4}$"))
      and (.vendor_id|test("^[0-9a-f]{4}$")) and (.device_id|test("^[0-9a-f]{4}$"))
      and (.subsystem_vendor_id|type=="string") and (.subsystem_device_id|type=="string")
      and has("vendor_name") and has("device_name") and has("driver") and t(.iommu_group; ["number","null"])
      and (.numa_node|type=="number") and t(.acs; ["object","null"]) and t(.sriov; ["object","null"])
      and has("physfn") and t(.link; ["object","null"])
      and (if .sriov then (.sriov.total_vfs|type=="number") and (.sriov.num_vfs|type=="number") else true end)
      and (if .link then (.link|has("speed") and has("width")) else true end))
and (.groups|type=="array") and all(.groups[]; (.id|type=="number") and (.devices|type=="array")
      and all(.endpoints[]; (.assignable_alone|type=="boolean") and (.slot_functions|type=="array") and (.blockers|type=="array")))
and (.nics|type=="array") and all(.nics[]; has("address") and has("ifname") and has("mac") and has("speed_mbps")
      and has("operstate") and (.management|type=="boolean") and (.is_vf|type=="boolean"))
and (.vms|type=="array") and all(.vms[]; has("id") and has("name") and has("machine") and has("running")
      and all(.hostpci[]; (.index|type=="number") and (.addresses|type=="array") and has("pcie") and has("raw"))
      and (.migratable|type=="boolean") and (.reasons|type=="array"))
and (.errors|type=="array")
'

check_json() { # name file
  if jq -e "$CONTRACT" "$2" >/dev/null 2>"$tmp/jq.err"; then ok; else bad "$1: JSON does not meet the contract ($(cat "$tmp/jq.err"))"; fi
}

# This very machine: must succeed and meet the contract.
if "$AGENT" scan --json >"$tmp/live.json" 2>"$tmp/live.err"; then ok; else bad "scan of / exited $?: $(cat "$tmp/live.err")"; fi
check_json "live" "$tmp/live.json"
if "$AGENT" scan >"$tmp/live.txt"; then ok; else bad "summary of / failed"; fi
grep -q '^IOMMU: ' "$tmp/live.txt" && ok || bad "summary of / lacks the IOMMU line"
[ "$(jq '.devices|length' "$tmp/live.json")" -eq "$(ls /sys/bus/pci/devices | wc -l)" ] && ok \
  || bad "live scan does not list every function in /sys/bus/pci/devices"

n=0
for fx in "$FIX"/*/; do
  [ -d "$fx/sys" ] || continue
  name=$(basename "$fx"); n=$((n+1))
  "$AGENT" scan --root "$fx" --json >"$tmp/$name.json" || { bad "$name: scan failed"; continue; }
  check_json "$name" "$tmp/$name.json"
  [ "$(jq -r .node "$tmp/$name.json")" = "$name" ] && ok || bad "$name: node name"
  [ "$(jq '.errors|length' "$tmp/$name.json")" -eq 0 ] && ok || bad "$name: errors in a clean fixture: $(jq -c .errors "$tmp/$name.json")"
  "$AGENT" scan --root "$fx" --node other-name --json | jq -e '.node=="other-name"' >/dev/null && ok || bad "$name: --node"
  "$AGENT" scan --root "$fx" >"$tmp/$name.txt" && grep -q "IOMMU: $(jq -r .iommu.verdict "$tmp/$name.json")" "$tmp/$name.txt" \
    && ok || bad "$name: summary verdict differs from JSON"
done
[ "$n" -ge 6 ] && ok || bad "only $n fixture hosts found (need at least 6)"

# Exit statuses and messages.
set +e
"$AGENT" scan --root /nonexistent/pcifleet >"$tmp/out" 2>"$tmp/err"; rc=$?
set -e
[ "$rc" -eq 2 ] && ok || bad "missing root: exit $rc, want 2"
[ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q '/nonexistent/pcifleet' "$tmp/err" && ok || bad "missing root: want one line naming it, got: $(cat "$tmp/err")"
[ ! -s "$tmp/out" ] && ok || bad "missing root: printed a report"
set +e
"$AGENT" scan --bogus >/dev/null 2>&1; rc1=$?
"$AGENT" frobnicate >/dev/null 2>&1; rc2=$?
set -e
[ "$rc1" -eq 1 ] && [ "$rc2" -eq 1 ] && ok || bad "bad usage: exits $rc1/$rc2, want 1"
"$AGENT" --help | grep -q 'scan' && ok || bad "--help"
"$AGENT" scan --help | grep -q -- '--root' && ok || bad "scan --help"
"$AGENT" --version | grep -q '^pcifleet-agent ' && ok || bad "--version"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
