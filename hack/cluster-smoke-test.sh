#!/usr/bin/env bash
# Smoke test of the local cluster (hack/local-cluster up must have run):
#  1. node Ready without taints;
#  2. a busybox server pod (httpd + nc) and a client pod that reaches it by pod IP;
#  3. a namespace labelled pod-security.kubernetes.io/enforce=baseline rejects a privileged pod;
#  4. the agent image (localhost/kubectl-bpf/agent:<version>) traces the server pod's drops with
#     the minimal privileges: capabilities BPF, PERFMON, SYS_PTRACE only, seccomp RuntimeDefault,
#     read-only root filesystem, no privilege escalation, hostPID false, host /proc and
#     /sys/kernel/btf mounted read-only; it must print preflight, ready, summary and end;
#  5. cleans up after itself.
# Traffic stays on the pod network of this machine. Exit 0 = all passed.
set -euo pipefail
HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
eval "$("$HACK_DIR/local-cluster" env)"
NS=kbpf-smoke-$$
NS_PSA=kbpf-smoke-psa-$$
NS_AGENT=kbpf-smoke-agent-$$
IMAGE=localhost/kubectl-bpf/busybox:1
VERSION=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$HACK_DIR/../kubectl_bpf/__init__.py")
AGENT_IMAGE=localhost/kubectl-bpf/agent:$VERSION
pass=0 fail=0
ok() { echo "ok   - $*"; pass=$((pass + 1)); }
nok() { echo "FAIL - $*"; fail=$((fail + 1)); }
cleanup() { kubectl delete ns "$NS" "$NS_PSA" "$NS_AGENT" --wait=false >/dev/null 2>&1 || true; }
trap cleanup EXIT

node=$(kubectl get nodes -o jsonpath='{.items[0].metadata.name}')
ready=$(kubectl get node "$node" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}|{.spec.taints}')
if [[ "$ready" == "True|" ]]; then ok "node $node Ready, no taints"; else nok "node $node: $ready"; fi

kubectl create ns "$NS" >/dev/null
kubectl -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: server, labels: {app: server}}
spec:
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: $IMAGE
    imagePullPolicy: Never
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    ports: [{containerPort: 8080, name: http}]
    readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
  - name: nc
    image: $IMAGE
    imagePullPolicy: Never
    command: ["sh", "-c", "while true; do echo hello-from-nc | nc -l -p 9090; done"]
EOF
if kubectl -n "$NS" wait --for=condition=Ready pod/server --timeout=60s >/dev/null; then
  ok "server pod Ready (kubelet httpGet probe reached it)"
else
  nok "server pod not Ready"; kubectl -n "$NS" describe pod server | tail -20
fi
sip=$(kubectl -n "$NS" get pod server -o jsonpath='{.status.podIP}')
# (busybox-static's `wget -T` segfaults: use `timeout` instead)
kubectl -n "$NS" run client --image="$IMAGE" --image-pull-policy=Never --restart=Never \
  --overrides='{"spec":{"automountServiceAccountToken":false,"terminationGracePeriodSeconds":1}}' \
  --command -- sh -c "timeout 10 wget -qO- http://$sip:8080/ && timeout 10 nc $sip 9090 </dev/null" >/dev/null
if kubectl -n "$NS" wait --for=jsonpath='{.status.phase}'=Succeeded pod/client --timeout=60s >/dev/null; then
  out=$(kubectl -n "$NS" logs client)
  if [[ "$out" == *"kubectl-bpf busybox ok"* && "$out" == *"hello-from-nc"* ]]; then
    ok "client pod reached server $sip (http :8080 and nc :9090)"
  else
    nok "client output: $out"
  fi
else
  nok "client pod did not succeed: $(kubectl -n "$NS" get pod client -o wide --no-headers)"
  kubectl -n "$NS" logs client || true
fi

kubectl create ns "$NS_PSA" >/dev/null
kubectl label ns "$NS_PSA" pod-security.kubernetes.io/enforce=baseline >/dev/null
err=$(kubectl -n "$NS_PSA" apply -f - 2>&1 <<EOF || true
apiVersion: v1
kind: Pod
metadata: {name: priv}
spec:
  containers:
  - name: c
    image: $IMAGE
    imagePullPolicy: Never
    command: ["sleep", "60"]
    securityContext: {privileged: true}
EOF
)
if [[ "$err" == *"violates PodSecurity"*"privileged"* ]]; then
  ok "baseline namespace rejected a privileged pod"
else
  nok "privileged pod in a baseline namespace was not rejected: $err"
fi

# 4. The agent, as the tracer Job will run it (see the header).
cid=$(kubectl -n "$NS" get pod server -o jsonpath='{.status.containerStatuses[?(@.name=="httpd")].containerID}')
kubectl create ns "$NS_AGENT" >/dev/null
kubectl label ns "$NS_AGENT" pod-security.kubernetes.io/enforce=privileged >/dev/null
spec="{\"gadget\":\"drops\",\"duration_s\":2,\"proc_root\":\"/host/proc\",\"target\":{\"container_ids\":[\"$cid\"]}}"
kubectl -n "$NS_AGENT" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: agent}
spec:
  nodeName: $node
  restartPolicy: Never
  hostPID: false
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 5
  tolerations: [{operator: Exists}]
  containers:
  - name: agent
    image: $AGENT_IMAGE
    imagePullPolicy: IfNotPresent
    args: ["--spec", '$spec']
    resources:
      requests: {cpu: 250m, memory: 128Mi}
      limits: {cpu: 250m, memory: 128Mi}
    securityContext:
      runAsUser: 0
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities: {drop: [ALL], add: [BPF, PERFMON, SYS_PTRACE]}
      seccompProfile: {type: RuntimeDefault}
    volumeMounts:
    - {name: btf, mountPath: /sys/kernel/btf, readOnly: true}
    - {name: host-proc, mountPath: /host/proc, readOnly: true}
  volumes:
  - {name: btf, hostPath: {path: /sys/kernel/btf, type: Directory}}
  - {name: host-proc, hostPath: {path: /proc, type: Directory}}
EOF
if kubectl -n "$NS_AGENT" wait --for=jsonpath='{.status.phase}'=Succeeded pod/agent --timeout=60s >/dev/null; then
  out=$(kubectl -n "$NS_AGENT" logs agent)
  types=$(python3 -c '
import json, sys
recs = [json.loads(line) for line in sys.stdin if line.strip()]
types = [r["type"] for r in recs if r["type"] != "drop"]
pre = next(r for r in recs if r["type"] == "preflight")
print(" ".join(types), "containers=%d" % len(pre["target"]["containers"]))' <<< "$out" 2>&1 || true)
  if [[ "$types" == "preflight ready"*"summary end containers=1" ]]; then
    ok "agent image $AGENT_IMAGE traced the server pod with BPF+PERFMON+SYS_PTRACE ($types)"
  else
    nok "agent output: $types"
  fi
else
  nok "agent pod did not succeed: $(kubectl -n "$NS_AGENT" get pod agent --no-headers 2>&1)"
  kubectl -n "$NS_AGENT" logs agent 2>&1 | grep -v '"type":"drop"' | tail -5 || true
fi

echo "$pass passed, $fail failed"
((fail == 0))
