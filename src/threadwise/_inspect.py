"""See what every thread is doing: a table of threads with their state, what they wait for,
their task and group and their stack; dumps on demand or on a signal; a stall watchdog."""

from __future__ import annotations

import gc
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from types import FrameType, TracebackType

from ._log import Logger
from ._record import Record
from ._state import all_states
from ._task import State
from ._typing import Any, TextIO
from ._validate import check_timeout

logger = Logger("threadwise")


class ThreadInfo(Record):
    """A snapshot of one live thread (threadwise's own and any other). Immutable; equal when
    every field is."""

    __slots__ = (  # noqa: RUF023 - the fields, in order
        "name",
        "ident",
        "native_id",
        "daemon",
        "alive",
        "state",
        "blocked_on",
        "task",
        "group",
        "running_for",
        "stack",
    )
    name: str
    ident: int | None
    native_id: int | None
    daemon: bool
    alive: bool
    state: State
    blocked_on: str | None  # e.g. "Lock.acquire on Lock 'db' held by worker-3"
    task: str | None
    group: str | None
    running_for: float  # seconds in the current state (threadwise-aware threads), else 0
    stack: list[str]  # formatted frames, outermost first

    def __init__(
        self,
        name: str,
        ident: int | None,
        native_id: int | None,
        daemon: bool,
        alive: bool,
        state: State,
        blocked_on: str | None,
        task: str | None,
        group: str | None,
        running_for: float,
        stack: list[str],
    ) -> None:
        super().__init__(
            name, ident, native_id, daemon, alive, state, blocked_on, task, group, running_for,
            stack,
        )  # fmt: skip

    def format_stack(self) -> str:
        return "".join(self.stack)


# Held while the collector is switched off around sys._current_frames(), so that two callers
# do not switch it back on under each other.
_frames_lock = threading.Lock()


def _current_frames() -> dict[int, FrameType]:
    """``sys._current_frames()`` with the garbage collector off: on CPython 3.11 a collection
    that starts inside it (and runs a weakref callback) can deadlock the process, which the
    stall watchdog checking from several threads provoked (CPython gh-106883)."""
    with _frames_lock:
        enabled = gc.isenabled()
        gc.disable()
        try:
            return sys._current_frames()
        finally:
            if enabled:
                gc.enable()


def threads() -> list[ThreadInfo]:
    """A snapshot of every live thread of the process."""
    frames = _current_frames()
    states = all_states()
    now = time.monotonic()
    infos = []
    for thread in threading.enumerate():
        ident = thread.ident
        state = states.get(ident) if ident is not None else None
        task = state.task if state is not None else None
        blocked = state.describe_blocked_on() if state is not None else None
        if task is not None:
            current = task.state
        elif blocked is not None:
            current = State.BLOCKED
        else:
            current = State.RUNNING
        frame = frames.get(ident) if ident is not None else None
        infos.append(
            ThreadInfo(
                name=thread.name,
                ident=ident,
                native_id=thread.native_id,
                daemon=thread.daemon,
                alive=thread.is_alive(),
                state=current,
                blocked_on=blocked,
                task=task.name if task is not None else None,
                group=task.group.name if task is not None and task.group is not None else None,
                # `since` moves on in other threads while we loop: never report < 0.
                running_for=max(0.0, now - state.since) if state is not None else 0.0,
                stack=_format(frame),
            )
        )
    return infos


def _format(frame: FrameType | None) -> list[str]:
    if frame is None:
        return []
    return traceback.format_list(traceback.extract_stack(frame))


def format_table(infos: list[ThreadInfo]) -> str:
    head = f"{'thread':<28} {'state':<9} {'for s':>7}  {'task / group':<28} blocked on"
    lines = [head, "-" * len(head)]
    for info in infos:
        owner = info.task or ""
        if info.group:
            owner = f"{owner} / {info.group}" if owner else info.group
        daemon = " (daemon)" if info.daemon else ""
        lines.append(
            f"{(info.name + daemon)[:28]:<28} {info.state.name:<9} {info.running_for:>7.1f}  "
            f"{owner[:28]:<28} {info.blocked_on or ''}"
        )
    return "\n".join(lines)


def _check_file(file: object) -> None:
    if file is not None and not callable(getattr(file, "write", None)):
        raise TypeError(
            f"file must be a writable text stream (with a write() method) or None, got {file!r}"
        )


def dump(file: TextIO | None = None) -> str:
    """Print a table of all threads and then each thread's stack; returns the text."""
    _check_file(file)
    infos = threads()
    parts = [f"threadwise dump: {len(infos)} threads", format_table(infos), ""]
    for info in infos:
        title = f"--- {info.name} (ident {info.ident}, {info.state.name}"
        if info.blocked_on:
            title += f", {info.blocked_on}"
        parts.append(title + ") ---")
        parts.append(info.format_stack().rstrip() or "  (no Python frames)")
        parts.append("")
    text = "\n".join(parts)
    out = sys.stderr if file is None else file
    out.write(text + "\n")
    out.flush()
    return text


def dump_on_signal(
    signum: int = getattr(signal, "SIGUSR1", signal.SIGINT), file: TextIO | None = None
) -> Any:
    """Dump every thread whenever ``signum`` arrives, without stopping the program.

    Call from the main thread. Returns the previous handler.
    """
    _check_file(file)

    def handler(received: int, frame: FrameType | None) -> None:
        dump(file)

    return signal.signal(signum, handler)


class Watchdog:
    """Reports any task RUNNING or BLOCKED for longer than ``stall_after`` seconds, once per
    episode (an episode ends when the thread changes state). Stop with ``stop()``."""

    def __init__(self, stall_after: float, on_stall: Callable[[ThreadInfo], object] | None) -> None:
        self.stall_after = stall_after
        self.on_stall = on_stall
        self._stop = threading.Event()
        # The watchdog thread and callers of check() update these together: the lock makes
        # "not seen yet, so report it" one step, so an episode is reported once.
        self._lock = threading.Lock()
        self._seen: set[tuple[int | None, float]] = set()
        self._thread = threading.Thread(target=self._watch, name="threadwise-watchdog", daemon=True)
        self.reports: list[ThreadInfo] = []

    def start(self) -> Watchdog:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def __enter__(self) -> Watchdog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def check(self) -> list[ThreadInfo]:
        """One pass: report the stalls not reported yet; returns them."""
        stalled = []
        states = all_states()
        infos = threads()
        with self._lock:
            for info in infos:
                if info.task is None or info.state not in (State.RUNNING, State.BLOCKED):
                    continue
                state = states.get(info.ident) if info.ident is not None else None
                if state is None or info.running_for < self.stall_after:
                    continue
                episode = (info.ident, state.since)
                if episode in self._seen:
                    continue
                self._seen.add(episode)
                stalled.append(info)
            self.reports.extend(stalled)
            # Forget episodes that ended so the set does not grow forever.
            live = {(ident, s.since) for ident, s in states.items()}
            self._seen &= live
        for info in stalled:
            if self.on_stall is not None:
                try:
                    self.on_stall(info)
                except Exception:
                    logger.exception("watchdog on_stall callback failed")
            else:
                logger.warning(
                    "task %r in thread %r has been %s for %.1f s%s\n%s",
                    info.task,
                    info.name,
                    info.state.name,
                    info.running_for,
                    f" ({info.blocked_on})" if info.blocked_on else "",
                    info.format_stack().rstrip(),
                )
        return stalled

    def _watch(self) -> None:
        interval = min(1.0, max(0.01, self.stall_after / 4))
        while not self._stop.wait(interval):
            self.check()


def watchdog(
    stall_after: float = 30.0, on_stall: Callable[[ThreadInfo], object] | None = None
) -> Watchdog:
    """Start a watchdog thread; see ``Watchdog``. Use as a context manager or call ``stop()``."""
    seconds = check_timeout(stall_after, "stall_after")
    if seconds is None or seconds <= 0:
        raise ValueError(f"stall_after must be a positive number of seconds, got {stall_after!r}")
    if on_stall is not None and not callable(on_stall):
        raise TypeError(f"on_stall must be callable or None, got {on_stall!r}")
    return Watchdog(seconds, on_stall).start()
