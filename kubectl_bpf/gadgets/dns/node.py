"""The dns gadget on the node: one packet socket per target netns, the
socket filter attached to each, and the packets decoded into lookups.

Each socket is created inside its target's network namespace (the calling
thread enters it and comes back at once: a socket stays in the netns it was
created in), so it sees that pod's own traffic on every interface, in both
directions, and nothing of anyone else's. Nothing runs in the pod.

A socket is opened for every protocol (ETH_P_ALL) and receives at once, so
the filter is attached first and whatever queued before that is read and
thrown away, and its statistics reset, before ``ready``.
"""

from __future__ import annotations

import ctypes
import os
import selectors
import socket
import struct
import time
from typing import Any, Optional, cast

from kubectl_bpf.agent import errors, libbpf, loader, preflight, targets
from kubectl_bpf.gadgets.dns import decode, lookups, schema
from kubectl_bpf.gadgets.dns import params as dns_params
from kubectl_bpf.gadgets.policy_test import probe_node
from kubectl_bpf.protocol import records, spec

OBJECT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dns.bpf.o")
PROGRAM = "dns_filter"
HOOK = "socket_filter/AF_PACKET"
ETH_P_ALL = 0x0003
SO_ATTACH_BPF = 50
SO_TIMESTAMPNS = 35
SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_STATISTICS = 6
PACKET_OUTGOING = 4
ARPHRD_LOOPBACK = 772
SO_RCVBUFFORCE = 33
TIMESPEC = struct.Struct("=qq")
AUXDATA = struct.Struct("=IIIHHHH")  # struct tpacket_auxdata: tp_status, tp_len, tp_snaplen, ...
STATS = struct.Struct("=II")  # struct tpacket_stats: tp_packets (incl. drops), tp_drops
COUNTERS = struct.Struct("<3Q")  # struct dns_counters
# Packets read per socket per poll: bounds one poll's work so the runner
# still flushes and checks its stop conditions under a flood.
BATCH = 4096
ANCILLARY = socket.CMSG_SPACE(TIMESPEC.size) + socket.CMSG_SPACE(AUXDATA.size)


class DnsConfig(ctypes.Structure):
    """struct dns_config: the object's only .rodata variable."""

    _fields_ = [("ports", ctypes.c_uint16 * 8), ("snap_bytes", ctypes.c_uint32), ("pad", ctypes.c_uint32)]


LAYOUT = {"dns_config": ctypes.sizeof(DnsConfig), "dns_counters": COUNTERS.size}


def check_layout(obj: libbpf.Object) -> None:
    """Refuse to run when dns.h and these twins disagree."""
    for struct_name, size in LAYOUT.items():
        found = obj.struct_size(struct_name)
        if found != size:
            raise errors.AgentError(f"struct {struct_name} is {found} bytes in {obj.path} but "
                                    f"{size} in node.py: rebuild the BPF objects")


class Capture:
    """One target netns: its packet socket and what is known about it."""

    def __init__(self, sock: socket.socket, inode: int) -> None:
        self.sock = sock
        self.inode = inode
        self.lost = 0
        self.received = 0

    def read_statistics(self) -> None:
        """PACKET_STATISTICS resets on every read: accumulate the drops."""
        _packets, drops = STATS.unpack(self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, STATS.size))
        self.lost += drops


def open_capture(path: str, inode: int, prog_fd: int, rcvbuf: int, entry: probe_node.NetnsEntry) -> Capture:
    """A packet socket inside the netns at path, with the (still unarmed)
    filter attached and its queue drained."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        (sock,) = entry.sockets(fd, [(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))])
    finally:
        os.close(fd)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, prog_fd)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
        except OSError:  # without CAP_NET_ADMIN: up to net.core.rmem_max
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        while True:  # what arrived before the filter: not ours to report
            try:
                sock.recv(65535)
            except BlockingIOError:
                break
        capture = Capture(sock, inode)
        capture.read_statistics()
        capture.lost = 0
        return capture
    except BaseException:
        sock.close()
        raise


def netns_paths(target: targets.HostTarget, target_spec: spec.TargetSpec,
                proc_root: str) -> dict[int, tuple[str, Optional[int]]]:
    """inode -> (a file to enter it by, a PID inside it whose root holds its
    resolv.conf, if one is known). The whole host is the agent's own netns."""
    found: dict[int, tuple[str, Optional[int]]] = {}
    for pid in target.pids:
        path = os.path.join(proc_root, str(pid), "ns", "net")
        try:
            inode = os.stat(path).st_ino
        except OSError:
            continue  # exited since resolution
        if inode in target.netns and inode not in found:
            found[inode] = (path, pid)
    for path in target_spec.netns_paths:
        try:
            inode = os.stat(path).st_ino
        except OSError:
            continue
        found.setdefault(inode, (path, None))
    if target.is_whole_host:
        path = "/proc/thread-self/ns/net"
        found[os.stat(path).st_ino] = (path, os.getpid())
    return found


def read_search(proc_root: str, pid: Optional[int]) -> Optional[tuple[tuple[str, ...], int]]:
    """The search list and ndots of the process's own /etc/resolv.conf, read
    through its root (its mount namespace), so the pod's file, not ours."""
    if pid is None:
        return None
    try:
        with open(os.path.join(proc_root, str(pid), "root", "etc", "resolv.conf"), encoding="utf-8",
                  errors="replace") as resolv:
            return lookups.parse_resolv_conf(resolv.read())
    except OSError:
        return None


def sum_percpu(value: bytes, words: int) -> tuple[int, ...]:
    slots = struct.unpack(f"<{len(value) // 8}Q", value)
    return tuple(sum(slots[i::words]) for i in range(words))


class DnsGadget:
    """Implements agent.runner.Gadget with a socket filter per target netns."""

    name = "dns"
    event_type = schema.DNS
    btf_types: tuple[str, ...] = ()  # a socket filter needs no kernel type: every kernel has them
    tracepoint = ""  # none: no tracefs needed
    reads_kernel_memory = False  # the filter reads only the packet: runs under lockdown

    def __init__(self, params: dns_params.DnsParams, target_spec: spec.TargetSpec, *,
                 proc_root: str = "/proc", object_path: str = OBJECT_PATH) -> None:
        self.params = params
        self._target_spec = target_spec
        self._proc_root = proc_root
        self._object_path = object_path
        self._obj: Optional[libbpf.Object] = None
        self._captures: list[Capture] = []
        self._selector = selectors.DefaultSelector()
        self._tracker: Optional[lookups.Tracker] = None
        self._streams = decode.Streams()
        self.search: dict[int, tuple[tuple[str, ...], int]] = {}
        self._duplicates = self._decoded = self._malformed = self._snapped = 0
        self._lookups = 0
        self._unanswered = 0
        self._rcodes: dict[str, int] = {}

    # -- attach -----------------------------------------------------------

    def attach(self, target: targets.HostTarget, facts: preflight.HostFacts) -> loader.AttachInfo:
        if not os.path.exists(self._object_path):
            raise errors.UnsupportedError(f"BPF object {self._object_path} is missing: reinstall kubectl-bpf")
        started = time.monotonic()
        obj = self._obj = libbpf.Object(self._object_path)
        check_layout(obj)
        config = DnsConfig.from_buffer(obj.map(".rodata").initial_value())
        for index, port in enumerate(self.params.ports):
            config.ports[index] = port
        config.snap_bytes = self.params.snap_bytes
        try:
            obj.load()
        except libbpf.LibbpfError as exc:
            raise errors.UnsupportedError(f"the kernel refused the socket filter: {exc}") from exc
        program = obj.program(PROGRAM)
        entry = probe_node.NetnsEntry()
        try:
            for inode, (path, pid) in netns_paths(target, self._target_spec, self._proc_root).items():
                try:
                    capture = open_capture(path, inode, program.fd, self.params.rcvbuf_bytes, entry)
                except PermissionError as exc:
                    raise errors.PrivilegeError(f"cannot open a packet socket in netns {inode}: {exc}; "
                                                "need CAP_NET_RAW and CAP_SYS_ADMIN") from exc
                except OSError as exc:
                    raise errors.TargetNotFoundError(
                        f"cannot capture in netns {inode} ({path}): {exc}") from exc
                self._captures.append(capture)
                self._selector.register(capture.sock, selectors.EVENT_READ, capture)
                found = read_search(self._proc_root, pid)
                if found is not None:
                    self.search[inode] = found
        finally:
            entry.close()
        if not self._captures:
            raise errors.TargetNotFoundError("no network namespace to capture in: the target is gone")
        for inode, given in self._given_search(target).items():
            self.search.setdefault(inode, given)  # the pod's own file, when readable, is the truth
        self._tracker = lookups.Tracker(timeout_s=self.params.timeout_s, search=self.search)
        obj.map("armed").update(b"\0\0\0\0", struct.pack("<I", 1))
        return loader.AttachInfo(hook=HOOK, load_ms=(time.monotonic() - started) * 1000,
                                 prog_id=int(program.info().id))

    def _given_search(self, target: targets.HostTarget) -> dict[int, tuple[tuple[str, ...], int]]:
        """Search lists the client derived from pod specs, by container ID."""
        given = {}
        for container_id, inode in target.containers:
            entry = self.params.search.get(container_id)
            if entry is not None:
                suffixes, ndots = entry
                given[inode] = (tuple(suffixes), int(ndots))
        return given

    # -- stream -----------------------------------------------------------

    def _read(self, capture: Capture, limit: int) -> list[dict[str, Any]]:
        assert self._tracker is not None
        out: list[dict[str, Any]] = []
        sock = capture.sock
        for _ in range(limit):
            try:
                data, ancillary, _flags, address = sock.recvmsg(65535, ANCILLARY)
            except BlockingIOError:
                break
            capture.received += 1
            _ifname, ethertype, pkttype, hatype = address[:4]
            if pkttype == PACKET_OUTGOING and hatype == ARPHRD_LOOPBACK:
                self._duplicates += 1  # loopback delivers it again as incoming
                continue
            wall, original = time.time(), len(data)
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= TIMESPEC.size:
                    seconds, nanoseconds = TIMESPEC.unpack_from(value)
                    wall = seconds + nanoseconds / 1e9
                elif level == SOL_PACKET and kind == PACKET_AUXDATA and len(value) >= AUXDATA.size:
                    original = AUXDATA.unpack_from(value)[1]
            cut = original > len(data)
            if cut:
                self._snapped += 1
            try:
                segment = decode.parse_packet(data, ethertype)
                for payload, may_be_cut in decode.messages_of(segment, self._streams, cut=cut):
                    message = decode.parse_message(payload, complete=not may_be_cut)
                    self._decoded += 1
                    out += self._tracker.observe(lookups.Observed(
                        time=wall, netns=capture.inode, src=segment.src, sport=segment.sport,
                        dst=segment.dst, dport=segment.dport, transport=segment.transport,
                        message=message))
            except decode.MalformedError:
                self._malformed += 1
        return out

    def _counted(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for record in batch:
            self._lookups += 1
            rcode = record["rcode"]
            self._rcodes[rcode] = self._rcodes.get(rcode, 0) + 1
            if rcode == lookups.UNANSWERED:
                self._unanswered += 1
        return batch

    def poll(self, timeout_ms: int) -> list[dict[str, Any]]:
        assert self._tracker is not None
        out: list[dict[str, Any]] = []
        for key, _events in self._selector.select(timeout_ms / 1000):
            out += self._read(cast(Capture, key.data), BATCH)
        out += self._tracker.expire(time.time())
        return self._counted(out)

    def detach(self) -> list[dict[str, Any]]:
        """Disarm, read what is still queued, end what can end."""
        assert self._tracker is not None and self._obj is not None
        self._obj.map("armed").update(b"\0\0\0\0", struct.pack("<I", 0))
        out: list[dict[str, Any]] = []
        for capture in self._captures:
            while True:
                batch_start = capture.received
                out += self._read(capture, BATCH)
                if capture.received == batch_start:
                    break
            capture.read_statistics()
        out += self._tracker.expire(time.time())
        out += self._tracker.finish()
        return self._counted(out)

    def periodic(self) -> list[tuple[str, dict[str, Any]]]:
        return []

    # -- accounting -------------------------------------------------------

    def _packet_counts(self) -> schema.PacketCounts:
        assert self._obj is not None
        value = self._obj.map("counters").lookup(b"\0\0\0\0")
        seen, _snapped, _ignored = sum_percpu(value, 3) if value else (0, 0, 0)
        for capture in self._captures:
            if capture.sock.fileno() >= 0:
                capture.read_statistics()
        return {"packets_seen": seen, "packets_received": sum(c.received for c in self._captures),
                "packets_lost": sum(c.lost for c in self._captures),
                "packets_duplicate": self._duplicates, "packets_decoded": self._decoded,
                "packets_malformed": self._malformed, "packets_snapped": self._snapped,
                "tcp_gaps": self._streams.gaps}

    def stats(self, *, events: int, discarded: int) -> records.Stats:
        assert self._tracker is not None
        stats: schema.DnsStats = {**self._packet_counts(), "lookups": self._lookups,
                                  "pending": self._tracker.pending, "elapsed_s": 0.0}
        return cast(records.Stats, stats)  # the runner sets elapsed_s; the rest is this gadget's own

    def summary(self, *, events: int, discarded: int, duration_s: float) -> records.GadgetSummary:
        assert self._tracker is not None
        names, servers = self._tracker.tallies(self.params.top)
        summary: schema.DnsSummary = {
            **self._packet_counts(), "duration_s": duration_s, "queries": self._tracker.queries,
            "responses": self._tracker.responses, "lookups": self._lookups,
            "unanswered": self._unanswered, "unmatched_responses": self._tracker.unmatched_responses,
            "pending": self._tracker.pending, "chains": self._tracker.chain_count,
            "chain_wasted_ms": round(self._tracker.chain_wasted_ms, 3),
            "rcodes": dict(sorted(self._rcodes.items())), "names": names, "servers": servers}
        return cast(records.GadgetSummary, summary)  # the runner only adds stopped_by

    def close(self) -> None:
        for capture in self._captures:
            capture.sock.close()
        self._captures = []
        self._selector.close()
        if self._obj is not None:
            self._obj.close()
            self._obj = None


def create_gadget(run_spec: spec.RunSpec) -> DnsGadget:
    """The NODE_GADGETS factory."""
    return DnsGadget(dns_params.DnsParams.from_dict(run_spec.params), run_spec.target,
                     proc_root=run_spec.proc_root)
