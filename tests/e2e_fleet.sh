#!/usr/bin/env bash
# e2e_fleet.sh — a controller and one agent per fixture host, as real
# processes, end to end.
#
# Where the machine allows (root, `ip netns add` works) every agent runs in
# its own network namespace, joined to the controller's namespace by a veth
# pair with a private /30 (10.213.N.0/30); the namespaces and veths are made
# here, named pf-e2e-<tag>-*, and deleted on exit — no interface or route of
# the host is touched. Otherwise everything runs on loopback. The first line
# of output says which.
#
# What it checks: keys (keygen, pending on first contact, accept by copying a
# .key into agents/ and by `pcifleet keys accept`), that the controller's
# nodes/nics/vms/groups/sql answers (tables and --json) match what each agent
# scans locally, that a killed agent goes offline, that a controller restart
# (SIGTERM and SIGKILL) loses nothing, that garbage frames, an over-size
# frame, a wrong protocol version, a foreign node name and an unknown key are
# refused (Error replies, log lines, a pending key) while the other agents
# keep reporting, and the CLI's and daemon's refusals (non-loopback admin,
# second controller on one admin socket, no controller).
#
# Every wait has a deadline. Environment: PCIFLEET_AGENT, PCIFLEETD, PCIFLEET,
# PCIFLEET_FIXTURES (ctest sets them), PCIFLEET_BUILD (for tools/pf_sendraw);
# PCIFLEET_E2E_LOOPBACK=1 forces loopback; PCIFLEET_E2E_VALGRIND=1 runs the
# first controller under valgrind; PCIFLEET_E2E_KEEP=1 keeps the temp folder.
set -uo pipefail
export LC_ALL=C

AGENT=${PCIFLEET_AGENT:?run through ctest (PCIFLEET_AGENT)}
PFD=${PCIFLEETD:?run through ctest (PCIFLEETD)}
PF=${PCIFLEET:?run through ctest (PCIFLEET)}
FIX=${PCIFLEET_FIXTURES:?run through ctest (PCIFLEET_FIXTURES)}
BUILD=${PCIFLEET_BUILD:-$(dirname "$PF")}
SENDRAW=${PF_SENDRAW:-$BUILD/pf_sendraw}
command -v jq >/dev/null || { echo "e2e_fleet: jq is required"; exit 1; }
[ -x "$SENDRAW" ] || { echo "e2e_fleet: $SENDRAW is missing (built from tools/pf_sendraw.c)"; exit 1; }

OFFLINE_AFTER=4
MAX_FRAME=262144
SLOW=1 # deadline multiplier (valgrind)

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
# check DESCRIPTION COMMAND...: one assertion
check() {
    local what=$1
    shift
    if "$@" >"$tmp/check.out" 2>&1; then
        ok "$what"
    else
        bad "$what"
        sed 's/^/#   /' "$tmp/check.out" | head -20
    fi
}
note() { echo "# $*"; }

tmp=$(mktemp -d /tmp/pf-e2e.XXXXXX)
tag=$(printf '%04x' $((RANDOM)))
declare -a PIDS=() NETNS=()

cleanup() {
    local p end
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    end=$((SECONDS + 5))
    for p in "${PIDS[@]}"; do
        while kill -0 "$p" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    for ns in "${NETNS[@]}"; do ip netns del "$ns" 2>/dev/null; done
    if [ "${PCIFLEET_E2E_KEEP:-0}" = 1 ]; then echo "# kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'echo "e2e_fleet: interrupted"; exit 130' INT TERM

# wait_for SECONDS COMMAND...: true once COMMAND succeeds, false at the deadline
wait_for() {
    local end=$((SECONDS + $1 * SLOW))
    shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -ge $end ] && return 1
        sleep 0.2
    done
}
# wait_exit PID SECONDS: true when PID ended within the deadline; $? of it in WAIT_RC
wait_exit() {
    local end=$((SECONDS + $2 * SLOW))
    while kill -0 "$1" 2>/dev/null; do
        [ $SECONDS -ge $end ] && return 1
        sleep 0.1
    done
    { wait "$1"; } 2>/dev/null
    WAIT_RC=$?
    return 0
}
log_since() { tail -n +"$(($1 + 1))" "$2"; }
lines() { wc -l <"$1"; }

# ---------------------------------------------------------------- fixtures
declare -a FXS=() NODES=()
for name in pve-intel-sdboot-i225 intel-grub-vtd-off amd-default-on old-shared-group sriov-82599 \
    no-firmware-table ppc-p2020; do
    [ -d "$FIX/$name/sys" ] && FXS+=("$name")
done
if [ ${#FXS[@]} -lt 4 ]; then
    echo "e2e_fleet: need at least 4 fixture hosts in $FIX, found ${#FXS[@]}: ${FXS[*]}"
    exit 1
fi
mkdir -p "$tmp/roots" "$tmp/expect"
for fx in "${FXS[@]}"; do
    cp -a "$FIX/$fx" "$tmp/roots/$fx"
    NODES+=("$fx")
    "$AGENT" scan --json --root "$tmp/roots/$fx" --node "$fx" >"$tmp/expect/$fx.json" 2>/dev/null \
        || bad "local scan of fixture $fx"
done
N=${#NODES[@]}

# ---------------------------------------------------------------- network
MODE=loopback
if [ "${PCIFLEET_E2E_LOOPBACK:-0}" != 1 ] && [ "$(id -u)" = 0 ] && command -v ip >/dev/null &&
    ip netns add "pf-e2e-$tag-probe" 2>/dev/null; then
    ip netns del "pf-e2e-$tag-probe"
    MODE=netns
fi
PORT=7450
declare -a AG_NS=() AG_EP=()
CTL_NS=
if [ $MODE = netns ]; then
    CTL_NS=pf-e2e-$tag-c
    ip netns add "$CTL_NS" && NETNS+=("$CTL_NS") || { echo "e2e_fleet: cannot create $CTL_NS"; exit 1; }
    ip -n "$CTL_NS" link set lo up
    for i in $(seq 0 $((N - 1))); do
        ns=pf-e2e-$tag-$i
        ip netns add "$ns" && NETNS+=("$ns") || { echo "e2e_fleet: cannot create $ns"; exit 1; }
        ip -n "$ns" link set lo up
        # The pair is made inside the two namespaces: the host never sees it.
        ip -n "$CTL_NS" link add "pf-e2e-$i" type veth peer name "pf-e2e-${i}a" netns "$ns" ||
            { echo "e2e_fleet: cannot create veth pf-e2e-$i"; exit 1; }
        ip -n "$CTL_NS" addr add "10.213.$i.1/30" dev "pf-e2e-$i"
        ip -n "$ns" addr add "10.213.$i.2/30" dev "pf-e2e-${i}a"
        ip -n "$CTL_NS" link set "pf-e2e-$i" up
        ip -n "$ns" link set "pf-e2e-${i}a" up
        AG_NS[i]=$ns
        AG_EP[i]=tcp://10.213.$i.1:$PORT
    done
    LISTEN=tcp://*:$PORT
    echo "# mode: network namespaces — controller in $CTL_NS, $N agents each in its own namespace joined by a veth /30"
else
    # A free port on loopback.
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        PORT=$((20000 + RANDOM % 40000))
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || break
    done
    for i in $(seq 0 $((N - 1))); do
        AG_NS[i]=
        AG_EP[i]=tcp://127.0.0.1:$PORT
    done
    LISTEN=tcp://127.0.0.1:$PORT
    echo "# mode: loopback (network namespaces not available here) — controller and $N agents on 127.0.0.1:$PORT"
fi
# inns NS COMMAND...: run in namespace NS ("" = here)
inns() {
    local ns=$1
    shift
    if [ -n "$ns" ]; then ip netns exec "$ns" "$@"; else "$@"; fi
}
# spawn NS COMMAND... &: the same in the background, so that $! is the
# command's own pid (exec replaces the subshell, ip netns exec execs too)
spawn() {
    local ns=$1
    shift
    if [ -n "$ns" ]; then exec ip netns exec "$ns" "$@"; else exec "$@"; fi
}
# where tools reach the controller from its own namespace
LOCAL_EP=tcp://127.0.0.1:$PORT

# ---------------------------------------------------------------- controller
KEYS=$tmp/keys
AK=$tmp/agent-keys
ADMIN=ipc://$tmp/run/admin.sock
CLOG=$tmp/controller.log
touch "$CLOG"
cat >"$tmp/pcifleetd.conf" <<EOF
# pcifleetd config written by e2e_fleet.sh
db = $tmp/fleet.db
listen = "$LISTEN"
admin = $ADMIN
keys = $KEYS
max-frame = $MAX_FRAME
offline-after = 600
EOF
export PCIFLEET_ADMIN=$ADMIN # the CLI's default admin socket for this test

pf() { "$PF" --timeout $((5 * SLOW)) "$@"; }
CTL_PID=
CTL_RUN=0
# start_controller [valgrind]: starts pcifleetd (offline-after from the command
# line overrides the config file) and waits until it answers
start_controller() {
    local pre=()
    CTL_RUN=$((CTL_RUN + 1))
    if [ "${1:-}" = valgrind ]; then
        # --soname-synonyms: memcheck replaces jemalloc's malloc too, when
        # pcifleetd is linked with it (CMakeLists.txt PCIFLEET_JEMALLOC)
        pre=(valgrind --soname-synonyms='somalloc=*jemalloc*'
            --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect
            --error-exitcode=99 --log-file="$tmp/valgrind.%p.log")
    fi
    echo "==== controller run $CTL_RUN" >>"$CLOG"
    # under valgrind the controller itself is slow: a node's heartbeats can
    # wait in its queue longer than the plain offline-after, so it scales too
    spawn "$CTL_NS" "${pre[@]}" "$PFD" --config "$tmp/pcifleetd.conf" --offline-after $((OFFLINE_AFTER * SLOW)) \
        >>"$CLOG" 2>&1 &
    CTL_PID=$!
    PIDS+=("$CTL_PID")
    wait_for 15 pf status
}

# ---------------------------------------------------------------- agents
declare -a AG_PID=()
start_agent() { # index
    local i=$1 node=${NODES[$1]}
    spawn "${AG_NS[i]}" "$AGENT" run --controller "${AG_EP[i]}" --controller-key "$KEYS/controller.key" \
        --key "$AK/$node.key_secret" --node "$node" --root "$tmp/roots/${FXS[i]}" --interval 1 \
        >>"$tmp/agent-$node.log" 2>&1 &
    AG_PID[i]=$!
    PIDS+=("${AG_PID[i]}")
}

nodes_json() { pf --json nodes; }
# node_field NODE FIELD: a field of `pcifleet nodes --json` for NODE
node_field() { nodes_json | jq -r --arg n "$1" ".[] | select(.name == \$n) | .$2"; }
# online and with an inventory: a node's row exists (online) from its Hello,
# a batch before its inventory is stored
online_count() { nodes_json | jq '[.[] | select(.online == true and .verdict != null)] | length'; }
all_online() { [ "$(online_count)" = "$N" ]; }
is_offline() { [ "$(node_field "$1" online)" = false ]; }
is_online() { [ "$(node_field "$1" online)" = true ]; }

# ================================================================ 1. CLI basics
note "CLI and daemon usage"
check "pcifleet --help lists every command" \
    bash -c '"$0" --help | grep -q "keygen" && "$0" --help | grep -q "keys accept NODE" &&
             for c in nodes nics groups vms show events sql status; do "$0" --help | grep -qE "^  $c" || exit 1; done' "$PF"
check "pcifleet --version" bash -c '"$0" --version | grep -q "^pcifleet "' "$PF"
check "pcifleetd --help names every option" \
    bash -c 'h=$("$0" --help); for o in --db --listen --admin --keys --offline-after --max-frame --config --log-level; do
             grep -q -- "$o" <<<"$h" || exit 1; done' "$PFD"
"$PF" frobnicate >/dev/null 2>&1
check "unknown command is a usage error (2)" [ $? = 2 ]
out=$("$PF" --admin "ipc://$tmp/nothing/here.sock" nodes 2>&1)
rc=$?
check "no controller at an ipc path: exit 3 with a sentence" bash -c '[ "$0" = 3 ] && grep -q "no controller at" <<<"$1"' "$rc" "$out"
out=$("$PF" --admin tcp://127.0.0.1:1 --timeout 1 nodes 2>&1)
rc=$?
check "controller not answering: exit 3, 'no answer from the controller at EP'" \
    bash -c '[ "$0" = 3 ] && grep -q "no answer from the controller at tcp://127.0.0.1:1" <<<"$1"' "$rc" "$out"
out=$("$PFD" --db "$tmp/x.db" --keys "$tmp/xkeys" --listen tcp://127.0.0.1:1 --admin tcp://0.0.0.0:7451 2>&1)
rc=$?
check "pcifleetd refuses a non-loopback tcp admin endpoint" \
    bash -c '[ "$0" = 1 ] && grep -q "allowed only on loopback" <<<"$1"' "$rc" "$out"
"$PFD" --offline-after soon >/dev/null 2>&1
check "pcifleetd refuses a bad number (exit 1)" [ $? = 1 ]
printf 'db = %s\nlisten tcp://x\n' "$tmp/x.db" >"$tmp/bad.conf"
out=$("$PFD" --config "$tmp/bad.conf" 2>&1)
rc=$?
check "pcifleetd refuses a broken config file naming the line" \
    bash -c '[ "$0" = 1 ] && grep -q "bad.conf" <<<"$1"' "$rc" "$out"

# ================================================================ 2. keys
note "keys"
for node in "${NODES[@]}"; do
    pf keygen --dir "$AK" "$node" >/dev/null || bad "keygen $node"
done
check "keygen wrote NAME.key and NAME.key_secret (0600) for every agent" \
    bash -c 'for n in "${@:2}"; do [ -s "$0/$n.key" ] && [ "$(stat -c %a "$0/$n.key_secret")" = 600 ] || exit 1; done' \
    "$AK" "${NODES[@]}"
pf keygen --dir "$AK" "${NODES[0]}" >/dev/null 2>&1
check "keygen refuses to overwrite a pair" [ $? = 1 ]
pf keygen --dir "$AK" intruder >/dev/null

if [ "${PCIFLEET_E2E_VALGRIND:-0}" = 1 ] && command -v valgrind >/dev/null; then
    SLOW=4
    start_controller valgrind
else
    start_controller
fi
check "controller answers on its admin socket" [ $? = 0 ]
if ! kill -0 "$CTL_PID" 2>/dev/null; then
    echo "e2e_fleet: the controller did not start:"
    cat "$CLOG"
    exit 1
fi
check "controller made its key pair on first start" [ -s "$KEYS/controller.key" ]
check "controller logged its new key pair" grep -q "created the controller's key pair" "$CLOG"
check "admin socket directory is mode 0700" [ "$(stat -c %a "$tmp/run")" = 700 ]
check "admin socket is mode 0600" [ "$(stat -c %a "$tmp/run/admin.sock")" = 600 ]
check "no keys at first" [ "$(pf keys --json | jq '(.accepted|length) + (.pending|length)')" = 0 ]

out=$(inns "$CTL_NS" "$PFD" --db "$tmp/y.db" --keys "$KEYS" --listen tcp://127.0.0.1:$((PORT + 1)) \
    --admin "$ADMIN" 2>&1)
rc=$?
check "a second controller on the same admin socket is refused" \
    bash -c '[ "$0" = 2 ] && grep -q "already serves" <<<"$1"' "$rc" "$out"
check "the first controller still answers" pf status

# Node 0 is accepted the old way: its public key copied into agents/.
cp "$AK/${NODES[0]}.key" "$KEYS/agents/${NODES[0]}.key"
check "a key copied into agents/ is picked up" \
    wait_for 5 bash -c '"$0" --json keys | jq -e --arg n "$1" "any(.accepted[]; .node == \$n)"' "$PF" "${NODES[0]}"

# ================================================================ 3. agents join
note "agents join"
mark=$(lines "$CLOG")
for i in $(seq 0 $((N - 1))); do start_agent "$i"; done
# An agent on a fixture root without --simulate may edit that root's files
# (steps are allowed) but runs no commands: it keeps the edit level of
# agent/privs.h (capability numbers from capabilities(7)) and nothing else.
edit_mask=$(( (1 << 0) | (1 << 1) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 21) | (1 << 34) ))
had=$((16#$(sed -n 's/^CapBnd:[[:space:]]*//p' /proc/self/status)))
want_caps=$(printf '%016x' $((edit_mask & had)))
agent_privs_ok() {
    local st=/proc/${AG_PID[0]}/status
    grep -q "privileges: kept" "$tmp/agent-${NODES[0]}.log" &&
        [ "$(sed -n 's/^NoNewPrivs:[[:space:]]*//p' "$st")" = 1 ] &&
        [ "$(sed -n 's/^CapEff:[[:space:]]*//p' "$st")" = "$want_caps" ] &&
        [ "$(sed -n 's/^CapBnd:[[:space:]]*//p' "$st")" = "$want_caps" ]
}
check "a running agent has no_new_privs and only the capabilities its policy needs ($want_caps)" \
    wait_for 5 agent_privs_ok
pending_all() {
    local want=$((N - 1))
    [ "$(pf keys --json | jq '.pending | length')" = "$want" ]
}
check "the $((N - 1)) agents not yet accepted show up as pending" wait_for 20 pending_all
check "keys (table) lists them as pending with fingerprints" \
    bash -c '"$0" keys | grep -E "^$1 +pending +sha256:[0-9a-f]{16} "' "$PF" "${NODES[1]}"
fp_ok=1
for i in $(seq 1 $((N - 1))); do
    n=${NODES[$i]}
    want=$("$PF" --json fingerprint "$AK/$n.key" | jq -r .fingerprint)
    got=$(pf keys --json | jq -r --arg n "$n" '.pending[] | select(.node == $n) | .fingerprint')
    [ -n "$want" ] && [ "$want" = "$got" ] || fp_ok=0
done
check "pending fingerprints match the agents' key files" [ $fp_ok = 1 ]
check "controller logged the pending key with the command to run" \
    bash -c 'tail -n +$(($1 + 1)) "$0" | grep -q "key for $2 is pending: run \`pcifleet keys accept $2\`"' \
    "$CLOG" "$mark" "${NODES[1]}"
check "an agent not yet accepted is not in the fleet" \
    bash -c '[ -z "$("$0" --json nodes | jq -r --arg n "$1" ".[] | select(.name == \$n) | .name")" ]' "$PF" "${NODES[1]}"
acc_ok=1
for i in $(seq 1 $((N - 1))); do
    pf keys accept "${NODES[$i]}" >/dev/null || acc_ok=0
done
check "keys accept NODE for each pending agent" [ $acc_ok = 1 ]
check "keys accept of a node with nothing pending is refused (1)" \
    bash -c '"$0" keys accept no-such-node >/dev/null 2>&1; [ $? = 1 ]' "$PF"
check "keys accept with a bad name is a usage error (2)" \
    bash -c '"$0" keys accept "../etc" >/dev/null 2>&1; [ $? = 2 ]' "$PF"
check "all keys accepted, none pending" \
    bash -c '"$0" keys --json | jq -e --argjson n "$1" "(.accepted|length) == \$n and (.pending|length) == 0"' "$PF" "$N"
check "all $N agents report and are online" wait_for 20 all_online

# ================================================================ 4. queries
note "queries match what each agent scans locally"
pf --json nodes >"$tmp/nodes.json"
pf nodes >"$tmp/nodes.txt"
pf --json nics >"$tmp/nics.json"
pf nics >"$tmp/nics.txt"
pf vms --json >"$tmp/vms.json"
pf vms >"$tmp/vms.txt"
check "nodes --json has one row per node" [ "$(jq length "$tmp/nodes.json")" = "$N" ]
check "nodes table: a header and one line per node" [ "$(grep -c . "$tmp/nodes.txt")" = $((N + 1)) ]
check "nodes table header names the columns" grep -qiE "^NAME +ONLINE" "$tmp/nodes.txt"
for i in $(seq 0 $((N - 1))); do
    n=${NODES[$i]}
    e=$tmp/expect/${FXS[$i]}.json
    row=$(jq -c --arg n "$n" '.[] | select(.name == $n)' "$tmp/nodes.json")
    check "$n: verdict, loader and NIC/VM counts as scanned" \
        jq -e -n --argjson r "$row" --slurpfile e "$e" \
        '$r.verdict == $e[0].iommu.verdict and $r.loader == $e[0].boot.loader
         and $r.nics == ($e[0].nics|length) and $r.vms == ($e[0].vms|length)'
    check "$n: nodes table line" grep -qE "^$n +(yes|true|online) " "$tmp/nodes.txt"
    got=$(jq -c --arg n "$n" '[.[] | select(.node == $n) | .address] | sort' "$tmp/nics.json")
    want=$(jq -c '[.nics[].address] | sort' "$e")
    check "$n: nics --json lists the scanned NICs" [ "$got" = "$want" ]
    got=$(pf --json sql "SELECT count(*) AS n FROM v_devices WHERE node = '$n'" | jq '.[0].n')
    check "$n: sql count of devices = scanned devices" [ "$got" = "$(jq '.devices|length' "$e")" ]
    got=$(pf groups "$n" --json | jq length)
    check "$n: groups --json has every scanned group" [ "$got" = "$(jq '.groups|length' "$e")" ]
done
check "nics table: header and one line per NIC" \
    [ "$(grep -c . "$tmp/nics.txt")" = $(($(jq length "$tmp/nics.json") + 1)) ]
want_free=$(for f in "$tmp"/expect/*.json; do
    jq -r '.node as $n | (.groups | map(.endpoints[]? | {key: .address, value: .assignable_alone}) | from_entries) as $a
           | ([.vms[].hostpci[]?.addresses[]?]) as $used
           | .nics[] | select((.management|not) and ($a[.address] == true) and (.address as $x | $used | index($x) | not))
           | "\($n) \(.address)"' "$f"
done | sort)
got_free=$(pf nics --free --json | jq -r '.[] | "\(.node) \(.address)"' | sort)
check "nics --free: not management, in no VM, assignable alone" [ "$got_free" = "$want_free" ]
[ -n "$want_free" ] || note "(no fixture has a free NIC)"
model=$(jq -r '[.[] | select(.model != null) | .model][0] // empty' "$tmp/nics.json")
if [ -n "$model" ]; then
    check "nics --model $model lists only that model" \
        bash -c '"$0" --json nics --model "$1" | jq -e --arg m "$1" "length > 0 and all(.[]; .model == \$m)"' "$PF" "$model"
fi
check "nics --node limits to one node" \
    bash -c '"$0" nics --node "$1" --json | jq -e --arg n "$1" "all(.[]; .node == \$n)"' "$PF" "${NODES[0]}"
want_vms=$(cat "$tmp"/expect/*.json | jq -s '[.[].vms[]] | length')
check "vms --json lists every scanned VM ($want_vms)" [ "$(jq length "$tmp/vms.json")" = "$want_vms" ]
want_nm=$(cat "$tmp"/expect/*.json | jq -s '[.[].vms[] | select(.migratable|not)] | length')
check "vms --non-migratable: every one, each with reasons" \
    bash -c '"$0" vms --non-migratable --json | jq -e --argjson w "$1" "length == \$w and all(.[]; .migratable == false and (.reasons|length) > 0)"' \
    "$PF" "$want_nm"
check "show NODE answers for a node" bash -c '"$0" show "$1" | grep -q "$1"' "$PF" "${NODES[0]}"
check "show of an unknown node is refused (1)" bash -c '"$0" show no-such-node >/dev/null 2>&1; [ $? = 1 ]' "$PF"
out=$(pf sql "DELETE FROM nodes" 2>&1)
rc=$?
check "sql refuses a write with a sentence" bash -c '[ "$0" = 1 ] && [ -n "$1" ]' "$rc" "$out"
pf sql "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r" >/dev/null 2>&1
check "sql stops a runaway query (1)" [ $? = 1 ]
# an answer over WIRE_ADMIN_INLINE_MAX (256 KiB) comes in chunks after the reply
long_sql="WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r LIMIT 4000) SELECT i, printf('%.120c', 'x') AS pad FROM r"
pf --json sql "$long_sql" >"$tmp/long.json"
check "a long answer (chunked) arrives whole: 4000 rows, in order, over 256 KiB" \
    bash -c '[ "$(jq length "$0")" = 4000 ] && [ "$(jq ".[3999].i" "$0")" = 4000 ] && [ $(stat -c %s "$0") -gt 262144 ]' \
    "$tmp/long.json"
check "status counts the inventories" \
    bash -c '"$0" status --json | jq -e --argjson n "$1" ".inventories >= \$n"' "$PF" "$N"

# ================================================================ 5. hostile input
note "bad input is refused while the others keep reporting"
victim=${NODES[1]}
seen_before=$(node_field "${NODES[2]}" last_seen)
mark=$(lines "$CLOG")
sr() { # sender-namespace key WHAT...: one frame to the controller, prints the reply
    local ns=$1 key=$2 ep=$LOCAL_EP
    shift 2
    if [ $MODE = netns ]; then
        if [ -n "$ns" ]; then ep=${AG_EP[0]}; else ns=$CTL_NS; fi
    fi
    inns "$ns" "$SENDRAW" --controller "$ep" --controller-key "$KEYS/controller.key" --key "$key" \
        --timeout $((3000 * SLOW)) "$@"
}
AGNS0=${AG_NS[0]}
out=$(sr "$AGNS0" "$AK/intruder.key_secret" --garbage 100)
check "garbage from an unknown key: Error malformed" grep -q "^error malformed" <<<"$out"
out=$(sr "$AGNS0" "$AK/$victim.key_secret" --garbage 1000 --count 3)
check "garbage with an accepted key: Error malformed, three times" [ "$(grep -c "^error malformed" <<<"$out")" = 3 ]
out=$(sr "" "$AK/$victim.key_secret" --garbage $((MAX_FRAME + 1000)))
check "frame over --max-frame: Error too-large" grep -q "^error too-large" <<<"$out"
out=$(sr "" "$AK/$victim.key_secret" --garbage $((MAX_FRAME * 4)))
rc=$?
check "giant frame: dropped by ZeroMQ, no reply" [ $rc = 3 ]
out=$(sr "" "$AK/$victim.key_secret" --node "$victim" --bad-version 9)
check "wrong protocol version: Error bad-version" grep -q "^error bad-version" <<<"$out"
out=$(sr "" "$AK/$victim.key_secret" --node "$victim" --no-body)
check "envelope without a body: Error unknown-message" grep -q "^error unknown-message" <<<"$out"
out=$(sr "" "$AK/$victim.key_secret" --node "$victim" --resend)
check "a body agents do not send: Error unknown-message" grep -q "^error unknown-message" <<<"$out"
out=$(sr "" "$AK/$victim.key_secret" --node "$victim" --two-frames)
check "a message of several frames: Error malformed" grep -q "^error malformed" <<<"$out"
out=$(sr "" "$AK/$victim.key_secret" --node "${NODES[0]}" --hello)
check "an accepted key naming another node: Error wrong-node" grep -q "^error wrong-node" <<<"$out"
# Replays: pf_sendraw with the victim's own key. Its seq (the wall clock in
# microseconds) is above the victim agent's counter, so after it the agent's
# own next message is refused as replayed too and the agent must continue
# above the floor by itself: the checks below see it keep reporting.
vmark=$(lines "$tmp/agent-$victim.log")
s0=$(($(date +%s%N) / 1000))
out=$(sr "" "$AK/$victim.key_secret" --node "$victim" --hello --seq "$s0" --count 2)
check "one frame sent twice: the first is answered, the copy refused as replayed" \
    bash -c '[ "$(grep -c "^error replayed: seq $1 is not above [0-9]" <<<"$0")" = 1 ] &&
             ! head -n 1 <<<"$0" | grep -q "^error"' "$out" "$s0"
out=$(sr "" "$AK/$victim.key_secret" --node "$victim" --heartbeat --seq 1)
# The victim agent may already have continued above s0 (its own refused
# heartbeat can land between the two sendraw runs, slowly under valgrind),
# so the floor named is s0 or a little above it: its counter steps by one.
above_floor() {
    local n
    n=$(sed -n 's/^error replayed: seq 1 is not above \([0-9]*\).*/\1/p' <<<"$1" | head -n 1)
    [ -n "$n" ] && [ "$n" -ge "$2" ] && [ "$n" -le $(($2 + 1000)) ] || { echo "$1"; return 1; }
}
check "an old seq: Error replayed naming the last accepted" above_floor "$out" "$s0"
out=$(sr "$AGNS0" "$AK/intruder.key_secret" --node intruder --hello)
check "an unknown key: Error key-not-accepted naming the command" \
    grep -q '^error key-not-accepted: key for intruder is pending: run `pcifleet keys accept intruder`' <<<"$out"
check "the unknown key is pending" \
    bash -c '"$0" keys --json | jq -e "any(.pending[]; .node == \"intruder\")"' "$PF"
check "an unknown key is not in the fleet" \
    bash -c '[ -z "$("$0" --json nodes | jq -r ".[] | select(.name == \"intruder\") | .name")" ]' "$PF"
log=$(log_since "$mark" "$CLOG")
for what in malformed too-large bad-version unknown-message wrong-node replayed "key not accepted"; do
    check "controller logged the refusal: $what" grep -q "refused.*$what" <<<"$log"
done
check "controller still running after the hostile frames" kill -0 "$CTL_PID"
advanced() { [ "$(node_field "${NODES[2]}" last_seen)" != "$seen_before" ]; }
check "other agents keep reporting (last_seen advances)" wait_for 5 advanced
check "every agent still online" all_online
victim_resynced() {
    tail -n +$((vmark + 1)) "$tmp/agent-$victim.log" | grep -q "refused message .* as replayed.*continuing above seq"
}
check "$victim's agent, behind the replay floor, continued above it" wait_for 10 victim_resynced
vseen=$(node_field "$victim" last_seen)
victim_reports() { [ "$(node_field "$victim" last_seen)" != "$vseen" ]; }
check "$victim keeps reporting after that (last_seen advances)" wait_for 5 victim_reports
check "nothing stored was lost: $victim keeps its devices" \
    bash -c '[ "$("$0" --json sql "SELECT count(*) AS n FROM v_devices WHERE node = '"'$victim'"'" | jq ".[0].n")" = "$1" ]' \
    "$PF" "$(jq '.devices|length' "$tmp/expect/$victim.json")"

# ================================================================ 6. an agent goes away
note "a killed agent goes offline"
k=$((N - 1))
gone=${NODES[$k]}
mark=$(lines "$CLOG")
t0=$SECONDS
kill -KILL "${AG_PID[$k]}"
wait "${AG_PID[$k]}" 2>/dev/null
check "$gone goes offline within offline-after ($((OFFLINE_AFTER * SLOW)) s) + $((4 * SLOW)) s" wait_for $((OFFLINE_AFTER + 4)) is_offline "$gone"
note "$gone went offline after $((SECONDS - t0)) s"
check "controller logged it" bash -c 'tail -n +$(($1 + 1)) "$0" | grep -q "node $2 went offline"' "$CLOG" "$mark" "$gone"
check "the others stay online" [ "$(online_count)" = $((N - 1)) ]
check "nodes table shows it offline" bash -c '"$0" nodes | grep -qE "^$1 +(no|false|offline) "' "$PF" "$gone"
check "events --node shows the offline event" \
    bash -c '"$0" events --node "$1" --json | jq -e "any(.[]; .kind | test(\"offline\"))"' "$PF" "$gone"
check "events (table) shows it too" bash -c '"$0" events | grep "$1" | grep -qi offline' "$PF" "$gone"
start_agent $k
check "$gone comes back online when its agent restarts" wait_for 10 is_online "$gone"

# ================================================================ 6b. a node's link is cut
# (netns only: the veth between the controller and node 0 goes down for
# longer than offline-after, then comes back; the agent process never stops)
if [ $MODE = netns ]; then
    note "an agent cut off by its link going down, then back"
    cut=${NODES[0]}
    pf --json sql "SELECT address, driver FROM v_devices WHERE node = '$cut' ORDER BY address" >"$tmp/cut-before.json"
    t0=$SECONDS
    ip -n "$CTL_NS" link set "pf-e2e-0" down
    check "$cut goes offline while its link is down" wait_for $((OFFLINE_AFTER + 4)) is_offline "$cut"
    note "$cut went offline after $((SECONDS - t0)) s with its link down"
    check "the others stay online while $cut is cut off" [ "$(online_count)" = $((N - 1)) ]
    check "$cut's agent is still running" kill -0 "${AG_PID[0]}"
    t0=$SECONDS
    ip -n "$CTL_NS" link set "pf-e2e-0" up
    check "$cut comes back online when the link is up again" wait_for 30 is_online "$cut"
    note "$cut was back $((SECONDS - t0)) s after the link came up"
    pf --json sql "SELECT address, driver FROM v_devices WHERE node = '$cut' ORDER BY address" >"$tmp/cut-after.json"
    check "nothing of $cut's inventory was lost" cmp -s "$tmp/cut-before.json" "$tmp/cut-after.json"
else
    note "skipped: cutting a node's link needs network namespaces (mode $MODE)"
fi

# ================================================================ 7. controller restarts
snapshot() { # everything an agent reported, in a stable order
    pf --json sql "SELECT node, address, class, model, driver, iommu_group FROM v_devices ORDER BY node, address"
    pf --json sql "SELECT node, address, ifname, mac, management, free FROM v_nics ORDER BY node, address"
    pf --json sql "SELECT node, source, vm_id, name, migratable, devices FROM v_vms ORDER BY node, source, vm_id"
    pf --json sql "SELECT node, group_id, isolated, devices FROM v_groups ORDER BY node, group_id"
    pf --json sql "SELECT name, verdict, loader, nic_count, vm_count, device_count FROM v_nodes ORDER BY name"
}
reported_since() { # every node's last_seen >= $1
    nodes_json | jq -e --argjson t "$1" --argjson n "$N" '[.[] | select(.last_seen >= $t)] | length == $n'
}
for sig in TERM KILL; do
    note "controller restart after SIG$sig"
    snapshot >"$tmp/before-$sig.json"
    check "snapshot before SIG$sig has data" [ "$(jq -s 'map(length) | add' "$tmp/before-$sig.json")" -gt 0 ]
    mark=$(lines "$CLOG")
    kill -"$sig" "$CTL_PID"
    if wait_exit "$CTL_PID" 20; then
        if [ "$sig" = TERM ]; then
            check "SIGTERM: controller exits 0" [ "$WAIT_RC" = 0 ]
            check "SIGTERM: controller logged a clean stop" \
                bash -c 'tail -n +$(($1 + 1)) "$0" | grep -q "INFO pcifleetd: stopped"' "$CLOG" "$mark"
            check "SIGTERM: admin socket file removed" [ ! -e "$tmp/run/admin.sock" ]
            if [ $SLOW -gt 1 ]; then
                check "valgrind: no errors, no definite leaks" \
                    bash -c 'grep -h "ERROR SUMMARY" "$0"/valgrind.*.log | grep -q "ERROR SUMMARY: 0 errors"' "$tmp"
                # and it saw the controller's allocations (the allocator was
                # replaced): tens of thousands of them in this run
                check "valgrind: it tracked the controller's heap (over 10,000 allocations)" \
                    bash -c 'n=$(sed -n "s/.*total heap usage: \([0-9,]*\) allocs.*/\1/p" "$0"/valgrind.*.log | tr -d , | sort -n | tail -1); echo "allocs: $n"; [ "${n:-0}" -gt 10000 ]' "$tmp"
                cp "$tmp"/valgrind.*.log "${TMPDIR:-/tmp}/" 2>/dev/null
                SLOW=1
            fi
        fi
    else
        bad "controller did not exit on SIG$sig"
        kill -KILL "$CTL_PID" 2>/dev/null
    fi
    check "agents hold on while the controller is away" bash -c 'for p in "$@"; do kill -0 "$p" || exit 1; done' _ "${AG_PID[@]}"
    t_restart=$(date +%s)
    start_controller
    check "controller restarts after SIG$sig" [ $? = 0 ]
    snapshot >"$tmp/after-$sig.json"
    check "nothing lost across SIG$sig: devices, NICs, VMs, groups, nodes identical" \
        cmp -s "$tmp/before-$sig.json" "$tmp/after-$sig.json"
    check "every agent reports to the restarted controller (last_seen after the restart)" \
        wait_for 20 reported_since "$t_restart"
    check "all agents online after SIG$sig" all_online
    if command -v sqlite3 >/dev/null; then
        check "database integrity after SIG$sig" \
            bash -c '[ "$(sqlite3 -readonly "file:$0?mode=ro" "PRAGMA integrity_check")" = ok ]' "$tmp/fleet.db"
    fi
done

# ================================================================ done
check "controller log has no internal errors" bash -c '! grep -E "^ERROR " "$0"' "$CLOG"
echo "$pass passed, $fail failed"
[ $fail = 0 ]
