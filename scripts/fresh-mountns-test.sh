#!/usr/bin/env bash
# Runs the test suite, or the test files given, as on a fresh machine: inside a private mount
# namespace where nothing is mounted at /sys/fs/bpf (every stacked bpffs there is unmounted, in
# that namespace only). A test that works only because an earlier run or a `make run` left a bpffs
# in the root namespace fails here.
#
#   scripts/fresh-mountns-test.sh                                # the whole suite
#   scripts/fresh-mountns-test.sh test/e2e/lab-smoke.test.ts     # some files (run-tests.sh arguments)
#
# Needs root. The root namespace's mounts are untouched: the namespace (and every mount made in
# it: lab netns files, bpffs) is gone when the run ends.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${CD_FRESH_MOUNTNS:-}" != inside ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "fresh-mountns-test: needs root (unshare --mount)" >&2
    exit 1
  fi
  CD_FRESH_MOUNTNS=inside exec unshare --mount --propagation private "$0" "$@"
fi

# umount removes the topmost mount only: repeat until no bpffs is left at /sys/fs/bpf.
for _ in $(seq 1 16); do
  mountpoint -q /sys/fs/bpf || break
  umount /sys/fs/bpf
done
if mountpoint -q /sys/fs/bpf; then
  echo "fresh-mountns-test: /sys/fs/bpf is still a mount point after 16 unmounts" >&2
  exit 1
fi
echo "fresh-mountns-test: mount namespace $(readlink /proc/self/ns/mnt), nothing mounted at /sys/fs/bpf"

status=0
scripts/run-tests.sh "$@" || status=$?

# What the run left behind at /sys/fs/bpf of this namespace (as it would in the root namespace
# of a real machine): a test must not mount a bpffs there.
if mountpoint -q /sys/fs/bpf; then
  echo "fresh-mountns-test: FAILED: the run mounted something at /sys/fs/bpf:" >&2
  grep ' /sys/fs/bpf ' /proc/self/mountinfo >&2
  status=1
fi
exit "$status"
