"""Downloader benchmark: `threadwise get` against aria2c, wget2 and curl, on loopback.

    python benchmarks/bench_download.py [--quick] [--rounds N] [--json FILE]

Every client runs as a command, with threadwise's *default* options (`threadwise get -q -o DIR
-i LIST`), so start-up counts for everyone. Files are written to a tmpfs (/dev/shm when there is
one). Contenders are interleaved round by round (the order rotates) and each figure is the
median of the rounds: on a shared machine single runs are noise.

Workloads served by nginx (Debian's `nginx` package; the benchmark starts it with its own
configuration on a free port of 127.0.0.1 and stops it; one skip line when it is missing):

* 500 files of 16-64 KiB. Goal: faster than aria2c, <= 3x wget2's wall time.
* 5,000 such files. Goal: <= 2x wget2.
* 3 files of 256 MiB. Goal: >= the fastest of curl and wget2, and >= a bare
  ThreadPoolExecutor + urllib3 script.
* 4 files of 32 MiB from a server with `limit_rate 4m` (per connection). Goal: keep the lead
  over aria2c and wget2.

"threadwise download()" is the library with its default options in a fresh interpreter (the
same start-up without the command line), for comparison with `threadwise get`.

And, with a DemoServer in its own process: 200 files of 64 KiB with 50 ms of latency per
request, threadwise's `download()` in-process. Goal: <= 1.1x the floor (the latency paid
ceil(200 / 16) times).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

KiB = 1024
MiB = 1024 * KiB
CONNECTIONS = 16

TPE_SCRIPT = """
import concurrent.futures, sys, urllib3
folder, urls = sys.argv[1], sys.argv[2:]
http = urllib3.PoolManager(maxsize=16)
def one(url):
    response = http.request("GET", url, preload_content=False)
    with open(folder + "/" + url.rsplit("/", 1)[1], "wb") as f:
        for block in response.stream(1 << 20):
            f.write(block)
    response.release_conn()
with concurrent.futures.ThreadPoolExecutor(16) as pool:
    list(pool.map(one, urls))
"""

DEMO_SERVER = """
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


def scratch_root() -> Path:
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- nginx --------------------------------------------------------------------------------------
NGINX_CONF = """
daemon off;
master_process on;
worker_processes 2;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{ listen 127.0.0.1:{port}; root {root}; }}
    server {{ listen 127.0.0.1:{slow_port}; root {root}; limit_rate {rate}; }}
}}
"""


class Nginx:
    """nginx on two free ports of 127.0.0.1 serving ``root``: one at full speed, one with a
    per-connection ``limit_rate``."""

    def __init__(self, root: Path, rate: str) -> None:
        self.root = root
        self.rate = rate
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-nginx-", dir=scratch_root()))
        self.port = free_port()
        self.slow_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Nginx:
        conf = self.tmp / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(
                tmp=self.tmp,
                root=self.root,
                port=self.port,
                slow_port=self.slow_port,
                rate=self.rate,
            )
        )
        self.proc = subprocess.Popen(
            ["nginx", "-c", str(conf), "-p", str(self.tmp)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        for port in (self.port, self.slow_port):
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    self.__exit__()
                    raise RuntimeError(f"nginx did not start: {err.strip()[:300]}")
                time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def url(self, name: str, *, slow: bool = False) -> str:
        return f"http://127.0.0.1:{self.slow_port if slow else self.port}/{name}"


# -- contenders ---------------------------------------------------------------------------------
Runner = Callable[[Path, list[str], Path], None]


def run_quiet(argv: list[str]) -> None:
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def threadwise_cli(folder: Path, urls: list[str], listing: Path) -> None:
    run_quiet(
        [sys.executable, "-m", "threadwise", "get", "-q", "-o", str(folder), "-i", str(listing)]
    )


LIBRARY_SCRIPT = """
import sys
from threadwise.download import download
with open(sys.argv[2], encoding="utf-8") as f:
    report = download(f.read().split(), sys.argv[1])
sys.exit(0 if report.ok else 1)
"""


def threadwise_library(folder: Path, urls: list[str], listing: Path) -> None:
    run_quiet([sys.executable, "-c", LIBRARY_SCRIPT, str(folder), str(listing)])


def aria2c(folder: Path, urls: list[str], listing: Path) -> None:
    n = str(CONNECTIONS)
    run_quiet(["aria2c", "-q", "-j", n, "-x4", "-d", str(folder), "-i", str(listing)])


def wget2(folder: Path, urls: list[str], listing: Path) -> None:
    run_quiet(
        ["wget2", "-q", f"--max-threads={CONNECTIONS}", "-P", str(folder), "-i", str(listing)]
    )


def curl(folder: Path, urls: list[str], listing: Path) -> None:
    config = listing.with_suffix(".curl")
    config.write_text(
        "".join(f'url = "{u}"\noutput = "{folder}/{u.rsplit("/", 1)[1]}"\n' for u in urls)
    )
    run_quiet(["curl", "-s", "-Z", "--parallel-max", str(CONNECTIONS), "-K", str(config)])


def tpe_urllib3(folder: Path, urls: list[str], listing: Path) -> None:
    run_quiet([sys.executable, "-c", TPE_SCRIPT, str(folder), *urls])


TW_ROWS = ("threadwise get", "threadwise download()")

CONTENDERS: dict[str, tuple[str | None, Runner]] = {
    # label: (the command it needs, runner)
    "threadwise get": (None, threadwise_cli),
    "threadwise download()": (None, threadwise_library),
    "aria2c -j16 -x4": ("aria2c", aria2c),
    "wget2 --max-threads=16": ("wget2", wget2),
    "curl -Z --parallel-max 16": ("curl", curl),
    "ThreadPoolExecutor+urllib3": (None, tpe_urllib3),
}


def measure(
    title: str,
    urls: list[str],
    expect_bytes: int,
    names: list[str],
    rounds: int,
) -> dict[str, float | None]:
    """Median wall time of each contender, rounds interleaved (the order rotates)."""
    print(f"\n{title}")
    available: list[str] = []
    medians: dict[str, float | None] = {}
    for name in names:
        needs = CONTENDERS[name][0]
        if needs is not None and shutil.which(needs) is None:
            print(f"  {name:<28} skipped: {needs} is not installed")
            medians[name] = None
        else:
            available.append(name)
    times: dict[str, list[float]] = {name: [] for name in available}
    cpu: dict[str, list[float]] = {name: [] for name in available}
    failed: set[str] = set()
    work = Path(tempfile.mkdtemp(prefix="bench-dl-", dir=scratch_root()))
    listing = work / "urls.txt"
    listing.write_text("\n".join(urls) + "\n")
    try:
        for r in range(rounds):
            order = available[r % len(available) :] + available[: r % len(available)]
            for name in order:
                if name in failed:
                    continue
                folder = work / "out"
                folder.mkdir()
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                started = time.perf_counter()
                try:
                    CONTENDERS[name][1](folder, urls, listing)
                except subprocess.CalledProcessError as exc:
                    err = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
                    print(
                        f"  {name:<28} failed: {(err or ['exit ' + str(exc.returncode)])[-1][:90]}"
                    )
                    failed.add(name)
                    shutil.rmtree(folder)
                    continue
                elapsed = time.perf_counter() - started
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                used = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
                got = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
                shutil.rmtree(folder)
                if got != expect_bytes:
                    print(f"  {name:<28} failed: {got} bytes on disk, expected {expect_bytes}")
                    failed.add(name)
                    continue
                times[name].append(elapsed)
                cpu[name].append(used)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for name in available:
        if name in failed or not times[name]:
            medians[name] = None
            continue
        median = statistics.median(times[name])
        medians[name] = median
        spread = f"{min(times[name]):.3f}-{max(times[name]):.3f}"
        print(
            f"  {name:<28} {median:8.3f} s median of {len(times[name])} ({spread})  "
            f"{expect_bytes / median / MiB:8.1f} MiB/s  CPU {statistics.median(cpu[name]):.3f} s"
        )
    return medians


def verdict(label: str, ok: bool | None, detail: str) -> str:
    state = "n/a" if ok is None else ("PASS" if ok else "FAIL")
    line = f"  goal: {label}: {detail} -> {state}"
    print(line)
    return line


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def make_files(root: Path, prefix: str, count: int, low: int, high: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    names = []
    for i in range(count):
        name = f"{prefix}{i}.bin"
        size = rng.randint(low, high)
        path = root / name
        with open(path, "wb") as f:
            left = size
            while left:
                block = min(left, 16 * MiB)
                f.write(rng.randbytes(block))
                left -= block
        path.chmod(0o644)
        names.append(name)
    return names


def nginx_workloads(args: argparse.Namespace, results: dict[str, object]) -> None:
    if shutil.which("nginx") is None:
        print("\nnginx workloads skipped: nginx is not installed (Debian: apt-get install nginx)")
        return
    root = Path(tempfile.mkdtemp(prefix="bench-www-", dir=scratch_root()))
    root.chmod(0o755)  # nginx's workers may run as another user
    quick = args.quick
    small_n, many_n = (100, 500) if quick else (500, 5000)
    large_size = (16 if quick else 256) * MiB
    slow_size = (4 if quick else 32) * MiB
    try:
        small = make_files(root, "s", many_n, 16 * KiB, 64 * KiB, 1)
        large = make_files(root, "L", 3, large_size, large_size, 2)
        slow = make_files(root, "R", 4, slow_size, slow_size, 3)
        size_of = {name: (root / name).stat().st_size for name in [*small, *large, *slow]}
        everyone = [n for n in CONTENDERS if n != "ThreadPoolExecutor+urllib3"]
        with Nginx(root, "4m") as nginx:
            goals: list[str] = []
            results["goals"] = goals
            small_sets = ((small_n, "small"), (many_n, "many"))
            for count, label in small_sets if args.only in (None, "nginx", "small") else ():
                names = small[:count]
                m = measure(
                    f"{count} files of 16-64 KiB from nginx ({args.rounds} rounds)",
                    [nginx.url(n) for n in names],
                    sum(size_of[n] for n in names),
                    everyone,
                    args.rounds,
                )
                results[label] = m
                wget = m.get("wget2 --max-threads=16")
                for who in TW_ROWS:
                    tw = m.get(who)
                    if label == "small":
                        r_aria = ratio(tw, m.get("aria2c -j16 -x4"))
                        goals.append(
                            verdict(
                                f"{who} faster than aria2c",
                                None if r_aria is None else r_aria < 1,
                                f"time / aria2c's = {fmt(r_aria)}",
                            )
                        )
                    r_wget = ratio(tw, wget)
                    limit = 3 if label == "small" else 2
                    goals.append(
                        verdict(
                            f"{who} <= {limit}x wget2",
                            None if r_wget is None else r_wget <= limit,
                            f"time / wget2's = {fmt(r_wget)}",
                        )
                    )
            if args.only in (None, "nginx", "large"):
                large_workload(args, results, goals, nginx, large, large_size)
            if args.only in (None, "nginx", "rate"):
                rate_workload(args, results, goals, nginx, slow, slow_size, everyone)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def large_workload(
    args: argparse.Namespace,
    results: dict[str, object],
    goals: list[str],
    nginx: Nginx,
    large: list[str],
    large_size: int,
) -> None:
    m = measure(
        f"3 files of {large_size // MiB} MiB from nginx ({args.rounds} rounds)",
        [nginx.url(n) for n in large],
        3 * large_size,
        list(CONTENDERS),
        args.rounds,
    )
    results["large"] = m
    fastest = min((t for k, t in m.items() if k.startswith(("curl", "wget2")) and t), default=None)
    for who in TW_ROWS:
        tw = m.get(who)
        r_fast = ratio(tw, fastest)
        r_tpe = ratio(tw, m.get("ThreadPoolExecutor+urllib3"))
        goals.append(
            verdict(
                f"{who} >= the fastest of curl/wget2",
                None if r_fast is None else r_fast <= 1,
                f"time / theirs = {fmt(r_fast)}",
            )
        )
        goals.append(
            verdict(
                f"{who} >= ThreadPoolExecutor+urllib3",
                None if r_tpe is None else r_tpe <= 1,
                f"time / its = {fmt(r_tpe)}",
            )
        )


def rate_workload(
    args: argparse.Namespace,
    results: dict[str, object],
    goals: list[str],
    nginx: Nginx,
    slow: list[str],
    slow_size: int,
    everyone: list[str],
) -> None:
    m = measure(
        f"4 files of {slow_size // MiB} MiB, nginx limit_rate 4m per connection "
        f"({args.rounds} rounds)",
        [nginx.url(n, slow=True) for n in slow],
        4 * slow_size,
        everyone,
        args.rounds,
    )
    results["rate_limited"] = m
    for who in TW_ROWS:
        tw = m.get(who)
        for other in ("aria2c -j16 -x4", "wget2 --max-threads=16"):
            r = ratio(m.get(other), tw)
            goals.append(
                verdict(
                    f"{who} leads {other.split()[0]}",
                    None if r is None else r > 1,
                    f"{other.split()[0]} time / threadwise's = {fmt(r)}",
                )
            )


@contextlib.contextmanager
def demo_server(files: int, size: int, latency: float) -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", DEMO_SERVER, str(files), str(size), str(latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)


def latency_workload(args: argparse.Namespace, results: dict[str, object]) -> None:
    from threadwise.download import download

    files = 40 if args.quick else 200
    latency = 0.05
    floor = math.ceil(files / CONNECTIONS) * latency
    print(
        f"\n{files} files of 64 KiB, {latency * 1000:.0f} ms latency, DemoServer, "
        "download() in-process"
    )
    times = []
    with demo_server(files, 64 * KiB, latency) as base:
        urls = [f"{base}/f{i}.bin" for i in range(files)]
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory(dir=scratch_root()) as tmp:
                started = time.perf_counter()
                report = download(urls, tmp)  # default options
                times.append(time.perf_counter() - started)
                if not report.ok:
                    raise RuntimeError(str(report))
    median = statistics.median(times)
    print(
        f"  threadwise download()       {median:8.3f} s median of {len(times)}; floor {floor:.3f} s"
    )
    r = median / floor
    results["latency"] = {"median": median, "floor": floor, "ratio": r}
    verdict("<= 1.1x the floor", r <= 1.1, f"threadwise / floor = {r:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller workloads, 2 rounds")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 5; quick 2)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument(
        "--only",
        choices=("nginx", "small", "large", "rate", "latency"),
        help="run only these workloads (nginx: all of nginx's; small: the 500 and 5,000 small "
        "files; large: the 3 large files; rate: the rate-limited server)",
    )
    args = parser.parse_args()
    # An installed package has its bytecode compiled: let the clients write theirs (an
    # environment with PYTHONDONTWRITEBYTECODE would compile threadwise at every start-up).
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    import compileall

    import threadwise

    compileall.compile_dir(Path(threadwise.__file__).parent, quiet=1)
    if args.rounds is None:
        args.rounds = 2 if args.quick else 5
    print(
        f"files written to {scratch_root()}; {os.cpu_count()} CPUs; medians of interleaved "
        "rounds (on a busy machine the figures are noisy: compare ratios)"
    )
    results: dict[str, object] = {"quick": args.quick, "rounds": args.rounds}
    if args.only != "latency":
        nginx_workloads(args, results)
    if args.only in (None, "latency"):
        latency_workload(args, results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
