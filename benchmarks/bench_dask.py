"""Map on a Dask cluster of worker processes, each figure against a baseline of the same run.

Run ``python benchmarks/bench_dask.py [--quick] [--json FILE]`` (needs the ``dask`` extra).
One ``LocalCluster`` of 2 worker processes (1 thread each) on loopback serves every row.

1. Chunk sizing with no knob: 1,000 and 100,000 trivial items with no ``chunk_size``, against
   the best of several hand-tuned ``chunk_size`` values. Goal: <= 1.5x the tuned time.
2. A pure-Python CPU-bound function (it holds the GIL): ``tw.map`` on the cluster against
   ``tw.map`` on threads (goal: >= 1.7x faster) and against the standard library's
   ``ProcessPoolExecutor(2).map`` (goal: >= 0.9x its speed).
3. ``tw.map(..., executor="auto")`` (no cluster: it starts on threads and may move to a
   process pool of its own): on the same CPU-bound function, over 600 items (about 4 s on
   threads: long enough for the move to pay for starting the processes, which takes about
   0.5 s here), against threads (goal: >= 1.5x faster, the start of its pool included), and
   on an I/O-bound one (``tw.sleep``) against threads (goal: stays on threads, <= 1.05x).

Contenders alternate within each round; every figure is the median of the rounds. On a
machine with other work running, the figures move from run to run: read the ratios.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import itertools
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import threadwise as tw


def identity(x: int) -> int:
    return x


def spin(n: int) -> int:
    """Pure Python, holds the GIL all along: about 7 ms for n=100,000 on a 2020s core."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def load() -> str:
    """The 1, 5 and 15 minute load averages: the figures move when other work runs."""
    if not hasattr(os, "getloadavg"):
        return "n/a"
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def rounds(contenders: dict[str, Callable[[], object]], n: int) -> dict[str, float]:
    """Median seconds of each contender, run in turn within each of ``n`` rounds."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(n):
        for name, fn in contenders.items():
            times[name].append(timed(fn))
    return {name: statistics.median(values) for name, values in times.items()}


def chunk_sizing(
    executor: concurrent.futures.Executor, client: Any, quick: bool
) -> list[dict[str, Any]]:
    rows = []
    cases = [(1_000, (10, 100, 1_000)), (100_000, (1_000, 10_000, 100_000))]
    for n, sizes in cases:
        items = range(n)
        expected = n * (n - 1) // 2

        def run(chunk_size: int | None, items: range = items, expected: int = expected) -> None:
            assert sum(tw.map(identity, items, executor=executor, chunk_size=chunk_size)) == (
                expected
            )

        contenders: dict[str, Callable[[], object]] = {"no chunk_size": lambda: run(None)}
        for size in sizes:
            contenders[f"chunk_size={size:,}"] = lambda size=size: run(size)  # type: ignore[misc]
        medians = rounds(contenders, 3 if quick else 7)
        idle = idle_workers(client, lambda: run(None))
        auto = medians.pop("no chunk_size")
        best_name, best = min(medians.items(), key=lambda pair: pair[1])
        rows.append(
            {
                "row": f"{n:,} trivial items, no chunk_size",
                "seconds": auto,
                "baseline": f"best tuned {best_name}: {best:.3f} s",
                "ratio": auto / best,
                "goal": "<= 1.5x",
                "met": auto / best <= 1.5,
                "all": {"no chunk_size": auto, **medians},
                "detail": idle,
            }
        )
    return rows


def idle_workers(client: Any, run: Callable[[], object]) -> str:
    """One more run of ``run``, with Dask's task stream on: how long each worker sat idle
    (before its first chunk, between chunks, after its last one until the run ended), how
    many chunks it ran, and the CPU time of this process (client, event loop and all)."""
    from distributed import get_task_stream

    with get_task_stream(client) as stream:
        started = time.time()
        cpu = time.process_time()
        run()
        cpu = time.process_time() - cpu
        ended = time.time()
    spans: dict[str, list[tuple[float, float]]] = {}
    for task in stream.data:
        for part in task["startstops"]:
            if part["action"] == "compute":
                spans.setdefault(task["worker"], []).append((part["start"], part["stop"]))
    out = []
    for index, (_, worker) in enumerate(sorted(spans.items())):
        worker.sort()
        first = worker[0][0] - started
        last = ended - worker[-1][1]
        between = sum(b[0] - a[1] for a, b in itertools.pairwise(worker))
        out.append(
            f"worker {index + 1}: {len(worker)} chunks, idle {first * 1e3:.0f} ms before the "
            f"first, {between * 1e3:.0f} ms between, {last * 1e3:.0f} ms after the last"
        )
    return f"run {ended - started:.3f} s, client CPU {cpu * 1e3:.0f} ms; " + "; ".join(out)


def cpu_bound(
    executor: concurrent.futures.Executor, client: Any, quick: bool
) -> list[dict[str, Any]]:
    items = [100_000] * (40 if quick else 100)
    expected = spin(100_000) * len(items)
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        pool.submit(spin, 1).result()  # started before the clock runs, as the cluster is

        def check(results: Any) -> None:
            assert sum(results) == expected

        medians = rounds(
            {
                "cluster": lambda: check(tw.map(spin, items, executor=executor)),
                "threads": lambda: check(tw.map(spin, items)),
                "ProcessPoolExecutor(2).map": lambda: check(pool.map(spin, items, chunksize=4)),
            },
            3 if quick else 5,
        )
        idle = idle_workers(client, lambda: check(tw.map(spin, items, executor=executor)))
    cluster = medians["cluster"]
    pool_time = medians["ProcessPoolExecutor(2).map"]
    return [
        {
            "row": f"pure-Python CPU-bound x {len(items)}, cluster vs threads",
            "seconds": cluster,
            "baseline": f"tw.map on threads: {medians['threads']:.3f} s",
            "ratio": medians["threads"] / cluster,
            "goal": ">= 1.7x faster",
            "met": medians["threads"] / cluster >= 1.7,
            "detail": idle,
        },
        {
            "row": f"pure-Python CPU-bound x {len(items)}, cluster vs process pool",
            "seconds": cluster,
            "baseline": f"ProcessPoolExecutor(2).map: {pool_time:.3f} s",
            "ratio": pool_time / cluster,
            "goal": ">= 0.9x its speed",
            "met": pool_time / cluster >= 0.9,
        },
    ]


def io_bound(x: int) -> int:
    tw.sleep(0.002)
    return x


def auto(quick: bool) -> list[dict[str, Any]]:
    items = [100_000] * (200 if quick else 600)
    expected = spin(100_000) * len(items)
    decisions: list[str] = []

    def run_auto(fn: Callable[[int], int], items: list[int]) -> int:
        out = tw.map(fn, items, executor="auto")
        total = sum(out)
        decisions.append(getattr(out, "decision", ""))
        return total

    def check(total: int) -> None:
        assert total == expected

    n = 3 if quick else 5
    cpu = rounds(
        {
            "auto": lambda: check(run_auto(spin, items)),
            "threads": lambda: check(sum(tw.map(spin, items))),
        },
        n,
    )
    cpu_decisions = decisions[:]
    decisions.clear()
    io_items = list(range(1_000 if quick else 3_000))
    io = rounds(
        {
            "auto": lambda: run_auto(io_bound, io_items),
            "threads": lambda: sum(tw.map(io_bound, io_items)),
        },
        n,
    )
    moved = sum(d.startswith("processes") for d in cpu_decisions)
    stayed = sum(d.startswith("threads") for d in decisions)
    return [
        {
            "row": f"executor='auto', CPU-bound x {len(items)}, vs threads",
            "seconds": cpu["auto"],
            "baseline": f"tw.map on threads: {cpu['threads']:.3f} s",
            "ratio": cpu["threads"] / cpu["auto"],
            "goal": ">= 1.5x faster",
            "met": cpu["threads"] / cpu["auto"] >= 1.5,
            "decisions": f"moved to processes in {moved} of {len(cpu_decisions)} runs; "
            f"last: {cpu_decisions[-1]}",
        },
        {
            "row": f"executor='auto', I/O-bound x {len(io_items)}, vs threads",
            "seconds": io["auto"],
            "baseline": f"tw.map on threads: {io['threads']:.3f} s",
            "ratio": io["auto"] / io["threads"],
            "goal": "<= 1.05x, threads",
            "met": io["auto"] / io["threads"] <= 1.05 and stayed == len(decisions),
            "decisions": f"stayed on threads in {stayed} of {len(decisions)} runs; "
            f"last: {decisions[-1]}",
        },
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, smaller inputs")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    parser.add_argument("--only", choices=("chunks", "cpu", "auto"), help="run one part")
    args = parser.parse_args(argv)
    try:
        import distributed
    except ModuleNotFoundError:
        print("bench_dask needs the dask extra: pip install 'threadwise[dask]'", file=sys.stderr)
        return 2
    dask: Any = distributed  # distributed has no type hints
    load_at_start = load()
    rows: list[dict[str, Any]] = []
    with (
        dask.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        dask.Client(cluster) as client,
    ):
        executor = client.get_executor()
        sum(tw.map(identity, range(100), executor=executor))  # workers warm, fn cached
        if args.only in (None, "chunks"):
            rows += chunk_sizing(executor, client, args.quick)
        if args.only in (None, "cpu"):
            rows += cpu_bound(executor, client, args.quick)
        if args.only in (None, "auto"):
            rows += auto(args.quick)
    print(f"load average at start: {load_at_start}, at end: {load()}")
    header = ("benchmark", "seconds", "baseline", "ratio", "goal", "result")
    print("{:<58}  {:>8}  {:<44}  {:>6}  {:<16}  {}".format(*header))
    for row in rows:
        print(
            f"{row['row']:<58}  {row['seconds']:>8.3f}  {row['baseline']:<44}  "
            f"{row['ratio']:>5.2f}x  {row['goal']:<16}  {'PASS' if row['met'] else 'FAIL'}"
        )
        if "all" in row:
            print("    " + ", ".join(f"{k}: {v:.3f} s" for k, v in row["all"].items()))
        if "decisions" in row:
            print(f"    {row['decisions']}")
        if "detail" in row:
            print(f"    no chunk_size, once more: {row['detail']}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(rows, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
