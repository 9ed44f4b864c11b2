"""The contract between the agent and the client: JSON-lines records and exit codes.

Standard library only and no I/O, because both halves import it: the agent
in the tracer pod (or ``--local``), and the kubectl plugin that reads the
agent's output from pod logs.
"""

# Bumped when a record field is renamed, removed or changes meaning; adding a
# field does not bump it. The client refuses a stream of another version.
PROTOCOL_VERSION = 1
