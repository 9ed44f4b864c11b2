# Entry points for people and CI. Everything that needs the kernel runs as root.
PYTHON ?= python3
GADGETS := drops tcp dns

.PHONY: deps bpf install test test-kernels unit lint demo demo-local cluster-up cluster-down bench clean

deps:
	hack/install-dev-deps.sh

# Compile gadgets/<g>/<g>.bpf.c -> <g>.bpf.o in place (pip install does this too).
bpf:
	$(PYTHON) setup.py -q build_bpf

install: deps
	$(PYTHON) -m pip install -q --disable-pip-version-check .

# Every tier: unit, kernel (agent), then end-to-end on the local cluster of $(E2E_NODES)
# nodes, multinode tier included (nothing skipped), which is brought up first (cold: builds
# Kubernetes and CoreDNS, ~25 min; cached: under a minute) and taken down after, unless
# KEEP_CLUSTER=1. The NetworkPolicy enforcer is built here too (cold: ~3 min), so no test
# fixture has to build it within a test's timeout.
E2E_NODES ?= 3
test: install lint
	hack/local-cluster up --nodes $(E2E_NODES)
	hack/policy-enforcer build
	$(PYTHON) -m pytest --with-agent --with-e2e --with-multinode; rc=$$?; \
	  [ "$(KEEP_CLUSTER)" = 1 ] || hack/local-cluster down; exit $$rc

# The agent tier inside Debian's 5.10, 6.1 and 6.12 kernels (and 6.12 with lockdown) under qemu:
# see README "Kernels". KERNELS=6.1,6.12 picks rows; PYTEST_ARGS="tests/agent/test_x.py" a subset.
# Cached in /var/cache/kubectl-bpf/kernels (cold: downloads and a debootstrap).
test-kernels: bpf
	$(PYTHON) -m tests.kernels run --kernels "$(or $(KERNELS),all)" \
	  $(if $(filter all,$(TIER)),--whole-tier) $(if $(PYTEST_ARGS),-- $(PYTEST_ARGS))

unit:
	$(PYTHON) -m pytest tests/unit

lint:
	ruff check kubectl_bpf tests bench setup.py
	mypy kubectl_bpf

# The README's first command: cluster up, a workload with deliberate drops, kubectl bpf drops.
demo: install
	hack/demo-cluster

# The same gadget on this host, without Kubernetes (network namespaces only).
demo-local: install
	hack/demo-local

cluster-up:
	hack/local-cluster up --nodes $(or $(NODES),1)

cluster-down:
	hack/local-cluster down

bench: install
	$(PYTHON) bench/drops_bench.py

clean:
	rm -rf build *.egg-info $(foreach g,$(GADGETS),kubectl_bpf/gadgets/$(g)/$(g).bpf.o)
