"""What ``import threadwise`` and the command's ``--help`` load: start-up time is a feature.

Each check runs a fresh interpreter and lists the modules the import (or the command) added to
``sys.modules``, so what the interpreter or a coverage hook loaded before does not count. No
timing here: the figures are benchmarks/bench_startup.py's.
"""

from __future__ import annotations

import concurrent.futures
import inspect
import logging
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import threadwise as tw
from threadwise import _cancel

# Each of these costs milliseconds, together several times what threadwise's own modules cost.
NOT_ON_IMPORT = [
    "asyncio",
    "concurrent.futures",
    "contextlib",
    "dataclasses",
    "inspect",
    "logging",
    "re",
    "signal",
    "traceback",
    "typing",
    "urllib3",
    "threadwise.aio",
    "threadwise.cli",
    "threadwise.download",
    "threadwise._executor",
    "threadwise._pipeline",
]


def _loaded_by(code: str, *args: str) -> set[str]:
    """The modules ``code`` adds to ``sys.modules`` in a fresh interpreter (its output and
    exit status are ignored: ``--help`` exits)."""
    script = textwrap.dedent(
        """
        import sys
        before = set(sys.modules)
        try:
        {code}
        except SystemExit:
            pass
        sys.stderr.write("\\nMODULES " + " ".join(sorted(set(sys.modules) - before)) + "\\n")
        """
    ).format(code=textwrap.indent(code, "    "))
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        check=False,
    )
    lines = [line for line in proc.stderr.splitlines() if line.startswith("MODULES ")]
    assert lines, proc.stderr
    return set(lines[-1].split()[1:])


def _among(modules: set[str], names: list[str]) -> list[str]:
    """The names in ``names`` that ``modules`` holds, themselves or a submodule of theirs."""
    return [name for name in names if any(m == name or m.startswith(name + ".") for m in modules)]


def test_import_threadwise_loads_none_of_the_heavy_modules() -> None:
    loaded = _loaded_by("import threadwise")
    assert "threadwise._sync" in loaded  # it did import threadwise
    assert _among(loaded, NOT_ON_IMPORT) == []


def test_threadwise_help_loads_neither_the_downloader_nor_its_clients() -> None:
    loaded = _loaded_by("from threadwise.cli import main; main(['--help'])")
    assert "argparse" in loaded
    assert _among(loaded, ["threadwise.download", "urllib3", "rich", "logging", "typing"]) == []


def test_get_help_loads_no_http_client() -> None:
    loaded = _loaded_by("from threadwise.cli import main; main(['get', '--help'])")
    assert "threadwise.cli._get" in loaded
    assert _among(loaded, ["threadwise.download", "urllib3", "rich", "json", "shutil"]) == []


def test_a_plain_http_get_loads_no_heavy_module(tmp_path: Path) -> None:
    # `threadwise get` of plain-http URLs runs on the lean client: dataclasses (with inspect),
    # typing, urllib.parse, the idna codec and socket (its enums) were 40% of its start-up.
    from threadwise.download import DemoServer

    heavy = [
        *("dataclasses", "inspect", "typing", "urllib", "encodings.idna", "socket"),
        *("urllib3", "http"),
    ]
    with DemoServer() as server:
        server.add("a.bin", 1000)
        url = server.url("a.bin")
        for run in ("fresh", "again"):  # the second finds the file there: the threaded path
            loaded = _loaded_by(
                "from threadwise.cli import main\n"
                f"main(['get', '-q', '-o', {str(tmp_path)!r}, {url!r}])"
            )
            assert "threadwise.download._fast" in loaded, run
            assert (tmp_path / "a.bin").stat().st_size == 1000, run
            assert _among(loaded, heavy) == [], run


def test_lazy_names_are_loaded_on_first_use() -> None:
    loaded = _loaded_by(
        "import threadwise as tw; tw.Executor; tw.map; tw.threads; tw.Service; tw.TaskGroup"
    )
    assert {"threadwise._executor", "threadwise._map", "threadwise._inspect"} <= loaded
    assert {"threadwise._service", "threadwise._group", "concurrent.futures"} <= loaded


def test_tasks_and_thread_locals_are_loaded_on_first_use() -> None:
    loaded = _loaded_by("import threadwise")
    assert _among(loaded, ["threadwise._task", "threadwise._local", "enum", "contextvars"]) == []
    loaded = _loaded_by("import threadwise as tw; tw.spawn(lambda: None).result()")
    assert {"threadwise._task", "threadwise._threads"} <= loaded


def test_lazy_task_names_are_the_public_ones() -> None:
    from threadwise import _local, _task

    assert (tw.Task, tw.Thread, tw.State, tw.spawn) == (
        _task.Task,
        _task.Thread,
        _task.State,
        _task.spawn,
    )
    assert tw.ThreadLocal is _local.ThreadLocal
    for obj in (tw.Task, tw.Thread, tw.State, tw.spawn, tw.ThreadLocal):
        assert obj.__module__ == "threadwise"


# -- what the lazy loading must not change --------------------------------------------------


def test_task_cancelled_is_still_a_futures_cancelled_error() -> None:
    assert issubclass(tw.TaskCancelled, concurrent.futures.CancelledError)
    assert issubclass(tw.CancelledTooLate, concurrent.futures.CancelledError)
    from threadwise._exceptions import CancelledTooLate, TaskCancelled

    assert TaskCancelled is tw.TaskCancelled
    assert CancelledTooLate is tw.CancelledTooLate
    assert tw.TaskCancelled.__module__ == "threadwise"


def test_a_cancelled_task_raises_the_public_task_cancelled() -> None:
    task = tw.spawn(tw.sleep, 30)
    task.cancel()
    with pytest.raises(concurrent.futures.CancelledError) as caught:
        task.result(5)
    assert type(caught.value) is tw.TaskCancelled


def test_task_cancelled_is_created_once_by_the_first_raise() -> None:
    # In a fresh interpreter the first TaskCancelled comes from Task.result(), not from
    # tw.TaskCancelled: both must be the same class, a CancelledError.
    code = textwrap.dedent(
        """
        import sys, concurrent.futures, threadwise as tw
        assert "threadwise._future_errors" not in sys.modules
        task = tw.spawn(tw.sleep, 30)
        task.cancel()
        try:
            task.result(5)
        except concurrent.futures.CancelledError as exc:
            assert type(exc).__module__ == "threadwise", type(exc).__module__
            assert type(exc) is tw.TaskCancelled, type(exc)
            assert str(exc).startswith("task "), exc
        else:
            raise AssertionError("no TaskCancelled")
        print("ok")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_dir_lists_the_lazy_names_before_they_are_loaded() -> None:
    loaded = _loaded_by(
        "import threadwise as tw\n"
        "names = dir(tw)\n"
        "assert {'Executor', 'map', 'Pipeline', 'TaskCancelled', 'aio'} <= set(names), names"
    )
    assert "threadwise._executor" not in loaded  # dir() alone loads nothing


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        tw.no_such_name  # noqa: B018


def test_generic_classes_subscript_at_run_time_without_typing() -> None:
    alias = tw.Queue[int]
    queue = alias()
    assert type(queue) is tw.Queue
    assert alias.__origin__ is tw.Queue
    assert alias.__args__ == (int,)
    assert type(tw.Task[str]).__name__ == "GenericAlias"

    class Jobs(tw.Queue[str]):
        pass

    assert issubclass(Jobs, tw.Queue)


def test_the_code_flags_cancel_scopes_check_are_inspects() -> None:
    flags = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR
    assert flags == _cancel._SUSPENDABLE


def test_thread_info_is_a_frozen_value() -> None:
    info = tw.threads()[0]
    same = tw.ThreadInfo(*(getattr(info, name) for name in tw.ThreadInfo.__slots__))
    assert same == info
    assert same != tw.ThreadInfo(
        *(getattr(info, name) for name in tw.ThreadInfo.__slots__[:-1]), []
    )
    assert pickle.loads(pickle.dumps(info)) == info
    assert repr(info).startswith(f"ThreadInfo(name={info.name!r}, ident={info.ident!r}, ")
    with pytest.raises(AttributeError):
        info.name = "other"
    match info:
        case tw.ThreadInfo(name, ident):
            assert (name, ident) == (info.name, info.ident)


def test_lock_order_violation_is_a_frozen_value() -> None:
    violation = tw.LockOrderViolation("a", "b", "t1", "s1", "t2", "s2")
    assert violation == tw.LockOrderViolation(
        first="a", second="b", earlier_thread="t1", earlier_stack="s1", later_thread="t2",
        later_stack="s2",
    )  # fmt: skip
    assert violation != tw.LockOrderViolation("a", "b", "t1", "s1", "t2", "other")
    assert hash(violation) == hash(tw.LockOrderViolation("a", "b", "t1", "s1", "t2", "s2"))
    assert repr(violation) == (
        "LockOrderViolation(first='a', second='b', earlier_thread='t1', earlier_stack='s1', "
        "later_thread='t2', later_stack='s2')"
    )
    with pytest.raises(AttributeError):
        violation.first = "c"


def test_lazy_logger_logs_as_the_threadwise_logger(caplog: pytest.LogCaptureFixture) -> None:
    from threadwise._log import Logger

    logger = Logger("threadwise")
    assert "threadwise" in repr(logger)
    with caplog.at_level(logging.WARNING, logger="threadwise"):
        logger.warning("lazily %s", "logged")
    (record,) = [r for r in caplog.records if r.getMessage() == "lazily logged"]
    assert record.name == "threadwise"
    assert record.pathname == __file__  # the caller's line, not the stand-in's
    assert logger.isEnabledFor(logging.WARNING) is logging.getLogger("threadwise").isEnabledFor(
        logging.WARNING
    )


def test_records_refuse_deletion_and_other_types() -> None:
    violation = tw.LockOrderViolation("a", "b", "t1", "s1", "t2", "s2")
    with pytest.raises(AttributeError):
        del violation.first
    assert violation != ("a", "b", "t1", "s1", "t2", "s2")


def test_private_modules_say_which_name_is_missing() -> None:
    from threadwise import _exceptions

    with pytest.raises(AttributeError, match="no_such_error"):
        _exceptions.no_such_error  # noqa: B018


@pytest.mark.parametrize("columns", ["50", "150", "0", "wide", None])
def test_help_width_is_the_one_shutil_gives_argparse(
    columns: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from threadwise import cli

    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    assert cli._help_width() == shutil.get_terminal_size().columns - 2  # as argparse computes


def test_help_is_wrapped_to_columns(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from threadwise.cli import main

    widths = []
    for columns in (60, 150):
        monkeypatch.setenv("COLUMNS", str(columns))
        assert main(["--help"]) == 0
        widths.append(max(len(line) for line in capsys.readouterr().out.splitlines()))
    assert widths[0] <= 58 < widths[1]


def test_typing_stand_ins_read_as_typing_does() -> None:
    from threadwise import _typing

    assert repr(_typing.TypeVar("T")) == "~T"
    assert repr(_typing.Literal) == "typing.Literal"
    assert _typing.Literal["a", "b"].__args__ == ("a", "b")  # type: ignore[attr-defined]
    assert _typing.cast(int, "unchanged") == "unchanged"
    assert not _typing.TYPE_CHECKING
