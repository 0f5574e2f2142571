"""Kernel benchmarks: cancel-to-wake latency of every blocking wait, and per-task overhead.

Run ``python benchmarks/bench_kernel.py [--quick] [--json FILE] [--strict]``.

1. Cancel-to-wake latency: a task blocks in one threadwise wait; the main thread calls
   ``task.cancel()``; the task's ``except Cancelled`` handler records the time. The latency is
   the time from the ``cancel()`` call to that record. Target: p99 < 10 ms.
2. Spawn + result overhead: N trivial tasks through ``TaskGroup(max_workers=16)`` against
   ``ThreadPoolExecutor(16).submit`` + ``.result()``, both measured in this run.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import threadwise as tw

LATENCY_TARGET_MS = 10.0
WORKERS = 16
# How long a trial may take to reach its wait before the benchmark gives up on it.
SETUP_LIMIT = 10.0

Wait = Callable[[], object]
Cleanup = Callable[[], None]


def _nothing() -> None:
    pass


# -- the waits under test ---------------------------------------------------------------------
# Each setup returns the blocking call a task will make and what undoes the setup afterwards.


def _sleep() -> tuple[Wait, Cleanup]:
    return lambda: tw.sleep(60), _nothing


def _event_wait() -> tuple[Wait, Cleanup]:
    return tw.Event(name="never set").wait, _nothing


def _lock_acquire() -> tuple[Wait, Cleanup]:
    lock = tw.Lock(name="held by main")
    lock.acquire()  # held by the main thread, so the task's acquire blocks
    return lock.acquire, lock.release


def _rlock_acquire() -> tuple[Wait, Cleanup]:
    lock = tw.RLock(name="held by main")
    lock.acquire()
    return lock.acquire, lock.release


def _semaphore_acquire() -> tuple[Wait, Cleanup]:
    return tw.Semaphore(0, name="empty").acquire, _nothing


def _condition_wait() -> tuple[Wait, Cleanup]:
    cond = tw.Condition(name="never notified")

    def wait() -> None:
        with cond:
            cond.wait()

    return wait, _nothing


def _queue_get() -> tuple[Wait, Cleanup]:
    q: tw.Queue[int] = tw.Queue(name="empty")
    return q.get, _nothing


def _queue_put() -> tuple[Wait, Cleanup]:
    q: tw.Queue[int] = tw.Queue(maxsize=1, name="full")
    q.put(0)
    return lambda: q.put(1), _nothing


def _task_join() -> tuple[Wait, Cleanup]:
    release = tw.Event(name="release target")
    target = tw.spawn(release.wait)

    def cleanup() -> None:
        release.set()
        target.result(SETUP_LIMIT)

    return target.join, cleanup


WAITS: list[tuple[str, Callable[[], tuple[Wait, Cleanup]]]] = [
    ("tw.sleep", _sleep),
    ("Event.wait", _event_wait),
    ("Lock.acquire", _lock_acquire),
    ("RLock.acquire", _rlock_acquire),
    ("Semaphore.acquire", _semaphore_acquire),
    ("Condition.wait", _condition_wait),
    ("Queue.get", _queue_get),
    ("Queue.put", _queue_put),
    ("Task.join", _task_join),
]


# -- cancel-to-wake latency -------------------------------------------------------------------


@dataclass
class Latency:
    primitive: str
    trials: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    passed: bool


def _waiter(wait: Wait, woke: list[float]) -> None:
    try:
        wait()
    except tw.Cancelled:
        woke.append(time.perf_counter())
        raise
    raise RuntimeError("the wait returned although nobody cancelled it")


def _wait_until_blocked(task: tw.Task[None]) -> None:
    end = time.monotonic() + SETUP_LIMIT
    while task.state is not tw.State.BLOCKED:
        if task.done() or time.monotonic() > end:
            raise RuntimeError(f"{task!r} never blocked (it is {task.state.name})")
        time.sleep(0.0002)


def _one_trial(name: str, setup: Callable[[], tuple[Wait, Cleanup]]) -> float:
    """Seconds from ``task.cancel()`` to the task's handler seeing ``Cancelled``."""
    wait, cleanup = setup()
    woke: list[float] = []
    task = tw.spawn(_waiter, wait, woke)
    try:
        _wait_until_blocked(task)
        start = time.perf_counter()
        task.cancel()
        task.join(SETUP_LIMIT)
    finally:
        cleanup()
    if not task.join(SETUP_LIMIT) or not task.cancelled() or len(woke) != 1:
        task.exception(0)  # re-raises whatever went wrong in the task, if anything
        raise RuntimeError(f"{name}: the task did not end cancelled ({task.state.name})")
    return woke[0] - start


def _percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = math.ceil(fraction * len(sorted_values) - 1e-9)
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]


def measure_latency(trials: int) -> list[Latency]:
    results = []
    for name, setup in WAITS:
        _one_trial(name, setup)  # warm-up, not counted
        samples = sorted(_one_trial(name, setup) * 1000 for _ in range(trials))
        p99 = _percentile(samples, 0.99)
        results.append(
            Latency(
                primitive=name,
                trials=trials,
                p50_ms=_percentile(samples, 0.50),
                p99_ms=p99,
                max_ms=samples[-1],
                passed=p99 < LATENCY_TARGET_MS,
            )
        )
    return results


# -- spawn + result overhead ------------------------------------------------------------------


@dataclass
class Overhead:
    tasks: int
    workers: int
    rounds: int
    threadwise_us_per_task: float
    threadpoolexecutor_us_per_task: float
    ratio: float


def _trivial(x: int) -> int:
    return x + 1


def _run_taskgroup(n: int) -> float:
    start = time.perf_counter()
    with tw.TaskGroup(name="bench", max_workers=WORKERS) as g:
        tasks = [g.spawn(_trivial, i) for i in range(n)]
    total = sum(t.result() for t in tasks)
    elapsed = time.perf_counter() - start
    if total != n * (n + 1) // 2:
        raise RuntimeError("TaskGroup returned wrong results")
    return elapsed


def _run_executor(n: int) -> float:
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as ex:
        futures = [ex.submit(_trivial, i) for i in range(n)]
        total = sum(f.result() for f in futures)
    elapsed = time.perf_counter() - start
    if total != n * (n + 1) // 2:
        raise RuntimeError("ThreadPoolExecutor returned wrong results")
    return elapsed


def measure_overhead(n: int, rounds: int) -> Overhead:
    _run_taskgroup(min(n, 1000))  # warm-up both, not counted
    _run_executor(min(n, 1000))
    tw_times: list[float] = []
    tpe_times: list[float] = []
    for i in range(rounds):  # alternate the order so neither always runs first
        if i % 2:
            tpe_times.append(_run_executor(n))
            tw_times.append(_run_taskgroup(n))
        else:
            tw_times.append(_run_taskgroup(n))
            tpe_times.append(_run_executor(n))
    tw_us = statistics.median(tw_times) / n * 1e6
    tpe_us = statistics.median(tpe_times) / n * 1e6
    return Overhead(
        tasks=n,
        workers=WORKERS,
        rounds=rounds,
        threadwise_us_per_task=tw_us,
        threadpoolexecutor_us_per_task=tpe_us,
        ratio=tw_us / tpe_us,
    )


# -- report -----------------------------------------------------------------------------------


def format_report(latencies: list[Latency], overhead: Overhead) -> str:
    lines = [
        f"threadwise {tw.__version__} kernel benchmark "
        f"(Python {platform.python_version()}, {platform.system()} {platform.machine()})",
        "",
        f"Cancel-to-wake latency (task.cancel() -> except Cancelled in the task), "
        f"target p99 < {LATENCY_TARGET_MS:g} ms",
        f"  {'wait':<18} {'trials':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  result",
    ]
    for lat in latencies:
        lines.append(
            f"  {lat.primitive:<18} {lat.trials:>6} {lat.p50_ms:>8.3f} {lat.p99_ms:>8.3f} "
            f"{lat.max_ms:>8.3f}  {'PASS' if lat.passed else 'FAIL'}"
        )
    o = overhead
    lines += [
        "",
        f"Spawn + result overhead: {o.tasks} trivial tasks, {o.workers} workers, "
        f"median of {o.rounds} rounds",
        f"  {'runner':<44} {'us/task':>8}",
        f"  {'TaskGroup(max_workers=16).spawn, result()':<44} {o.threadwise_us_per_task:>8.2f}",
        f"  {'ThreadPoolExecutor(16).submit, result()':<44} "
        f"{o.threadpoolexecutor_us_per_task:>8.2f}",
        f"  ratio threadwise/ThreadPoolExecutor: {o.ratio:.2f} (lower is better)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="20 latency trials and 2,000 tasks (a smoke run)"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results to FILE as JSON")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit with status 1 if a wait misses the latency target",
    )
    args = parser.parse_args(argv)

    trials = 20 if args.quick else 200
    n_tasks = 2_000 if args.quick else 20_000
    rounds = 3 if args.quick else 5

    latencies = measure_latency(trials)
    overhead = measure_overhead(n_tasks, rounds)
    print(format_report(latencies, overhead))

    if args.json:
        data: dict[str, Any] = {
            "threadwise": tw.__version__,
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "quick": args.quick,
            "latency_target_ms": LATENCY_TARGET_MS,
            "latency": [asdict(lat) for lat in latencies],
            "overhead": asdict(overhead),
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.write("\n")

    if args.strict and not all(lat.passed for lat in latencies):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
