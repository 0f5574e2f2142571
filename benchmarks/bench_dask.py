"""Map on a Dask cluster of worker processes, each figure against a baseline of the same run.

Run ``python benchmarks/bench_dask.py [--quick] [--json FILE]`` (needs the ``dask`` extra).
One ``LocalCluster`` of 2 worker processes (1 thread each) on loopback serves every row.

1. Chunk sizing with no knob: 1,000 and 100,000 trivial items with no ``chunk_size``, against
   the best of several hand-tuned ``chunk_size`` values. Goal: <= 1.5x the tuned time.
2. A pure-Python CPU-bound function (it holds the GIL), over 600 items (about 4 s on threads,
   2 s on two processes): ``tw.map`` on the cluster against ``tw.map`` on threads (goal:
   >= 1.7x faster) and against the standard library's ``ProcessPoolExecutor(2).map`` (goal:
   >= 0.9x its speed). Then the same over 100 items, with no goal: on 0.3 s of work Dask's
   own fixed costs (the client's CPU per chunk, the scheduler, on the same two cores) weigh
   more than the chunking can win back.
3. ``tw.map(..., executor="auto")`` (no cluster: it starts on threads and may move to a
   process pool of its own): on the same CPU-bound function, over 600 items (about 4 s on
   threads: long enough for the move to pay for starting the processes, which takes about
   0.5 s here), against threads (goal: >= 1.5x faster, the start of its pool included), and
   on an I/O-bound one (``tw.sleep``) against threads (goal: stays on threads, <= 1.05x).

Contenders run in turn within each round, in the opposite order every other round. Times are
the medians of the rounds; the ratios of rows 2 and 3 are the medians of the per-round ratios
(two contenders of a round ran seconds apart, spared the drift of a shared machine's speed).
On a machine with other work running, the figures move from run to run: read the ratios.
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


def rounds(contenders: dict[str, Callable[[], object]], n: int) -> dict[str, list[float]]:
    """Seconds of each contender in each of ``n`` rounds: all run in turn within a round,
    in the opposite order every other round."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    order = list(contenders.items())
    for i in range(n):
        for name, fn in order if i % 2 == 0 else reversed(order):
            times[name].append(timed(fn))
    return times


def medians(times: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(values) for name, values in times.items()}


def ratio(times: dict[str, list[float]], numerator: str, denominator: str) -> float:
    """The median of the per-round ratios: two contenders of one round ran seconds apart, so
    their ratio is spared the drift of the machine's speed over the whole run (on a shared
    virtual machine the same work took from 1.7 to 2.6 s within a minute)."""
    pairs = zip(times[numerator], times[denominator], strict=True)
    return statistics.median(a / b for a, b in pairs)


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
        seconds = medians(rounds(contenders, 3 if quick else 7))
        idle = idle_workers(client, lambda: run(None))
        auto = seconds.pop("no chunk_size")
        best_name, best = min(seconds.items(), key=lambda pair: pair[1])
        rows.append(
            {
                "row": f"{n:,} trivial items, no chunk_size",
                "seconds": auto,
                "baseline": f"best tuned {best_name}: {best:.3f} s",
                "ratio": auto / best,
                "goal": "<= 1.5x",
                "met": auto / best <= 1.5,
                "all": {"no chunk_size": auto, **seconds},
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
    rows = _cpu_bound_rows(executor, client, 200 if quick else 600, quick, goals=True)
    # A shorter map, shown without a goal: Dask's own fixed cost per map and per chunk (the
    # client's CPU, the scheduler) weighs on 0.3 s of work on the pool as it does not on 2 s.
    return rows + _cpu_bound_rows(executor, client, 40 if quick else 100, quick, goals=False)


def _cpu_bound_rows(
    executor: concurrent.futures.Executor, client: Any, n: int, quick: bool, *, goals: bool
) -> list[dict[str, Any]]:
    items = [100_000] * n
    expected = spin(100_000) * len(items)
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        pool.submit(spin, 1).result()  # started before the clock runs, as the cluster is

        def check(results: Any) -> None:
            assert sum(results) == expected

        # The cluster runs between its two baselines, in either order: next to each.
        times = rounds(
            {
                "threads": lambda: check(tw.map(spin, items)),
                "cluster": lambda: check(tw.map(spin, items, executor=executor)),
                "ProcessPoolExecutor(2).map": lambda: check(pool.map(spin, items, chunksize=4)),
            },
            3 if quick else 9,
        )
        idle = idle_workers(client, lambda: check(tw.map(spin, items, executor=executor)))
    seconds = medians(times)
    cluster = seconds["cluster"]
    pool_time = seconds["ProcessPoolExecutor(2).map"]
    vs_threads = ratio(times, "threads", "cluster")
    vs_pool = ratio(times, "ProcessPoolExecutor(2).map", "cluster")
    return [
        {
            "row": f"pure-Python CPU-bound x {len(items)}, cluster vs threads",
            "seconds": cluster,
            "baseline": f"tw.map on threads: {seconds['threads']:.3f} s",
            "ratio": vs_threads,
            "goal": ">= 1.7x faster" if goals else "(shown only)",
            "met": vs_threads >= 1.7 if goals else None,
            "detail": idle,
        },
        {
            "row": f"pure-Python CPU-bound x {len(items)}, cluster vs process pool",
            "seconds": cluster,
            "baseline": f"ProcessPoolExecutor(2).map: {pool_time:.3f} s",
            "ratio": vs_pool,
            "goal": ">= 0.9x its speed" if goals else "(shown only)",
            "met": vs_pool >= 0.9 if goals else None,
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
    cpu_times = rounds(
        {
            "auto": lambda: check(run_auto(spin, items)),
            "threads": lambda: check(sum(tw.map(spin, items))),
        },
        n,
    )
    cpu = medians(cpu_times)
    cpu_decisions = decisions[:]
    decisions.clear()
    io_items = list(range(1_000 if quick else 3_000))
    io_times = rounds(
        {
            "auto": lambda: run_auto(io_bound, io_items),
            "threads": lambda: sum(tw.map(io_bound, io_items)),
        },
        n,
    )
    io = medians(io_times)
    cpu_ratio = ratio(cpu_times, "threads", "auto")
    io_ratio = ratio(io_times, "auto", "threads")
    moved = sum(d.startswith("processes") for d in cpu_decisions)
    stayed = sum(d.startswith("threads") for d in decisions)
    return [
        {
            "row": f"executor='auto', CPU-bound x {len(items)}, vs threads",
            "seconds": cpu["auto"],
            "baseline": f"tw.map on threads: {cpu['threads']:.3f} s",
            "ratio": cpu_ratio,
            "goal": ">= 1.5x faster",
            "met": cpu_ratio >= 1.5,
            "decisions": f"moved to processes in {moved} of {len(cpu_decisions)} runs; "
            f"last: {cpu_decisions[-1]}",
        },
        {
            "row": f"executor='auto', I/O-bound x {len(io_items)}, vs threads",
            "seconds": io["auto"],
            "baseline": f"tw.map on threads: {io['threads']:.3f} s",
            "ratio": io_ratio,
            "goal": "<= 1.05x, threads",
            "met": io_ratio <= 1.05 and stayed == len(decisions),
            "decisions": f"stayed on threads in {stayed} of {len(decisions)} runs; "
            f"last: {decisions[-1]}",
        },
    ]


def verdict(met: bool | None) -> str:
    return "-" if met is None else "PASS" if met else "FAIL"


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
            f"{row['ratio']:>5.2f}x  {row['goal']:<16}  {verdict(row['met'])}"
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
