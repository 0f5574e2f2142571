"""Ctrl-C works the first time: SIGINT sent to a real process running threadwise tasks."""

from __future__ import annotations

import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import NamedTuple

import pytest

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="sends SIGINT to a child process (POSIX only)"
)

STARTUP = 30.0  # generous: interpreter start and import, outside every measurement


class Outcome(NamedTuple):
    returncode: int
    stdout: str
    stderr: str
    seconds: float  # from sending SIGINT to the process having exited


def interrupt(tmp_path: Path, script: str) -> Outcome:
    """Run ``script``, wait for its "ready" line, send SIGINT and time the exit."""
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(script))
    proc = subprocess.Popen(
        [sys.executable, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        readable, _, _ = select.select([proc.stdout], [], [], STARTUP)
        line = proc.stdout.readline() if readable else ""
        if line != "ready\n":
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"script did not get ready: {line!r}{out}\n{err}")
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=STARTUP)
        seconds = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return Outcome(proc.returncode, out, err, seconds)


def assert_died_of_keyboard_interrupt(outcome: Outcome) -> None:
    assert "Traceback" in outcome.stderr
    assert "KeyboardInterrupt" in outcome.stderr
    # An uncaught KeyboardInterrupt makes CPython exit by re-raising SIGINT on itself.
    assert outcome.returncode == -signal.SIGINT


@pytest.mark.parametrize("max_workers", [None, 4])
@pytest.mark.parametrize("where", ["body", "exit"])
def test_group_of_sleeping_tasks_exits_within_a_second(
    tmp_path: Path, where: str, max_workers: int | None
) -> None:
    """8 tasks in tw.sleep(60); the main thread in the block's body or in its exit.

    With ``max_workers=4`` half of the tasks are still queued: they are dropped.
    """
    outcome = interrupt(
        tmp_path,
        f"""
        import threading
        import time

        import threadwise as tw

        try:
            with tw.TaskGroup(max_workers={max_workers!r}) as g:
                tasks = [g.spawn(tw.sleep, 60) for _ in range(8)]
                running = {max_workers or 8}
                while sum(t.state is tw.State.BLOCKED for t in tasks) < running:
                    time.sleep(0.001)
                print("ready", flush=True)
                if {where!r} == "body":
                    tw.sleep(60)
        finally:
            print("states", sorted({{t.state.name for t in tasks}}), flush=True)
            from threadwise.testing import busy_threads  # idle cached threads are not busy
            print("threads", len(busy_threads()), flush=True)
        """,
    )
    assert outcome.seconds < 1.0, outcome
    assert_died_of_keyboard_interrupt(outcome)
    lines = outcome.stdout.splitlines()
    assert "states ['CANCELLED']" in lines
    assert "threads 1" in lines  # no task thread outlives the group


def test_group_with_a_stuck_task_exits_after_grace(tmp_path: Path) -> None:
    grace = 0.5
    outcome = interrupt(
        tmp_path,
        f"""
        import threading
        import time

        import threadwise as tw

        started = threading.Event()

        def stuck_in_foreign_code():
            started.set()
            time.sleep(60)  # cannot be cancelled

        with tw.TaskGroup(grace={grace}) as g:
            g.spawn(tw.sleep, 60)
            g.spawn(stuck_in_foreign_code)
            started.wait()
            print("ready", flush=True)
        """,
    )
    assert grace - 0.05 <= outcome.seconds < grace + 1.0, outcome
    assert_died_of_keyboard_interrupt(outcome)
    abandoned = [line for line in outcome.stderr.splitlines() if "abandoned" in line]
    assert len(abandoned) == 1, outcome.stderr
    assert "stuck_in_foreign_code" in abandoned[0]
    assert "'sleep-" not in abandoned[0]  # the task that could be cancelled was not abandoned


def test_bare_spawn_waited_on_exits_promptly(tmp_path: Path) -> None:
    outcome = interrupt(
        tmp_path,
        """
        import time

        import threadwise as tw

        def sleeper():
            try:
                tw.sleep(60)
            except tw.Cancelled:
                print("task cancelled", flush=True)
                raise

        task = tw.spawn(sleeper)
        while task.state is not tw.State.BLOCKED:
            time.sleep(0.001)
        print("ready", flush=True)
        task.result()
        """,
    )
    assert outcome.seconds < 2.0, outcome
    assert_died_of_keyboard_interrupt(outcome)
    # The exit hook cancelled the task (rather than leaving it behind as a daemon thread).
    assert outcome.stdout.splitlines() == ["task cancelled"]


def test_ctrl_c_while_the_group_joins_its_threads_leaves_no_scope(tmp_path: Path) -> None:
    # The task is done; its thread is still closing a ThreadLocal when the group's exit
    # joins it. Before: the Ctrl-C escaped from that join with the group's scope still on
    # the thread's stack, so a later g.cancel() cancelled top-level waits.
    outcome = interrupt(
        tmp_path,
        """
        import threading
        import threadwise as tw

        import time

        release = threading.Event()
        spawned = threading.Event()

        def close(_):
            # Only once the main thread is in the group's join: its spawn() can still be
            # inside Thread.start when the new thread runs this, and a Ctrl-C there makes the
            # group wait its grace for the threads (right, but not what this test is about).
            spawned.wait()
            time.sleep(0.3)
            print("ready", flush=True)
            release.wait(30)

        local = tw.ThreadLocal(object, close=close)
        try:
            with tw.TaskGroup(grace=30) as g:
                g.spawn(local.get)
                spawned.set()
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        print("scope", tw.current_scope(), flush=True)
        g.cancel()
        tw.sleep(0.01)
        print("sleep ok", flush=True)
        release.set()
        """,
    )
    assert outcome.returncode == 0, outcome
    assert outcome.stdout.splitlines() == ["interrupted", "scope None", "sleep ok"], outcome


def test_ctrl_c_taken_by_another_thread_stops_the_group_join(tmp_path: Path) -> None:
    # The SIGINT goes to the thread the group joins, not to the main thread (a signal sent to
    # the process may land on any thread): Python then only flags it for the main thread.
    # Before: the main thread slept in one lock wait for the whole grace period (60 s here).
    path = tmp_path / "script.py"
    path.write_text(
        textwrap.dedent(
            """
            import signal
            import threading
            import time
            import threadwise as tw

            release = threading.Event()
            spawned = threading.Event()

            def close(_):
                spawned.wait()  # the main thread has left spawn() (see the test above)
                time.sleep(0.3)  # and is in the group's join by now
                signal.pthread_kill(threading.get_ident(), signal.SIGINT)
                release.wait(60)

            local = tw.ThreadLocal(object, close=close)
            try:
                with tw.TaskGroup(grace=60) as g:
                    g.spawn(local.get)
                    spawned.set()
            except KeyboardInterrupt:
                print("interrupted", flush=True)
            print("scope", tw.current_scope(), flush=True)
            release.set()
            """
        )
    )
    outcome = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=STARTUP
    )
    assert outcome.returncode == 0, outcome
    assert outcome.stdout.splitlines() == ["interrupted", "scope None"], outcome


def test_ctrl_c_taken_by_another_thread_stops_the_pipeline_join(tmp_path: Path) -> None:
    # The same with a Pipeline: its workers are threads of their own, joined at shutdown
    # within the grace period. One is still closing its ThreadLocal (a blocking close hook)
    # when the SIGINT lands on it. Before: the main thread slept in one Thread.join for the
    # whole grace (60 s here), so the subprocess ran into its time limit.
    path = tmp_path / "script.py"
    path.write_text(
        textwrap.dedent(
            """
            import signal
            import threading
            import time
            import threadwise as tw

            release = threading.Event()

            def close(_):
                time.sleep(0.3)  # the main thread is in the workers' join by now
                signal.pthread_kill(threading.get_ident(), signal.SIGINT)
                release.wait(60)

            local = tw.ThreadLocal(object, close=close)

            def touch(item):
                local.get()
                return item

            try:
                print(sorted(tw.Pipeline(range(1)).map(touch, workers=1).run(grace=60)))
            except KeyboardInterrupt:
                print("interrupted", flush=True)
            release.set()
            """
        )
    )
    outcome = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=STARTUP
    )
    assert outcome.returncode == 0, outcome
    assert outcome.stdout.splitlines()[-1] == "interrupted", outcome


_RANDOM_CTRL_C = """
import _thread, random, sys, threading, time
import threadwise as tw
from threadwise._state import current_state
from threadwise.testing import busy_threads

seed, trials = int(sys.argv[1]), int(sys.argv[2])
rng = random.Random(seed)
baseline = {t.ident for t in threading.enumerate()}
failures = []
interrupted_in = {"enter/exit": 0, "after": 0}

def work():
    tw.sleep(0.002)

for trial in range(trials):
    delay = rng.uniform(0.0, 0.006)
    max_workers = rng.choice([None, 2])
    fired = threading.Event()

    def fire():
        _thread.interrupt_main()
        fired.set()

    timer = threading.Timer(delay, fire)
    where = "enter/exit"
    try:
        timer.start()
        with tw.TaskGroup(max_workers=max_workers, grace=2.0) as g:
            for _ in range(3):
                g.spawn(work)
        where = "after"
        while True:  # the interrupt has not come yet: let it land here
            time.sleep(0.0005)
    except KeyboardInterrupt:
        interrupted_in[where] += 1
    timer.join()
    if current_state().scope is not None:
        failures.append((trial, delay, "scope stack not at top level"))
        current_state().scope = None
    end = time.monotonic() + 5
    while time.monotonic() < end:
        # Idle workers parked in the thread cache run nothing and retire by themselves:
        # not leaks, and waiting out their idle timeout would make every trial slow.
        left = [t.name for t in busy_threads() if t.ident not in baseline]
        if not left:
            break
        time.sleep(0.002)
    else:
        failures.append((trial, delay, "threads left", left))

print("trials", trials, "failures", len(failures), interrupted_in, flush=True)
for failure in failures[:10]:
    print(failure, flush=True)
"""


def test_ctrl_c_at_random_instants_in_group_enter_and_exit() -> None:
    """A short seeded run of Ctrl-C (``_thread.interrupt_main``) at random instants around a
    TaskGroup's enter, spawns and exit: no thread is left, the scope stack is at top level."""
    trials = 60
    proc = subprocess.run(
        [sys.executable, "-c", _RANDOM_CTRL_C, "20261202", str(trials)],
        capture_output=True,
        text=True,
        timeout=STARTUP + trials * 6,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith(f"trials {trials} failures 0 "), proc.stdout


def test_ctrl_c_twice_during_the_exit_wait_prints_no_exception_ignored(tmp_path: Path) -> None:
    """At exit threadwise waits for running tasks; the first Ctrl-C there cancels them and
    waits the grace, a second one escaped the exit hook: Python printed "Exception ignored"
    with a traceback into threadwise."""
    path = tmp_path / "script.py"
    path.write_text(
        textwrap.dedent(
            """
            import time
            import threadwise as tw
            tw.spawn(time.sleep, 3)  # not cancellable: the exit waits, then the grace
            print("ready", flush=True)
            """
        )
    )
    proc = subprocess.Popen(
        [sys.executable, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        readable, _, _ = select.select([proc.stdout], [], [], STARTUP)
        assert readable, "the script did not get ready"
        assert proc.stdout.readline() == "ready\n"
        time.sleep(0.2)  # the main thread has ended: the exit hook waits for the task
        proc.send_signal(signal.SIGINT)  # cancels the task, waits up to the grace (1 s)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)  # stops that wait
        _, err = proc.communicate(timeout=STARTUP)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "Exception ignored" not in err, err
    assert "Traceback" not in err, err
