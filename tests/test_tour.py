"""``threadwise tour`` and its lessons: each script prints what it claims to demonstrate.

Every lesson in examples/tour/ runs in a fresh interpreter, as a reader would run it, and must
print its key lines; those lines carry values the script computed, so they only appear when the
behaviour they name happened. The tour command itself (listing, selecting, running lessons
in-process, reporting failures) is tested through ``_tour.run`` and ``_tour.tour``.
"""

from __future__ import annotations

import argparse
import ast
import functools
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from threadwise.cli import _tour

ROOT = Path(__file__).resolve().parent.parent
TOUR = ROOT / "examples" / "tour"
TUTORIAL = ROOT / "docs" / "tutorial.md"

LESSON_FILES = [
    "01_threads_from_functions.py",
    "02_thread_subclass.py",
    "03_arguments.py",
    "04_many_threads.py",
    "05_results.py",
    "06_thread_properties.py",
    "07_lifecycle_states.py",
    "08_exceptions_not_lost.py",
    "09_daemon_vs_service.py",
    "10_thread_local.py",
    "11_producer_consumer.py",
    "12_parallel_downloads.py",
]


@functools.cache
def run_lesson(name: str) -> str:
    path = TOUR / name
    env = {**os.environ, "PYTHONWARNINGS": "error", "PYTHONIOENCODING": "utf-8"}
    proc = subprocess.run(
        [sys.executable, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=path.parent,
        env=env,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{name} exited with {proc.returncode}:\n{output}"
    # Nothing on stderr: no stray traceback from a thread, no warning, no log record.
    assert proc.stderr == "", f"{name} wrote to stderr:\n{proc.stderr}"
    return proc.stdout


def has(out: str, *lines: str) -> None:
    for line in lines:
        assert line in out, f"missing {line!r} in:\n{out}"


def number_after(out: str, pattern: str) -> float:
    match = re.search(pattern, out)
    assert match, f"no match for {pattern!r} in:\n{out}"
    return float(match.group(1))


def list_after(out: str, prefix: str) -> list[Any]:
    match = re.search(re.escape(prefix) + r"\s*(\[.*?\])", out)
    assert match, f"no list after {prefix!r} in:\n{out}"
    value = ast.literal_eval(match.group(1))
    assert isinstance(value, list)
    return value


# -- each lesson -----------------------------------------------------------------------------


def check_01(out: str) -> None:
    has(
        out,
        "threading.Thread: joined, alive=False, but brew's value is lost",
        "spawned task 'brew-1'; the main thread carries on, done()=False",
        "join(timeout=0.05) -> False (still brewing)",
        "result(timeout=0.05) raised TimeoutError: task 'brew-1' did not finish within 0.05 s",
        "result() -> 'coffee ready after 0.4 s'",
        "afterwards: done()=True, state=DONE",
    )


def check_02(out: str) -> None:
    has(
        out,
        "before start(): state=CREATED, alive=False",
        "countdown.result() -> [3, 2, 1]",
        "after join(): state=DONE, alive=False",
        "second start() raised RuntimeError: threads can only be started once",
        "tw.Thread(target=sum).result() -> 6",
        "a failing run(): result() re-raised ValueError: checker found a problem",
        "checker state=FAILED",
    )


def check_03(out: str) -> None:
    has(
        out,
        "positional: Hi, Ada!",
        "keyword:    Hey, Grace!",
        "mixed:      Hello, Alan?",
        "tw.Thread(args=..., kwargs=...): Howdy, Linus!",
        "partial:    Good evening, Barbara!",
        "spawn(greet('Ada')) raised TypeError: fn must be callable, got 'Hello, Ada!'",
        "contextvars: [req-42] handled in another thread",
    )


def check_04(out: str) -> None:
    has(
        out,
        "5 tasks, one thread each: ['file-0', 'file-1', 'file-2', 'file-3', 'file-4']",
        "20 tasks with max_workers=4: 20 done",
        "never more than 4: True",
        "in input order: True",
        "leaked: 0",
    )
    assert 1 <= number_after(out, r"at most (\d+) ran at once") <= 4


def check_05(out: str) -> None:
    has(
        out,
        "1. spawn + result():            [0, 1, 4, 9, 16]",
        "2. tw.Thread subclass, result(): [0, 1, 4, 9, 16]",
    )
    for n in range(5):
        has(out, f"got square({n}) = {n * n}")
    # Completion order depends on timing; every result arrives exactly once either way.
    arrived = list_after(out, "3. tw.Queue, in completion order of n:")
    assert sorted(arrived) == [0, 1, 2, 3, 4]


def check_06(out: str) -> None:
    has(
        out,
        "main thread: name='MainThread'",
        "is main_thread(): True",
        "tw.Thread:   name='indexer'",
        "new in enumerate(): ['crawl-1', 'crawl-2', 'crawl-3']",
        "Task.ident and Task.native_id are the thread's: True",
        "after join(): states=['DONE', 'DONE', 'DONE']",
    )
    assert re.search(r"tw\.Thread: .* daemon=False", out)
    assert re.search(r"inside crawl-1: name='crawl-1' ident=\d+ native_id=\d+ daemon=True", out)
    for n in (1, 2, 3):
        assert re.search(rf"task 'crawl-{n}': ident=\d+ state=BLOCKED", out)


def check_07(out: str) -> None:
    has(
        out,
        "built, not started                 state=CREATED",
        "started, doing its work            state=RUNNING",
        "waiting for the lock main holds    state=BLOCKED"
        "  blocked_on=\"Lock.acquire on Lock 'config' held by MainThread\"",
        "result='config updated'",
        "after result()                     state=DONE",
        "raised an exception                state=FAILED",
        "exception()=ValueError(\"invalid literal for int() with base 10: 'forty-two'\")",
        "waiting for an event               state=BLOCKED"
        "  blocked_on=\"Event.wait on Event 'never set'\"",
        "cancelled while it waited          state=CANCELLED",
        "states seen: CREATED -> RUNNING -> BLOCKED -> DONE -> FAILED -> CANCELLED",
        "all six: True",
    )


def check_08(out: str) -> None:
    has(
        out,
        "from 'Exception in thread loader:' to 'FileNotFoundError: no settings file at app.toml'",
        "join() returned normally and the caller carried on",
        "result() re-raised FileNotFoundError: no settings file at app.toml",
        "the traceback still ends in load_settings()",
        "TaskGroup raised ExceptionGroup: 2 tasks of TaskGroup 'health checks' failed",
        "    - ConnectionError('network unreachable')",
        "    - OSError('disk full')",
        "the slow sibling was CANCELLED",
        "never retrieved, so logged: \"task 'load_settings-",
        'failed and its exception was never retrieved"',
        "with the traceback of FileNotFoundError('no settings file at forgotten.toml')",
    )


def check_09(out: str) -> None:
    # The daemon thread was killed half-way through a record: its second half never came.
    match = re.search(
        r"killed at exit:\s+(\d+) complete records, last line 'record (\d+): begin ... '", out
    )
    assert match, out
    assert int(match.group(1)) + 1 == int(match.group(2)) >= 3
    has(
        out,
        "tw.Service, stopped at exit:     2 complete records, last line 'record 2: begin ... end'",
        "tw.spawn task, waited for:       3 complete records, last line 'record 3: begin ... end'",
        "state DONE",
        "the writer's state: CANCELLED; the group exited without an error",
    )
    # The writers stop between records: at least the three waited for, and a clean close.
    for how in ("stopped with a tw.Event:", "stopped by cancelling its group:"):
        pattern = re.escape(how) + r"\s+(\d+) complete records, last line 'closed cleanly'"
        assert number_after(out, pattern) >= 3
    assert number_after(out, r"the writer returned (\d+) records") >= 3


def check_10(out: str) -> None:
    has(
        out,
        "threading.local: the worker saw None, set 'worker'; main still sees 'main'",
        "tw.ThreadLocal: 12 requests on at most 3 worker threads",
        "(at most one per worker: True)",
        "all closed when their threads ended: True",
        "  still open: 0",
        "main thread's connection open: True; still open: 1",
        "after close_all(): closed=True; still open: 0",
    )
    queries = [int(n) for n in re.findall(r"connection \d+: (\d+) queries in", out)]
    assert sum(queries) == 12
    assert "closed=False" not in out


def check_11(out: str) -> None:
    has(
        out,
        "backpressure: 3/3 queued, the producer waits",
        "producer state=BLOCKED blocked_on=\"Queue.put on 'jobs'\"",
        "every item handled exactly once: True",
        "all consumers stopped by close(), no sentinel: True",
        "put() after close() raises QueueClosed: put() on closed Queue 'jobs'",
    )
    assert number_after(out, r"never held more than (\d+) items") <= 3
    handled = [int(n) for n in re.findall(r"consumer \d handled\s+(\d+) items", out)]
    assert len(handled) == 3
    assert sum(handled) == 12


def check_12(out: str) -> None:
    has(
        out,
        "8 files of 64 KiB from http://127.0.0.1:",
        "all 16 files downloaded and their sha256 verified: True",
        "requests served at once: 1 sequentially,",
    )
    assert out.count("8 files: 8 done; 512.0 KiB") == 2
    assert number_after(out, r"speedup: ([0-9.]+)x") > 1.0
    assert number_after(out, r"1 sequentially, (\d+) in parallel") > 1


CHECKS: dict[str, Callable[[str], None]] = {
    "01_threads_from_functions.py": check_01,
    "02_thread_subclass.py": check_02,
    "03_arguments.py": check_03,
    "04_many_threads.py": check_04,
    "05_results.py": check_05,
    "06_thread_properties.py": check_06,
    "07_lifecycle_states.py": check_07,
    "08_exceptions_not_lost.py": check_08,
    "09_daemon_vs_service.py": check_09,
    "10_thread_local.py": check_10,
    "11_producer_consumer.py": check_11,
    "12_parallel_downloads.py": check_12,
}


def test_every_lesson_is_checked() -> None:
    found = sorted(p.name for p in TOUR.glob("*.py"))
    assert found == LESSON_FILES == list(CHECKS)


@pytest.mark.parametrize("name", LESSON_FILES)
def test_lesson_prints_what_it_demonstrates(name: str) -> None:
    CHECKS[name](run_lesson(name))


def masked(text: str) -> list[str]:
    """Lines with every number replaced: ids, timings and counts vary between runs."""
    return [re.sub(r"\d+", "N", line) for line in text.splitlines()]


def tutorial_sections() -> dict[int, str]:
    page = TUTORIAL.read_text(encoding="utf-8")
    parts = re.split(r"^## (\d+)\. ", page, flags=re.MULTILINE)
    return {int(number): body for number, body in zip(parts[1::2], parts[2::2], strict=True)}


def test_the_tutorial_has_a_section_per_lesson_naming_its_script() -> None:
    sections = tutorial_sections()
    assert sorted(sections) == list(range(1, 13))
    for number, name in enumerate(LESSON_FILES, 1):
        assert f"`examples/tour/{name}`" in sections[number], f"section {number}"


@pytest.mark.parametrize("number", range(1, 13))
def test_the_tutorial_shows_real_output(number: int) -> None:
    # Every line of the section's output blocks is a line the lesson prints (numbers aside).
    blocks = re.findall(r"```text\n(.*?)```", tutorial_sections()[number], flags=re.DOTALL)
    assert blocks, f"section {number} shows no output"
    printed = set(masked(run_lesson(LESSON_FILES[number - 1])))
    for block in blocks:
        for line in masked(block):
            assert line in printed, f"section {number}: {line!r} is not printed by the lesson"


# -- the tour command ------------------------------------------------------------------------


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="threadwise")
    subparsers = parser.add_subparsers(dest="command", required=True)
    _tour.add_parser(subparsers)
    return parser.parse_args(argv)


def test_lessons_are_found_in_the_checkout() -> None:
    assert _tour.lessons_dir() == TOUR
    lessons = _tour.find_lessons()
    assert [lesson.path.name for lesson in lessons] == LESSON_FILES
    assert [lesson.number for lesson in lessons] == list(range(1, 13))
    assert lessons[6].label == "07 lifecycle states"
    assert lessons[6].title.startswith("Lifecycle states:")
    assert all(lesson.title for lesson in lessons)


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse(["tour", "--list"])
    assert args.handler is _tour.run
    assert _tour.run(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 12
    assert lines[0].startswith("01 threads from functions  Threads from functions:")
    assert lines[11].startswith("12 parallel downloads")
    assert [line[:2] for line in lines] == [f"{n:02d}" for n in range(1, 13)]


def test_list_only_the_selected(capsys: pytest.CaptureFixture[str]) -> None:
    assert _tour.run(parse(["tour", "--list", "10", "states"])) == 0
    lines = capsys.readouterr().out.splitlines()
    # In tour order, whatever the order of the selectors.
    assert [line.split()[0] for line in lines] == ["07", "10"]


def test_run_one_lesson_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert _tour.run(parse(["tour", "lifecycle"])) == 0
    out = capsys.readouterr().out
    assert "Lesson 7 (1/1): Lifecycle states:" in out
    assert "python " in out
    assert "07_lifecycle_states.py" in out
    check_07(out)
    assert "1 lesson run in" in out
    assert "Lesson 8" not in out


@pytest.mark.parametrize(
    ("selectors", "expected"),
    [
        (["7"], [7]),
        (["07"], [7]),
        (["states"], [7]),
        (["thread-local"], [10]),
        (["Thread Local"], [10]),
        (["thread"], [1, 2, 4, 6, 10]),
        (["12", "1"], [1, 12]),
        (["7", "lifecycle"], [7]),
        ([], list(range(1, 13))),
    ],
)
def test_select(selectors: list[str], expected: list[int]) -> None:
    chosen = _tour.select(_tour.find_lessons(), selectors)
    assert [lesson.number for lesson in chosen] == expected


@pytest.mark.parametrize("selector", ["99", "no-such-lesson", "   "])
def test_unknown_lesson_is_a_usage_error(selector: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _tour.run(parse(["tour", selector])) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"no lesson matches {selector!r}" in captured.err
    assert "threadwise tour --list" in captured.err


def write_lessons(folder: Path, lessons: dict[str, str]) -> Path:
    folder.mkdir()
    for name, body in lessons.items():
        (folder / name).write_text(textwrap.dedent(body), encoding="utf-8")
    return folder


def test_a_failing_lesson_gives_exit_code_1_and_the_others_still_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_lessons(
        tmp_path / "tour",
        {
            "01_fine.py": '"""Fine."""\nprint("fine ran")\n',
            "02_boom.py": '"""Boom."""\nraise ValueError("boom in a lesson")\n',
            "03_exits.py": '"""Exits."""\nimport sys\nsys.exit(3)\n',
            "04_exits_zero.py": '"""Exits with 0."""\nraise SystemExit(0)\n',
            "05_after.py": '"""After."""\nprint("after ran")\n',
            "notes.txt": "not a lesson",
            "helper.py": "raise AssertionError('not a lesson: no number')",
        },
    )
    assert _tour.tour(directory=folder) == 1
    captured = capsys.readouterr()
    assert "fine ran" in captured.out
    assert "after ran" in captured.out
    assert "Lesson 5 (5/5): After." in captured.out
    assert "2 of 5 lessons failed: 02 boom, 03 exits" in captured.out
    assert "ValueError: boom in a lesson" in captured.err
    assert "lesson 03 exits exited with 3" in captured.err


def test_lessons_only_need_a_source_checkout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _tour.tour(directory=tmp_path / "missing") == 1
    err = capsys.readouterr().err
    assert "the tour needs a source checkout" in err
    assert "examples/tour/" in err

    empty = tmp_path / "empty"
    empty.mkdir()
    assert _tour.tour(directory=empty) == 1
    assert "no lesson scripts" in capsys.readouterr().err


def test_help_names_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse(["tour", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "LESSON" in out
    assert "--list" in out


def test_the_whole_tour_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    # What `threadwise tour` does: every lesson, one after the other, in this process.
    assert _tour.run(parse(["tour"])) == 0
    out = capsys.readouterr().out
    for number, name in enumerate(LESSON_FILES, 1):
        assert f"Lesson {number} ({number}/12): " in out
        assert name in out
    assert "12 lessons run in" in out
    check_07(out)
    check_11(out)
