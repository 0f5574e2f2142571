"""Ctrl-C never lands half-way through a primitive's bookkeeping.

Python raises ``KeyboardInterrupt`` between bytecodes. A Python-level ``Lock.__enter__`` can be
interrupted after it took its inner lock and before it returned: the ``with`` block never
starts, so its ``__exit__`` never runs and the lock stays held forever. ``threading.Lock`` is
immune only because its ``__enter__`` is a single C call.

threadwise gets the same guarantee by deferring the interrupt, the way trio protects its own
internals: at import, in the main thread and only if SIGINT still has Python's default handler,
it installs a handler that behaves exactly like the default one (raise ``KeyboardInterrupt``)
except while the main thread runs code of a *protected* module. There it sends the signal again
a moment later instead, so the interrupt is raised after the protected code has returned, at a
point where the primitive is consistent.

The blocking waits themselves are not protected: Ctrl-C still interrupts a thread parked in a
wait (``_cancel.block``), and the primitives undo their bookkeeping on the way out. User code
that a primitive calls (a ``wait_for`` predicate, a ``Barrier`` action, an item's ``__lt__``) is
not protected either: it is not threadwise's own frame.
"""

from __future__ import annotations

import _thread
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from types import CodeType, FrameType

from ._typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import signal
else:  # signal's C half: the signal module only wraps it in enums, which cost import time
    import _signal as signal

# Modules whose every frame is protected (only threadwise's primitives).
_PROTECTED_MODULES = {
    "threadwise._sync",
    "threadwise._queue",
    "threadwise._ki",
    "threadwise._threads",  # handing a job to a worker: half done, the worker is lost
    "threadwise._executor",  # queue, parked runners and counters move together
}
# Helper modules our primitives call: their frames take the protection of their caller.
_TRANSPARENT_MODULES = {"threadwise._cancel", "threadwise._state", "threadwise._debug"}
# Code that waits (it must stay interruptible) even though its module is listed above.
_UNPROTECTED: set[CodeType] = set()  # filled at import time only, read-only afterwards
# Code protected wherever it is called from, user code included (a transparent module's
# bookkeeping that user code calls directly, e.g. ``tw.sleep`` -> ``_cancel.block``).
_PROTECTED: set[CodeType] = set()  # filled at import time only, read-only afterwards


def unprotected(fn: Callable[..., Any]) -> None:
    """Let Ctrl-C interrupt ``fn`` at once (a blocking wait) wherever it is called from."""
    _UNPROTECTED.add(fn.__code__)


def protected(fn: Callable[..., Any]) -> None:
    """Defer Ctrl-C while ``fn`` runs, wherever it is called from (not in what it calls
    outside threadwise's modules, nor in code marked ``unprotected``)."""
    _PROTECTED.add(fn.__code__)


def is_protected(frame: FrameType | None) -> bool:
    """Whether a KeyboardInterrupt arriving while ``frame`` runs must wait until it returns."""
    while frame is not None:
        code = frame.f_code
        if code in _UNPROTECTED:
            return False
        if code in _PROTECTED:
            return True
        module = frame.f_globals.get("__name__")
        if module in _PROTECTED_MODULES:
            return True
        if module not in _TRANSPARENT_MODULES:
            return False  # user code, or the standard library called from a primitive
        frame = frame.f_back
    return False


# A SIGINT sent to the process may be taken by any thread: Python then only sets a flag for
# the main thread, and a main thread asleep in a lock wait would not see it until the wait
# ends (a Ctrl-C lost: the main thread waits forever on a group whose tasks sleep, or for the
# whole grace period on a thread closing its ThreadLocals). Every wait of the main thread is
# cut into slices this long, so the KeyboardInterrupt comes out within one.
MAIN_SLICE = 0.05


# How the deferred interrupt comes back: a short-lived raw thread sends SIGINT to the main
# thread again a moment later (again deferred if it is still inside a primitive). Re-arming
# from inside this handler instead would run the handler again at once, in its own frame, and
# under a tracer (coverage, debuggers) it never gets out. A real signal, unlike
# interrupt_main(), also interrupts a wait the main thread has entered meanwhile.
#
# One deferred interrupt is one pending flag and at most one sending thread: the thread sends
# again and again until the handler has raised the KeyboardInterrupt. A thread per deferral
# instead could leave two signals on their way for one Ctrl-C (a stray second interrupt), and
# one send per deferral loses the interrupt for good when that one signal finds SIGINT ignored
# or handled by someone else for a moment.
# Sent again every 1-2 ms: where the main thread spends nearly all its time in primitives
# (a loop of Event or Lock calls), a re-sent signal lands in protected code again about three
# times in four, so the interrupt needs a few tries. Backing off to 50 ms, as before, made that
# 0.2 s typically and over 5 s in rare runs; a try costs one handler call.
#
# At most one re-sent signal is on its way at a time, and none while the handler runs: a signal
# sent while the handler was deciding to raise would run the handler once more after the raise,
# a stray second Ctrl-C (seen once in 6,300 trials). The sender waits until the handler has
# run since its last signal ("acknowledged" it); a signal not acknowledged within
# _UNACKED_RESEND (SIGINT ignored or taken by someone else for a moment) is sent again.
_REDELIVER_AFTER = 0.001
_REDELIVER_MAX = 0.002
_UNACKED_RESEND = 0.05
_main_ident = threading.main_thread().ident
_delivery_lock = _thread.allocate_lock()
# Guarded by _delivery_lock:
_pending = False  # a deferred interrupt has not been raised yet
_sending = False  # the sending thread runs
_deciding = False  # the handler runs in the main thread
_unacked = False  # a re-sent signal has not reached the handler yet
_sent_at = 0.0  # when it was sent


def pending() -> bool:
    """Whether a deferred Ctrl-C is still on its way to the main thread."""
    return _pending


def _deliver_later() -> None:
    global _sending, _unacked, _sent_at
    kill = getattr(signal, "pthread_kill", None)
    delay = _REDELIVER_AFTER
    while True:
        time.sleep(delay)
        delay = min(delay * 2, _REDELIVER_MAX)
        with _delivery_lock:
            if not _pending:
                _sending = False
                return
            if _deciding:
                continue  # the handler runs: it raises or defers again, no signal needed
            now = time.monotonic()
            if _unacked and now - _sent_at < _UNACKED_RESEND:
                continue  # the last one has not reached the handler yet
            # Sent under the lock: the handler's raise (which clears _pending) cannot slip in
            # between the check and the send and leave this signal as a stray second Ctrl-C.
            if kill is not None and _main_ident is not None:
                kill(_main_ident, signal.SIGINT)
            else:  # pragma: no cover - platforms without pthread_kill (Windows)
                _thread.interrupt_main()
            _unacked, _sent_at = True, now


def _defer() -> None:
    global _pending, _sending
    # No call between acquire and release: a nested run of the handler in this thread (a
    # second signal) cannot find the lock held by its own thread.
    with _delivery_lock:
        _pending = True
        start = not _sending
        _sending = True
    if start:
        try:
            _thread.start_new_thread(_deliver_later, ())
        except RuntimeError:  # no thread can start (resource exhaustion): raise it now
            with _delivery_lock:
                _sending = False
            raise


def _after_fork_in_child() -> None:
    """The child has only the forking thread: no sending thread, and the lock may be held."""
    global _delivery_lock, _pending, _sending, _main_ident, _deciding, _unacked
    _delivery_lock = _thread.allocate_lock()
    _pending = _sending = _deciding = _unacked = False
    _main_ident = threading.main_thread().ident


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _raise(signum: int, frame: FrameType | None) -> None:
    global _pending
    with _delivery_lock:
        _pending = False
    signal.default_int_handler(signum, frame)


# Code the interpreter runs without being able to raise from it: weakref callbacks (the
# standard library's weak containers and ``weakref.finalize``) and ``__del__``. An exception
# there is printed as "Exception ignored" and dropped, so a Ctrl-C arriving inside one would
# be lost: it is deferred until the callback returns, like one in protected code.
_UNRAISABLE: frozenset[CodeType] = frozenset(
    {
        weakref.finalize.__call__.__code__,
        weakref.WeakSet()._remove.__code__,  # type: ignore[attr-defined]
        weakref.WeakValueDictionary()._remove.__code__,  # type: ignore[attr-defined]
        weakref.WeakKeyDictionary()._remove.__code__,  # type: ignore[attr-defined]
    }
)


def in_unraisable_callback(frame: FrameType | None) -> bool:
    """Whether ``frame`` runs inside a weakref callback, a ``__del__`` or a generator's
    clean-up on close (which, for a generator the garbage collector closes, is unraisable)."""
    # Not at a blocking wait: a wait must stay interruptible, even in a generator's clean-up.
    if isinstance(sys.exception(), GeneratorExit) and (
        frame is None or frame.f_code not in _UNPROTECTED
    ):
        return True
    while frame is not None:
        code = frame.f_code
        if code in _UNRAISABLE or code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def _handler(signum: int, frame: FrameType | None) -> None:
    global _deciding, _unacked
    # No call between acquire and release (see _defer).
    with _delivery_lock:
        _deciding = True
        _unacked = False
    try:
        if frame is not None and frame.f_code in _EXIT_HOOKS:
            return  # between an exit hook's own lines, outside its `try`: exiting anyway
        if is_protected(frame) or in_unraisable_callback(frame):
            try:
                _defer()
                return
            except RuntimeError:
                pass  # it cannot be deferred: raising it late is better than losing it
        _raise(signum, frame)
    finally:
        with _delivery_lock:
            _deciding = False


# threadwise's own interpreter-exit hooks (see exit_hook).
_EXIT_HOOKS: set[CodeType] = set()  # filled at import time only, read-only afterwards


def exit_hook(fn: Callable[[], None]) -> Callable[[], None]:
    """``fn`` made fit for ``atexit``: a Ctrl-C while it runs ends it quietly.

    An exception escaping an exit hook is printed as "Exception ignored" with a traceback
    into threadwise. At exit a Ctrl-C can only mean "stop waiting": the hooks catch the
    first one where they wait; this catches the rest (a second Ctrl-C during their grace)."""

    def hook() -> None:
        try:
            fn()
        except KeyboardInterrupt:
            pass  # the program is exiting anyway: stopping the wait was all it could do
        finally:
            _drop_pending()  # a Ctrl-C deferred inside fn must not land in later exit code

    _EXIT_HOOKS.add(hook.__code__)
    return hook


def _drop_pending() -> None:
    global _pending
    with _delivery_lock:
        _pending = False


def install() -> bool:
    """Install the deferring SIGINT handler if Python's default one is in place."""
    if threading.current_thread() is not threading.main_thread():
        return False
    try:
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return False  # someone chose their own handler: leave it alone
        signal.signal(signal.SIGINT, _handler)
    except (ValueError, OSError):  # pragma: no cover - e.g. not the main interpreter
        return False
    return True


def installed() -> bool:
    return signal.getsignal(signal.SIGINT) is _handler
