#!/usr/bin/env bash
# The main job, for a newcomer: install what is needed, build, then bring up a
# small fleet and ask it what an operator asks:
#   - a controller (pcifleetd) with its SQLite database in a temp folder;
#   - an agent for THIS machine (reads only: no VM edits, no steps but verify,
#     no reboot, no simulator; its step memory lives in the temp folder);
#   - a simulated agent per fixture host (tests/fixtures/*), each on its own
#     COPY of the fixture, with --simulate so no command ever runs here;
#   - each agent in its own network namespace joined to the controller's by a
#     veth pair when this machine allows it (root, `ip netns`), else loopback;
# then prints the fleet, the conflicts, a drain plan and a dry-run IOMMU
# rollout, and checks that the dry run changed no file of the copies.
# Everything (processes, namespaces, temp folder) is removed on exit, also on
# Ctrl-C or error; every wait has a deadline. DEMO_BUILD=DIR skips install
# and build and uses the programs in DIR (tests).
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C

say() { printf '\n=== %s\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }

if [ -n "${DEMO_BUILD:-}" ]; then
  B=$DEMO_BUILD
else
  echo "demo: installing packages (if missing) and building into build/demo ..."
  scripts/install-deps.sh
  cmake -S . -B build/demo -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build/demo -j"$(nproc)" --target pcifleet-agent pcifleetd pcifleet >/dev/null
  B=build/demo
fi
AGENT=$B/pcifleet-agent PFD=$B/pcifleetd PF=$B/pcifleet
for p in "$AGENT" "$PFD" "$PF"; do [ -x "$p" ] || die "$p is not built"; done
command -v jq >/dev/null || die "jq is required (scripts/install-deps.sh installs it)"
start=$SECONDS

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pcifleet-demo.XXXXXX")
PIDS=()
NETNS=()
cleanup() {
  local p end=$((SECONDS + 5))
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    while kill -0 "$p" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  for ns in "${NETNS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the fleet's nodes: this machine, and a copy of each fixture host
LOCAL=$(hostname -s 2>/dev/null || echo this-machine)
FIXTURES=()
for fx in tests/fixtures/*/; do
  [ -d "$fx/sys" ] || continue
  n=$(basename "$fx")
  FIXTURES+=("$n")
  cp -a "$fx" "$tmp/node-$n"
done
[ ${#FIXTURES[@]} -gt 0 ] || die "no fixture hosts under tests/fixtures"

say "this machine, as its agent sees it (pcifleet-agent scan: reads only)"
"$AGENT" scan --node "$LOCAL" || echo "(the scan of this machine reported problems; see above)"

# ---- network: namespaces where possible
MODE=loopback
PORT=7450
if [ "$(id -u)" = 0 ] && command -v ip >/dev/null && ip netns add pfdemo-probe 2>/dev/null; then
  ip netns del pfdemo-probe
  MODE=netns
fi
declare -A NS=() EP=()
if [ $MODE = netns ]; then
  CTL_NS=pfdemo-ctl
  ip netns add $CTL_NS && NETNS+=($CTL_NS)
  ip -n $CTL_NS link set lo up
  # this machine's agent too: a namespace changes its network, not the files
  # it reads, and keeps every demo link out of the machine's own namespace
  i=0
  for n in "$LOCAL" "${FIXTURES[@]}"; do
    i=$((i + 1))
    ns=pfdemo-$i
    ip netns add "$ns" && NETNS+=("$ns")
    ip -n "$ns" link set lo up
    ip -n $CTL_NS link add "pfdemo-$i" type veth peer name "pfdemo-${i}a" netns "$ns"
    ip -n $CTL_NS addr add "10.214.$i.1/30" dev "pfdemo-$i"
    ip -n "$ns" addr add "10.214.$i.2/30" dev "pfdemo-${i}a"
    ip -n $CTL_NS link set "pfdemo-$i" up
    ip -n "$ns" link set "pfdemo-${i}a" up
    NS[$n]=$ns
    EP[$n]=tcp://10.214.$i.1:$PORT
  done
  LISTEN=tcp://*:$PORT
  echo
  echo "demo: network namespaces: the controller in $CTL_NS, each agent in its own, joined by veth pairs"
else
  CTL_NS=
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    PORT=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || break
  done
  for n in "${FIXTURES[@]}" "$LOCAL"; do NS[$n]=; EP[$n]=tcp://127.0.0.1:$PORT; done
  LISTEN=tcp://127.0.0.1:$PORT
  echo
  echo "demo: loopback (network namespaces are not available here): everything on 127.0.0.1:$PORT"
fi
spawn() { # NS COMMAND...: exec in namespace NS ("" = here), so $! is the command
  local ns=$1
  shift
  if [ -n "$ns" ]; then exec ip netns exec "$ns" "$@"; else exec "$@"; fi
}
wait_for() { # SECONDS COMMAND...
  local end=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do [ $SECONDS -ge $end ] && return 1; sleep 0.2; done
}

# ---- the controller, and the agents' keys accepted the operator's way
export PCIFLEET_ADMIN="ipc://$tmp/run/admin.sock"
pf() { "$PF" --timeout 20 "$@"; }
(spawn "$CTL_NS" "$PFD" --db "$tmp/fleet.db" --listen "$LISTEN" --admin "$PCIFLEET_ADMIN" --keys "$tmp/keys" \
  --offline-after 10) 2>"$tmp/pcifleetd.log" &
PIDS+=($!)
wait_for 15 pf status || { cat "$tmp/pcifleetd.log" >&2; die "the controller did not start"; }

ALL=("$LOCAL" "${FIXTURES[@]}")
for n in "${ALL[@]}"; do "$PF" keygen --dir "$tmp/agent-keys" "$n" >/dev/null; done
run_agent() { # NODE OPTIONS...
  local n=$1
  shift
  (spawn "${NS[$n]}" "$AGENT" run --controller "${EP[$n]}" --controller-key "$tmp/keys/controller.key" \
    --key "$tmp/agent-keys/$n.key_secret" --node "$n" --interval 1 "$@") 2>"$tmp/agent-$n.log" &
  PIDS+=($!)
}
run_agent "$LOCAL" --root / --no-vm-edits --allow-steps verify --state-dir "$tmp/state-local"
for n in "${FIXTURES[@]}"; do run_agent "$n" --root "$tmp/node-$n" --simulate; done
pending() { [ "$(pf --json keys | jq '[.. | objects | select(.state? == "pending")] | length')" -ge ${#ALL[@]} ]; }
wait_for 20 pending || true
say "agents that tried to connect wait for the operator (pcifleet keys)"
pf keys
for n in "${ALL[@]}"; do pf keys accept "$n" >/dev/null || die "could not accept $n's key"; done
echo "(accepted all ${#ALL[@]} with pcifleet keys accept NODE; compare fingerprints first in real life)"
online() {
  [ "$(pf --json nodes | jq '[.[] | select(.online and .verdict != null)] | length')" = ${#ALL[@]} ]
}
wait_for 40 online || { pf nodes; tail -3 "$tmp"/agent-*.log >&2; die "not every node came online"; }

say "the fleet: every node, online, its IOMMU verdict and bootloader (pcifleet nodes)"
pf nodes
say "NICs a VM can be given now: in no VM's config, not a management NIC, alone in their IOMMU group (pcifleet nics --free)"
pf nics --free
say "VMs pinned to their node by passthrough, and why (pcifleet vms --non-migratable)"
pf vms --non-migratable
say "what the reports already show wrong (pcifleet conflicts)"
pf conflicts || true
DRAIN=pve-intel-sdboot-i225
say "before maintenance of $DRAIN: what happens to each of its VMs (pcifleet plan drain $DRAIN)"
pf plan drain "$DRAIN" || true

ROLL=()
for n in intel-grub-vtd-off amd-default-on no-firmware-table; do
  [ -n "${NS[$n]+x}" ] && ROLL+=("$n")
done
if [ ${#ROLL[@]} -gt 0 ]; then
  nodes=$(IFS=,; echo "${ROLL[*]}")
  sums() { (cd "$tmp" && find "${ROLL[@]/#/node-}" -type f -not -path '*/var/lib/pcifleet/*' -print0 |
            sort -z | xargs -0 sha256sum); }
  sums >"$tmp/before.sum"
  say "a dry-run IOMMU rollout over $nodes: each agent works out its steps and changes nothing"
  echo "\$ pcifleet rollout start iommu --nodes $nodes --dry-run"
  id=$(pf rollout start iommu --nodes "$nodes" --dry-run)
  ended() { pf --json rollout status "$id" | jq -e '.state != "running"'; }
  wait_for 40 ended || echo "(the dry run is still running after 40 s)"
  pf rollout status "$id"
  sums >"$tmp/after.sum"
  if cmp -s "$tmp/before.sum" "$tmp/after.sum"; then
    echo "(checked: no file of the rolled-out nodes' trees changed)"
  else
    diff "$tmp/before.sum" "$tmp/after.sum" >&2 || true
    die "the dry run changed files"
  fi
  if [ -n "${NS[intel-grub-vtd-off]+x}" ]; then
    say "the steps the real rollout would push to intel-grub-vtd-off (pcifleet-agent plan, on the node)"
    "$AGENT" plan --root "$tmp/node-intel-grub-vtd-off"
  fi
fi

echo
echo "demo: ${#ALL[@]} nodes ($MODE), fleet up and answered in $((SECONDS - start)) s."
echo "(pcifleet-agent scan --json gives one node's full report, docs/inventory.md; the fleet's"
echo " SQL views are in docs/db.md: pcifleet sql \"SELECT ... FROM v_nics\"; man pcifleet)"
