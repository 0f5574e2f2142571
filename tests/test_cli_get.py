"""Tests for ``threadwise get``: in-process against a local DemoServer, Ctrl-C in a subprocess,
and the live display in a pseudo-terminal."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from threadwise.cli import main
from threadwise.cli._display import (
    INSTALL_HINT,
    DownloadDisplay,
    print_summary,
    snapshot,
)
from threadwise.cli._get import read_urls
from threadwise.download import DemoServer, DownloadReport, FileResult


@pytest.fixture
def server() -> Iterator[DemoServer]:
    with DemoServer() as s:
        s.add("a.bin", 10_000)
        s.add("b.bin", 20_000)
        s.add("c.bin", 30_000)
        s.add("gone.bin", 10, status=404)
        yield s


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _urls(server: DemoServer, *names: str) -> list[str]:
    return [server.url(name) for name in names]


def _assert_downloaded(server: DemoServer, folder: Path, *names: str) -> None:
    for name in names:
        path = folder / name
        assert path.is_file(), f"{name} missing from {sorted(os.listdir(folder))}"
        assert _sha256(path) == server.files["/" + name].sha256


# -- success -------------------------------------------------------------------------------------
def test_quiet_downloads_everything_and_prints_nothing(
    server: DemoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    urls = _urls(server, "a.bin", "b.bin", "c.bin")
    assert main(["get", *urls, "-o", str(out), "--quiet"]) == 0
    _assert_downloaded(server, out, "a.bin", "b.bin", "c.bin")
    assert sorted(os.listdir(out)) == ["a.bin", "b.bin", "c.bin"]  # no .part left over
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ""


def test_non_tty_prints_a_line_per_file_and_a_summary_table(
    server: DemoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    urls = _urls(server, "a.bin", "b.bin", "c.bin")
    assert main(["get", *urls, "-o", str(tmp_path), "-j", "2"]) == 0
    captured = capsys.readouterr()
    # stderr is not a terminal here: one plain line per finished file, no control codes
    lines = captured.err.splitlines()
    assert len(lines) == 3, captured.err
    for name in ("a.bin", "b.bin", "c.bin"):
        assert any(re.search(rf"\[\d/3\] done\s+{re.escape(name)}", line) for line in lines)
    assert "\x1b[" not in captured.err
    # the summary table on stdout
    for name in ("a.bin", "b.bin", "c.bin"):
        assert re.search(rf"^done\s.*\s1\s+{re.escape(name)}\s*$", captured.out, re.MULTILINE)
    assert "3 files: 3 done;" in captured.out
    assert "failed" not in captured.out


def test_output_folder_is_created(
    server: DemoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "new" / "nested"
    assert main(["get", server.url("a.bin"), "-o", str(out), "-q"]) == 0
    _assert_downloaded(server, out, "a.bin")


def test_input_file_skips_blank_lines_and_comments(
    server: DemoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listing = tmp_path / "urls.txt"
    listing.write_text(
        f"# files to fetch\n\n{server.url('a.bin')}\n   \n  {server.url('b.bin')}  \n"
        "   # an indented comment\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    assert main(["get", "-i", str(listing), "-o", str(out), "-q"]) == 0
    assert sorted(os.listdir(out)) == ["a.bin", "b.bin"]
    _assert_downloaded(server, out, "a.bin", "b.bin")


def test_input_from_stdin_adds_to_the_arguments(
    server: DemoServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{server.url('b.bin')}\n# skip\n\n"))
    out = tmp_path / "out"
    assert main(["get", server.url("a.bin"), "-i", "-", "-o", str(out), "-q"]) == 0
    assert sorted(os.listdir(out)) == ["a.bin", "b.bin"]


def test_read_urls() -> None:
    assert read_urls(["", "  # c", "http://h/a#frag \n", "\thttp://h/b\n"]) == [
        "http://h/a#frag",
        "http://h/b",
    ]


def test_json_report(
    server: DemoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report_path = tmp_path / "report.json"
    urls = _urls(server, "a.bin", "gone.bin")
    code = main(["get", *urls, "-o", str(tmp_path / "out"), "-q", "--json", str(report_path)])
    assert code == 1
    data = json.loads(report_path.read_text(encoding="utf-8"))
    assert data["ok"] is False
    assert data["interrupted"] is False
    assert data["total_bytes"] == 10_000
    by_url = {f["url"]: f for f in data["files"]}
    assert by_url[urls[0]]["status"] == "done"
    assert by_url[urls[0]]["size"] == 10_000
    assert by_url[urls[0]]["path"] == os.path.join(str(tmp_path / "out"), "a.bin")
    assert by_url[urls[1]]["status"] == "failed"
    assert "404" in by_url[urls[1]]["error"]


def test_json_to_stdout_moves_the_summary_to_stderr(
    server: DemoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["get", server.url("a.bin"), "-o", str(tmp_path), "--json", "-"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert [f["status"] for f in data["files"]] == ["done"]
    assert "1 file: 1 done;" in captured.err


def test_second_run_skips_complete_files(
    server: DemoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    urls = _urls(server, "a.bin", "b.bin")
    assert main(["get", *urls, "-o", str(tmp_path), "-q"]) == 0
    capsys.readouterr()
    assert main(["get", *urls, "-o", str(tmp_path)]) == 0  # skipped counts as success
    out = capsys.readouterr().out
    assert "2 files: 0 done, 2 skipped;" in out


# -- failures --------------------------------------------------------------------------------------
def test_some_failed_exits_1_and_lists_the_errors(
    server: DemoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    urls = _urls(server, "a.bin", "gone.bin")
    assert main(["get", *urls, "-o", str(tmp_path), "--retries", "0"]) == 1
    out = capsys.readouterr().out
    assert "2 files: 1 done, 1 failed;" in out
    assert f"1 of 2 files failed:\n  {urls[1]}\n    HTTP 404 Not Found" in out
    assert sorted(os.listdir(tmp_path)) == ["a.bin"]
    assert server.files["/gone.bin"].requests == 1  # a 404 is not retried


def test_quiet_failure_goes_to_stderr(
    server: DemoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = server.url("gone.bin")
    assert main(["get", url, "-o", str(tmp_path), "-q"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"failed: {url}: HTTP 404 Not Found\n"


def test_checksum_mismatch_exits_1_and_keeps_no_file(
    server: DemoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = server.files["/a.bin"].sha256
    wrong = hashlib.sha256(b"something else").hexdigest()
    manifest = tmp_path / "SHA256SUMS"
    manifest.write_text(f"{good}  a.bin\n{wrong}  b.bin\n", encoding="utf-8")
    out = tmp_path / "out"
    urls = _urls(server, "a.bin", "b.bin")
    assert main(["get", *urls, "-o", str(out), "--checksums", str(manifest)]) == 1
    assert sorted(os.listdir(out)) == ["a.bin"]  # b.bin is not kept under any name
    _assert_downloaded(server, out, "a.bin")
    text = capsys.readouterr().out
    assert "sha256 mismatch" in text
    assert wrong in text


def test_checksums_that_match(
    server: DemoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "SHA256SUMS"
    manifest.write_text(
        "".join(f"sha256:{server.files['/' + n].sha256} *{n}\n" for n in ("a.bin", "b.bin")),
        encoding="utf-8",
    )
    urls = _urls(server, "a.bin", "b.bin")
    assert main(["get", *urls, "-o", str(tmp_path / "o"), "--checksums", str(manifest), "-q"]) == 0


def test_refused_connection_is_a_failure_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with DemoServer() as s:
        url = s.url("x.bin")  # the port is free again once the server stops
    assert main(["get", url, "-o", str(tmp_path), "--retries", "0", "-q"]) == 1
    assert "connection refused" in capsys.readouterr().err


# -- usage errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv",
    [
        ["get"],
        ["get", "-o", "somewhere"],
        ["get", "http://127.0.0.1:1/x", "-j", "0"],
        ["get", "http://127.0.0.1:1/x", "-j", "two"],
        ["get", "http://127.0.0.1:1/x", "--per-host", "-1"],
        ["get", "http://127.0.0.1:1/x", "--retries", "-1"],
        ["get", "http://127.0.0.1:1/x", "--retries", "1.5"],
        ["get", "http://127.0.0.1:1/x", "--timeout", "0"],
        ["get", "http://127.0.0.1:1/x", "--timeout", "nan"],
        ["get", "http://127.0.0.1:1/x", "--no-such-option"],
    ],
)
def test_bad_usage_exits_2(
    argv: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # so that we can see that nothing was written
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "usage: threadwise" in captured.err
    assert os.listdir(tmp_path) == []


def test_no_urls_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["get"]) == 2
    assert "no URLs given" in capsys.readouterr().err


def test_empty_url_list_from_stdin_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("# nothing\n\n"))
    assert main(["get", "-i", "-"]) == 2
    assert "no URLs given" in capsys.readouterr().err


def test_missing_input_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["get", "-i", str(tmp_path / "nope.txt")]) == 2
    err = capsys.readouterr().err
    assert "cannot read the URL list" in err
    assert "nope.txt" in err


@pytest.mark.parametrize("content", [None, "not-hex  a.bin\n", "abcd\n"])
def test_bad_checksums_file_exits_2(
    content: str | None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "SUMS"
    if content is not None:
        manifest.write_text(content, encoding="utf-8")
    out = tmp_path / "out"
    argv = ["get", "http://127.0.0.1:1/a.bin", "-o", str(out), "--checksums", str(manifest)]
    assert main(argv) == 2
    assert "--checksums" in capsys.readouterr().err
    assert not out.exists()


def test_output_that_is_a_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "file"
    target.write_text("x", encoding="utf-8")
    assert main(["get", "http://127.0.0.1:1/a.bin", "-o", str(target)]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_missing_http_client_prints_the_install_hint(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "urllib3", None)  # makes `import urllib3` fail
    assert main(["get", "http://127.0.0.1:1/a.bin"]) == 2
    err = capsys.readouterr().err
    assert INSTALL_HINT in err
    assert "urllib3" in err


def test_without_rich_the_summary_is_plain_text(
    server: DemoServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)
    urls = _urls(server, "a.bin", "gone.bin")
    assert main(["get", *urls, "-o", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert re.search(r"^status\s+size\s+time\s+tries\s+file$", out, re.MULTILINE)
    assert re.search(r"^done\s+9\.8 KiB\s+\d+\.\d\d s\s+1\s+a\.bin$", out, re.MULTILINE)
    assert re.search(r"^failed\s+0 B\s+\d+\.\d\d s\s+1\s+gone\.bin$", out, re.MULTILINE)
    assert "HTTP 404 Not Found" in out


# -- the display, from reports built by hand -----------------------------------------------------
def _report(*files: FileResult) -> DownloadReport:
    return DownloadReport(files=list(files))


def test_snapshot_counts_states_and_bytes() -> None:
    report = _report(
        FileResult("http://h/done", "d/done", "done", bytes=100, size=100),
        FileResult("http://h/skip", "d/skip", "skipped", size=50),
        FileResult("http://h/active", "d/active", "cancelled", bytes=30, size=200, error=None),
        FileResult("http://h/resumed", "d/resumed", "cancelled", bytes=5, size=20, error=None),
        FileResult("http://h/pending", "d/pending", "cancelled", error="not started"),
        FileResult("http://h/failed", "d/failed", "failed", bytes=7, error="HTTP 500"),
        FileResult(
            "http://h/stopped", "d/stopped", "cancelled", bytes=9, size=90, error="cancelled"
        ),
    )
    report.files[3].resumed_from = 10
    snap = snapshot(report)
    assert (snap.files, snap.finished, snap.failed, snap.cancelled) == (7, 4, 1, 1)
    assert [f.url for f in snap.active] == ["http://h/active", "http://h/resumed"]
    assert snap.done_bytes == 100 + 50 + 30 + 15 + 7 + 9
    # a failed file counts as finished where it stopped, an interrupted one at its full size
    assert snap.known_total == 100 + 50 + 200 + 20 + 7 + 90
    # the pending file of unknown size is estimated at the mean of the known sizes
    assert snap.estimated_total == snap.known_total + (100 + 50 + 200 + 20 + 90) // 5


def test_rendered_frame_shows_the_overall_bar_and_active_files() -> None:
    from rich.console import Console

    report = _report(
        FileResult("http://h/one.iso", "d/one.iso", "done", bytes=1 << 20, size=1 << 20),
        FileResult("http://h/two.iso", "d/two.iso", "cancelled", bytes=1 << 19, size=1 << 20),
        FileResult("http://h/three", "d/three", "cancelled", bytes=4096, error=None),
    )
    report.files[1].error = None
    display = DownloadDisplay("get", stream=io.StringIO(), mode="live")
    console = Console(file=io.StringIO(), width=120, record=True)
    console.print(display.render(report))
    text = console.export_text()
    first, second, third = text.splitlines()[:3]
    assert first.startswith("get")
    assert "1/3 files" in first
    assert "ETA" in first
    assert re.search(r"two\.iso .*512\.0 KiB/1\.0 MiB\s+50%", second)
    assert re.search(r"three .*4\.0 KiB", third)


def test_summary_on_a_terminal_lists_only_unfinished_files_of_a_large_batch() -> None:
    files = [FileResult(f"http://h/{i}", f"d/{i}", "done", size=1) for i in range(100)]
    files[42] = FileResult("http://h/42", "d/42", "failed", error="HTTP 503 (after 6 attempts)")
    out = io.StringIO()
    print_summary(_report(*files), out, use_rich=True)
    text = out.getvalue()
    assert re.search(r"^failed .* 42\s*$", text, re.MULTILINE)
    assert not re.search(r"^done ", text, re.MULTILINE)
    assert "... and 99 more files, all complete" in text
    assert "1 of 100 files failed:\n  http://h/42\n    HTTP 503 (after 6 attempts)" in text


def test_summary_not_on_a_terminal_has_a_row_for_every_file() -> None:
    # Bug: stdout to a file or a pipe got a table with no rows but "... and 500 more files".
    files = [FileResult(f"http://h/{i}", f"d/{i}.bin", "done", size=1) for i in range(500)]
    out = io.StringIO()  # not a terminal: print_summary chooses by itself
    print_summary(_report(*files), out)
    lines = out.getvalue().splitlines()
    rows = [line for line in lines if re.fullmatch(r"done\s+1 B\s+0\.00 s\s+0  \d+\.bin", line)]
    assert len(rows) == 500
    assert "more files" not in out.getvalue()
    assert "─" not in out.getvalue()  # plain text, no box drawing for a script to parse around


def test_summary_of_a_large_batch_all_complete_on_a_terminal_is_the_totals_line() -> None:
    files = [FileResult(f"http://h/{i}", f"d/{i}", "done", size=1) for i in range(100)]
    out = io.StringIO()
    print_summary(_report(*files), out, use_rich=True)
    assert "more files" not in out.getvalue()
    assert out.getvalue().startswith("100 files: 100 done;")


def test_fake_terminal_gets_the_live_display(
    server: DemoServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setenv("TERM", "xterm-256color")
    urls = _urls(server, "a.bin", "b.bin")
    assert main(["get", *urls, "-o", str(tmp_path)]) == 0
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", terminal.getvalue())
    assert re.search(r"^get\s.*\s2/2 files", screen, re.MULTILINE)
    assert "\x1b[" in terminal.getvalue()  # drawn with cursor movements, not lines


# -- subprocesses: Ctrl-C and a real pseudo-terminal ---------------------------------------------
# `python -m threadwise` with Ctrl-C handled as usual, even when the test runner ignores SIGINT.
_PYTHON_M_THREADWISE = (
    "import signal, runpy; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('threadwise', run_name='__main__', alter_sys=True)"
)


def _wait_for(condition: object, what: str, timeout: float = 20.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")
def test_ctrl_c_exits_130_keeps_part_files_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with DemoServer() as fast, DemoServer(bandwidth=256 * 1024) as slow:
        fast.add("small.bin", 5000)
        big = slow.add("big.bin", 4 << 20)  # 16 s at this bandwidth: Ctrl-C comes first
        argv = ["get", fast.url("small.bin"), slow.url("big.bin"), "-o", str(out)]
        with subprocess.Popen(
            [sys.executable, "-c", _PYTHON_M_THREADWISE, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as proc:
            try:
                _wait_for(lambda: (out / "small.bin").exists(), "small.bin to be complete")
                _wait_for(lambda: (out / "big.bin.part").exists(), "big.bin to start")
                _wait_for(lambda: slow.stats.bytes_sent > 0 or big.requests > 0, "the body")
            except BaseException:
                proc.kill()
                raise
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
            stdout, stderr = proc.communicate(timeout=30)
            elapsed = time.monotonic() - sent
        assert proc.returncode == 130, stderr
        assert elapsed < 5.0
        assert "interrupted: 1 of 2 files finished" in stderr
        assert "kept as .part files" in stderr
        assert re.search(r"^done .*small\.bin", stdout, re.MULTILINE)
        assert re.search(r"^cancelled .*big\.bin", stdout, re.MULTILINE)
        assert (out / "big.bin.part").exists()
        assert not (out / "big.bin").exists()

        # The same command again finishes big.bin from where it stopped.
        slow.bandwidth = None
        assert main([*argv, "-q"]) == 0
    _assert_downloaded(fast, out, "small.bin")
    assert _sha256(out / "big.bin") == big.sha256
    assert not (out / "big.bin.part").exists()


# Ctrl-C just as a small file got its final name: `os.replace` sends SIGINT to the process
# once the rename is done. The wrapper's frame belongs to a module whose frames take the
# protection of their caller (as a C call's return does), so the handler sees the downloader's
# frame that called the rename, as it would for a signal arriving during the system call.
_CTRL_C_AFTER_RENAME = """
import os, signal, runpy
signal.signal(signal.SIGINT, signal.default_int_handler)
wrapper = (
    "def replace(src, dst, *args, **kwargs):\\n"
    "    real_replace(src, dst, *args, **kwargs)\\n"
    "    if str(dst).endswith('first.bin'):\\n"
    "        signal.raise_signal(signal.SIGINT)\\n"
)
namespace = {"__name__": "threadwise._debug", "real_replace": os.replace, "signal": signal}
exec(compile(wrapper, "<replace-then-ctrl-c>", "exec"), namespace)
os.replace = namespace["replace"]
runpy.run_module("threadwise", run_name="__main__", alter_sys=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")
def test_ctrl_c_right_after_a_file_is_renamed_reports_it_done(tmp_path: Path) -> None:
    # The file has its final name, complete: it must not be reported cancelled (it was, when
    # the interrupt landed between the rename and the file's result being set to done).
    out = tmp_path / "out"
    with DemoServer() as fast, DemoServer(bandwidth=256 * 1024) as slow:
        fast.add("first.bin", 5000)
        slow.add("second.bin", 4 << 20)  # 16 s at this bandwidth: still running at Ctrl-C
        argv = ["get", fast.url("first.bin"), slow.url("second.bin"), "-o", str(out)]
        proc = subprocess.run(
            [sys.executable, "-c", _CTRL_C_AFTER_RENAME, *argv],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 130, proc.stderr
    assert (out / "first.bin").stat().st_size == 5000
    assert re.search(r"^done .*first\.bin", proc.stdout, re.MULTILINE), proc.stdout
    assert "interrupted: 1 of 2 files finished" in proc.stderr


def _read_pty(fd: int, until: re.Pattern[str], timeout: float) -> str:
    """Read the terminal's output (escape sequences removed) until ``until`` matches."""
    import select

    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        data += chunk
        text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", data.decode("utf-8", "replace"))
        if until.search(text):
            return text
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", data.decode("utf-8", "replace"))


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_live_display_in_a_pseudo_terminal(tmp_path: Path) -> None:
    pty = pytest.importorskip("pty")
    import fcntl
    import struct
    import termios

    try:
        master, slave = pty.openpty()
    except OSError as exc:
        pytest.skip(f"no pseudo-terminal: {exc}")
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env.update(TERM="xterm-256color", PYTHONIOENCODING="utf-8")
    with DemoServer(bandwidth=512 * 1024) as slow:
        slow.add("big.bin", 8 << 20)  # 16 s at this bandwidth: Ctrl-C ends it
        argv = ["get", slow.url("big.bin"), "-o", str(tmp_path / "out")]
        with subprocess.Popen(
            [sys.executable, "-c", _PYTHON_M_THREADWISE, *argv],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
        ) as proc:
            os.close(slave)
            try:
                frame = re.compile(r"get\s.*0/1 file[^\n]*\n\s+big\.bin\s.*/8\.0 MiB\s+\d+%")
                screen = _read_pty(master, frame, timeout=20)
                proc.send_signal(signal.SIGINT)
                rest = _read_pty(master, re.compile(r"interrupted: .*\n"), timeout=20)
                proc.wait(timeout=20)
            finally:
                if proc.poll() is None:
                    proc.kill()
                os.close(master)
    assert frame.search(screen), f"no overall bar and active file on the screen:\n{screen}"
    assert "━" in screen  # the bar
    assert proc.returncode == 130
    assert "interrupted: 0 of 1 file finished" in rest


def test_progress_sees_bytes_as_they_arrive(tmp_path: Path) -> None:
    from threadwise.download import download

    samples: list[int] = []
    with DemoServer(bandwidth=256 * 1024) as slow:
        slow.add("half.bin", 512 * 1024)  # about 2 s at this bandwidth: ~20 samples
        report = download(
            [slow.url("half.bin")], tmp_path, progress=lambda r: samples.append(r.files[0].bytes)
        )
    assert report.ok
    assert any(0 < n < 512 * 1024 for n in samples), sorted(set(samples))


def test_one_file_is_said_in_the_singular() -> None:
    # Bug: "1 files" in the summary and the failure list.
    out = io.StringIO()
    failed = FileResult("http://h/x", "d/x", "failed", attempts=1, error="HTTP 503")
    print_summary(_report(failed), out, use_rich=False)
    text = out.getvalue()
    assert "1 of 1 file failed:" in text
    assert "1 file:" in text
    assert "files" not in text


def test_live_frame_says_file_for_one() -> None:
    from rich.console import Console

    display = DownloadDisplay("get", stream=io.StringIO(), mode="live")
    report = _report(FileResult("http://h/a", "d/a", "cancelled", error="not started"))
    screen = io.StringIO()
    Console(file=screen, width=120).print(display.render(report, width=120))
    text = screen.getvalue()
    assert "0/1 file " in text or text.rstrip().endswith("0/1 file")


@pytest.mark.parametrize("width", [120, 50])
def test_a_waiting_file_says_it_waits_not_0_bytes(width: int) -> None:
    # Bug: a Retry-After wait showed a silent "0 B" row for as long as it lasted.
    from rich.console import Console

    display = DownloadDisplay("get", stream=io.StringIO(), mode="live")
    waiting = FileResult("http://h/busy.bin", "d/busy.bin", "cancelled", attempts=1, error=None)
    waiting.note = "waiting 30 s: HTTP 429 Too Many Requests (Retry-After)"
    screen = io.StringIO()
    Console(file=screen, width=width).print(display.render(_report(waiting), width=width))
    row = next(line for line in screen.getvalue().splitlines() if "busy.bin" in line)
    assert "waiting 30 s" in row
    assert "0 B" not in row
    if width >= 100:
        assert "HTTP 429 Too Many Requests (Retry-After)" in row
