#!/usr/bin/env bash
# mkseed_sysfs.sh — writes the seeds of fuzz_sysfs from the fixture hosts.
#
# Usage: fuzz/mkseed_sysfs.sh [OUTDIR]   (default fuzz/corpus/fuzz_sysfs)
#
# Each fixture in tests/fixtures/ becomes one seed: its sys/, proc/ and etc/
# entries in the record form fuzz/fuzz_sysfs.c reads (op, path NUL, u16le
# length, content). A fixture is far bigger than a useful fuzz input, so each
# seed takes, in this order, until it holds MAX_RECORDS records or
# MAX_BYTES bytes: the IOMMU classes and groups, class/net (only the
# attributes net.c reads, and the lower_ links), firmware tables,
# the vfio modules' sys/module folders, the proc and etc files the probes
# read, and then PCI functions whole (network functions first). Folders are
# written only when empty (the harness makes parents), contents are cut to
# 4096 bytes, and a config file loses its trailing zero bytes (libpci reads
# what is missing as 0xff, which is what a short config reads as on a live
# host too). Two more seeds keep one PCI function each, the smallest inputs
# that still reach every probe. Output is deterministic: same fixtures, same
# bytes.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
FIX=$REPO/tests/fixtures
OUT=${1:-$HERE/corpus/fuzz_sysfs}
MAX_RECORDS=256 # the harness's SYSFS_MAX_RECORDS
MAX_BYTES=36000
MAX_CONTENT=4096

die() { echo "mkseed_sysfs: $*" >&2; exit 1; }

# byte N: writes one byte of value N.
byte() { printf "\\$(printf %03o "$1")"; }

# The entries of one fixture as "TYPE PATH" lines (TYPE f, d or l), in the
# order a seed takes them.
entries() {
    local root=$1 p
    local -a firsts=(sys/class/iommu sys/kernel/iommu_groups sys/class/net sys/firmware)
    # The per-function links (class/iommu/*/devices/ADDR, the group's
    # devices/ADDR) go with their function below, so a seed cut short still
    # holds whole functions.
    for p in "${firsts[@]}"; do
        [ -e "$root/$p" ] && (cd "$root" && find "$p" \( -type f -o -type l -o -type d -empty -o -type d -name devices \) -printf '%y %p\n' |
            grep -Ev '^. sys/(class/iommu|kernel/iommu_groups)/[^/]+/devices/' |
            grep -Ev '^. sys/class/net/[^/]+/(addr_len|tx_queue_len|ifindex|iflink|mtu|broadcast|carrier|duplex|type|bridge/|brport/|upper_|master|bonding_slave)' |
            grep -Ev '^. sys/kernel/iommu_groups/[^/]+/reserved_regions' | sort -k2)
    done
    (cd "$root" && find sys/module -maxdepth 1 -name 'vfio*' -printf '%y %p\n' 2>/dev/null | sort -k2) || true
    for p in proc/cmdline proc/sys/kernel/osrelease proc/sys/kernel/hostname proc/sys/kernel/random/boot_id \
             proc/cpuinfo proc/interrupts proc/modules proc/net/route proc/net/ipv6_route \
             etc/hostname etc/default/grub etc/default/grub.d etc/kernel etc/modules etc/modules-load.d \
             etc/pve/mapping etc/pve/qemu-server etc/pve/corosync.conf etc/libvirt/qemu; do
        [ -e "$root/$p" ] && (cd "$root" && find "$p" \( -type f -o -type l -o -type d -empty \) -printf '%y %p\n' | sort -k2)
    done
    local dev cls
    local -a net=() rest=()
    for dev in "$root"/sys/bus/pci/devices/*; do
        [ -e "$dev" ] || continue
        cls=$(cat "$dev/class" 2>/dev/null || true)
        case $cls in 0x02*) net+=("${dev#"$root"/}") ;; *) rest+=("${dev#"$root"/}") ;; esac
    done
    for p in "${net[@]}" "${rest[@]}"; do
        (cd "$root" && find "$p" \( -type f -o -type l -o -type d -empty \) -printf '%y %p\n' | sort -k2
         find sys/class/iommu sys/kernel/iommu_groups -path "*/devices/${p##*/}" -printf '%y %p\n' 2>/dev/null | sort -k2) || true
    done
}

# record ROOT TYPE PATH: writes one record to stdout.
record() {
    local root=$1 type=$2 path=$3 top kind rel n content
    case $path in
        sys/*) top=0 ;; proc/*) top=1 ;; etc/*) top=2 ;; *) die "no top folder for $path" ;;
    esac
    rel=${path#*/}
    case $type in f) kind=0 ;; d) kind=1 ;; l) kind=2 ;; *) die "$path: type $type" ;; esac
    byte $((kind + 3 * top))
    printf '%s\0' "$rel"
    case $type in
        f)
            if [ "${path##*/}" = config ]; then
                # Without its trailing zeros, rounded up to 64 bytes.
                n=$(head -c "$MAX_CONTENT" "$root/$path" | od -An -v -tu1 | tr -s ' ' '\n' |
                    awk 'NF { i++; if ($1 != 0) last = i } END { print int((last + 63) / 64) * 64 }')
            else
                n=$(head -c "$MAX_CONTENT" "$root/$path" | wc -c)
            fi
            byte $((n & 255)); byte $((n >> 8))
            head -c "$n" "$root/$path"
            ;;
        d) byte 0; byte 0 ;;
        l)
            content=$(readlink "$root/$path")
            n=${#content}
            byte $((n & 255)); byte $((n >> 8))
            printf '%s' "$content"
            ;;
    esac
}

# seed ROOT OUTFILE [FILTER]: writes one seed from the entries that match
# the extended regex FILTER (all when empty), within the budgets.
seed() {
    local root=$1 out=$2 filter=${3:-} type path count=0 tmp
    tmp=$(mktemp)
    while read -r type path; do
        [ -z "$filter" ] || [[ $path =~ $filter ]] || continue
        [ "$count" -lt "$MAX_RECORDS" ] || break
        local before
        before=$(stat -c %s "$tmp")
        record "$root" "$type" "$path" >>"$tmp"
        if [ "$(stat -c %s "$tmp")" -gt "$MAX_BYTES" ]; then
            truncate -s "$before" "$tmp"
            break
        fi
        count=$((count + 1))
    done < <(entries "$root")
    mv "$tmp" "$out"
    chmod 644 "$out"
    echo "mkseed_sysfs: $(basename "$out"): $count records, $(stat -c %s "$out") bytes"
}

mkdir -p "$OUT"
for f in "$FIX"/*/; do
    name=$(basename "$f")
    [ -d "$f/sys" ] || continue
    seed "$f" "$OUT/$name"
done
# One function each, with what makes it interesting around it: an SR-IOV VF
# (physfn link) and a NIC with its class/net entry.
one='^(sys/class/iommu/[^/]+/([^d]|devices/0000:03:10\.0)|sys/kernel/iommu_groups/16/|proc/sys/kernel/osrelease|etc/hostname|sys/bus/pci/devices/0000:03:10\.0/)'
[ -d "$FIX/sriov-82599" ] && seed "$FIX/sriov-82599" "$OUT/one-vf" "$one"
one='^(sys/class/net/enp1s0/|sys/kernel/iommu_groups/[0-9]+/devices/0000:01:00\.0|proc/cmdline|etc/hostname|sys/bus/pci/devices/0000:01:00\.0/)'
[ -d "$FIX/pve-intel-sdboot-i225" ] && seed "$FIX/pve-intel-sdboot-i225" "$OUT/one-nic" "$one"
