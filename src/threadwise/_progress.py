"""Progress reporting off the hot path: workers only bump a counter; a sampler thread reads it
a few times a second and draws a bar (rich when installed, a plain line otherwise) or calls a
user callback."""

from __future__ import annotations

import operator
import sys
import threading
import time
from collections.abc import Callable

from ._typing import Any, Literal, TextIO

_monotonic = time.monotonic


class ProgressInfo:
    """A progress sample handed to a ``progress=`` callback (read-only)."""

    # Slots, not a dataclass: ``import threadwise`` stays free of the dataclasses module.
    __slots__ = ("description", "done", "elapsed", "eta", "finished", "rate", "total")

    description: str
    done: int
    total: int | None
    elapsed: float
    rate: float  # items per second since the start
    eta: float | None  # seconds left, when the total is known
    finished: bool

    def __init__(
        self,
        description: str,
        done: int,
        total: int | None,
        elapsed: float,
        rate: float,
        eta: float | None,
        finished: bool = False,
    ) -> None:
        values = (description, done, total, elapsed, rate, eta, finished)
        for name, value in zip(_INFO_FIELDS, values, strict=True):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"ProgressInfo is read-only: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"ProgressInfo is read-only: cannot delete {name!r}")

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in _INFO_FIELDS)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProgressInfo):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in _INFO_FIELDS)
        return f"ProgressInfo({fields})"


_INFO_FIELDS = ("description", "done", "total", "elapsed", "rate", "eta", "finished")

ProgressCallback = Callable[[ProgressInfo], object]
ProgressArg = bool | Literal["force"] | ProgressCallback


def _total_of(source: object) -> int | None:
    try:
        hint = operator.length_hint(source, -1)
    except Exception:
        return None
    return hint if hint > 0 else None


class Progress:
    """Samples ``read_done()`` every ``interval`` seconds in a thread of its own."""

    def __init__(
        self,
        *,
        description: str,
        total: int | None,
        callback: ProgressCallback | None,
        stream: TextIO | None,
        interval: float,
    ) -> None:
        self.description = description
        self.total = total
        self.callback = callback
        self.stream = stream
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._read_done: Callable[[], int] = lambda: 0
        self._started = _monotonic()
        self._drawer: _Drawer | None = None

    @classmethod
    def from_arg(
        cls, arg: object, *, description: str, source: object = None, total: int | None = None
    ) -> Progress | None:
        """``False`` → None; ``True`` → a bar on a terminal only; ``"force"`` → a bar even
        when stderr is not a terminal; a callable → called with ``ProgressInfo`` samples."""
        if total is None:
            total = _total_of(source)
        if arg is False or arg is None:
            return None
        if arg is True or arg == "force":
            stream = sys.stderr
            if arg is True and not (hasattr(stream, "isatty") and stream.isatty()):
                return None
            return cls(
                description=description, total=total, callback=None, stream=stream, interval=0.1
            )
        if callable(arg):
            return cls(
                description=description, total=total, callback=arg, stream=None, interval=0.2
            )
        raise TypeError(f"progress must be True, False, 'force' or a callable, got {arg!r}")

    def start(self, read_done: Callable[[], int]) -> None:
        self._read_done = read_done
        self._started = _monotonic()
        if self.stream is not None:
            self._drawer = _Drawer.create(self.stream, self.description, self.total)
        self._thread = threading.Thread(
            target=self._sample_loop, name=f"progress {self.description}", daemon=True
        )
        self._thread.start()

    def stop(self, grace: float = 1.0) -> None:
        """Stop sampling and publish the final sample. A callback stuck in the sampler thread
        is waited for ``grace`` seconds, then left behind (a daemon thread) with a warning."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(grace)
            self._thread = None
            if thread.is_alive():
                import logging

                logging.getLogger("threadwise").warning(
                    "progress %r: the callback did not return within %g s; its thread %r "
                    "is abandoned",
                    self.description,
                    grace,
                    thread.name,
                )
                return  # no final sample: the callback is still busy with the last one
        self._publish(finished=True)
        if self._drawer is not None:
            self._drawer.close()

    def _sample_loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._publish(finished=False)

    def sample(self, *, finished: bool = False) -> ProgressInfo:
        done = self._read_done()
        elapsed = _monotonic() - self._started
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = None
        if self.total is not None and rate > 0:
            eta = max(0.0, (self.total - done) / rate)
        return ProgressInfo(self.description, done, self.total, elapsed, rate, eta, finished)

    def _publish(self, *, finished: bool) -> None:
        info = self.sample(finished=finished)
        if self.callback is not None:
            try:
                self.callback(info)
            except Exception:  # a broken callback must not kill the run it reports on
                import logging

                logging.getLogger("threadwise").exception("progress callback failed")
        if self._drawer is not None:
            self._drawer.draw(info)


class _Drawer:
    """Draws a progress line; rich when importable, plain text otherwise."""

    @staticmethod
    def create(stream: TextIO, description: str, total: int | None) -> _Drawer:
        try:
            return _RichDrawer(stream, description, total)
        except ImportError:
            return _PlainDrawer(stream)

    def draw(self, info: ProgressInfo) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _PlainDrawer(_Drawer):
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def draw(self, info: ProgressInfo) -> None:
        total = f"/{info.total}" if info.total is not None else ""
        eta = f" ETA {info.eta:.0f}s" if info.eta is not None else ""
        end = "\n" if info.finished else ""
        self.stream.write(
            f"\r{info.description}: {info.done}{total} items, {info.rate:,.0f}/s, "
            f"{info.elapsed:.1f}s{eta}   {end}"
        )
        self.stream.flush()


class _RichDrawer(_Drawer):
    def __init__(self, stream: TextIO, description: str, total: int | None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        self._progress: Any = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(file=stream),
            auto_refresh=False,
            transient=False,
        )
        self._task = self._progress.add_task(description, total=total, rate="")
        self._progress.start()

    def draw(self, info: ProgressInfo) -> None:
        self._progress.update(
            self._task, completed=info.done, rate=f"{info.rate:,.0f}/s", refresh=True
        )

    def close(self) -> None:
        self._progress.stop()
