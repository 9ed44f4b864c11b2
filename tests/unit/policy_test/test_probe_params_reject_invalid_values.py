"""ProbeParams validate the same way on the client and on the agent, and survive
the trip through RunSpec JSON."""

from __future__ import annotations

from typing import Any

import pytest

from kubectl_bpf.agent import __main__ as agent_main
from kubectl_bpf.agent import errors
from kubectl_bpf.gadgets.policy_test import probe_params
from kubectl_bpf.protocol import spec

CONTAINER = "containerd://" + "ab" * 32


def probe(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"id": "a-to-b", "src": {"container_id": CONTAINER}, "dst_ip": "10.0.0.2",
                              "port": 8080}
    fields.update(overrides)
    return fields


def params(*probes: dict[str, Any], **overrides: Any) -> probe_params.ProbeParams:
    return probe_params.ProbeParams.from_dict({"probes": list(probes) or [probe()], **overrides})


def test_defaults_are_tcp_three_attempts_two_seconds_and_the_reserved_range() -> None:
    loaded = params()
    (only,) = loaded.probes
    assert (only.protocol, only.attempts, only.timeout_s) == ("TCP", 3, 2.0)
    assert (loaded.sport_min, loaded.sport_max, loaded.evidence_grace_s) == (42000, 42999, 0.5)
    assert loaded.total_attempts == 3


def test_container_ids_lose_their_runtime_prefix() -> None:
    assert params().probes[0].src.container_id == "ab" * 32


def test_protocol_is_case_insensitive_and_addresses_are_normalized() -> None:
    (only,) = params(probe(protocol="udp", dst_ip="FD00:0:0::2")).probes
    assert (only.protocol, only.dst_ip, only.family) == ("UDP", "fd00::2", 6)


@pytest.mark.parametrize("src", [{}, {"pid": 1, "netns_path": "/run/netns/x"},
                                 {"container_id": CONTAINER, "pid": 4}])
def test_a_source_is_exactly_one_of_container_pid_or_netns(src: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        params(probe(src=src))


@pytest.mark.parametrize("src, message", [
    ({"container_id": "nothex"}, "malformed container ID"),
    ({"pid": 0}, "invalid source pid"),
    ({"pid": True}, "must be an integer"),
    ({"netns_path": "run/netns/x"}, "absolute"),
])
def test_malformed_sources_are_refused(src: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        params(probe(src=src))


@pytest.mark.parametrize("overrides, message", [
    ({"id": ""}, "probe id"),
    ({"id": "tab\there"}, "probe id"),
    ({"id": "x" * 129}, "probe id"),
    ({"dst_ip": "10.0.0.300"}, "malformed dst_ip"),
    ({"dst_ip": "pod-b"}, "malformed dst_ip"),
    ({"port": 0}, "not in 1-65535"),
    ({"port": 65536}, "not in 1-65535"),
    ({"port": "80"}, "must be an integer"),
    ({"port": 80.0}, "must be an integer"),
    ({"protocol": "SCTP"}, "TCP or UDP"),
    ({"attempts": 0}, "attempts"),
    ({"attempts": 101}, "attempts"),
    ({"timeout_s": 0}, "timeout_s"),
    ({"timeout_s": 61}, "timeout_s"),
    ({"timeout_s": float("nan")}, "finite"),
])
def test_invalid_probe_fields_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        params(probe(**overrides))


@pytest.mark.parametrize("overrides, message", [
    ({"sport_min": 1023}, "1024 <= min"),
    ({"sport_min": 43000, "sport_max": 42999}, "1024 <= min"),
    ({"sport_max": 65536}, "1024 <= min"),
    ({"sport_min": 42000, "sport_max": 42010, "max_in_flight": 6}, "too small"),
    ({"max_in_flight": 0}, "max_in_flight"),
    ({"rate_per_s": 0}, "rate_per_s"),
    ({"rate_per_s": -5}, "rate_per_s"),
    ({"evidence_grace_s": -0.1}, "evidence_grace_s"),
    ({"evidence_grace_s": 11}, "evidence_grace_s"),
])
def test_invalid_run_settings_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        params(**overrides)


def test_a_run_needs_probes_with_distinct_ids() -> None:
    with pytest.raises(ValueError, match="at least one probe"):
        probe_params.ProbeParams(probes=())
    with pytest.raises(ValueError, match="duplicate probe ids: twice"):
        params(probe(id="twice"), probe(id="twice", port=81))


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(TypeError):
        params(probe(colour="red"))
    with pytest.raises(TypeError):
        params(probe(src={"pid": 3, "node": "n1"}))
    with pytest.raises(TypeError):
        params(colour="red")


def test_params_round_trip_through_a_run_spec() -> None:
    loaded = params(probe(), probe(id="udp", protocol="UDP", src={"pid": 42}, attempts=5),
                    probe(id="v6", dst_ip="fd00::2", src={"netns_path": "/run/netns/a"}),
                    sport_min=43000, sport_max=43999, rate_per_s=20, max_in_flight=8)
    run_spec = spec.RunSpec(gadget="probe", count=loaded.total_attempts, params=loaded.to_dict())
    again = spec.RunSpec.from_json(run_spec.to_json())
    assert probe_params.ProbeParams.from_dict(again.params) == loaded
    assert again.params["probes"][1]["src"] == {"pid": 42}  # unset source kinds are left out


def test_the_agent_refuses_a_run_whose_count_is_not_the_number_of_attempts() -> None:
    document = params(probe(attempts=2), probe(id="b", attempts=3)).to_dict()
    for count in (None, 4, 6):
        with pytest.raises(errors.BadInputError, match="set count to 5"):
            agent_main.create_gadget(spec.RunSpec(gadget="probe", count=count, params=document))
    gadget = agent_main.create_gadget(spec.RunSpec(gadget="probe", count=5, params=document))
    assert gadget.name == "probe" and gadget.event_type == "probe"


def test_the_agent_reports_invalid_params_as_bad_input() -> None:
    with pytest.raises(errors.BadInputError, match=r"invalid probe parameters: .*TCP or UDP"):
        agent_main.create_gadget(spec.RunSpec(gadget="probe", count=3,
                                              params={"probes": [probe(protocol="ICMP")]}))
