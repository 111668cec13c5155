#!/usr/bin/env bash
# Compiles every bpf/*.bpf.c into bpf/*.bpf.o (clang -O2 -g -target bpf, with BTF).
# Idempotent: an object is rebuilt when it is missing or older than its source or any header.
# Usage: scripts/build-bpf.sh [--force]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

CLANG=${CLANG:-clang}
if ! command -v "$CLANG" >/dev/null; then
  echo "build-bpf: $CLANG not found; install clang (>= 12) or set CLANG=" >&2
  exit 1
fi
if [ ! -f /usr/include/bpf/bpf_helpers.h ]; then
  echo "build-bpf: /usr/include/bpf/bpf_helpers.h missing; install libbpf-dev" >&2
  exit 1
fi

force=0
[ "${1:-}" = "--force" ] && force=1

# <asm/types.h> and friends come from the host's multiarch include directory.
multiarch=$("${CC:-gcc}" -print-multiarch 2>/dev/null || echo "$(uname -m)-linux-gnu")
cflags=(-O2 -g -target bpf -Wall -Werror -Ibpf/include "-I/usr/include/$multiarch")

# True when $1 (an object) is newer than its source $2 and every header.
up_to_date() {
  [ -f "$1" ] && [ "$1" -nt "$2" ] || return 1
  for header in bpf/include/*.h; do [ "$1" -nt "$header" ] || return 1; done
}

built=0
for src in bpf/*.bpf.c; do
  obj=${src%.c}.o
  if [ "$force" = 0 ] && up_to_date "$obj" "$src"; then continue; fi
  "$CLANG" "${cflags[@]}" -c "$src" -o "$obj.tmp"
  mv "$obj.tmp" "$obj"
  echo "build-bpf: $obj"
  built=$((built + 1))
done
[ "$built" = 0 ] && echo "build-bpf: up to date"
exit 0
