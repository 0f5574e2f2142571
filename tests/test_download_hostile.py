"""Regression tests for issue 12's bugs 1-8, each against the hostile server fixture
(tests/hostile_server.py): stalls, resets, servers that change files, Content-Disposition
names, path manifests, 429 with long Retry-After, refused connections, a full disk."""

from __future__ import annotations

import errno
import hashlib
import os
import time
from pathlib import Path

import pytest
from hostile_server import HostileServer

from threadwise.download import DownloadReport, FileResult, download
from threadwise.download import _download as download_module

KiB = 1024
MiB = 1024 * KiB


def only(report: DownloadReport) -> FileResult:
    assert len(report.files) == 1
    return report.files[0]


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- bug 1: a connection that saw an error is closed, never reused --------------------------------


def test_a_stalled_connection_is_not_reused_by_the_retry(
    hostile: HostileServer, tmp_path: Path
) -> None:
    served = hostile.stall("s.bin", 200 * KiB, after=30_000)
    result = only(download([hostile.url("s.bin")], tmp_path, retries=2, timeout=0.5, backoff=0))

    assert result.status == "done", result.error
    assert result.attempts == 2
    # Each attempt on its own TCP connection: the stalled one was closed, not pooled.
    assert hostile.stats.connections == 2 == served.requests
    assert served.request_headers[1]["Range"] == f"bytes=30000-{200 * KiB - 1}"
    assert sha256_of(tmp_path / "s.bin") == served.sha256


def test_a_server_that_always_stalls_gets_a_message_that_says_so(
    hostile: HostileServer, tmp_path: Path
) -> None:
    hostile.stall("s.bin", 200 * KiB, after=30_000, times=10)
    result = only(download([hostile.url("s.bin")], tmp_path, retries=1, timeout=0.3, backoff=0))

    assert result.status == "failed"
    assert result.error == (
        "no data for 0.3 s (the server stalled after 60000 bytes) (after 2 attempts)"
    )
    assert hostile.stats.connections == 2


# -- bug 2: bytes received before a reset are kept, and the retry asks for the rest --------------


def test_bytes_before_a_connection_reset_are_kept(hostile: HostileServer, tmp_path: Path) -> None:
    size = 2_000_000
    served = hostile.reset("r.bin", size, after=700_000, times=2)
    result = only(download([hostile.url("r.bin")], tmp_path, retries=3, backoff=0))

    assert result.status == "done", result.error
    assert result.attempts == 3
    ranges = [h.get("Range") for h in served.request_headers]
    assert ranges == [None, f"bytes=700000-{size - 1}", f"bytes=1400000-{size - 1}"]
    assert result.bytes == size  # nothing received twice
    assert sha256_of(tmp_path / "r.bin") == served.sha256


def test_a_server_ignoring_range_after_a_reset_gets_the_file_whole(
    hostile: HostileServer, tmp_path: Path
) -> None:
    served = hostile.add("r.bin", 300_000, reset_after=100_000, ignore_range=True)
    result = only(download([hostile.url("r.bin")], tmp_path, retries=2, backoff=0))

    assert result.status == "done", result.error
    assert served.requests == 2
    assert served.range_requests == 0
    assert sha256_of(tmp_path / "r.bin") == served.sha256  # no duplicated prefix


# -- bug 4: a name from Content-Disposition is the same on every rerun ----------------------------


def test_content_disposition_reruns_are_idempotent(hostile: HostileServer, tmp_path: Path) -> None:
    served = hostile.disposition("get", 5000, filename="report.txt")
    url = hostile.url("get") + "?id=7"
    for _ in range(3):
        result = only(download([url], tmp_path))
        assert result.status == "done", result.error
        assert result.path == os.path.join(tmp_path, "report.txt")
    assert os.listdir(tmp_path) == ["report.txt"]
    assert sha256_of(tmp_path / "report.txt") == served.sha256


def test_a_different_file_under_a_taken_disposition_name_gets_a_number(
    hostile: HostileServer, tmp_path: Path
) -> None:
    (tmp_path / "report.txt").write_bytes(b"someone else's report")
    hostile.disposition("a", 5000, filename="report.txt")
    result = only(download([hostile.url("a")], tmp_path))
    assert result.path == os.path.join(tmp_path, "report (1).txt")
    assert (tmp_path / "report.txt").read_bytes() == b"someone else's report"


# -- bug 5: a sha256sum manifest with paths verifies, and unmatched entries are reported ---------


def test_a_manifest_of_paths_is_applied_and_unmatched_entries_warned(
    hostile: HostileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    good = hostile.add("a.bin", 4000)
    hostile.add("b.bin", 4000)
    manifest = tmp_path / "SHA256SUMS"
    manifest.write_text(
        f"{good.sha256}  downloads/a.bin\n"
        f"{'0' * 64}  downloads/b.bin\n"  # wrong on purpose: proves the entry is used
        f"{'1' * 64}  downloads/c.bin\n",  # matches no URL
        encoding="utf-8",
    )
    report = download(
        [hostile.url("a.bin"), hostile.url("b.bin")], "downloads", checksums=str(manifest)
    )
    a, b = report.files
    assert a.status == "done"
    assert b.status == "failed"
    assert b.error is not None
    assert "sha256 mismatch" in b.error
    assert report.warnings == [
        "checksums: 1 entry matches no download and verifies nothing: 'downloads/c.bin'"
    ]


def test_a_manifest_with_absolute_paths_and_dot_slash_matches(
    hostile: HostileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    hostile.add("a.bin", 4000)
    hostile.add("b.bin", 4000)
    manifest = {
        str(tmp_path / "out" / "a.bin"): "sha256:" + "0" * 64,
        "./out/b.bin": "sha256:" + "0" * 64,
    }
    report = download([hostile.url("a.bin"), hostile.url("b.bin")], "out", checksums=manifest)
    assert [f.status for f in report.files] == ["failed", "failed"]
    assert report.warnings == []


# -- bug 6: our User-Agent is sent even when headers are given -----------------------------------


def test_user_agent_survives_extra_headers(hostile: HostileServer, tmp_path: Path) -> None:
    served = hostile.add("a.bin", 100)
    download([hostile.url("a.bin")], tmp_path, headers={"X-Trace": "42"})
    sent = served.request_headers[0]
    assert sent["User-Agent"].startswith("threadwise/")
    assert sent["X-Trace"] == "42"


# -- bug 7: a file that changed on the server, same size, is downloaded again -------------------


def test_a_changed_file_of_the_same_size_is_not_skipped(
    hostile: HostileServer, tmp_path: Path
) -> None:
    served = hostile.changing("c.bin", 50_000)
    url = hostile.url("c.bin")
    assert only(download([url], tmp_path)).status == "done"
    assert only(download([url], tmp_path)).status == "skipped"  # unchanged: skipped
    served.change()
    result = only(download([url], tmp_path))
    assert result.status == "done"
    assert sha256_of(tmp_path / "c.bin") == served.sha256
    assert only(download([url], tmp_path)).status == "skipped"


def test_a_changed_file_is_seen_through_last_modified_alone(
    hostile: HostileServer, tmp_path: Path
) -> None:
    served = hostile.changing("c.bin", 50_000)
    url = hostile.url("c.bin")
    download([url], tmp_path)
    if hasattr(os, "removexattr"):  # only the mtime is left to compare
        try:
            os.removexattr(tmp_path / "c.bin", "user.threadwise.etag")
        except OSError:
            pass
    served.change()
    assert only(download([url], tmp_path)).status == "done"
    assert sha256_of(tmp_path / "c.bin") == served.sha256


# -- bug 8: what the user sees -------------------------------------------------------------------


def test_workers_alone_set_the_connections_to_one_host(
    hostile: HostileServer, tmp_path: Path
) -> None:
    hostile.latency = 2.0  # every request still open when the last one starts, even if slow
    urls = [hostile.url(hostile_name) for hostile_name in _names(hostile, 12)]
    report = download(urls, tmp_path, workers=12)
    assert report.ok
    assert hostile.stats.peak_concurrent > 8  # not capped at 8 by a per-host default


def _names(server: HostileServer, n: int) -> list[str]:
    names = [f"f{i}.bin" for i in range(n)]
    for name in names:
        server.add(name, 1000)
    return names


def test_a_bare_word_is_not_a_url_and_the_message_says_what_to_type(tmp_path: Path) -> None:
    report = download(["none", "example.com/a.bin"], tmp_path)
    assert [f.error for f in report.files] == [
        "not a URL: 'none' (did you mean http://none?)",
        "not a URL: 'example.com/a.bin' (did you mean http://example.com/a.bin?)",
    ]
    assert [f.attempts for f in report.files] == [0, 0]


def test_a_retry_after_beyond_the_cap_fails_at_once_and_says_why(
    hostile: HostileServer, tmp_path: Path
) -> None:
    hostile.too_many("busy.bin", 100, retry_after="3600", times=5)
    started = time.monotonic()
    result = only(download([hostile.url("busy.bin")], tmp_path))
    assert time.monotonic() - started < 5
    assert result.status == "failed"
    assert result.error == (
        "HTTP 429 Too Many Requests: the server asks to wait 3600 s, more than "
        "max_retry_after (120 s)"
    )


def test_a_retry_after_wait_is_shown_in_the_note(hostile: HostileServer, tmp_path: Path) -> None:
    hostile.too_many("busy.bin", 100, retry_after="1", times=1)
    notes: set[str] = set()

    def watch(report: DownloadReport) -> None:
        note = report.files[0].note
        if note:
            notes.add(note)

    result = only(download([hostile.url("busy.bin")], tmp_path, progress=watch))
    assert result.status == "done"
    assert notes == {"waiting 1 s: HTTP 429 Too Many Requests (Retry-After)"}
    assert result.note is None


def test_counts_in_texts_are_singular_for_one(hostile: HostileServer, tmp_path: Path) -> None:
    hostile.add("broken.bin", 10, status=503)
    report = download([hostile.url("broken.bin")], tmp_path, retries=0)
    assert report.summary().startswith("1 file: 0 done, 1 failed;")
    assert report.files[0].error == "HTTP 503 Service Unavailable (after 1 attempt)"


def test_a_full_disk_stops_the_batch_and_leaves_no_empty_parts(
    hostile: HostileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(download_module, "_FALLOCATE", no_space)
    for i in range(10):
        hostile.add(f"f{i}.bin", 2 * MiB)  # large enough to be reserved before writing
    urls = [hostile.url(f"f{i}.bin") for i in range(10)]
    report = download(urls, tmp_path, workers=1)
    first, *rest = report.files
    assert first.error == "the disk is full (ENOSPC) writing f0.bin"
    assert {f.error for f in rest} == {"not started: the disk is full"}
    assert os.listdir(tmp_path) == []  # no empty .part files left behind
    assert "the disk is full: the files not started yet were not tried" in report.warnings
    assert hostile.stats.requests == 1


def test_a_full_disk_on_small_files_stops_the_batch_too(
    hostile: HostileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(fd: int, data: memoryview, offset: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(download_module, "_write_all", no_space)
    report = download([hostile.url(n) for n in _names(hostile, 5)], tmp_path, workers=1)
    assert report.files[0].error == "the disk is full (ENOSPC) writing f0.bin"
    assert {f.error for f in report.files[1:]} == {"not started: the disk is full"}
    assert os.listdir(tmp_path) == []


def test_a_full_disk_while_writing_keeps_a_resumable_part(
    hostile: HostileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = hostile.add("big.bin", 3 * MiB)
    real_write = download_module._write_all
    written = [0]

    def fill_up(fd: int, data: memoryview, offset: int) -> None:
        if written[0] >= MiB:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(fd, data, offset)
        written[0] += len(data)

    monkeypatch.setattr(download_module, "_write_all", fill_up)
    result = only(download([hostile.url("big.bin")], tmp_path))
    assert result.status == "failed"
    assert result.error == "the disk is full (ENOSPC) writing big.bin"
    assert sorted(os.listdir(tmp_path)) == ["big.bin.part", "big.bin.part.json"]
    monkeypatch.setattr(download_module, "_write_all", real_write)
    again = only(download([hostile.url("big.bin")], tmp_path))
    assert again.status == "done"
    assert again.resumed_from >= MiB
    assert sha256_of(tmp_path / "big.bin") == served.sha256


def test_without_resume_a_complete_file_is_still_skipped(
    hostile: HostileServer, tmp_path: Path
) -> None:
    hostile.add("a.bin", 5000)
    url = hostile.url("a.bin")
    assert only(download([url], tmp_path)).status == "done"
    (tmp_path / "b.bin.part").write_bytes(b"stale")
    assert only(download([url], tmp_path, resume=False)).status == "skipped"


def test_a_server_without_ranges_skips_by_its_validators(
    hostile: HostileServer, tmp_path: Path
) -> None:
    served = hostile.add("a.bin", 5000, accept_ranges=False)
    url = hostile.url("a.bin")
    assert only(download([url], tmp_path)).status == "done"
    assert only(download([url], tmp_path)).status == "skipped"  # 200, same ETag, same size
    served.change()
    assert only(download([url], tmp_path)).status == "done"
    assert sha256_of(tmp_path / "a.bin") == served.sha256


# -- large bodies go from the socket to the file by splice: the same rules ------------------------


@pytest.fixture
def splices(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the bytes moved by splice, so a test knows that path was taken."""
    from threadwise.download import _fast

    moved: list[int] = []
    real = _fast.Response.splice_into

    def counting(
        self: _fast.Response, fd: int, offset: int, size: int, pipe: tuple[int, int]
    ) -> int:
        n = real(self, fd, offset, size, pipe)
        moved.append(n)
        return n

    monkeypatch.setattr(_fast.Response, "splice_into", counting)
    return moved


@pytest.mark.skipif(not hasattr(os, "splice"), reason="no os.splice here")
def test_a_spliced_body_keeps_its_bytes_across_a_reset(
    hostile: HostileServer, tmp_path: Path, splices: list[int]
) -> None:
    size = 12 * MiB
    served = hostile.reset("r.bin", size, after=5 * MiB, times=1)
    result = only(download([hostile.url("r.bin")], tmp_path, split=1, retries=2, backoff=0))

    assert result.status == "done", result.error
    assert sum(splices) >= size - 5 * MiB  # the bytes went through splice
    ranges = [h.get("Range") for h in served.request_headers]
    assert ranges == [None, f"bytes={5 * MiB}-{size - 1}"]
    assert result.bytes == size
    assert sha256_of(tmp_path / "r.bin") == served.sha256


@pytest.mark.skipif(not hasattr(os, "splice"), reason="no os.splice here")
def test_a_spliced_body_that_stalls_times_out_and_resumes(
    hostile: HostileServer, tmp_path: Path, splices: list[int]
) -> None:
    size = 6 * MiB
    served = hostile.stall("s.bin", size, after=5 * MiB)
    result = only(
        download([hostile.url("s.bin")], tmp_path, split=1, retries=2, timeout=0.5, backoff=0)
    )

    assert result.status == "done", result.error
    assert result.attempts == 2
    assert splices
    assert served.request_headers[1]["Range"] == f"bytes={5 * MiB}-{size - 1}"
    assert sha256_of(tmp_path / "s.bin") == served.sha256


@pytest.mark.skipif(not hasattr(os, "splice"), reason="no os.splice here")
def test_a_full_disk_while_splicing_keeps_a_resumable_part(
    hostile: HostileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = hostile.add("big.bin", 12 * MiB)
    real_splice = os.splice
    written = [0]

    def fill_up(src: int, dst: int, count: int, *args: object, **kwargs: object) -> int:
        if kwargs.get("offset_dst") is not None:  # into the file
            if written[0] >= 2 * MiB:
                raise OSError(errno.ENOSPC, "No space left on device")
            n = real_splice(src, dst, count, *args, **kwargs)  # type: ignore[arg-type]
            written[0] += n
            return n
        return real_splice(src, dst, count, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "splice", fill_up)
    result = only(download([hostile.url("big.bin")], tmp_path, split=1))
    assert result.status == "failed"
    assert result.error == "the disk is full (ENOSPC) writing big.bin"
    assert sorted(os.listdir(tmp_path)) == ["big.bin.part", "big.bin.part.json"]
    monkeypatch.setattr(os, "splice", real_splice)
    again = only(download([hostile.url("big.bin")], tmp_path, split=1))
    assert again.status == "done", again.error
    assert again.resumed_from >= MiB
    assert sha256_of(tmp_path / "big.bin") == served.sha256
