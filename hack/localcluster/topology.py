"""The addresses and names of every node of an N-node local cluster, in one place.

Node 1 is the machine itself (the host network namespace, bridge kbpf0, pod CIDR
10.88.0.0/16): a 1-node cluster is exactly what it always was. Nodes 2..N are simulated the
way kind does it, as real kubelets that share the host's kernel, each with:
  - its own network namespace `kbpf-nodeK`, joined to the host by a veth on the host bridge
    kbpfn0 (NODE_NET, host side NODE_NET.1, node K at NODE_NET.K): its node IP;
  - its own containerd, CNI bridge kbpf0 *inside* that netns and pod CIDR 10.244.K.0/24;
  - its own kubelet state, cgroup root /kbpf-nodeK and kube-proxy, all in that netns.
Routes: each node netns reaches every other node's pod CIDR through that node's IP, and the
host reaches worker pod CIDRs the same way. No node netns has a default route, so pod traffic
never leaves the machine.

    python3 -m hack.localcluster.topology nodes N HOST_NAME HOST_IP
        one line per node: index name netns ip pod_cidr gateway cgroup_root
    python3 -m hack.localcluster.topology routes N K HOST_IP
        "DST via GW" lines: the routes node K (0 = the host netns) needs
    python3 -m hack.localcluster.topology conflist N K HOST_IP IPAM_DIR   the CNI conflist of node K
"""

from __future__ import annotations

import ipaddress
import json
import sys
from dataclasses import dataclass

HOST_POD_CIDR = "10.88.0.0/16"
WORKER_POD_NET = "10.244.0.0/16"
NODE_NET = "10.89.0.0/24"
SERVICE_CIDR = "10.96.0.0/16"
DNS_SERVICE_IP = "10.96.0.10"
HOST_BRIDGE = "kbpfn0"
POD_BRIDGE = "kbpf0"
CNI_NETWORK = "kubectl-bpf-pods"
MAX_NODES = 200


@dataclass(frozen=True)
class Node:
    """One node: where its daemons run and which addresses it owns."""

    index: int
    name: str
    netns: str | None  # None: the host network namespace (node 1)
    ip: str
    pod_cidr: str
    cgroup_root: str

    @property
    def gateway(self) -> str:
        """The pod bridge's address: the pods' next hop for everything off their subnet."""
        return str(ipaddress.ip_network(self.pod_cidr)[1])


def host_side_ip() -> str:
    """The host's address on the node network: the API server as the simulated nodes see it."""
    return str(ipaddress.ip_network(NODE_NET)[1])


def nodes(count: int, host_name: str, host_ip: str) -> list[Node]:
    """The plan of a count-node cluster whose node 1 is this machine (host_name, host_ip)."""
    if not 1 <= count <= MAX_NODES:
        raise ValueError(f"--nodes must be 1..{MAX_NODES}, not {count}")
    net = ipaddress.ip_network(NODE_NET)
    workers = list(ipaddress.ip_network(WORKER_POD_NET).subnets(new_prefix=24))
    plan = [Node(1, host_name, None, host_ip, HOST_POD_CIDR, "/")]
    for k in range(2, count + 1):
        plan.append(Node(k, f"{host_name}-node{k}", f"kbpf-node{k}", str(net[k]),
                         str(workers[k]), f"/kbpf-node{k}"))
    return plan


def routes(plan: list[Node], index: int) -> list[tuple[str, str]]:
    """(destination, via) routes of node `index`'s netns (0: the host netns) to the pod CIDRs
    of the other nodes. Node 1 lives in the host netns, so index 1 is the same as 0."""
    out: list[tuple[str, str]] = []
    for n in plan:
        if n.index == index or (index in (0, 1) and n.netns is None):
            continue
        via = host_side_ip() if n.netns is None else n.ip
        out.append((n.pod_cidr, via))
    if index not in (0, 1):
        # the host's own address (the API server's advertise address, the `kubernetes`
        # Service's endpoint) through the host end of the node link
        out.append((f"{plan[0].ip}/32", host_side_ip()))
    return out


def conflist(plan: list[Node], index: int, data_dir: str) -> dict[str, object]:
    """The CNI config of node `index`: bridge + host-local on its pod CIDR. The pods' routes
    are the cluster's own ranges only (all pod CIDRs, Services, node IPs), never a default.
    data_dir: host-local's IP store, one per node (the nodes share one filesystem)."""
    node = plan[index - 1]
    dsts = [HOST_POD_CIDR, SERVICE_CIDR, f"{node.ip}/32"]
    if len(plan) > 1:
        dsts[1:1] = [WORKER_POD_NET, NODE_NET, f"{plan[0].ip}/32"]
    own = ipaddress.ip_network(node.pod_cidr)
    pod_routes = [{"dst": d, "gw": node.gateway} for d in dict.fromkeys(dsts)
                  if not ipaddress.ip_network(d).subnet_of(own)]  # type: ignore[arg-type]
    return {
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
        "plugins": [{
            "type": "bridge", "bridge": POD_BRIDGE,
            # isGateway=false: the plugin would switch on IP forwarding; `up` owns that
            "isGateway": False, "isDefaultGateway": False, "ipMasq": False,
            "hairpinMode": True, "promiscMode": False,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": node.pod_cidr, "gateway": node.gateway}]],
                "routes": pod_routes,
                "dataDir": data_dir,
            },
        }],
    }


def main(args: list[str]) -> int:
    """Command line (see the module docstring)."""
    try:
        if len(args) == 4 and args[0] == "nodes":
            for n in nodes(int(args[1]), args[2], args[3]):
                print(n.index, n.name, n.netns or "-", n.ip, n.pod_cidr, n.gateway, n.cgroup_root)
            return 0
        if len(args) == 4 and args[0] == "routes":
            plan = nodes(int(args[1]), "host", args[3])
            for dst, via in routes(plan, int(args[2])):
                print(dst, "via", via)
            return 0
        if len(args) == 5 and args[0] == "conflist":
            plan = nodes(int(args[1]), "host", args[3])
            print(json.dumps(conflist(plan, int(args[2]), args[4]), indent=2))
            return 0
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    print(__doc__.split("\n\n")[-1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
