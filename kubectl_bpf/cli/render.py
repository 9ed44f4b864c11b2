"""Human output: a live table printed row by row, and summary tables.

Columns come from the gadgets' schemas. The live table cannot use tabulate
(rows arrive one at a time), so it pads to fixed minimum widths and lets a
long value push its line rather than truncating what an incident needs.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence, TextIO

from tabulate import tabulate

Formatter = Callable[[dict[str, Any]], str]


class LiveTable:
    """Prints a header once, then one aligned line per record. A column widens
    to the longest value seen so far, so later rows line up again after an
    unusually long one (an IPv6 endpoint) without buffering anything."""

    def __init__(self, columns: Sequence[tuple[str, Formatter, int]], out: TextIO) -> None:
        self._headers = [header for header, _, _ in columns]
        self._formatters = [fmt for _, fmt, _ in columns]
        self._widths = [max(width, len(header)) for header, _, width in columns]
        self._out = out
        self._header_done = False

    def _line(self, cells: Sequence[str]) -> str:
        self._widths = [max(width, len(text)) for width, text in zip(self._widths, cells)]
        return "  ".join(text.ljust(width) for text, width in zip(cells, self._widths)).rstrip()

    def header(self) -> None:
        if not self._header_done:
            self._out.write(self._line(self._headers) + "\n")
            self._header_done = True

    def row(self, record: dict[str, Any]) -> None:
        self.header()
        self._out.write(self._line([fmt(record) for fmt in self._formatters]) + "\n")

    def flush(self) -> None:
        self._out.flush()


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A static table in the house style (kubectl-like: plain, no borders)."""
    return tabulate(rows, headers=list(headers), tablefmt="plain", disable_numparse=True)


def cell(value: Any) -> str:
    return "-" if value is None else str(value)
