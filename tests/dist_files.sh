#!/usr/bin/env bash
# What ships for operators (dist/ and man/) matches the programs:
#  - every man page renders with groff without a warning, and names every long
#    option its program's --help prints (so the pages cannot fall behind);
#  - the systemd units pass `systemd-analyze verify` (skipped, and said so,
#    where systemd-analyze is missing);
#  - each example config, with every commented key switched on and its paths
#    moved into a temp folder, is accepted and works: pcifleetd starts with
#    dist/etc/pcifleetd.conf, an agent configured by dist/etc/agent.conf
#    reports to it, and `pcifleet --config dist/etc/pcifleet.conf` answers;
#  - a key the programs do not know in any of them is refused, naming file and line.
# Environment as e2e_fleet.sh (ctest sets it). Every wait has a deadline.
# shellcheck source=lib/e2e.sh
. "$(dirname "$0")/lib/e2e.sh"

AGENT=${PCIFLEET_AGENT:?run through ctest (PCIFLEET_AGENT)}
PFD=${PCIFLEETD:?run through ctest (PCIFLEETD)}
PF=${PCIFLEET:?run through ctest (PCIFLEET)}
SRC=${PCIFLEET_SOURCE:?run through ctest (PCIFLEET_SOURCE)}
FIX=${PCIFLEET_FIXTURES:?run through ctest (PCIFLEET_FIXTURES)}
command -v jq >/dev/null || { echo "dist_files: jq is required"; exit 1; }
e2e_init dist

# ---- man pages
# the options --help defines: those starting a help line or in a usage's [brackets]
opts_of() { "$@" --help 2>&1 | grep -oE -- '(^[[:space:]]+(-[a-zA-Z], )?|\[)--[a-z][a-z-]+' | grep -oE -- '--[a-z-]+' | sort -u; }
page_has_all() { # PAGE OPTION...
    local page=$1 o missing=()
    shift
    for o in "$@"; do grep -qF -- "${o//-/\\-}" "$page" || missing+=("$o"); done
    [ ${#missing[@]} -eq 0 ] || { echo "not in $page: ${missing[*]}"; return 1; }
}
for m in "$SRC"/man/*.[18]; do
    check "$(basename "$m") renders without warnings" \
        bash -c 'out=$(LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$0" 2>&1); [ -z "$out" ] || { echo "$out"; exit 1; }' "$m"
done
mapfile -t o_pfd < <(opts_of "$PFD")
check "pcifleetd.8 names every pcifleetd option (${#o_pfd[@]})" page_has_all "$SRC/man/pcifleetd.8" "${o_pfd[@]}"
mapfile -t o_agent < <(for c in scan run plan apply; do opts_of "$AGENT" "$c"; done | sort -u)
check "pcifleet-agent.8 names every option of scan/run/plan/apply (${#o_agent[@]})" \
    page_has_all "$SRC/man/pcifleet-agent.8" "${o_agent[@]}"
mapfile -t o_pf < <(opts_of "$PF")
check "pcifleet.1 names every pcifleet option (${#o_pf[@]})" page_has_all "$SRC/man/pcifleet.1" "${o_pf[@]}"
check "the check itself fails on a missing option" bash -c "$(declare -f page_has_all); ! page_has_all '$SRC/man/pcifleet.1' --no-such-option"

# ---- systemd units
if command -v systemd-analyze >/dev/null; then
    mkdir -p "$tmp/units" "$tmp/man/man1" "$tmp/man/man8"
    cp "$SRC"/man/*.1 "$tmp/man/man1/"
    cp "$SRC"/man/*.8 "$tmp/man/man8/"
    for u in "$SRC"/dist/systemd/*.service; do
        sed "s|@PCIFLEET_BINDIR@|$(dirname "$PFD")|" "$u" >"$tmp/units/$(basename "$u")"
    done
    check "systemd-analyze verify accepts both units" \
        env MANPATH="$tmp/man" systemd-analyze verify "$tmp"/units/*.service
else
    echo "# skipped: systemd-analyze is not installed, the units were not verified"
fi

# ---- install: programs, pages, units (with the installed path) and examples
BUILD=${PCIFLEET_BUILD:?run through ctest (PCIFLEET_BUILD)}
if cmake --install "$BUILD" --prefix "$tmp/inst" >"$tmp/install.log" 2>&1; then
    (cd "$tmp/inst" && find . -type f | sort) >"$tmp/installed"
    check "cmake --install puts every shipped file in place" bash -c 'for f in bin/pcifleetd bin/pcifleet-agent \
        bin/pcifleet share/man/man1/pcifleet.1 share/man/man8/pcifleetd.8 share/man/man8/pcifleet-agent.8 \
        lib/systemd/system/pcifleetd.service lib/systemd/system/pcifleet-agent.service \
        share/doc/pcifleet/examples/pcifleetd.conf share/doc/pcifleet/examples/agent.conf \
        share/doc/pcifleet/examples/pcifleet.conf; do grep -qx "./$f" "$0" || { echo "missing $f"; exit 1; }; done' \
        "$tmp/installed"
    # (the path is the configured prefix's: the units are made at configure time)
    check "the installed unit starts pcifleetd from the install prefix with its config" \
        grep -qxE "ExecStart=/.*/bin/pcifleetd --config /etc/pcifleet/pcifleetd.conf" \
        "$tmp/inst/lib/systemd/system/pcifleetd.service"
else
    bad "cmake --install into $tmp/inst"; sed 's/^/#   /' "$tmp/install.log" | tail
fi

# ---- example configs: every key on, paths moved under $tmp
e2e_free_port
mkdir -p "$tmp/etc/pcifleet" "$tmp/var/lib/pcifleet" "$tmp/run"
relocate() { # FILE: uncomment "# key = value" lines; /etc, /var, /run and the port go to $tmp
    sed -E -e 's/^# ([a-z][a-z-]* = )/\1/' \
        -e "s|/etc/pcifleet|$tmp/etc/pcifleet|g; s|/var/lib/pcifleet|$tmp/var/lib/pcifleet|g" \
        -e "s|/run/pcifleet|$tmp/run|g; s|tcp://\\*:7450|tcp://127.0.0.1:$PORT|" \
        -e "s|tcp://controller.example:7450|tcp://127.0.0.1:$PORT|" "$1"
}
PORT1=$PORT
while [ "$PORT" = "$PORT1" ]; do e2e_free_port; done
MPORT=$PORT
PORT=$PORT1
relocate "$SRC/dist/etc/pcifleetd.conf" | sed "s|127.0.0.1:9469|127.0.0.1:$MPORT|" >"$tmp/pcifleetd.conf"
relocate "$SRC/dist/etc/pcifleet.conf" >"$tmp/pcifleet.conf"
check "pcifleetd.conf names every pcifleetd option as a key" bash -c 'for o in "${@:2}"; do
        case $o in --config|--help|--version) continue ;; esac
        grep -qE "^${o#--} = " "$0" || { echo "no key ${o#--}"; exit 1; }; done' "$tmp/pcifleetd.conf" "${o_pfd[@]}"

"$PFD" --config "$tmp/pcifleetd.conf" >"$tmp/controller.log" 2>&1 &
CTL=$!
pf() { "$PF" --config "$tmp/pcifleet.conf" "$@"; }
check "pcifleetd starts with dist/etc/pcifleetd.conf; pcifleet reaches it with dist/etc/pcifleet.conf" \
    wait_for 20 pf status
check "the config's metrics endpoint answers" bash -c 'curl -sf "http://127.0.0.1:$0/metrics" | grep -q "^pcifleet_build_info"' "$MPORT"
cp -a "$FIX/pve-intel-sdboot-i225" "$tmp/node"
"$PF" keygen --dir "$tmp/etc/pcifleet" pve1 >/dev/null
cp "$tmp/etc/pcifleet/keys/controller.key" "$tmp/etc/pcifleet/controller.key"
cp "$tmp/etc/pcifleet/pve1.key" "$tmp/etc/pcifleet/keys/agents/pve1.key"
kill -HUP "$CTL"
relocate "$SRC/dist/etc/agent.conf" | sed "s|NODE.key_secret|pve1.key_secret|; s|^interval = 5|interval = 0.5|" \
    >"$tmp/agent.conf"
check "agent.conf switched on sets every key (11)" [ "$(grep -cE '^[a-z-]+ = ' "$tmp/agent.conf")" = 11 ]
# the fixture copy is this agent's root (a command-line override; with the config's policy)
"$AGENT" run --config "$tmp/agent.conf" --root "$tmp/node" >"$tmp/agent.log" 2>&1 &
PIDS+=($!)
online() { [ "$(pf --json nodes | jq -r '.[] | select(.name == "pve1") | .online')" = true ]; }
check "an agent configured by dist/etc/agent.conf reports to it" wait_for 30 online
check "the agent logs as configured (info, words on a file)" grep -q '^INFO pcifleet-agent: ' "$tmp/agent.log"

# ---- an unknown key is refused, with file and line
for f in pcifleetd agent pcifleet; do cp "$tmp/$f.conf" "$tmp/$f-bad.conf"; echo "no-such-key = 1" >>"$tmp/$f-bad.conf"; done
line=$(wc -l <"$tmp/pcifleetd-bad.conf")
out=$("$PFD" --config "$tmp/pcifleetd-bad.conf" 2>&1); rc=$?
check "pcifleetd refuses an unknown key (exit 1, file:line named)" \
    bash -c '[ "$0" = 1 ] && grep -q "pcifleetd-bad.conf.*$1" <<<"$2" && grep -q "no-such-key" <<<"$2"' "$rc" "$line" "$out"
out=$("$AGENT" run --config "$tmp/agent-bad.conf" 2>&1); rc=$?
check "pcifleet-agent refuses an unknown key (exit 1)" \
    bash -c '[ "$0" = 1 ] && grep -q "agent-bad.conf" <<<"$1" && grep -q "no-such-key" <<<"$1"' "$rc" "$out"
out=$("$PF" --config "$tmp/pcifleet-bad.conf" status 2>&1); rc=$?
check "pcifleet refuses an unknown key (exit 2)" \
    bash -c '[ "$0" = 2 ] && grep -q "pcifleet-bad.conf" <<<"$1" && grep -q "no-such-key" <<<"$1"' "$rc" "$out"
e2e_finish
