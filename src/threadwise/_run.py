"""One run of a pipeline (``map`` is a one-stage pipeline): its threads, queues and counters,
the first failure, the shutdown that accounts for every item, and the caller's side of the
output queue."""

from __future__ import annotations

import _thread
import itertools
import queue as _stdlib_queue
import threading
import time
from collections.abc import Generator, Iterable, Iterator, Sequence

from ._cancel import current_scope
from ._exceptions import Cancelled, QueueClosed
from ._feed import RESCUE_AFTER, RESCUE_AFTER_MAX, Feeder
from ._pool import Workers
from ._progress import Progress
from ._reorder import Emitter
from ._report import PipelineReport
from ._stage import EDGE_QUEUE_ITEMS, ChunkQueue, StageRun, StageSpec, queue_capacity
from ._sync import Queue
from ._typing import Any, TypeVar

T = TypeVar("T")


class Run:
    """One execution of a pipeline: threads, queues, counters, and the first failure."""

    def __init__(
        self,
        name: str,
        source: Iterable[Any],
        specs: Sequence[StageSpec],
        timeout: float | None,
        grace: float,
    ) -> None:
        self.name = name
        self.started = time.monotonic()
        self.deadline = None if timeout is None else self.started + timeout
        self.timeout = timeout
        self.stages = [StageRun(spec, self, i) for i, spec in enumerate(specs)]
        last_workers = self.stages[-1].spec.workers if self.stages else 1
        self.output: Queue[tuple[int, list[Any]]] = ChunkQueue(
            queue_capacity(last_workers), name=f"{name} output", max_items=EDGE_QUEUE_ITEMS
        )
        for this, nxt in itertools.zip_longest(self.stages, self.stages[1:]):
            workers = this.spec.workers
            if nxt is None:
                this.emitter = Emitter(
                    this.spec.ordered, self.output, None, this.sent, workers=workers
                )
            else:
                this.emitter = Emitter(
                    this.spec.ordered,
                    nxt.inbox,
                    nxt.sizer,
                    _both(this.sent, nxt.received),
                    workers=workers,
                )
        self.report = PipelineReport(name, [s.report for s in self.stages])
        if self.stages:
            first = self.stages[0]
            self.feeder = Feeder(
                source,
                self.report,
                self._to_first_stage,
                receiver=first.sizer,
                receiver_full=first.inbox.full,
            )
        else:  # no stages: the source goes straight to the output
            self._direct = Emitter(True, self.output, None, _ignore)
            self.feeder = Feeder(
                source, self.report, self._direct.emit, receiver=None, receiver_full=_never
            )
        self.failure: BaseException | None = None
        self.lock = threading.Lock()
        self.workers = Workers(f"pipeline {name!r}", current_scope(), grace=grace)
        if self.deadline is not None:
            self.workers.scope._own_deadline = self.workers.scope._deadline = self.deadline
        self.finished = False

    def _to_first_stage(self, seq: int, chunk: list[Any]) -> None:
        # Counted in before the put, so that no instant exists (a Ctrl-C in the caller's
        # rescue, say) where the items are queued but not counted; a put that fails counts
        # them as not started.
        stage = self.stages[0]
        stage.received(len(chunk))
        try:
            stage.inbox.put((seq, chunk))
        except BaseException:
            with stage.lock:
                stage.report.not_started += len(chunk)
            raise

    def start(self) -> None:
        """Start every thread. If this raises (Ctrl-C, a thread that cannot start), the threads
        already started are stopped by ``shutdown``, which the caller runs in a ``finally``."""
        workers = self.workers
        workers.start(self._feed, f"{self.name}-source")
        for stage in self.stages:
            for i in range(stage.spec.workers):
                workers.start(stage.work, f"{self.name}-{stage.spec.name}-{i + 1}")

    def _feed(self) -> None:
        try:
            self.feeder.run()
        except Cancelled:
            return
        except BaseException as exc:
            exc.add_note(f"threadwise: raised by the source of pipeline {self.name!r}")
            self.fail(None, exc)
            return
        if self.stages:
            self.stages[0].inbox.close()
        else:
            self._direct.close()

    def fail(self, stage: StageRun | None, exc: BaseException) -> None:
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
        """Stop and join every thread; count what never ran. Idempotent, thread-safe."""
        with self.lock:
            if self.finished:
                return
            self.finished = True
            failed = self.failure is not None
        if reason is not None and not failed:
            self.report.cancelled = reason
            self.workers.cancel(f"pipeline {self.name!r}: {reason}")
        try:
            abandoned = self.workers.join()
            self.report.abandoned = [task.name for task in abandoned]
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
            stage.report.discarded += stage.emitter.leftovers()
        if self.stages:
            self.stages[-1].report.discarded += _drain(self.output)
        for stage in self.stages:
            stage.report.not_started += _drain(stage.inbox)


def _drain(queue: Queue[tuple[int, list[Any]]]) -> int:
    count = 0
    while True:
        try:
            _, chunk = queue.get_nowait()
        except (QueueClosed, _stdlib_queue.Empty):
            return count
        count += len(chunk)


def _both(a: Any, b: Any) -> Any:
    def both(n: int) -> None:
        a(n)
        b(n)

    return both


def _ignore(n: int) -> None:
    pass


def _never() -> bool:
    return False


class Results(itertools.chain[T]):
    """The outputs of a run, item by item: ``itertools.chain`` over the chunks, so the
    per-item step is C. ``close()`` (or dropping it) stops the run and joins its threads."""

    __slots__ = ("_chunks",)
    _chunks: Generator[list[T], None, None]

    def close(self) -> None:
        self._chunks.close()

    def __del__(self) -> None:
        # The caller left its loop and dropped the iterator: the run is stopped and joined here.
        # A Ctrl-C landing meanwhile cannot propagate out of a finaliser (Python prints it and
        # carries on), so it is delivered again, once this finaliser has returned.
        chunks = getattr(self, "_chunks", None)
        if chunks is None:
            return
        finished = threading.Event()
        try:
            chunks.close()
        except KeyboardInterrupt:
            _interrupt_main_after(finished)
        finally:
            finished.set()


def _interrupt_main_after(finished: threading.Event) -> None:
    """Ctrl-C the main thread again once ``finished`` is set (by a finaliser, which could not
    raise it itself: interrupting from within would only raise it there again)."""

    def deliver() -> None:
        finished.wait()
        _thread.interrupt_main()

    threading.Thread(target=deliver, name="threadwise Ctrl-C re-delivery", daemon=True).start()


def results(chunks: Generator[list[T], None, None]) -> Iterator[T]:
    out = Results.from_iterable(chunks)
    assert isinstance(out, Results)
    out._chunks = chunks
    return out


def generate(
    run: Run, timeout: float | None, reporter: Progress | None
) -> Generator[list[Any], None, None]:
    """The caller's side: chunks from the output queue, until the end or the first failure.

    While it waits with nothing coming, it rescues items the feeder holds (see ``_feed``).
    Leaving early (close, break, an error) cancels the run; the ``finally`` joins the
    threads, start-up included, so no thread outlives the run.
    """
    reason: str | None = "the consumer stopped iterating"
    chunk: list[Any] = []
    try:
        if reporter is not None:
            reporter.start(lambda: run.report.delivered)
        run.start()
        get = run.output.get
        feeder = run.feeder
        pause = RESCUE_AFTER if feeder.rescuable else None
        while run.failure is None:
            left = run.remaining()
            wait = left if pause is None or (left is not None and left < pause) else pause
            try:
                _, chunk = get(timeout=wait)
            except QueueClosed:
                break
            except _stdlib_queue.Empty:
                if left is not None and wait == left:
                    reason = f"timed out after {timeout:g} s"
                    run.shutdown(reason)
                    raise TimeoutError(
                        f"pipeline {run.name!r} did not finish within {timeout:g} s"
                    ) from None
                assert pause is not None
                # Nothing rescued: wait longer next time (a run of slow items needs no
                # rescue, and waking up often for nothing costs CPU).
                pause = RESCUE_AFTER if feeder.rescue() else min(2 * pause, RESCUE_AFTER_MAX)
                continue
            if pause is not None:
                pause = RESCUE_AFTER
            run.report.delivered += len(chunk)
            yield chunk
        reason = None
    except KeyboardInterrupt:
        reason = "interrupted (Ctrl-C)"
        raise
    finally:
        # If the caller stops part-way through a chunk, the rest of it must not come out of
        # the iterator after close(): the chain holds an iterator over this very list.
        chunk.clear()
        try:
            run.shutdown(reason)
        finally:
            if reporter is not None:
                reporter.stop(run.workers.grace)
    if run.failure is not None:
        failure = run.failure
        try:
            raise failure
        finally:
            del failure
