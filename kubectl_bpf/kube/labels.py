"""Names, labels and annotations of every object kubectl-bpf creates, in one
place, so ``list``, ``gc``, the session and the manifests select the same way.

Labels are for selecting (short, sanitized to label syntax); annotations are
for people auditing a node (full user, host, command line and targets). Pure:
no API calls.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
import secrets
from collections.abc import Sequence
from typing import Optional

MANAGED_BY_KEY = "app.kubernetes.io/managed-by"
MANAGED_BY = "kubectl-bpf"

# Labels (values sanitized by label_value).
RUN_ID = "kubectl-bpf/run-id"
GADGET = "kubectl-bpf/gadget"
NODE = "kubectl-bpf/node"
TARGET = "kubectl-bpf/target"
USER = "kubectl-bpf/user"  # also an annotation, unsanitized
HOST = "kubectl-bpf/host"  # also an annotation, unsanitized

# Annotations (any text).
USER_ANNOTATION = USER
HOST_ANNOTATION = HOST
COMMAND_ANNOTATION = "kubectl-bpf/command"
TARGETS_ANNOTATION = "kubectl-bpf/targets"  # JSON list of "ns/pod" or "node/NAME"
CREATED_AT_ANNOTATION = "kubectl-bpf/created-at"
# The agent's liveness lease (agent/lease.py): must equal RunSpec.lease_key's
# default, which a unit test checks; the pod starts with "0".
LEASE_ANNOTATION = "kubectl-bpf/lease"
LEASE_INITIAL = "0"

# Set by the Job controller on the pods it creates (and kept for old clusters).
JOB_NAME_LABEL = "job-name"

LABEL_VALUE_MAX = 63  # Kubernetes label values and DNS-1123 labels
NAME_MAX = 63  # Job names: the controller copies them into a label value
HASH_CHARS = 8  # 32 bits: a collision needs ~65k truncated names sharing a prefix
RUN_ID_CHARS = 8  # 36**8 ~ 2.8e12: unique across any realistic number of sessions
_RUN_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_NOT_LABEL_CHAR = re.compile(r"[^A-Za-z0-9_.-]+")
_NOT_NAME_CHAR = re.compile(r"[^a-z0-9-]+")
_EDGE = re.compile(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$")


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_CHARS]


def label_value(text: str, *, max_len: int = LABEL_VALUE_MAX) -> str:
    """Any text as a valid label value: invalid characters become ``-``,
    edges are alphanumeric, and text that does not fit keeps a prefix plus a
    hash of the whole, so two long names stay distinct."""
    value = _EDGE.sub("", _NOT_LABEL_CHAR.sub("-", text))
    if not value and text:
        return short_hash(text)  # nothing usable left: still distinct per input
    if len(value) <= max_len:
        return value
    prefix = _EDGE.sub("", value[:max_len - HASH_CHARS - 1])
    return f"{prefix}-{short_hash(text)}" if prefix else short_hash(text)


def target_value(targets: Sequence[str]) -> str:
    """The target label of one Job: ``ns.pod`` for one pod, ``node.NAME``
    for a node, ``ns.pod.and-N-more`` for several (the annotation lists all)."""
    if not targets:
        return ""
    suffix = f".and-{len(targets) - 1}-more" if len(targets) > 1 else ""
    return label_value(targets[0].replace("/", "."), max_len=LABEL_VALUE_MAX - len(suffix)) + suffix


def new_run_id() -> str:
    """A fresh session id: lowercase alphanumerics starting with a letter, so
    it is valid as a label value and inside any DNS name."""
    return secrets.choice(_RUN_ID_ALPHABET[:26]) + "".join(
        secrets.choice(_RUN_ID_ALPHABET) for _ in range(RUN_ID_CHARS - 1))


def job_name(gadget: str, run_id: str, node: str) -> str:
    """``kubectl-bpf-<gadget>-<run-id>-<node-hash>``, at most 63 characters.

    The node part is a hash because node names may be 253 characters of DNS
    subdomain; the node itself is in the ``kubectl-bpf/node`` label."""
    gadget_part = _NOT_NAME_CHAR.sub("-", gadget.lower().replace("_", "-")).strip("-") or "gadget"
    run_part = _NOT_NAME_CHAR.sub("-", run_id.lower()).strip("-")
    tail = f"-{run_part}-{short_hash(node)}"
    room = NAME_MAX - len("kubectl-bpf-") - len(tail)
    return f"kubectl-bpf-{gadget_part[:max(room, 1)].strip('-')}{tail}"[:NAME_MAX]


def common_labels(*, gadget: str, run_id: str) -> dict[str, str]:
    """What every object of one session carries."""
    return {MANAGED_BY_KEY: MANAGED_BY, RUN_ID: label_value(run_id), GADGET: label_value(gadget)}


def job_labels(*, gadget: str, run_id: str, node: str, targets: Sequence[str], user: str,
               host: str) -> dict[str, str]:
    """Labels of a tracer Job and its pod template."""
    result = common_labels(gadget=gadget, run_id=run_id)
    result[NODE] = label_value(node)
    result[TARGET] = target_value(targets)
    if user:
        result[USER] = label_value(user)
    if host:
        result[HOST] = label_value(host)
    return result


def job_annotations(*, targets: Sequence[str], user: str, host: str, command: str,
                    created_at: str) -> dict[str, str]:
    """Audit annotations: the full, unsanitized facts a label cannot hold."""
    return {
        USER_ANNOTATION: user,
        HOST_ANNOTATION: host,
        COMMAND_ANNOTATION: command,
        TARGETS_ANNOTATION: json.dumps(list(targets), separators=(",", ":")),
        CREATED_AT_ANNOTATION: created_at,
    }


def parse_targets(annotation: Optional[str]) -> tuple[str, ...]:
    """The targets annotation back as a tuple; () when absent or malformed
    (objects made by hand or by another version)."""
    if not annotation:
        return ()
    try:
        value = json.loads(annotation)
    except ValueError:
        return ()
    if not isinstance(value, list):
        return ()
    return tuple(str(item) for item in value)


def managed_selector() -> str:
    """Every object kubectl-bpf created, whatever the session."""
    return f"{MANAGED_BY_KEY}={MANAGED_BY}"


def run_selector(run_id: str) -> str:
    """The objects of one session (every node's Job and pod)."""
    return f"{managed_selector()},{RUN_ID}={label_value(run_id)}"


def now_iso() -> str:
    """UTC, second precision, as Kubernetes writes timestamps."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
