"""Parallel downloads: the same files fetched one at a time, then all at once.

Run it with ``python examples/tour/12_parallel_downloads.py`` (about a second; needs the
``cli`` extra for urllib3: ``pip install 'threadwise[cli]'``).

Downloading is the textbook case for threads: each request spends most of its time waiting for
the server, and a waiting thread leaves the CPU to the others. Instead of simulating downloads
with ``sleep``, this lesson starts threadwise's demo HTTP server on 127.0.0.1 (a free port,
answering each request after a fixed latency) and uses ``threadwise.download``, a real
downloader built on threadwise, first with one worker and then with one worker per file.
Every file is checked against its sha256.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

FILES = 8
SIZE = 64 * 1024  # bytes per file
LATENCY = 0.1  # seconds the server waits before answering each request

try:
    from threadwise.download import DemoServer, download
except ImportError as exc:  # urllib3 is missing
    raise SystemExit(f"this lesson needs the cli extra: pip install 'threadwise[cli]' ({exc})")


def main() -> None:
    with DemoServer(latency=LATENCY) as server, tempfile.TemporaryDirectory() as tmp:
        names = [f"file-{i:02d}.bin" for i in range(1, FILES + 1)]
        served = {name: server.add(name, SIZE) for name in names}
        urls = [server.url(name) for name in names]
        # Checksums the downloader verifies before giving each file its final name.
        checksums = {server.url(name): f"sha256:{f.sha256}" for name, f in served.items()}
        print(f"{FILES} files of {SIZE // 1024} KiB from {server.base_url}, {LATENCY:g} s latency")

        sequential = download(urls, Path(tmp, "one-by-one"), workers=1, checksums=checksums)
        print(f"{'sequential, workers=1:':<24}{sequential.summary()}")
        peak_sequential = server.stats.peak_concurrent

        server.stats.peak_concurrent = 0  # measure the second run on its own
        parallel = download(urls, Path(tmp, "parallel"), workers=FILES, checksums=checksums)
        print(f"{f'parallel, workers={FILES}:':<24}{parallel.summary()}")
        peak_parallel = server.stats.peak_concurrent

    speedup = sequential.elapsed / parallel.elapsed
    print(f"speedup: {speedup:.1f}x (ideal: {FILES}x, one latency instead of {FILES})")
    print(f"requests served at once: {peak_sequential} sequentially, {peak_parallel} in parallel")
    ok = sequential.ok and parallel.ok
    print(f"all {2 * FILES} files downloaded and their sha256 verified: {ok}")


if __name__ == "__main__":
    main()
