"""Debug mode: lock-order checking ("lockdep") for named threadwise locks.

When a thread takes named locks in an order that contradicts an order seen before (A then B,
later B then A), the two code paths can deadlock one day, even if this run did not. Debug mode
records the order of named locks and reports such an inversion once, with both stacks.
On with ``THREADWISE_DEBUG=1`` or ``threadwise.debug(True)``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from ._log import Logger
from ._record import Record

logger = Logger("threadwise")

enabled = os.environ.get("THREADWISE_DEBUG", "").strip() not in ("", "0", "false", "no")


class LockOrderViolation(Record):
    """Lock ``first`` was taken before ``second`` in one place and after it in another.

    Immutable; equal when every field is.
    """

    __slots__ = (  # noqa: RUF023 - the fields, in order
        "first",
        "second",
        "earlier_thread",
        "earlier_stack",
        "later_thread",
        "later_stack",
    )
    first: str
    second: str
    earlier_thread: str
    earlier_stack: str  # where `first` was held while `second` was taken
    later_thread: str
    later_stack: str  # where `second` was held while `first` was taken

    def __init__(
        self,
        first: str,
        second: str,
        earlier_thread: str,
        earlier_stack: str,
        later_thread: str,
        later_stack: str,
    ) -> None:
        super().__init__(first, second, earlier_thread, earlier_stack, later_thread, later_stack)

    def __str__(self) -> str:
        return (
            f"potential deadlock: locks {self.first!r} and {self.second!r} are taken in both "
            f"orders.\n{self.earlier_thread} took {self.second!r} while holding {self.first!r}:\n"
            f"{self.earlier_stack}\n{self.later_thread} took {self.first!r} while holding "
            f"{self.second!r}:\n{self.later_stack}"
        )


class _Edge(Record):
    __slots__ = ("thread", "stack")  # noqa: RUF023 - the fields, in order
    thread: str
    stack: str

    def __init__(self, thread: str, stack: str) -> None:
        super().__init__(thread, stack)


_graph_lock = threading.Lock()
edges: dict[str, dict[str, _Edge]] = {}  # held -> taken -> where first seen
_reported: set[frozenset[str]] = set()
_violations: list[LockOrderViolation] = []
_held = threading.local()


# Switching is rare; the lock keeps `enabled` and every listener's copy in step when two
# threads switch at once (no reliance on the GIL).
_switch_lock = threading.Lock()


_listeners: list[Callable[[bool], None]] = []


def on_change(listener: Callable[[bool], None]) -> None:
    """Call ``listener(enabled)`` whenever debug mode is switched (hot paths cache the flag)."""
    with _switch_lock:
        _listeners.append(listener)


def debug(on: bool | None = None) -> bool:
    """Turn debug mode on or off (None: leave it); returns whether it is on."""
    global enabled
    if on is not None and not isinstance(on, bool):
        raise TypeError(f"on must be True, False or None, got {on!r}")
    with _switch_lock:
        if on is not None:
            enabled = on
            for listener in list(_listeners):
                listener(on)
        return enabled


def violations() -> list[LockOrderViolation]:
    """Every lock-order inversion seen so far in this process."""
    with _graph_lock:
        return list(_violations)


def reset() -> None:
    """Forget the recorded lock orders and violations (for tests)."""
    with _graph_lock:
        edges.clear()
        _reported.clear()
        _violations.clear()


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _caller_stack() -> str:
    """The current stack without threadwise's own frames (they are the same every time)."""
    import traceback  # on the first lock-order edge of debug mode only

    frames = [
        frame
        for frame in traceback.extract_stack()
        if not os.path.abspath(frame.filename).startswith(_PACKAGE_DIR + os.sep)
    ]
    return "".join(traceback.format_list(frames))


def held_list() -> list[str]:
    try:
        held: list[str] = _held.names
    except AttributeError:
        held = _held.names = []
    return held


def before_acquire(name: str, held: list[str]) -> None:
    """Record "held -> name" for every lock in ``held`` (the thread's); report an inversion."""
    if not held or name in held:
        return
    for holding in held:  # the common case, without the lock: every edge already known
        known = edges.get(holding)
        if known is None or name not in known:
            break
    else:
        return
    found: list[LockOrderViolation] = []
    stack: str | None = None
    me = threading.current_thread().name
    with _graph_lock:
        for holding in held:
            known = edges.setdefault(holding, {})
            if name in known:
                continue
            if stack is None:
                stack = _caller_stack()
            known[name] = _Edge(me, stack)
            reverse = edges.get(name, {}).get(holding)
            pair = frozenset((holding, name))
            if reverse is not None and pair not in _reported:
                _reported.add(pair)
                violation = LockOrderViolation(
                    first=name,
                    second=holding,
                    earlier_thread=reverse.thread,
                    earlier_stack=reverse.stack,
                    later_thread=me,
                    later_stack=stack,
                )
                _violations.append(violation)
                found.append(violation)
    for violation in found:
        logger.warning("%s", violation)


def acquired(name: str) -> None:
    held_list().append(name)


def released(name: str) -> None:
    held = held_list()
    for i in range(len(held) - 1, -1, -1):
        if held[i] == name:
            del held[i]
            return
