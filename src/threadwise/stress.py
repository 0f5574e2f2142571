"""The fault-injection campaign: randomised runs of TaskGroup, map and Pipeline with injected
failures, slow items, cancellations at random moments, timeouts and nested groups, under a
tiny switch interval. After every run the invariants are checked:

* every item is produced, failed or not started exactly once (the counts add up);
* no thread is left alive; no exception is lost; the run ended within its bound.

    python -m threadwise.stress --runs 10000 [--seed N]

Each run is reproducible from its seed (printed on a failure).
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

import threadwise as tw

BOUND_SECONDS = 10.0  # a run that takes longer counts as a hang


class Injected(Exception):
    """A failure the campaign injected on purpose."""


@dataclass
class Totals:
    runs: int = 0
    items: int = 0
    failures_injected: int = 0
    cancellations: int = 0
    timeouts: int = 0
    leaks: int = 0
    lost: int = 0
    hangs: int = 0
    problems: list[str] = field(default_factory=list)
    scenarios: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        return (
            f"runs={self.runs} items={self.items} failures_injected={self.failures_injected} "
            f"cancellations={self.cancellations} timeouts={self.timeouts} leaks={self.leaks} "
            f"lost={self.lost} hangs={self.hangs}"
        )


class _Work:
    """Items that may fail, be slow, or cancel their run; counts what really happened."""

    def __init__(self, rng: random.Random, n: int) -> None:
        self.fail = {i for i in range(n) if rng.random() < 0.05}
        self.slow = {i for i in range(n) if rng.random() < 0.1}
        self.started = 0
        self.raised: list[Injected] = []
        self.lock = threading.Lock()

    def __call__(self, i: int) -> int:
        with self.lock:
            self.started += 1
        if i in self.slow:
            tw.sleep(0.002)
        if i in self.fail:
            exc = Injected(i)
            with self.lock:
                self.raised.append(exc)
            raise exc
        return i * 2


def _cancel_later(scope: tw.CancelScope, delay: float) -> threading.Timer:
    timer = threading.Timer(delay, scope.cancel, args=("cancelled by the campaign",))
    timer.daemon = True
    timer.start()
    return timer


def _collect(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        out: list[BaseException] = []
        for inner in exc.exceptions:
            out.extend(_collect(inner))
        return out
    return [exc]


def run_group(rng: random.Random, totals: Totals) -> str | None:
    n = rng.randint(0, 60)
    work = _Work(rng, n)
    max_workers = rng.choice([None, 1, 2, 4, 8])
    nested = rng.random() < 0.3
    timeout = rng.choice([None, None, 0.01, 0.05])
    cancel_after = rng.choice([None, None, 0.0, 0.003, 0.02])
    totals.items += n
    totals.failures_injected += len(work.fail)
    tasks: list[tw.Task[int]] = []
    raised: BaseException | None = None
    timer = None
    with tw.CancelScope() as outer:
        if cancel_after is not None:
            totals.cancellations += 1
            timer = _cancel_later(outer, cancel_after)
        try:
            with tw.TaskGroup(max_workers=max_workers, timeout=timeout) as g:
                for i in range(n):
                    if nested and i % 7 == 0:

                        def inner(i: int = i) -> int:
                            spawned: list[tw.Task[int]] = []
                            with tw.TaskGroup(max_workers=2) as sub:
                                spawned.append(sub.spawn(work, i))
                            return spawned[0].result()

                        tasks.append(g.spawn(inner))
                    else:
                        tasks.append(g.spawn(work, i))
        except BaseException as exc:
            raised = exc
    if timer is not None:
        timer.cancel()
        timer.join()
    if isinstance(raised, TimeoutError):
        totals.timeouts += 1
    for task in tasks:
        if not task.done():
            return "a task was not finished after its group exited"
    failed = [t for t in tasks if t.state is tw.State.FAILED]
    if failed:
        if raised is None:
            return f"{len(failed)} task(s) failed but the group raised nothing"
        reported = {id(e) for e in _collect(raised)}
        for task in failed:
            failure = task._exception
            injected = [e for e in _collect(failure) if isinstance(e, Injected)] if failure else []
            if (
                failure is not None
                and id(failure) not in reported
                and not any(id(e) in reported for e in injected)
            ):
                totals.lost += 1
                return f"the failure of {task.name} was lost"
    done = sum(1 for t in tasks if t.state is tw.State.DONE)
    cancelled = sum(1 for t in tasks if t.state is tw.State.CANCELLED)
    if done + len(failed) + cancelled != len(tasks):
        return "task states do not add up"
    return None


def run_map(rng: random.Random, totals: Totals) -> str | None:
    n = rng.randint(0, 400)
    work = _Work(rng, n)
    workers = rng.randint(1, 8)
    ordered = rng.random() < 0.7
    break_at = rng.choice([None, None, rng.randint(0, max(0, n))])
    timeout = rng.choice([None, None, 0.02])
    totals.items += n
    totals.failures_injected += len(work.fail)
    out: list[int] = []
    raised: BaseException | None = None
    try:
        for value in tw.map(work, range(n), workers=workers, ordered=ordered, timeout=timeout):
            out.append(value)
            if break_at is not None and len(out) >= break_at:
                break
    except BaseException as exc:
        raised = exc
    if isinstance(raised, TimeoutError):
        totals.timeouts += 1
        return None
    if raised is not None and not isinstance(raised, Injected):
        return f"map raised {raised!r}, not an injected failure"
    if raised is None and work.raised and break_at is None:
        totals.lost += 1
        return "an item failed but map raised nothing"
    expected = [2 * i for i in range(n)]
    if ordered and out != expected[: len(out)]:
        return "ordered map yielded out of order"
    if len(set(out)) != len(out) or not set(out) <= set(expected):
        return "map yielded a duplicate or a foreign item"
    if raised is None and break_at is None and sorted(out) != expected:
        return "map lost items"
    return None


def run_pipeline(rng: random.Random, totals: Totals) -> str | None:
    n = rng.randint(0, 400)
    work = _Work(rng, n)
    on_error: Literal["raise", "skip"] = "skip" if rng.random() < 0.5 else "raise"
    totals.items += n
    totals.failures_injected += len(work.fail)
    cancel_after = rng.choice([None, None, 0.001, 0.01])
    pipeline = (
        tw.Pipeline(range(n))
        .map(work, workers=rng.randint(1, 6), ordered=rng.random() < 0.5, on_error=on_error)
        .filter(lambda x: x % 3 != 0, workers=rng.randint(1, 3))
        .batch(rng.randint(1, 10))
    )
    raised: BaseException | None = None
    timer = None
    with tw.CancelScope() as outer:
        if cancel_after is not None:
            totals.cancellations += 1
            timer = _cancel_later(outer, cancel_after)
        try:
            pipeline.run()
        except BaseException as exc:
            raised = exc
    if timer is not None:
        timer.cancel()
        timer.join()
    report = pipeline.report
    if report is None:
        return None if raised is not None else "no report"
    if not report.accounted:
        return f"pipeline counts do not add up:\n{report}"
    first = report.stages[0]
    if raised is None and not outer.cancelled_caught:
        if first.items_in != n or first.completed + first.failed != n:
            totals.lost += 1
            return f"a finished pipeline did not process every item:\n{report}"
        if on_error == "skip" and first.failed != len(work.fail):
            return "skipped failures were not all recorded"
    if on_error == "raise" and work.raised and raised is None and not outer.cancelled_caught:
        totals.lost += 1
        return "a stage failed but the pipeline raised nothing"
    return None


SCENARIOS = {"group": run_group, "map": run_map, "pipeline": run_pipeline}


def run_one(seed: int, totals: Totals) -> str | None:
    rng = random.Random(seed)
    name = rng.choice(sorted(SCENARIOS))
    totals.scenarios[name] += 1
    before = set(threading.enumerate())
    started = time.monotonic()
    problem = SCENARIOS[name](rng, totals)
    elapsed = time.monotonic() - started
    deadline = time.monotonic() + 2.0
    while True:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.005)
    if leaked:
        totals.leaks += 1
        problem = problem or f"leaked threads: {[t.name for t in leaked]}"
    if elapsed > BOUND_SECONDS:
        totals.hangs += 1
        problem = problem or f"took {elapsed:.1f} s"
    totals.runs += 1
    if problem:
        totals.problems.append(f"seed {seed} ({name}): {problem}")
    return problem


def campaign(runs: int, seed: int = 0, *, progress: bool = False) -> Totals:
    totals = Totals()
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for k in range(runs):
            run_one(seed + k, totals)
            if progress and (k + 1) % 500 == 0:
                print(f"  {k + 1}/{runs}: {totals.line()}", flush=True)
    finally:
        sys.setswitchinterval(previous)
    return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m threadwise.stress", description=__doc__)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.monotonic()
    totals = campaign(args.runs, args.seed, progress=True)
    print(f"{totals.line()} in {time.monotonic() - started:.0f} s")
    print("scenarios: " + ", ".join(f"{k}={v}" for k, v in sorted(totals.scenarios.items())))
    for problem in totals.problems[:20]:
        print("PROBLEM", problem)
    return 1 if totals.problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
