"""kill -9 in the middle of a segmented download, then a rerun: the sidecar recorded the
segments' progress as they went, so the rerun resumes from nearly everything on disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from threadwise.download import DemoServer, download

MiB = 1 << 20
SIZE = 24 * MiB

SCRIPT = textwrap.dedent(
    """
    import sys
    from threadwise.download import download
    download([sys.argv[2]], sys.argv[1], workers=4, split=4, min_split_size=4 << 20)
    """
)


def on_disk(part: bytes, data: bytes, segments: list[list[int]]) -> int:
    """Bytes of ``part`` that hold the right data: each segment's longest correct prefix."""
    total = 0
    for start, end, _ in segments:
        lo, hi = 0, end - start  # binary search: the prefix that matches is monotone
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if part[start : start + mid] == data[start : start + mid]:
                lo = mid
            else:
                hi = mid - 1
        total += lo
    return total


def test_kill_9_mid_segmented_download_then_rerun_resumes(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    script = tmp_path / "get.py"
    script.write_text(SCRIPT, encoding="utf-8")
    with DemoServer(bandwidth=3 * MiB) as server:  # per response: 4 segments, ~12 MiB/s
        served = server.add("big.bin", SIZE)
        url = server.url("big.bin")
        proc = subprocess.Popen([sys.executable, str(script), str(dest), url])
        sidecar = dest / "big.bin.part.json"
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                time.sleep(0.05)
                try:
                    meta = json.loads(sidecar.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    continue
                if sum(s[2] for s in meta["segments"]) >= SIZE // 3:
                    break
            else:
                raise AssertionError("the download made no recorded progress")
            time.sleep(0.2)  # kill between two saves of the sidecar
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == -signal.SIGKILL
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        present = on_disk((dest / "big.bin.part").read_bytes(), served.data, meta["segments"])
        assert present < SIZE  # it really was killed in the middle

        server.bandwidth = None
        report = download([url], dest, workers=4, split=4, min_split_size=4 << 20)

    result = report.files[0]
    assert result.status == "done", result.error
    assert result.segments == 4
    print(f"resumed from {result.resumed_from} of {present} bytes on disk")
    assert result.resumed_from >= 0.8 * present, (result.resumed_from, present)
    assert result.bytes == SIZE - result.resumed_from
    assert (dest / "big.bin").read_bytes() == served.data
    assert sorted(os.listdir(dest)) == ["big.bin"]
