#!/usr/bin/env bash
# Smoke test of the local cluster (hack/local-cluster up must have run):
#  1. node Ready without taints;
#  2. a busybox server pod (httpd + nc) and a client pod that reaches it by pod IP;
#  3. a namespace labelled pod-security.kubernetes.io/enforce=baseline rejects a privileged pod;
#  4. cleans up after itself.
# Traffic stays on the pod network of this machine. Exit 0 = all passed.
set -euo pipefail
HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
eval "$("$HACK_DIR/local-cluster" env)"
NS=kbpf-smoke-$$
NS_PSA=kbpf-smoke-psa-$$
IMAGE=localhost/kubectl-bpf/busybox:1
pass=0 fail=0
ok() { echo "ok   - $*"; pass=$((pass + 1)); }
nok() { echo "FAIL - $*"; fail=$((fail + 1)); }
cleanup() { kubectl delete ns "$NS" "$NS_PSA" --wait=false >/dev/null 2>&1 || true; }
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

echo "$pass passed, $fail failed"
((fail == 0))
