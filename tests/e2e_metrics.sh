#!/usr/bin/env bash
# e2e_metrics.sh — the controller's Prometheus endpoint through real
# processes: a controller with --metrics on a free loopback port and three
# agents on loopback (two copies of pve-intel-sdboot-i225, one
# intel-grub-vtd-off). What it checks: node counts by verdict match
# `pcifleet --json nodes`; the free NIC count matches `nics --free --json`;
# the ingest heartbeat counter grows while agents report; a bad request gets
# 400, an unknown path 404, POST 405; an idle connection that sends nothing
# does not stop agent ingest (the counter grows while it is open); a
# non-loopback --metrics is refused. Every wait has a deadline.
set -uo pipefail
export LC_ALL=C
# shellcheck source=lib/e2e.sh
. "$(dirname "$0")/lib/e2e.sh"

AGENT=${PCIFLEET_AGENT:?run through ctest (PCIFLEET_AGENT)}
PFD=${PCIFLEETD:?run through ctest (PCIFLEETD)}
PF=${PCIFLEET:?run through ctest (PCIFLEET)}
FIX=${PCIFLEET_FIXTURES:?run through ctest (PCIFLEET_FIXTURES)}
for t in jq curl; do command -v $t >/dev/null || { echo "e2e_metrics: $t is required"; exit 1; }; done
e2e_init metrics

declare -A SRC=([m1]=pve-intel-sdboot-i225 [m2]=pve-intel-sdboot-i225 [m3]=intel-grub-vtd-off)
for n in m1 m2 m3; do cp -a "$FIX/${SRC[$n]}" "$tmp/$n"; done

e2e_free_port
APORT=$PORT
e2e_free_port
MPORT=$PORT
KEYS=$tmp/keys
AK=$tmp/agent-keys
export PCIFLEET_ADMIN=ipc://$tmp/admin.sock
pf() { "$PF" --timeout 20 "$@"; }
URL=http://127.0.0.1:$MPORT

check "a non-loopback --metrics is refused (exit 1, names loopback)" \
    bash -c '"$0" --metrics 192.0.2.1:9469 --db "$1/x.db" 2>&1; [ $? = 1 ]' "$PFD" "$tmp"
"$PFD" --db "$tmp/fleet.db" --listen "tcp://127.0.0.1:$APORT" --admin "$PCIFLEET_ADMIN" --keys "$KEYS" \
    --metrics "127.0.0.1:$MPORT" >"$tmp/controller.log" 2>&1 &
PIDS+=($!)
wait_for 15 pf status || { echo "e2e_metrics: the controller did not start"; cat "$tmp/controller.log"; exit 1; }
for n in m1 m2 m3; do
    pf keygen --dir "$AK" "$n" >/dev/null
    cp "$AK/$n.key" "$KEYS/agents/$n.key"
done
kill -HUP "${PIDS[0]}"
for n in m1 m2 m3; do
    "$AGENT" run --controller "tcp://127.0.0.1:$APORT" --controller-key "$KEYS/controller.key" \
        --key "$AK/$n.key_secret" --node "$n" --root "$tmp/$n" --interval 0.5 >"$tmp/agent-$n.log" 2>&1 &
    PIDS+=($!)
done
online() { [ "$(pf --json nodes | jq '[.[] | select(.online and .verdict != null)] | length')" = 3 ]; }
wait_for 30 online || { echo "e2e_metrics: the agents did not come online"; pf nodes; exit 1; }
sleep 1.5 # past the store's group-commit interval, so the read connection sees the inventories

scrape() { curl -sf --max-time 10 "$URL/metrics"; }
metric() { scrape | awk -v k="$1" '$1 == k { print $2 }'; }
check "GET /metrics is 200 with the 0.0.4 content type" \
    bash -c 'curl -sf -D - -o /dev/null --max-time 10 "$0/metrics" | grep -qi "^content-type: text/plain; version=0.0.4"' "$URL"
scrape >"$tmp/m1.txt"
for v in $(pf --json nodes | jq -r '.[].verdict' | sort -u); do
    want=$(pf --json nodes | jq --arg v "$v" '[.[] | select(.verdict == $v)] | length')
    got=$(awk -v k="pcifleet_nodes{verdict=\"$v\"}" '$1 == k { print $2 }' "$tmp/m1.txt")
    check "pcifleet_nodes{verdict=\"$v\"} = $want as in nodes --json (got $got)" [ "$got" = "$want" ]
done
check "pcifleet_nodes_online = 3" [ "$(awk '$1 == "pcifleet_nodes_online" { print $2 }' "$tmp/m1.txt")" = 3 ]
free=$(pf --json nics --free | jq length)
got=$(awk '$1 == "pcifleet_nics{state=\"free\"}" { print $2 }' "$tmp/m1.txt")
check "pcifleet_nics{state=\"free\"} = $free as in nics --free --json (got $got)" [ "$got" = "$free" ]
check "every family has HELP and TYPE" \
    bash -c '[ "$(grep -c "^# HELP " "$0")" = "$(grep -c "^# TYPE " "$0")" ] && grep -q "^# TYPE pcifleet_ingest_heartbeats_total counter" "$0"' "$tmp/m1.txt"

hb1=$(metric pcifleet_ingest_heartbeats_total)
grows() { [ "$(metric pcifleet_ingest_heartbeats_total)" -gt "$1" ]; }
check "the heartbeat counter grows ($hb1 -> more)" wait_for 10 grows "$hb1"

code() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@"; }
check "unknown path is 404" [ "$(code "$URL/nope")" = 404 ]
check "POST is 405" [ "$(code -X POST "$URL/metrics")" = 405 ]
check "GET / is 200" [ "$(code "$URL/")" = 200 ]
bad400=$( (exec 3<>"/dev/tcp/127.0.0.1/$MPORT"; printf 'garbage\r\n\r\n' >&3; timeout 5 head -1 <&3) 2>/dev/null)
check "garbage is 400 ($bad400)" grep -q "^HTTP/1.1 400" <<<"$bad400"

# an idle connection: opened, nothing sent; agents keep being ingested meanwhile
exec 4<>"/dev/tcp/127.0.0.1/$MPORT"
hb2=$(pf status >/dev/null; metric pcifleet_ingest_heartbeats_total)
inv_seen() { [ "$(pf --json nodes | jq '[.[] | select(.online)] | length')" = 3 ]; }
check "with an idle connection open, scrapes still answer and heartbeats grow" wait_for 10 grows "$hb2"
check "with an idle connection open, the admin socket answers" inv_seen
exec 4>&-

e2e_finish
