#!/usr/bin/env bash
# cli_start.sh — what the CLI loads at start.
#
# With PCIFLEET_STATIC_CLI (the default, off under the sanitizers) pcifleet
# links the czmq, libzmq, libsodium and protobuf-c archives, and GSSAPI,
# libsystemd and libuuid, which those archives reference but the CLI never
# calls, are opened only on a first call (controller/cli_lazy.c). Asserted:
#   - pcifleet's NEEDED entries name none of libzmq, libczmq, libsodium,
#     libprotobuf-c, libgssapi_krb5, libsystemd or libuuid;
#   - --help and keygen load none of GSSAPI, libsystemd, libuuid, at start
#     or later (the dynamic loader's own list, LD_DEBUG=files);
#   - the commands that use the archives still work: keygen writes a pair,
#     fingerprint reads it.
# A build without the static CLI (sanitizers, or an archive missing) skips (77).
set -uo pipefail
export LC_ALL=C
# shellcheck source=lib/e2e.sh
. "$(dirname "$0")/lib/e2e.sh"
PF=${PCIFLEET:?run through ctest (PCIFLEET)}
command -v readelf >/dev/null || { echo "cli_start: readelf (binutils) is required"; exit 1; }
needed=$(readelf -d "$PF" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
if grep -q '^libzmq\.so' <<<"$needed"; then
    echo "# pcifleet is linked with the shared libzmq (no static CLI in this build): nothing to check"
    exit 77
fi
e2e_init clistart
echo "# NEEDED: $(tr '\n' ' ' <<<"$needed")"
lazy='lib(zmq|czmq|sodium|protobuf-c|gssapi_krb5|systemd|uuid)\.so'
check "NEEDED names none of libzmq, libczmq, libsodium, libprotobuf-c, libgssapi_krb5, libsystemd, libuuid" \
    bash -c '! grep -Eq "^($1)" <<<"$0"' "$needed" "$lazy"

# the dynamic loader names every library it loads, at start or by dlopen
# (ld.so(8), LD_DEBUG=files)
loaded() { LD_DEBUG=files "$PF" "$@" 2>&1 >/dev/null | sed -n 's/.*file=\([^ ]*\).*/\1/p' | sort -u; }
help_libs=$(loaded --help)
check "pcifleet --help: the loader's list is there (libc)" grep -q '^libc\.so' <<<"$help_libs"
check "pcifleet --help loads no GSSAPI, libsystemd or libuuid (loaded: $(tr '\n' ' ' <<<"$help_libs"))" \
    bash -c '! grep -Eq "^lib(gssapi_krb5|krb5|systemd|uuid)\.so" <<<"$0"' "$help_libs"
kg_libs=$(loaded keygen --dir "$tmp/k0" n0)
check "pcifleet keygen loads none of them either" \
    bash -c '! grep -Eq "^lib(gssapi_krb5|krb5|systemd|uuid)\.so" <<<"$0"' "$kg_libs"

check "keygen writes a pair" "$PF" keygen --dir "$tmp/k" n1
check "fingerprint reads it" bash -c '"$0" fingerprint "$1" | grep -Eq "[0-9a-f]"' "$PF" "$tmp/k/n1.key"
e2e_finish
