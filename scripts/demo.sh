#!/usr/bin/env bash
# The main job: install what is needed, build, then scan this machine and
# every fixture host. Reads only; writes nothing outside build/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build/demo -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/demo -j"$(nproc)" --target pcifleet-agent >/dev/null
AGENT=build/demo/pcifleet-agent

echo "=== this machine"
"$AGENT" scan
for fx in tests/fixtures/*/; do
  [ -d "$fx/sys" ] || continue
  echo
  echo "=== fixture host $(basename "$fx")"
  "$AGENT" scan --root "$fx"
done
echo
echo "(pcifleet-agent scan --json gives the full report; see docs/inventory.md)"
