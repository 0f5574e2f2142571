"""Cancel scopes, deadlines and the one blocking wait every threadwise primitive is built on.

Cancellation is cooperative: a cancelled scope does not stop a thread, it makes the next
threadwise checkpoint or wait in that thread raise ``Cancelled``. Cancelling is *pushed*:
``cancel()`` marks the scope and all its descendants (which may run in other threads) and
wakes every thread parked under them, so a checkpoint is an attribute read plus a clock read.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable
from types import CodeType, FrameType, TracebackType

from . import _ki
from ._exceptions import Cancelled
from ._state import ThreadState, Waitable, current_state
from ._typing import Literal, Protocol
from ._validate import check_name, check_timeout

_monotonic = time.monotonic
_allocate_lock = threading.Lock
_get_ident = threading.get_ident
_TIMEOUT_MAX = threading.TIMEOUT_MAX

# Guards every scope's children and waiters. Held only for a few attribute updates and never
# while calling user code, so one lock for the whole tree is cheap.
_tree_lock = threading.Lock()


def _after_fork() -> None:
    """A forked child gets a fresh tree lock: another thread may have held the parent's."""
    global _tree_lock
    _tree_lock = threading.Lock()


def _check_deadline(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"deadline must be a time.monotonic() value (a number) or None, got {value!r}"
        )
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:  # a huge int: so far away it means "never"
            return math.inf if value > 0 else -math.inf
    if math.isnan(value):
        raise ValueError(f"deadline must not be NaN, got {value!r}")
    return value


class Wakeable(Protocol):
    """What a scope's cancel wakes: a parked thread's ``Waiter``, an ``on_cancel`` hook, or a
    group's hook passing the cancel on to its tasks."""

    def wake(self) -> None: ...


# A scope entered in one of these frames can be suspended at a ``yield`` with the scope still
# pushed on the thread's stack.
# (inspect.CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR, fixed by CPython since 3.6;
# importing inspect would cost more than this module. A test checks them against inspect.)
_SUSPENDABLE = 0x20 | 0x80 | 0x200
_PACKAGE = __name__.rpartition(".")[0]


def _contextmanager_enter() -> CodeType | None:
    """The code of ``@contextmanager``'s ``__enter__``, once contextlib is imported: no
    ``@contextmanager`` generator can run before, and threadwise does not import it."""
    contextlib = sys.modules.get("contextlib")
    return None if contextlib is None else contextlib._GeneratorContextManager.__enter__.__code__


def _suspendable_frame() -> FrameType | None:
    """The user frame entering a scope, if it is a generator that may yield inside it.

    A ``@contextmanager`` generator is not one: the ``with`` body it wraps is meant to run
    under the scope while the generator is suspended.
    """
    frame: FrameType | None = sys._getframe(2)
    while frame is not None and frame.f_globals.get("__name__", "").startswith(_PACKAGE):
        frame = frame.f_back
    if frame is None or not frame.f_code.co_flags & _SUSPENDABLE:
        return None
    caller = frame.f_back
    if caller is not None and caller.f_code is _contextmanager_enter():
        return None
    return frame


def _on_stack(frame: FrameType) -> bool:
    here: FrameType | None = sys._getframe(1)
    while here is not None:
        if here is frame:
            return True
        here = here.f_back
    return False


def _active(scope: CancelScope | None) -> CancelScope | None:
    """The scope that applies to the running code: scopes entered in a generator that is
    suspended at a ``yield`` right now are skipped (they apply to the generator's code only)."""
    while scope is not None and scope._frame is not None and not _on_stack(scope._frame):
        scope = scope._previous
    return scope


def _current(state: ThreadState) -> CancelScope | None:
    scope = state.scope
    if scope is not None and scope._frame is not None:
        return _active(scope)
    return scope


class CancelScope:
    """A region of work that can be cancelled as a whole, optionally with a deadline.

    Scopes nest, also across threads: a task's scope is a child of its group's scope, so
    cancelling the group cancels the task wherever it runs. (Not in the tree, though: the
    group passes its scope's cancel on to its tasks itself, see ``TaskGroup``.)
    """

    __slots__ = (
        "_cancel_called",
        "_cancelled",
        "_children",
        "_deadline",
        "_entered_in",
        "_frame",
        "_own_deadline",
        "_parent",
        "_previous",
        "_reason",
        "_waiters",
        "cancelled_caught",
        "name",
    )

    def __init__(self, *, deadline: float | None = None, name: str | None = None) -> None:
        self.name = check_name(name)
        deadline = _check_deadline(deadline)
        self._own_deadline = deadline
        self._deadline = deadline
        self._parent: CancelScope | None = None
        self._previous: CancelScope | None = None
        # Made on first use (under _tree_lock, like every change to them): most scopes, a
        # task's above all, never get a child or a blocked waiter, and one scope is made per
        # task.
        self._children: set[CancelScope] | None = None
        self._waiters: set[Wakeable] | None = None
        self._cancel_called = False
        self._cancelled = False
        self._reason = ""
        self._entered_in: int | None = None
        self._frame: FrameType | None = None
        self.cancelled_caught = False

    @classmethod
    def _child(
        cls, parent: CancelScope | None, name: str | None, deadline: float | None = None
    ) -> CancelScope:
        """A new scope attached to ``parent`` (for a task or a call; never entered).

        The internal fast path of ``CancelScope(name=..., deadline=...)`` +
        ``_attach(parent)``, for threadwise's own names and already checked deadlines
        (``time.monotonic()`` floats): one is made per task, so its cost counts.
        """
        self = object.__new__(cls)
        self.name = name
        self._own_deadline = deadline
        self._previous = None
        self._children = None
        self._waiters = None
        self._cancel_called = False
        self._entered_in = None
        self._frame = None
        self.cancelled_caught = False
        self._parent = parent
        if parent is None:
            self._cancelled = False
            self._reason = ""
            self._deadline = deadline
            return self
        with _tree_lock:
            # Inherited under the lock, as _attach does: a cancel of the parent either
            # marks this child (it is in parent._children) or was seen here.
            self._cancelled = parent._cancelled
            self._reason = parent._reason
            pd = parent._deadline
            nearer = deadline is None or (pd is not None and pd < deadline)
            self._deadline = pd if nearer else deadline
            children = parent._children
            if children is None:
                parent._children = {self}
            else:
                children.add(self)
        return self

    # -- tree ------------------------------------------------------------------------------
    def _attach(self, parent: CancelScope | None) -> None:
        """Make this scope a child of ``parent``: it inherits parent's cancel and deadline."""
        self._parent = parent
        if parent is None:
            return
        with _tree_lock:
            self._attach_locked(parent)

    def _attach_locked(self, parent: CancelScope) -> None:
        """``_attach``'s part under ``_tree_lock`` (held by the caller)."""
        children = parent._children
        if children is None:
            parent._children = {self}
        else:
            children.add(self)
        if parent._cancelled:
            self._cancelled = True
            self._reason = parent._reason
        pd = parent._deadline
        if pd is not None and (self._deadline is None or pd < self._deadline):
            self._deadline = pd

    def _detach(self) -> None:
        parent = self._parent
        if parent is not None:
            with _tree_lock:
                children = parent._children
                if children is not None:
                    children.discard(self)

    # -- public ----------------------------------------------------------------------------
    @property
    def deadline(self) -> float | None:
        """The effective deadline on the ``time.monotonic()`` clock (the nearest of its chain)."""
        return self._deadline

    @property
    def cancel_called(self) -> bool:
        return self._cancel_called

    @property
    def cancelled(self) -> bool:
        """True once this scope or an enclosing one was cancelled or its deadline passed."""
        return self._is_cancelled()

    def cancel(self, reason: str = "cancelled") -> None:
        """Cancel this scope and every scope nested in it, waking their blocked threads."""
        if not isinstance(reason, str):
            raise TypeError(f"reason must be a str, got {reason!r}")
        with _tree_lock:
            if self._cancel_called:
                return
            self._cancel_called = True
            to_wake = self._mark(reason)
        for waiter in to_wake:
            waiter.wake()

    def _cancel_as_child(self, reason: str) -> None:
        """Cancel this scope and its subtree as its parent's cancel would: for a scope
        outside the tree whose parent passes the cancel on itself (a group's task: see
        ``TaskGroup``). Unlike ``cancel()`` it does not count as cancelled here."""
        with _tree_lock:
            to_wake = self._mark(reason)
        for waiter in to_wake:
            waiter.wake()

    def _mark(self, reason: str) -> list[Wakeable]:
        """With ``_tree_lock`` held: mark this scope and its subtree cancelled; returns what
        to wake (after the lock is released)."""
        to_wake: list[Wakeable] = []
        stack: list[CancelScope] = [self]
        while stack:
            scope = stack.pop()
            if scope._cancelled:
                continue  # its subtree was marked by an earlier cancel
            scope._cancelled = True
            scope._reason = reason
            if scope._waiters:
                to_wake.extend(scope._waiters)
            if scope._children:
                stack.extend(scope._children)
        return to_wake

    def remaining(self) -> float | None:
        deadline = self._deadline
        return None if deadline is None else max(0.0, deadline - _monotonic())

    # -- checks ----------------------------------------------------------------------------
    def _is_cancelled(self) -> bool:
        if self._cancelled:
            return True
        deadline = self._deadline
        return deadline is not None and _monotonic() >= deadline

    def _caught_own(self) -> bool:
        """Whether a ``Cancelled`` reaching this scope's exit is this scope's to catch."""
        if self._cancel_called:
            return True
        own = self._own_deadline
        return own is not None and _monotonic() >= own

    def _cancelled_error(self) -> Cancelled:
        if self._cancelled:
            return Cancelled(self._reason)
        return Cancelled(f"deadline passed{self._describe_name()}")

    def _describe_name(self) -> str:
        return f" ({self.name})" if self.name else ""

    # -- as a context manager in the current thread ------------------------------------------
    def __enter__(self) -> CancelScope:
        ident = threading.get_ident()
        with _tree_lock:  # two threads entering one scope: exactly one may succeed
            if self._entered_in is not None:
                raise RuntimeError("a cancel scope can be entered only once")
            self._entered_in = ident
        state = current_state()
        self._frame = _suspendable_frame()
        current = _current(state)
        self._previous = state.scope
        if self._parent is None:
            self._attach(current)
        state.scope = self  # last: an interrupt before this leaves nothing pushed
        return self

    def _enter_with(self, hook: Wakeable) -> None:
        """``__enter__`` for a scope of threadwise's own, entered once by the code that made
        it (a group's): ``hook`` is woken whenever the scope is cancelled (until ``_leave``).
        Attaching the scope to the thread's current one and registering the hook take one
        locked step."""
        state = current_state()
        self._entered_in = _get_ident()
        self._frame = _suspendable_frame()
        current = _current(state)
        self._previous = state.scope
        self._parent = current
        with _tree_lock:
            if current is not None:
                self._attach_locked(current)
            _add_waiter(self, hook)
        state.scope = self  # last: an interrupt before this leaves nothing pushed

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        self._leave(None)
        if isinstance(exc, Cancelled) and self._caught_own():
            self.cancelled_caught = True
            return True
        return False

    def _leave(self, hook: Wakeable | None) -> None:
        """Take the scope off the thread's stack and out of the tree (and ``hook``, given
        to ``_enter_with``, off its waiters)."""
        state = current_state()
        out_of_order = False
        if state.scope is self:
            state.scope = self._previous
        else:
            self._unlink(state)
            # A scope entered in a generator may legitimately be exited after scopes the
            # consumer entered while the generator was suspended; anything else is a bug.
            out_of_order = self._frame is None
        self._frame = None
        parent = self._parent
        if parent is not None or hook is not None:
            with _tree_lock:  # self._detach(), inlined, and the hook's removal: one step
                if parent is not None:
                    children = parent._children
                    if children is not None:
                        children.discard(self)
                if hook is not None:
                    _discard_waiter(self, hook)
        if out_of_order:
            raise RuntimeError(
                f"cancel scope{self._describe_name()} exited out of order: a scope entered "
                "after it is still open (exit scopes in the reverse order of entering them)"
            )

    def _on_stack(self) -> bool:
        """Whether this scope is on the calling thread's scope stack (entered, not exited)."""
        scope = current_state().scope
        while scope is not None:
            if scope is self:
                return True
            scope = scope._previous
        return False

    def _unlink(self, state: ThreadState) -> None:
        if self._entered_in != threading.get_ident():
            raise RuntimeError(
                f"cancel scope{self._describe_name()} exited in a thread that did not "
                "enter it (or was never entered)"
            )
        above: CancelScope | None = None
        scope = state.scope
        while scope is not None and scope is not self:
            above, scope = scope, scope._previous
        if scope is None:
            raise RuntimeError(f"cancel scope{self._describe_name()} was already exited")
        if above is not None:
            above._previous = self._previous

    def __repr__(self) -> str:
        status = "cancelled" if self._cancelled else "active"
        return f"<threadwise.CancelScope{self._describe_name()} {status}>"


class _FailAfter(CancelScope):
    __slots__ = ("_seconds",)

    def __init__(self, deadline: float, seconds: float) -> None:
        super().__init__(deadline=deadline, name=f"fail_after({seconds:g})")
        self._seconds = seconds

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        if super().__exit__(exc_type, exc, tb):
            raise TimeoutError(f"the block did not finish within {self._seconds:g} s") from exc
        return False


def _deadline_after(seconds: object, name: str) -> tuple[float | None, float]:
    value = check_timeout(seconds, name)
    if value is None:
        return None, float("inf")
    return _monotonic() + value, value


def move_on_after(seconds: float) -> CancelScope:
    """Cancel the block after ``seconds`` and carry on after it (check ``cancelled_caught``)."""
    deadline, value = _deadline_after(seconds, "seconds")
    return CancelScope(deadline=deadline, name=f"move_on_after({value:g})")


def fail_after(seconds: float) -> CancelScope:
    """Cancel the block after ``seconds`` and raise ``TimeoutError``."""
    deadline, value = _deadline_after(seconds, "seconds")
    if deadline is None:
        return CancelScope(name="fail_after(inf)")
    return _FailAfter(deadline, value)


def current_scope() -> CancelScope | None:
    return _current(current_state())


def remaining() -> float | None:
    """Seconds left before the innermost deadline of the calling thread, or None."""
    scope = _current(current_state())
    return None if scope is None else scope.remaining()


def checkpoint() -> None:
    """Raise ``Cancelled`` if the calling thread's scope was cancelled or its deadline passed."""
    scope = current_state().scope
    if scope is not None and scope._frame is not None:
        scope = _active(scope)
    if scope is not None and scope._is_cancelled():
        raise scope._cancelled_error()


# -- the waiting primitive -------------------------------------------------------------------


class Waiter:
    """A one-shot wake-up: a lock held from birth that ``wake()`` releases.

    ``notified`` tells a primitive's hand-off (set by the primitive) from a cancellation wake.
    """

    __slots__ = ("_lock", "notified")

    def __init__(self) -> None:
        self._lock = _allocate_lock()
        self._lock.acquire()
        self.notified = False

    def wake(self) -> None:
        try:
            self._lock.release()
        except RuntimeError:
            pass  # already woken: a notify and a cancel raced, one wake-up is enough


class CancelHook:
    """Runs a callback once when the scope it is registered on is cancelled.

    This is how foreign blocking calls are interrupted: e.g. shut a socket down so a thread
    blocked reading it wakes up. Register with ``on_cancel``.
    """

    __slots__ = ("_callback", "_fired")

    def __init__(self, callback: Callable[[], object]) -> None:
        self._callback = callback
        self._fired = False

    def wake(self) -> None:
        if self._fired:
            return
        self._fired = True
        try:
            self._callback()
        except Exception:
            import logging

            logging.getLogger("threadwise").exception("on_cancel callback failed")


class on_cancel:
    """Call ``callback()`` (from the cancelling thread) if the current scope is cancelled
    while the block runs. Deadlines do not trigger it: give the foreign call its own timeout
    from ``remaining()``.

    Used as ``with on_cancel(callback):``; a class rather than a ``@contextmanager``
    generator, because importing contextlib costs more than this whole module.
    """

    __slots__ = ("_hook", "_scope")

    def __init__(self, callback: Callable[[], object]) -> None:
        self._hook = CancelHook(callback)
        self._scope: CancelScope | None = None

    def __enter__(self) -> None:
        scope = _current(current_state())
        if scope is None:
            return
        with _tree_lock:
            already = scope._cancelled
            if not already:
                _add_waiter(scope, self._hook)
                self._scope = scope
        if already:
            self._hook.wake()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        scope, self._scope = self._scope, None
        if scope is not None:
            with _tree_lock:
                _discard_waiter(scope, self._hook)


CancelMode = Literal["raise", "wake", "ignore"]


def _add_waiter(scope: CancelScope, waiter: Wakeable) -> None:
    """With ``_tree_lock`` held."""
    waiters = scope._waiters
    if waiters is None:
        scope._waiters = {waiter}
    else:
        waiters.add(waiter)


def _discard_waiter(scope: CancelScope, waiter: Wakeable) -> None:
    """With ``_tree_lock`` held."""
    waiters = scope._waiters
    if waiters is not None:
        waiters.discard(waiter)


def block(
    waiter: Waiter,
    timeout: float | None,
    blocked_on: tuple[Waitable, str] | None,
    *,
    cancel: CancelMode = "raise",
    scope: CancelScope | None = None,
) -> bool:
    """Park the calling thread until ``waiter`` is woken (True) or ``timeout`` passes (False).

    With ``cancel="raise"`` the wait also ends when the thread's cancel scope is cancelled or
    its deadline passes, and ``Cancelled`` is raised. ``"wake"`` only returns early on cancel
    (the caller decides what to do) on ``scope`` (default: the thread's); ``"ignore"`` is for
    waits that must not be interrupted.
    """
    state = current_state()
    if cancel == "raise" or (cancel == "wake" and scope is None):
        scope = _current(state)
    elif cancel == "ignore":
        scope = None
    deadline: float | None = None
    if scope is not None:
        with _tree_lock:
            if not scope._cancelled:
                _add_waiter(scope, waiter)
        if cancel == "raise":
            if scope._is_cancelled():
                with _tree_lock:
                    _discard_waiter(scope, waiter)
                raise scope._cancelled_error()
            deadline = scope._deadline
        elif scope._cancelled:
            with _tree_lock:
                _discard_waiter(scope, waiter)
            return False
    end = None if timeout is None else _monotonic() + timeout
    limit = end if deadline is None or (end is not None and end <= deadline) else deadline
    task = state.task
    state.blocked_on = blocked_on
    state.since = _monotonic()
    if task is not None and blocked_on is not None:
        task._set_blocked(True)
    try:
        woken = _park(waiter, limit)
    finally:
        state.blocked_on = None
        state.since = _monotonic()
        if task is not None and blocked_on is not None:
            task._set_blocked(False)
        if scope is not None:
            with _tree_lock:
                _discard_waiter(scope, waiter)
    if cancel == "raise" and scope is not None and scope._is_cancelled():
        raise scope._cancelled_error()
    return woken


# The main thread's waits are cut into slices (see _ki.MAIN_SLICE).
_MAIN_SLICE = _ki.MAIN_SLICE


def _park(waiter: Waiter, limit: float | None) -> bool:
    """The wait itself: the only part of ``block`` that Ctrl-C interrupts at once."""
    acquire = waiter._lock.acquire
    if _get_ident() != _ki._main_ident:
        if limit is None:
            return acquire()
        while True:
            wait_for = limit - _monotonic()
            if wait_for > 0 and acquire(True, min(wait_for, _TIMEOUT_MAX)):
                return True
            if _monotonic() >= limit:
                return False
    while True:  # the main thread: a pending signal handler runs between two slices
        wait_for = _MAIN_SLICE if limit is None else min(limit - _monotonic(), _MAIN_SLICE)
        if wait_for > 0 and acquire(True, wait_for):
            return True
        if limit is not None and _monotonic() >= limit:
            return False


# Ctrl-C waits until block's bookkeeping around the wait is done (registering the waiter with
# the scope, the thread's BLOCKED state): interrupted half-way it would leave the thread shown
# as blocked and the waiter in its scope's wake-up set. Only the wait itself is interruptible.
_ki.protected(block)
# A cancel cut short by Ctrl-C would leave part of the tree marked and nothing woken (and a
# group's tasks not told: see TaskGroup); the callbacks of on_cancel stay interruptible.
_ki.protected(CancelScope.cancel)
_ki.protected(CancelScope._cancel_as_child)
_ki.unprotected(_park)


class _Sleep:
    __slots__ = ()

    def _describe_wait(self, verb: str) -> str:
        return verb


_SLEEP = _Sleep()


def sleep(seconds: float) -> None:
    """Sleep like ``time.sleep``, but raise ``Cancelled`` at once when the scope is cancelled."""
    if seconds is None:
        raise TypeError("seconds must be a number (use math.inf to sleep until cancelled)")
    value = check_timeout(seconds, "seconds")
    block(Waiter(), value, (_SLEEP, f"sleep({seconds:g})" if value is not None else "sleep(inf)"))
