#!/usr/bin/env bash
# Install the Debian packages the local cluster needs (skips what is already installed).
# Safe to run repeatedly; runs `apt-get update` only when something is missing.
set -euo pipefail

PKGS=(
  containerd runc containernetworking-plugins
  iproute2 nftables iptables conntrack socat ethtool
  busybox-static openssl curl ca-certificates util-linux mount kmod procps psmisc
  gcc libc6-dev python3
  # the agent image (hack/build-agent-image.sh): debootstrap for its base layer; clang, llvm
  # and libbpf-dev compile the BPF objects into the wheel; pip builds and installs the wheel
  debootstrap clang llvm libbpf-dev python3-pip
)

missing=()
for p in "${PKGS[@]}"; do
  # (captured, not piped into grep -q: under pipefail that races with SIGPIPE)
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  if [[ "$status" != *"install ok installed"* ]]; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "[install-deps] installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  # --no-install-recommends: containerd would otherwise pull in nothing we need.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
else
  echo "[install-deps] all packages present" >&2
fi

# The Debian containerd package enables a system-wide containerd service. The local cluster
# runs its own private instance and never uses the system one; leave the system one alone
# (we neither start nor stop it).
exit 0
