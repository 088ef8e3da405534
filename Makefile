# podrun's build. `make demo` runs an example pod; `make test` runs every test.
GO      ?= go
BIN     ?= bin/podrun
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
export CGO_ENABLED := 1
# libcontainer's seccomp (RuntimeDefault and Localhost profiles) needs the
# seccomp build tag and libseccomp: libseccomp-dev to build, libseccomp2 at
# run time. Every go command below (build, test, vet, run) gets the tag.
export GOFLAGS := -tags=seccomp $(GOFLAGS)

.PHONY: build deps test-deps bench-deps test unit unit-norace root-test lint testimage demo bench conformance leakcheck vmtest vmtest-ci clean

# urfave_cli_no_docs leaves out the CLI's man-page and markdown generators
# (never used), whose markdown parser costs every process 0.2 MB at start.
build:
	$(GO) build -tags=seccomp,urfave_cli_no_docs -ldflags "-s -w -X github.com/podrun/podrun/internal/buildinfo.Version=$(VERSION)" -o $(BIN) ./cmd/podrun

# Every test: formatting, vet and import rules, the unit tests, then the
# root tests (real containers, mounts, cgroups, network namespaces; the
# integration suite builds the binary and the busybox test image itself).
# Afterwards the leak check fails the run if any pod left a cgroup, netns,
# mount, link or process behind.
test: test-deps lint unit-norace root-test
	hack/leakcheck.sh

# What building and testing need, installed as root or named otherwise.
deps:
	@hack/deps.sh

# deps, and what only the tests use (podman, for image load --from-daemon).
test-deps:
	@hack/deps.sh test

# deps, and podman with runc, which make bench runs side by side.
bench-deps:
	@hack/deps.sh bench

# The packages whose tests can need root: those importing internal/testutil.
# Only they accept -test.root; the others would refuse the flag.
ROOTPKGS = $(shell $(GO) list -f '{{.ImportPath}} {{join .TestImports " "}} {{join .XTestImports " "}}' ./... | awk '/internal\/testutil( |$$)/ {print $$1}' | grep -v '/internal/testutil$$')

# Unit tests only: no root tests run, whoever runs them (a root test needs
# -test.root), race detector on.
unit:
	$(GO) test -count=1 -race ./...

unit-norace:
	$(GO) test -count=1 ./...

# The root tests alone (as root): every package that has them, with
# -test.root. They hold the flock on ROOTLOCK, so two suites on one machine
# (or a suite and make bench) never run at once.
ROOTLOCK ?= /tmp/podrun-root.lock
root-test:
	flock $(ROOTLOCK) $(GO) test -count=1 -timeout 40m $(ROOTPKGS) -args -test.root

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	hack/check-imports.sh

# The offline busybox image, built from Debian's busybox-static and loaded
# into the local store.
testimage: build
	$(GO) run ./hack/testimage -o bin/busybox.tar
	$(BIN) image load -i bin/busybox.tar

demo: deps testimage
	$(BIN) run examples/job-logshipper.yaml

# Benchmarks (root): podrun run and podrun daemon, podman side by side where
# it is installed, and the packages' go test benchmarks. Writes
# docs/benchmarks.md, docs/benchmarks-startup.png and bin/bench/results.json;
# BENCHFLAGS passes flags to bench/podbench. Each group of measurements, and
# the leak check, holds an flock on BENCHLOCK, which the root test suites
# sharing it wait for (empty: no lock).
BENCHLOCK ?= $(ROOTLOCK)
bench: bench-deps build
	mkdir -p bin/bench
	CGO_ENABLED=0 $(GO) build -o bin/bench/agent ./bench/agent
	$(GO) build -o bin/bench/probebench ./bench/probebench
	$(GO) run ./hack/testimage -o bin/busybox.tar
	$(GO) run ./bench/podbench -go $(GO) -lock '$(BENCHLOCK)' $(BENCHFLAGS)
	$(if $(BENCHLOCK),flock $(BENCHLOCK)) hack/leakcheck.sh

# The conformance suite (root): one subtest per scenario file of
# integration/conformance/, ending with "N passed, M failed".
conformance:
	$(GO) test -count=1 -json -timeout 30m -run '^TestConformance$$' ./integration/ -args -test.root | $(GO) run ./integration/conformance/summary

# The root suites inside real Debian 12 guests (qemu TCG, Debian's kernel
# 6.1 and systemd), one VM per profile: debian12-v2 (cgroup v2) and
# debian12-v1 (cgroup v1). As root; installs qemu-system-x86 and debootstrap
# when missing and caches the guest image in /var/cache/podrun-vmtest.
# VMTEST_SUITE=ci (default, also `make vmtest-ci`) runs the CI subset
# (hack/vmtest/suite-ci), VMTEST_SUITE=full every root suite whole.
# VMTEST_PROFILES picks profiles. See docs/hosts.md.
VMTEST_SUITE ?= ci
vmtest:
	VMTEST_SUITE=$(VMTEST_SUITE) GO=$(GO) hack/vmtest/vmtest.sh

vmtest-ci:
	VMTEST_SUITE=ci GO=$(GO) hack/vmtest/vmtest.sh

clean:
	rm -rf bin
