"""Services: background jobs that stop between iterations, restart with backoff after failures,
and finish their current iteration when the program exits."""

from __future__ import annotations

import itertools
import logging
import math
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import threadwise as tw
from threadwise._service import RESTART_HISTORY, _running

PROMPT = 5.0


def wait_until(predicate: Callable[[], bool], timeout: float = PROMPT) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"condition not reached within {timeout} s")
        time.sleep(0.001)


def service_threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


# -- running and stopping ----------------------------------------------------------------------


def test_without_interval_fn_runs_once() -> None:
    calls: list[int] = []
    svc = tw.Service(calls.append, 7, name="once").start()
    wait_until(lambda: not svc.running)
    assert calls == [7]
    assert svc.iterations == 1
    assert svc.failures == 0
    assert svc.stop(timeout=PROMPT) is True
    assert service_threads("once") == []


def test_with_interval_fn_runs_repeatedly_in_a_named_thread() -> None:
    seen: list[str] = []
    svc = tw.Service(
        lambda: seen.append(threading.current_thread().name), interval=0.01, name="heartbeat"
    )
    assert repr(svc) == "<threadwise.Service 'heartbeat' stopped>"
    svc.start()
    assert repr(svc) == "<threadwise.Service 'heartbeat' running>"
    wait_until(lambda: len(seen) >= 5)
    assert svc.stop(timeout=PROMPT) is True
    assert not svc.running
    assert set(seen) == {"heartbeat"}
    assert svc.iterations == len(seen)
    time.sleep(0.05)
    assert svc.iterations == len(seen)  # nothing runs after stop()


def test_stop_lets_the_current_iteration_finish() -> None:
    events: list[str] = []
    in_iteration = threading.Event()

    def step() -> None:
        events.append("start")
        in_iteration.set()
        tw.sleep(0.2)  # cancellable, but stop() does not cancel a running iteration in time
        events.append("end")

    svc = tw.Service(step, interval=30.0, name="stepper").start()
    assert in_iteration.wait(PROMPT)
    started = time.monotonic()
    assert svc.stop(timeout=PROMPT) is True
    took = time.monotonic() - started
    assert events == ["start", "end"]  # finished, and no second iteration
    assert svc.iterations == 1
    assert took < 2.0  # did not wait for the 30 s interval


def test_stop_between_iterations_is_prompt() -> None:
    calls = [0]

    def tick() -> None:
        calls[0] += 1

    svc = tw.Service(tick, interval=60.0, name="idle").start()
    wait_until(lambda: calls[0] == 1)
    wait_until(lambda: svc._task is not None and svc._task.state is tw.State.BLOCKED)
    started = time.monotonic()
    assert svc.stop(timeout=PROMPT) is True
    assert time.monotonic() - started < 1.0
    assert calls == [1]


def test_stop_cancels_an_iteration_that_outlives_the_timeout() -> None:
    reached_end: list[bool] = []

    def long_step() -> None:
        tw.sleep(30)
        reached_end.append(True)

    svc = tw.Service(long_step, name="long").start()
    wait_until(lambda: svc._task is not None and svc._task.state is tw.State.BLOCKED)
    started = time.monotonic()
    assert svc.stop(timeout=0.1) is True
    assert time.monotonic() - started < 2.0
    assert reached_end == []
    assert svc.iterations == 0
    assert svc.failures == 0  # being cancelled by stop() is not a failure


def test_an_iteration_stuck_in_foreign_code_is_abandoned_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()  # a stdlib wait: threadwise cannot interrupt it
    inside = threading.Event()

    def stuck() -> None:
        inside.set()
        release.wait()

    caplog.set_level(logging.WARNING, logger="threadwise")
    svc = tw.Service(stuck, name="stuck").start()
    assert inside.wait(PROMPT)
    try:
        assert svc.stop(timeout=0.1) is False
        messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("service 'stuck' did not stop" in m and "abandoned" in m for m in messages)
    finally:
        release.set()
    wait_until(lambda: not service_threads("stuck"))


def test_as_a_context_manager_it_stops_on_exit() -> None:
    calls = [0]

    def tick() -> None:
        calls[0] += 1

    with tw.Service(tick, interval=0.01, name="ctx") as svc:
        wait_until(lambda: calls[0] >= 3)
        assert svc.running
    assert not svc.running
    assert service_threads("ctx") == []


def test_stop_before_start_and_twice_is_harmless() -> None:
    svc = tw.Service(lambda: None)
    assert svc.stop() is True
    svc.start()
    assert svc.stop(timeout=PROMPT) is True
    assert svc.stop(timeout=PROMPT) is True


def test_a_service_starts_only_once() -> None:
    svc = tw.Service(lambda: None, name="one-shot").start()
    try:
        with pytest.raises(RuntimeError, match="one-shot"):
            svc.start()
    finally:
        svc.stop(timeout=PROMPT)


def test_default_names_are_unique() -> None:
    a, b = tw.Service(lambda: None), tw.Service(lambda: None)
    assert a.name.startswith("service-")
    assert b.name.startswith("service-")
    assert a.name != b.name


# -- failures and restarts ---------------------------------------------------------------------


def test_restart_never_stops_after_one_failure_and_logs_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = [0]
    error = ValueError("disk full")

    def broken() -> None:
        calls[0] += 1
        raise error

    caplog.set_level(logging.ERROR, logger="threadwise")
    svc = tw.Service(broken, interval=0.01, name="broken").start()
    wait_until(lambda: not svc.running)
    time.sleep(0.05)
    assert calls == [1]
    assert svc.failures == 1
    assert svc.iterations == 0
    assert svc.last_exception is error
    assert svc.restart_delays == []
    svc.stop(timeout=PROMPT)

    records = [r for r in caplog.records if r.name == "threadwise"]
    assert len(records) == 1
    record = records[0]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "service 'broken' failed"
    assert record.exc_info is not None
    assert record.exc_info[1] is error
    assert "ValueError: disk full" in caplog.text  # the traceback is in the log
    assert "in broken" in caplog.text


def test_restart_on_failure_backs_off_exponentially_up_to_the_cap(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stamps: list[float] = []

    def flaky() -> None:
        stamps.append(time.monotonic())
        raise ConnectionError("upstream down")

    caplog.set_level(logging.ERROR, logger="threadwise")
    svc = tw.Service(flaky, name="flaky", restart="on-failure", backoff=0.02, max_backoff=0.16)
    svc.start()
    wait_until(lambda: svc.failures >= 7)
    assert svc.stop(timeout=PROMPT) is True

    delays = svc.restart_delays
    assert delays[:6] == pytest.approx([0.02, 0.04, 0.08, 0.16, 0.16, 0.16])
    growing = delays[:4]
    assert all(later > earlier for earlier, later in itertools.pairwise(growing))
    assert all(
        later == pytest.approx(2 * earlier) for earlier, later in itertools.pairwise(growing)
    )
    assert max(delays) == pytest.approx(0.16)
    # The waits really happened between the attempts.
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    for gap, delay in zip(gaps, delays, strict=False):
        assert gap >= delay * 0.9
    assert svc.failures == len(stamps)
    assert isinstance(svc.last_exception, ConnectionError)
    assert sum(r.getMessage() == "service 'flaky' failed" for r in caplog.records) == svc.failures


def test_restart_on_failure_then_success_ends_a_run_once_service() -> None:
    attempts = [0]

    def settles() -> str:
        attempts[0] += 1
        if attempts[0] < 3:
            raise OSError(f"attempt {attempts[0]}")
        return "ok"

    svc = tw.Service(settles, name="settles", restart="on-failure", backoff=0.01).start()
    wait_until(lambda: not svc.running)
    assert attempts == [3]
    assert svc.failures == 2
    assert svc.iterations == 1
    assert svc.restart_delays == pytest.approx([0.01, 0.02])
    svc.stop(timeout=PROMPT)


def test_stop_during_a_backoff_wait_is_prompt() -> None:
    def always_fails() -> None:
        raise RuntimeError("nope")

    svc = tw.Service(always_fails, name="backing-off", restart="on-failure", backoff=60.0)
    svc.start()
    wait_until(
        lambda: svc.failures == 1 and svc._task is not None and svc._task.state is tw.State.BLOCKED
    )
    started = time.monotonic()
    assert svc.stop(timeout=PROMPT) is True
    assert time.monotonic() - started < 1.0
    assert svc.restart_delays == [60.0]


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"interval": -1}, ValueError, "interval"),
        ({"interval": "1"}, TypeError, "interval"),
        ({"restart": "sometimes"}, ValueError, "restart.*'sometimes'"),
        ({"grace": -1}, ValueError, "grace"),
        ({"backoff": -0.5}, ValueError, "backoff"),
        ({"max_backoff": float("nan")}, ValueError, "max_backoff"),
        ({"name": 3}, TypeError, "name"),
    ],
)
def test_bad_arguments_are_rejected(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        tw.Service(lambda: None, **kwargs)


def test_fn_must_be_callable() -> None:
    with pytest.raises(TypeError, match="fn must be callable"):
        tw.Service("not a function")  # type: ignore[arg-type]


# -- at interpreter exit -----------------------------------------------------------------------

EXIT_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import threadwise as tw

    path, grace, steps = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    in_iteration = tw.Event()

    def write_report():
        with open(path, "w", encoding="utf-8") as f:
            in_iteration.set()
            for i in range(steps):
                f.write(f"line {i}\\n")
                f.flush()
                time.sleep(0.1)  # not cancellable: only finishing the iteration helps
            f.write("end\\n")

    tw.Service(write_report, interval=10.0, name="reporter", grace=grace).start()
    in_iteration.wait()
    print("main returns", flush=True)
    """
)


def _run_exit_script(
    tmp_path: Path, grace: float, steps: int
) -> tuple[subprocess.CompletedProcess[str], Path]:
    script = tmp_path / "exit_service.py"
    script.write_text(EXIT_SCRIPT, encoding="utf-8")
    out = tmp_path / "report.txt"
    proc = subprocess.run(
        [sys.executable, str(script), str(out), str(grace), str(steps)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return proc, out


def test_a_service_writing_a_file_at_exit_completes_its_iteration(tmp_path: Path) -> None:
    started = time.monotonic()
    proc, out = _run_exit_script(tmp_path, grace=5.0, steps=5)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "main returns\n"
    # The main thread returned in the middle of the iteration; the file is still complete...
    assert out.read_text(encoding="utf-8") == "".join(f"line {i}\n" for i in range(5)) + "end\n"
    # ...with no warning, and without waiting for the next interval (10 s).
    assert proc.stderr == ""
    assert time.monotonic() - started < 8.0


def test_a_service_outliving_its_grace_at_exit_is_abandoned_with_a_warning(
    tmp_path: Path,
) -> None:
    # 3 s of uncancellable work against 0.05 s of grace (plus the short wait after cancel).
    proc, out = _run_exit_script(tmp_path, grace=0.05, steps=30)
    assert proc.returncode == 0
    assert "service 'reporter' did not stop" in proc.stderr
    assert "'reporter'" in proc.stderr
    assert "abandoned" in proc.stderr
    assert not out.read_text(encoding="utf-8").endswith("end\n")  # it really was cut short


# -- stop() from inside, infinite backoff, bounded history (issue 14 #7 #10) -------------------


def test_stop_called_from_inside_fn_returns_at_once_and_ends_the_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    box: list[tw.Service] = []
    ready = threading.Event()
    returned: list[bool] = []

    def fn() -> None:
        assert ready.wait(PROMPT)
        # With a timeout the wait for itself used to end in "abandoned"; without, it hung.
        returned.append(box[0].stop(timeout=0.5))
        returned.append(box[0].stop())

    caplog.set_level(logging.WARNING, logger="threadwise")
    svc = tw.Service(fn, interval=0.01, name="self-stopper").start()
    box.append(svc)
    ready.set()
    wait_until(lambda: not svc.running)
    assert returned == [False, False]  # its thread was still running: it was the caller
    assert svc.iterations == 1  # the loop ended after the iteration that asked
    assert svc.stop(timeout=PROMPT) is True
    assert not [r for r in caplog.records if "abandoned" in r.getMessage()]


def test_infinite_backoff_waits_until_stopped_instead_of_a_hot_loop() -> None:
    calls = [0]

    def broken() -> None:
        calls[0] += 1
        raise RuntimeError("down")

    svc = tw.Service(broken, name="inf-backoff", restart="on-failure", backoff=math.inf)
    assert svc.backoff == math.inf
    svc.start()
    wait_until(
        lambda: svc.failures == 1 and svc._task is not None and svc._task.state is tw.State.BLOCKED
    )
    time.sleep(0.1)
    assert calls == [1]  # inf used to become 0: ~190 k restarts a second
    assert svc.restart_delays == [math.inf]
    assert svc.stop(timeout=PROMPT) is True


def test_infinite_max_backoff_means_no_cap() -> None:
    svc = tw.Service(lambda: None, backoff=0.01, max_backoff=math.inf)
    assert svc.max_backoff == math.inf  # used to become 0: no wait at all after the first


def test_infinite_max_backoff_keeps_doubling() -> None:
    def broken() -> None:
        raise RuntimeError("down")

    svc = tw.Service(
        broken, name="uncapped", restart="on-failure", backoff=0.005, max_backoff=math.inf
    ).start()
    wait_until(lambda: svc.failures >= 5)
    assert svc.stop(timeout=PROMPT) is True
    assert svc.restart_delays[:4] == pytest.approx([0.005, 0.01, 0.02, 0.04])


def test_restart_delays_are_bounded() -> None:
    def broken() -> None:
        raise RuntimeError("down")

    logging.getLogger("threadwise").disabled = True  # thousands of failure logs
    try:
        svc = tw.Service(broken, name="ring", restart="on-failure", backoff=0.0).start()
        wait_until(lambda: svc.failures > 3 * RESTART_HISTORY)
        assert svc.stop(timeout=PROMPT) is True
    finally:
        logging.getLogger("threadwise").disabled = False
    assert svc.failures > 3 * RESTART_HISTORY
    assert len(svc.restart_delays) == RESTART_HISTORY


def test_a_service_that_cannot_start_its_thread_is_not_waited_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_thread(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    svc = tw.Service(lambda: None, name="no-thread")
    monkeypatch.setattr(threading.Thread, "start", no_thread)
    with pytest.raises(RuntimeError, match="can't start new thread"):
        svc.start()
    monkeypatch.undo()
    assert svc not in _running


# -- os.fork() (issue 14 #5) -------------------------------------------------------------------

FORK_SCRIPT = textwrap.dedent(
    """
    import os, sys, time, warnings
    warnings.simplefilter("ignore", DeprecationWarning)  # "fork() in a multi-threaded process"
    import threadwise as tw

    svc = tw.Service(lambda: None, interval=0.01, name="ticker").start()
    time.sleep(0.05)
    pid = os.fork()
    if pid == 0:
        print(f"child running={svc.running} stop={svc.stop(timeout=5)}", flush=True)
        sys.exit(0)  # a normal exit: the at-exit stop of services runs
    started = time.monotonic()
    _, status = os.waitpid(pid, 0)
    print(f"child exit {os.waitstatus_to_exitcode(status)} after {time.monotonic() - started:.2f}")
    print(f"parent running={svc.running} stop={svc.stop(timeout=5)}", flush=True)
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_exits_at_once_without_a_false_abandoned_warning(tmp_path: Path) -> None:
    script = tmp_path / "fork_service.py"
    script.write_text(FORK_SCRIPT, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "child running=False stop=True"
    assert lines[1].startswith("child exit 0 after ")
    # It took 6 s (the 5 s grace and 1 s more) before the at-fork reset; 0.05 s now.
    assert float(lines[1].rsplit(" ", 1)[1]) < 3.0
    assert lines[2] == "parent running=True stop=True"
    assert "abandoned" not in proc.stderr


def test_a_start_interrupted_after_the_thread_began_does_not_leave_it_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_start = threading.Thread.start
    calls = [0]

    def start_then_ctrl_c(self: threading.Thread) -> None:
        real_start(self)  # the thread runs...
        raise KeyboardInterrupt  # ...but Ctrl-C lands before start() returns

    def tick() -> None:
        calls[0] += 1

    monkeypatch.setattr(threading.Thread, "start", start_then_ctrl_c)
    svc = tw.Service(tick, interval=0.001, name="interrupted-start")
    with pytest.raises(KeyboardInterrupt):
        svc.start()
    monkeypatch.undo()
    wait_until(lambda: not service_threads("interrupted-start"))
    assert not svc.running
    assert svc not in _running
