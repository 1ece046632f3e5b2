#!/usr/bin/env bash
# Options from config files and per-command help, for the two programs whose
# e2e test does not cover them: `pcifleet-agent scan` takes root, node and
# pci-ids from the agent's config file (the one `run` reads), and `pcifleet`
# takes admin, timeout and json from its own; the command line wins, then
# (for admin) $PCIFLEET_ADMIN, then the file. `pcifleet COMMAND --help`
# answers locally for every controller command, wherever --help stands.
# No controller is needed: an admin endpoint that does not exist is named in
# the CLI's error, which shows which setting was used.
set -euo pipefail
AGENT=${PCIFLEET_AGENT:?run through ctest}
PF=${PCIFLEET:?run through ctest}
FIX=${PCIFLEET_FIXTURES:?run through ctest}
command -v jq >/dev/null || { echo "jq is required (scripts/install-deps.sh installs it)"; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
unset PCIFLEET_ADMIN
pass=0; fail=0
check() { # check NAME COMMAND...
    local name=$1; shift
    if "$@"; then pass=$((pass+1)); else echo "FAIL: $name"; fail=$((fail+1)); fi
}

# ---- pcifleet-agent scan --config
cat >"$tmp/agent.conf" <<EOF
# the daemon's keys are accepted (the same file serves run)
controller = tcp://127.0.0.1:1
root = $FIX/sriov-82599
node = from-config
EOF
out=$("$AGENT" scan --config "$tmp/agent.conf" --json)
check "scan takes root and node from the config file" \
    bash -c 'jq -e ".node == \"from-config\" and (.root|endswith(\"sriov-82599\")) and (.devices|length) > 0" <<<"$0" >/dev/null' "$out"
out=$("$AGENT" scan --config "$tmp/agent.conf" --node from-cli --root "$FIX/amd-default-on" --json)
check "scan: the command line overrides the config file" \
    bash -c 'jq -e ".node == \"from-cli\" and (.root|endswith(\"amd-default-on\"))" <<<"$0" >/dev/null' "$out"
printf 'colour = red\n' >"$tmp/bad.conf"
rc=0; out=$("$AGENT" scan --config "$tmp/bad.conf" 2>&1) || rc=$?
check "scan refuses an unknown config key naming the line (exit 1)" \
    bash -c '[ "$0" = 1 ] && grep -q "bad.conf:1: unknown key .colour." <<<"$1"' "$rc" "$out"
rc=0; "$AGENT" scan --config "$tmp/none.conf" >/dev/null 2>&1 || rc=$?
check "scan refuses a config file that does not exist (exit 1)" [ "$rc" = 1 ]
check "scan --help names --config" bash -c '"$0" scan --help | grep -q -- "--config FILE"' "$AGENT"
check "pcifleet-agent -V prints the version" bash -c '"$0" -V | grep -q "^pcifleet-agent [0-9]"' "$AGENT"

# ---- pcifleet --config
printf 'admin = ipc://%s/from-config.sock\ntimeout = 0.5\njson = yes\n' "$tmp" >"$tmp/cli.conf"
rc=0; out=$("$PF" --config "$tmp/cli.conf" nodes 2>&1) || rc=$?
check "pcifleet takes admin from the config file (exit 3: nobody there)" \
    bash -c '[ "$0" = 3 ] && grep -q "from-config.sock does not exist" <<<"$1"' "$rc" "$out"
rc=0; out=$(PCIFLEET_ADMIN="ipc://$tmp/from-env.sock" "$PF" --config "$tmp/cli.conf" nodes 2>&1) || rc=$?
check "pcifleet: \$PCIFLEET_ADMIN overrides the config file" \
    bash -c '[ "$0" = 3 ] && grep -q "from-env.sock" <<<"$1"' "$rc" "$out"
rc=0; out=$(PCIFLEET_ADMIN="ipc://$tmp/from-env.sock" "$PF" --config "$tmp/cli.conf" \
    --admin "ipc://$tmp/from-cli.sock" nodes 2>&1) || rc=$?
check "pcifleet: --admin overrides both" \
    bash -c '[ "$0" = 3 ] && grep -q "from-cli.sock" <<<"$1"' "$rc" "$out"
printf 'timeout = never\n' >"$tmp/t.conf"
rc=0; out=$("$PF" --config "$tmp/t.conf" nodes 2>&1) || rc=$?
check "pcifleet refuses a bad timeout in the config file (exit 2)" \
    bash -c '[ "$0" = 2 ] && grep -q "t.conf: timeout must be" <<<"$1"' "$rc" "$out"
printf 'json = maybe\n' >"$tmp/j.conf"
rc=0; out=$("$PF" --config "$tmp/j.conf" nodes 2>&1) || rc=$?
check "pcifleet refuses a bad json value in the config file (exit 2)" \
    bash -c '[ "$0" = 2 ] && grep -q "json must be true or false" <<<"$1"' "$rc" "$out"
rc=0; out=$("$PF" --config "$tmp/bad.conf" nodes 2>&1) || rc=$?
check "pcifleet refuses an unknown config key naming the line (exit 2)" \
    bash -c '[ "$0" = 2 ] && grep -q "bad.conf:1: unknown key" <<<"$1"' "$rc" "$out"
rc=0; "$PF" --config "$tmp/none.conf" nodes >/dev/null 2>&1 || rc=$?
check "pcifleet refuses a config file that does not exist (exit 2)" [ "$rc" = 2 ]
check "pcifleet --help names --config" bash -c '"$0" --help | grep -q -- "--config FILE"' "$PF"

# ---- pcifleet COMMAND --help, answered without a controller
for c in keys nodes nics groups vms show events sql status; do
    rc=0; out=$("$PF" --admin "ipc://$tmp/nobody.sock" $c --help 2>&1) || rc=$?
    check "pcifleet $c --help" bash -c '[ "$0" = 0 ] && grep -q "^usage: pcifleet \[OPTIONS\] $2" <<<"$1"' "$rc" "$out" "$c"
done
rc=0; out=$("$PF" --admin "ipc://$tmp/nobody.sock" keys accept --help 2>&1) || rc=$?
check "pcifleet keys accept --help" bash -c '[ "$0" = 0 ] && grep -q "keys accept NODE" <<<"$1"' "$rc" "$out"
rc=0; out=$("$PF" --admin "ipc://$tmp/nobody.sock" nics --node n1 -h 2>&1) || rc=$?
check "pcifleet nics --node n1 -h" bash -c '[ "$0" = 0 ] && grep -q "^usage: pcifleet \[OPTIONS\] nics" <<<"$1"' "$rc" "$out"
rc=0; "$PF" --admin "ipc://$tmp/nobody.sock" sql "SELECT '--help'" >/dev/null 2>&1 || rc=$?
check "a query that contains --help still goes to the controller (exit 3 here)" [ "$rc" = 3 ]

# ---- pcifleet fingerprint --json is JSON whatever the file name
"$PF" keygen --dir "$tmp/k" node1 >/dev/null
cp "$tmp/k/node1.key" "$tmp/k/we\"ird\\name.key"
out=$("$PF" --json fingerprint "$tmp/k/we\"ird\\name.key")
check "fingerprint --json escapes the file name" \
    bash -c 'jq -e --arg f "$1" ".file == \$f and (.fingerprint|startswith(\"sha256:\"))" <<<"$0" >/dev/null' \
    "$out" "$tmp/k/we\"ird\\name.key"

echo "cli_config: $pass passed, $fail failed"
[ "$fail" = 0 ]
