"""Downloader benchmark: threadwise against the usual tools, on loopback.

    python benchmarks/bench_download.py [--quick] [--json FILE]

Two workloads, both served by a DemoServer in a separate process (so no client shares its
interpreter with the server):

* small: 200 files x 64 KiB, 50 ms server latency, 16 connections. Floor: the latency paid
  ceil(files / 16) times, plus the bytes at loopback speed.
* large: 4 files x 64 MiB, no latency: throughput.

Each tool runs when installed and is skipped with a clear line otherwise: a sequential loop,
ThreadPoolExecutor + urllib3, parfive, aria2c, curl -Z, wget2. Times are the best of
`--repeat` runs; ratios are against the floor (small) and against curl (large).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import urllib3

from threadwise.download import download

SERVER_CODE = """
import sys
from threadwise.download import DemoServer
files, size, latency = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
server = DemoServer(latency=latency).start()
for i in range(files):
    server.add(f"f{i}.bin", size)
print(server.base_url, flush=True)
sys.stdin.read()  # serve until the benchmark closes our stdin
server.stop()
"""


class Server:
    def __init__(self, files: int, size: int, latency: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER_CODE, str(files), str(size), str(latency)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.base = self.proc.stdout.readline().strip()
        self.urls = [f"{self.base}/f{i}.bin" for i in range(files)]

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def best_of(repeat: int, run: Callable[[Path], None], expect_bytes: int) -> float:
    best = math.inf
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            started = time.perf_counter()
            run(folder)
            elapsed = time.perf_counter() - started
            got = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
            if got != expect_bytes:
                raise RuntimeError(f"expected {expect_bytes} bytes on disk, found {got}")
        best = min(best, elapsed)
    return best


def tool_runners(urls: list[str], connections: int) -> dict[str, Callable[[Path], None] | None]:
    def tw_run(folder: Path) -> None:
        report = download(urls, folder, workers=connections, per_host=connections)
        if not report.ok:
            raise RuntimeError(str(report))

    def sequential(folder: Path) -> None:
        http = urllib3.PoolManager()
        for url in urls:
            with open(folder / url.rsplit("/", 1)[1], "wb") as f:
                f.write(http.request("GET", url).data)

    def tpe_urllib3(folder: Path) -> None:
        http = urllib3.PoolManager(maxsize=connections)

        def one(url: str) -> None:
            response = http.request("GET", url, preload_content=False)
            with open(folder / url.rsplit("/", 1)[1], "wb") as f:
                for block in response.stream(1 << 20):
                    f.write(block)
            response.release_conn()

        with concurrent.futures.ThreadPoolExecutor(connections) as pool:
            list(pool.map(one, urls))

    def parfive_run(folder: Path) -> None:
        import parfive

        # parfive splits every file into 5 ranges by default; on many small files the held-open
        # first responses starve the connection pool into read timeouts, so split only big ones.
        splits = 5 if len(urls) < 16 else 1
        downloader = parfive.Downloader(max_conn=connections, max_splits=splits, progress=False)
        for url in urls:
            downloader.enqueue_file(url, path=str(folder))
        result = downloader.download()
        if result.errors:
            raise RuntimeError(str(result.errors))

    def command(argv: Callable[[Path, Path], list[str]]) -> Callable[[Path], None]:
        def run(folder: Path) -> None:
            with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as listing:
                listing.write("\n".join(urls) + "\n")
            try:
                subprocess.run(
                    argv(folder, Path(listing.name)),
                    check=True,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            finally:
                os.unlink(listing.name)

        return run

    def have(name: str) -> bool:
        return shutil.which(name) is not None

    try:
        import parfive  # noqa: F401

        has_parfive = True
    except ImportError:
        has_parfive = False
    n = str(connections)
    return {
        "threadwise": tw_run,
        "sequential urllib3": sequential,
        "ThreadPoolExecutor+urllib3": tpe_urllib3,
        "parfive": parfive_run if has_parfive else None,
        "aria2c -j16": command(
            lambda d, lst: ["aria2c", "-q", "-j", n, "-x", n, "-d", str(d), "-i", str(lst)]
        )
        if have("aria2c")
        else None,
        "curl -Z": command(
            lambda d, lst: [
                "curl",
                "-s",
                "-Z",
                "--parallel-max",
                n,
                "--output-dir",
                str(d),
                *[arg for u in urls for arg in ("-o", u.rsplit("/", 1)[1], u)],
            ]
        )
        if have("curl")
        else None,
        "wget2": command(
            lambda d, lst: ["wget2", "-q", f"--max-threads={n}", "-P", str(d), "-i", str(lst)]
        )
        if have("wget2")
        else None,
    }


def run_workload(
    name: str, files: int, size: int, latency: float, repeat: int, skip_sequential: bool
) -> dict[str, object]:
    connections = 16
    server = Server(files, size, latency)
    rows: dict[str, float | None] = {}
    try:
        for tool, runner in tool_runners(server.urls, connections).items():
            if runner is None:
                print(f"  {tool:<28} skipped: not installed")
                rows[tool] = None
                continue
            if tool.startswith("sequential") and skip_sequential:
                print(f"  {tool:<28} skipped: too slow for this workload")
                rows[tool] = None
                continue
            try:
                seconds = best_of(
                    1 if tool.startswith("sequential") else repeat, runner, files * size
                )
            except Exception as exc:
                print(f"  {tool:<28} failed: {str(exc).splitlines()[0][:80]}")
                rows[tool] = None
                continue
            rows[tool] = seconds
            mib_s = files * size / seconds / (1 << 20)
            print(f"  {tool:<28} {seconds:8.3f} s  {mib_s:9.1f} MiB/s")
    finally:
        server.close()
    return {"workload": name, "files": files, "size": size, "latency": latency, "seconds": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller workloads, one run each")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    repeat = 1 if args.quick else args.repeat
    small_files = 40 if args.quick else 200
    large_size = (8 if args.quick else 64) << 20
    results = []

    print(f"small files: {small_files} x 64 KiB, 50 ms latency, 16 connections")
    small = run_workload("small", small_files, 64 << 10, 0.05, repeat, skip_sequential=False)
    floor = math.ceil(small_files / 16) * 0.05
    small["floor"] = floor
    tw = small["seconds"]["threadwise"]  # type: ignore[index]
    print(
        f"  floor (latency x ceil(files/16)) {floor:.3f} s; threadwise / floor = {tw / floor:.2f}"
        f" (target <= 1.15: {'PASS' if tw / floor <= 1.15 else 'FAIL'})"
    )
    for tool, seconds in small["seconds"].items():  # type: ignore[union-attr]
        if seconds and tool != "threadwise":
            print(f"    {tool:<28} takes {seconds / tw:5.2f}x threadwise's time")
    results.append(small)

    print(f"\nlarge files: 4 x {large_size >> 20} MiB, no latency, 16 connections")
    large = run_workload("large", 4, large_size, 0.0, repeat, skip_sequential=False)
    seconds = large["seconds"]
    tw = seconds["threadwise"]  # type: ignore[index]
    curl = seconds.get("curl -Z")  # type: ignore[union-attr]
    if curl:
        ratio = curl / tw
        print(
            f"  threadwise throughput / curl's = {ratio:.2f} (target >= 1.0: "
            f"{'PASS' if ratio >= 1.0 else 'FAIL'})"
        )
    results.append(large)

    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
