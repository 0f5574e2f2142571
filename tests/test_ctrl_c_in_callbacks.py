"""A Ctrl-C that arrives while the main thread runs a weakref callback or a ``__del__`` is not
lost: the interpreter cannot raise an exception from there (it prints "Exception ignored" and
drops it), so threadwise's SIGINT handler defers it until the callback has returned.

The random-interrupt campaign lost 1 Ctrl-C in 300 TaskGroup trials this way: the main thread
was dropping its last reference to a finished thread, and threading's WeakSet callback ran.
"""

from __future__ import annotations

import _thread
import signal
import sys
import time
import weakref
from types import FrameType

import pytest

from threadwise import _ki

pytestmark = pytest.mark.skipif(not _ki.installed(), reason="needs threadwise's SIGINT handler")


class Obj:
    pass


def spin() -> None:
    for _ in range(10_000):  # backward jumps: where a pending interrupt is raised
        pass


def drop(holder: list[object]) -> None:
    """Drop the last reference (its callbacks run here), then run on for up to 5 s.

    The deferred interrupt comes back a moment later (threadwise re-sends it from another
    thread), so the caller must keep running Python code for it to land.
    """
    holder.clear()
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        spin()


def test_ctrl_c_inside_a_finalizer_callback_comes_out_after_it() -> None:
    ran: list[bool] = []

    def callback() -> None:
        _thread.interrupt_main()  # as if Ctrl-C was pressed while the callback ran
        spin()
        ran.append(True)

    holder: list[object] = [Obj()]
    weakref.finalize(holder[0], callback)
    with pytest.raises(KeyboardInterrupt):
        drop(holder)  # before: the interrupt died inside the callback and never came out
    assert ran == [True]  # and the callback itself was not cut short


def test_ctrl_c_inside_del_comes_out_after_it() -> None:
    class Closing:
        def __del__(self) -> None:
            _thread.interrupt_main()
            spin()

    with pytest.raises(KeyboardInterrupt):
        drop([Closing()])


def test_ctrl_c_inside_a_weakset_removal_is_deferred() -> None:
    """threading keeps every Thread in a WeakSet: its callback runs in whichever thread drops
    the last reference to a finished thread, often the main thread in a group's exit."""
    captured: list[FrameType] = []
    code = weakref.WeakSet()._remove.__code__  # type: ignore[attr-defined]

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code is code:
            captured.append(frame)

    ws: weakref.WeakSet[Obj] = weakref.WeakSet()
    holder: list[Obj] = [Obj()]
    ws.add(holder[0])
    sys.setprofile(profile)
    try:
        holder.clear()
    finally:
        sys.setprofile(None)
    assert captured
    assert _ki.in_unraisable_callback(captured[0])
    with pytest.raises(KeyboardInterrupt):
        defer_then_spin(captured[0])


def defer_then_spin(frame: FrameType) -> None:
    _ki._handler(signal.SIGINT, frame)  # deferred: returns, and re-sends the interrupt...
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        spin()  # ...which comes out here, a moment later


def test_the_handler_still_raises_at_once_in_plain_code() -> None:
    assert not _ki.in_unraisable_callback(sys._getframe())
    with pytest.raises(KeyboardInterrupt):
        _ki._handler(signal.SIGINT, sys._getframe())
