"""``python3 -m tests.kernels run [--kernels 6.1,6.12] [--jobs 2] [-- PYTEST ARGS]``.

Exit status 0 only when every selected kernel booted, finished and passed every test it ran.
``readme`` rewrites the README's Kernels table from the committed results (``kernels.json``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import glob
import json
import os
import sys
import time

from tests.kernels import boot, cache, fetch, matrix, readme, results, rootfs

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESULTS_JSON = os.path.join(REPO, "tests", "kernels", "kernels.json")


def run_one(kernel: matrix.Kernel, files: fetch.KernelFiles, archives: list[str], *, cache_dir: str,
            timeout_s: float) -> results.KernelResult:
    result = results.KernelResult(kernel.name, files.release, files.package)
    run_dir = os.path.join(cache_dir, "runs", kernel.name)
    console, results_file, seconds = boot.boot(kernel, run_dir, files.vmlinuz,
                                               [archives[0], files.modules_cpio, archives[1]],
                                               timeout_s=timeout_s)
    result.boot_s = round(seconds, 1)
    with open(results_file, encoding="utf-8", errors="replace") as f:
        results.parse(result, f.read())
    if not result.finished:
        with open(console, encoding="utf-8", errors="replace") as f:
            tail = f.read().splitlines()[-15:]
        cache.log(f"{kernel.name}: did not finish; console tail:\n  " + "\n  ".join(tail))
    cache.log(f"{kernel.name}: {'ok' if result.ok else 'FAILED'} in {seconds:.0f} s "
              f"(console {console})")
    return result


def cmd_run(args: argparse.Namespace) -> int:
    kernels = matrix.select(args.kernels)
    if not glob.glob(os.path.join(REPO, "kubectl_bpf", "gadgets", "*", "*.bpf.o")):
        raise SystemExit("no compiled BPF objects: run `make bpf` first")
    os.makedirs(args.cache, exist_ok=True)
    started = time.monotonic()
    fetched = {s: fetch.fetch(args.cache, s) for s in dict.fromkeys(k.suite for k in kernels)}
    pytest_args = args.pytest_args or list(matrix.WHOLE_TIER if args.whole_tier else matrix.SUBSET)
    archives = [rootfs.build(args.cache), rootfs.source_cpio(REPO, args.cache, pytest_args)]
    prepared = time.monotonic() - started
    cache.log(f"prepared kernels and rootfs in {prepared:.0f} s")
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_one, k, fetched[k.suite], archives, cache_dir=args.cache,
                               timeout_s=args.timeout) for k in kernels]
        outcomes = [f.result() for f in futures]
    total = time.monotonic() - started
    record = {"pytest_args": pytest_args, "prepare_s": round(prepared), "total_s": round(total),
              "kernels": [r.to_json() for r in outcomes]}
    with open(os.path.join(args.cache, "results.json"), "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)
    if args.write_results:
        with open(RESULTS_JSON, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1)
            f.write("\n")
    for r in outcomes:
        for failure in r.failures:
            print(f"{r.kernel}: FAILED {failure}")
        if r.preflight_error:
            print(f"{r.kernel}: agent refused: {r.preflight_error}")
    print(results.table(outcomes))
    print(f"total {total:.0f} s (prepare {prepared:.0f} s); results in {args.cache}/results.json")
    return 0 if all(r.ok for r in outcomes) else 1


def cmd_readme(args: argparse.Namespace) -> int:
    readme.update(os.path.join(REPO, "README.md"), RESULTS_JSON)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tests.kernels")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="fetch, build, boot every kernel, run the agent tier inside")
    run.add_argument("--kernels", default="all",
                     help=f"comma-separated: {', '.join(k.name for k in matrix.MATRIX)}")
    run.add_argument("--jobs", type=int, default=2, help="VMs booted at once")
    run.add_argument("--timeout", type=float, default=1200, help="seconds per boot before it is killed")
    run.add_argument("--cache", default=cache.DEFAULT_CACHE)
    run.add_argument("--write-results", action="store_true",
                     help=f"also write {os.path.relpath(RESULTS_JSON, REPO)} (the README table's data)")
    run.add_argument("--whole-tier", action="store_true", help="run all of tests/agent, not matrix.SUBSET")
    run.add_argument("pytest_args", nargs="*", help="after --: pytest arguments (default: matrix.SUBSET)")
    run.set_defaults(func=cmd_run)
    readme_cmd = sub.add_parser("readme", help="rewrite README's Kernels table from kernels.json")
    readme_cmd.set_defaults(func=cmd_readme)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
