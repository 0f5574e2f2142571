"""``map``: ``fn`` over an iterable in worker threads, a one-stage pipeline."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from ._pipeline import Pipeline, check_source
from ._progress import ProgressArg
from ._stage import OnError
from ._typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import concurrent.futures

T = TypeVar("T")
R = TypeVar("R")


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
    executor: concurrent.futures.Executor | str | None = None,
    chunk_size: int | None = None,
) -> Iterator[R]:
    """``fn`` over ``iterable`` in ``workers`` threads: lazy, bounded, ordered by default.

    The input is pulled lazily by one thread (an infinite generator is fine, memory stays
    flat). The first failure cancels the rest and is raised from the loop with ``fn``'s
    traceback. Leaving the loop early (break, exception, garbage collection) cancels and joins
    the workers. ``timeout`` bounds the whole run (``TimeoutError``).

    ``executor="auto"`` starts on threads and moves the rest of the work to a process pool
    when ``fn`` measurably holds the GIL and a pool measurably runs it faster; the returned
    iterator's ``report`` (and ``decision``) says what it did and why.
    """
    check_source(iterable, "iterable")
    if executor == "auto":
        from ._auto import auto_map

        return auto_map(
            fn,
            iterable,
            name=f"map({getattr(fn, '__name__', 'fn')})",
            workers=workers,
            ordered=ordered,
            timeout=timeout,
            retries=retries,
            on_error=on_error,
            progress=progress,
            chunk_size=chunk_size,
            rate=rate,
        )
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
