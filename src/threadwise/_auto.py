"""``tw.map(fn, items, executor="auto")``: start on threads, measure, and move the rest of the work
to a process pool when ``fn`` holds the GIL and a pool measurably runs it faster.

The run goes in phases, one after the other, each an ordinary one-stage pipeline: threads (the
probe), then possibly a process pool, then possibly threads again. Every phase reads the same
source iterator through a ``_Gate`` that its own feeder thread calls; the gate ends the phase by
ending its input, so the phase finishes every item it read (results, errors, retries and
``on_error`` as on threads), and the next phase reads on from the next item. Each item thus goes
to exactly one phase, and the phases' outputs, one after the other, keep the input's order.

The judging runs in the feeder thread too, from the live figures of the phase's report (the
CPU time its threads used against the time they were busy): no thread of its own, no lock.
"""

from __future__ import annotations

import concurrent.futures
import os
import pickle
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any, TypeVar

from ._pipeline import Pipeline
from ._progress import ProgressArg
from ._report import PipelineReport, StageReport
from ._run import Results
from ._stage import OnError
from ._validate import check_timeout

T = TypeVar("T")
R = TypeVar("R")

_perf = time.perf_counter

MEASURING = "threads: measuring"
# How often the feeder looks at the figures (a clock read per item in between).
CHECK_EVERY = 0.01
# CPU seconds the threads must have used before their figures are judged...
PROBE_MIN_CPU = 0.1
# ... or, failing that, how long the probe runs before it settles on threads: work that uses
# so little CPU waits for something else (I/O), which threads do well.
PROBE_MAX_SECONDS = 0.5
# GIL-bound: several workers busy at once (on average over the probe)...
MIN_PARALLEL = 1.5
# ... using together about one core, no more (the GIL), and not much less (else they wait for
# something else, or other work has the cores).
MIN_GIL_CORES = 0.5
MAX_GIL_CORES = 1.3
# Items cheaper than this cost about as much to pickle to a process and back as to compute.
MIN_ITEM_SECONDS = 20e-6
# Known remaining work (CPU seconds) below which starting processes does not pay.
MIN_REMAINING_SECONDS = 0.5
# The pool's throughput is measured over this long after its first results...
VERIFY_SECONDS = 0.3
# ... and the pool is kept when it beats the threads' throughput by this factor at least
# (the threads' figure includes their start, so a pool a bit faster is not enough).
PAYS_OFF = 1.2
# Work per chunk sent to the pool (see _pool_chunk_size).
POOL_CHUNK_SECONDS = 0.005
# Chunks in flight per process: one running, one waiting, so a process never idles for a
# round trip.
IN_FLIGHT_PER_PROCESS = 2


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _load(payload: bytes) -> bytes:
    """Run in each new worker process before any item: unpickle ``fn`` and a sample item (a
    function of an interactive ``__main__``, say, does not unpickle there), and send the item
    back (so the return trip works too)."""
    _fn, item = pickle.loads(payload)
    return pickle.dumps(item)


class _Gate:
    """The source, to one phase, until ``check()`` says the phase is over. Only the phase's
    feeder thread calls it; once stopped it reads no more, so the next phase (started after
    this one ends) reads on from the next item."""

    __slots__ = ("check", "exhausted", "first", "iterator", "next_check", "stopped", "taken")

    def __init__(self, iterator: Iterator[Any], check: Callable[[], bool] | None) -> None:
        self.iterator = iterator
        self.check = check
        self.next_check = 0.0
        self.stopped = False
        self.exhausted = False
        self.taken = 0
        self.first: list[Any] = []  # the first item read, to try pickling it

    def __iter__(self) -> _Gate:
        return self

    def __next__(self) -> Any:
        check = self.check
        if check is not None:
            now = _perf()
            if now >= self.next_check:
                self.next_check = now + CHECK_EVERY
                if check():
                    self.stopped = True
                    self.check = None
        if self.stopped:
            raise StopIteration
        try:
            item = next(self.iterator)
        except StopIteration:
            self.exhausted = True
            raise
        if not self.taken:
            self.first.append(item)
        self.taken += 1
        return item


class AutoMap:
    """One ``executor="auto"`` map: its phases, its decision and the process pool it started."""

    def __init__(
        self,
        fn: Callable[[Any], Any],
        iterable: Iterable[Any],
        *,
        name: str,
        workers: int,
        ordered: bool,
        timeout: float | None,
        retries: int,
        on_error: OnError,
        progress: ProgressArg,
        chunk_size: int | None,
        rate: float | None,
    ) -> None:
        # Every argument checked now, as for any map: the phases' pipelines are made later.
        Pipeline([], name=name).map(
            fn,
            workers=workers,
            ordered=ordered,
            rate=rate,
            retries=retries,
            on_error=on_error,
            chunk_size=chunk_size,
        )
        self.fn = fn
        self.rate = rate
        self.name = name
        self.workers = workers
        self.ordered = ordered
        self.timeout = check_timeout(timeout)
        self.retries = retries
        self.on_error: OnError = on_error
        self.progress: ProgressArg = progress
        self.chunk_size = chunk_size
        self.total: int | None = None
        if isinstance(iterable, list | tuple | range):
            self.total = len(iterable)
        self.iterator = iter(iterable)
        self.started = _perf()
        self.processes = min(workers, available_cpus())
        self.backend = "threads"
        self.decision = MEASURING
        self.reports: list[PipelineReport] = []
        self.pool: concurrent.futures.ProcessPoolExecutor | None = None
        self.loaded: list[concurrent.futures.Future[bytes]] = []
        self.first_output: list[Any] = []
        self.thread_rate = 0.0  # items per second on threads, when the move was decided
        self.pool_mark: tuple[float, int] | None = None  # time and count of the pool's first
        self.back_to_threads = False
        self.phase_started = self.started
        self.gate = _Gate(self.iterator, None)
        self.why_moved = ""
        self.per_item = 0.0  # CPU seconds per item on threads, when the move was decided

    # -- the decision ----------------------------------------------------------------------------
    def _settle(self, decision: str) -> bool:
        """Decided for good: the gate stops asking."""
        self.decision = decision
        self.gate.check = None
        return False

    def why_not(self) -> str | None:
        """Why the map cannot move at all, known before it starts (None: it may)."""
        if self.rate is not None:
            return "rate= limits the calls, which the threads keep"
        if self.processes < 2:
            cpus = available_cpus()
            if cpus < 2:
                return f"only {cpus} CPU is available to this process"
            return f"workers={self.workers}: a pool of one process runs no faster"
        import multiprocessing

        if getattr(multiprocessing.current_process(), "_inheriting", False):
            # A process of the pool re-running an unguarded script as it starts: the map must
            # not run here too (it would repeat the script's work), as multiprocessing says
            # when such a script starts a process.
            raise RuntimeError(
                "tw.map(..., executor='auto') ran in a worker process while it was starting: "
                "the script that started the pool lacks `if __name__ == '__main__':` around "
                "its work (its worker processes import it)"
            )
        if multiprocessing.parent_process() is not None:
            return "this is a worker process already"
        try:
            pickle.dumps(self.fn)
        except Exception as exc:
            return f"fn cannot be pickled for a process pool ({type(exc).__name__}: {exc})"
        return None

    def _judge_threads(self) -> bool:
        """The probe's check (feeder thread): True ends the thread phase, to move to the pool."""
        if self.loaded:
            return self._pool_ready()
        stage = self.reports[0].stages[0]
        elapsed = _perf() - self.phase_started
        cpu, busy, done = stage.cpu_seconds, stage.busy_seconds, stage.completed
        workers = self.workers
        if not done:
            return False  # no figures yet (slow items): nothing to judge by
        if cpu < PROBE_MIN_CPU:
            if elapsed < PROBE_MAX_SECONDS:
                return False
            return self._settle(
                f"threads: {workers} threads used {cpu / elapsed:.2f} CPU core in "
                f"{elapsed:.2f} s: the work waits (I/O) rather than computes, which threads "
                "do well"
            )
        # Measured against the phase's wall time, not the workers' busy time: workers that
        # wait for the GIL between chunks too (for their next chunk) are not busy then.
        cores = cpu / elapsed
        parallel = busy / elapsed
        figures = (
            f"{workers} threads used {cores:.2f} CPU core in {elapsed:.2f} s, "
            f"{parallel:.1f} of them busy at once on average"
        )
        if parallel < MIN_PARALLEL:
            return self._settle(f"threads: {figures}: the work does not keep several threads busy")
        if cores > MAX_GIL_CORES:
            return self._settle(f"threads: {figures}: the work runs in parallel (no GIL held)")
        if cores < MIN_GIL_CORES:
            return self._settle(
                f"threads: {figures}: the threads mostly wait (I/O, or cores busy elsewhere)"
            )
        per_item = cpu / done
        if per_item < MIN_ITEM_SECONDS:
            return self._settle(
                f"threads: GIL-bound, but items take {per_item * 1e6:.1f} us each: less than "
                "sending them to a process and back"
            )
        if self.total is not None:
            left = (self.total - self.gate.taken) * per_item
            if left < MIN_REMAINING_SECONDS:
                return self._settle(
                    f"threads: GIL-bound, but the work left (about {left:.2f} s of CPU) is "
                    "too little to pay for starting processes"
                )
        gate_first = self.gate.first
        try:
            if self.first_output:
                pickle.dumps(self.first_output[0])
            payload = pickle.dumps((self.fn, gate_first[0] if gate_first else None))
        except Exception as exc:
            return self._settle(
                f"threads: GIL-bound, but the items or results cannot be pickled for a process "
                f"pool ({type(exc).__name__}: {exc})"
            )
        self.thread_rate = done / elapsed
        self.per_item = per_item
        self.why_moved = (
            f"{figures} ({done / elapsed:.0f} items/s): GIL-bound, {per_item * 1e3:.2f} ms "
            "of CPU per item"
        )
        # The threads keep working while the processes start (a fraction of a second each):
        # the move happens once they are ready.
        import multiprocessing

        # spawn, not fork: the threads of this process (the map's own, at the least) must not
        # be copied mid-step into the children.
        context = multiprocessing.get_context("spawn")
        try:
            pool = concurrent.futures.ProcessPoolExecutor(self.processes, mp_context=context)
            self.pool = pool
            self.loaded = [pool.submit(_load, payload) for _ in range(self.processes)]
        except Exception as exc:
            return self._settle(f"threads: the process pool did not start ({exc!r})")
        return False

    def _pool_ready(self) -> bool:
        if not all(future.done() for future in self.loaded):
            return False
        for future in self.loaded:
            error = future.exception()
            if error is not None:
                self.loaded = []
                return self._settle(
                    "threads: GIL-bound, but the worker processes could not load fn "
                    f"({type(error).__name__}: {error})"
                )
        self.backend = "processes"
        self.decision = (
            f"processes: moved to {self.processes} worker processes after "
            f"{_perf() - self.started:.2f} s and {self.gate.taken} items: {self.why_moved}"
        )
        return True

    def _judge_pool(self) -> bool:
        """The pool phase's check: True ends it, to go back to threads."""
        stage = self.reports[-1].stages[0]
        done = stage.completed
        now = _perf()
        if not done:
            return False
        if self.pool_mark is None:
            self.pool_mark = (now, done)
            return False
        since, before = self.pool_mark
        if now - since < VERIFY_SECONDS:
            return False
        rate = (done - before) / (now - since)
        speedup = rate / self.thread_rate if self.thread_rate > 0 else float("inf")
        if speedup >= PAYS_OFF:
            self.decision += f"; the pool then ran {speedup:.1f}x as fast as the threads"
            return self._settle(self.decision)
        self.back_to_threads = True
        self.backend = "threads"
        self.decision = (
            f"threads: moved to {self.processes} worker processes ({self.why_moved}), but "
            f"the pool ran at {speedup:.2f}x the threads' speed (the cores are busy with "
            "other work?), so the rest went back to threads"
        )
        return True

    # -- the phases ------------------------------------------------------------------------------
    def _phase(
        self, executor: concurrent.futures.Executor | None, check: Callable[[], bool] | None
    ) -> Generator[list[Any], None, None]:
        self.gate = _Gate(self.iterator, check)
        on_pool = executor is not None
        pipeline = Pipeline(self.gate, name=self.name).map(
            self.fn,
            workers=self.processes * IN_FLIGHT_PER_PROCESS if on_pool else self.workers,
            ordered=self.ordered,
            rate=None if on_pool else self.rate,
            retries=self.retries,
            on_error=self.on_error,
            executor=executor,
            chunk_size=self._pool_chunk_size() if on_pool else self.chunk_size,
            name="map",
        )
        timeout = None
        if self.timeout is not None:
            timeout = max(0.0, self.started + self.timeout - _perf())
        self.phase_started = _perf()
        chunks = pipeline._chunks(timeout, self.progress, 1.0)
        assert pipeline.report is not None
        self.reports.append(pipeline.report)
        for chunk in chunks:
            if not self.first_output and chunk:
                self.first_output.append(chunk[0])
            yield chunk

    def _pool_chunk_size(self) -> int | None:
        """The pool's chunks, from the cost per item measured on threads (unless given): a
        round trip to a local process costs well under a millisecond, so chunks of about
        ``POOL_CHUNK_SECONDS`` of work share it, while slow items go one by one."""
        if self.chunk_size is not None:
            return self.chunk_size
        if self.per_item <= 0:
            return None
        return max(1, min(4096, int(POOL_CHUNK_SECONDS / self.per_item)))

    def chunks(self) -> Generator[list[Any], None, None]:
        finished = False
        try:
            reason = self.why_not()
            if reason is not None:
                self.decision = f"threads: {reason}"
                yield from self._phase(None, None)
            else:
                yield from self._phase(None, self._judge_threads)
                if self.gate.stopped:
                    yield from self._phase(self.pool, self._judge_pool)
                    if self.back_to_threads:
                        yield from self._phase(None, None)
                elif self.decision == MEASURING:
                    waiting = " while the worker processes started" if self.loaded else ""
                    self.decision = (
                        f"threads: the input ended{waiting} after {self.gate.taken} items "
                        f"in {_perf() - self.started:.2f} s, before a move could pay"
                    )
            finished = True
        finally:
            self._stop_pool(terminate=not finished)

    def _stop_pool(self, terminate: bool) -> None:
        pool = self.pool
        if pool is None:
            return
        self.pool = None
        if terminate:
            # Ctrl-C, an error, a timeout or the caller leaving early: the chunks still being
            # computed would be thrown away, so the processes stop now rather than finish
            # them (as fast as a thread would stop at its next checkpoint, or faster). The
            # pool sees them die, and its shutdown below joins what is left.
            processes: dict[int, Any] = getattr(pool, "_processes", None) or {}
            for process in list(processes.values()):
                process.terminate()
        # One call that waits: a first call without waiting would drop what the second
        # needs to join.
        pool.shutdown(wait=True, cancel_futures=True)

    # -- the report ------------------------------------------------------------------------------
    @property
    def report(self) -> PipelineReport:
        """The phases' figures added up, with the decision and why."""
        stage = StageReport("map", "map", self.workers)
        merged = PipelineReport(self.name, [stage])
        errors: list[tuple[Any, BaseException]] = []
        merged.finished = bool(self.reports) and all(r.finished for r in self.reports)
        for report in self.reports:
            (part,) = report.stages
            for field in _SUMMED:
                setattr(stage, field, getattr(stage, field) + getattr(part, field))
            errors.extend(part.errors)
            merged.source_read += report.source_read
            merged.source_unsent += report.source_unsent
            merged.delivered += report.delivered
            merged.abandoned += report.abandoned
            merged.cancelled = merged.cancelled or report.cancelled
            merged.error = merged.error or report.error
        stage.errors = errors[:1000]
        merged.elapsed = sum(report.elapsed for report in self.reports)
        if merged.elapsed > 0:
            stage.utilisation = stage.busy_seconds / (merged.elapsed * self.workers)
        merged.decision = self.decision
        merged.backend = self.backend
        return merged


_SUMMED = (
    "items_in",
    "items_out",
    "completed",
    "failed",
    "not_started",
    "retries",
    "discarded",
    "busy_seconds",
    "cpu_seconds",
)


class AutoResults(Results[T]):
    """The outputs of an ``executor="auto"`` map; ``report`` says what ran where, and why."""

    __slots__ = ("_auto",)
    _auto: AutoMap

    @property
    def report(self) -> PipelineReport:
        return self._auto.report

    @property
    def decision(self) -> str:
        return self._auto.decision


def auto_map(fn: Callable[[Any], Any], iterable: Iterable[Any], **options: Any) -> AutoResults[Any]:
    auto = AutoMap(fn, iterable, **options)
    chunks = auto.chunks()
    out = AutoResults.from_iterable(chunks)
    assert isinstance(out, AutoResults)
    out._chunks = chunks
    out._auto = auto
    return out
