"""The probe gadget on the node: live policy probes sent from inside source pods'
network namespaces, with the kernel's drops of exactly those flows as evidence.

Three parts, one per thread of concern:

- Entering a netns. ``setns(2)`` moves only the calling thread, so one
  dedicated prober thread enters the source's netns, creates the socket and
  switches back. A socket belongs to the netns it was created in for its whole
  life, so everything after creation (bind, connect, send, wait) runs with the
  thread back home, and the agent's other threads never leave the host netns.
  Nothing is executed in the pod: distroless images work, nothing is left.
- The prober thread sends attempts (non-blocking sockets and one selector, so
  many attempts wait at once and each RTT is measured when its answer lands),
  rate-limited, one fresh source port from the reserved range per attempt, at
  most one attempt per probe at a time.
- The runner's thread drives a DropsGadget whose kernel IP filter holds the
  sources' addresses (and the destinations', while the map has room), matches
  each drop to an open attempt by flow (probe_outcome), and emits an attempt's
  ``probe`` record once its evidence window (``evidence_grace_s`` after it
  finished) has closed. A UDP attempt whose arrival a drop proves is ended at
  once: nothing listens, so no reply will come, and the ICMP port unreachable
  that would end it is rate-limited by the destination (1/s per peer).

It fits ``runner.Gadget`` with one gap: a gadget cannot end a run. The client
sets ``RunSpec.count`` to the total number of attempts, and the runner stops
after the last ``probe`` record (``stopped_by: count``); a run without that
count is refused rather than left to run until its maximum duration.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import dataclasses
import errno
import os
import selectors
import socket
import struct
import threading
import time
from collections.abc import Sequence
from typing import Any, Optional, Union

from kubectl_bpf.agent import errors, loader, netns, preflight, targets
from kubectl_bpf.gadgets.drops import node as drops_node
from kubectl_bpf.gadgets.drops import params as drops_params
from kubectl_bpf.gadgets.policy_test import probe_outcome, probe_params, probe_schema
from kubectl_bpf.protocol import records, spec

CLONE_NEWNET = 0x40000000
# Waits are cut into slices this long so a stop request is seen promptly.
MAX_WAIT_S = 0.05
# A few events at most per attempt, plus the traced pods' other drops: a small
# ring is plenty, and a wakeup per event keeps evidence prompt at this volume.
RING_BYTES = 1 << 20
PROBER_JOIN_S = 5.0
IP_FILTER_ENTRIES = 1024  # max_entries of ip_filter in drops.bpf.c
LINGER_RST = struct.pack("ii", 1, 0)  # close with a RST: no TIME_WAIT holding the 4-tuple

_libc: Optional[ctypes.CDLL] = None


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace open at fd. Python
    3.11 has no os.setns (3.12+), so libc's is called through ctypes; libc is
    loaded once, since find_library would spawn ldconfig on every call."""
    native = getattr(os, "setns", None)
    if native is not None:
        native(fd, CLONE_NEWNET)
        return
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        number = ctypes.get_errno()
        raise OSError(number, os.strerror(number))


class NetnsEntry:
    """Creates sockets inside other network namespaces, from one thread.

    Must be created and used on the same thread: it remembers that thread's
    own netns to return to. Failing to enter a source is that attempt's error;
    failing to return home is fatal to the prober (AgentError): nothing should
    run on in a pod's netns, even though each creation enters its own source.
    """

    def __init__(self) -> None:
        self._home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)

    def sockets(self, netns_fd: int, kinds: Sequence[tuple[int, ...]]) -> list[socket.socket]:
        """New sockets of the (family, type[, proto]) kinds, created in the netns
        at netns_fd; OSError if the netns cannot be entered or a socket made."""
        created: list[socket.socket] = []
        setns(netns_fd)
        try:
            for kind in kinds:
                created.append(socket.socket(*kind))
        except OSError:
            for sock in created:
                sock.close()
            created = []
            raise
        finally:
            try:
                setns(self._home)
            except OSError as exc:
                for sock in created:
                    sock.close()
                raise errors.AgentError(f"cannot return the prober to the agent's netns: {exc}") from exc
        return created

    def close(self) -> None:
        os.close(self._home)


@dataclasses.dataclass
class Source:
    """A probe source resolved on this node: an open netns file (which keeps
    the netns alive for the run) or why it could not be resolved."""

    netns_fd: Optional[int]
    inode: Optional[int]
    ips: tuple[str, ...]
    error: Optional[str]


def resolve_source(source: probe_params.ProbeSource, proc_root: str) -> Source:
    """Open the source's netns file. A source that cannot be found is not fatal
    to the run: its attempts become ERROR records, the other probes go on."""
    try:
        target = targets.resolve_target(spec.TargetSpec(
            pids=(source.pid,) if source.pid is not None else (),
            container_ids=(source.container_id,) if source.container_id is not None else (),
            netns_paths=(source.netns_path,) if source.netns_path is not None else ()), proc_root=proc_root)
        if len(target.netns) != 1:
            return Source(None, None, (), f"{source.describe()} spans {len(target.netns)} network namespaces")
        (inode,) = target.netns
        path = source.netns_path
        if path is None:
            path = next((candidate for candidate in (os.path.join(proc_root, str(pid), "ns", "net")
                                                     for pid in target.pids)
                         if _inode_or_none(candidate) == inode), None)
        if path is None:
            return Source(None, None, (), f"{source.describe()} exited during resolution")
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except errors.AgentError as exc:
        return Source(None, None, (), str(exc))
    except OSError as exc:
        return Source(None, None, (), f"{source.describe()}: {exc.strerror}")
    if os.fstat(fd).st_ino != inode:  # the process exited and its PID was reused
        os.close(fd)
        return Source(None, None, (), f"{source.describe()} exited during resolution")
    return Source(fd, inode, target.ips, None)


def _inode_or_none(path: str) -> Optional[int]:
    try:
        return netns.netns_inode(path)
    except OSError:
        return None


def iso_time(wall: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(wall)) + f".{int(wall % 1 * 1e6):06d}Z"


def canonical_ip(text: str) -> str:
    """The address as inet_ntop writes it: how drop records and getsockname spell it."""
    family = socket.AF_INET6 if ":" in text else socket.AF_INET
    return socket.inet_ntop(family, socket.inet_pton(family, text))


class Attempt:
    """One attempt's state. The prober thread owns it until it is finished;
    evidence is appended by the runner's thread under the board lock."""

    def __init__(self, probe: probe_params.ProbeSpec, index: int, number: int, source: Source) -> None:
        self.probe = probe
        self.index = index  # of the probe in the params
        self.number = number
        self.source = source
        self.wall_started = time.time()
        self.started = time.monotonic()
        self.deadline = self.started + probe.timeout_s
        self.dst = canonical_ip(probe.dst_ip)
        self.src: Optional[str] = None
        self.sport: Optional[int] = None
        self.key: Optional[probe_outcome.FlowKey] = None
        self.sock: Optional[socket.socket] = None
        self.result = ""
        self.error: Optional[str] = None
        self.rtt_ms: Optional[float] = None
        self.finished = 0.0
        self.evidence: list[probe_schema.Evidence] = []
        self.arrival_signalled = False

    def record(self) -> probe_schema.ProbeRecord:
        arrived = any(probe_outcome.is_arrival(item, self.source.inode) for item in self.evidence)
        return {
            "id": self.probe.id, "attempt": self.number, "time": iso_time(self.wall_started),
            "src": self.src, "src_netns": self.source.inode, "sport": self.sport, "dst": self.dst,
            "dport": self.probe.port, "protocol": self.probe.protocol,
            "outcome": probe_outcome.classify(self.probe.protocol, self.result, arrived=arrived),
            "socket_result": self.result, "arrived": arrived, "rtt_ms": self.rtt_ms, "error": self.error,
            "evidence": sorted(self.evidence, key=lambda item: item["time"])}


class Board:
    """What the prober thread and the runner's thread share, under one lock:
    open attempts by flow, held source ports, attempts finished but not yet
    concluded."""

    def __init__(self, sport_min: int, sport_max: int) -> None:
        self.lock = threading.Lock()
        self.index: probe_outcome.EvidenceIndex[Attempt] = probe_outcome.EvidenceIndex()
        self.held: set[int] = set()
        self.finished: list[Attempt] = []
        self.in_flight = 0
        # UDP attempts whose arrival a drop proved while they still wait: the
        # prober ends them at once (nothing listens, so no reply will come)
        # instead of waiting out a timeout the ICMP rate limit makes likely.
        self.arrived: list[Attempt] = []
        self.wake_read, self.wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._ports = range(sport_min, sport_max + 1)
        self._cursor = 0

    def wake(self) -> None:
        """Make the prober's selector return (one byte; a full pipe already will)."""
        with contextlib.suppress(BlockingIOError):
            os.write(self.wake_write, b"\0")

    def close(self) -> None:
        """Idempotent."""
        for fd in (self.wake_read, self.wake_write):
            if fd >= 0:
                os.close(fd)
        self.wake_read = self.wake_write = -1

    def free_ports(self) -> list[int]:
        """Ports not held, round-robin from after the last one handed out, so a
        port is reused as late as possible (late answers to an old attempt)."""
        with self.lock:
            count = len(self._ports)
            order = [self._ports[(self._cursor + step) % count] for step in range(count)]
            return [port for port in order if port not in self.held]

    def hold(self, port: int) -> None:
        with self.lock:
            self.held.add(port)
            self._cursor = (self._ports.index(port) + 1) % len(self._ports)


class Prober:
    """Sends every attempt of every probe from its own thread."""

    def __init__(self, params: probe_params.ProbeParams, sources: dict[probe_params.ProbeSource, Source],
                 board: Board) -> None:
        self._params = params
        self._sources = sources
        self._board = board
        self._next_attempt = dict.fromkeys(range(len(params.probes)), 1)
        # Probes whose next attempt may start, first come first served: a probe
        # re-enters when its attempt finishes, so attempts go round-robin and a
        # probe never has two at once (they would share ICMP evidence).
        self._ready = collections.deque(range(len(params.probes)))
        # (netns inode, dst) -> the source address routed to dst, or why there is none
        self._routes: dict[tuple[int, str], Union[str, OSError]] = {}
        self._selector = selectors.DefaultSelector()
        self._open: set[Attempt] = set()  # in flight: registered with the selector
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kubectl-bpf-prober", daemon=True)
        self._next_start = 0.0
        self.error: Optional[BaseException] = None
        self.started_at: Optional[float] = None
        self.done_at: Optional[float] = None

    # -- lifecycle (runner's thread) ----------------------------------------

    def start(self) -> None:
        self.started_at = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        """Abort in-flight attempts and wait for the thread."""
        self._stopping.set()
        self._board.wake()
        if self._thread.is_alive():
            self._thread.join(PROBER_JOIN_S)

    # -- the prober thread --------------------------------------------------

    def _run(self) -> None:
        entry: Optional[NetnsEntry] = None
        try:
            entry = NetnsEntry()
            self._selector.register(self._board.wake_read, selectors.EVENT_READ, None)
            while not self._stopping.is_set():
                now = time.monotonic()
                self._start_due(entry, now)
                if not self._open and not self._ready:
                    break
                self._wait(now)
        except BaseException as exc:  # reported by the runner's thread
            self.error = exc
        finally:
            for attempt in list(self._open):
                self._finish(attempt, probe_outcome.ABORTED, "the run stopped during the attempt")
            self._selector.close()
            if entry is not None:
                entry.close()
            self.done_at = time.monotonic()

    def _start_due(self, entry: NetnsEntry, now: float) -> None:
        interval = 1.0 / self._params.rate_per_s
        while (self._ready and now >= self._next_start
               and len(self._open) < self._params.max_in_flight):
            index = self._ready.popleft()
            probe = self._params.probes[index]
            attempt = Attempt(probe, index, self._next_attempt[index], self._sources[probe.src])
            self._next_attempt[index] += 1
            if not self._launch(entry, attempt):
                # Every port is held by our own attempts (evidence windows): retry shortly.
                self._next_attempt[index] -= 1
                self._ready.appendleft(index)
                self._next_start = now + MAX_WAIT_S
                return
            self._next_start = max(self._next_start, now) + interval

    def _launch(self, entry: NetnsEntry, attempt: Attempt) -> bool:
        """Create, bind and send; False when no port is free yet (not started)."""
        source, probe = attempt.source, attempt.probe
        if source.netns_fd is None or source.inode is None:
            self._finish(attempt, probe_outcome.FAILED, source.error)
            return True
        family = socket.AF_INET6 if probe.family == 6 else socket.AF_INET
        kind = socket.SOCK_STREAM if probe.protocol == "TCP" else socket.SOCK_DGRAM
        route_key = (source.inode, attempt.dst)
        candidates = self._board.free_ports()
        if not candidates:
            return False
        try:
            kinds = [(family, kind)] + ([] if route_key in self._routes else [(family, socket.SOCK_DGRAM)])
            created = entry.sockets(source.netns_fd, kinds)
        except OSError as exc:
            self._finish(attempt, probe_outcome.FAILED, f"cannot open a socket in the source netns: {exc}")
            return True
        sock = created[0]
        if len(created) > 1:
            self._routes[route_key] = self._route_source(created[1], attempt.dst, probe.port)
        route = self._routes[route_key]
        if isinstance(route, OSError):
            sock.close()
            name = probe_outcome.errno_name(route.errno or 0)
            self._finish(attempt, probe_outcome.FAILED, f"{name}: no route from the source to {attempt.dst}")
            return True
        attempt.src = route
        failure = self._bind(sock, attempt, candidates)
        if failure is not None:
            sock.close()
            self._finish(attempt, probe_outcome.FAILED, failure)
            return True
        attempt.sock = sock
        self._send(attempt)
        return True

    @staticmethod
    def _route_source(lookup: socket.socket, dst: str, port: int) -> Union[str, OSError]:
        """The source address the source netns routes dst from: connecting a
        UDP socket sends nothing but runs the route lookup."""
        try:
            lookup.connect((dst, port))
            return canonical_ip(lookup.getsockname()[0])
        except OSError as exc:
            return exc
        finally:
            lookup.close()

    def _bind(self, sock: socket.socket, attempt: Attempt, candidates: list[int]) -> Optional[str]:
        """Bind to the first candidate port the source netns lets us have and
        register the attempt's flow; None on success, else why not."""
        assert attempt.src is not None
        if attempt.probe.protocol == "TCP":
            # Binds over our own earlier TIME_WAIT entries; a listener still refuses it.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for port in candidates:
            try:
                sock.bind((attempt.src, port))
            except OSError as exc:
                if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                    continue  # the pod (or a reserved-port sysctl) has it: take the next
                return f"cannot bind {attempt.src}:{port}: {probe_outcome.errno_name(exc.errno or 0)}"
            self._board.hold(port)
            attempt.sport = port
            attempt.key = (attempt.probe.protocol, attempt.src, port, attempt.dst, attempt.probe.port)
            with self._board.lock:
                self._board.index.register(attempt.key, attempt)
            return None
        return f"no free source port in {self._params.sport_min}-{self._params.sport_max} in the source netns"

    def _send(self, attempt: Attempt) -> None:
        sock, probe = attempt.sock, attempt.probe
        assert sock is not None
        sock.setblocking(False)
        with self._board.lock:
            self._board.in_flight += 1
        attempt.started = time.monotonic()
        attempt.deadline = attempt.started + probe.timeout_s
        if probe.protocol == "TCP":
            code = sock.connect_ex((attempt.dst, probe.port))
            if code == 0:
                self._finish(attempt, probe_outcome.ESTABLISHED, None)
                return
            if code != errno.EINPROGRESS:
                self._finish(attempt, probe_outcome.LOCAL_ERROR, probe_outcome.errno_name(code))
                return
            self._selector.register(sock, selectors.EVENT_WRITE, attempt)
            self._open.add(attempt)
            return
        try:
            sock.connect((attempt.dst, probe.port))  # a connected UDP socket hears ICMP errors
            sock.send(f"kubectl-bpf probe {probe.id}".encode())
        except OSError as exc:  # EPERM: the source's own firewall dropped it on output
            self._finish(attempt, probe_outcome.LOCAL_ERROR, probe_outcome.errno_name(exc.errno or 0))
            return
        self._selector.register(sock, selectors.EVENT_READ, attempt)
        self._open.add(attempt)

    def _wait(self, now: float) -> None:
        timeout = MAX_WAIT_S
        if self._open:
            timeout = min(timeout, min(attempt.deadline for attempt in self._open) - now)
        if self._ready and len(self._open) < self._params.max_in_flight:
            timeout = min(timeout, self._next_start - now)
        for key, _mask in self._selector.select(max(timeout, 0.0)):
            if key.data is None:
                self._take_arrivals()
            elif key.data in self._open:  # not ended by an arrival in this same round
                self._answer(key.data)
        now = time.monotonic()
        for attempt in list(self._open):
            if now >= attempt.deadline:
                self._finish(attempt, probe_outcome.TIMEOUT, None)

    def _take_arrivals(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._board.wake_read, 4096):
                pass
        with self._board.lock:
            arrived, self._board.arrived = self._board.arrived, []
        for attempt in arrived:
            if attempt in self._open:
                self._finish(attempt, probe_outcome.ARRIVAL, None)

    def _answer(self, attempt: Attempt) -> None:
        sock = attempt.sock
        assert sock is not None
        if attempt.probe.protocol == "TCP":
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code == 0:
                self._finish(attempt, probe_outcome.ESTABLISHED, None)
            else:
                self._finish(attempt, probe_outcome.result_of_error(code), probe_outcome.errno_name(code))
            return
        try:
            sock.recv(65535)
        except BlockingIOError:
            return  # woken without data (a checksum failure): keep waiting
        except OSError as exc:
            code = exc.errno or 0
            self._finish(attempt, probe_outcome.result_of_error(code), probe_outcome.errno_name(code))
            return
        self._finish(attempt, probe_outcome.REPLY, None)

    def _finish(self, attempt: Attempt, result: str, error: Optional[str]) -> None:
        now = time.monotonic()
        attempt.result, attempt.error = result, error
        if result in (probe_outcome.ESTABLISHED, probe_outcome.REPLY, probe_outcome.REFUSED,
                      probe_outcome.UNREACHABLE):
            attempt.rtt_ms = round((now - attempt.started) * 1000, 3)
        if attempt.sock is not None:
            if attempt in self._open:
                self._open.discard(attempt)
                self._selector.unregister(attempt.sock)
            if result == probe_outcome.ESTABLISHED:
                attempt.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
            attempt.sock.close()
            attempt.sock = None
            with self._board.lock:
                self._board.in_flight -= 1
        if self._next_attempt[attempt.index] <= attempt.probe.attempts and result != probe_outcome.ABORTED:
            self._ready.append(attempt.index)
        attempt.finished = now
        with self._board.lock:
            self._board.finished.append(attempt)


class ProbeGadget:
    """Implements agent.runner.Gadget: probes out, one ``probe`` record per attempt."""

    name = "probe"
    event_type = probe_schema.PROBE
    btf_types = drops_node.DropsGadget.btf_types
    tracepoint = drops_node.DropsGadget.tracepoint
    reads_kernel_memory = drops_node.DropsGadget.reads_kernel_memory

    def __init__(self, params: probe_params.ProbeParams, *, proc_root: str = "/proc",
                 object_path: str = drops_node.OBJECT_PATH) -> None:
        self.params = params
        self._proc_root = proc_root
        self._drops = drops_node.DropsGadget(
            drops_params.DropsParams(ring_bytes=RING_BYTES, wakeup_bytes=0), object_path=object_path)
        self._board = Board(params.sport_min, params.sport_max)
        self._sources: dict[probe_params.ProbeSource, Source] = {}
        self._prober: Optional[Prober] = None
        self._drop_events = 0
        self._unmatched = 0
        self._emitted = 0
        self._outcomes: dict[str, int] = dict.fromkeys(probe_schema.OUTCOMES, 0)

    def attach(self, target: targets.HostTarget, facts: preflight.HostFacts) -> loader.AttachInfo:
        """Resolve the sources, then trace drops to or from any probe address."""
        for probe in self.params.probes:
            if probe.src not in self._sources:
                self._sources[probe.src] = resolve_source(probe.src, self._proc_root)
        info = self._drops.attach(targets.HostTarget(netns=(), ips=self._filter_ips(target), pids=()), facts)
        self._prober = Prober(self.params, self._sources, self._board)
        return info

    def _filter_ips(self, target: targets.HostTarget) -> tuple[str, ...]:
        """The sources' addresses, then the destinations' while the kernel map
        has room. Every packet of a probe flow carries a source address (the
        probe's own, or the reply to it), so the sources alone suffice for
        matching; destinations only widen what is seen (unmatched) around them."""
        ips = {ip for source in self._sources.values() for ip in source.ips}
        for ip in (*target.ips, *(probe.dst_ip for probe in self.params.probes)):
            if len(ips) >= IP_FILTER_ENTRIES:
                break
            ips.add(ip)
        if len(ips) > IP_FILTER_ENTRIES:
            raise errors.BadInputError(f"the probe sources have {len(ips)} addresses; the kernel "
                                       f"filter holds {IP_FILTER_ENTRIES}")
        return tuple(sorted(ips))

    def poll(self, timeout_ms: int) -> list[dict[str, Any]]:
        assert self._prober is not None
        if self._prober.started_at is None:
            self._prober.start()  # after ``ready``: everything the probes cause is traced
        if self._prober.error is not None:
            raise errors.AgentError(f"the prober failed: {self._prober.error!r}") from self._prober.error
        self._match(self._drops.poll(timeout_ms))
        return self._conclude(final=False)

    def _match(self, drops: list[dict[str, Any]]) -> None:
        wake = False
        with self._board.lock:
            for drop in drops:
                self._drop_events += 1
                matches = self._board.index.match(drop)
                if not matches:
                    self._unmatched += 1
                for attempt, direction in matches:
                    probe_outcome.add_evidence(attempt.evidence, drop, direction)
                    if (attempt.probe.protocol == "UDP" and not attempt.arrival_signalled
                            and any(probe_outcome.is_arrival(item, attempt.source.inode)
                                    for item in attempt.evidence)):
                        attempt.arrival_signalled = True
                        self._board.arrived.append(attempt)
                        wake = True
        if wake:
            self._board.wake()

    def _conclude(self, *, final: bool) -> list[dict[str, Any]]:
        """Records of finished attempts whose evidence window has closed (all
        of them when final), in the order they finished."""
        now = time.monotonic()
        grace = self.params.evidence_grace_s
        with self._board.lock:
            ready = [attempt for attempt in self._board.finished
                     if final or attempt.key is None or now >= attempt.finished + grace]
            if not ready:
                return []
            self._board.finished = [attempt for attempt in self._board.finished if attempt not in ready]
            for attempt in ready:
                if attempt.key is not None:
                    self._board.index.unregister(attempt.key)
                if attempt.sport is not None:
                    self._board.held.discard(attempt.sport)
        concluded = []
        for attempt in ready:
            record = attempt.record()
            self._outcomes[record["outcome"]] += 1
            concluded.append(dict(record))
        self._emitted += len(concluded)
        return concluded

    def detach(self) -> list[dict[str, Any]]:
        """Stop probing (in-flight attempts become ABORTED), read the last
        drops, and conclude every finished attempt without further waiting."""
        if self._prober is not None:
            self._prober.stop()
        self._match(self._drops.detach())
        return self._conclude(final=True)

    def periodic(self) -> list[tuple[str, dict[str, Any]]]:
        return []

    def stats(self, *, events: int, discarded: int) -> records.Stats:
        """The drop counts are the traced flows' (``events``: drop events read)."""
        stats = self._drops.stats(events=self._drop_events, discarded=0)
        with self._board.lock:
            in_flight = self._board.in_flight
        probe_stats: probe_schema.ProbeStats = {**stats, "attempts_done": self._emitted,
                                                "in_flight": in_flight}
        return probe_stats

    def summary(self, *, events: int, discarded: int, duration_s: float) -> records.GadgetSummary:
        summary = self._drops.summary(events=self._drop_events, discarded=0, duration_s=duration_s)
        probing_s = 0.0
        if self._prober is not None and self._prober.started_at is not None:
            probing_s = (self._prober.done_at or time.monotonic()) - self._prober.started_at
        probe_summary: probe_schema.ProbeSummary = {
            **summary, "attempts": self._emitted, "attempts_planned": self.params.total_attempts,
            "outcomes": {name: count for name, count in self._outcomes.items() if count},
            "attempts_per_s": round(self._emitted / probing_s, 1) if probing_s > 0 else 0.0,
            "evidence_unmatched": self._unmatched}
        return probe_summary

    def close(self) -> None:
        if self._prober is not None:
            self._prober.stop()
        for source in self._sources.values():
            if source.netns_fd is not None:
                os.close(source.netns_fd)
                source.netns_fd = None
        self._board.close()
        self._drops.close()


def create_gadget(run_spec: spec.RunSpec) -> ProbeGadget:
    """The NODE_GADGETS factory. The run ends on its ``count``, which must be
    the number of attempts (see the module docstring)."""
    params = probe_params.ProbeParams.from_dict(run_spec.params)
    if run_spec.count != params.total_attempts:
        raise errors.BadInputError(
            f"a probe run ends after its attempts: set count to {params.total_attempts} "
            f"(the sum of the probes' attempts), not {run_spec.count}")
    return ProbeGadget(params, proc_root=run_spec.proc_root)
