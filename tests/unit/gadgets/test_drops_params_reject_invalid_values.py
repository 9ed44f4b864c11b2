"""DropsParams validates the same way on the client and on the agent."""

from __future__ import annotations

import pytest

from kubectl_bpf.gadgets.drops import params as drops_params


def test_defaults_are_valid_and_unfiltered() -> None:
    params = drops_params.DropsParams()
    assert params.reasons == () and not params.aggregate and params.rate_limit == 0
    assert params.ring_bytes == 2 << 20


@pytest.mark.parametrize("ring_bytes", [4096, 8192, 1 << 20, 1 << 30])
def test_power_of_two_ring_sizes_from_a_page_are_accepted(ring_bytes: int) -> None:
    assert drops_params.DropsParams(ring_bytes=ring_bytes).ring_bytes == ring_bytes


@pytest.mark.parametrize("ring_bytes", [0, -4096, 2048, 4095, 5 * 1024, 12288, (1 << 20) + 4096])
def test_other_ring_sizes_are_refused(ring_bytes: int) -> None:
    with pytest.raises(ValueError, match="power of two"):
        drops_params.DropsParams(ring_bytes=ring_bytes)


def test_negative_rate_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="rate limit"):
        drops_params.DropsParams(rate_limit=-1)


@pytest.mark.parametrize("top_flows", [0, -3])
def test_top_flows_below_one_is_refused(top_flows: int) -> None:
    with pytest.raises(ValueError, match="top flows"):
        drops_params.DropsParams(top_flows=top_flows)


def test_params_round_trip_through_a_dict() -> None:
    params = drops_params.DropsParams(reasons=("NO_SOCKET",), aggregate=True, rate_limit=10,
                                      ring_bytes=1 << 16, wakeup_bytes=4096, top_flows=3)
    assert drops_params.DropsParams.from_dict(params.to_dict()) == params


def test_reasons_from_json_lists_become_a_tuple() -> None:
    params = drops_params.DropsParams.from_dict({"reasons": ["NO_SOCKET", "TC_INGRESS"]})
    assert params.reasons == ("NO_SOCKET", "TC_INGRESS")
    hash(params)  # frozen and hashable, as a tuple keeps it


def test_from_dict_validates_too() -> None:
    with pytest.raises(ValueError):
        drops_params.DropsParams.from_dict({"ring_bytes": 5000})


def test_unknown_parameter_is_refused() -> None:
    with pytest.raises(TypeError):
        drops_params.DropsParams.from_dict({"colour": "red"})
