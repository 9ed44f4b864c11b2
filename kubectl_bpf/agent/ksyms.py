"""Kernel text addresses to ``func+0xoff``, from /proc/kallsyms.

Parsing takes ~150 ms on a 6.x kernel, so it runs on a background thread
started once tracing is ready; the first lookup waits for it. Without
CAP_SYSLOG (or with kptr_restrict) every address reads as 0: lookups then
return the raw hex address rather than a wrong name.
"""

from __future__ import annotations

import bisect
import threading
from typing import Optional

TEXT_SYMBOL_TYPES = frozenset(b"tTwW")


class Symbols:
    def __init__(self, kallsyms_path: str = "/proc/kallsyms") -> None:
        self._path = kallsyms_path
        self._addresses: list[int] = []
        self._names: list[str] = []
        self._cache: dict[int, str] = {}
        self._thread: Optional[threading.Thread] = None
        self._loaded = threading.Event()

    def load_in_background(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._load, name="kallsyms", daemon=True)
            self._thread.start()

    def _load(self) -> None:
        try:
            with open(self._path, "rb") as kallsyms:
                data = kallsyms.read()
        except OSError:
            self._loaded.set()
            return
        symbols = []
        for line in data.splitlines():
            fields = line.split(None, 3)
            if len(fields) >= 3 and fields[1][0] in TEXT_SYMBOL_TYPES:
                address = int(fields[0], 16)
                if address:
                    symbols.append((address, fields[2].decode("ascii", "replace")))
        symbols.sort()
        self._addresses = [address for address, _ in symbols]
        self._names = [name for _, name in symbols]
        self._loaded.set()

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
            text = f"{self._names[index]}+0x{address - self._addresses[index]:x}"
        self._cache[address] = text
        return text
