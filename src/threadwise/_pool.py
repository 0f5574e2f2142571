"""The engine under map and pipelines: worker threads under one cancel scope, adaptive chunk
sizes, and a shared rate limit."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ._cancel import CancelScope, sleep
from ._task import Task, _bind, _join_thread, _LooseTask, abandon, cancel_and_wait
from ._typing import Any

_monotonic = time.monotonic


class Workers:
    """Threads started under one cancel scope and stopped together.

    Unlike a ``TaskGroup`` it does not push its scope on the creating thread, so it can live
    across the ``yield``s of a generator (``map`` hands results out while its workers run).
    """

    def __init__(self, name: str, parent: CancelScope | None, *, grace: float = 1.0) -> None:
        self.name = name
        self.scope = CancelScope(name=name)
        self.scope._attach(parent)
        self.grace = grace
        self.tasks: list[Task[Any]] = []

    def start(self, fn: Callable[[], object], name: str) -> Task[Any]:
        """Start ``fn`` in a new thread, in a copy of the caller's ``contextvars`` context."""
        task: Task[Any] = _LooseTask(_bind(fn, (), {}), name, parent_scope=self.scope)
        self.tasks.append(task)
        try:
            task._start_thread(register_live=False)
        except Exception:
            # The thread never started (e.g. "can't start new thread"): nothing to wait for.
            # (On Ctrl-C it may have started: it stays listed, join() stops it.)
            self.tasks.remove(task)
            task._scope._detach()
            raise
        return task

    def cancel(self, reason: str) -> None:
        self.scope.cancel(reason)

    def join(self) -> list[Task[Any]]:
        """Wait for every worker. Ctrl-C or a prior cancel gives them ``grace`` seconds; the
        ones still stuck after it are reported as abandoned and returned. A thread that has
        finished its work but not yet exited (a blocking thread-local close hook, say) also
        gets ``grace`` seconds, and is abandoned after it."""
        stuck: list[Task[Any]] = []
        try:
            if self.scope._is_cancelled():
                stuck = cancel_and_wait(self.tasks, self.scope._reason or "cancelled", self.grace)
            else:
                for task in self.tasks:
                    task._wait_finished(None, "ignore")
        except KeyboardInterrupt:
            stuck = cancel_and_wait(self.tasks, f"{self.name} was interrupted (Ctrl-C)", self.grace)
            abandon(stuck, f"{self.name} was interrupted (Ctrl-C)")
            abandon(self._join_threads(stuck), f"{self.name} was interrupted (Ctrl-C)")
            raise
        abandon(stuck, f"{self.name} was cancelled")
        lingering = self._join_threads(stuck)
        abandon(lingering, f"{self.name}: threads did not exit within {self.grace:g} s")
        return stuck + lingering

    def _join_threads(self, stuck: list[Task[Any]]) -> list[Task[Any]]:
        """Join the threads of the finished tasks, within ``grace`` in all: the ones still
        alive after it."""
        end = _monotonic() + self.grace
        lingering = []
        for task in self.tasks:
            thread = task._thread
            if task in stuck or thread is None:
                continue
            # Not thread.join(): after a Ctrl-C inside Thread.start the thread can be running
            # before start() has marked it started, and join() then raises RuntimeError.
            if not _join_thread(thread, max(0.0, end - _monotonic())):
                lingering.append(task)
        return lingering


class ChunkSizer:
    """Picks how many items travel together, from the measured time per item.

    Trivial items go in large chunks (the hand-over cost all but disappears); slow items go
    one by one (so they spread over every worker). Updates race benignly: a float store.
    """

    __slots__ = ("cost", "fixed", "target")

    TARGET_SECONDS = 0.002  # the work one chunk should carry
    # Trivial items: every chunk costs a few lock round trips and, under the GIL, thread
    # switches; 4,096 items a chunk instead of 1,024 cut a trivial map's CPU time by a fifth.
    MAX_ITEMS = 4096

    def __init__(self, fixed: int | None = None, *, target: float = TARGET_SECONDS) -> None:
        self.fixed = fixed
        self.target = target
        self.cost: float | None = None  # seconds per item (hand-over included), smoothed

    def size(self) -> int:
        if self.fixed is not None:
            return self.fixed
        cost = self.cost
        if cost is None:
            return 1
        if cost <= 0:
            return self.MAX_ITEMS
        return max(1, min(self.MAX_ITEMS, int(self.target / cost)))

    def record(self, items: int, seconds: float) -> None:
        if items <= 0:
            return
        sample = seconds / items
        cost = self.cost
        self.cost = sample if cost is None else 0.7 * cost + 0.3 * sample


class RemoteChunkSizer(ChunkSizer):
    """Chunk sizes for a stage whose chunks run on an executor (a process pool, a cluster).

    Each chunk costs a round trip (submit, serialization, scheduling, the result's way back)
    on top of its work, and the round trip does not shrink with the chunk. So the two are
    measured apart, per chunk: the work time on the executor, and the rest of the
    submit-to-result time. Chunks are then sized so the round trip is at most a tenth of
    each, and no larger: a chunk of slow items still goes one item at a time.

    Nothing is known of the first chunks. A stage fed by the source sends one item to each
    of the executor's slots but one and a large chunk, on a budget, to the last (see
    ``Loan``). A stage fed by another stage sends one item; its next chunk is asked for at
    once, and a round trip takes milliseconds: so the second ``size()`` waits for the first
    chunk's figures, at most ``FIRST_WAIT`` seconds and only once, rather than send a
    queue-full of one-item chunks, each a round trip of its own.
    """

    __slots__ = ("_asked", "_asked_lock", "_measured", "lending", "loan", "overhead", "parallel")

    # Work per chunk, as a multiple of the round trip: the round trip is then <= 10%.
    WORK_PER_OVERHEAD = 9.0
    # Larger than a local stage's, so that a round trip of tens of ms on a busy cluster is
    # shared by enough trivial items: on 100,000 trivial items over 2 worker processes,
    # 4,096 measured 1.9x the best tuned time, 16,384 1.0x-1.8x (chunks queued behind each
    # other, each a round trip), 65,536 about 1.0x. Larger than the reorder window's item
    # bound too: an ordered stage then holds up to a chunk per worker out of order, still
    # within its byte bound.
    MAX_ITEMS = 65536
    FIRST_WAIT = 0.25
    # The last chunks of a source of known length are cut smaller, so that the executor's
    # workers finish together (see ``size_of_rest``), but never below this much work per
    # round trip: each chunk costs the client several ms of CPU too (about 6 ms on a Dask
    # client), and smaller last chunks (three round trips, or shares of half what is left)
    # measured slower than none at all on 100 CPU-bound items over 2 worker processes.
    REST_WORK_PER_OVERHEAD = 6.0
    # While much of a source of known length is left, chunks take half an even share of it
    # (as factoring does), up to this much work per round trip (see ``size_of_rest``).
    LARGE_WORK_PER_OVERHEAD = 25.0

    def __init__(self, fixed: int | None = None, *, parallel: int = 1) -> None:
        from ._sync import Event

        super().__init__(fixed)
        self.parallel = max(1, parallel)  # chunks the executor runs at once
        self.overhead: float | None = None  # seconds per chunk beyond its work
        self._asked = 0  # size() calls before the first figures
        self._asked_lock = threading.Lock()
        self._measured = Event(name="first remote chunk measured")
        # Set by a feeder that can take items back (see Loan): the first round of chunks
        # then ends with a large one.
        self.lending = False
        self.loan: Loan | None = None  # the first round's large chunk, once handed out

    def size(self) -> int:
        if self.fixed is not None:
            return self.fixed
        if self.overhead is None:
            with self._asked_lock:  # taken only until the first figures come in
                self._asked += 1
                asked = self._asked
            if self.lending:
                # One item for each of the executor's slots but one, and the last slot a
                # large chunk that stops after Loan.BUDGET seconds of work: trivial items
                # are then done in the first round trip (not a round trip of one item to
                # learn their cost, then another of the rest), slow ones still spread.
                if asked == self.parallel:
                    self.loan = Loan()
                    return Loan.ITEMS
                if asked > self.parallel:  # the loan came back with no figures (it failed)
                    self._measured.wait(self.FIRST_WAIT)  # cancellable
            elif asked == 2:
                self._measured.wait(self.FIRST_WAIT)  # cancellable
        cost = self.cost
        overhead = self.overhead
        if cost is None or overhead is None:
            return 1
        if cost <= 0:
            return self.MAX_ITEMS
        return max(1, min(self.MAX_ITEMS, int(self.WORK_PER_OVERHEAD * overhead / cost)))

    def size_of_rest(self, remaining: int) -> int:
        """``size()`` for a source that knows how many items it has left (a list, a tuple, a
        range).

        While much is left, chunks are larger than ``size()``: half an even share of what is
        left per chunk the executor runs at once (as factoring does), up to
        ``LARGE_WORK_PER_OVERHEAD`` round trips of work. Each chunk costs the client CPU (about
        10 ms a chunk on a Dask client) and a worker a hand-over between chunks; fewer, larger
        chunks early save both, and the shrinking shares keep the workers finishing together.
        600 CPU-bound items of 7 ms on 2 worker processes went in about 40 chunks of 15 and
        ran at 0.86-0.88x the speed of ``ProcessPoolExecutor(2)``; with chunks of 42 first,
        shrinking, at 0.94-0.99x (per-round medians of two A/B runs of nine rounds). Slow
        items still go one at a time: their round trips' work is less than one item.

        Near the end, chunks of the usual size leave one worker on a last full chunk while
        the others are done: 100 items of 7 ms over 2 worker processes went in chunks of 14,
        and one worker ran 60 ms longer than the other. So no chunk takes more than an even
        share of what is left (as guided self-scheduling does); the last chunks shrink, down
        to six round trips of work."""
        size = self.size()
        cost = self.cost
        overhead = self.overhead
        if self.fixed is not None or not cost or overhead is None:
            return size
        half_share = -(-remaining // (2 * self.parallel))
        large = int(self.LARGE_WORK_PER_OVERHEAD * overhead / cost)
        size = min(self.MAX_ITEMS, max(size, min(half_share, large)))
        share = -(-remaining // self.parallel)
        least = int(self.REST_WORK_PER_OVERHEAD * overhead / cost)
        return max(1, min(size, max(share, least)))

    def record(self, items: int, seconds: float) -> None:
        """The stage's end-to-end timing alone cannot tell work from round trip: ignored in
        favour of ``record_remote``."""

    def record_remote(self, items: int, elapsed: float, work: float) -> None:
        """One chunk of ``items``: ``elapsed`` from submit to result, ``work`` of it spent
        running the function on the executor."""
        if items <= 0:
            return
        # The fixed part of a round trip is what a chunk costs beyond its work at the least:
        # the lowest sample so far. Higher ones carry time queued behind the stage's other
        # chunks in flight (one per worker of the stage, more than the executor runs at
        # once), which grows with the chunks: following them, even slowly, made the chunks
        # grow with their own queueing. 600 CPU-bound items on 2 worker processes went in
        # chunks of 9 items at first and of 80-120 at the end, one worker running the last
        # one alone for half a second; 2.5-2.8 s against 2.0-2.1 s with the lowest sample.
        rest = max(0.0, elapsed - work)
        overhead = self.overhead
        if overhead is None or rest < overhead:
            overhead = rest
        # An item's cost is its work: what a chunk costs beyond it does not tell per-item
        # transfer from time queued, and a trivial item's transfer is cheap (a few us).
        sample = work / items
        cost = self.cost
        self.cost = sample if cost is None else 0.7 * cost + 0.3 * sample
        self.overhead = overhead  # last: size() reads a known overhead as "cost known too"
        self._measured.set()


class Loan:
    """The first round's large chunk to a remote stage, lent by the feeder: it runs for at
    most ``BUDGET`` seconds of work on the executor, and the items it did not reach come back
    to the feeder, which sends them again, in chunks sized by then, before anything it reads
    after. (The feeder sends nothing else until the loan is back: the items keep their
    order.)"""

    __slots__ = ("back", "returned", "uncount")

    ITEMS = 4096  # at most, as a local stage's largest chunk
    # Work before the items left come back: enough for thousands of trivial items, little
    # enough that slow ones do not wait long on one worker while others could run them.
    BUDGET = 0.02

    def __init__(self) -> None:
        from ._sync import Event

        self.back: list[Any] = []
        self.uncount: Callable[[int], None] | None = None  # the stage's received(), negated
        self.returned = Event(name="first large remote chunk back")

    def give_back(self, items: list[Any], uncount: Callable[[int], None] | None) -> None:
        """Called once by the stage: ``items`` were not run (maybe none)."""
        self.back = items
        self.uncount = uncount
        self.returned.set()

    def wait(self) -> list[Any]:
        """The feeder's wait (cancellable): the items to send again."""
        self.returned.wait()
        return self.back


class Lent(list[Any]):
    """The items of a ``Loan``'s chunk, as the stage receives them."""

    __slots__ = ("loan",)

    def __init__(self, items: list[Any], loan: Loan) -> None:
        super().__init__(items)
        self.loan = loan


class RateLimiter:
    """At most ``rate`` calls per second, shared by every thread that calls ``wait()``."""

    __slots__ = ("_interval", "_lock", "_next", "rate")

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._interval = 1.0 / rate
        self._lock = threading.Lock()
        self._next = _monotonic()

    def wait(self) -> None:
        with self._lock:
            now = _monotonic()
            slot = max(now, self._next)
            self._next = slot + self._interval
        if slot > now:
            sleep(slot - now)  # cancellable
