"""Tests for the ``threadwise`` command line and its ``demo`` subcommand."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest

from threadwise import _demo
from threadwise._version import __version__
from threadwise.cli import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"threadwise {__version__}\n"


def test_help_exits_0_and_lists_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: threadwise" in out
    assert "demo" in out


def test_demo_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--files", "--latency", "--workers"):
        assert option in out


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["no-such-command"],
        ["--no-such-option"],
        ["demo", "--files", "0"],
        ["demo", "--files", "three"],
        ["demo", "--files", "1.5"],
        ["demo", "--latency", "-1"],
        ["demo", "--latency", "0"],
        ["demo", "--latency", "nan"],
        ["demo", "--latency", "inf"],
        ["demo", "--workers", "0"],
        ["demo", "unexpected"],
    ],
)
def test_bad_usage_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "usage: threadwise" in captured.err


def test_bad_option_value_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--files", "-3"]) == 2
    err = capsys.readouterr().err
    assert "--files" in err
    assert "'-3'" in err


def _table_value(out: str, label: str) -> float:
    match = re.search(rf"^\s*{label}\s+([0-9.]+)", out, re.MULTILINE)
    assert match, f"no {label!r} row in:\n{out}"
    return float(match.group(1))


def test_demo_runs_and_reports_speedup(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--files", "4", "--latency", "0.05"]) == 0
    out = capsys.readouterr().out
    assert out.count("file-0") == 8  # one line per file, sequential then concurrent
    assert _table_value(out, "files") == 4
    assert _table_value(out, "ideal speedup") == 4.0
    assert _table_value(out, "speedup") > 1.0
    assert "All 8 downloads match their expected sha256." in out


def test_demo_with_fewer_workers_than_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--files", "5", "--latency", "0.02", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert _table_value(out, "threads") == 2
    assert _table_value(out, "ideal speedup") == pytest.approx(5 / 3, abs=0.05)
    assert "All 10 downloads match" in out


def test_demo_results_are_checked() -> None:
    urls = [_demo.file_url(i) for i in range(1, 4)]
    good = [_demo.fetch(url, 0.001) for url in urls]
    assert _demo.check(urls, good) == []
    swapped = [good[1], good[0], good[2]]
    assert _demo.check(urls, swapped) == urls[:2]
    corrupted = [*good[:2], _demo.Download(urls[2], b"oops", good[2].sha256)]
    assert _demo.check(urls, corrupted) == urls[2:]
    assert _demo.check(urls, good[:2]) == urls


@pytest.mark.parametrize(
    ("files", "workers", "expected"),
    [(12, None, 12.0), (12, 4, 12.0 / 3), (12, 5, 12.0 / 3), (3, 10, 3.0), (1, None, 1.0)],
)
def test_ideal_speedup(files: int, workers: int | None, expected: float) -> None:
    assert _demo.ideal_speedup(files, workers) == pytest.approx(expected)


def test_python_m_threadwise_version() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "threadwise", "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"threadwise {__version__}"


# Runs the CLI with Ctrl-C handled as usual, even when the test runner ignores SIGINT.
_CLI_WITH_SIGINT = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from threadwise.cli import main; sys.exit(main(sys.argv[1:]))"
)


@pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")
def test_demo_ctrl_c_during_the_concurrent_run_exits_promptly() -> None:
    argv = ["demo", "--files", "3", "--latency", "0.4"]
    with subprocess.Popen(
        [sys.executable, "-u", "-c", _CLI_WITH_SIGINT, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("Concurrent:"):
                break
        time.sleep(0.1)  # the downloads are now running in the TaskGroup
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        elapsed = time.monotonic() - sent
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert "speedup" not in out
    assert elapsed < 2.0
