# Entry points for people and CI. Everything that needs the kernel runs as root.
PYTHON ?= python3
GADGETS := drops

.PHONY: deps bpf install test unit lint demo bench clean

deps:
	hack/install-dev-deps.sh

# Compile gadgets/<g>/<g>.bpf.c -> <g>.bpf.o in place (pip install does this too).
bpf:
	$(PYTHON) setup.py -q build_bpf

install: deps
	$(PYTHON) -m pip install -q --disable-pip-version-check .

# Every tier this machine can run: unit tests, then the kernel (agent) tier.
test: install lint
	$(PYTHON) -m pytest --with-agent

unit:
	$(PYTHON) -m pytest tests/unit

lint:
	ruff check kubectl_bpf tests bench setup.py
	mypy kubectl_bpf

demo: install
	hack/demo-local

bench: install
	$(PYTHON) bench/drops_bench.py

clean:
	rm -rf build *.egg-info $(foreach g,$(GADGETS),kubectl_bpf/gadgets/$(g)/$(g).bpf.o)
