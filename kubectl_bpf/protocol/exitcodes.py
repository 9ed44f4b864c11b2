"""Exit codes shared by the agent and the CLI, documented in the README.

The agent's code is part of its contract: the client reads it from the tracer
container's termination state and maps it to the same meaning. A failed check
(policy-test found a problem) and a failed tool get different codes, so a
runbook can branch on them.
"""

OK = 0
FAILURE = 1  # the tool failed in a way none of the codes below describes
USAGE = 2  # bad flags or input (click's UsageError uses 2 as well)
NOT_FOUND = 3  # the target (pod, pid, netns, container) does not exist
PERMISSION = 4  # missing privileges, RBAC or admission (PodSecurity) refused
UNSUPPORTED = 5  # the kernel or environment lacks what is needed (BTF, tracepoint, libbpf)
TIMEOUT = 6  # a start or run deadline passed
TARGET_STATE = 7  # the target exists but cannot be traced (not Running, no IP, Windows node)
# The client cannot reach or trust the API server: refused, no answer in time, TLS
# failure, credentials rejected (401), or a kubeconfig that cannot be read at all.
# Nothing was created. Client-side only: the agent never talks to the API server.
UNREACHABLE = 8
# The session was stopped from outside this client: someone deleted its tracer Job
# (kubectl delete job, kubectl bpf gc --all from another shell) or its pod (kubectl
# delete pod, a drain). The records up to the stop are complete; the run is not.
STOPPED_OUTSIDE = 9
INTERRUPTED = 130  # forced stop by a second Ctrl-C (128 + SIGINT)
