"""The fault-injection campaign: randomised runs of TaskGroup, map and Pipeline with injected
failures, slow items, cancellations at random moments, timeouts and nested groups, under a
tiny switch interval, and with the harsher faults: thread starts that fail ("can't start new
thread"), a source that raises in the middle of a chunk, ``fn`` raising ``tw.Cancelled`` by
hand, and ThreadLocal close hooks that block past the grace period. After every run the
invariants are checked:

* every item is produced, failed or not started exactly once (the counts add up), and every
  item pulled from the source is counted;
* no thread is left alive; no exception is lost; the run ended within its bound; no task
  runs twice.

    python -m threadwise.stress --runs 10000 [--seed N]

Each run is reproducible from its seed (printed on a failure).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import threadwise as tw
from threadwise._threads import idle_threads

BOUND_SECONDS = 10.0  # a run that takes longer counts as a hang
# Runs with the harsher faults get a timeout of this many seconds: a hang there ends as a
# TimeoutError (counted as a hang) instead of stopping the campaign.
FAULT_BOUND = 3.0
GRACE = 0.05  # the grace period of the runs whose close hooks block
BLOCKED_CLOSE = 2.5  # how long such a hook blocks unless the run lets it go


class Injected(Exception):
    """A failure the campaign injected on purpose."""


@dataclass
class Totals:
    runs: int = 0
    items: int = 0
    failures_injected: int = 0
    cancellations: int = 0
    timeouts: int = 0
    failed_starts: int = 0
    source_failures: int = 0
    fn_cancelled: int = 0
    blocked_closes: int = 0
    leaks: int = 0
    lost: int = 0
    hangs: int = 0
    problems: list[str] = field(default_factory=list)
    scenarios: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        return (
            f"runs={self.runs} items={self.items} failures_injected={self.failures_injected} "
            f"cancellations={self.cancellations} timeouts={self.timeouts} "
            f"failed_starts={self.failed_starts} source_failures={self.source_failures} "
            f"fn_cancelled={self.fn_cancelled} blocked_closes={self.blocked_closes} "
            f"leaks={self.leaks} lost={self.lost} hangs={self.hangs}"
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


# -- the harsher faults -------------------------------------------------------------------------


class CannotStart(RuntimeError):
    """What ``Thread.start()`` raises when the system refuses a thread (injected)."""


@contextlib.contextmanager
def flaky_thread_starts(rng: random.Random, probability: float) -> Iterator[list[int]]:
    """Make ``threading.Thread.start`` fail with ``probability``; yields [failures]."""
    real_start = threading.Thread.start
    lock = threading.Lock()
    failed = [0]

    def start(self: threading.Thread) -> None:
        with lock:
            fail = rng.random() < probability
            if fail:
                failed[0] += 1
        if fail:
            raise CannotStart("can't start new thread")
        real_start(self)

    setattr(threading.Thread, "start", start)  # noqa: B010 - mypy forbids assigning a method
    try:
        yield failed
    finally:
        setattr(threading.Thread, "start", real_start)  # noqa: B010


def _is_or_holds(exc: BaseException | None, kind: type[BaseException]) -> bool:
    return exc is not None and any(isinstance(e, kind) for e in _collect(exc))


def run_failed_starts(rng: random.Random, totals: Totals) -> str | None:
    """Thread starts fail at random: spawn/map/pipeline raise it; nothing hangs, leaks or runs
    twice (a caller who retries a failed spawn must not get the task run two times)."""
    n = rng.randint(1, 40)
    work = _Work(rng, n)
    work.fail = set()
    kind = rng.choice(["group", "bounded-group", "map", "pipeline"])
    totals.items += n
    runs: Counter[int] = Counter()
    runs_lock = threading.Lock()

    def counted(i: int) -> int:
        with runs_lock:
            runs[i] += 1
        return work(i)

    raised: BaseException | None = None
    with flaky_thread_starts(rng, rng.choice([0.05, 0.2, 0.5])) as failed:
        try:
            if kind == "map":
                for _ in tw.map(counted, range(n), workers=rng.randint(1, 6), timeout=FAULT_BOUND):
                    pass
            elif kind == "pipeline":
                tw.Pipeline(range(n)).map(counted, workers=rng.randint(1, 4)).run(
                    timeout=FAULT_BOUND
                )
            else:
                bounded = kind == "bounded-group"
                with tw.TaskGroup(max_workers=4 if bounded else None, timeout=FAULT_BOUND) as g:
                    for i in range(n):
                        try:
                            g.spawn(counted, i)
                        except CannotStart:
                            g.spawn(counted, i)  # the caller retries once
        except BaseException as exc:
            raised = exc
    totals.failed_starts += failed[0]
    if isinstance(raised, TimeoutError):
        totals.hangs += 1
        return f"{kind}: a failed thread start made the run hang ({raised})"
    twice = [i for i, count in runs.items() if count > 1]
    if twice:
        totals.lost += 1
        return f"{kind}: item(s) {twice[:5]} ran more than once after a failed start"
    if failed[0] and raised is None and kind in ("map", "pipeline") and len(runs) < n:
        totals.lost += 1
        return f"{kind}: threads failed to start, items were not run, and nothing was raised"
    if raised is not None and not _is_or_holds(raised, CannotStart):
        return f"{kind}: raised {raised!r}, not the failed start"
    return None


class _RaisingSource:
    """Yields 0, 1, ... and raises ``Injected`` after ``fail_after`` items; counts them."""

    def __init__(self, fail_after: int) -> None:
        self.fail_after = fail_after
        self.pulled = 0

    def __iter__(self) -> Iterator[int]:
        return self

    def __next__(self) -> int:
        if self.pulled == self.fail_after:
            raise Injected("the source failed")
        self.pulled += 1
        return self.pulled - 1


def run_source_raises(rng: random.Random, totals: Totals) -> str | None:
    """The source raises part-way through a chunk: the failure is raised and every item it
    had already given is accounted for."""
    source = _RaisingSource(rng.randint(0, 500))
    totals.source_failures += 1
    pipeline = tw.Pipeline(source).map(
        lambda x: x * 2,
        workers=rng.randint(1, 6),
        ordered=rng.random() < 0.5,
        chunk_size=rng.choice([None, 1, 7, 64]),
    )
    raised: BaseException | None = None
    out: list[int] = []
    try:
        out.extend(pipeline.iterate(timeout=FAULT_BOUND))
    except BaseException as exc:
        raised = exc
    if isinstance(raised, TimeoutError):
        totals.hangs += 1
        return "a failing source made the run hang"
    if not isinstance(raised, Injected):
        totals.lost += 1
        return f"the source's failure was not raised (got {raised!r})"
    report = pipeline.report
    if report is None:
        return "no report"
    totals.items += source.pulled
    if report.source_read != source.pulled or not report.accounted:
        totals.lost += 1
        return (
            f"the source gave {source.pulled} items, the report read {report.source_read} "
            f"(accounted={report.accounted})"
        )
    if not set(out) <= {2 * i for i in range(source.pulled)}:
        return "the pipeline yielded an item the source never gave"
    return None


def run_fn_cancelled(rng: random.Random, totals: Totals) -> str | None:
    """``fn`` raises ``tw.Cancelled`` by hand (no scope was cancelled): that is a failure of
    the item, raised from the run; it must not hang nor vanish."""
    n = rng.randint(1, 200)
    at = rng.randrange(n)
    kind = rng.choice(["map", "pipeline", "group"])
    totals.items += n
    totals.fn_cancelled += 1

    def fn(i: int) -> int:
        if i == at:
            raise tw.Cancelled("raised by hand")
        return i

    raised: BaseException | None = None
    try:
        if kind == "map":
            for _ in tw.map(fn, range(n), workers=rng.randint(1, 6), timeout=FAULT_BOUND):
                pass
        elif kind == "pipeline":
            tw.Pipeline(range(n)).map(fn, workers=rng.randint(1, 4)).run(timeout=FAULT_BOUND)
        else:
            with tw.TaskGroup(max_workers=rng.choice([None, 2]), timeout=FAULT_BOUND) as g:
                for i in range(n):
                    g.spawn(fn, i)
    except BaseException as exc:
        raised = exc
    if isinstance(raised, TimeoutError):
        totals.hangs += 1
        return f"{kind}: fn raising Cancelled made the run hang"
    if not _is_or_holds(raised, tw.Cancelled):
        totals.lost += 1
        return f"{kind}: fn raised Cancelled but the run ended with {raised!r}"
    return None


def run_blocking_close(rng: random.Random, totals: Totals) -> str | None:
    """A ThreadLocal whose close blocks far past the grace period: the run still ends about
    after its grace (the stuck thread is abandoned, named), not when the close lets go."""
    release = threading.Event()
    local = tw.ThreadLocal(object, lambda _: release.wait(BLOCKED_CLOSE))
    n = rng.randint(1, 50)
    kind = rng.choice(["group", "bounded-group", "map", "pipeline"])
    totals.items += n
    totals.blocked_closes += 1

    def fn(i: int) -> int:
        local.get()
        return i

    started = time.monotonic()
    try:
        if kind == "map":
            for _ in tw.Pipeline(range(n)).map(fn, workers=rng.randint(1, 4)).iterate(grace=GRACE):
                pass
        elif kind == "pipeline":
            tw.Pipeline(range(n)).map(fn, workers=rng.randint(1, 4)).run(grace=GRACE)
        else:
            bounded = kind == "bounded-group"
            with tw.TaskGroup(max_workers=3 if bounded else None, grace=GRACE) as g:
                for i in range(n):
                    g.spawn(fn, i)
    except BaseException as exc:
        return f"{kind}: raised {exc!r}"
    finally:
        took = time.monotonic() - started
        release.set()  # now the stuck threads end and the leak check can settle
    if took > BLOCKED_CLOSE * 0.8:
        totals.hangs += 1
        return f"{kind}: waited {took:.1f} s for a close hook (grace {GRACE} s)"
    return None


Scenario = Callable[[random.Random, Totals], "str | None"]
SCENARIOS: dict[str, Scenario] = {"group": run_group, "map": run_map, "pipeline": run_pipeline}
# The harsher faults, each in a small share of the runs (they are slower when they fail).
FAULTS: dict[str, tuple[float, Scenario]] = {
    "failed-starts": (0.03, run_failed_starts),
    "source-raises": (0.03, run_source_raises),
    "fn-cancelled": (0.03, run_fn_cancelled),
    "blocking-close": (0.02, run_blocking_close),
}


def pick_scenario(rng: random.Random) -> str:
    roll = rng.random()
    for name, (share, _) in FAULTS.items():
        if roll < share:
            return name
        roll -= share
    return rng.choice(sorted(SCENARIOS))


def run_one(seed: int, totals: Totals, only: str | None = None) -> str | None:
    rng = random.Random(seed)
    name = pick_scenario(rng)
    if only is not None:
        name = only
    totals.scenarios[name] += 1
    before = set(threading.enumerate()) - idle_threads()  # an idle cached thread may be reused
    started = time.monotonic()
    scenario = FAULTS[name][1] if name in FAULTS else SCENARIOS[name]
    problem = scenario(rng, totals)
    elapsed = time.monotonic() - started
    deadline = time.monotonic() + 2.0
    while True:
        idle = idle_threads()  # parked in the thread cache: not leaks, they retire by themselves
        leaked = [
            t for t in threading.enumerate() if t not in before and t not in idle and t.is_alive()
        ]
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


def campaign(
    runs: int, seed: int = 0, *, progress: bool = False, only: str | None = None
) -> Totals:
    totals = Totals()
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for k in range(runs):
            run_one(seed + k, totals, only)
            if progress and (k + 1) % 500 == 0:
                print(f"  {k + 1}/{runs}: {totals.line()}", flush=True)
    finally:
        sys.setswitchinterval(previous)
    return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m threadwise.stress", description=__doc__)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--only", choices=sorted([*SCENARIOS, *FAULTS]), help="run one scenario only"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    totals = campaign(args.runs, args.seed, progress=True, only=args.only)
    print(f"{totals.line()} in {time.monotonic() - started:.0f} s")
    print("scenarios: " + ", ".join(f"{k}={v}" for k, v in sorted(totals.scenarios.items())))
    for problem in totals.problems[:20]:
        print("PROBLEM", problem)
    return 1 if totals.problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
