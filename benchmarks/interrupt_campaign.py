"""Ctrl-C at a random instant inside every threadwise primitive, TaskGroup, map, Pipeline and
Service: each trial runs one operation in a loop in the main thread while a timer thread
interrupts the main thread after a random delay, so the KeyboardInterrupt lands at a random
point of acquire/release/wait/put/get, of a group's enter and exit, of a map's start-up,
iteration and shutdown. After every trial:

* the KeyboardInterrupt came out (not swallowed, not replaced) and promptly;
* no thread is left running (after a short settle for threads that are finishing);
* the primitive still works and its counts add up (nothing held, nothing lost);
* the main thread's cancel-scope stack is back to the top level.

    python benchmarks/interrupt_campaign.py [--trials 300] [--seed 0] [--how main|signal|both]
        [--targets lock,queue-get,...]

``--how main`` interrupts with ``_thread.interrupt_main()`` (lands between bytecodes),
``signal`` sends a real SIGINT to the main thread (also interrupts blocking waits), ``both``
alternates. Each trial is reproducible from the seed (printed with a failure).
"""

from __future__ import annotations

import _thread
import argparse
import itertools
import os
import queue
import random
import signal
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import threadwise as tw
from threadwise._state import current_state
from threadwise._threads import idle_threads

SETTLE = 3.0  # seconds a finishing thread may take to go away (>= the 1 s grace, + load)
RESEND_AFTER = 5.0  # a Ctrl-C not seen by then was lost: interrupt again (counted)
HELPER_JOIN = 3.0


class Interrupter:
    """Interrupts the main thread once after ``delay`` s. If the main thread has not
    acknowledged RESEND_AFTER s later, the Ctrl-C was lost or the op hangs: it notes where
    the main thread is and interrupts again every second (a real SIGINT where there is one,
    which also breaks a blocking C-level wait) until it is acknowledged."""

    def __init__(self, delay: float, how: str) -> None:
        self.delay = delay
        self.how = how
        self.sent = 0
        self.stuck_at = ""
        self._lock = threading.Lock()
        self._acked = False
        self._ack = threading.Event()
        self._go = _thread.allocate_lock()
        self._go.acquire()
        self._done = _thread.allocate_lock()
        self._done.acquire()

    def start(self) -> None:
        """Start the thread, outside the measured window: it waits for ``go()``.

        A raw thread: ``threading.Thread.start()`` waits in the main thread for the new
        thread to run, in the standard library's Condition.wait, which is not Ctrl-C safe;
        inside the window the interrupt could land there, in the harness."""
        _thread.start_new_thread(self._main, ())

    def go(self) -> None:
        """Start counting the delay (a single C call: nothing to interrupt)."""
        self._go.release()

    def _main(self) -> None:
        try:
            self._go.acquire()
            self._run()
        finally:
            self._done.release()

    def _send(self, how: str) -> bool:
        with self._lock:  # never after acknowledge(): no stray Ctrl-C lands in the harness
            if self._acked:
                return False
            self.sent += 1
            if how == "signal":
                signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
            else:
                _thread.interrupt_main()
            return True

    def _run(self) -> None:
        if self._ack.wait(self.delay) or not self._send(self.how):
            return
        if self._ack.wait(RESEND_AFTER):
            return
        frame = sys._current_frames().get(threading.main_thread().ident or 0)
        if frame is not None:
            where = traceback.extract_stack(frame)[-3:]
            self.stuck_at = " <- ".join(f"{f.name}:{f.lineno}" for f in reversed(where))
        from threadwise import _ki

        # Where the deferred interrupt is, for the report: still pending, a sender running, a
        # re-sent signal not yet seen by the handler, the handler running.
        self.stuck_at += (
            f"; deferred: pending={_ki._pending} sending={_ki._sending}"
            f" unacked={_ki._unacked} deciding={_ki._deciding}"
        )
        again = "signal" if hasattr(signal, "pthread_kill") else "main"
        while self._send(again) and not self._ack.wait(1.0):
            pass

    def acknowledge(self) -> None:
        with self._lock:
            self._acked = True
        self._ack.set()
        if self._go.locked():
            self._go.release()  # go() never came (setup failed): let the thread end
        self._done.acquire()


class Target:
    """One thing to interrupt. ``op`` loops until interrupted; ``check`` runs afterwards."""

    name = ""
    max_delay = 0.005  # seconds: the random delay is uniform in [0, max_delay]
    available = True

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.helpers: list[threading.Thread] = []

    def helper(self, fn: Callable[[], None]) -> None:
        def loop() -> None:
            while not self.stop.is_set():
                fn()

        thread = threading.Thread(target=loop, name=f"{self.name}-helper", daemon=True)
        self.helpers.append(thread)
        thread.start()

    def setup(self) -> None:
        pass

    def op(self) -> None:
        raise NotImplementedError

    def teardown(self) -> list[str]:
        self.stop.set()
        problems = []
        for thread in self.helpers:
            thread.join(HELPER_JOIN)
            if thread.is_alive():
                problems.append("a helper thread using the primitive got stuck")
        return problems

    def check(self) -> list[str]:
        return []


def _in_thread(fn: Callable[[], object], timeout: float = 2.0) -> tuple[bool, object]:
    """Run ``fn`` in a fresh thread: (finished in time, its result or exception)."""
    box: list[object] = []

    def run() -> None:
        try:
            box.append(fn())
        except BaseException as exc:
            box.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    return (not thread.is_alive(), box[0] if box else None)


def _free_and_working(lock: Any, kind: str) -> list[str]:
    """The lock is not held by anyone and another thread can take and give it back."""

    def take() -> bool:
        got = bool(lock.acquire(timeout=1.0))
        if got:
            lock.release()
        return got

    done, got = _in_thread(take)
    if not done or got is not True:
        return [f"{kind} is still held after the interrupt"]
    return []


# -- the primitives -----------------------------------------------------------------------------


class LockTarget(Target):
    name = "lock"

    def setup(self) -> None:
        self.lock = tw.Lock()
        # A second thread makes the slow path (parking, hand-off) happen too.
        self.helper(self._contend)

    def _contend(self) -> None:
        with self.lock:
            time.sleep(0.0002)
        time.sleep(0.0002)

    def op(self) -> None:
        lock = self.lock
        while True:
            with lock:
                pass
            if lock.acquire(timeout=0.001):
                lock.release()  # the release cannot be skipped: no call between the two

    def check(self) -> list[str]:
        problems = _free_and_working(self.lock, "Lock")
        if self.lock.locked() or self.lock.owner is not None:
            problems.append("Lock still locked or owned")
        return problems


class RLockTarget(LockTarget):
    name = "rlock"

    def setup(self) -> None:
        self.lock = tw.RLock()
        self.helper(self._contend)

    def op(self) -> None:
        lock = self.lock
        while True:
            with lock, lock:
                pass

    def check(self) -> list[str]:
        return _free_and_working(self.lock, "RLock")


class ConditionTarget(Target):
    name = "condition"

    def setup(self) -> None:
        self.cond = tw.Condition()
        self.helper(self._notify)

    def _notify(self) -> None:
        with self.cond:
            self.cond.notify_all()
        time.sleep(0.0003)

    def op(self) -> None:
        cond = self.cond
        while True:
            with cond:
                cond.wait(0.002)

    def check(self) -> list[str]:
        problems = _free_and_working(self.cond, "Condition's lock")
        if problems:
            return problems
        # A wait and a notify still meet.
        cond = self.cond
        woke: list[bool] = []
        waiting = threading.Event()

        def waiter() -> None:
            with cond:
                waiting.set()
                woke.append(cond.wait(2.0))

        thread = threading.Thread(target=waiter, daemon=True)
        thread.start()
        waiting.wait(2.0)
        with cond:
            cond.notify()
        thread.join(3.0)
        if woke != [True]:
            problems.append("Condition.notify no longer wakes a waiter")
        return problems


class SemaphoreTarget(Target):
    name = "semaphore"
    factory: Callable[[int], Any] = tw.Semaphore

    def setup(self) -> None:
        self.sem = type(self).factory(2)
        self.helper(self._use)

    def _use(self) -> None:
        with self.sem:
            time.sleep(0.0002)

    def op(self) -> None:
        sem = self.sem
        while True:
            with sem, sem:
                pass

    def check(self) -> list[str]:
        value = getattr(self.sem, "value", None)
        if value is not None and value != 2:
            return [f"{type(self.sem).__name__} count is {value}, not 2"]
        # Both units can be taken (and given back) by another thread.
        done, got = _in_thread(
            lambda: [self.sem.acquire(timeout=1.0), self.sem.acquire(timeout=1.0)]
        )
        if not done or got != [True, True]:
            return [f"{type(self.sem).__name__} lost a unit: {got!r}"]
        self.sem.release()
        self.sem.release()
        return []


class BoundedSemaphoreTarget(SemaphoreTarget):
    name = "bounded-semaphore"
    available = hasattr(tw, "BoundedSemaphore")
    factory = getattr(tw, "BoundedSemaphore", tw.Semaphore)


class EventTarget(Target):
    name = "event"

    def setup(self) -> None:
        self.event = tw.Event()
        self.helper(self._toggle)

    def _toggle(self) -> None:
        self.event.set()
        time.sleep(0.0003)
        self.event.clear()
        time.sleep(0.0003)

    def op(self) -> None:
        event = self.event
        while True:
            event.wait(0.002)

    def check(self) -> list[str]:
        event = self.event
        event.clear()
        if event.wait(0.001):
            return ["Event.wait() returned True on a cleared event"]
        waiter = threading.Thread(target=lambda: woke.append(event.wait(2.0)), daemon=True)
        woke: list[bool] = []
        waiter.start()
        time.sleep(0.001)
        event.set()
        waiter.join(3.0)
        problems = []
        if woke != [True]:
            problems.append("Event.set() no longer wakes a waiter")
        if not event.wait(0.01):
            problems.append("Event.wait() returned False on a set event")
        return problems


class _QueueTarget(Target):
    """Main and a helper pass numbered items; afterwards put == got + left in the queue."""

    kind = "Queue"
    factory: Callable[..., Any] = tw.Queue

    def setup(self) -> None:
        self.queue = type(self).factory(maxsize=4)
        self.put: list[int] = []
        self.got: list[int] = []
        self.numbers = itertools.count()

    def _item(self, n: int) -> Any:
        return (n, n) if self.kind == "PriorityQueue" else n

    def _put_one(self) -> None:
        n = next(self.numbers)
        try:
            self.queue.put(self._item(n), timeout=0.002)
        except queue.Full:
            return
        self.put.append(n)

    def _get_one(self) -> None:
        try:
            item = self.queue.get(timeout=0.002)
        except queue.Empty:
            return
        self.got.append(item[0] if isinstance(item, tuple) else item)

    def check(self) -> list[str]:
        left = []
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            left.append(item[0] if isinstance(item, tuple) else item)
        put, taken = Counter(self.put), Counter(self.got + left)
        problems = []
        if put != taken:
            lost = sorted((put - taken).elements())[:5]
            extra = sorted((taken - put).elements())[:5]
            problems.append(f"{self.kind} counts do not add up: lost {lost}, unexpected {extra}")
        try:
            self.queue.put(self._item(-1), timeout=1.0)
            item = self.queue.get(timeout=1.0)
            if item != self._item(-1):
                problems.append(f"{self.kind} returned {item!r} after the interrupt")
        except BaseException as exc:
            problems.append(f"{self.kind} no longer works: {exc!r}")
        return problems


def _queue_targets(kind: str, factory: Any, available: bool) -> list[type[Target]]:
    class GetTarget(_QueueTarget):
        name = f"{kind.lower().replace('queue', '-queue').strip('-')}-get"

        def setup(self) -> None:
            super().setup()
            self.helper(self._put_one)

        def op(self) -> None:
            while True:
                self._get_one()

    class PutTarget(_QueueTarget):
        name = f"{kind.lower().replace('queue', '-queue').strip('-')}-put"

        def setup(self) -> None:
            super().setup()
            self.helper(self._get_one)

        def op(self) -> None:
            while True:
                self._put_one()

    for cls in (GetTarget, PutTarget):
        cls.kind = kind
        cls.factory = factory
        cls.available = available
    return [GetTarget, PutTarget]


class BarrierTarget(Target):
    name = "barrier"
    available = hasattr(tw, "Barrier")

    def setup(self) -> None:
        self.barrier = tw.Barrier(2)  # type: ignore[attr-defined]
        self.helper(self._meet)

    def _meet(self) -> None:
        try:
            self.barrier.wait(timeout=0.01)
        except Exception:
            time.sleep(0.0005)
            self.barrier.reset()

    def op(self) -> None:
        while True:
            try:
                self.barrier.wait(timeout=0.01)
            except threading.BrokenBarrierError:
                pass
            except TimeoutError:
                pass

    def check(self) -> list[str]:
        barrier = self.barrier
        barrier.reset()
        other = threading.Thread(target=lambda: barrier.wait(timeout=2.0), daemon=True)
        other.start()
        try:
            barrier.wait(timeout=2.0)
        except BaseException as exc:
            return [f"Barrier no longer works: {exc!r}"]
        finally:
            other.join(3.0)
        return []


# -- groups, map, Pipeline, Service, scopes ----------------------------------------------------


def _busy(n: int) -> int:
    tw.sleep(0.0005 * (n % 3))
    return n


class GroupTarget(Target):
    name = "taskgroup"
    max_delay = 0.02

    def op(self) -> None:
        while True:
            with tw.TaskGroup() as g:
                for i in range(4):
                    g.spawn(_busy, i)


class BoundedGroupTarget(Target):
    name = "taskgroup-bounded"
    max_delay = 0.02

    def op(self) -> None:
        while True:
            with tw.TaskGroup(max_workers=2) as g:
                for i in range(6):
                    g.spawn(_busy, i)


class MapStartTarget(Target):
    name = "map-startup"
    max_delay = 0.02

    def op(self) -> None:
        while True:
            results = tw.map(_busy, range(4), workers=4)
            next(iter(results))
            results.close()  # type: ignore[attr-defined]


class MapIterationTarget(Target):
    name = "map-iteration"
    max_delay = 0.05

    def op(self) -> None:
        while True:
            for _ in tw.map(lambda x: x, itertools.count(), workers=3):
                pass


class MapShutdownTarget(Target):
    name = "map-shutdown"
    max_delay = 0.03

    def op(self) -> None:
        while True:
            for x in tw.map(_busy, range(1000), workers=4, ordered=False):
                if x >= 12:
                    break


class PipelineTarget(Target):
    name = "pipeline-run"
    max_delay = 0.03

    def op(self) -> None:
        while True:
            (
                tw.Pipeline(range(300))
                .map(lambda x: x * 2, workers=3)
                .filter(lambda x: x % 3 != 0, workers=2)
                .batch(7)
                .each(lambda batch: None)
                .run()
            )


class ServiceTarget(Target):
    name = "service-start-stop"
    max_delay = 0.02

    def setup(self) -> None:
        self.ticks = 0

    def _tick(self) -> None:
        self.ticks += 1

    def op(self) -> None:
        while True:
            with tw.Service(self._tick, interval=0.0005, grace=1.0):
                tw.sleep(0.001)


class ScopeTarget(Target):
    name = "cancel-scope"

    def op(self) -> None:
        while True:
            with tw.move_on_after(0.0005), tw.CancelScope():
                tw.sleep(0.001)


TARGETS: list[type[Target]] = [
    LockTarget,
    RLockTarget,
    ConditionTarget,
    SemaphoreTarget,
    BoundedSemaphoreTarget,
    EventTarget,
    *_queue_targets("Queue", tw.Queue, True),
    *_queue_targets("LifoQueue", getattr(tw, "LifoQueue", tw.Queue), hasattr(tw, "LifoQueue")),
    *_queue_targets(
        "PriorityQueue", getattr(tw, "PriorityQueue", tw.Queue), hasattr(tw, "PriorityQueue")
    ),
    BarrierTarget,
    GroupTarget,
    BoundedGroupTarget,
    MapStartTarget,
    MapIterationTarget,
    MapShutdownTarget,
    PipelineTarget,
    ServiceTarget,
    ScopeTarget,
]


def available_targets() -> list[type[Target]]:
    return [t for t in TARGETS if t.available]


# -- one trial ------------------------------------------------------------------------------------


def _drain_pending_interrupt() -> int:
    """Take a Ctrl-C that was already on its way when the op ended; how many were."""
    caught = 0
    for _ in range(3):
        try:
            for _ in range(2000):  # backward jumps: where a pending interrupt is delivered
                pass
            time.sleep(0.001)
            return caught
        except KeyboardInterrupt:
            caught += 1
    return caught


def _scope_problem() -> str | None:
    state = current_state()
    if state.scope is not None:
        state.scope = None  # put it right so that later trials are judged on their own
        return "the main thread's cancel-scope stack was not back to the top level"
    if state.task is not None:
        state.task = None
        return "the main thread still looked like it ran a task"
    if state.blocked_on is not None:
        state.blocked_on = None
        return "the main thread still looked blocked"
    return None


def run_trial(cls: type[Target], rng: random.Random, how: str) -> list[str]:
    """Run one interrupted trial of ``cls``; returns the problems found (empty: all good)."""
    before = set(threading.enumerate()) - idle_threads()  # idle cached threads get reused
    target = cls()
    problems: list[str] = []
    delay = rng.uniform(0.0, cls.max_delay)
    interrupter = Interrupter(delay, how)
    outcome: BaseException | None = None
    interrupter.start()
    started = time.monotonic()
    try:
        try:
            target.setup()
            interrupter.go()
            target.op()
        except BaseException as exc:
            outcome = exc
        finally:
            interrupter.acknowledge()
    except KeyboardInterrupt as exc:  # a resent Ctrl-C landing in the lines above
        outcome = outcome or exc
    extra = _drain_pending_interrupt()
    took = time.monotonic() - started
    if not isinstance(outcome, KeyboardInterrupt):
        problems.append(f"Ctrl-C came out as {outcome!r}")
    if interrupter.sent > 1 or extra:
        where = f", stuck at {interrupter.stuck_at}" if interrupter.stuck_at else ""
        problems.append(f"the Ctrl-C was lost or the op hung ({interrupter.sent} sent{where})")
    elif took - delay > RESEND_AFTER:
        problems.append(f"the Ctrl-C took {took - delay:.1f} s to come out")
    del outcome  # no traceback keeps frames (and the objects in them) alive
    try:
        problems += target.teardown()
        problems += target.check()
    except BaseException as exc:
        problems.append(f"the check itself failed: {exc!r}")
    scope = _scope_problem()
    if scope:
        problems.append(scope)
    deadline = time.monotonic() + SETTLE
    while True:
        idle = idle_threads()  # parked in the thread cache: they retire by themselves
        left = [
            t for t in threading.enumerate() if t not in before and t not in idle and t.is_alive()
        ]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.005)
    if left:
        problems.append(f"threads left: {sorted(t.name for t in left)[:6]}")
    return problems


@dataclass
class Result:
    trials: int = 0
    failures: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)


def _kind(problem: str) -> str:
    for word in ("came out as", "lost or the op hung", "took", "threads left", "scope", "task"):
        if word in problem:
            return {"came out as": "wrong-exception", "lost or the op hung": "lost-ctrl-c"}.get(
                word, "leak" if word == "threads left" else word
            )
    return "broken"


def campaign(
    trials: int,
    seed: int = 0,
    how: str = "main",
    names: list[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Result]:
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("the interrupt campaign must run in the main thread")
    targets = available_targets()
    if names:
        unknown = set(names) - {t.name for t in targets}
        if unknown:
            raise ValueError(f"unknown targets: {sorted(unknown)}")
        targets = [t for t in targets if t.name in names]
    results: dict[str, Result] = {}
    # threadwise loads some of its modules on first use (tw.map, tw.Pipeline, ...). A Ctrl-C
    # landing inside that import is the import machinery's business, not threadwise's (under
    # pytest, whose importer rewrites the package's modules, it leaves the source file it was
    # reading open, and the ResourceWarning failed the trial): load them all before the trials.
    import threadwise

    for name in getattr(threadwise, "__all__", ()):
        getattr(threadwise, name, None)
    # A process started in the background by a shell without job control inherits SIGINT
    # ignored: Python then installs no handler (nor threadwise its deferring one) and no
    # interrupt would ever arrive. Set things up as in a program started from a terminal.
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous):
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            from threadwise import _ki
        except ImportError:  # a version without the deferring handler
            pass
        else:
            _ki.install()
    try:
        _run_targets(targets, trials, seed, how, results, progress)
    finally:
        signal.signal(signal.SIGINT, previous)
    return results


def _run_targets(
    targets: list[type[Target]],
    trials: int,
    seed: int,
    how: str,
    results: dict[str, Result],
    progress: Callable[[str], None] | None,
) -> None:
    for cls in targets:
        result = results[cls.name] = Result()
        for k in range(trials):
            trial_seed = seed * 1_000_003 + k
            rng = random.Random(f"{cls.name}:{trial_seed}")
            mode = how if how != "both" else ("main", "signal")[k % 2]
            problems = run_trial(cls, rng, mode)
            result.trials += 1
            if problems:
                result.failures += 1
                for problem in problems:
                    result.kinds[_kind(problem)] += 1
                if len(result.examples) < 3:
                    result.examples.append(f"seed {trial_seed} ({mode}): {'; '.join(problems)}")
        if progress is not None:
            progress(f"{cls.name:<22} {result.trials:>7} {result.failures:>9}")


def table(results: dict[str, Result]) -> Iterator[str]:
    yield f"{'target':<22} {'trials':>7} {'failures':>9}  kinds"
    for name, result in results.items():
        kinds = ", ".join(f"{k}={v}" for k, v in sorted(result.kinds.items()))
        yield f"{name:<22} {result.trials:>7} {result.failures:>9}  {kinds}"
    total = sum(r.trials for r in results.values())
    failed = sum(r.failures for r in results.values())
    yield f"{'total':<22} {total:>7} {failed:>9}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trials", type=int, default=300, help="trials per target")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--how", choices=["main", "signal", "both"], default="main")
    parser.add_argument("--targets", default="", help="comma-separated names (default: all)")
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    args = parser.parse_args(argv)
    if args.list:
        for cls in TARGETS:
            print(cls.name + ("" if cls.available else " (not in this version)"))
        return 0
    if args.how != "main" and not hasattr(signal, "pthread_kill"):
        parser.error("--how signal needs POSIX signals")
    names = [n for n in args.targets.split(",") if n]
    started = time.monotonic()
    print(f"{'target':<22} {'trials':>7} {'failures':>9}", flush=True)
    results = campaign(
        args.trials, args.seed, args.how, names, progress=lambda line: print(line, flush=True)
    )
    print()
    for line in table(results):
        print(line)
    print(f"how={args.how} seed={args.seed} in {time.monotonic() - started:.0f} s")
    for name, result in results.items():
        for example in result.examples:
            print(f"FAILURE {name}: {example}")
    return 1 if any(r.failures for r in results.values()) else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
