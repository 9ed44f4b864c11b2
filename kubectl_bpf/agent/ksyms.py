"""Kernel text addresses to ``func+0xoff``, from /proc/kallsyms.

Parsing takes ~150 ms on a 6.x kernel, so it runs on a background thread
started once tracing is ready; the first lookup waits for it. Without
CAP_SYSLOG (or with kptr_restrict) every address reads as 0: lookups then
return the raw hex address rather than a wrong name.

The table is kept compact (addresses in an array, names in one blob) and
read line by line: a list of Python tuples for ~100k symbols cost the agent
over 20 MB of peak RSS, a third of its budget.
"""

from __future__ import annotations

import array
import bisect
import threading
from typing import Iterable, Optional

TEXT_SYMBOL_TYPES = frozenset(b"tTwW")


class Symbols:
    def __init__(self, kallsyms_path: str = "/proc/kallsyms") -> None:
        self._path = kallsyms_path
        self._addresses = array.array("Q")
        self._name_offsets = array.array("I")  # name i is _names[_name_offsets[i]:_name_offsets[i + 1]]
        self._names = b""
        self._cache: dict[int, str] = {}
        self._thread: Optional[threading.Thread] = None
        self._loaded = threading.Event()

    def load_in_background(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._load, name="kallsyms", daemon=True)
            self._thread.start()

    def _load(self) -> None:
        addresses = array.array("Q")
        offsets = array.array("I", [0])
        names = bytearray()
        in_order = True
        try:
            with open(self._path, "rb") as kallsyms:
                for line in kallsyms:
                    fields = line.split(None, 3)
                    if len(fields) >= 3 and fields[1][0] in TEXT_SYMBOL_TYPES:
                        address = int(fields[0], 16)
                        if address:
                            in_order = in_order and (not addresses or address >= addresses[-1])
                            addresses.append(address)
                            names += fields[2].rstrip()
                            offsets.append(len(names))
        except OSError:
            self._loaded.set()
            return
        if not in_order:  # kallsyms is nearly sorted; a few symbols (aliases, modules) are not
            order = sorted(range(len(addresses)), key=addresses.__getitem__)
            sorted_names = bytearray()
            sorted_offsets = array.array("I", [0])
            for index in order:
                sorted_names += names[offsets[index]:offsets[index + 1]]
                sorted_offsets.append(len(sorted_names))
            addresses = array.array("Q", (addresses[index] for index in order))
            names, offsets = sorted_names, sorted_offsets
        self._addresses, self._names, self._name_offsets = addresses, bytes(names), offsets
        self._loaded.set()

    def _name(self, index: int) -> str:
        start, end = self._name_offsets[index], self._name_offsets[index + 1]
        return self._names[start:end].decode("ascii", "replace")

    def symbolize(self, address: int) -> str:
        cached = self._cache.get(address)
        if cached is not None:
            return cached
        if not self._loaded.is_set():
            if self._thread is None:
                self._load()
            else:
                self._thread.join()
        index = bisect.bisect_right(self._addresses, address) - 1
        if index < 0 or not address:
            text = f"0x{address:x}"
        else:
            text = f"{self._name(index)}+0x{address - self._addresses[index]:x}"
        self._cache[address] = text
        return text


def function_ranges(names: Iterable[str], kallsyms_path: str = "/proc/kallsyms"
                    ) -> list[tuple[str, int, int]]:
    """(name, start, end) of each named kernel function and of its ``.cold``
    part, end being the next text symbol's address; sorted by start. Empty
    when addresses are hidden (no CAP_SYSLOG, kptr_restrict) or unreadable."""
    wanted = {name.encode() for name in names}
    wanted |= {name + b".cold" for name in wanted}
    addresses = array.array("Q")
    starts: list[tuple[int, bytes]] = []
    try:
        with open(kallsyms_path, "rb") as kallsyms:
            for line in kallsyms:
                fields = line.split(None, 3)
                if len(fields) >= 3 and fields[1][0] in TEXT_SYMBOL_TYPES:
                    address = int(fields[0], 16)
                    if address:
                        addresses.append(address)
                        if fields[2].rstrip() in wanted and len(fields) == 3:  # vmlinux, not a module
                            starts.append((address, fields[2].rstrip()))
    except OSError:
        return []
    ordered = sorted(set(addresses))
    ranges = []
    for start, name in sorted(starts):
        index = bisect.bisect_right(ordered, start)
        end = ordered[index] if index < len(ordered) else start + 1
        ranges.append((name.decode().removesuffix(".cold"), start, end))
    return ranges
