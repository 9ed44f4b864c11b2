#!/usr/bin/env bash
# Install what building, testing and benchmarking kubectl-bpf needs on a
# fresh Debian 12 machine: the BPF toolchain (clang, llvm-strip, libbpf,
# bpftool), the network tools the tests drive (iproute2, nftables), bpftrace
# and tcpdump for the benchmark baselines, tmux for the terminal-width tests, what
# `make test-kernels` boots kernels with (qemu-system-x86, debootstrap, cpio, kmod's
# depmod), and the Python test tools. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(clang llvm libbpf-dev libbpf1 bpftool nftables iproute2 bpftrace gcc libc6-dev util-linux tcpdump tmux
      qemu-system-x86 debootstrap cpio kmod)
missing=()
for pkg in "${PKGS[@]}"; do
  # (captured, not piped into grep -q: under pipefail that races with SIGPIPE)
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == *"install ok installed"* ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "[deps] apt: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

PYTHON=${PYTHON:-python3}
"$PYTHON" -m pip install -q --disable-pip-version-check -r requirements-dev.txt
