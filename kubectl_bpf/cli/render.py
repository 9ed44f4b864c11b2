"""Human output: a live table printed row by row, and summary tables.

Columns come from the gadgets' schemas. The live table cannot use tabulate
(rows arrive one at a time), so it pads to fixed widths. On a terminal it
fits the terminal's width: optional columns go first, then the widest
columns are narrowed and long values elided in the middle (an address keeps
its port). Elsewhere (a pipe, a file) and with ``-o wide`` nothing is cut: a
long value pushes its own line and the next one lines up with the header again.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Optional, Sequence, TextIO

from tabulate import tabulate

Formatter = Callable[[dict[str, Any]], str]

GAP = 2  # spaces between columns
MIN_WIDTH = 6  # narrower than this a cell says nothing; the header may be wider
# A line this much longer than the terminal drops optional columns before
# narrowing the rest: at 80 columns the drops table (157) would otherwise be
# cut to 7 characters a cell.
OVERFLOW_TO_DROP = 1.25
ELLIPSIS = "~"  # ASCII: a terminal or log in any encoding shows it


def terminal_width(out: TextIO) -> Optional[int]:
    """The terminal's width when ``out`` is one, else None (do not fit)."""
    try:
        if not out.isatty():
            return None
        return os.get_terminal_size(out.fileno()).columns
    except (AttributeError, OSError, ValueError):  # not a real file (tests, wrappers)
        return None


def elide(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, cut in the middle: both
    ends of an address or a name carry the meaning."""
    if len(text) <= width:
        return text
    if width <= len(ELLIPSIS):
        return text[:width]
    tail = (width - len(ELLIPSIS)) // 2
    return text[:width - len(ELLIPSIS) - tail] + ELLIPSIS + text[len(text) - tail:]


def fit_columns(headers: Sequence[str], widths: Sequence[int], total: int,
                optional: Sequence[str] = ()) -> tuple[list[int], list[int]]:
    """(kept column indexes, their widths) for a line of at most ``total``
    characters. While the line is more than OVERFLOW_TO_DROP too long,
    ``optional`` columns go, in order (narrowing alone would leave every cell
    useless); then the widest column loses one character at a time (ties: the
    rightmost) down to MIN_WIDTH or its header."""
    kept = list(range(len(headers)))
    sizes = list(widths)

    def length() -> int:
        return sum(sizes[i] for i in kept) + GAP * (len(kept) - 1)

    for header in optional:
        if length() <= total * OVERFLOW_TO_DROP:
            break
        if header in headers and headers.index(header) in kept:
            kept.remove(headers.index(header))
    floor = [max(MIN_WIDTH, len(header)) for header in headers]
    while length() > total:
        shrinkable = [i for i in kept if sizes[i] > floor[i]]
        if not shrinkable:
            break  # even the narrowest cells do not fit: the line wraps
        sizes[max(shrinkable, key=lambda i: (sizes[i], i))] -= 1
    return kept, [sizes[i] for i in kept]


class LiveTable:
    """Prints a header once, then one line per record, every column at a
    fixed width so rows stay aligned with the header. ``width`` (default:
    the terminal's, None elsewhere) makes it fit; ``optional`` names the
    columns that may be left out to fit, first to go first."""

    def __init__(self, columns: Sequence[tuple[str, Formatter, int]], out: TextIO, *,
                 width: Optional[int] = None, fit: bool = True, optional: Sequence[str] = ()) -> None:
        headers = [header for header, _, _ in columns]
        widths = [max(size, len(header)) for header, _, size in columns]
        total = (width if width is not None else terminal_width(out)) if fit else None
        kept = list(range(len(columns)))
        if total is not None:
            kept, widths = fit_columns(headers, widths, total, optional)
        else:
            widths = [widths[i] for i in kept]
        self._headers = [headers[i] for i in kept]
        self._formatters = [columns[i][1] for i in kept]
        self._widths = widths
        self._cut = total is not None  # elide long values: the line must not wrap
        self._out = out
        self._header_done = False

    def _line(self, cells: Sequence[str]) -> str:
        if self._cut:
            cells = [elide(text, width) for text, width in zip(cells, self._widths)]
        return (" " * GAP).join(text.ljust(width) for text, width in zip(cells, self._widths)).rstrip()

    def header(self) -> None:
        if not self._header_done:
            self._out.write(self._line(self._headers) + "\n")
            self._header_done = True

    def row(self, record: dict[str, Any]) -> None:
        self.header()
        self._out.write(self._line([fmt(record) for fmt in self._formatters]) + "\n")

    def flush(self) -> None:
        self._out.flush()


class Redraw:
    """A block of text redrawn in place on a terminal (``--aggregate``): the
    cursor goes back up over the previous block, which is erased, so the
    terminal's scrollback keeps one copy instead of one per refresh (clearing
    the screen pushed every refresh into it). Off a terminal each block is
    appended: a log keeps every refresh."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._tty = terminal_width(out) is not None
        self._lines = 0  # lines of the block on screen now

    def show(self, text: str) -> None:
        if self._tty and self._lines:
            # Up to the block's first line, erase its lines one by one (EL), and back up:
            # erase-below from the top of the screen would push the block into tmux's history.
            up = f"\x1b[{self._lines}A"
            self._out.write("\r" + up + "\x1b[2K\x1b[1B" * self._lines + up)
        self._out.write(text)
        self._lines = text.count("\n")
        self._out.flush()


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A static table in the house style (kubectl-like: plain, no borders)."""
    return tabulate(rows, headers=list(headers), tablefmt="plain", disable_numparse=True)


def cell(value: Any) -> str:
    return "-" if value is None else str(value)
