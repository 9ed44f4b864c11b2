"""Logic of the local cluster tooling (hack/local-cluster, hack/policy-enforcer).

The shell entry points stay thin; what needs care (process identity, node topology) lives
here, where it has unit tests (tests/unit/localcluster/). Standard library only: it runs
before anything is installed.
"""
