"""Tests for ``tw.Thread``: a ``threading.Thread`` that keeps run()'s result and exception."""

from __future__ import annotations

import concurrent.futures
import contextvars
import gc
import subprocess
import sys
import textwrap
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import pytest

import threadwise as tw

WAIT = 10.0


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.001)


def state_of(thread: tw.Thread) -> tw.State:
    """Read the state through a call, so a type checker does not narrow it between reads."""
    return thread.state


def run_and_join(thread: threading.Thread) -> None:
    thread.start()
    thread.join(WAIT)
    assert not thread.is_alive()


# -- target= -------------------------------------------------------------------------------------


def test_is_a_threading_thread() -> None:
    thread = tw.Thread(target=lambda: None)
    assert isinstance(thread, threading.Thread)
    run_and_join(thread)


def test_target_with_args_and_kwargs_result() -> None:
    def combine(a: int, b: int, *, sep: str) -> str:
        return f"{a}{sep}{b}"

    thread = tw.Thread(target=combine, args=(1, 2), kwargs={"sep": "+"})
    run_and_join(thread)
    assert thread.result() == "1+2"
    assert thread.exception() is None
    assert thread.state is tw.State.DONE
    assert not thread.cancelled()


def test_no_target_returns_none() -> None:
    thread = tw.Thread()
    run_and_join(thread)
    assert thread.result() is None
    assert thread.state is tw.State.DONE


def test_target_exception_reraised_with_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    hook_calls: list[Any] = []
    monkeypatch.setattr(threading, "excepthook", hook_calls.append)

    def target_that_fails() -> None:
        raise ZeroDivisionError("target failed")

    thread = tw.Thread(target=target_that_fails)
    run_and_join(thread)
    with pytest.raises(ZeroDivisionError, match="target failed") as excinfo:
        thread.result()
    names = [f.name for f in traceback.extract_tb(excinfo.value.__traceback__)]
    assert "target_that_fails" in names, names
    assert thread.state is tw.State.FAILED
    assert thread.exception() is excinfo.value
    # The exception is kept for result(), not printed by threading's excepthook.
    assert hook_calls == []


def test_result_timeout_then_value() -> None:
    gate = tw.Event()
    thread = tw.Thread(target=lambda: gate.wait() and "released")
    thread.start()
    try:
        with pytest.raises(TimeoutError):
            thread.result(timeout=0.05)
    finally:
        gate.set()
    assert thread.result(timeout=WAIT) == "released"
    thread.join(WAIT)


# -- subclasses overriding run ---------------------------------------------------------------------


class Answer(tw.Thread):
    def run(self) -> int:  # type: ignore[override]
        return 42


class Broken(tw.Thread):
    def run(self) -> None:
        raise ArithmeticError("broken run")


def test_subclass_run_return_value() -> None:
    thread = Answer()
    run_and_join(thread)
    assert thread.result() == 42
    assert thread.state is tw.State.DONE


def test_subclass_run_raises_reraised_with_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    hook_calls: list[Any] = []
    monkeypatch.setattr(threading, "excepthook", hook_calls.append)
    thread = Broken()
    run_and_join(thread)
    with pytest.raises(ArithmeticError, match="broken run") as excinfo:
        thread.result()
    frames = traceback.extract_tb(excinfo.value.__traceback__)
    assert any(f.name == "run" and f.filename == __file__ for f in frames), frames
    assert frames[-1].name == "run"
    assert thread.state is tw.State.FAILED
    assert isinstance(thread.exception(), ArithmeticError)
    assert hook_calls == []


def test_super_run_inside_override_still_works() -> None:
    class Wrapping(tw.Thread):
        def run(self) -> tuple[str, Any]:  # type: ignore[override]
            return ("wrapped", super().run())

    thread = Wrapping(target=lambda x: x * 2, args=(21,))
    run_and_join(thread)
    assert thread.result() == ("wrapped", 42)
    assert thread.state is tw.State.DONE


def test_override_chain_through_two_subclasses() -> None:
    class Base(tw.Thread):
        def run(self) -> list[str]:  # type: ignore[override]
            return ["base"]

    class Derived(Base):
        def run(self) -> list[str]:  # type: ignore[override]
            return [*super().run(), "derived"]

    thread = Derived()
    run_and_join(thread)
    assert thread.result() == ["base", "derived"]


def test_subclass_with_own_init() -> None:
    class Scaled(tw.Thread):
        def __init__(self, factor: int) -> None:
            super().__init__(name=f"scaled-{factor}")
            self.factor = factor

        def run(self) -> int:  # type: ignore[override]
            return self.factor * 10

    thread = Scaled(3)
    run_and_join(thread)
    assert thread.result() == 30
    assert thread.name == "scaled-3"


# -- lifecycle and misuse --------------------------------------------------------------------------


def test_states_created_running_blocked_done() -> None:
    reached = threading.Event()
    proceed = threading.Event()
    gate = tw.Event(name="thread-gate")

    def target() -> str:
        reached.set()
        proceed.wait(WAIT)
        gate.wait()
        return "ok"

    thread = tw.Thread(target=target)
    assert state_of(thread) is tw.State.CREATED
    assert thread.blocked_on is None
    thread.start()
    try:
        assert reached.wait(WAIT)
        assert state_of(thread) is tw.State.RUNNING
        proceed.set()
        wait_until(lambda: thread.state is tw.State.BLOCKED, "the thread to block")
        assert thread.blocked_on == "Event.wait on Event 'thread-gate'"
    finally:
        proceed.set()
        gate.set()
    assert thread.result(timeout=WAIT) == "ok"
    assert thread.state is tw.State.DONE
    thread.join(WAIT)


def test_start_twice_raises() -> None:
    thread = tw.Thread(target=lambda: 1)
    run_and_join(thread)
    with pytest.raises(RuntimeError):
        thread.start()
    assert thread.result() == 1  # the failed second start did not disturb the result


def test_result_before_start_raises() -> None:
    thread = tw.Thread(target=lambda: 1)
    with pytest.raises(RuntimeError, match="before it is started"):
        thread.result()
    with pytest.raises(RuntimeError, match="before it is started"):
        thread.exception()
    with pytest.raises(RuntimeError, match="before it is started"):
        thread.result(timeout=0)
    run_and_join(thread)
    assert thread.result() == 1


def test_cancel_before_start_never_runs() -> None:
    ran: list[bool] = []
    thread = tw.Thread(target=lambda: ran.append(True))
    assert thread.cancel() is True
    assert thread.cancelled()
    assert thread.state is tw.State.CANCELLED
    run_and_join(thread)
    assert ran == []
    assert thread.state is tw.State.CANCELLED
    with pytest.raises(tw.TaskCancelled) as excinfo:
        thread.result()
    assert isinstance(excinfo.value, concurrent.futures.CancelledError)
    assert thread.cancel() is False


def test_cancel_running_thread_blocked_in_wait() -> None:
    never = tw.Event()
    thread = tw.Thread(target=never.wait)
    thread.start()
    wait_until(lambda: thread.state is tw.State.BLOCKED, "the thread to block")
    assert thread.cancel() is True
    thread.join(WAIT)
    assert not thread.is_alive()
    assert thread.state is tw.State.CANCELLED
    assert thread.cancelled()
    with pytest.raises(tw.TaskCancelled):
        thread.result()
    assert thread.cancel() is False


def test_cancel_finished_thread_returns_false() -> None:
    thread = Answer()
    run_and_join(thread)
    assert thread.cancel() is False
    assert thread.result() == 42


def test_name_is_kept() -> None:
    seen: list[str] = []
    thread = tw.Thread(target=lambda: seen.append(threading.current_thread().name), name="loader")
    assert thread.name == "loader"
    run_and_join(thread)
    assert thread.name == "loader"
    assert seen == ["loader"]


def test_name_set_after_construction_is_used() -> None:
    thread = tw.Thread(target=lambda: threading.current_thread().name)
    thread.name = "renamed"
    run_and_join(thread)
    assert thread.result() == "renamed"


@pytest.mark.parametrize("daemon", [True, False])
def test_daemon_flag_passes_through(daemon: bool) -> None:
    seen: list[bool] = []
    thread = tw.Thread(target=lambda: seen.append(threading.current_thread().daemon), daemon=daemon)
    assert thread.daemon is daemon
    run_and_join(thread)
    assert seen == [daemon]


def test_daemon_default_inherits_from_creator() -> None:
    thread = tw.Thread(target=lambda: None)
    assert thread.daemon is threading.current_thread().daemon
    run_and_join(thread)


def test_ident_matches_inside() -> None:
    thread = tw.Thread(target=threading.get_ident)
    run_and_join(thread)
    assert thread.result() == thread.ident


# -- context variables ---------------------------------------------------------------------------

tenant: contextvars.ContextVar[str] = contextvars.ContextVar("tenant", default="none")


def test_contextvars_flow_into_thread_and_do_not_leak_back() -> None:
    token = tenant.set("acme")
    try:

        def read_and_change() -> tuple[str, str]:
            before = tenant.get()
            tenant.set("changed")
            return before, tenant.get()

        thread = tw.Thread(target=read_and_change)
        run_and_join(thread)
        assert thread.result() == ("acme", "changed")
        assert tenant.get() == "acme"
    finally:
        tenant.reset(token)


def test_contextvars_flow_into_subclass_run() -> None:
    class Reader(tw.Thread):
        def run(self) -> str:  # type: ignore[override]
            value = tenant.get()
            tenant.set("inner")
            return value

    token = tenant.set("globex")
    try:
        thread = Reader()
        run_and_join(thread)
        assert thread.result() == "globex"
        assert tenant.get() == "globex"
    finally:
        tenant.reset(token)


# -- stdlib behaviours (issue: tw.Thread as a true drop-in) -----------------------------------


def run_script(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_sys_exit_in_thread_is_a_quiet_exit() -> None:
    # The stdlib ends a thread quietly on SystemExit: nothing is logged or printed, at once,
    # when the Thread is collected, or at interpreter exit.
    proc = run_script(
        """
        import gc, sys, threading
        import threadwise as tw
        hooked = []
        threading.excepthook = hooked.append
        kept = tw.Thread(target=sys.exit, args=(3,))
        kept.start(); kept.join()
        dropped = tw.Thread(target=sys.exit, args=(4,))
        dropped.start(); dropped.join()
        del dropped
        gc.collect()
        assert hooked == [], hooked
        assert kept.state is tw.State.FAILED
        assert isinstance(kept.exception(), SystemExit) and kept.exception().code == 3
        threading.excepthook = threading.__excepthook__
        again = tw.Thread(target=sys.exit)
        again.start(); again.join()
        print("ok")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ok\n"
    assert proc.stderr == ""


def test_direct_run_calls_repeat_and_a_later_start_still_runs() -> None:
    class Counting(tw.Thread):
        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def run(self) -> int:  # type: ignore[override]
            self.calls += 1
            return self.calls

    thread = Counting()
    assert thread.run() == 1
    assert thread.run() == 2
    assert state_of(thread) is tw.State.CREATED  # a direct call is a plain method call
    run_and_join(thread)
    assert thread.calls == 3
    assert thread.result() == 3
    assert thread.state is tw.State.DONE


class Mixin:
    def run(self) -> int:
        return 7 * 6


def test_run_from_a_mixin_is_tracked() -> None:
    class Mixed(Mixin, tw.Thread):
        pass

    thread = Mixed()
    run_and_join(thread)
    assert thread.result(timeout=WAIT) == 42
    assert thread.state is tw.State.DONE
    assert thread.exception(timeout=WAIT) is None


def test_run_from_a_mixin_that_raises_is_tracked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threading, "excepthook", lambda args: None)

    class Failing:
        def run(self) -> None:
            raise KeyError("from the mixin")

    class Mixed(Failing, tw.Thread):
        pass

    thread = Mixed()
    run_and_join(thread)
    assert thread.state is tw.State.FAILED
    assert isinstance(thread.exception(timeout=WAIT), KeyError)


def test_run_assigned_on_the_instance_is_used() -> None:
    thread = tw.Thread()
    thread.run = lambda: "instance"  # type: ignore[method-assign]
    run_and_join(thread)
    assert thread.result() == "instance"
    assert thread.run() == "instance"  # restored after the thread started


def test_unretrieved_failure_goes_to_threading_excepthook_on_collection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(threading, "excepthook", calls.append)

    def fails() -> None:
        raise LookupError("nobody looks")

    thread = tw.Thread(target=fails, name="forgotten")
    run_and_join(thread)
    assert calls == []  # kept for result() while someone might still ask
    del thread
    gc.collect()
    assert len(calls) == 1
    args = calls[0]
    assert args.exc_type is LookupError
    assert str(args.exc_value) == "nobody looks"
    assert args.thread is not None
    assert args.thread.name == "forgotten"
    assert any(f.name == "fails" for f in traceback.extract_tb(args.exc_traceback))


def test_retrieved_failure_never_reaches_excepthook(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(threading, "excepthook", calls.append)
    thread = Broken()
    run_and_join(thread)
    assert isinstance(thread.exception(), ArithmeticError)
    del thread
    gc.collect()
    assert calls == []


def test_a_failing_excepthook_falls_back_to_sys_excepthook(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[type[BaseException]] = []

    def bad_hook(args: Any) -> None:
        raise ValueError("hook broke")

    monkeypatch.setattr(threading, "excepthook", bad_hook)
    monkeypatch.setattr(sys, "excepthook", lambda t, v, tb: seen.append(t))
    thread = Broken()
    run_and_join(thread)
    del thread
    gc.collect()
    assert seen == [ValueError]


def test_unretrieved_failure_goes_to_excepthook_at_exit() -> None:
    proc = run_script(
        """
        import threading
        import threadwise as tw
        def hook(args):
            print("hook:", args.exc_type.__name__, args.thread.name)
        threading.excepthook = hook
        def fails():
            raise OSError("lost")
        kept = tw.Thread(target=fails, name="kept")
        kept.start(); kept.join()
        print("exiting")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "exiting\nhook: OSError kept\n"


def test_result_inside_its_own_run_raises() -> None:
    class SelfWaiting(tw.Thread):
        def run(self) -> str:  # type: ignore[override]
            try:
                self.result(timeout=WAIT)
            except RuntimeError as exc:
                return str(exc)
            return "no error"

    thread = SelfWaiting()
    run_and_join(thread)
    assert "cannot wait for itself" in thread.result()


def test_run_called_from_another_thread_before_the_thread_gets_there_is_plain() -> None:
    # start() routes the new thread's first run() call; any other caller gets a plain call.
    from threadwise._task import _MISSING, _bootstrap_run

    class Plain(tw.Thread):
        def run(self) -> str:  # type: ignore[override]
            return "plain"

    thread = Plain()
    assert _bootstrap_run(thread, _MISSING) == "plain"
    assert _bootstrap_run(thread, lambda: "instance") == "instance"
    assert state_of(thread) is tw.State.CREATED
    run_and_join(thread)
    assert thread.result() == "plain"
