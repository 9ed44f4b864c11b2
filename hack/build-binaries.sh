#!/usr/bin/env bash
# Build the Kubernetes control-plane/node binaries and etcd from the Go module proxy.
#
# No container registry and no GitHub downloads are needed: k8s.io/kubernetes is built
# through a small generated wrapper module that requires k8s.io/kubernetes vX.Y.Z and
# replaces every staging module (k8s.io/api, apimachinery, client-go, ...) with its
# published k8s.io/<name> v0.Y.Z. etcd is built the same way from go.etcd.io/etcd/server/v3
# at the version the Kubernetes release's go.mod pairs with.
#
# Idempotent and cached outside the repo, keyed by version:
#   ${KUBECTL_BPF_CACHE:-/var/cache/kubectl-bpf}/k8s-<version>/bin/{kube-apiserver,
#       kube-controller-manager,kube-scheduler,kubelet,kubectl,kube-proxy,etcd}
# A second run only checks the stamps (seconds).
#
# Environment:
#   K8S_VERSION        Kubernetes version (default: pinned below; the latest v1.34.x on the proxy
#                      when this was written). K8S_VERSION=latest-1.34 resolves it on the proxy.
#   ETCD_VERSION       etcd version (default: the go.etcd.io/etcd/server/v3 version in the
#                      Kubernetes go.mod).
#   KUBECTL_BPF_CACHE  cache root (default /var/cache/kubectl-bpf).
#   GO                 go binary (default: go on PATH, else /usr/local/go/bin/go).
#   CRICTL_VERSION     sigs.k8s.io/cri-tools version for crictl (default v1.<minor>.0).
#   BUILD_NICE         nice level for the build (default 19; other work shares the cores).
#
# Prints the bin directory on the last line of stdout.
set -euo pipefail

DEFAULT_K8S_VERSION=v1.34.4
K8S_VERSION=${K8S_VERSION:-$DEFAULT_K8S_VERSION}
CACHE=${KUBECTL_BPF_CACHE:-/var/cache/kubectl-bpf}
BUILD_NICE=${BUILD_NICE:-19}

log() { echo "[build-binaries] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [[ -z "${GO:-}" ]]; then
  if command -v go >/dev/null 2>&1; then GO=$(command -v go)
  elif [[ -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go
  else die "no Go toolchain found (need Go >= 1.24; set GO=/path/to/go)"; fi
fi

export GOTOOLCHAIN=local
export GOFLAGS="-buildvcs=false -mod=mod"
export CGO_ENABLED=0
export GOPROXY=${GOPROXY:-https://proxy.golang.org,direct}
# Own module and build caches so the cache dir is self-contained (override if wanted).
export GOMODCACHE=${KUBECTL_BPF_GOMODCACHE:-$CACHE/go/mod}
export GOCACHE=${KUBECTL_BPF_GOCACHE:-$CACHE/go/build}

if [[ "$K8S_VERSION" == latest-* ]]; then
  minor=${K8S_VERSION#latest-}
  K8S_VERSION=$(cd /tmp && "$GO" list -m -versions k8s.io/kubernetes | tr ' ' '\n' \
                | grep -E "^v${minor//./\\.}\.[0-9]+$" | tail -1)
  [[ -n "$K8S_VERSION" ]] || die "could not resolve latest $minor on the module proxy"
  log "resolved latest: $K8S_VERSION"
fi
[[ "$K8S_VERSION" =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || die "bad K8S_VERSION '$K8S_VERSION' (want v1.MINOR.PATCH)"
K8S_MINOR=${BASH_REMATCH[1]}
K8S_PATCH=${BASH_REMATCH[2]}
STAGING_VERSION="v0.${K8S_MINOR}.${K8S_PATCH}"

OUT=$CACHE/k8s-$K8S_VERSION
BIN=$OUT/bin
WORK=$OUT/work
K8S_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl kube-proxy)
mkdir -p "$BIN" "$WORK" "$GOMODCACHE" "$GOCACHE"

# Serialize concurrent runs (e.g. the demo and CI started together).
exec 9>"$OUT/.lock"
flock 9

stamp_ok() {  # $1 = name of the stamp; checks stamp and binaries
  local stamp=$OUT/.stamp-$1; shift
  [[ -f "$stamp" ]] || return 1
  local b
  for b in "$@"; do [[ -x "$BIN/$b" ]] || return 1; done
  return 0
}

now() { date +%s; }

# ----------------------------------------------------------------------------- Kubernetes
build_k8s() {
  local mod=$WORK/k8s
  mkdir -p "$mod"
  log "Kubernetes $K8S_VERSION (staging $STAGING_VERSION): generating wrapper module in $mod"
  # The upstream go.mod tells which staging modules are replaced with local paths.
  local gomod
  gomod=$(cd /tmp && "$GO" mod download -json "k8s.io/kubernetes@$K8S_VERSION" \
          | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  [[ -f "$gomod" ]] || die "could not download k8s.io/kubernetes@$K8S_VERSION go.mod"
  local staging
  staging=$(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\) => \./staging/src/.*#\1#p' "$gomod" | sort -u)
  [[ -n "$staging" ]] || die "no staging replaces found in $gomod"
  log "staging modules: $(echo "$staging" | wc -l)"
  {
    echo "module kubectl-bpf.local/k8s-build"
    echo
    echo "go 1.24.0"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    local m
    for m in $staging; do echo "	$m => $m $STAGING_VERSION"; done
    echo ")"
  } > "$mod/go.mod"
  {
    echo "//go:build tools"
    echo
    echo "package tools"
    echo
    echo "import ("
    local b
    for b in "${K8S_BINS[@]}"; do echo "	_ \"k8s.io/kubernetes/cmd/$b\""; done
    echo ")"
  } > "$mod/tools.go"
  rm -f "$mod/go.sum"
  log "go mod tidy (downloads modules on a cold cache)"
  (cd "$mod" && nice -n "$BUILD_NICE" "$GO" mod tidy) >&2

  local pkg=k8s.io/component-base/version cpkg=k8s.io/client-go/pkg/version
  local date; date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  local x=""
  local p
  for p in $pkg $cpkg; do
    x+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$K8S_MINOR"
    x+=" -X $p.gitTreeState=clean -X $p.buildDate=$date -X $p.gitCommit=module-proxy"
  done
  local pkgs=()
  for b in "${K8S_BINS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  log "go build ${K8S_BINS[*]} (cold: 15-40 min on 2 cores)"
  local t0; t0=$(now)
  (cd "$mod" && nice -n "$BUILD_NICE" "$GO" build -trimpath -tags providerless \
      -ldflags "-s -w$x" -o "$BIN/" "${pkgs[@]}") >&2
  local t1; t1=$(now)
  echo "k8s $K8S_VERSION built in $((t1 - t0)) s on $(date -u +%FT%TZ)" >> "$OUT/build-times.txt"
  log "Kubernetes binaries built in $((t1 - t0)) s"
  touch "$OUT/.stamp-k8s"
}

# ----------------------------------------------------------------------------- etcd
resolve_etcd_version() {
  if [[ -n "${ETCD_VERSION:-}" ]]; then echo "$ETCD_VERSION"; return; fi
  local gomod
  gomod=$(cd /tmp && "$GO" mod download -json "k8s.io/kubernetes@$K8S_VERSION" \
          | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  local v
  v=$(sed -n 's#^[[:space:]]*go\.etcd\.io/etcd/server/v3 \(v[0-9.]*\).*#\1#p' "$gomod" | head -1)
  [[ -n "$v" ]] || v=$(sed -n 's#^[[:space:]]*go\.etcd\.io/etcd/client/v3 \(v[0-9.]*\).*#\1#p' "$gomod" | head -1)
  [[ -n "$v" ]] || die "cannot find the etcd version paired with $K8S_VERSION"
  echo "$v"
}

build_etcd() {
  local ver=$1 mod=$WORK/etcd
  mkdir -p "$mod"
  log "etcd $ver: generating wrapper module in $mod"
  cat > "$mod/go.mod" <<EOF
module kubectl-bpf.local/etcd-build

go 1.24.0

require go.etcd.io/etcd/server/v3 $ver
EOF
  cat > "$mod/tools.go" <<'EOF'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
EOF
  rm -f "$mod/go.sum"
  (cd "$mod" && nice -n "$BUILD_NICE" "$GO" mod tidy) >&2
  local t0; t0=$(now)
  (cd "$mod" && nice -n "$BUILD_NICE" "$GO" build -trimpath \
      -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=module-proxy" \
      -o "$BIN/etcd" go.etcd.io/etcd/server/v3) >&2
  local t1; t1=$(now)
  echo "etcd $ver built in $((t1 - t0)) s on $(date -u +%FT%TZ)" >> "$OUT/build-times.txt"
  log "etcd built in $((t1 - t0)) s"
  echo "$ver" > "$OUT/.stamp-etcd"
}

# ----------------------------------------------------------------------------- main
if stamp_ok k8s "${K8S_BINS[@]}"; then
  log "Kubernetes $K8S_VERSION: cached in $BIN"
else
  build_k8s
fi

if [[ -n "${ETCD_VERSION:-}" ]] && stamp_ok etcd etcd && [[ "$(cat "$OUT/.stamp-etcd")" != "$ETCD_VERSION" ]]; then
  rm -f "$OUT/.stamp-etcd"
fi
if stamp_ok etcd etcd; then
  log "etcd $(cat "$OUT/.stamp-etcd"): cached in $BIN"
else
  build_etcd "$(resolve_etcd_version)"
fi

CRICTL_VERSION=${CRICTL_VERSION:-v1.${K8S_MINOR}.0}
if stamp_ok crictl crictl && [[ "$(cat "$OUT/.stamp-crictl")" == "$CRICTL_VERSION" ]]; then
  log "crictl $CRICTL_VERSION: cached in $BIN"
else
  # cri-tools' go.mod has no replace directives, so a plain `go install` works.
  log "crictl $CRICTL_VERSION: go install"
  t0=$(now)
  (cd /tmp && GOFLAGS=-buildvcs=false GOBIN="$BIN" nice -n "$BUILD_NICE" "$GO" install -trimpath \
      -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" \
      "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION") >&2
  echo "crictl $CRICTL_VERSION built in $(($(now) - t0)) s on $(date -u +%FT%TZ)" >> "$OUT/build-times.txt"
  echo "$CRICTL_VERSION" > "$OUT/.stamp-crictl"
fi

# Sanity: each binary runs and reports the stamped version.
kv=$("$BIN/kubectl" version --client 2>/dev/null || true)
[[ "$kv" == *"$K8S_VERSION"* ]] || die "kubectl does not report $K8S_VERSION: $kv"
"$BIN/etcd" --version >/dev/null || die "etcd does not run"
echo "$K8S_VERSION" > "$CACHE/.last-k8s-version"
echo "$BIN"
