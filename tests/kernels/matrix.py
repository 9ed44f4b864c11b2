"""The kernels ``make test-kernels`` boots: the one place to add a row."""

from __future__ import annotations

import dataclasses

MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
# The kernel package's metapackage; apt resolves it to linux-image-<release>-cloud-amd64.
META_PACKAGE = "linux-image-cloud-amd64"


@dataclasses.dataclass(frozen=True)
class Kernel:
    """One boot of the matrix: a Debian suite's cloud kernel plus extra command-line words."""

    name: str  # the row label: "6.12+lockdown"
    suite: str
    cmdline: str = ""


MATRIX: tuple[Kernel, ...] = (
    Kernel("5.10", "bullseye"),
    Kernel("6.1", "bookworm"),
    Kernel("6.12", "trixie"),
    Kernel("6.12+lockdown", "trixie", "lockdown=confidentiality"),
)


def select(names: str) -> tuple[Kernel, ...]:
    """The matrix rows named in a comma-separated list ("all" or "" for every row)."""
    if names in ("", "all"):
        return MATRIX
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    by_name = {k.name: k for k in MATRIX}
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        raise ValueError(f"unknown kernel(s) {', '.join(unknown)}; known: {', '.join(by_name)}")
    return tuple(by_name[n] for n in wanted)


def _ids(module: str, *tests: str) -> tuple[str, ...]:
    return tuple(f"tests/agent/{module}.py" + (f"::{t}" if t else "") for t in tests or ("",))


# What each guest runs by default: the whole tier (62 tests) takes ~15 min per kernel under TCG on
# a shared machine, four boots would not fit CI's budget. This subset still loads every program
# variant (the drops fallbacks, tcp, dns, probe), attaches every hook and exercises each filter
# (netns, IP through a router, pid, container cgroup, unrelated netns, ports) and every reason path
# (netfilter, no-socket TCP/UDP, egress, ICMP, IPv6); the host runs the whole tier natively, and
# `make test-kernels TIER=all` runs it in the guests. A name that no longer exists fails the run.
SUBSET: tuple[str, ...] = (
    *_ids("test_drops_reported_with_reason_and_endpoints"),
    *_ids("test_lockdown_without_headers_degrades"),
    *_ids("test_target_filter_in_kernel", "test_drop_in_router_namespace_is_reported_by_target_ip",
          "test_drops_in_an_unrelated_namespace_are_not_reported",
          "test_pid_target_traces_that_process_netns",
          "test_container_id_with_any_runtime_prefix_resolves_by_cgroup_scan[containerd://]"),
    *_ids("test_exact_accounting", "test_send_n_see_n", "test_aggregate_counts_flows_exactly_without_events"),
    *_ids("test_libbpf_pitfalls_in_kernel", "test_refused_hook_falls_back_to_the_next_variant",
          "test_all_hooks_refused_is_one_unsupported_error_naming_each"),
    *_ids("test_session_lifecycle", "test_duration_ends_the_session_by_itself"),
    *_ids("test_probe_outcomes_carry_kernel_evidence", "test_tcp_to_a_listening_server_is_connected",
          "test_tcp_to_a_closed_port_is_refused_and_arrival_is_proven",
          "test_udp_to_a_closed_port_is_delivered_with_no_socket_in_the_destination",
          "test_nftables_drop_in_the_destination_is_a_timeout_explained_by_netfilter_drop"),
    *_ids("test_tcp_failures_carry_reason_and_evidence", "test_connect_to_a_closed_port_is_one_refused_line",
          "test_dropped_syns_time_out_with_the_netfilter_drop_as_evidence",
          "test_linger_zero_close_is_reset_sent_and_received_with_reasons",
          "test_every_hook_is_attached_or_reported_missing"),
    *_ids("test_dns_lookups_seen_from_inside_the_pod",
          "test_every_lookup_is_reported_with_rcode_answers_and_chain",
          "test_ipv6_server_and_malformed_packets_are_counted_not_fatal"),
)
WHOLE_TIER: tuple[str, ...] = ("tests/agent",)
