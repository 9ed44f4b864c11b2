"""policy-test reads pods as raw JSON, drops as client models: both must
name the same node, IPs and running containers."""

from __future__ import annotations

from kubectl_bpf.kube import targets
from tests.unit.kube.conftest import model

RUNNING = {"running": {"startedAt": "2026-11-24T21:00:00Z"}}


def status(name: str, container_id: str, state: dict[str, object]) -> dict[str, object]:
    return {"name": name, "image": "i", "imageID": "", "ready": True, "restartCount": 0,
            "containerID": container_id, "state": state}


POD = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "web", "namespace": "shop", "uid": "u-1"},
    "spec": {"nodeName": "n1", "containers": [{"name": "app"}]},
    "status": {
        "phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}],
        "initContainerStatuses": [status("sidecar", "cri-o://" + "A" * 64, RUNNING)],
        "containerStatuses": [status("app", "containerd://" + "b" * 64, RUNNING),
                              status("crashing", "containerd://" + "c" * 64,
                                     {"waiting": {"reason": "CrashLoopBackOff"}})]},
}


def test_raw_json_and_model_pods_resolve_alike() -> None:
    from_json = targets.pod_target_from_json(POD)
    assert from_json == targets._pod_target(model("V1Pod", POD))
    assert from_json.container_ids == ("a" * 64, "b" * 64)
    assert from_json.ips == ("10.0.0.5", "fd00::5")
    assert (from_json.node, from_json.uid, from_json.phase) == ("n1", "u-1", "Running")
