"""Run ``kubectl-bpf <gadget> --local -o json`` as a separate process and collect
its records, the way a script or the plugin's Job would consume it."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Optional

# Start-up (imports, BTF, verification) takes ~1 s natively but can pass 10 s in an
# emulated (qemu TCG) guest on a loaded machine: a kernel matrix raises this.
READY_TIMEOUT_S = float(os.environ.get("KUBECTL_BPF_TEST_READY_TIMEOUT_S", "10"))


class Tracer:
    def __init__(self, *args: str, gadget: str = "drops") -> None:
        self.args = [sys.executable, "-m", "kubectl_bpf", gadget, "--local", "-o", "json", *args]
        self.records: list[dict[str, Any]] = []
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.stderr = ""

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            record = json.loads(line)
            self.records.append(record)
            self._queue.put(record)

    def wait_for(self, record_type: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {record_type} record within {timeout}s: {self.records[-3:]}")
            try:
                record = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if record["type"] == record_type:
                return record
            if record["type"] == "end" and record_type != "end":
                raise AssertionError(f"stream ended before {record_type}: {self.records[-3:]}")

    def ready(self) -> "Tracer":
        self.wait_for("ready", READY_TIMEOUT_S)
        return self

    def settle(self, seconds: float = 0.5) -> None:
        """Let events below the wakeup threshold reach the stream (it polls
        with a 100 ms timeout)."""
        time.sleep(seconds)

    def stop(self, signum: int = signal.SIGINT, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        return self.finish(timeout)

    def finish(self, timeout: float = 15.0) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        assert self.proc.stderr is not None and self.proc.stdout is not None
        self.stderr = self.proc.stderr.read()
        self.proc.stderr.close()
        self.proc.stdout.close()
        return code

    def of_type(self, record_type: str) -> list[dict[str, Any]]:
        return [record for record in self.records if record["type"] == record_type]

    @property
    def summary(self) -> dict[str, Any]:
        (summary,) = self.of_type("summary")
        return summary

    def drops(self, *, dport: Optional[int] = None) -> list[dict[str, Any]]:
        return [r for r in self.of_type("drop") if dport is None or r["dport"] == dport]

    def kill(self) -> None:
        """Idempotent cleanup for tests that failed before finish()."""
        if self.proc.poll() is None:
            self.proc.kill()
        if self.proc.stdout is not None and not self.proc.stdout.closed:
            self.finish()
