"""RunSpec: what the client asks of the agent, passed as one JSON argument."""

from __future__ import annotations

import json

import pytest

from kubectl_bpf.gadgets.drops import params as drops_params
from kubectl_bpf.protocol import spec


def test_full_run_spec_round_trips_through_json() -> None:
    original = spec.RunSpec(
        gadget="drops",
        target=spec.TargetSpec(pids=(1, 42), netns_paths=("/run/netns/a",),
                               container_ids=("containerd://" + "a" * 64,), ips=("10.0.0.1", "fd00::1")),
        duration_s=2.5, count=10, stats_interval_s=5.0, proc_root="/host/proc",
        params={"rate_limit": 100, "aggregate": True})
    assert spec.RunSpec.from_json(original.to_json()) == original


def test_default_run_spec_round_trips_and_targets_the_whole_host() -> None:
    restored = spec.RunSpec.from_json(spec.RunSpec(gadget="drops").to_json())
    assert restored == spec.RunSpec(gadget="drops")
    assert restored.target.is_whole_host
    assert restored.proc_root == "/proc"


def test_run_spec_json_is_one_compact_line() -> None:
    text = spec.RunSpec(gadget="drops", target=spec.TargetSpec(ips=("10.0.0.1",))).to_json()
    assert "\n" not in text and " " not in text
    assert json.loads(text)["target"]["ips"] == ["10.0.0.1"]


def test_drops_params_survive_the_run_spec_round_trip() -> None:
    params = drops_params.DropsParams(reasons=("NO_SOCKET", "TC_INGRESS"), aggregate=True,
                                      rate_limit=50, ring_bytes=1 << 16, top_flows=5)
    run_spec = spec.RunSpec(gadget="drops", params=params.to_dict())
    restored = spec.RunSpec.from_json(run_spec.to_json())
    assert drops_params.DropsParams.from_dict(restored.params) == params


@pytest.mark.parametrize("field", ["pids", "netns_paths", "container_ids", "ips"])
def test_any_target_field_makes_the_target_specific(field: str) -> None:
    value = (1,) if field == "pids" else ("x",)
    assert not spec.TargetSpec(**{field: value}).is_whole_host


@pytest.mark.parametrize("text", [
    "", "not json", "[]", '"drops"', "null",
    '{"target": {}}',  # no gadget
    '{"gadget": "drops", "colour": "red"}',  # unknown field
    '{"gadget": "drops", "target": {"pods": ["a"]}}',  # unknown target field
    '{"gadget": "drops", "target": {"pids": 5}}',  # not a list
])
def test_invalid_spec_documents_raise_spec_error(text: str) -> None:
    with pytest.raises(spec.SpecError):
        spec.RunSpec.from_json(text)


def test_spec_error_is_a_value_error() -> None:
    assert issubclass(spec.SpecError, ValueError)


@pytest.mark.parametrize("target", ['"10.0.0.1"', "[1]", '{"pids": 3}'])
def test_target_that_is_not_an_object_of_lists_is_a_spec_error(target: str) -> None:
    with pytest.raises(spec.SpecError):
        spec.RunSpec.from_json('{"gadget": "drops", "target": ' + target + "}")
