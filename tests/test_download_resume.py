"""Resume paths of the downloader that need a prepared .part state: segmented parts left by an
interrupted run, a part that is already complete, Retry-After given as a date."""

from __future__ import annotations

import email.utils
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from threadwise.download import DemoServer, download
from threadwise.download._http import _retry_after

MIB = 1 << 20


def write_part(dest: Path, name: str, data: bytes, meta: dict[str, object], upto: int) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    (dest / f"{name}.part").write_bytes(data[:upto])
    (dest / f"{name}.part.json").write_text(json.dumps(meta))


def test_a_segmented_part_resumes_every_segment_where_it_stopped(tmp_path: Path) -> None:
    with DemoServer() as server:
        served = server.add("big.bin", 20 * MIB)
        url = server.url("big.bin")
        data = served.data
        size = len(data)
        step = size // 4
        # An interrupted segmented run: a preallocated part, each segment partly written.
        segments = [[i * step, min(size, (i + 1) * step), 0] for i in range(4)]
        part = bytearray(size)
        for k, segment in enumerate(segments):
            done = (k + 1) * MIB // 2  # a different amount in each segment
            part[segment[0] : segment[0] + done] = data[segment[0] : segment[0] + done]
            segment[2] = done
        dest = tmp_path / "out"
        dest.mkdir()
        (dest / "big.bin.part").write_bytes(bytes(part))
        meta = {"url": url, "etag": served.etag, "size": size, "segments": segments}
        (dest / "big.bin.part.json").write_text(json.dumps(meta))
        report = download([url], dest, workers=4, per_host=4)
        result = report.files[0]
        assert result.status == "done", result
        assert result.resumed_from == sum(s[2] for s in segments)
        assert result.segments == 4
        assert served.range_requests >= 4  # every unfinished segment asked for its rest
        assert result.bytes == size - result.resumed_from  # nothing fetched twice
    assert hashlib.sha256((dest / "big.bin").read_bytes()).hexdigest() == served.sha256
    assert not (dest / "big.bin.part").exists()
    assert not (dest / "big.bin.part.json").exists()


def test_a_complete_part_is_finished_when_the_server_has_nothing_more(tmp_path: Path) -> None:
    with DemoServer() as server:
        served = server.add("whole.bin", 2 * MIB)
        url = server.url("whole.bin")
        meta = {"url": url, "etag": served.etag, "size": len(served.data)}
        write_part(tmp_path, "whole.bin", served.data, meta, upto=len(served.data))
        report = download([url], tmp_path)
        assert report.files[0].status == "done", report.files[0]
        assert report.files[0].bytes == 0  # the 416 said it was all there
    assert (tmp_path / "whole.bin").read_bytes() == served.data


def test_a_part_from_another_url_is_not_resumed(tmp_path: Path) -> None:
    with DemoServer() as server:
        served = server.add("x.bin", 2 * MIB)
        url = server.url("x.bin")
        meta = {"url": url + "?other", "etag": served.etag, "size": len(served.data)}
        write_part(tmp_path, "x.bin", b"z" * len(served.data), meta, upto=MIB)
        report = download([url], tmp_path)
        assert report.files[0].status == "done"
        assert report.files[0].resumed_from == 0
    assert (tmp_path / "x.bin").read_bytes() == served.data


def test_retry_after_as_an_http_date() -> None:
    when = email.utils.formatdate(time.time() + 5, usegmt=True)
    seconds = _retry_after(when)
    assert seconds is not None
    assert 3.0 <= seconds <= 5.5
    assert _retry_after("not a date") is None
    assert _retry_after(None) is None
    assert _retry_after("100000") == 100000.0  # not capped here: the downloader decides


def test_forced_progress_draws_a_line_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with DemoServer() as server:
        server.add("a.bin", 1000)
        report = download([server.url("a.bin")], tmp_path, progress="force")
    assert report.ok
    err = capsys.readouterr().err
    assert "1/1 files" in err


def test_bad_progress_argument_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="progress"):
        download([], tmp_path, progress=42)  # type: ignore[arg-type]


def test_the_long_campaign_runner_prints_its_counts() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "threadwise.stress", "--runs", "25", "--seed", "7"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "runs=25 " in result.stdout
    assert "leaks=0 lost=0 hangs=0" in result.stdout
    assert "scenarios:" in result.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX shell pipe")
def test_a_closed_output_pipe_ends_the_command_quietly() -> None:
    proc = subprocess.run(
        f"{sys.executable} -m threadwise tour | head -n 1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
        executable="/bin/bash",
    )
    assert proc.stdout.startswith("=")
    assert "Traceback" not in proc.stderr
    assert "BrokenPipeError" not in proc.stderr


def test_a_refused_resume_range_starts_the_file_over(tmp_path: Path) -> None:
    with DemoServer() as server:
        served = server.add("odd.bin", 2 * MIB)
        url = server.url("odd.bin")
        # The sidecar promises more bytes than the server has: asking for the rest gets a 416
        # that does not mean "complete", so the part is dropped and the file fetched again.
        meta = {"url": url, "etag": served.etag, "size": len(served.data) + 5}
        write_part(tmp_path, "odd.bin", served.data, meta, upto=len(served.data))
        report = download([url], tmp_path, backoff=0.01)
        result = report.files[0]
        assert result.status == "done", result
        assert result.attempts == 2
        assert result.resumed_from == 0
    assert (tmp_path / "odd.bin").read_bytes() == served.data


def test_the_campaign_reports_a_leaking_scenario(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from threadwise import stress

    release = threading.Event()
    leaked: list[threading.Thread] = []

    def leaky(rng: object, totals: stress.Totals) -> str | None:
        thread = threading.Thread(target=release.wait, name="campaign-leak")
        thread.start()
        leaked.append(thread)
        return None

    monkeypatch.setattr(stress, "SCENARIOS", {"leaky": leaky})
    try:
        totals = stress.Totals()
        problem = stress.run_one(1, totals)
    finally:
        release.set()
        for thread in leaked:
            thread.join()
    assert problem is not None
    assert "campaign-leak" in problem
    assert totals.leaks == 1
    assert totals.problems == [f"seed 1 (leaky): {problem}"]
