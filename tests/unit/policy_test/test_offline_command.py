"""``kubectl-bpf policy-test --offline``: output shapes, port choices and one-line errors."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest
from click.testing import CliRunner, Result

from kubectl_bpf.gadgets.policy_test import command, schema
from kubectl_bpf.protocol import exitcodes

RECORD_KEYS = set(schema.PolicyTestResult.__annotations__)


def run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(command.policy_test, list(args), input=stdin)


def results(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == exitcodes.OK, result.stderr
    document = json.loads(result.stdout)
    assert list(document) == ["results"]
    records: list[dict[str, Any]] = document["results"]
    for record in records:
        assert set(record) == RECORD_KEYS
    return records


def one_line_error(result: Result, exit_code: int) -> str:
    assert result.exit_code == exit_code, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def test_json_output_is_one_object_with_a_record_per_pair_and_port(named_ports_file: pathlib.Path) -> None:
    records = results(run("--offline", str(named_ports_file), "--port", "80", "--port", "53/udp",
                          "-o", "json"))
    pods = 9
    assert len(records) == 2 * pods * pods
    assert {(record["port"], record["protocol"]) for record in records} == {(80, "TCP"), (53, "UDP")}
    first_port = [record for record in records if record["port"] == 80]
    assert [(record["from"], record["to"]) for record in first_port][:2] == [("e/client", "e/client"),
                                                                             ("e/client", "e/web1")]
    assert {"from": "x/client", "to": "x/web1", "port": 80, "protocol": "TCP", "expected": "allow",
            "because": ["egress: no policy isolates the source", "x/web-http-from-client ingress[0]"],
            "cni_dependent": False, "named_port": "http"} in records


def test_named_port_request_reports_the_number_it_resolved_to_per_destination(
        named_ports_file: pathlib.Path) -> None:
    ordered = results(run("--offline", str(named_ports_file), "--port", "http", "-o", "json"))
    keys = ["e/client", "e/web1", "e/web2", "x/client", "x/other", "x/web1", "x/web2", "x/web3", "x/web4"]
    assert [(record["from"], record["to"]) for record in ordered] == [(s, d) for s in keys for d in keys]
    records = {(record["from"], record["to"]): record for record in ordered}
    assert records["x/client", "x/web2"] | {"because": []} == {
        "from": "x/client", "to": "x/web2", "port": 8080, "protocol": "TCP", "expected": "allow",
        "because": [], "cni_dependent": False, "named_port": "http"}
    assert records["x/client", "x/web3"]["expected"] == "undefined"
    assert (records["x/client", "x/web3"]["port"], records["x/client", "x/web3"]["protocol"]) == (None, None)
    assert records["x/web3", "x/web3"]["because"] == [
        "a pod can always reach itself: NetworkPolicy cannot block a pod's traffic to itself"]


def test_default_ports_are_container_ports_plus_ports_of_rules_that_can_apply(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text("""
kind: Pod
metadata: {name: web, namespace: x, labels: {app: web}}
spec: {containers: [{name: web, ports: [{name: http, containerPort: 8080}]}]}
---
kind: Pod
metadata: {name: bare, namespace: x}
---
kind: Pod
metadata: {name: other, namespace: y}
---
kind: NetworkPolicy
metadata: {name: web, namespace: x}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{ports: [{port: 443}, {port: 9000, endPort: 9100, protocol: UDP}, {port: http}]}]
""", encoding="utf-8")
    ports: dict[str, set[tuple[int | None, str | None]]] = {}
    for record in results(run("--offline", str(path), "-o", "json")):
        ports.setdefault(record["to"], set()).add((record["port"], record["protocol"]))
    assert ports == {"x/web": {(8080, "TCP"), (443, "TCP"), (9000, "UDP")},
                     "x/bare": {(None, "TCP")}, "y/other": {(None, "TCP")}}


def test_table_output_is_a_truth_table_per_port_with_a_legend(named_ports_file: pathlib.Path) -> None:
    result = run("--offline", str(named_ports_file), "--port", "80", "--port", "8080", "-n", "x")
    assert result.exit_code == exitcodes.OK, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "port 80/TCP"
    assert lines[1].split() == ["FROM", "\\", "TO",
                                "x/client", "x/other", "x/web1", "x/web2", "x/web3", "x/web4"]
    assert lines[2].split() == ["x/client", "✓", "✓", "✓", "✗", "✗", "✗"]
    assert "port 8080/TCP" in lines
    assert lines[lines.index("port 8080/TCP") + 2].split() == ["x/client", "✓", "✓", "✗", "✓", "✗", "✗"]
    assert lines[-1] == schema.LEGEND


def test_namespace_option_keeps_that_namespace_on_both_sides(named_ports_file: pathlib.Path) -> None:
    records = results(run("--offline", str(named_ports_file), "--port", "80", "-n", "e", "-o", "json"))
    assert {(record["from"], record["to"]) for record in records} == {
        (source, destination) for source in ("e/client", "e/web1", "e/web2")
        for destination in ("e/client", "e/web1", "e/web2")}


def test_unknown_namespace_is_not_found(named_ports_file: pathlib.Path) -> None:
    line = one_line_error(run("--offline", str(named_ports_file), "-n", "nope"), exitcodes.NOT_FOUND)
    assert line == "Error: namespace nope is not in the input"


@pytest.mark.parametrize("port", ["80/XYZ", "0", "70000", "Http", "80/", "a_b", "/TCP", "toolongportname1",
                                  "80-90", "80:90", "80,81", "-1", "abc"])
def test_bad_port_is_a_one_line_usage_error(named_ports_file: pathlib.Path, port: str) -> None:
    line = one_line_error(run("--offline", str(named_ports_file), "--port", port), exitcodes.USAGE)
    assert line.startswith(f"Error: bad port {port!r}")


def test_a_port_name_no_destination_declares_is_a_typo_not_a_result(named_ports_file: pathlib.Path) -> None:
    line = one_line_error(run("--offline", str(named_ports_file), "--port", "htp"), exitcodes.USAGE)
    assert line.startswith("Error: bad port 'htp': no destination declares a container port of that name")
    assert "http/TCP" in line  # what the destinations do declare


def test_missing_file_is_a_one_line_usage_error(tmp_path: pathlib.Path) -> None:
    line = one_line_error(run("--offline", str(tmp_path / "nope.yaml")), exitcodes.USAGE)
    assert line == f"Error: cannot read {tmp_path / 'nope.yaml'}: No such file or directory"


def test_unreadable_yaml_is_a_one_line_usage_error_naming_the_place(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("kind: Pod\nmetadata: {name: a\n", encoding="utf-8")
    line = one_line_error(run("--offline", str(path)), exitcodes.USAGE)
    assert line.startswith(f"Error: {path}: not valid YAML: ") and "line" in line


def test_invalid_object_is_a_one_line_usage_error_naming_the_field(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("kind: NetworkPolicy\nmetadata: {name: p, namespace: x}\n"
                    "spec: {ingress: [{ports: [{port: 80, protocol: tcp}]}]}\n", encoding="utf-8")
    line = one_line_error(run("--offline", str(path)), exitcodes.USAGE)
    assert line == (f"Error: {path}: NetworkPolicy x/p: spec.ingress[0].ports[0].protocol: "
                    "'tcp' is not one of TCP, UDP, SCTP")


def test_dash_reads_the_export_from_stdin() -> None:
    stdin = "kind: Pod\nmetadata: {name: a, namespace: x}\n---\nkind: Pod\nmetadata: {name: b, namespace: x}"
    records = results(run("--offline", "-", "--port", "80", "-o", "json", stdin=stdin))
    assert [(record["from"], record["to"], record["expected"]) for record in records] == [
        ("x/a", "x/a", "allow"), ("x/a", "x/b", "allow"),
        ("x/b", "x/a", "allow"), ("x/b", "x/b", "allow")]


def test_warnings_go_to_stderr_and_finished_pods_are_left_out() -> None:
    stdin = """
kind: List
items:
  - {kind: Namespace, metadata: {name: x}}
  - {kind: Pod, metadata: {name: a, namespace: x}, status: {phase: Running}}
  - {kind: Pod, metadata: {name: done, namespace: x}, status: {phase: Succeeded}}
  - {kind: Service, metadata: {name: s, namespace: x}}
"""
    result = run("--offline", "-", "--port", "80", "-o", "json", stdin=stdin)
    assert [record["to"] for record in results(result)] == ["x/a"]
    assert result.stderr.splitlines() == ["warning: skipped 1 object(s) of kind Service: not evaluated",
                                          "warning: skipped 1 finished pod(s) (Succeeded/Failed)"]


def test_no_pods_gives_empty_results_not_an_error() -> None:
    assert results(run("--offline", "-", "-o", "json", stdin="")) == []
    table = run("--offline", "-", stdin="")
    assert (table.exit_code, table.stdout, table.stderr) == (exitcodes.OK, "", "no pods to evaluate\n")
