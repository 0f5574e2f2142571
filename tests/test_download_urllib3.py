"""The same hostile servers with the lean client switched off: every request goes through
urllib3 (the path https, proxies and compressed bodies take)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from hostile_server import HostileServer

from threadwise.download import DownloadReport, FileResult, download
from threadwise.download import _download as download_module

KiB = 1024
MiB = 1024 * KiB


@pytest.fixture(autouse=True)
def urllib3_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download_module._fast, "AVAILABLE", False)


def only(report: DownloadReport) -> FileResult:
    assert len(report.files) == 1
    return report.files[0]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_stall_then_resume(hostile: HostileServer, tmp_path: Path) -> None:
    served = hostile.stall("s.bin", 200 * KiB, after=30_000)
    result = only(download([hostile.url("s.bin")], tmp_path, retries=2, timeout=0.5, backoff=0))
    assert result.status == "done", result.error
    assert hostile.stats.connections == 2
    assert served.request_headers[1]["Range"] == f"bytes=30000-{200 * KiB - 1}"
    assert sha(tmp_path / "s.bin") == served.sha256


def test_reset_keeps_the_bytes(hostile: HostileServer, tmp_path: Path) -> None:
    served = hostile.reset("r.bin", 2_000_000, after=700_000)
    result = only(download([hostile.url("r.bin")], tmp_path, retries=2, backoff=0))
    assert result.status == "done", result.error
    assert served.request_headers[1]["Range"] == "bytes=700000-1999999"
    assert result.bytes == 2_000_000
    assert sha(tmp_path / "r.bin") == served.sha256


def test_cut_short_and_extra_bytes(hostile: HostileServer, tmp_path: Path) -> None:
    cut = hostile.cut("c.bin", 100_000, after=40_000)
    hostile.add("x.bin", 1000, extra_bytes=10)
    report = download([hostile.url("c.bin"), hostile.url("x.bin")], tmp_path, backoff=0)
    first, second = report.files
    assert first.status == "done", first.error
    assert sha(tmp_path / "c.bin") == cut.sha256
    assert second.status == "failed"
    assert second.error == "the server sent more bytes than its Content-Length"


def test_statuses_redirects_and_refused(hostile: HostileServer, tmp_path: Path) -> None:
    target = hostile.add("t.bin", 5000)
    hostile.add("go", redirect_to=hostile.url("t.bin"))
    hostile.add("busy.bin", 10, fail_times=1, fail_status=503)
    report = download(
        [hostile.url("go"), hostile.url("missing.bin"), hostile.url("busy.bin"), hostile.refused()],
        tmp_path,
        backoff=0,
    )
    assert [f.status for f in report.files] == ["done", "failed", "done", "failed"]
    assert (tmp_path / "go").read_bytes() == target.data
    assert report.files[1].error == "HTTP 404 Not Found"
    assert report.files[3].error is not None
    assert report.files[3].error.startswith("connection refused by 127.0.0.1:")


def test_segments_and_a_disposition_name(hostile: HostileServer, tmp_path: Path) -> None:
    big = hostile.add("big.bin", 4 * MiB)
    named = hostile.disposition("get", 3000, filename="named.txt")
    report = download(
        [hostile.url("big.bin"), hostile.url("get")], tmp_path, split=4, min_split_size=MiB
    )
    assert report.ok, report
    assert report.files[0].segments == 4
    assert sha(tmp_path / "big.bin") == big.sha256
    assert sha(tmp_path / "named.txt") == named.sha256
    assert sorted(os.listdir(tmp_path)) == ["big.bin", "named.txt"]


def test_stalled_head_is_a_timeout(hostile: HostileServer, tmp_path: Path) -> None:
    hostile.add("slow.bin", 10, latency=2.0)
    result = only(download([hostile.url("slow.bin")], tmp_path, retries=0, timeout=0.3))
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.startswith("no response from 127.0.0.1:")
