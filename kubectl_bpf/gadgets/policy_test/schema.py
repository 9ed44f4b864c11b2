"""The record policy-test prints for each (source, destination, port): its one JSON contract.

``-o json`` prints ``{"results": [PolicyTestResult, ...]}``. The live mode (issue 5
part 2) will add observation fields beside these, never rename them. Pure
declarations: no I/O, no click.
"""

from __future__ import annotations

from typing import Literal, TypedDict

Expected = Literal["allow", "deny", "undefined"]

PolicyTestResult = TypedDict("PolicyTestResult", {
    "from": str,  # "namespace/pod"
    "to": str,  # "namespace/pod"
    # The destination port; null with a protocol for "any port no policy names", null with
    # a null protocol when a requested named port does not exist on the destination.
    "port": int | None,
    "protocol": str | None,  # "TCP", "UDP" or "SCTP"
    "expected": Expected,
    "because": list[str],  # deciding rules ("ns/policy ingress[0]") or the isolating side
    "cni_dependent": bool,  # an allow that rests only on an ipBlock matching a pod IP
    "named_port": str | None,  # the destination's name for this port, if it declares one
})

# Table cells: one symbol per expectation; an allow that depends on the CNI gets a star.
SYMBOLS: dict[Expected, str] = {"allow": "✓", "deny": "✗", "undefined": "?"}
CNI_DEPENDENT_MARK = "*"
LEGEND = ("✓ allow   ✗ deny   ? undefined (self, hostNetwork, or no such named port)   "
          "* CNI-dependent (allowed only by an ipBlock)")
