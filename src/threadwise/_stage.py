"""The stage runner: one stage's workers, each taking chunks from the stage's inbox, applying the
stage's function and handing the outputs to the stage's emitter.

The per-item loops run in C (``list.extend(map(fn, items))``): ``list.extend`` appends as
it goes, so when ``fn`` raises, the length of the list says exactly which item failed.
"""

from __future__ import annotations

import threading
import time
from _queue import Empty  # queue.Empty, without the queue module
from collections.abc import Callable
from itertools import chain, compress

from ._cancel import Waiter, block, checkpoint, current_scope, sleep
from ._exceptions import Cancelled, QueueClosed
from ._pool import ChunkSizer, Lent, Loan, RateLimiter, RemoteChunkSizer
from ._report import StageReport
from ._sync import Condition, Queue, _end_of, _remaining, strict_timeout
from ._typing import TYPE_CHECKING, Any, Literal, cast

if TYPE_CHECKING:
    import concurrent.futures

    from ._reorder import Emitter
    from ._run import Run

StageKind = Literal["map", "filter", "flat_map", "each", "batch"]
OnError = Literal["raise", "skip"]

_perf = time.perf_counter
_thread_time = time.thread_time  # this thread's CPU time: for the report's GIL-bound hint

# Per-stage bound on queued chunks: enough to keep workers fed, small enough to bound memory.
# Chunks carry about ChunkSizer.TARGET_SECONDS of work each, so this bounds queued work too.
CHUNKS_PER_WORKER = 2
# ... and never fewer than this, whatever the workers: a stage with one worker handing
# trivial items to the next would otherwise fill a two-chunk queue in microseconds and hand
# the GIL over at every chunk (8 instead of 2: 40% more throughput for 3 cheap stages).
MIN_CHUNKS = 8
# ... and, whatever the chunks, at most this many items queued (a chunk always fits in an
# empty queue): trivial items travel in chunks of up to ChunkSizer.MAX_ITEMS, and eight of
# those in every queue would hold several times the memory for no more throughput. Two of
# them, though: with room for one only, the sender waits on every chunk, and the thread
# switches that costs (2 M trivial items: 3,500 against 2,000) added a tenth of CPU time.
QUEUE_ITEMS = 4096
# ... but room for four of them between the source and the first stage, and between the last
# stage and the caller, with the sender woken only once the queue is down to half (see
# ChunkQueue.get), so that it hands two chunks over per wake-up. With room for one only, the
# sender waits on every chunk, and the thread switches that costs (2 M trivial items through
# map: 3,500 against 2,000) added a tenth of its CPU time; room for two woken at every chunk
# still made 1,770 voluntary context switches against 930, and under load every switch can
# wait for a CPU. (Between two stages more room measured slower: more memory touched.)
EDGE_QUEUE_ITEMS = 4 * QUEUE_ITEMS
# Skipped items whose exception the report keeps (the count is always exact).
_MAX_RECORDED_ERRORS = 1000


class ChunkQueue(Queue[tuple[int, list[Any]]]):
    """A queue of ``(seq, chunk)`` bounded by chunks (``maxsize``) and by items
    (``max_items``): full when either bound is reached, empty when it holds no chunk.

    Its takers may also park (``settle``): while the chunks are trivial, one taker keeps up
    with whatever feeds the queue, and every other one woken for a chunk would only cost a
    thread switch and a GIL hand-over for work one thread does as fast.
    """

    __slots__ = ("awake", "items", "lone", "max_items", "parked", "taken", "watching")

    # How long the awake taker may hold one chunk while more wait, before the parked ones
    # wake: a trivial stream can carry a slow item, which must not stall the rest behind it.
    WATCH_SECONDS = 0.01

    def __init__(
        self, maxsize: int, name: str, max_items: int = QUEUE_ITEMS, takers: int = 1
    ) -> None:
        self.items = 0  # items in the queued chunks (changed under the queue's mutex)
        self.max_items = max_items
        self.awake = takers  # takers not parked (changed under the queue's mutex)
        self.lone = False  # chunks are trivial: one taker is enough
        self.taken = 0  # chunks taken so far: the watcher's sign that the queue moves
        self.watching = False  # a parked taker waits with a timeout, the others without
        super().__init__(maxsize, name=name)
        self.parked = Condition(self.mutex)

    def settle(self, trivial: bool) -> None:
        """Called by a taker between chunks, holding none. A trivial chunk parks the taker
        while another one is awake, until a chunk is not trivial (slower items, or work that
        releases the GIL and gains from every thread), the queue stops moving while it holds
        chunks, or it closes. Cancellable."""
        with self.mutex:
            if not trivial:
                if self.lone:
                    self._wake_all()
                return
            self.lone = True
            if self.awake <= 1:
                return
            self.awake -= 1
            try:
                while self.lone and not self.is_shutdown:
                    if self.watching:
                        self.parked._wait(None, (self, "get"))
                        continue
                    # One parked taker watches, so the others cost no wake-ups.
                    self.watching = True
                    before = self.taken
                    try:
                        self.parked._wait(self.WATCH_SECONDS, (self, "get"))
                    finally:
                        self.watching = False
                    if self.lone and self.taken == before and self._qsize():
                        self._wake_all()  # the awake taker is held up: everyone works
            finally:
                self.awake += 1

    def _wake_all(self) -> None:
        self.lone = False
        self.parked._notify(len(self.parked._waiters))

    def shutdown(self, immediate: bool = False) -> None:
        super().shutdown(immediate)
        with self.mutex:  # parked takers drain what is left, then see the queue closed
            self.parked._notify(len(self.parked._waiters))

    def get(self, block: bool = True, timeout: float | None = None) -> tuple[int, list[Any]]:
        """``Queue.get``, but a sender waiting for room is woken only once the queue is down
        to half its bounds (chunks and items), not at every chunk taken: it then puts several
        chunks per wake-up, and each wake-up of a thread costs a context switch and a GIL
        hand-over. On trivial items (a queue full by items) that halves the switches; on slow
        items (full by chunks, one item each) the source was woken for every item the workers
        took: 50 workers on 20 ms sleeps cost 120-130 us of CPU per item against 65-95 so (a
        ThreadPoolExecutor: 60-90), and a run of short requests is CPU-bound. Room always
        comes by that mark (only takers shrink the queue, and an empty queue is below it),
        so a waiting sender is always woken."""
        seconds = None if timeout is None or not block else strict_timeout(timeout)
        with self.mutex:
            if not self._qsize():
                if self.is_shutdown:
                    raise QueueClosed(f"get() on closed and empty {self._describe()}")
                if not block:
                    raise Empty
                end = _end_of(seconds)
                while not self._qsize():
                    left = _remaining(end)
                    if left is not None and left <= 0:
                        raise Empty
                    self.not_empty._wait(left, (self, "get"))
                    if self.is_shutdown and not self._qsize():
                        raise QueueClosed(f"get() on closed and empty {self._describe()}")
            item = self._get()
            if 2 * len(self.queue) <= self.maxsize and 2 * self.items <= self.max_items:
                self.not_full._notify(1)
            return item

    def _qsize(self) -> int:
        count = len(self.queue)
        if count and self.items >= self.max_items:
            return self.maxsize  # full by items: put waits, as for a full queue
        return count

    def _put(self, item: tuple[int, list[Any]]) -> None:
        self.queue.append(item)
        self.items += len(item[1])

    def _get(self) -> tuple[int, list[Any]]:
        item: tuple[int, list[Any]] = self.queue.popleft()
        self.items -= len(item[1])
        self.taken += 1
        return item

    # Shown as a plain Queue where a thread's wait is described (dumps, hang reports).
    def _describe(self) -> str:
        return f"Queue {self._name!r}"

    def _describe_wait(self, verb: str) -> str:
        return f"Queue.{verb} on {self._name!r}"


def queue_capacity(workers: int) -> int:
    """Chunks a queue feeding (or fed by) ``workers`` threads may hold."""
    return max(MIN_CHUNKS, CHUNKS_PER_WORKER * workers)


class StageSpec:
    """What a stage does; immutable once made (pipelines share their stage specs)."""

    __slots__ = (
        "backoff",
        "chunk_size",
        "executor",
        "fn",
        "kind",
        "name",
        "on_error",
        "ordered",
        "rate",
        "retries",
        "size",
        "workers",
    )

    kind: StageKind
    on_error: OnError

    def __init__(
        self,
        kind: StageKind,
        fn: Callable[[Any], Any] | None,
        name: str,
        *,
        workers: int = 1,
        ordered: bool = True,
        rate: float | None = None,
        retries: int = 0,
        backoff: float = 0.1,
        on_error: OnError = "raise",
        executor: concurrent.futures.Executor | None = None,
        chunk_size: int | None = None,
        size: int = 0,  # batch size for kind == "batch"
    ) -> None:
        self.kind = kind
        self.fn = fn
        self.name = name
        self.workers = workers
        self.ordered = ordered
        self.rate = rate
        self.retries = retries
        self.backoff = backoff
        self.on_error = on_error
        self.executor = executor
        self.chunk_size = chunk_size
        self.size = size


class _Partial(BaseException):
    """Internal: a chunk stopped at item ``done`` because of ``cause``."""

    def __init__(self, done: int, cause: BaseException) -> None:
        self.done = done
        self.cause = cause


class _Chunk:
    """Items, or their outcomes, on their way to or from an executor, in one opaque object:
    Dask walks a list argument item by item looking for its own futures (about 0.1 ms per
    item), but passes an object through. ``seconds`` is the work time on the executor;
    ``budget``, if set, the work time after which the executor stops (the outcomes are
    then fewer than the items). Outcomes are ``(ok, value-or-exception)`` pairs, or, when
    ``plain``, the values alone: every item of a map chunk succeeded."""

    __slots__ = ("budget", "items", "plain", "seconds")

    def __init__(
        self, items: list[Any], seconds: float = 0.0, budget: float = 0.0, plain: bool = False
    ) -> None:
        self.items = items
        self.seconds = seconds
        self.budget = budget
        self.plain = plain

    def __reduce__(self) -> tuple[type[_Chunk], tuple[list[Any], float, float, bool]]:
        # A plain list: a Lent one would take its loan (and its lock) along.
        items = self.items if type(self.items) is list else list(self.items)
        return (_Chunk, (items, self.seconds, self.budget, self.plain))

    def __dask_tokenize__(self) -> object:
        # Each submission a task of its own: Dask names a task by a hash of its arguments
        # and hands back the held outcome of an equal one, so a retry would not run again
        # (and hashing the items costs time for nothing).
        import uuid

        return uuid.uuid4().hex


def _apply_remote(kind: StageKind, fn: Callable[[Any], Any], chunk: _Chunk) -> _Chunk:
    """Run a chunk on an executor (possibly another machine). A map chunk whose items all
    succeed comes back ``plain``, its values alone: 100,000 trivial items then cost the
    worker 11 ms instead of 25, and their trip back pickles and unpickles in 6 ms instead of
    49 (no pair per item). So does a loan's (see ``Loan``), with fewer values than items
    when its budget ran out. Otherwise each item's ``(ok, value-or-exception)``."""
    started = _perf()
    items = chunk.items
    budget = chunk.budget
    results: list[Any] = []
    if kind == "map":
        append = results.append
        error: Exception | None = None
        if budget:  # a loan (see Loan): its items not reached go back, fewer values come
            for item in items:
                if results and _perf() - started >= budget:
                    break
                try:
                    append(fn(item))
                except Exception as exc:
                    error = exc
                    break
        else:
            for item in items:
                try:
                    append(fn(item))
                except Exception as exc:
                    error = exc
                    break
        if error is None:
            return _Chunk(results, _perf() - started, plain=True)
        # An item failed: the values so far become pairs, then its exception (it is not run
        # again: its side effects happen once), then the rest item by item.
        _note_remote_traceback(error)
        done = len(results)
        results = [(True, value) for value in results]
        results.append((False, error))
        del error
        items = items[done + 1 :]
    for item in items:
        if budget and results and _perf() - started >= budget:
            break  # the rest goes back to the caller, to be sent again
        try:
            value = fn(item)
            if kind == "flat_map":
                value = list(value)
            results.append((True, value))
        except Exception as exc:
            _note_remote_traceback(exc)
            results.append((False, exc))
    return _Chunk(results, _perf() - started)


def _note_remote_traceback(exc: BaseException) -> None:
    # The traceback does not survive the trip back from another process: keep it as a
    # note, which does.
    import traceback

    exc.add_note("remote traceback:\n" + "".join(traceback.format_exception(exc)))


class _FutureWait:
    __slots__ = ()

    def _describe_wait(self, verb: str) -> str:
        return f"executor future ({verb})"


_FUTURE_WAIT = _FutureWait()


def _wait_future(future: concurrent.futures.Future[Any]) -> Any:
    """Wait for an executor future; a cancellation of the caller cancels the future too."""
    waiter = Waiter()
    future.add_done_callback(lambda _: waiter.wake())
    try:
        while not future.done():
            block(waiter, None, (_FUTURE_WAIT, "result"))
    except BaseException:
        future.cancel()
        raise
    return future.result()


def _describe_item(item: object) -> str:
    import reprlib

    short = reprlib.Repr()
    short.maxstring = short.maxother = 80
    return short.repr(item)


def _truth_failure(flags: list[Any], exc: BaseException) -> _Partial:
    """Which filter result failed to convert to bool (a numpy array, say)."""
    for index, flag in enumerate(flags):
        try:
            bool(flag)
        except BaseException as error:
            return _Partial(index, error)
    return _Partial(len(flags), exc)  # pragma: no cover - bool() failed once, not twice


class StageRun:
    """One stage of one run: its inbox, its workers' loop, its counters."""

    def __init__(self, spec: StageSpec, run: Run, index: int) -> None:
        self.spec = spec
        self.run = run
        self.index = index
        self.report = StageReport(spec.name, spec.kind, spec.workers)
        self.inbox = ChunkQueue(
            queue_capacity(spec.workers),
            name=f"{spec.name} inbox",
            takers=spec.workers,
            max_items=EDGE_QUEUE_ITEMS if index == 0 else QUEUE_ITEMS,
        )
        self.sizer: ChunkSizer
        self.submit: Callable[..., concurrent.futures.Future[Any]]
        if spec.executor is None:
            self.sizer = ChunkSizer(spec.chunk_size)
        else:
            from .dask import chunk_submitter, executor_threads

            self.submit = chunk_submitter(spec.executor)
            threads = executor_threads(spec.executor)
            # Chunks in flight at once: one per worker of the stage, or fewer if the executor
            # runs fewer at a time.
            self.sizer = RemoteChunkSizer(
                spec.chunk_size,
                parallel=spec.workers if threads is None else min(threads, spec.workers),
            )
        self.limiter = RateLimiter(spec.rate) if spec.rate is not None else None
        self.lock = threading.Lock()
        self.active = spec.workers
        self.partial: list[Any] = []  # a batch stage's unfinished batch
        self.emitter: Emitter  # set by the run once the receiver exists
        self.slow = bool(
            spec.rate is not None
            or spec.retries
            or spec.on_error == "skip"
            or spec.executor is not None
        )

    # -- counters (items_in/items_out change under the handing-over emitter's or feeder's lock)
    def received(self, n: int) -> None:
        self.report.items_in += n

    def sent(self, n: int) -> None:
        self.report.items_out += n

    # -- the worker loop -----------------------------------------------------------------------
    def work(self) -> None:
        inbox = self.inbox
        emit = self.emitter.emit
        process = self._process_slow if self.slow else self._process_fast
        record = self.sizer.record
        report = self.report
        lock = self.lock
        # A chunk as large as they come that carries less work than a chunk should is
        # trivial: one worker keeps up, the others park (see ChunkQueue.settle). Not for
        # slow stages: a remote executor's round trips gain from every worker.
        settle = None if self.slow or self.spec.workers <= 1 else inbox.settle
        full_chunk = ChunkSizer.MAX_ITEMS
        trivial_below = ChunkSizer.TARGET_SECONDS
        items: list[Any] = []
        try:
            while True:
                try:
                    seq, items = inbox.get()
                except QueueClosed:
                    break
                checkpoint()  # a queued chunk never starts once the run is cancelled
                started = _perf()
                cpu_started = _thread_time()
                try:
                    out, failed = process(items)
                except _Partial as partial:
                    self._chunk_stopped(items, partial, _perf() - started)
                    items = []
                    return
                busy = _perf() - started
                cpu = _thread_time() - cpu_started
                record(len(items), busy)
                with lock:
                    report.completed += len(items) - failed
                    report.failed += failed
                    report.busy_seconds += busy
                    report.cpu_seconds += cpu
                count = len(items)
                items = []
                emit(seq, out)
                if settle is not None:
                    settle(count >= full_chunk and busy < trivial_below)
        except Cancelled:
            with lock:
                report.not_started += len(items)
            return
        except BaseException as exc:
            with lock:
                report.not_started += len(items)
            self.run.fail(self, exc)
            return
        with lock:
            self.active -= 1
            last = self.active == 0
        if last and self.run.failure is None:
            extra = [self.partial] if self.partial else None
            self.partial = []
            self.emitter.close(extra)

    def _chunk_stopped(self, items: list[Any], partial: _Partial, busy: float) -> None:
        cause = partial.cause
        report = self.report
        # A Cancelled from this run being cancelled stops the item (not run); one that fn
        # raised by hand, with no cancelled scope around it, is a failure of that item.
        scope = current_scope()
        stopped = isinstance(cause, Cancelled) and scope is not None and scope.cancelled
        failed = 0 if stopped else 1
        with self.lock:
            report.completed += partial.done
            report.failed += failed
            report.not_started += len(items) - partial.done - failed
            report.busy_seconds += busy
        if failed:
            item = items[partial.done]
            cause.add_note(
                f"threadwise: raised by stage {self.spec.name!r} for item {_describe_item(item)}"
            )
            self.run.fail(self, cause)

    def _process_fast(self, items: list[Any]) -> tuple[list[Any], int]:
        spec = self.spec
        fn = spec.fn
        kind = spec.kind
        if kind == "batch":
            partial = self.partial
            partial.extend(items)
            size = spec.size
            batches = []
            while len(partial) >= size:
                batches.append(partial[:size])
                del partial[:size]
            return batches, 0
        assert fn is not None
        out: list[Any] = []
        try:
            if kind == "map":
                out.extend(map(fn, items))
                return out, 0
            if kind == "flat_map":
                # list() inside the loop: an iterable that fails part-way is that item's failure.
                out.extend(map(list, map(fn, items)))
                return list(chain.from_iterable(out)), 0
            out.extend(map(fn, items))  # filter's verdicts, or each's return values
        except BaseException as exc:
            raise _Partial(len(out), exc) from None
        if kind == "filter":
            try:
                return list(compress(items, out)), 0
            except BaseException as exc:
                raise _truth_failure(out, exc) from None
        # each: a side effect, items pass through (as a list: a chunk from the source may be
        # a range or a tuple, and the emitter extends what it is given)
        return items if type(items) is list else list(items), 0

    def _process_slow(self, items: list[Any]) -> tuple[list[Any], int]:
        """Rate limit, retries, skip-on-error or a remote executor: item by item."""
        spec = self.spec
        outcomes: list[Any] | None = None
        if spec.executor is not None:
            try:
                chunk = self._remote(items)
            except Exception as exc:
                # The executor gave up on the chunk as a whole (Dask's KilledWorker after its
                # workers died, a broken process pool): each of its items failed with that
                # cause, and retries and on_error take it from there, item by item.
                exc.add_note(
                    f"threadwise: the executor failed a whole chunk of {len(items)} item(s) "
                    f"of stage {spec.name!r}, from item {_describe_item(items[0])}"
                )
                outcomes = [(False, exc) for _ in items]
            else:
                outcomes = chunk.items
                if spec.kind == "map":
                    # Every item of the chunk came back done, the common case: its values in
                    # one pass and one checkpoint, not item by item (100,000 trivial items:
                    # 2.6 ms against 27.5 ms, on the thread that waits on the executor).
                    try:
                        checkpoint()
                    except BaseException as exc:
                        raise _Partial(0, exc) from None
                    if chunk.plain:  # the executor sent the values alone
                        return outcomes, 0
                    values = [value for ok, value in outcomes if ok]
                    if len(values) == len(items):
                        return values, 0
                    del values  # some failed: item by item, below (retries, on_error)
        out: list[Any] = []
        failed = 0
        for done, item in enumerate(items):
            try:
                checkpoint()
                if outcomes is not None:
                    ok, value = outcomes[done]
                    if not ok:
                        value = self._call_with_retries(item, first_error=value)
                else:
                    value = self._call_with_retries(item, first_error=None)
            except Exception as exc:
                if spec.on_error == "raise":
                    raise _Partial(done, exc) from None
                failed += 1
                with self.lock:
                    if len(self.report.errors) < _MAX_RECORDED_ERRORS:
                        self.report.errors.append((item, exc))
                continue
            except BaseException as exc:
                raise _Partial(done, exc) from None
            if spec.kind == "map":
                out.append(value)
            elif spec.kind == "filter":
                if value:
                    out.append(item)
            elif spec.kind == "flat_map":
                out.extend(value)
            else:
                out.append(item)
        return out, failed

    def _remote(self, items: list[Any]) -> _Chunk:
        """The chunk's outcomes from the executor (a loan's items not reached go back)."""
        fn = self.spec.fn
        assert fn is not None
        loan = items.loan if type(items) is Lent else None
        back: list[Any] = []
        try:
            started = _perf()
            future = self.submit(
                _apply_remote,
                self.spec.kind,
                fn,
                _Chunk(items, budget=Loan.BUDGET if loan is not None else 0.0),
            )
            if self.spec.chunk_size is None:
                # Submit to result, end to end, taken by the thread that completes the
                # future (the executor's): not the later wake-up of this one, and a feeder
                # waiting for the first figures goes on at once.
                future.add_done_callback(lambda done: self._measured(started, done))
            done = cast(_Chunk, _wait_future(future))
            reached = len(done.items)
            if reached < len(items):  # a loan's budget ran out: the rest goes back
                back = items[reached:]
                del items[reached:]
        finally:
            if loan is not None:
                loan.give_back(back, self.received)
        return done

    def _measured(self, started: float, future: concurrent.futures.Future[Any]) -> None:
        elapsed = _perf() - started
        if future.cancelled() or future.exception() is not None:
            return
        done: _Chunk = future.result()
        cast(RemoteChunkSizer, self.sizer).record_remote(len(done.items), elapsed, done.seconds)

    def _call_with_retries(self, item: Any, first_error: BaseException | None) -> Any:
        spec = self.spec
        fn = spec.fn
        assert fn is not None
        attempt = 0
        error = first_error
        while True:
            if error is not None:
                if attempt >= spec.retries:
                    raise error
                attempt += 1
                with self.lock:
                    self.report.retries += 1
                import random

                # Exponential backoff with jitter, so retrying workers do not stampede.
                sleep(spec.backoff * (2 ** (attempt - 1)) * (0.5 + random.random()))
            if self.limiter is not None:
                self.limiter.wait()
            try:
                if spec.executor is not None:
                    future = self.submit(_apply_remote, spec.kind, fn, _Chunk([item]))
                    done = cast(_Chunk, _wait_future(future))
                    if done.plain:
                        (value,) = done.items
                        return value
                    ((ok, value),) = done.items
                    if not ok:
                        raise value
                    return value
                value = fn(item)
                return list(value) if spec.kind == "flat_map" else value
            except Exception as exc:
                error = exc
