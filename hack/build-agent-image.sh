#!/usr/bin/env bash
# Build the agent image localhost/kubectl-bpf/agent:<version> (<version> = kubectl_bpf.__version__)
# as an OCI archive, without a registry: a cached debootstrap minbase layer of the host's Debian
# suite (python3, libbpf1, libelf1, zlib1g) plus a layer with the kubectl_bpf wheel. See
# images/agent/build_agent_image.py for the details and images/agent/Dockerfile for the same
# image built with docker/buildah.
#
#   hack/build-agent-image.sh [--import] [--refresh-base] [--force] [--no-verify]
#
#   --import        also import it into the local cluster's containerd (hack/local-cluster),
#                   unless that containerd already has this exact image
#   --refresh-base  rebuild the cached base layer (e.g. to pick up Debian security updates)
#   --force         rebuild the image even if its inputs did not change
#   --no-verify     do not run the agent in the image's rootfs after building
#
# Prints the archive path (${KUBECTL_BPF_CACHE:-/var/cache/kubectl-bpf}/images/agent-<version>.tar)
# on the last line of stdout. Cold (first) build: about a minute (debootstrap); after a code
# change: seconds; nothing changed: well under a second.
#
# Environment: KUBECTL_BPF_CACHE (cache root), PYTHON (interpreter with pip, default python3),
# AGENT_BUILD_TIMES (file the cold build times are appended to; default <cache>/build-times.txt).
set -euo pipefail

HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$HACK_DIR/.." && pwd)
CACHE=${KUBECTL_BPF_CACHE:-/var/cache/kubectl-bpf}
PYTHON=${PYTHON:-python3}

log() { printf '[build-agent-image] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

do_import=0
args=()
for a in "$@"; do
  case $a in
    --import) do_import=1 ;;
    --refresh-base|--force|--no-verify) args+=("$a") ;;
    -h|--help) sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $a (see --help)" ;;
  esac
done

[[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap, chroot, mounts)"
missing=()
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v clang >/dev/null 2>&1 || missing+=(clang)
command -v llvm-strip >/dev/null 2>&1 || missing+=(llvm)
[[ -f /usr/include/bpf/bpf_helpers.h ]] || missing+=(libbpf-dev)
if ((${#missing[@]})); then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
"$PYTHON" -m pip --version >/dev/null 2>&1 \
  || die "$PYTHON has no pip (apt-get install python3-pip, or set PYTHON=)"

version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$REPO_DIR/kubectl_bpf/__init__.py")
[[ -n "$version" ]] || die "no __version__ in kubectl_bpf/__init__.py"
name=localhost/kubectl-bpf/agent:$version

t0=$SECONDS
archive=$("$PYTHON" "$REPO_DIR/images/agent/build_agent_image.py" --repo "$REPO_DIR" --cache "$CACHE" \
            --times-file "${AGENT_BUILD_TIMES:-$CACHE/build-times.txt}" "${args[@]}" | tail -1)
[[ -f "$archive" ]] || die "the builder did not produce an archive"
log "$name: $archive ($(du -m "$archive" | cut -f1) MB) in $((SECONDS - t0)) s"

if ((do_import)); then
  eval "$("$HACK_DIR/local-cluster" env)"
  sock=${KUBECTL_BPF_CONTAINERD_ADDRESS:?}
  [[ -S "$sock" ]] || die "the local cluster's containerd is not running ($sock); run hack/local-cluster up"
  manifest=$("$PYTHON" - "$archive" <<'EOF'
import json, sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    print(json.load(t.extractfile("index.json"))["manifests"][0]["digest"])
EOF
)
  have=$(ctr -a "$sock" -n k8s.io images ls "name==$name" 2>/dev/null | awk 'NR>1 {print $3}')
  check=$(ctr -a "$sock" -n k8s.io images check "name==$name" 2>/dev/null || true)
  if [[ "$have" == "$manifest" && "$check" == *complete* ]]; then
    log "$name ($manifest) already in containerd ($sock)"
  else
    t1=$SECONDS
    ctr -a "$sock" -n k8s.io images import --no-unpack=false "$archive" >/dev/null \
      || die "ctr images import $archive failed"
    log "imported $name into $sock in $((SECONDS - t1)) s"
  fi
fi
echo "$archive"
