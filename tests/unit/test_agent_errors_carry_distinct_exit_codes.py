"""Each way the agent stops early has its own documented exit code."""

from __future__ import annotations

import pytest

from kubectl_bpf.agent import errors
from kubectl_bpf.protocol import exitcodes

EXPECTED = {
    errors.AgentError: exitcodes.FAILURE,
    errors.BadInputError: exitcodes.USAGE,
    errors.TargetNotFoundError: exitcodes.NOT_FOUND,
    errors.PrivilegeError: exitcodes.PERMISSION,
    errors.UnsupportedError: exitcodes.UNSUPPORTED,
}


@pytest.mark.parametrize(("error", "code"), EXPECTED.items(), ids=lambda v: getattr(v, "__name__", v))
def test_error_class_exits_with_its_documented_code(error: type[errors.AgentError], code: int) -> None:
    assert error("x").exit_code == code


def test_exit_codes_are_distinct_and_none_means_success() -> None:
    codes = list(EXPECTED.values())
    assert len(set(codes)) == len(codes)
    assert exitcodes.OK not in codes


def test_every_agent_error_is_caught_as_agent_error() -> None:
    for error in EXPECTED:
        assert issubclass(error, errors.AgentError)


def test_exit_codes_fit_a_process_status_and_interrupt_is_130() -> None:
    for name in ("OK", "FAILURE", "USAGE", "NOT_FOUND", "PERMISSION", "UNSUPPORTED", "TIMEOUT"):
        assert 0 <= getattr(exitcodes, name) < 128
    assert exitcodes.INTERRUPTED == 128 + 2  # SIGINT
