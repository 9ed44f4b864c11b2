"""policy-test's verdict exit codes, on top of the shared ones in ``protocol.exitcodes``.

A failed check is not a failed tool: these codes say what the live probes found, so
a runbook can branch on them. They start at 10 to stay clear of the shared codes
(0-6, 130). When one run finds several kinds of problem, the lowest code wins: an
unexpected deny (something is broken) outranks an unexpected allow (something is
not enforced), which outranks a mismatch between declared and computed intent.
The offline mode only computes expectations, so it never exits with these.
"""

UNEXPECTED_DENY = 10  # policy allows the flow, but it was dropped (the evidence says where)
UNEXPECTED_ALLOW = 11  # policy denies the flow, but it got through (policy not enforced)
INTENT_MISMATCH = 12  # a declared expectation differs from what the policies compute
