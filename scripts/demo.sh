#!/usr/bin/env bash
# The main job: install what is needed, build, scan this machine and every
# fixture host, then run a small fleet on loopback: a controller (pcifleetd)
# and one agent per fixture host, and ask it what the operator would ask
# (`pcifleet nodes`, `nics --free`, `vms --non-migratable`, `conflicts`, a
# drain plan). Reads only; the
# fleet's database, keys and sockets live in a temporary folder removed on
# exit, and nothing listens beyond 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build/demo -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/demo -j"$(nproc)" --target pcifleet-agent pcifleetd pcifleet >/dev/null
AGENT=build/demo/pcifleet-agent PFD=build/demo/pcifleetd PF=build/demo/pcifleet

echo "=== this machine"
"$AGENT" scan
FIXTURES=()
for fx in tests/fixtures/*/; do
  [ -d "$fx/sys" ] || continue
  FIXTURES+=("$(basename "$fx")")
  echo
  echo "=== fixture host $(basename "$fx")"
  "$AGENT" scan --root "$fx"
done

echo
echo "=== a fleet on loopback: pcifleetd and ${#FIXTURES[@]} agents, one per fixture host"
tmp=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
       echo 17450)
export PCIFLEET_ADMIN="ipc://$tmp/run/admin.sock"
"$PFD" --db "$tmp/fleet.db" --listen "tcp://127.0.0.1:$port" --admin "$PCIFLEET_ADMIN" --keys "$tmp/keys" \
  --offline-after 10 2>"$tmp/pcifleetd.log" &
PIDS+=($!)
for _ in $(seq 50); do [ -S "$tmp/run/admin.sock" ] && break; sleep 0.1; done
for fx in "${FIXTURES[@]}"; do
  "$PF" keygen --dir "$tmp/agent-keys" "$fx" >/dev/null
  # Accepted the way an operator does it after comparing fingerprints
  # (`pcifleet keys accept NODE` once the agent has tried): copied in.
  cp "$tmp/agent-keys/$fx.key" "$tmp/keys/agents/"
done
for fx in "${FIXTURES[@]}"; do
  "$AGENT" run --controller "tcp://127.0.0.1:$port" --controller-key "$tmp/keys/controller.key" \
    --key "$tmp/agent-keys/$fx.key_secret" --node "$fx" --root "tests/fixtures/$fx" --interval 1 \
    2>"$tmp/agent-$fx.log" &
  PIDS+=($!)
done
for _ in $(seq 100); do
  n=$("$PF" --json nodes 2>/dev/null | jq '[.[] | select(.online and .verdict != null)] | length' 2>/dev/null || echo 0)
  [ "$n" = "${#FIXTURES[@]}" ] && break
  sleep 0.2
done
echo
echo "\$ pcifleet nodes"
"$PF" nodes
echo
echo "\$ pcifleet nics --free"
"$PF" nics --free
echo
echo "\$ pcifleet vms --non-migratable"
"$PF" vms --non-migratable
echo
echo "\$ pcifleet conflicts"
"$PF" conflicts
echo
echo "\$ pcifleet plan drain pve-intel-sdboot-i225"
"$PF" plan drain pve-intel-sdboot-i225
echo
echo "(pcifleet-agent scan --json gives one node's full report, docs/inventory.md; the fleet's"
echo " SQL views are in docs/db.md: pcifleet sql \"SELECT ... FROM v_nics\")"
