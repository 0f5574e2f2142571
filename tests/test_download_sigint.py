"""Ctrl-C during a download: a real process gets SIGINT mid-transfer, stops promptly and keeps
its ``.part`` files; the next run resumes them and ends with the right content."""

from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from threadwise.download import DemoServer, download

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="sends SIGINT to a child process (POSIX only)"
)

MiB = 1024 * 1024
STARTUP = 30.0  # generous: interpreter start and imports, outside every measurement

SCRIPT = textwrap.dedent(
    """
    import json
    import sys

    from threadwise.download import DownloadInterrupted, download

    dest, urls = sys.argv[1], sys.argv[2:]
    said = False


    def progress(report):
        global said
        # Ready once bytes are flowing into several files at once.
        if not said and sum(1 for f in report.files if f.bytes > 0) >= 4:
            said = True
            print("ready", flush=True)


    try:
        download(urls, dest, workers=8, progress=progress)
    except DownloadInterrupted as exc:
        print(json.dumps(exc.report.to_json()), flush=True)
        sys.exit(130)
    print("finished without an interrupt", flush=True)
    """
)


def test_ctrl_c_keeps_part_files_and_a_second_run_completes_them(tmp_path: Path) -> None:
    dest = tmp_path / "downloads"
    script = tmp_path / "get.py"
    script.write_text(SCRIPT, encoding="utf-8")
    with DemoServer(bandwidth=4 * MiB) as server:  # per response: 0.5 s for each file
        served = {f"file{i:02}.bin": server.add(f"file{i:02}.bin", 2 * MiB) for i in range(20)}
        urls = [server.url(name) for name in served]
        proc = subprocess.Popen(
            [sys.executable, str(script), str(dest), *urls],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            readable, _, _ = select.select([proc.stdout], [], [], STARTUP)
            line = proc.stdout.readline() if readable else ""
            if line != "ready\n":
                proc.kill()
                out, err = proc.communicate()
                pytest.fail(f"the download did not get going: {line!r}{out}\n{err}")
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=STARTUP)
            seconds = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()

        assert proc.returncode == 130, err
        assert seconds < 2.0, f"took {seconds:.2f} s to stop after SIGINT"
        first = json.loads(out)
        assert first["interrupted"] is True
        statuses = [f["status"] for f in first["files"]]
        assert "cancelled" in statuses
        assert set(statuses) <= {"done", "cancelled"}

        parts = sorted(p.name for p in dest.glob("*.part"))
        assert parts, "no .part file was kept"
        assert any((dest / p).stat().st_size > 0 for p in parts)
        for path in dest.iterdir():  # whatever carries a final name is complete
            if not path.name.endswith((".part", ".part.json")):
                assert hashlib.sha256(path.read_bytes()).hexdigest() == served[path.name].sha256
        done_first = {os.path.basename(f["path"]) for f in first["files"] if f["status"] == "done"}
        assert done_first == {
            p.name for p in dest.iterdir() if not p.name.endswith((".part", ".part.json"))
        }

        server.bandwidth = None  # the second run at full speed
        before = {name: s.range_requests for name, s in served.items()}
        report = download(urls, dest, workers=8)

    assert report.ok, str(report)
    assert not report.interrupted
    assert sorted(os.listdir(dest)) == sorted(served)  # no .part or sidecar left
    for name, original in served.items():
        assert hashlib.sha256((dest / name).read_bytes()).hexdigest() == original.sha256
    resumed = [f for f in report.files if f.resumed_from > 0]
    assert resumed, "no file was resumed from its .part"
    for result in resumed:
        assert result.path is not None
        name = os.path.basename(result.path)
        assert name + ".part" in parts
        assert served[name].range_requests > before[name]
        assert result.bytes == 2 * MiB - result.resumed_from
    for result in report.files:
        assert result.path is not None
        if os.path.basename(result.path) in done_first:
            assert result.status == "skipped"
        else:
            assert result.status == "done"


SMALL_SCRIPT = textwrap.dedent(
    """
    import json
    import sys

    from threadwise.download import DownloadInterrupted, download

    dest, urls = sys.argv[1], sys.argv[2:]
    said = False


    def progress(report):
        global said
        if not said:
            said = True
            print("ready", flush=True)


    try:
        download(urls, dest, workers=4, progress=progress)
    except DownloadInterrupted as exc:
        print(json.dumps(exc.report.to_json()), flush=True)
        sys.exit(130)
    print("finished without an interrupt", flush=True)
    """
)


def test_ctrl_c_stops_the_small_file_loop_promptly(tmp_path: Path) -> None:
    """Small files go through one loop in the calling thread: SIGINT there stops it at once,
    the files on its connections are reported cancelled, and nothing half-written is kept
    under any name."""
    from hostile_server import HostileServer

    dest = tmp_path / "downloads"
    script = tmp_path / "get.py"
    script.write_text(SMALL_SCRIPT, encoding="utf-8")
    with HostileServer() as server:
        for i in range(12):
            server.stall(f"s{i}.bin", 20_000, after=5_000)  # head and 5 kB, then nothing
        urls = [server.url(f"s{i}.bin") for i in range(12)]
        proc = subprocess.Popen(
            [sys.executable, str(script), str(dest), *urls],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            readable, _, _ = select.select([proc.stdout], [], [], STARTUP)
            line = proc.stdout.readline() if readable else ""
            assert line == "ready\n", line
            time.sleep(0.3)  # the four connections are waiting for the rest of their bodies
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=STARTUP)
            seconds = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 130, err
    assert seconds < 2.0, f"took {seconds:.2f} s to stop after SIGINT"
    report = json.loads(out)
    assert report["interrupted"] is True
    assert [f["status"] for f in report["files"]] == ["cancelled"] * 12
    assert sum(1 for f in report["files"] if f["bytes"] == 5_000) == 4  # those in flight
    assert list(dest.iterdir()) == []
