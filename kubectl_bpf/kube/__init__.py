"""Everything that talks to the Kubernetes API, and nothing else does.

Logic elsewhere takes and returns plain data; this package turns it into API
calls and API failures into KubeError (errors.py), so tests fake one
boundary. Never imports click or the agent.
"""
