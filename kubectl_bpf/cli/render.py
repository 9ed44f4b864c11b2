"""Human output: a live table printed row by row, and summary tables.

Columns come from the gadgets' schemas. The live table cannot use tabulate
(rows arrive one at a time), so it pads to fixed minimum widths and lets a
long value push its line rather than truncating what an incident needs.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence, TextIO

from tabulate import tabulate

Formatter = Callable[[dict[str, Any]], str]


class LiveTable:
    """Prints a header once, then one aligned line per record."""

    def __init__(self, columns: Sequence[tuple[str, Formatter, int]], out: TextIO) -> None:
        self._columns = columns
        self._out = out
        self._header_done = False

    def _line(self, cells: Iterable[str]) -> str:
        parts = [cell.ljust(width) for cell, (_, _, width) in zip(cells, self._columns)]
        return "  ".join(parts).rstrip()

    def header(self) -> None:
        if not self._header_done:
            self._out.write(self._line(header for header, _, _ in self._columns) + "\n")
            self._header_done = True

    def row(self, record: dict[str, Any]) -> None:
        self.header()
        self._out.write(self._line(fmt(record) for _, fmt, _ in self._columns) + "\n")

    def flush(self) -> None:
        self._out.flush()


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A static table in the house style (kubectl-like: plain, no borders)."""
    return tabulate(rows, headers=list(headers), tablefmt="plain", disable_numparse=True)


def cell(value: Any) -> str:
    return "-" if value is None else str(value)
