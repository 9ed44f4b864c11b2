"""The one ctypes binding to the system libbpf (``libbpf.so.1``, Debian ``libbpf1``).

Everything that calls into libbpf lives here, so its pitfalls are handled in
one place (field notes §2):

- every pointer-returning function gets ``restype = c_void_p`` (the default
  ``c_int`` truncates 64-bit pointers);
- the library is loaded with ``use_errno=True``: pointer functions report
  failure as NULL + errno, int functions as ``-errno``;
- every CFUNCTYPE callback object is kept referenced for as long as C may call
  it, or the interpreter frees the trampoline under libbpf's feet;
- the print callback receives a ``va_list`` and hands it to libc's
  ``vsnprintf``;
- exceptions cannot cross C: a ring buffer callback stores its exception,
  returns -1 to stop the poll, and the exception is re-raised after the poll;
- per-CPU values take ``round_up(size, 8) * libbpf_num_possible_cpus()`` bytes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import mmap
import os
from typing import Callable, Iterator, Optional

BPF_ANY = 0
BPF_NOEXIST = 1
BPF_MAP_TYPE_PERCPU_HASH = 5
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_LRU_PERCPU_HASH = 10
PERCPU_MAP_TYPES = (BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_LRU_PERCPU_HASH)
BTF_KIND_STRUCT = 4
BTF_KIND_ENUM = 6
BTF_KIND_TYPEDEF = 8
BTF_KIND_FUNC = 12
BTF_KIND_FUNC_PROTO = 13
BTF_KIND_ENUM64 = 19
BPF_STATS_RUN_TIME = 0
LIBBPF_WARN = 0
LIBBPF_INFO = 1


class LibbpfError(OSError):
    """A libbpf call failed; ``errno`` holds the positive error number."""


class BpfProgInfo(ctypes.Structure):
    """``struct bpf_prog_info`` from linux/bpf.h, up to the fields we read.

    The kernel fills at most the length we pass, and the uapi struct only
    grows at the end, so a prefix is valid on every kernel.
    """

    _fields_ = [
        ("type", ctypes.c_uint32), ("id", ctypes.c_uint32), ("tag", ctypes.c_uint8 * 8),
        ("jited_prog_len", ctypes.c_uint32), ("xlated_prog_len", ctypes.c_uint32),
        ("jited_prog_insns", ctypes.c_uint64), ("xlated_prog_insns", ctypes.c_uint64),
        ("load_time", ctypes.c_uint64), ("created_by_uid", ctypes.c_uint32),
        ("nr_map_ids", ctypes.c_uint32), ("map_ids", ctypes.c_uint64),
        ("name", ctypes.c_char * 16), ("ifindex", ctypes.c_uint32),
        ("gpl_compatible", ctypes.c_uint32), ("netns_dev", ctypes.c_uint64),
        ("netns_ino", ctypes.c_uint64), ("nr_jited_ksyms", ctypes.c_uint32),
        ("nr_jited_func_lens", ctypes.c_uint32), ("jited_ksyms", ctypes.c_uint64),
        ("jited_func_lens", ctypes.c_uint64), ("btf_id", ctypes.c_uint32),
        ("func_info_rec_size", ctypes.c_uint32), ("func_info", ctypes.c_uint64),
        ("nr_func_info", ctypes.c_uint32), ("nr_line_info", ctypes.c_uint32),
        ("line_info", ctypes.c_uint64), ("jited_line_info", ctypes.c_uint64),
        ("nr_jited_line_info", ctypes.c_uint32), ("line_info_rec_size", ctypes.c_uint32),
        ("jited_line_info_rec_size", ctypes.c_uint32), ("nr_prog_tags", ctypes.c_uint32),
        ("prog_tags", ctypes.c_uint64), ("run_time_ns", ctypes.c_uint64),
        ("run_cnt", ctypes.c_uint64), ("recursion_misses", ctypes.c_uint64),
    ]


_VOIDP = ctypes.c_void_p
_INT = ctypes.c_int
_SIZE = ctypes.c_size_t
_PRINT_FN = ctypes.CFUNCTYPE(_INT, _INT, ctypes.c_char_p, _VOIDP)
RINGBUF_SAMPLE_FN = ctypes.CFUNCTYPE(_INT, _VOIDP, _VOIDP, _SIZE)

# name: (restype, argtypes). Pointer results are c_void_p, never the c_int default.
_PROTOTYPES: dict[str, tuple[object, list[object]]] = {
    "libbpf_set_print": (_VOIDP, [_PRINT_FN]),
    "libbpf_num_possible_cpus": (_INT, []),
    "libbpf_strerror": (_INT, [_INT, ctypes.c_char_p, _SIZE]),
    "bpf_object__open_file": (_VOIDP, [ctypes.c_char_p, _VOIDP]),
    "bpf_object__load": (_INT, [_VOIDP]),
    "bpf_object__close": (None, [_VOIDP]),
    "bpf_object__btf": (_VOIDP, [_VOIDP]),
    "bpf_object__find_map_by_name": (_VOIDP, [_VOIDP, ctypes.c_char_p]),
    "bpf_object__find_program_by_name": (_VOIDP, [_VOIDP, ctypes.c_char_p]),
    "bpf_object__next_program": (_VOIDP, [_VOIDP, _VOIDP]),
    "bpf_program__name": (ctypes.c_char_p, [_VOIDP]),
    "bpf_program__set_autoload": (_INT, [_VOIDP, ctypes.c_bool]),
    "bpf_program__set_log_buf": (_INT, [_VOIDP, _VOIDP, _SIZE]),
    "bpf_program__attach": (_VOIDP, [_VOIDP]),
    "bpf_program__fd": (_INT, [_VOIDP]),
    "bpf_link__destroy": (_INT, [_VOIDP]),
    "bpf_map__fd": (_INT, [_VOIDP]),
    "bpf_map__type": (_INT, [_VOIDP]),
    "bpf_map__key_size": (ctypes.c_uint32, [_VOIDP]),
    "bpf_map__value_size": (ctypes.c_uint32, [_VOIDP]),
    "bpf_map__max_entries": (ctypes.c_uint32, [_VOIDP]),
    "bpf_map__set_max_entries": (_INT, [_VOIDP, ctypes.c_uint32]),
    "bpf_map__initial_value": (_VOIDP, [_VOIDP, ctypes.POINTER(_SIZE)]),
    "bpf_map__lookup_elem": (_INT, [_VOIDP, _VOIDP, _SIZE, _VOIDP, _SIZE, ctypes.c_uint64]),
    "bpf_map__update_elem": (_INT, [_VOIDP, _VOIDP, _SIZE, _VOIDP, _SIZE, ctypes.c_uint64]),
    "bpf_map__get_next_key": (_INT, [_VOIDP, _VOIDP, _VOIDP, _SIZE]),
    "bpf_map_lookup_batch": (_INT, [_INT, _VOIDP, _VOIDP, _VOIDP, _VOIDP,
                                    ctypes.POINTER(ctypes.c_uint32), _VOIDP]),
    "bpf_obj_get_info_by_fd": (_INT, [_INT, _VOIDP, ctypes.POINTER(ctypes.c_uint32)]),
    "bpf_enable_stats": (_INT, [_INT]),
    "btf__find_by_name_kind": (ctypes.c_int32, [_VOIDP, ctypes.c_char_p, ctypes.c_uint32]),
    "btf__resolve_size": (ctypes.c_int64, [_VOIDP, ctypes.c_uint32]),
    "btf__load_vmlinux_btf": (_VOIDP, []),
    "btf__parse": (_VOIDP, [ctypes.c_char_p, _VOIDP]),
    "btf__free": (None, [_VOIDP]),
    "btf__type_cnt": (ctypes.c_uint32, [_VOIDP]),
    "btf__type_by_id": (_VOIDP, [_VOIDP, ctypes.c_uint32]),
    "btf__name_by_offset": (ctypes.c_char_p, [_VOIDP, ctypes.c_uint32]),
    "ring_buffer__new": (_VOIDP, [_INT, RINGBUF_SAMPLE_FN, _VOIDP, _VOIDP]),
    "ring_buffer__poll": (_INT, [_VOIDP, _INT]),
    "ring_buffer__consume": (_INT, [_VOIDP]),
    "ring_buffer__free": (None, [_VOIDP]),
}


def _load_library() -> ctypes.CDLL:
    lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
    for name, (restype, argtypes) in _PROTOTYPES.items():
        function = getattr(lib, name)
        function.restype = restype
        function.argtypes = argtypes
    return lib


_lib: Optional[ctypes.CDLL] = None
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.vsnprintf.argtypes = [ctypes.c_char_p, _SIZE, ctypes.c_char_p, _VOIDP]
_libc.vsnprintf.restype = _INT

# libbpf's messages since the last open/load: surfaced when those fail.
_messages: list[str] = []
_MESSAGES_KEPT = 200  # enough for a verifier error's tail, bounded for long runs
_verbose = False


def _print(level: int, fmt: bytes, args: Optional[int]) -> int:
    buffer = ctypes.create_string_buffer(1024)
    _libc.vsnprintf(buffer, len(buffer), fmt, args)
    text = buffer.value.decode("utf-8", "replace").rstrip("\n")
    if _verbose or level == LIBBPF_WARN:
        _messages.append(text)
        del _messages[:-_MESSAGES_KEPT]
    return 0


_print_callback = _PRINT_FN(_print)  # referenced for the life of the process


def lib() -> ctypes.CDLL:
    """The loaded library; raises LibbpfError when libbpf1 is not installed."""
    global _lib
    if _lib is None:
        try:
            _lib = _load_library()
        except OSError as exc:
            raise LibbpfError(errno.ENOENT, f"cannot load libbpf.so.1 (install libbpf1): {exc}") from exc
        _lib.libbpf_set_print(_print_callback)
    return _lib


def set_verbose(verbose: bool) -> None:
    """Keep libbpf's info messages too (the verifier log on failure)."""
    global _verbose
    _verbose = verbose


def recent_messages() -> list[str]:
    """libbpf's warnings since the last call, oldest first; clears them."""
    taken = list(_messages)
    _messages.clear()
    return taken


def strerror(number: int) -> str:
    """Text of an errno or of libbpf's own codes (4000 and up, e.g. "Invalid ELF")."""
    buffer = ctypes.create_string_buffer(128)
    if lib().libbpf_strerror(number, buffer, len(buffer)) == 0:
        return buffer.value.decode("utf-8", "replace")
    return os.strerror(number)


def _check(result: int, what: str) -> int:
    if result < 0:
        raise LibbpfError(-result, f"{what}: {strerror(-result)}")
    return result


def _check_pointer(pointer: Optional[int], what: str) -> int:
    if not pointer:
        number = ctypes.get_errno() or errno.EINVAL
        raise LibbpfError(number, f"{what}: {strerror(number)}")
    return pointer


def num_possible_cpus() -> int:
    return int(_check(lib().libbpf_num_possible_cpus(), "libbpf_num_possible_cpus"))


def enable_run_time_stats() -> int:
    """Turn on kernel BPF run-time accounting; stays on while the fd is open."""
    return _check(lib().bpf_enable_stats(BPF_STATS_RUN_TIME), "bpf_enable_stats")


class Btf:
    """Type information of the running kernel (or of a BTF file).

    Used for the names of drop reasons: their numbers shift between kernel
    versions, so they are read from the kernel itself, never from a table.
    """

    def __init__(self, pointer: int) -> None:
        self._pointer: Optional[int] = pointer

    @classmethod
    def load_vmlinux(cls) -> "Btf":
        return cls(_check_pointer(lib().btf__load_vmlinux_btf(), "load kernel BTF"))

    @classmethod
    def parse(cls, path: str) -> "Btf":
        return cls(_check_pointer(lib().btf__parse(path.encode(), None), f"parse BTF {path}"))

    def _live(self) -> int:
        if not self._pointer:
            raise LibbpfError(errno.EBADF, "BTF is freed")
        return self._pointer

    def find(self, name: str, kind: int) -> int:
        """Type id of a named type of that kind; -1 if absent."""
        type_id = int(lib().btf__find_by_name_kind(self._live(), name.encode(), kind))
        return type_id if type_id > 0 else -1

    def _name(self, offset: int) -> str:
        name = lib().btf__name_by_offset(self._live(), offset)
        return name.decode() if name else ""

    def enum_values(self, type_id: int) -> dict[str, int]:
        """Enumerator name -> value of an ENUM or ENUM64 type."""
        pointer = _check_pointer(lib().btf__type_by_id(self._live(), type_id), f"BTF type {type_id}")
        _name_off, info, _size = (ctypes.c_uint32 * 3).from_address(pointer)
        kind, vlen, signed = (info >> 24) & 0x1F, info & 0xFFFF, bool(info >> 31)
        values: dict[str, int] = {}
        members = pointer + 12
        if kind == BTF_KIND_ENUM:
            for name_off, raw in (ctypes.c_uint32 * 2 * vlen).from_address(members):
                values[self._name(name_off)] = raw - (1 << 32) if signed and raw >= 1 << 31 else raw
        elif kind == BTF_KIND_ENUM64:
            for name_off, low, high in (ctypes.c_uint32 * 3 * vlen).from_address(members):
                values[self._name(name_off)] = high << 32 | low
        else:
            raise LibbpfError(errno.EINVAL, f"BTF type {type_id} is not an enum")
        return values

    def enums_named(self, suffix: str) -> dict[str, int]:
        """Type ids of all enums whose name ends with suffix: a scan of every
        type, so callers do it once and only when they need it."""
        found: dict[str, int] = {}
        btf = self._live()
        for type_id in range(1, int(lib().btf__type_cnt(btf))):
            name_off, info = (ctypes.c_uint32 * 2).from_address(lib().btf__type_by_id(btf, type_id))
            if (info >> 24) & 0x1F in (BTF_KIND_ENUM, BTF_KIND_ENUM64) and name_off:
                name = self._name(name_off)
                if name.endswith(suffix):
                    found[name] = type_id
        return found

    def typedef_proto_params(self, name: str) -> int:
        """Parameters of the function a typedef'd function pointer points to
        (``btf_trace_<event>``: the tracepoint's arguments plus ``void *``);
        -1 if there is no such typedef."""
        type_id = self.find(name, BTF_KIND_TYPEDEF)
        for _hop in range(3):  # typedef -> pointer -> function prototype
            if type_id <= 0:
                return -1
            pointer = _check_pointer(lib().btf__type_by_id(self._live(), type_id), f"BTF type {type_id}")
            _name_off, info, target = (ctypes.c_uint32 * 3).from_address(pointer)
            if (info >> 24) & 0x1F == BTF_KIND_FUNC_PROTO:
                return info & 0xFFFF
            type_id = target
        return -1

    def struct_members(self, type_id: int) -> list[tuple[str, int]]:
        """(name, bit offset) of each member of a STRUCT, in declaration order.

        With kind_flag set (a struct holding bitfields), only the low 24 bits of
        ``btf_member.offset`` are the offset; the high 8 are the bitfield size.
        """
        pointer = _check_pointer(lib().btf__type_by_id(self._live(), type_id), f"BTF type {type_id}")
        _name_off, info, _size = (ctypes.c_uint32 * 3).from_address(pointer)
        kind, vlen, kind_flag = (info >> 24) & 0x1F, info & 0xFFFF, bool(info >> 31)
        if kind != BTF_KIND_STRUCT:
            raise LibbpfError(errno.EINVAL, f"BTF type {type_id} is not a struct")
        # struct btf_member { u32 name_off; u32 type; u32 offset; } follows the btf_type.
        return [(self._name(name_off), offset & 0xFFFFFF if kind_flag else offset)
                for name_off, _type, offset in (ctypes.c_uint32 * 3 * vlen).from_address(pointer + 12)]

    def typedef_arity(self, name: str) -> int:
        """Parameters of the function a TYPEDEF of a function pointer names
        (``btf_trace_<tracepoint>``: the tracepoint's arguments plus the
        leading context pointer); -1 if there is no such typedef."""
        type_id = self.find(name, BTF_KIND_TYPEDEF)
        for _step in range(2):  # typedef -> pointer -> function prototype
            if type_id < 0:
                return -1
            pointer = _check_pointer(lib().btf__type_by_id(self._live(), type_id), f"BTF type {type_id}")
            type_id = int((ctypes.c_uint32 * 3).from_address(pointer)[2])
        pointer = _check_pointer(lib().btf__type_by_id(self._live(), type_id), f"BTF type {type_id}")
        info = int((ctypes.c_uint32 * 2).from_address(pointer)[1])
        return info & 0xFFFF if (info >> 24) & 0x1F == BTF_KIND_FUNC_PROTO else -1

    def free(self) -> None:
        if self._pointer:
            lib().btf__free(self._pointer)
            self._pointer = None


class Map:
    """A map of an open object. Sizes are checked by libbpf's bpf_map__* calls."""

    def __init__(self, pointer: int, name: str) -> None:
        self._pointer = pointer
        self.name = name

    @property
    def fd(self) -> int:
        return int(lib().bpf_map__fd(self._pointer))

    @property
    def key_size(self) -> int:
        return int(lib().bpf_map__key_size(self._pointer))

    @property
    def value_size(self) -> int:
        """Size of one value as stored (for per-CPU maps: of one CPU's slot)."""
        return int(lib().bpf_map__value_size(self._pointer))

    @property
    def is_percpu(self) -> bool:
        return int(lib().bpf_map__type(self._pointer)) in PERCPU_MAP_TYPES

    @property
    def lookup_size(self) -> int:
        """Bytes a lookup writes: per-CPU maps return every CPU's 8-aligned slot."""
        if self.is_percpu:
            return (self.value_size + 7) // 8 * 8 * num_possible_cpus()
        return self.value_size

    def set_max_entries(self, entries: int) -> None:
        """Only before load."""
        _check(lib().bpf_map__set_max_entries(self._pointer, entries), f"resize map {self.name}")

    def initial_value(self) -> ctypes.Array[ctypes.c_char]:
        """Writable view of a .rodata/.data map's initial contents (before load)."""
        size = _SIZE()
        pointer = _check_pointer(lib().bpf_map__initial_value(self._pointer, ctypes.byref(size)),
                                 f"initial value of map {self.name}")
        return (ctypes.c_char * size.value).from_address(pointer)

    def update(self, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
        _check(lib().bpf_map__update_elem(self._pointer, key, len(key), value, len(value), flags),
               f"update map {self.name}")

    def lookup(self, key: bytes) -> Optional[bytes]:
        """The raw value (all CPUs' slots for per-CPU maps); None if absent."""
        value = ctypes.create_string_buffer(self.lookup_size)
        result = lib().bpf_map__lookup_elem(self._pointer, key, len(key), value, len(value), 0)
        if result == -errno.ENOENT:
            return None
        _check(result, f"lookup in map {self.name}")
        return value.raw

    def keys(self) -> Iterator[bytes]:
        """Every key, via get_next_key. Safe while the map changes, but a key
        deleted concurrently may restart iteration (kernel semantics)."""
        size = self.key_size
        current = None
        following = ctypes.create_string_buffer(size)
        while True:
            result = lib().bpf_map__get_next_key(self._pointer, current, following, size)
            if result == -errno.ENOENT:
                return
            _check(result, f"iterate map {self.name}")
            current = following.raw
            yield current

    def items(self) -> list[tuple[bytes, bytes]]:
        """All entries, with a batched lookup (~9x faster than key by key) where
        the kernel supports it, else key by key."""
        try:
            return self._items_batched()
        except LibbpfError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
        return [(key, value) for key in self.keys() if (value := self.lookup(key)) is not None]

    def _items_batched(self) -> list[tuple[bytes, bytes]]:
        key_size, value_size = self.key_size, self.lookup_size
        chunk = 1024
        keys = ctypes.create_string_buffer(key_size * chunk)
        values = ctypes.create_string_buffer(value_size * chunk)
        token = ctypes.create_string_buffer(max(key_size, 8))
        found: list[tuple[bytes, bytes]] = []
        first = True
        while True:
            count = ctypes.c_uint32(chunk)
            result = lib().bpf_map_lookup_batch(self.fd, None if first else token, token,
                                                keys, values, ctypes.byref(count), None)
            if result < 0 and result != -errno.ENOENT:
                _check(result, f"batch lookup in map {self.name}")
            raw_keys, raw_values = keys.raw, values.raw
            for i in range(count.value):
                found.append((raw_keys[i * key_size:(i + 1) * key_size],
                              raw_values[i * value_size:(i + 1) * value_size]))
            if result < 0:  # ENOENT: that was the last chunk
                return found
            first = False


# Room for a whole verifier log. Before 6.4 the kernel keeps the log's head and
# fails the load with ENOSPC when it is full, so a small buffer loses exactly the
# error at its end (1 KiB hid 6.1's real rejection). The buffer is an anonymous
# mapping: pages the kernel never writes cost nothing.
VERIFIER_LOG_BYTES = 16 << 20


class Program:
    def __init__(self, pointer: int, name: str) -> None:
        self._pointer = pointer
        self.name = name
        self._log: Optional[mmap.mmap] = None
        self._log_view: Optional[ctypes.c_char] = None  # exports _log: dropped before it closes

    def capture_log(self) -> None:
        """Before load: if the kernel rejects the program, keep the verifier's
        log here (libbpf retries the failed load with logging on) instead of
        libbpf printing it as one message."""
        self._log = mmap.mmap(-1, VERIFIER_LOG_BYTES)
        self._log_view = ctypes.c_char.from_buffer(self._log)
        _check(lib().bpf_program__set_log_buf(self._pointer, ctypes.addressof(self._log_view),
                                              VERIFIER_LOG_BYTES),
               f"log buffer of {self.name}")

    def verifier_log(self) -> str:
        """The captured log ("" if none); frees the buffer, so call it after load."""
        if self._log is None:
            return ""
        end = self._log.find(b"\0")
        raw = self._log[:end if end >= 0 else len(self._log)]
        self._log_view = None
        self._log.close()
        self._log = None
        return raw.decode("utf-8", "replace")

    def set_autoload(self, autoload: bool) -> None:
        """Only before load: a program not autoloaded is not verified either."""
        _check(lib().bpf_program__set_autoload(self._pointer, autoload), f"autoload {self.name}")

    @property
    def fd(self) -> int:
        return int(lib().bpf_program__fd(self._pointer))

    def attach(self) -> "Link":
        pointer = _check_pointer(lib().bpf_program__attach(self._pointer), f"attach {self.name}")
        return Link(pointer)

    def info(self) -> BpfProgInfo:
        """Kernel statistics: run_cnt and run_time_ns count only while stats are on."""
        info = BpfProgInfo()
        length = ctypes.c_uint32(ctypes.sizeof(info))
        result = lib().bpf_obj_get_info_by_fd(self.fd, ctypes.byref(info), ctypes.byref(length))
        if result < 0:
            _check(-ctypes.get_errno() or result, f"info of {self.name}")
        return info


class Link:
    def __init__(self, pointer: int) -> None:
        self._pointer: Optional[int] = pointer

    def destroy(self) -> None:
        """Detach; idempotent."""
        if self._pointer:
            lib().bpf_link__destroy(self._pointer)
            self._pointer = None


class Object:
    """An opened BPF object file: configure, load, then attach its programs."""

    def __init__(self, path: str) -> None:
        recent_messages()
        self._pointer: Optional[int] = _check_pointer(
            lib().bpf_object__open_file(path.encode(), None), f"open {path}")
        self.path = path

    def _live(self) -> int:
        if not self._pointer:
            raise LibbpfError(errno.EBADF, f"{self.path} is closed")
        return self._pointer

    def map(self, name: str) -> Map:
        pointer = _check_pointer(lib().bpf_object__find_map_by_name(self._live(), name.encode()),
                                 f"map {name} in {self.path}")
        return Map(pointer, name)

    def program(self, name: str) -> Program:
        pointer = _check_pointer(
            lib().bpf_object__find_program_by_name(self._live(), name.encode()),
            f"program {name} in {self.path}")
        return Program(pointer, name)

    def programs(self) -> list[Program]:
        """Every program of the object, in section order."""
        found: list[Program] = []
        pointer = lib().bpf_object__next_program(self._live(), None)
        while pointer:
            found.append(Program(pointer, lib().bpf_program__name(pointer).decode()))
            pointer = lib().bpf_object__next_program(self._live(), pointer)
        return found

    def load(self) -> None:
        recent_messages()
        result = lib().bpf_object__load(self._live())
        if result < 0:
            detail = " | ".join(line for line in recent_messages()[-3:] if line.strip())
            raise LibbpfError(-result, f"load {os.path.basename(self.path)}: "
                                       f"{strerror(-result)}" + (f" ({detail})" if detail else ""))

    def struct_size(self, name: str) -> int:
        """Size of ``struct name`` as the object's BTF records it; -1 if absent."""
        btf = lib().bpf_object__btf(self._live())
        if not btf:
            return -1
        type_id = lib().btf__find_by_name_kind(btf, name.encode(), BTF_KIND_STRUCT)
        if type_id < 0:
            return -1
        return int(lib().btf__resolve_size(btf, type_id))

    def close(self) -> None:
        """Unload everything (maps and programs); idempotent."""
        if self._pointer:
            lib().bpf_object__close(self._pointer)
            self._pointer = None


class RingBuffer:
    """libbpf's ring buffer reader with the callback rules of this module.

    A poll returns after at most batch_limit records: under a flood faster
    than the reader, libbpf would otherwise keep consuming inside one call
    and the caller would never get to check signals or deadlines. The
    callback stops libbpf by returning -1 after a record was consumed. The
    default also bounds memory: the agent holds a batch as dicts, JSON lines
    and one write buffer before it flushes (8192 records peaked near 100 MB).
    """

    def __init__(self, ringbuf: Map, on_sample: Callable[[int, int], None], *,
                 batch_limit: int = 2048) -> None:
        self._on_sample = on_sample
        self._batch_limit = batch_limit
        self._in_batch = 0
        self._error: Optional[BaseException] = None
        self._callback = RINGBUF_SAMPLE_FN(self._trampoline)  # must outlive the reader
        self._pointer: Optional[int] = _check_pointer(
            lib().ring_buffer__new(ringbuf.fd, self._callback, None, None), "ring_buffer__new")

    def _trampoline(self, _ctx: Optional[int], data: int, size: int) -> int:
        try:
            self._on_sample(data, size)
        except BaseException as exc:  # re-raised after the C frame returns
            self._error = exc
            return -1
        self._in_batch += 1
        return -1 if self._in_batch >= self._batch_limit else 0

    def _finish(self, result: int, what: str) -> int:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if result == -errno.EINTR or self._in_batch >= self._batch_limit:
            return self._in_batch
        _check(result, what)
        return self._in_batch

    def poll(self, timeout_ms: int) -> int:
        """Records consumed (at most batch_limit); 0 on timeout or signal."""
        if not self._pointer:
            return 0
        self._in_batch = 0
        return self._finish(lib().ring_buffer__poll(self._pointer, timeout_ms), "ring_buffer__poll")

    def consume(self) -> int:
        """Read what is pending without waiting (at most batch_limit): needed
        with batched wakeups, where records below the threshold raise no
        epoll event."""
        if not self._pointer:
            return 0
        self._in_batch = 0
        return self._finish(lib().ring_buffer__consume(self._pointer), "ring_buffer__consume")

    def free(self) -> None:
        if self._pointer:
            lib().ring_buffer__free(self._pointer)
            self._pointer = None
