"""The public ``Pipeline``: stages of worker threads joined by bounded queues, every item
accounted for. The engine that runs it is in ``_run`` (wiring and shutdown), ``_feed`` (the
source), ``_stage`` (the workers) and ``_reorder`` (ordering and hand-over)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterable, Iterator

from ._progress import Progress, ProgressArg
from ._report import PipelineReport, StageReport
from ._run import Run, generate, results
from ._stage import OnError, StageKind, StageSpec
from ._typing import TYPE_CHECKING, Any, Generic, TypeVar, cast
from ._validate import (
    check_callable,
    check_name,
    check_non_negative_int,
    check_positive_int,
    check_timeout,
)

if TYPE_CHECKING:
    import concurrent.futures

T = TypeVar("T")
R = TypeVar("R")

__all__ = ["Pipeline", "PipelineReport", "StageReport", "check_source", "check_workers"]

_ON_ERROR = ("raise", "skip")
# Threads per stage, at most: far more than any machine runs well, and it turns a typo such
# as workers=10**9 into a clear error instead of a process that runs out of memory.
MAX_WORKERS = 10_000

_counter_lock = threading.Lock()
_counter = 0


def _next_name() -> str:
    # itertools.count is not atomic without the GIL: a lock keeps names unique.
    global _counter
    with _counter_lock:
        _counter += 1
        return f"pipeline-{_counter}"


def check_source(value: object, name: str) -> None:
    if not hasattr(value, "__iter__"):
        raise TypeError(f"{name} must be an iterable, got {value!r}")


def check_workers(value: object, name: str = "workers") -> int:
    workers = cast(int, check_positive_int(value, name))
    if workers > MAX_WORKERS:
        raise ValueError(f"{name} must be <= {MAX_WORKERS}, got {value!r}")
    return workers


def check_ordered(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"ordered must be True or False, got {value!r}")
    return value


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
    if value is None:
        return None
    import concurrent.futures

    if isinstance(value, concurrent.futures.Executor):
        return value
    from .dask import ClusterExecutor, is_address

    if is_address(value):
        # A Dask scheduler's address: resolved here, for every stage and map alike.
        return ClusterExecutor(cast(str, value))
    if value == "auto":
        raise ValueError(
            "executor='auto' is for tw.map only (it moves a whole map to a process pool); "
            "give a pipeline stage executor=concurrent.futures.ProcessPoolExecutor() instead"
        )
    if isinstance(value, str):
        raise ValueError(
            "executor must be 'auto' (tw.map), a Dask scheduler address such as "
            f"'tcp://127.0.0.1:8786', a concurrent.futures.Executor, or None, got {value!r}"
        )
    raise TypeError(
        "executor must be a concurrent.futures.Executor, a Dask scheduler address such as "
        f"'tcp://127.0.0.1:8786', 'auto' (tw.map), or None, got {value!r}"
    )


class Pipeline(Generic[T]):
    """Producer-consumer stages with backpressure: ``Pipeline(source).map(f).filter(p)...``.

    Each stage runs in its own worker threads; bounded queues join the stages, so a slow stage
    slows the ones before it and memory stays bounded. A failing stage cancels every stage and
    its exception is raised (``on_error="skip"`` records it in the report instead).
    Iterate the pipeline for its outputs, or call ``run()`` for a ``PipelineReport``.
    """

    def __init__(self, source: Iterable[T], *, name: str | None = None) -> None:
        check_source(source, "source")
        self._source: Iterable[Any] = source
        self._name = check_name(name) or _next_name()
        self._stages: tuple[StageSpec, ...] = ()
        self.report: PipelineReport | None = None

    def _then(self, spec: StageSpec) -> Pipeline[Any]:
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
    ) -> StageSpec:
        check_callable(fn)
        backoff_value = check_timeout(backoff, "backoff")
        return StageSpec(
            kind,
            fn,
            check_name(name) or f"{kind}#{len(self._stages) + 1}",
            workers=check_workers(workers),
            ordered=check_ordered(ordered),
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
        executor: concurrent.futures.Executor | str | None = None,
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
        spec = StageSpec(
            "batch", None, check_name(name) or f"batch#{len(self._stages) + 1}", size=size
        )
        return self._then(spec)

    # -- running -------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[T]:
        return self.iterate()

    def iterate(
        self, *, timeout: float | None = None, progress: ProgressArg = False, grace: float = 1.0
    ) -> Iterator[T]:
        """The pipeline's outputs, lazily. Leaving the loop early cancels and joins the stages."""
        return results(self._chunks(timeout, progress, grace))

    def run(
        self, *, timeout: float | None = None, progress: ProgressArg = False, grace: float = 1.0
    ) -> PipelineReport:
        """Run to the end, discarding the outputs; return the report (or raise the failure)."""
        for _ in self._chunks(timeout, progress, grace):
            pass
        assert self.report is not None
        return self.report

    def _chunks(
        self, timeout: object, progress: ProgressArg, grace: object
    ) -> Generator[list[T], None, None]:
        seconds = check_timeout(timeout)
        grace_seconds = check_timeout(grace, "grace")
        reporter = Progress.from_arg(progress, description=self._name, source=self._source)
        run = Run(
            self._name,
            self._source,
            self._stages,
            seconds,
            1.0 if grace_seconds is None else grace_seconds,
        )
        self.report = run.report
        return generate(run, seconds, reporter)


def __getattr__(name: str) -> Any:
    # map lived here once: still importable from here (lazily, as _map imports this module).
    if name == "map":
        from ._map import map

        return map
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
