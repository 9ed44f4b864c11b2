"""policy-test: which pods NetworkPolicies let talk to which, and (later) what the cluster does.

``inventory`` turns exported YAML into typed namespaces, pods and policies;
``evaluate`` is the pure NetworkPolicy v1 evaluator; ``queries`` decides which
(source, destination, port) cells to evaluate; ``command`` is the click command.
Nothing here talks to a cluster: the live probes of issue 5 part 2 will.
"""
