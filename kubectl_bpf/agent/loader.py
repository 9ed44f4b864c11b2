"""Load a gadget's object and attach one of its programs, falling back along
the hook order when the kernel refuses one.

A gadget object carries one program per attach type for the same hook
(``tp_btf`` first: direct BTF access; ``raw_tp``; the classic tracepoint,
which needs tracefs). Exactly one is autoloaded: a program that is not
loaded is not verified either, so an unsupported variant costs nothing.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Sequence

from kubectl_bpf.agent import errors, libbpf


@dataclasses.dataclass(frozen=True)
class Variant:
    program: str  # name of the C function
    hook: str  # what the preflight record reports, e.g. "tp_btf/kfree_skb"


@dataclasses.dataclass(frozen=True)
class AttachInfo:
    """What the stream reports about the attachment (preflight and ready)."""

    hook: str
    load_ms: float
    prog_id: int  # kernel program id, for audit (`bpftool prog show id N`)


@dataclasses.dataclass
class Attached:
    obj: libbpf.Object
    program: libbpf.Program
    link: libbpf.Link
    hook: str
    load_ms: float

    def info(self) -> AttachInfo:
        return AttachInfo(hook=self.hook, load_ms=self.load_ms, prog_id=int(self.program.info().id))

    def detach(self) -> None:
        self.link.destroy()

    def close(self) -> None:
        self.link.destroy()
        self.obj.close()


def attach_first(path: str, variants: Sequence[Variant], *,
                 configure: Callable[[libbpf.Object], None],
                 populate: Callable[[libbpf.Object], None]) -> Attached:
    """Open, configure (rodata, map sizes), load, populate (filter maps) and
    attach the first variant the kernel accepts. Populating before attaching
    means no drop is judged against half-filled filters. Both callbacks run
    again for each attempt: every attempt opens a fresh object."""
    failures = []
    for variant in variants:
        started = time.monotonic()
        obj = libbpf.Object(path)
        try:
            for other in variants:
                obj.program(other.program).set_autoload(other is variant)
            configure(obj)
            obj.load()
            populate(obj)
            program = obj.program(variant.program)
            link = program.attach()
        except libbpf.LibbpfError as exc:
            obj.close()
            failures.append(f"{variant.hook}: {exc}")
            continue
        except BaseException:
            obj.close()
            raise
        return Attached(obj=obj, program=program, link=link, hook=variant.hook,
                        load_ms=(time.monotonic() - started) * 1000)
    raise errors.UnsupportedError("could not attach any program: " + "; ".join(failures))
