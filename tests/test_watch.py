"""``threadwise watch``: runs a script with a live table of its threads, in a real terminal
(a pseudo-terminal read like a screen) and as plain text; keeps the script's exit code."""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import re
import select
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import termios
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from threadwise.cli import _watch, main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "watch_pipeline.py"

# `threadwise watch ...` through the subcommand's own parser, as the CLI registers it.
WATCH = [
    sys.executable,
    "-c",
    "import argparse, sys\n"
    "from threadwise.cli import _watch\n"
    "parser = argparse.ArgumentParser(prog='threadwise')\n"
    "_watch.add_parser(parser.add_subparsers())\n"
    "args = parser.parse_args(sys.argv[1:])\n"
    "sys.exit(args.handler(args))\n",
    "watch",
]

_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>78]"
)


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text).replace("\r", "")


@dataclass
class Screen:
    early: str  # what the terminal showed during the first second, ANSI codes removed
    full: str  # everything until the process ended, ANSI codes removed
    returncode: int


def run_in_pty(args: list[str], *, early: float = 1.0, timeout: float = 30.0) -> Screen:
    """Run ``args`` with a pseudo-terminal (200x50) as stdin, stdout and stderr; ``early`` is
    what the screen showed in the first ``early`` seconds after the program's first output."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="200", LINES="50")
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT)
    os.close(slave)
    data = b""
    early_data = b""
    started = time.monotonic()
    # The early window starts at the first output, so that a slow interpreter start-up on a
    # busy machine does not eat it.
    first_output: float | None = None
    try:
        while True:
            if time.monotonic() - started > timeout:
                raise AssertionError(f"still running after {timeout} s: {data[-2000:]!r}")
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every process holding the terminal has closed it
                    chunk = b""
                if not chunk:
                    break
                data += chunk
                if first_output is None:
                    first_output = time.monotonic()
            if first_output is None or time.monotonic() - first_output <= early:
                early_data = data
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
    return Screen(
        strip_ansi(early_data.decode(errors="replace")),
        strip_ansi(data.decode(errors="replace")),
        proc.returncode,
    )


def tables_on(screen: str) -> list[dict[str, list[str]]]:
    """Every complete rich table on the screen, each as thread name -> the other cells."""
    tables = []
    rows: dict[str, list[str]] | None = None
    for line in screen.splitlines():
        if line.startswith("┏"):  # top border: a new drawing of the table
            rows = {}
        elif line.startswith("│") and rows is not None:
            cells = [cell.strip() for cell in line.strip("│").split("│")]
            rows[cells[0]] = cells[1:]
        elif line.startswith("└") and rows is not None:  # bottom border: complete
            tables.append(rows)
            rows = None
    assert tables, f"no complete table on the screen:\n{screen}"
    return tables


# -- in a terminal -----------------------------------------------------------------------------


def test_watch_shows_the_pipeline_threads_live_in_a_terminal() -> None:
    screen = run_in_pty([*WATCH, "--interval", "0.2", str(EXAMPLE)], early=1.0)
    assert screen.returncode == 0, screen.full

    # Within the first second, the table is on the screen with the script's threads.
    assert "threadwise watch" in screen.early
    header = next(line for line in screen.early.splitlines() if line.startswith("┃"))
    assert [c.strip() for c in header.strip("┃").split("┃")] == [
        "thread",
        "state",
        "for s",
        "task",
        "group",
        "blocked on",
    ]
    tables = tables_on(screen.early)
    rows = tables[-1]
    assert set(rows) >= {
        "MainThread",
        "heartbeat (daemon)",
        *(f"thumbnails-fetch-{i} (daemon)" for i in range(1, 5)),
        "thumbnails-resize-1 (daemon)",
        "thumbnails-resize-2 (daemon)",
        "thumbnails-store-1 (daemon)",
    }, rows
    assert not any("threadwise-watch" in name for name in rows)  # the sampler is not shown
    # Columns: state, for s, task, group, blocked on. Each row is consistent...
    for name, (state, seconds, task, group, blocked_on) in rows.items():
        assert state in {"RUNNING", "BLOCKED"}, (name, state)
        assert (state == "BLOCKED") == bool(blocked_on), (name, state, blocked_on)
        assert float(seconds) >= 0
        assert group == ""
        if name != "MainThread":
            assert task == name.removesuffix(" (daemon)")
    # ...and over the first second the screen showed who waits for what.
    seen = {(name, cells[0], cells[4]) for table in tables for name, cells in table.items()}
    for i in (1, 2):
        assert (f"thumbnails-resize-{i} (daemon)", "BLOCKED", "Queue.get on 'resize inbox'") in seen
    for i in range(1, 5):
        assert (f"thumbnails-fetch-{i} (daemon)", "BLOCKED", "sleep(0.2)") in seen
    assert ("MainThread", "BLOCKED", "Queue.get on 'thumbnails output'") in seen
    assert ("heartbeat (daemon)", "BLOCKED", "sleep(0.5)") in seen
    # The script's own output still reaches the terminal.
    assert "heartbeat: 0 thumbnails stored so far" in screen.early

    # When the script ends: its report, then the summary.
    assert "stored 40 of 40 thumbnails; bottleneck: fetch" in screen.full
    summary = screen.full[screen.full.index("threadwise watch: the script ran") :]
    assert re.match(r"threadwise watch: the script ran \d+\.\d\d s and exited with 0; ", summary)
    assert "thumbnails-fetch-1" in summary
    assert "heartbeat" in summary
    assert "longest blocked waits:" in summary


def short_pipeline(tmp_path: Path, images: int, exit_code: int) -> Path:
    """A variant of the example: fewer images, and a chosen exit status."""
    variant = tmp_path / f"pipeline_{images}_exit_{exit_code}.py"
    variant.write_text(
        textwrap.dedent(
            f"""
            import runpy, sys
            example = runpy.run_path({str(EXAMPLE)!r})  # not as __main__: just load it
            example["main"](images={images})
            sys.exit({exit_code})
            """
        ),
        encoding="utf-8",
    )
    return variant


def test_watch_keeps_the_exit_code_in_a_terminal(tmp_path: Path) -> None:
    variant = short_pipeline(tmp_path, images=8, exit_code=3)
    screen = run_in_pty([*WATCH, "--interval", "0.1", str(variant)], early=0.3)
    assert screen.returncode == 3, screen.full
    assert "stored 8 of 8 thumbnails" in screen.full
    assert "exited with 3;" in screen.full
    assert "thumbnails-fetch-1" in screen.full


# -- plain text and the script's environment ---------------------------------------------------


def run_watch(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*WATCH, *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=cwd,
        env={**os.environ, **env},
    )


def test_plain_mode_prints_tables_and_the_summary_without_a_terminal(tmp_path: Path) -> None:
    proc = run_watch("--plain", "--interval", "0.15", str(short_pipeline(tmp_path, 20, 0)))
    assert proc.returncode == 0, proc.stderr
    # The script's stdout is its own: no table in it.
    assert "stored 20 of 20 thumbnails; bottleneck: fetch" in proc.stdout
    assert "heartbeat: " in proc.stdout
    assert "blocked on" not in proc.stdout
    # stderr: several tables, then the summary.
    tables = [t for t in proc.stderr.split("\n\n") if t.startswith("thread ")]
    assert len(tables) >= 3, proc.stderr
    all_tables = "\n".join(tables)
    for pattern in (
        r"^thumbnails-resize-1 \(daemon\) +BLOCKED +[\d.]+  thumbnails-resize-1 +"
        r"Queue\.get on 'resize inbox'$",
        r"^thumbnails-fetch-1 \(daemon\) +BLOCKED +[\d.]+  thumbnails-fetch-1 +sleep\(0\.2\)$",
        r"^heartbeat \(daemon\) +BLOCKED +[\d.]+  heartbeat +sleep\(0\.5\)$",
        r"^MainThread +BLOCKED +[\d.]+ +Queue\.get on 'thumbnails output'$",
    ):
        assert re.search(pattern, all_tables, re.MULTILINE), (pattern, all_tables)
    assert "threadwise-watch" not in proc.stderr.split("threadwise watch: the script ran")[0]
    assert "threadwise watch: the script ran" in proc.stderr
    assert "exited with 0; 10 threads seen (at most 10 at once)" in proc.stderr
    assert proc.stderr.rstrip().splitlines()[-1].startswith("    ")  # a longest-wait line


def test_without_a_terminal_only_the_summary_is_printed(tmp_path: Path) -> None:
    proc = run_watch("--interval", "0.1", str(short_pipeline(tmp_path, 8, 0)))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("threadwise watch: the script ran")
    assert "blocked on" not in proc.stderr


def test_the_script_sees_itself_run_as_main_with_its_arguments(tmp_path: Path) -> None:
    script = tmp_path / "show_env.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            import helper  # next to the script: its folder is on sys.path
            print(__name__, __file__ == sys.argv[0], sys.argv[1:], helper.VALUE)
            """
        ),
        encoding="utf-8",
    )
    (tmp_path / "helper.py").write_text("VALUE = 42\n", encoding="utf-8")
    proc = run_watch(str(script), "x", "--flag", "-m", "y")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "__main__ True ['x', '--flag', '-m', 'y'] 42\n"


def test_a_module_runs_with_dash_m(tmp_path: Path) -> None:
    pkg = tmp_path / "watched_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("", encoding="utf-8")
    (pkg / "job.py").write_text(
        textwrap.dedent(
            """
            import sys
            import threadwise as tw
            if __name__ == "__main__":
                print("args:", sys.argv[1:], flush=True)
                tw.spawn(tw.sleep, 0.05).result()
                sys.exit(4)
            """
        ),
        encoding="utf-8",
    )
    proc = run_watch("-m", "watched_pkg.job", "a", "b", cwd=tmp_path, PYTHONPATH=str(tmp_path))
    assert proc.returncode == 4, proc.stderr
    assert proc.stdout == "args: ['a', 'b']\n"
    assert "exited with 4;" in proc.stderr


@pytest.mark.parametrize(
    ("body", "code", "in_stderr"),
    [
        ("pass", 0, ""),
        ("raise SystemExit(7)", 7, ""),
        ("import sys; sys.exit('fatal: no config')", 1, "fatal: no config"),
        ("raise ValueError('bad row')", 1, "ValueError: bad row"),
    ],
)
def test_the_exit_status_is_the_scripts(
    tmp_path: Path, body: str, code: int, in_stderr: str
) -> None:
    script = tmp_path / "ends.py"
    script.write_text(body + "\n", encoding="utf-8")
    proc = run_watch(str(script))
    assert proc.returncode == code, proc.stderr
    assert in_stderr in proc.stderr
    assert f"exited with {code};" in proc.stderr


def test_ctrl_c_reaches_the_script(tmp_path: Path) -> None:
    script = tmp_path / "interruptible.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            import threadwise as tw
            try:
                print("ready", flush=True)
                tw.Event(name="forever").wait()
            except KeyboardInterrupt:
                print("the script got Ctrl-C", flush=True)
                sys.exit(5)
            """
        ),
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [*WATCH, "--interval", "0.1", str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline() == "ready\n"
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert out == "the script got Ctrl-C\n"
    assert proc.returncode == 5, err
    assert "exited with 5;" in err


# -- usage errors ------------------------------------------------------------------------------


def test_usage_errors() -> None:
    proc = run_watch()
    assert proc.returncode == 2
    assert "give a script or -m MODULE" in proc.stderr

    proc = run_watch("no/such/script.py")
    assert proc.returncode == 2
    assert "no such script: no/such/script.py" in proc.stderr

    for bad in ("0", "-1", "soon", "inf"):
        proc = run_watch("--interval", bad, str(EXAMPLE))
        assert proc.returncode == 2, bad
        assert "--interval" in proc.stderr


def test_run_in_process_with_a_namespace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "tiny.py"
    script.write_text(
        "import threadwise as tw\nprint(tw.spawn(lambda: 6 * 7).result())\n", encoding="utf-8"
    )
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    code = _watch.run(
        argparse.Namespace(interval=0.05, plain=True, module=None, script=str(script), args=[])
    )
    assert code == 0
    assert (sys.argv, sys.path) == (saved_argv, saved_path)  # restored
    captured = capsys.readouterr()
    assert captured.out == "42\n"
    assert "threadwise watch: the script ran" in captured.err
    assert "exited with 0;" in captured.err


def test_the_threadwise_command_has_the_watch_subcommand(tmp_path: Path) -> None:
    script = tmp_path / "exit_6.py"
    script.write_text("import sys\nprint('hello')\nsys.exit(6)\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "threadwise", "watch", "--plain", str(script)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 6, proc.stderr
    assert proc.stdout == "hello\n"
    assert "exited with 6;" in proc.stderr


def test_add_parser_registers_the_subcommand() -> None:
    parser = argparse.ArgumentParser()
    _watch.add_parser(parser.add_subparsers())
    args = parser.parse_args(["watch", "--interval", "2", "--plain", "s.py", "a", "--b"])
    assert args.interval == 2.0
    assert args.plain is True
    assert args.script == "s.py"
    assert args.args == ["a", "--b"]
    assert args.module is None
    assert args.handler is _watch.run


# -- what a terminal really shows (tmux renders the escape codes like a terminal does) -------

PRINTING_SCRIPT = textwrap.dedent(
    """
    import threadwise as tw

    def background():
        tw.sleep(1.5)

    task = tw.spawn(background)
    for i in range(6):
        tw.sleep(0.15)
        print(f"script line {i}", flush=True)
    task.result()
    """
)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_the_scripts_output_stays_on_the_screen_under_the_live_table(tmp_path: Path) -> None:
    script = tmp_path / "prints.py"
    script.write_text(PRINTING_SCRIPT, encoding="utf-8")
    rc_file = tmp_path / "rc"
    command = " ".join(shlex.quote(a) for a in [*WATCH, "--interval", "0.05", str(script)])
    tmux = ["tmux", "-L", f"threadwise-test-{os.getpid()}", "-f", os.devnull]
    subprocess.run(
        [
            *tmux,
            "new-session",
            "-d",
            "-x",
            "160",
            "-y",
            "50",
            f"cd {shlex.quote(str(ROOT))} && {command}; echo $? > {shlex.quote(str(rc_file))}; "
            "sleep 60",
        ],
        check=True,
        timeout=10,
    )
    try:
        deadline = time.monotonic() + 30
        while not rc_file.exists() or not rc_file.read_text().strip():
            assert time.monotonic() < deadline, "the watched script did not finish"
            time.sleep(0.05)
        screen = subprocess.run(
            [*tmux, "capture-pane", "-p", "-S", "-", "-E", "-"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
    finally:
        subprocess.run([*tmux, "kill-server"], check=False, timeout=10)
    assert rc_file.read_text().strip() == "0"
    assert "threadwise watch: the script ran" in screen
    # Every line the script printed is still on the screen (or in its scrollback): the live
    # table must not draw over the script's own output.
    missing = [f"script line {i}" for i in range(6) if f"script line {i}" not in screen]
    assert missing == [], f"lines erased by the live table: {missing}\n{screen}"


def test_watch_help_is_plain_text_not_rest(capsys: pytest.CaptureFixture[str]) -> None:
    # The description was the module docstring's first line, reST backquotes and all.
    assert main(["watch", "--help"]) == 0
    out = capsys.readouterr().out
    assert "``" not in out
    assert "Run a Python script" in out
