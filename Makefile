# cilium-docker: `sudo make run` and `sudo make test` do everything on a fresh Debian 12 machine.
SHELL := /bin/bash
ROOT := $(CURDIR)
export PATH := $(ROOT)/.tools/bin:$(PATH)

.PHONY: all setup build build-bpf build-native build-ts check fmt run test bench clean cleanup

all: build

setup:
	scripts/setup.sh

build: setup build-bpf build-native build-ts

build-bpf:
	@if [ -x scripts/build-bpf.sh ]; then scripts/build-bpf.sh; fi

build-native:
	@if [ -x scripts/build-native.sh ]; then scripts/build-native.sh; fi

build-ts:
	node node_modules/typescript/bin/tsc -p tsconfig.json

# Type-checks src, test and bench, then Biome's format and lint check (biome.jsonc) of every
# TypeScript and JavaScript source; test/unit/lint.test.ts runs the same Biome check in the suite.
check: setup
	node node_modules/typescript/bin/tsc -p tsconfig.check.json --noEmit
	node node_modules/@biomejs/biome/bin/biome ci --error-on-warnings --max-diagnostics=50 .

# Formats every source in place and applies Biome's safe lint fixes; `make check` then says what is left.
fmt: setup
	node node_modules/@biomejs/biome/bin/biome check --write .

# Starts the daemon in the foreground on the embedded store, registered with the host's dockerd.
run: build
	./bin/cilium-docker $(ARGS)

# Every test, e2e included (root needed; with CI=true a missing privilege or tool fails the run).
test: build
	scripts/run-tests.sh

bench: build
	node bench/run.mjs

# Removes every program, pin and veth the daemon made on this host.
cleanup: build
	./bin/cilium cleanup

clean:
	rm -rf dist native/bpf-napi/build bpf/*.o
