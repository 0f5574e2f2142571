"""Tests for the ``threadwise`` command line and its ``demo`` subcommand (``get`` has its own
file)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from threadwise._version import __version__
from threadwise.cli import COMMANDS, _demo, build_parser, main
from threadwise.cli._args import parse_size


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"threadwise {__version__}\n"


def test_help_exits_0_and_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: threadwise" in out
    assert "demo" in out
    assert "get" in out


_MODULES_AFTER = (
    "import sys, threadwise.cli\n"
    "try:\n"
    "    threadwise.cli.main(sys.argv[1:])\n"
    "finally:\n"
    "    print(' '.join(sorted(sys.modules)), file=sys.stderr)\n"
)


def _modules_after(*argv: str) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-c", _MODULES_AFTER, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return set(proc.stderr.split())


def test_import_threadwise_does_not_import_the_command_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "import sys, threadwise; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = set(proc.stdout.split())
    assert "threadwise" in loaded
    assert not {m for m in loaded if m == "threadwise.cli" or m.startswith("threadwise.cli.")}
    assert "argparse" not in loaded


def test_import_threadwise_leaves_asyncio_until_aio_is_used() -> None:
    # asyncio's import alone was most of `threadwise --help`'s start-up.
    code = (
        "import sys, threadwise as tw\n"
        "print('asyncio' in sys.modules)\n"
        "print(tw.aio.run_sync.__name__, 'asyncio' in sys.modules)\n"
        "try:\n"
        "    tw.no_such_name\n"
        "except AttributeError as exc:\n"
        "    print(exc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert proc.stdout.splitlines() == [
        "False",
        "run_sync True",
        "module 'threadwise' has no attribute 'no_such_name'",
    ]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--help"], set()),
        (["get", "--help"], {"threadwise.cli._get", "threadwise.cli._args"}),
        (["demo", "--help"], {"threadwise.cli._demo", "threadwise.cli._args"}),
        (["tour", "--help"], {"threadwise.cli._tour"}),
        (["watch", "--help"], {"threadwise.cli._watch", "threadwise.cli._args"}),
    ],
)
def test_each_command_imports_only_what_it_uses(argv: list[str], expected: set[str]) -> None:
    loaded = _modules_after(*argv)
    ours = {m for m in loaded if m.startswith("threadwise.cli.")}
    assert ours == expected
    # Neither the downloader nor the HTTP client nor rich is needed to show help.
    assert not {m for m in loaded if m.startswith(("threadwise.download", "urllib3", "rich"))}


def test_the_listed_help_lines_are_the_commands_own() -> None:
    # `threadwise --help` shows COMMANDS' lines without importing the modules: keep them equal.
    import argparse
    import importlib

    for name, (module_name, help_line) in COMMANDS.items():
        parser = argparse.ArgumentParser()
        subparsers = parser.add_subparsers()
        importlib.import_module(f"threadwise.cli.{module_name}").add_parser(subparsers)
        (action,) = subparsers._choices_actions
        assert (action.dest, action.help) == (name, help_line)


def test_the_full_parser_has_every_command() -> None:
    parser = build_parser()
    args = parser.parse_args(["tour", "--list"])
    assert args.command == "tour"
    assert args.list is True


def test_demo_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--files", "--size", "--latency", "--bandwidth", "--workers"):
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
        ["demo", "--files", "100000"],
        ["demo", "--size", "0"],
        ["demo", "--size", "abc"],
        ["demo", "--size", "1X"],
        ["demo", "--size", "-4K"],
        ["demo", "--size", "2G"],
        ["demo", "--latency", "-1"],
        ["demo", "--latency", "0"],
        ["demo", "--latency", "nan"],
        ["demo", "--latency", "inf"],
        ["demo", "--bandwidth", "-1"],
        ["demo", "--bandwidth", "fast"],
        ["demo", "--bandwidth", "0.25"],
        ["demo", "--bandwidth", "inf"],
        ["demo", "--workers", "0"],
        ["demo", "--workers", "1001"],
        ["demo", "--files", "2000", "--size", "1M"],  # 2 GiB in all: too much memory
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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("16384", 16384),
        ("64K", 65536),
        ("64k", 65536),
        ("64KiB", 65536),
        ("1.5M", 1.5 * 1024**2),
        ("1 MB", 1024**2),
        ("2G", 2 * 1024**3),
        ("0", 0),
        ("1e3", 1000),
    ],
)
def test_parse_size(text: str, expected: float) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "K", "1X", "one", "1.2.3M", "-1"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size(text)


def test_model() -> None:
    model = _demo.Model(files=24, size=256 * 1024, latency=0.3, bandwidth=1024**2, workers=12)
    assert model.per_file == pytest.approx(0.3 + 0.25)
    assert model.rounds == 2
    assert model.sequential == pytest.approx(24 * 0.55)
    assert model.parallel == pytest.approx(2 * 0.55)
    assert model.speedup == pytest.approx(12.0)


@pytest.mark.parametrize(
    ("files", "workers", "expected"),
    [(12, 12, 12.0), (12, 4, 12.0 / 3), (12, 5, 12.0 / 3), (3, 10, 3.0), (1, 1, 1.0)],
)
def test_model_ideal_speedup(files: int, workers: int, expected: float) -> None:
    model = _demo.Model(files=files, size=1000, latency=0.1, bandwidth=0, workers=workers)
    assert model.per_file == 0.1  # unthrottled: the transfer time is not modelled
    assert model.speedup == pytest.approx(expected)


def _table_value(out: str, label: str) -> float:
    match = re.search(rf"^\s*{re.escape(label)}\s+([0-9.]+)", out, re.MULTILINE)
    assert match, f"no {label!r} row in:\n{out}"
    return float(match.group(1))


_FAST = ["demo", "--files", "4", "--size", "16384", "--latency", "0.05", "--bandwidth", "0"]


def test_demo_runs_verifies_and_reports_speedup(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert main(_FAST) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "from a local server (http://127.0.0.1:" in out
    assert _table_value(out, "files") == 4
    assert _table_value(out, "workers") == 12
    assert re.search(r"^\s*bytes\s+64\.0 KiB\s+65,536 bytes", out, re.MULTILINE)
    sequential = _table_value(out, "sequential time")
    parallel = _table_value(out, "parallel time")
    assert sequential >= 4 * 0.05  # every request waits for the latency, one after the other
    assert parallel >= 0.05
    # the shown times are rounded to 10 ms: the ratios agree with them only roughly
    speedup = _table_value(out, "speedup")
    assert speedup == pytest.approx(sequential / parallel, rel=0.15)
    assert _table_value(out, "ideal speedup") == 4.0
    assert _table_value(out, "speedup / ideal") == pytest.approx(speedup / 4.0, abs=0.03)
    assert "All 8 checksums verified (4 files x 2 runs, sha256)." in out
    # stderr is not a terminal: a plain line per finished file for each run
    assert captured.err.count("sequential: [") == 4
    assert captured.err.count("threadwise: [") == 4
    assert os.listdir(tmp_path) == []  # the downloads are cleaned up


def test_demo_with_fewer_workers_than_files(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["demo", "--files", "5", "--size", "1K", "--latency", "0.02", "--workers", "2"]
    assert main([*argv, "--bandwidth", "0"]) == 0
    out = capsys.readouterr().out
    assert _table_value(out, "workers") == 2
    assert _table_value(out, "ideal speedup") == pytest.approx(5 / 3, abs=0.05)
    assert "with 2 workers 3 rounds of it" in out
    assert "All 10 checksums verified" in out


def test_demo_model_with_bandwidth(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["demo", "--files", "2", "--size", "32K", "--latency", "0.01", "--bandwidth", "1M"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    # each file: 0.01 s + 32 KiB at 1 MiB/s = 0.04125 s
    assert "each file takes 0.01 s + 32.0 KiB / 1.0 MiB/s = 0.041 s" in out
    assert "ideal 0.08 s" in out
    assert _table_value(out, "ideal speedup") == 2.0


def test_demo_without_rich_prints_a_plain_table(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)
    assert main(_FAST) == 0
    out = capsys.readouterr().out
    assert re.search(r"^  files\s+4$", out, re.MULTILINE)
    assert _table_value(out, "ideal speedup") == 4.0
    assert "All 8 checksums verified" in out


def test_demo_reports_a_wrong_checksum(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from threadwise.download import DemoServer, ServedFile

    add = DemoServer.add

    def add_then_corrupt(
        self: DemoServer, name: str, size: int | None = None, **kwargs: Any
    ) -> ServedFile | SimpleNamespace:
        served = add(self, name, size, **kwargs)
        if name != "file-002.bin":
            return served
        expected = served.sha256
        served.data = bytes(len(served.data))  # the server now sends other bytes
        return SimpleNamespace(sha256=expected)

    monkeypatch.setattr(DemoServer, "add", add_then_corrupt)
    assert main(_FAST) == 1
    out = capsys.readouterr().out
    assert "FAILED: 2 downloads are missing or wrong:" in out
    assert re.search(r"sequential file-002\.bin: failed: sha256 mismatch", out)
    assert re.search(r"parallel file-002\.bin: failed: sha256 mismatch", out)
    assert "checksums verified" not in out


def test_demo_without_the_http_client(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "urllib3", None)
    assert main(_FAST) == 2
    assert "pip install 'threadwise[cli]'" in capsys.readouterr().err


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
def test_demo_ctrl_c_during_the_parallel_run_exits_promptly() -> None:
    argv = ["demo", "--files", "2", "--size", "16K", "--latency", "0.5", "--bandwidth", "64K"]
    with subprocess.Popen(
        [sys.executable, "-u", "-c", _CLI_WITH_SIGINT, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("threadwise: up to"):
                break
        time.sleep(0.1)  # the parallel downloads are now waiting for the server
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        elapsed = time.monotonic() - sent
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert "speedup" not in out
    assert elapsed < 5.0


def test_the_command_is_the_first_word_that_is_not_an_option() -> None:
    from threadwise.cli import _command_of

    assert _command_of(["--version", "get", "-o", "x"]) == "get"
    assert _command_of(["--", "get"]) is None
    assert _command_of(["-h"]) is None


def test_exit_codes_of_argparse_exits(capsys: pytest.CaptureFixture[str]) -> None:
    from threadwise.cli import _exit_code

    assert _exit_code(SystemExit(None)) == 0
    assert _exit_code(SystemExit(3)) == 3
    assert _exit_code(SystemExit("no such thing")) == 1
    assert capsys.readouterr().err == "no such thing\n"
