# Nodes 2..N of `hack/local-cluster up --nodes N`, sourced by hack/local-cluster.
#
# Each simulated node is a real kubelet with its own containerd, network namespace
# (kbpf-nodeK), node IP, pod CIDR, CNI bridge, cgroup root and kube-proxy; all nodes share the
# host's kernel, like kind's. The addresses come from hack/localcluster/topology.py. With more
# than one node, node 1 (this machine) runs kube-proxy too and the host forwards between its
# pod bridge and the node link (net.ipv4.ip_forward, put back by `down`); no node netns has a
# default route, so pod traffic still never leaves the machine.

NODE_NET_HOST_IP=10.89.0.1  # topology.host_side_ip()
HOST_BRIDGE=kbpfn0          # topology.HOST_BRIDGE
DNS_SERVICE_IP=10.96.0.10   # topology.DNS_SERVICE_IP
COREDNS_VERSION=${COREDNS_VERSION:-v1.15.0}
COREDNS_IMAGE=localhost/kubectl-bpf/coredns:${COREDNS_VERSION#v}

node_count() { cat "$DIR/node-count" 2>/dev/null || echo 1; }

apiserver_bind() {  # the simulated nodes reach the API server through the node link
  if (($(node_count) > 1)); then echo 0.0.0.0; else echo 127.0.0.1; fi
}

# worker_plan: "index name netns ip pod_cidr gateway cgroup_root" of nodes 2..N
worker_plan() { lc_py topology nodes "$(node_count)" "$(node_name)" "$(node_ip)" | awk '$1 > 1'; }

cgroup_hierarchies() {
  local h
  for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/unified/; do
    [[ -d "$h" && -e "${h}cgroup.procs" ]] && echo "${h%/}"
  done
  return 0
}

up_workers() {
  local n; n=$(node_count)
  ((n > 1)) || return 0
  ensure_node_link
  coredns_image
  import_archives "$RUN/coredns-image.txt"
  start_kube_proxy 1 "$(node_name)" "" "$DIR/kube-proxy.conf"
  local k name ns ip cidr gw cg
  while read -r k name ns ip cidr gw cg; do
    up_worker "$k" "$name" "$ns" "$ip" "$cidr" "$gw" "$cg"
  done < <(worker_plan)
  wait_for "kube-proxy /healthz" kube-proxy kube_proxy_healthy ""
  while read -r k name ns _ cidr _; do
    wait_for "node $name Ready without taints" "node$k-kubelet" node_ready "$name"
    set_pod_cidr "$name" "$cidr"
    wait_for "node $name kube-proxy /healthz" "node$k-kube-proxy" kube_proxy_healthy "$ns"
    log "node $name Ready, no taints, pod CIDR $cidr, kube-proxy synced"
  done < <(worker_plan)
  local manifest hash
  manifest=$(sed -e "s#@IMAGE@#$COREDNS_IMAGE#; s#@DNS_IP@#$DNS_SERVICE_IP#" "$HACK_DIR/lib/coredns.yaml")
  hash=$(sha256sum <<< "$manifest" | cut -c1-16)
  kubectl_ apply -f - <<< "${manifest//@CONFIG_HASH@/$hash}" >/dev/null || die "could not apply the CoreDNS manifests"
  wait_for "CoreDNS ready" "" kubectl_ -n kube-system rollout status deployment/coredns --timeout=5s
  log "CoreDNS ready behind kube-dns $DNS_SERVICE_IP"
}

ensure_node_link() {
  if ! ip link show "$HOST_BRIDGE" >/dev/null 2>&1; then ip link add "$HOST_BRIDGE" type bridge; fi
  local addrs; addrs=$(ip -4 -o addr show dev "$HOST_BRIDGE")
  [[ " $addrs " == *" inet $NODE_NET_HOST_IP/24 "* ]] || ip addr replace "$NODE_NET_HOST_IP/24" dev "$HOST_BRIDGE"
  ip link set "$HOST_BRIDGE" up
  # src: what node 1 sends to another node's pods comes from its InternalIP, as between real
  # nodes (not from its address on the node link, which no Node object names)
  local dst via
  while read -r dst _ via; do ip route replace "$dst" via "$via" src "$(node_ip)"; done \
    < <(lc_py topology routes "$(node_count)" 0 "$(node_ip)")
  if [[ ! -f "$RUN/sysctl.ip_forward" ]]; then sysctl -n net.ipv4.ip_forward > "$RUN/sysctl.ip_forward"; fi
  sysctl -qw net.ipv4.ip_forward=1
  mkcert kube-proxy ca "/CN=system:kube-proxy" "clientAuth"
  kubeconfig "$DIR/kube-proxy.conf" system:kube-proxy kube-proxy
}

# coredns_image: build CoreDNS from the Go module proxy (cached per version; no replace
# directives, so a plain `go install` works) and an image of that one static binary.
coredns_image() {
  local out=$CACHE/coredns-$COREDNS_VERSION tar=$CACHE/images/coredns-$COREDNS_VERSION.tar
  mkdir -p "$out/bin" "$CACHE/images"
  if [[ ! -x "$out/bin/coredns" || ! -f "$out/.stamp" ]]; then
    local t0=$SECONDS
    log "building CoreDNS $COREDNS_VERSION (go install, cold: ~15 min on 2 cores)"
    (cd /tmp && GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
      GOMODCACHE=${KUBECTL_BPF_GOMODCACHE:-$CACHE/go/mod} GOCACHE=${KUBECTL_BPF_GOCACHE:-$CACHE/go/build} \
      GOBIN="$out/bin" nice -n "${BUILD_NICE:-19}" "$(command -v go || echo /usr/local/go/bin/go)" \
      install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION") >&2 \
      || die "CoreDNS build failed"
    echo "coredns $COREDNS_VERSION built in $((SECONDS - t0)) s on $(date -u +%FT%TZ)" >> "$out/build-times.txt"
    touch "$out/.stamp"
  fi
  if [[ ! -f "$tar" || "$tar" -ot "$out/bin/coredns" ]]; then
    local root; root=$(mktemp -d)
    install -m 0755 "$out/bin/coredns" "$root/coredns"
    python3 "$REPO_DIR/images/base/build_oci.py" image --rootfs "$root" --name "$COREDNS_IMAGE" \
      --output "$tar" --entrypoint '["/coredns"]' >/dev/null
    rm -rf "$root"
  fi
  python3 "$REPO_DIR/images/base/build_oci.py" inspect "$tar" > "$RUN/coredns-image.txt"
}

# start_kube_proxy K NODE NETNS KUBECONFIG: kube-proxy in iptables mode for node K
start_kube_proxy() {
  local k=$1 node=$2 ns=$3 kc=$4 name=kube-proxy
  ((k > 1)) && name=node$k-kube-proxy
  START_NETNS=${ns:+/run/netns/$ns} start "$name" "$BIN/kube-proxy" \
    --kubeconfig="$kc" --hostname-override="$node" --proxy-mode=iptables \
    --detect-local-mode=BridgeInterface --pod-bridge-interface=kbpf0 --metrics-bind-address=127.0.0.1:10249 \
    --healthz-bind-address=127.0.0.1:10256 --iptables-localhost-nodeports=false \
    --conntrack-max-per-core=0 --conntrack-tcp-timeout-established=0 \
    --conntrack-tcp-timeout-close-wait=0 --v=1
}

# kube_proxy_healthy NETNS: its /healthz says the rules are synced (NETNS empty: the host's)
kube_proxy_healthy() {
  if [[ -n "$1" ]]; then ip netns exec "$1" curl -fsS --max-time 3 http://127.0.0.1:10256/healthz
  else curl -fsS --max-time 3 http://127.0.0.1:10256/healthz; fi
}

# up_worker K NAME NETNS IP POD_CIDR GATEWAY CGROUP_ROOT
up_worker() {
  local k=$1 name=$2 ns=$3 ip=$4 cidr=$5 gw=$6 cg=$7
  local wd=$DIR/nodes/node$k plen=${5#*/}
  local sock=$wd/containerd/containerd.sock
  mkdir -p "$wd/containerd/root" "$wd/containerd/opt" "$wd/cni/net.d" "$wd/cni/ipam" "$wd/kubelet" "$wd/pod-logs"
  log "node $name: netns $ns, IP $ip, pod CIDR $cidr, cgroup root $cg"

  # network namespace, its link to the host bridge, its pod bridge and routes
  [[ -e /run/netns/$ns ]] || ip netns add "$ns"
  local veth=kbpfn-$k
  if ! ip link show "$veth" >/dev/null 2>&1; then
    ip link add "$veth" type veth peer name eth0 netns "$ns"
  fi
  ip link set "$veth" master "$HOST_BRIDGE" up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr replace "$ip/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link show kbpf0 >/dev/null 2>&1 || ip -n "$ns" link add kbpf0 type bridge
  ip -n "$ns" addr replace "$gw/$plen" dev kbpf0
  ip -n "$ns" link set kbpf0 up
  ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
  if ip netns exec "$ns" test -e /proc/sys/net/bridge/bridge-nf-call-iptables; then
    ip netns exec "$ns" sysctl -qw net.bridge.bridge-nf-call-iptables=1
  fi
  local dst via
  while read -r dst _ via; do ip -n "$ns" route replace "$dst" via "$via"; done \
    < <(lc_py topology routes "$(node_count)" "$k" "$(node_ip)")

  # cgroup root of its kubelet, in every hierarchy
  local h
  for h in $(cgroup_hierarchies); do mkdir -p "$h$cg"; done

  # containerd: the node's own, with the node's CNI config
  sed -e "s#$CTRD/#$wd/containerd/#g; s#$CTRD_SOCK#$sock#g; s#conf_dir = \"$CNI_DIR/net.d\"#conf_dir = \"$wd/cni/net.d\"#" \
    "$CTRD/config.toml" > "$wd/containerd/config.toml"
  lc_py topology conflist "$(node_count)" "$k" "$(node_ip)" "$wd/cni/ipam" > "$wd/cni/net.d/10-kubectl-bpf.conflist"
  START_NETNS=/run/netns/$ns start "node$k-containerd" "$(command -v containerd)" \
    --config "$wd/containerd/config.toml" --log-level warn
  wait_for "node $name containerd socket" "node$k-containerd" ctr -a "$sock" version
  local f img id check
  for f in "$RUN/images.txt" "$RUN/images-extra.txt" "$RUN/agent-image.txt" "$RUN/coredns-image.txt"; do
    [[ -s "$f" ]] || continue
    while IFS=$'\t' read -r img name_ id; do
      check=$(ctr -a "$sock" -n k8s.io images check "name==$name_" 2>/dev/null || true)
      [[ "$check" == *complete* ]] && continue
      ctr -a "$sock" -n k8s.io images import --no-unpack=false "$img" >/dev/null \
        || die "node $name: ctr images import $img failed"
    done < "$f"
  done

  # kubelet: own identity, state, cgroup root, pod logs; healthz on its node IP
  mkcert "kubelet-node$k" ca "/O=system:nodes/CN=system:node:$name" "clientAuth"
  mkcert "kubelet-serving-node$k" ca "/CN=$name" "serverAuth" "DNS:$name,IP:$ip"
  kubeconfig "$wd/kubelet.conf" "system:node:$name" "kubelet-node$k" "$NODE_NET_HOST_IP"
  kubeconfig "$wd/kube-proxy.conf" system:kube-proxy kube-proxy "$NODE_NET_HOST_IP"
  sed -e "s#^tlsCertFile: .*#tlsCertFile: $PKI/kubelet-serving-node$k.crt#" \
      -e "s#^tlsPrivateKeyFile: .*#tlsPrivateKeyFile: $PKI/kubelet-serving-node$k.key#" \
      -e "s#^healthzBindAddress: .*#healthzBindAddress: $ip#" \
      -e "s#unix://$CTRD_SOCK#unix://$sock#" \
      -e "s#^podLogsDir: .*#podLogsDir: $wd/pod-logs#" \
      "$DIR/kubelet-config.yaml" > "$wd/kubelet-config.yaml"
  printf 'cgroupRoot: %s\n' "$cg" >> "$wd/kubelet-config.yaml"
  START_NETNS=/run/netns/$ns start "node$k-kubelet" "$BIN/kubelet" \
    --config="$wd/kubelet-config.yaml" --kubeconfig="$wd/kubelet.conf" \
    --root-dir="$wd/kubelet" --cert-dir="$wd/kubelet/pki" \
    --hostname-override="$name" --node-ip="$ip" --v=2
  start_kube_proxy "$k" "$name" "$ns" "$wd/kube-proxy.conf"
}

# down_workers: everything of nodes 2..N (and node 1's kube-proxy), whether or not they run
down_workers() {
  local k wd ns sock pods p
  for wd in "$DIR"/nodes/node*; do
    [[ -d "$wd" ]] || continue
    k=${wd##*/node}; ns=kbpf-node$k; sock=$wd/containerd/containerd.sock
    stop "node$k-kube-proxy"
    stop "node$k-kubelet" 20
    if pid_of "node$k-containerd" >/dev/null; then
      pods=$(crictl_at "$sock" pods -q 2>/dev/null || true)
      for p in $pods; do
        crictl_at "$sock" inspectp -o go-template \
          --template '{{range .info.runtimeSpec.linux.namespaces}}{{if eq .type "network"}}{{.path}}{{end}}{{end}}' \
          "$p" 2>/dev/null >> "$RUN/netns" || true
      done
      if [[ -n "$pods" ]]; then
        # shellcheck disable=SC2086
        crictl_at "$sock" stopp $pods >/dev/null 2>&1 || true
        # shellcheck disable=SC2086
        crictl_at "$sock" rmp -f $pods >/dev/null 2>&1 || true
      fi
    fi
    stop "node$k-containerd" 20
    kill_shims_of "$sock"
    local d dirs=()
    for d in $(cgroup_hierarchies); do
      [[ -d "$d/kbpf-node$k" ]] || continue
      dirs+=("$d/kbpf-node$k")
      find "$d/kbpf-node$k" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
    done
    poll 10 cgroups_empty "${dirs[@]}" || log "WARNING: processes left in node $k's cgroups"
    for d in $(cgroup_hierarchies); do
      [[ -d "$d/kbpf-node$k" ]] && find "$d/kbpf-node$k" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
    unmount_under "$wd"
    if [[ -f "$RUN/netns" ]]; then
      local n
      while IFS= read -r n; do
        [[ -n "$n" && -e "$n" ]] || continue
        umount "$n" 2>/dev/null || umount -l "$n" 2>/dev/null || true
        rm -f "$n"
      done < <(sort -u "$RUN/netns")
      rm -f "$RUN/netns"
    fi
    # its Node object, if the API server is there to ask
    if pid_of kube-apiserver >/dev/null; then
      kubectl_ delete node "$(node_name)-node$k" --ignore-not-found >/dev/null 2>&1 || true
    fi
    [[ -e /run/netns/$ns ]] && ip netns del "$ns"
    ip link del "kbpfn-$k" 2>/dev/null || true
    rm -rf "$wd"
  done
  if pid_of kube-proxy >/dev/null || [[ -f "$RUN/kube-proxy.pid" ]]; then
    stop kube-proxy
    "$BIN/kube-proxy" --cleanup >/dev/null 2>&1 || log "WARNING: kube-proxy --cleanup failed"
  fi
  ip link del "$HOST_BRIDGE" 2>/dev/null || true
  if [[ -f "$RUN/sysctl.ip_forward" ]]; then
    sysctl -qw net.ipv4.ip_forward="$(cat "$RUN/sysctl.ip_forward")" || true
    rm -f "$RUN/sysctl.ip_forward"
  fi
  rm -f "$DIR/node-count" "$DIR/kube-proxy.conf"
}

crictl_at() {  # SOCKET ARGS...: crictl against one node's containerd
  local s=$1; shift
  "$BIN/crictl" --config /dev/null --runtime-endpoint "unix://$s" --image-endpoint "unix://$s" --timeout 30s "$@"
}

kill_shims_of() {  # SOCKET: kill the shims that serve that containerd socket
  local p exe
  for p in /proc/[0-9]*; do
    exe=$(readlink "$p/exe" 2>/dev/null) || continue
    [[ "$(basename "${exe% (deleted)}")" == containerd-shim* ]] || continue
    if [[ $'\n'"$(tr '\0' '\n' < "$p/cmdline" 2>/dev/null || true)"$'\n' == *$'\n'"$1"$'\n'* ]]; then
      kill -KILL "${p#/proc/}" 2>/dev/null || true
    fi
  done
}
