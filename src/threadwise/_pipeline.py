"""Pipelines: stages of worker threads joined by bounded queues, every item accounted for.

Items travel in chunks. Each hand-over point (the source feeder, and each stage's
``_Emitter``) re-cuts the item stream into chunks sized for the stage that receives them, so
trivial stages get large chunks and slow stages get items one by one. An ordered stage's
emitter puts chunks back in sequence before passing them on.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import queue as _stdlib_queue
import random
import reprlib
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar, cast

from ._cancel import Waiter, block, checkpoint, current_scope, sleep
from ._exceptions import Cancelled, QueueClosed
from ._pool import ChunkSizer, RateLimiter, Workers
from ._progress import Progress, ProgressArg
from ._sync import Condition, Lock, Queue
from ._validate import (
    check_callable,
    check_name,
    check_non_negative_int,
    check_positive_int,
    check_timeout,
)

T = TypeVar("T")
R = TypeVar("R")

StageKind = Literal["map", "filter", "flat_map", "each", "batch"]
OnError = Literal["raise", "skip"]
_ON_ERROR = ("raise", "skip")
_perf = time.perf_counter
_pipeline_counter = itertools.count(1)
_item_repr = reprlib.Repr()
_item_repr.maxstring = 80
_item_repr.maxother = 80

# Per-stage bound on queued chunks: enough to keep workers fed, small enough to bound memory.
_CHUNKS_PER_WORKER = 2
# Skipped items whose exception the report keeps (the count is always exact).
_MAX_RECORDED_ERRORS = 1000


@dataclass
class StageReport:
    """What one stage did. ``items_in == completed + failed + not_started`` always holds."""

    name: str
    kind: str
    workers: int
    items_in: int = 0
    items_out: int = 0
    completed: int = 0
    failed: int = 0
    not_started: int = 0
    retries: int = 0
    discarded: int = 0  # outputs made but dropped because the run stopped early
    busy_seconds: float = 0.0
    utilisation: float = 0.0
    errors: list[tuple[Any, BaseException]] = field(default_factory=list)

    @property
    def accounted(self) -> bool:
        return self.items_in == self.completed + self.failed + self.not_started


@dataclass
class PipelineReport:
    """The outcome of a pipeline run, stage by stage."""

    name: str
    stages: list[StageReport]
    source_read: int = 0
    source_unsent: int = 0
    delivered: int = 0
    elapsed: float = 0.0
    finished: bool = False
    cancelled: str | None = None
    error: BaseException | None = None

    @property
    def bottleneck(self) -> str | None:
        """The busiest stage (highest utilisation): the one to give more workers."""
        if not self.stages:
            return None
        return max(self.stages, key=lambda s: s.utilisation).name

    @property
    def accounted(self) -> bool:
        """Every item read from the source is accounted for at every stage."""
        if not all(stage.accounted for stage in self.stages):
            return False
        if self.stages and self.stages[0].items_in + self.source_unsent != self.source_read:
            return False
        return all(a.items_out == b.items_in for a, b in itertools.pairwise(self.stages))

    def __str__(self) -> str:
        head = (
            f"{'stage':<20} {'workers':>7} {'in':>10} {'out':>10} {'failed':>7} "
            f"{'not run':>8} {'busy s':>8} {'util':>6}"
        )
        lines = [f"pipeline {self.name!r}: {self.elapsed:.3f} s", head, "-" * len(head)]
        for s in self.stages:
            lines.append(
                f"{s.name[:20]:<20} {s.workers:>7} {s.items_in:>10} {s.items_out:>10} "
                f"{s.failed:>7} {s.not_started:>8} {s.busy_seconds:>8.3f} {s.utilisation:>6.0%}"
            )
        lines.append(f"bottleneck: {self.bottleneck}")
        if self.cancelled:
            lines.append(f"cancelled: {self.cancelled}")
        return "\n".join(lines)


@dataclass(frozen=True)
class _StageSpec:
    kind: StageKind
    fn: Callable[[Any], Any] | None
    name: str
    workers: int = 1
    ordered: bool = True
    rate: float | None = None
    retries: int = 0
    backoff: float = 0.1
    on_error: OnError = "raise"
    executor: concurrent.futures.Executor | None = None
    chunk_size: int | None = None
    size: int = 0  # batch size for kind == "batch"


class _Partial(BaseException):
    """Internal: a chunk stopped at item ``done`` because of ``cause``."""

    def __init__(self, done: int, cause: BaseException) -> None:
        self.done = done
        self.cause = cause


def _apply_remote(kind: StageKind, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    """Run a chunk on an executor (possibly another machine): (ok, value-or-exception) each."""
    results: list[Any] = []
    for item in items:
        try:
            value = fn(item)
            if kind == "flat_map":
                value = list(value)
            results.append((True, value))
        except Exception as exc:
            # The traceback does not survive the trip back from another process: keep it
            # as a note, which does.
            exc.add_note("remote traceback:\n" + "".join(traceback.format_exception(exc)))
            results.append((False, exc))
    return results


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


class _Emitter:
    """Hands a stage's results to the next stage (or the output), in order if asked, re-cut
    into chunks of the size the receiver wants. Only this object puts into its receiver."""

    def __init__(
        self,
        ordered: bool,
        inbox: Queue[tuple[int, list[Any]]],
        sizer: ChunkSizer | None,
        sent: Callable[[int], None],
        window: int = 1 << 30,
    ) -> None:
        self.ordered = ordered
        self.inbox = inbox
        self.sizer = sizer
        self.sent = sent
        self.lock = Lock()
        # Chunks may run this far ahead of the next one due: bounds the reorder buffer while
        # one slow item holds up the sequence (the workers then wait instead of piling up).
        self.window = window
        self.ahead = Condition(self.lock)
        self.buffer: dict[int, list[Any]] = {}
        self.next_seq = 0
        self.pending: list[Any] = []
        self.out_seq = 0
        self.dropped = 0  # outputs never stored because the run was cancelled first

    def emit(self, seq: int, items: list[Any]) -> None:
        stored = False
        try:
            with self.lock:
                if self.ordered:
                    while seq - self.next_seq > self.window:
                        self.ahead.wait()
                    buffer = self.buffer
                    buffer[seq] = items
                    stored = True
                    if self.next_seq in buffer:
                        while self.next_seq in buffer:
                            ready = buffer.pop(self.next_seq)
                            self.next_seq += 1
                            if self.pending:
                                self.pending.extend(ready)
                            else:
                                self.pending = ready
                        self.ahead.notify_all()
                elif self.pending:
                    self.pending.extend(items)
                    stored = True
                else:
                    self.pending = items
                    stored = True
                self._flush(final=False)
        except BaseException:
            if not stored:  # cancelled while waiting its turn: these outputs are dropped
                self.dropped += len(items)
            raise

    def close(self, extra: list[Any] | None = None) -> None:
        with self.lock:
            if extra:
                self.pending.extend(extra)
            self._flush(final=True)
        self.inbox.close()

    def _flush(self, *, final: bool) -> None:
        """Send ``pending`` on in chunks of the receiver's size. A short rest goes now if the
        receiver is idle (or always, for the output), rather than wait to fill up. If a put
        is cancelled, ``pending`` keeps exactly what was not sent."""
        pending = self.pending
        if not pending:
            return
        eager = self.sizer is None
        size = ChunkSizer.MAX_ITEMS if self.sizer is None else self.sizer.size()
        start = 0
        try:
            while start < len(pending):
                left = len(pending) - start
                if left < size and not (eager or final or self.inbox.empty()):
                    break
                end = start + min(size, left)
                whole = start == 0 and end == len(pending)
                self._put(pending if whole else pending[start:end])
                start = end
        finally:
            if start:
                self.pending = pending[start:]

    def _put(self, chunk: list[Any]) -> None:
        self.inbox.put((self.out_seq, chunk))
        self.out_seq += 1
        self.sent(len(chunk))


class _StageRun:
    """One stage of one run: its inbox, its workers' loop, its counters."""

    def __init__(self, spec: _StageSpec, run: _Run, index: int) -> None:
        self.spec = spec
        self.run = run
        self.index = index
        self.report = StageReport(spec.name, spec.kind, spec.workers)
        capacity = max(2, _CHUNKS_PER_WORKER * spec.workers)
        self.inbox: Queue[tuple[int, list[Any]]] = Queue(capacity, name=f"{spec.name} inbox")
        self.sizer = ChunkSizer(
            spec.chunk_size, target=0.1 if spec.executor is not None else ChunkSizer.TARGET_SECONDS
        )
        self.limiter = RateLimiter(spec.rate) if spec.rate is not None else None
        self.lock = threading.Lock()
        self.active = spec.workers
        self.partial: list[Any] = []  # a batch stage's unfinished batch
        self.emitter: _Emitter  # set by the run once the receiver exists
        self.slow = bool(
            spec.rate is not None
            or spec.retries
            or spec.on_error == "skip"
            or spec.executor is not None
        )

    # -- counters (the emitter's are updated under the emitter's lock) -----------------------
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
        items: list[Any] = []
        try:
            while True:
                try:
                    seq, items = inbox.get()
                except QueueClosed:
                    break
                checkpoint()  # a queued chunk never starts once the run is cancelled
                started = _perf()
                try:
                    out, failed = process(items)
                except _Partial as partial:
                    self._chunk_stopped(items, partial, _perf() - started)
                    items = []
                    return
                busy = _perf() - started
                record(len(items), busy)
                with lock:
                    report.completed += len(items) - failed
                    report.failed += failed
                    report.busy_seconds += busy
                items = []
                emit(seq, out)
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
        failed = 0 if isinstance(cause, Cancelled) else 1
        with self.lock:
            report.completed += partial.done
            report.failed += failed
            report.not_started += len(items) - partial.done - failed
            report.busy_seconds += busy
        if failed:
            item = items[partial.done]
            cause.add_note(
                f"threadwise: raised by stage {self.spec.name!r} for item {_item_repr.repr(item)}"
            )
            self.run.fail(self, cause)

    def _process_fast(self, items: list[Any]) -> tuple[list[Any], int]:
        spec = self.spec
        fn = spec.fn
        kind = spec.kind
        if kind == "map":
            assert fn is not None
            out: list[Any] = []
            append = out.append
            try:
                for item in items:
                    append(fn(item))
            except BaseException as exc:
                raise _Partial(len(out), exc) from None
            return out, 0
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
        out = []
        done = 0
        try:
            if kind == "filter":
                for item in items:
                    if fn(item):
                        out.append(item)
                    done += 1
            elif kind == "flat_map":
                for item in items:
                    out.extend(fn(item))
                    done += 1
            else:  # each: a side effect, items pass through
                for item in items:
                    fn(item)
                    done += 1
                out = items
        except BaseException as exc:
            raise _Partial(done, exc) from None
        return out, 0

    def _process_slow(self, items: list[Any]) -> tuple[list[Any], int]:
        """Rate limit, retries, skip-on-error or a remote executor: item by item."""
        spec = self.spec
        outcomes = self._remote(items) if spec.executor is not None else None
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

    def _remote(self, items: list[Any]) -> list[Any]:
        executor = self.spec.executor
        fn = self.spec.fn
        assert executor is not None
        assert fn is not None
        future = executor.submit(_apply_remote, self.spec.kind, fn, items)
        return cast(list[Any], _wait_future(future))

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
                # Exponential backoff with jitter, so retrying workers do not stampede.
                sleep(spec.backoff * (2 ** (attempt - 1)) * (0.5 + random.random()))
            if self.limiter is not None:
                self.limiter.wait()
            try:
                if spec.executor is not None:
                    ((ok, value),) = cast(
                        list[Any],
                        _wait_future(spec.executor.submit(_apply_remote, spec.kind, fn, [item])),
                    )
                    if not ok:
                        raise value
                    return value
                value = fn(item)
                return list(value) if spec.kind == "flat_map" else value
            except Exception as exc:
                error = exc


class _Run:
    """One execution of a pipeline: threads, queues, counters, and the first failure."""

    def __init__(
        self,
        pipeline: Pipeline[Any],
        timeout: float | None,
        grace: float,
    ) -> None:
        self.name = pipeline._name
        self.source_iter = iter(pipeline._source)
        self.started = time.monotonic()
        self.deadline = None if timeout is None else self.started + timeout
        self.timeout = timeout
        self.stages = [_StageRun(spec, self, i) for i, spec in enumerate(pipeline._stages)]
        last_workers = self.stages[-1].spec.workers if self.stages else 1
        self.output: Queue[tuple[int, list[Any]]] = Queue(
            max(2, _CHUNKS_PER_WORKER * last_workers), name=f"{self.name} output"
        )
        for this, nxt in itertools.zip_longest(self.stages, self.stages[1:]):
            window = _CHUNKS_PER_WORKER * this.spec.workers
            if nxt is None:
                this.emitter = _Emitter(
                    this.spec.ordered, self.output, None, this.sent, window=window
                )
            else:
                this.emitter = _Emitter(
                    this.spec.ordered,
                    nxt.inbox,
                    nxt.sizer,
                    _both(this.sent, nxt.received),
                    window=window,
                )
        self.report = PipelineReport(self.name, [s.report for s in self.stages])
        self.failure: BaseException | None = None
        self.lock = threading.Lock()
        self.workers = Workers(f"pipeline {self.name!r}", current_scope(), grace=grace)
        if self.deadline is not None:
            self.workers.scope._own_deadline = self.workers.scope._deadline = self.deadline
        self.finished = False

    def start(self) -> None:
        workers = self.workers
        if not self.stages:
            workers.start(self._feed_output, f"{self.name}-source")
            return
        workers.start(self._feed, f"{self.name}-source")
        for stage in self.stages:
            for i in range(stage.spec.workers):
                workers.start(stage.work, f"{self.name}-{stage.spec.name}-{i + 1}")

    def _read_chunks(self) -> Iterator[list[Any]]:
        """Pull the source in chunks (only this thread touches the source iterator)."""
        source = self.source_iter
        first = self.stages[0].sizer if self.stages else None
        own = ChunkSizer()
        report = self.report
        while True:
            size = first.size() if first is not None else ChunkSizer.MAX_ITEMS
            if own.cost is not None:
                size = min(size, own.size())
            started = _perf()
            chunk = list(itertools.islice(source, size))
            own.record(len(chunk), _perf() - started)
            if not chunk:
                return
            report.source_read += len(chunk)
            yield chunk

    def _feed(self) -> None:
        stage = self.stages[0]
        inbox = stage.inbox
        seq = 0
        chunk: list[Any] = []
        try:
            for chunk in self._read_chunks():
                inbox.put((seq, chunk))
                stage.received(len(chunk))
                seq += 1
                chunk = []
        except Cancelled:
            self.report.source_unsent += len(chunk)
            return
        except BaseException as exc:
            self.report.source_unsent += len(chunk)
            exc.add_note(f"threadwise: raised by the source of pipeline {self.name!r}")
            self.fail(None, exc)
            return
        inbox.close()

    def _feed_output(self) -> None:
        """A pipeline with no stages: the source goes straight to the output."""
        emitter = _Emitter(True, self.output, None, lambda n: None)
        try:
            for seq, chunk in enumerate(self._read_chunks()):
                emitter.emit(seq, chunk)
        except Cancelled:
            return
        except BaseException as exc:
            self.fail(None, exc)
            return
        emitter.close()

    def fail(self, stage: _StageRun | None, exc: BaseException) -> None:
        with self.lock:
            first = self.failure is None
            if first:
                self.failure = exc
        if first:
            where = "the source" if stage is None else f"stage {stage.spec.name!r}"
            self.report.error = exc
            self.report.cancelled = f"{where} failed: {exc!r}"
            self.workers.cancel(f"pipeline {self.name!r}: {where} failed: {exc!r}")
        self.output.close()  # wakes the consumer

    def remaining(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def shutdown(self, reason: str | None) -> None:
        """Stop and join every thread; count what never ran. Idempotent."""
        if self.finished:
            return
        self.finished = True
        if reason is not None and self.failure is None:
            self.report.cancelled = reason
            self.workers.cancel(f"pipeline {self.name!r}: {reason}")
        try:
            self.workers.join()
        finally:
            self._account_leftovers()
            self.report.elapsed = time.monotonic() - self.started
            self.report.finished = reason is None and self.failure is None
            for stage in self.stages:
                denominator = self.report.elapsed * stage.spec.workers
                stage.report.utilisation = (
                    stage.report.busy_seconds / denominator if denominator > 0 else 0.0
                )

    def _account_leftovers(self) -> None:
        for stage in self.stages:
            emitter = stage.emitter
            stage.report.discarded += (
                emitter.dropped
                + len(emitter.pending)
                + sum(len(chunk) for chunk in emitter.buffer.values())
            )
            emitter.pending, emitter.buffer = [], {}
        if self.stages:
            while True:
                try:
                    _, chunk = self.output.get_nowait()
                except (QueueClosed, _stdlib_queue.Empty):
                    break
                self.stages[-1].report.discarded += len(chunk)
        for stage in self.stages:
            while True:
                try:
                    _, chunk = stage.inbox.get_nowait()
                except (QueueClosed, _stdlib_queue.Empty):
                    break
                stage.report.not_started += len(chunk)


def _flatten(chunks: Iterator[list[T]]) -> Iterator[T]:
    """The items of the chunks, as a generator: ``close()`` stops the run at once."""
    try:
        for chunk in chunks:
            yield from chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def _both(a: Callable[[int], None], b: Callable[[int], None]) -> Callable[[int], None]:
    def both(n: int) -> None:
        a(n)
        b(n)

    return both


def _check_on_error(value: object) -> OnError:
    if value not in _ON_ERROR:
        raise ValueError(f"on_error must be 'raise' or 'skip', got {value!r}")
    return cast(OnError, value)


def _check_rate(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"rate must be a number of calls per second or None, got {value!r}")
    if not value > 0 or value == float("inf"):
        raise ValueError(
            f"rate must be a positive, finite number of calls per second, got {value!r}"
        )
    return float(value)


def _check_executor(value: object) -> concurrent.futures.Executor | None:
    if value is None or isinstance(value, concurrent.futures.Executor):
        return value
    raise TypeError(f"executor must be a concurrent.futures.Executor or None, got {value!r}")


class Pipeline(Generic[T]):
    """Producer-consumer stages with backpressure: ``Pipeline(source).map(f).filter(p)...``.

    Each stage runs in its own worker threads; bounded queues join the stages, so a slow stage
    slows the ones before it and memory stays bounded. A failing stage cancels every stage and
    its exception is raised (``on_error="skip"`` records it in the report instead).
    Iterate the pipeline for its outputs, or call ``run()`` for a ``PipelineReport``.
    """

    def __init__(self, source: Iterable[T], *, name: str | None = None) -> None:
        if not hasattr(source, "__iter__"):
            raise TypeError(f"source must be an iterable, got {source!r}")
        self._source: Iterable[Any] = source
        self._name = check_name(name) or f"pipeline-{next(_pipeline_counter)}"
        self._stages: tuple[_StageSpec, ...] = ()
        self.report: PipelineReport | None = None

    def _then(self, spec: _StageSpec) -> Pipeline[Any]:
        nxt: Pipeline[Any] = Pipeline.__new__(Pipeline)
        nxt._source = self._source
        nxt._name = self._name
        nxt._stages = (*self._stages, spec)
        nxt.report = None
        return nxt

    def _spec(
        self,
        kind: StageKind,
        fn: Callable[[Any], Any],
        *,
        workers: object,
        ordered: bool,
        rate: object = None,
        retries: object = 0,
        backoff: object = 0.1,
        on_error: object = "raise",
        executor: object = None,
        chunk_size: object = None,
        name: object = None,
    ) -> _StageSpec:
        check_callable(fn)
        backoff_value = check_timeout(backoff, "backoff")
        return _StageSpec(
            kind=kind,
            fn=fn,
            name=check_name(name) or f"{kind}#{len(self._stages) + 1}",
            workers=cast(int, check_positive_int(workers, "workers")),
            ordered=bool(ordered),
            rate=_check_rate(rate),
            retries=check_non_negative_int(retries, "retries"),
            backoff=0.1 if backoff_value is None else backoff_value,
            on_error=_check_on_error(on_error),
            executor=_check_executor(executor),
            chunk_size=check_positive_int(chunk_size, "chunk_size", allow_none=True),
        )

    def map(
        self,
        fn: Callable[[T], R],
        *,
        workers: int = 1,
        ordered: bool = True,
        rate: float | None = None,
        retries: int = 0,
        backoff: float = 0.1,
        on_error: OnError = "raise",
        executor: concurrent.futures.Executor | None = None,
        chunk_size: int | None = None,
        name: str | None = None,
    ) -> Pipeline[R]:
        """Apply ``fn`` to every item, in ``workers`` threads (or on ``executor``)."""
        return self._then(
            self._spec(
                "map",
                fn,
                workers=workers,
                ordered=ordered,
                rate=rate,
                retries=retries,
                backoff=backoff,
                on_error=on_error,
                executor=executor,
                chunk_size=chunk_size,
                name=name,
            )
        )

    def filter(
        self,
        predicate: Callable[[T], object],
        *,
        workers: int = 1,
        ordered: bool = True,
        on_error: OnError = "raise",
        name: str | None = None,
    ) -> Pipeline[T]:
        """Keep the items for which ``predicate`` is true."""
        return self._then(
            self._spec(
                "filter",
                predicate,
                workers=workers,
                ordered=ordered,
                on_error=on_error,
                name=name,
            )
        )

    def flat_map(
        self,
        fn: Callable[[T], Iterable[R]],
        *,
        workers: int = 1,
        ordered: bool = True,
        retries: int = 0,
        on_error: OnError = "raise",
        name: str | None = None,
    ) -> Pipeline[R]:
        """Replace every item by the items of the iterable ``fn`` returns for it."""
        return self._then(
            self._spec(
                "flat_map",
                fn,
                workers=workers,
                ordered=ordered,
                retries=retries,
                on_error=on_error,
                name=name,
            )
        )

    def each(
        self,
        fn: Callable[[T], object],
        *,
        workers: int = 1,
        ordered: bool = True,
        rate: float | None = None,
        retries: int = 0,
        on_error: OnError = "raise",
        name: str | None = None,
    ) -> Pipeline[T]:
        """Call ``fn`` on every item for its side effect (store, print); items pass on."""
        return self._then(
            self._spec(
                "each",
                fn,
                workers=workers,
                ordered=ordered,
                rate=rate,
                retries=retries,
                on_error=on_error,
                name=name,
            )
        )

    def batch(self, n: int, *, name: str | None = None) -> Pipeline[list[T]]:
        """Group items into lists of ``n`` (the last one may be shorter)."""
        size = cast(int, check_positive_int(n, "n"))
        spec = _StageSpec(
            kind="batch",
            fn=None,
            name=check_name(name) or f"batch#{len(self._stages) + 1}",
            size=size,
        )
        return self._then(spec)

    # -- running -------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[T]:
        return self.iterate()

    def iterate(
        self, *, timeout: float | None = None, progress: ProgressArg = False, grace: float = 1.0
    ) -> Iterator[T]:
        """The pipeline's outputs, lazily. Leaving the loop early cancels and joins the stages."""
        return _flatten(self._chunks(timeout, progress, grace))

    def run(
        self, *, timeout: float | None = None, progress: ProgressArg = False, grace: float = 1.0
    ) -> PipelineReport:
        """Run to the end, discarding the outputs; return the report (or raise the failure)."""
        for _ in self._chunks(timeout, progress, grace):
            pass
        assert self.report is not None
        return self.report

    def _chunks(self, timeout: object, progress: ProgressArg, grace: object) -> Iterator[list[T]]:
        seconds = check_timeout(timeout)
        grace_seconds = check_timeout(grace, "grace")
        reporter = Progress.from_arg(progress, description=self._name, source=self._source)
        return self._generate(seconds, 1.0 if grace_seconds is None else grace_seconds, reporter)

    def _generate(
        self, timeout: float | None, grace: float, reporter: Progress | None
    ) -> Iterator[list[T]]:
        run = _Run(self, timeout, grace)
        self.report = run.report
        reason: str | None = "the consumer stopped iterating"
        if reporter is not None:
            reporter.start(lambda: run.report.delivered)
        run.start()
        try:
            get = run.output.get
            while run.failure is None:
                try:
                    _, chunk = get(timeout=run.remaining())
                except QueueClosed:
                    break
                except _stdlib_queue.Empty:
                    reason = f"timed out after {timeout:g} s"
                    run.shutdown(reason)
                    raise TimeoutError(
                        f"pipeline {self._name!r} did not finish within {timeout:g} s"
                    ) from None
                run.report.delivered += len(chunk)
                yield chunk
            reason = None
        except KeyboardInterrupt:
            reason = "interrupted (Ctrl-C)"
            raise
        finally:
            try:
                run.shutdown(reason)
            finally:
                if reporter is not None:
                    reporter.stop()
        if run.failure is not None:
            failure = run.failure
            try:
                raise failure
            finally:
                del failure


def map(
    fn: Callable[[T], R],
    iterable: Iterable[T],
    *,
    workers: int = 8,
    ordered: bool = True,
    timeout: float | None = None,
    rate: float | None = None,
    retries: int = 0,
    on_error: OnError = "raise",
    progress: ProgressArg = False,
    executor: concurrent.futures.Executor | None = None,
    chunk_size: int | None = None,
) -> Iterator[R]:
    """``fn`` over ``iterable`` in ``workers`` threads: lazy, bounded, ordered by default.

    The input is pulled lazily by one thread (an infinite generator is fine, memory stays
    flat). The first failure cancels the rest and is raised from the loop with ``fn``'s
    traceback. Leaving the loop early (break, exception, garbage collection) cancels and joins
    the workers. ``timeout`` bounds the whole run (``TimeoutError``).
    """
    pipeline = Pipeline(iterable, name=f"map({getattr(fn, '__name__', 'fn')})").map(
        fn,
        workers=workers,
        ordered=ordered,
        rate=rate,
        retries=retries,
        on_error=on_error,
        executor=executor,
        chunk_size=chunk_size,
        name="map",
    )
    return pipeline.iterate(timeout=timeout, progress=progress)
