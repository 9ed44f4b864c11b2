"""Load a gadget's object and attach its programs.

Two shapes. ``attach_first``: an object with one program per attach type for
the same hook (``tp_btf`` first: direct BTF access; ``raw_tp``; the classic
tracepoint, which needs tracefs), of which exactly one is autoloaded: a
program that is not loaded is not verified either, so an unsupported variant
costs nothing. ``attach_available``: an object with one program per hook,
where every hook the kernel offers is attached and the others are reported
(for ``preflight``) instead of failing the run.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable, Mapping, Sequence

from kubectl_bpf.agent import errors, libbpf, verifier


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
    missing: tuple[tuple[str, str], ...] = ()  # (hook, why) for hooks this kernel cannot run
    # What this kernel lets the gadget do (reasons, headers, what is degraded), for preflight.
    mode: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Attached:
    obj: libbpf.Object
    program: libbpf.Program
    link: libbpf.Link
    hook: str
    load_ms: float

    def info(self, mode: Mapping[str, Any] | None = None) -> AttachInfo:
        return AttachInfo(hook=self.hook, load_ms=self.load_ms, prog_id=int(self.program.info().id),
                          mode=dict(mode or {}))

    def detach(self) -> None:
        self.link.destroy()

    def close(self) -> None:
        self.link.destroy()
        self.obj.close()


def load_object(obj: libbpf.Object, programs: Sequence[str]) -> None:
    """Load the object. If the verifier rejects one of these (autoloaded)
    programs, raise one line naming kernel, program and the verifier's cause,
    the whole log in a file (verifier.rejection), never the log itself."""
    loading = [obj.program(name) for name in programs]
    for program in loading:
        program.capture_log()
    try:
        obj.load()
    except libbpf.LibbpfError as exc:
        rejected = [(program.name, log) for program in loading if (log := program.verifier_log())]
        if not rejected:
            raise
        name, log = rejected[0]
        raise libbpf.LibbpfError(exc.errno, verifier.rejection(os.uname().release, name, log)) from exc
    for program in loading:
        program.verifier_log()  # frees the buffer


def attach_first(path: str, variants: Sequence[Variant], *,
                 configure: Callable[[libbpf.Object], None],
                 populate: Callable[[libbpf.Object], None]) -> Attached:
    """Open, configure (rodata, map sizes), load, populate (filter maps) and
    attach the first variant the kernel accepts. Populating before attaching
    means no drop is judged against half-filled filters. Both callbacks run
    again for each attempt: every attempt opens a fresh object. A verifier
    rejection is reported as one line, its whole log in a file."""
    failures = []
    for variant in variants:
        started = time.monotonic()
        obj = libbpf.Object(path)
        try:
            for program in obj.programs():  # the object's others too (variants may be a subset)
                program.set_autoload(program.name == variant.program)
            configure(obj)
            load_object(obj, [variant.program])
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


@dataclasses.dataclass(frozen=True)
class Hook:
    """One tracepoint of a multi-hook gadget and the program attached to it."""

    program: str  # name of the C function
    hook: str  # e.g. "tp_btf/inet_sock_set_state"
    btf_type: str  # "btf_trace_<event>": absent from the kernel's BTF = no such tracepoint
    required: bool = False  # without it the gadget has nothing to say: fail the run


@dataclasses.dataclass
class AttachedSet:
    obj: libbpf.Object
    programs: dict[str, libbpf.Program]  # hook -> program, attached ones only
    links: list[libbpf.Link]
    missing: dict[str, str]  # hook -> why it is not attached
    load_ms: float

    def info(self) -> AttachInfo:
        first = next(iter(self.programs.values()))
        return AttachInfo(hook=",".join(self.programs), load_ms=self.load_ms,
                          prog_id=int(first.info().id), missing=tuple(self.missing.items()))

    def recursion_misses(self) -> int:
        return sum(int(program.info().recursion_misses) for program in self.programs.values())

    def detach(self) -> None:
        for link in self.links:
            link.destroy()

    def close(self) -> None:
        self.detach()
        self.obj.close()


def _load(path: str, hooks: Sequence[Hook], chosen: Sequence[Hook], *,
          configure: Callable[[libbpf.Object], None]) -> libbpf.Object:
    """Open and load with only the chosen hooks' programs autoloaded."""
    obj = libbpf.Object(path)
    try:
        for hook in hooks:
            obj.program(hook.program).set_autoload(hook in chosen)
        configure(obj)
        load_object(obj, [hook.program for hook in chosen])
    except BaseException:
        obj.close()
        raise
    return obj


def attach_available(path: str, hooks: Sequence[Hook], *, kernel_has: Callable[[str], bool],
                     configure: Callable[[libbpf.Object], None],
                     populate: Callable[[libbpf.Object], None]) -> AttachedSet:
    """Load and attach every hook this kernel offers; the rest go to ``missing``.

    A hook is offered when its ``btf_trace_*`` type is in the kernel's BTF
    (kernel_has). The verifier may still refuse a program (lockdown, an old
    verifier): the object then loads once per program to find which, and once
    more without them. Populating before attaching means no event is judged
    against half-filled filters. Raises UnsupportedError when a required hook
    is missing or nothing could be attached."""
    started = time.monotonic()
    missing = {hook.hook: f"this kernel has no such tracepoint ({hook.btf_type} is not in its BTF)"
               for hook in hooks if not kernel_has(hook.btf_type)}
    chosen = [hook for hook in hooks if hook.hook not in missing]
    try:
        obj = _load(path, hooks, chosen, configure=configure)
    except libbpf.LibbpfError:
        for hook in list(chosen):
            try:
                _load(path, hooks, [hook], configure=configure).close()
            except libbpf.LibbpfError as exc:
                missing[hook.hook] = f"the kernel refused the program: {exc}"
                chosen.remove(hook)
        _require(hooks, chosen, missing)
        obj = _load(path, hooks, chosen, configure=configure)
    attached = AttachedSet(obj=obj, programs={}, links=[], missing=missing, load_ms=0.0)
    try:
        populate(obj)
        for hook in chosen:
            program = obj.program(hook.program)
            try:
                attached.links.append(program.attach())
            except libbpf.LibbpfError as exc:
                missing[hook.hook] = f"attach failed: {exc}"
                continue
            attached.programs[hook.hook] = program
        _require(hooks, [hook for hook in chosen if hook.hook in attached.programs], missing)
    except BaseException:
        attached.close()
        raise
    attached.load_ms = (time.monotonic() - started) * 1000
    return attached


def _require(hooks: Sequence[Hook], chosen: Sequence[Hook], missing: dict[str, str]) -> None:
    lacking = [hook for hook in hooks if hook.required and hook not in chosen]
    if lacking or not chosen:
        raise errors.UnsupportedError("cannot trace: " + "; ".join(
            f"{hook.hook}: {missing.get(hook.hook, 'not attached')}" for hook in (lacking or hooks)))
