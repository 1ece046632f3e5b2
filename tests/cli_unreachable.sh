#!/usr/bin/env bash
# cli_unreachable.sh — what pcifleet says when its ipc:// admin socket cannot
# be used, and that a command which does reach the controller opens one
# connection to it, not a probe first.
#
# Asserted, each with exit status 3 and its sentence on stderr:
#   - no socket file: "... does not exist (is pcifleetd running? ...)";
#   - the socket file of a controller killed with SIGKILL (left behind,
#     nobody listening): "nothing is listening on ...", well before --timeout;
#   - a user other than root (setpriv, when there): "permission denied (it is
#     root-only)".
# And with a live controller: `pcifleet status` answers, and (strace, when
# there) makes exactly one connect(2) to the admin socket.
# Environment: PCIFLEETD, PCIFLEET (ctest sets them); PCIFLEET_E2E_KEEP=1
# keeps the temp folder.
set -uo pipefail
export LC_ALL=C
# shellcheck source=lib/e2e.sh
. "$(dirname "$0")/lib/e2e.sh"

PFD=${PCIFLEETD:?run through ctest (PCIFLEETD)}
PF=${PCIFLEET:?run through ctest (PCIFLEET)}
e2e_init unreachable
KEYS=$tmp/keys
SOCK=$tmp/admin.sock
export PCIFLEET_ADMIN=ipc://$SOCK

out=$("$PF" nodes 2>&1)
rc=$?
check "no socket file: exit 3, 'does not exist'" \
    bash -c '[ "$0" = 3 ] && grep -q "no controller at ipc://.*admin.sock does not exist (is pcifleetd running" <<<"$1"' \
    "$rc" "$out"

e2e_free_port
e2e_controller || exit 1
check "a live controller answers status" "$PF" --timeout 20 status
if command -v strace >/dev/null; then
    strace -f -qq -e trace=connect -o "$tmp/connect.trace" "$PF" --timeout 20 status >/dev/null 2>&1
    check "one command, one connect(2) to the admin socket" \
        bash -c '[ "$(grep -c "sun_path=\"$1\"" "$0")" = 1 ] || { cat "$0"; exit 1; }' "$tmp/connect.trace" "$SOCK"
else
    echo "# no strace here: the connection count is not checked"
fi

if command -v setpriv >/dev/null; then
    out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups "$PF" nodes 2>&1)
    rc=$?
    check "not root: exit 3, 'permission denied (it is root-only)'" \
        bash -c '[ "$0" = 3 ] && grep -q "permission denied (it is root-only)" <<<"$1"' "$rc" "$out"
else
    echo "# no setpriv here: the permission case is not checked"
fi

kill -KILL "$CTL"
wait "$CTL" 2>/dev/null
CTL=
check "SIGKILL leaves the socket file behind" test -S "$SOCK"
start=$SECONDS
out=$("$PF" --timeout 30 nodes 2>&1)
rc=$?
took=$((SECONDS - start))
check "nobody listening: exit 3, 'nothing is listening', in ${took}s (not the 30 s timeout)" \
    bash -c '[ "$0" = 3 ] && [ "$2" -lt 10 ] && grep -q "nothing is listening on .*admin.sock" <<<"$1"' \
    "$rc" "$out" "$took"

e2e_finish
