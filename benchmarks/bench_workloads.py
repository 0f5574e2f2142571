"""tw.map side by side with its peers on real shapes of work, with charts.

Run ``python benchmarks/bench_workloads.py [--quick] [--json FILE] [--svg-dir DIR]``.

Contenders, each when installed: ``tw.map``, ``ThreadPoolExecutor.map``, mpire (threads),
joblib (threads, ``return_as="generator"``), pypeln (``pypeln.thread``) and, on Python
>= 3.14, ``ThreadPoolExecutor.map(buffersize=...)``. In every round each contender runs once,
in a shuffled order, so a busy machine disturbs them alike; the figures are medians of the
rounds. Workloads:

1. heavy tail: items of 1 ms with 1% at 100 ms on 16 workers, and 20 ms with 1% at 2 s on 50
   workers (sleeps: CPU-free), ordered and unordered. Reported against three references:
   the naive ideal (total work / workers), the in-order floor (the exact best wall time of
   any scheduler that starts items in input order, as every lazy map must: see
   ``in_order_floor``) and that floor recomputed from the durations the sleeps really took in
   each run. Goal: ordered tw.map <= 1.05x ThreadPoolExecutor and <= 1.4x ideal. At the I/O
   scale over 1,000 items no scheduler can come near the ideal (one item alone takes 2.5x
   it; the in-order floor is 3.02x), so that scale runs once more over 5,000 items, tw.map
   and ThreadPoolExecutor ordered only: there the floor is 1.37x the ideal, and the goal is
   within reach of a scheduler that loses under 2% to its own hand-overs.
2. bursty and endless sources: a burst of 200 items then one every 5 ms; one every 5 ms
   without end. Time to the first result, p99 delay between fn returning and the caller
   receiving the result, and p99 delay between the source producing an item and the caller
   receiving its result. Goals: p99 hand-over <= 10 ms, endless first result <= 20 ms.
3. HTTP: 1,000 GETs of a local server that answers after 20 ms, 50 workers.
   Goal: tw.map <= 1.02x ThreadPoolExecutor.
4. GIL-releasing CPU work on 2 workers (zlib level 6 of 256 KiB, sha256 of 4 MiB): speed-up over
   a serial loop, against two bare threads. Goal: >= 0.95x the bare threads' speed-up.
5. trivial items: per-item cost against a plain serial ``map()``. Goal: <= 2x.
6. ``import threadwise`` over a bare interpreter (compiled bytecode, median of repeated
   fresh interpreters). Goal: <= 15 ms.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import heapq
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import threadwise as tw

_perf = time.perf_counter
ROOT = Path(__file__).resolve().parent.parent

Runner = Callable[[Callable[[Any], Any], Iterable[Any], int, bool], Iterator[Any]]


# -- contenders: each maps fn over items with n workers, ordered or not, lazily ---------------


def run_tw(fn: Callable[[Any], Any], items: Iterable[Any], workers: int, ordered: bool) -> Any:
    yield from tw.map(fn, items, workers=workers, ordered=ordered)


def run_tpe(fn: Callable[[Any], Any], items: Iterable[Any], workers: int, ordered: bool) -> Any:
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        if ordered:
            yield from pool.map(fn, items)
        else:
            futures = [pool.submit(fn, item) for item in items]
            for future in concurrent.futures.as_completed(futures):
                yield future.result()


def run_tpe_buffered(
    fn: Callable[[Any], Any], items: Iterable[Any], workers: int, ordered: bool
) -> Any:
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        yield from pool.map(fn, items, buffersize=4 * workers)  # type: ignore[call-arg, unused-ignore]


def _mpire() -> Runner | None:
    try:
        from mpire import (  # type: ignore[attr-defined, import-not-found, unused-ignore]
            WorkerPool,
        )
    except ImportError:
        return None

    def run(fn: Callable[[Any], Any], items: Iterable[Any], workers: int, ordered: bool) -> Any:
        with WorkerPool(n_jobs=workers, start_method="threading") as pool:
            imap = pool.imap if ordered else pool.imap_unordered
            yield from imap(fn, items)

    return run


def _joblib() -> Runner | None:
    try:
        import joblib  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        return None

    def run(fn: Callable[[Any], Any], items: Iterable[Any], workers: int, ordered: bool) -> Any:
        how = "generator" if ordered else "generator_unordered"
        parallel = joblib.Parallel(n_jobs=workers, backend="threading", return_as=how)
        yield from parallel(joblib.delayed(fn)(item) for item in items)

    return run


def _pypeln() -> Runner | None:
    try:
        import pypeln  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        return None
    stages: Any = pypeln.thread

    def run(fn: Callable[[Any], Any], items: Iterable[Any], workers: int, ordered: bool) -> Any:
        stream = stages.map(fn, items, workers=workers, maxsize=4 * workers)
        if ordered:
            stream = stages.ordered(stream)
        yield from stream

    return run


def contenders() -> tuple[dict[str, Runner], list[str]]:
    found: dict[str, Runner] = {"tw.map": run_tw, "ThreadPoolExecutor.map": run_tpe}
    notes = []
    if sys.version_info >= (3, 14):
        found["TPE.map(buffersize)"] = run_tpe_buffered
    else:
        notes.append("ThreadPoolExecutor.map(buffersize=...) needs Python >= 3.14: not run")
    for name, make in [("mpire", _mpire), ("joblib", _joblib), ("pypeln", _pypeln)]:
        runner = make()
        if runner is None:
            notes.append(f"{name} is not installed: not run")
        else:
            found[name] = runner
    return found, notes


def rounds_of(
    runners: dict[str, Callable[[], float]], rounds: int, seed: int
) -> dict[str, list[float]]:
    """Each runner once per round, in a shuffled order: their timings, by name."""
    rng = random.Random(seed)
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        order = list(runners)
        rng.shuffle(order)
        for name in order:
            times[name].append(runners[name]())
    return times


# -- 1. heavy tail ---------------------------------------------------------------------------


def in_order_floor(durations: list[float], workers: int) -> float:
    """The physical lower bound for a lazy map: the wall time of a scheduler with no overhead
    that starts items in input order (a lazy source gives them in that order, and nothing
    knows an item's duration before it runs) on ``workers`` workers.

    Giving each item to the first free worker starts every item at its earliest possible
    instant (the sorted free times of the workers stay as early as they can be at each step),
    so the bound is max over items of (earliest possible start + duration), which is never
    below total / workers. It is exact, not an estimate: no in-order scheduler can finish
    sooner, and this one does reach it."""
    free = [0.0] * workers
    end = 0.0
    for duration in durations:
        start = heapq.heappop(free)
        heapq.heappush(free, start + duration)
        end = max(end, start + duration)
    return end


def any_order_floor(durations: list[float], workers: int) -> float:
    """A bound even a scheduler that knew every duration beforehand and could start items in
    any order cannot beat: the total over the workers, or the longest item."""
    return max(sum(durations) / workers, max(durations))


def heavy_tail(
    all_runners: dict[str, Runner],
    n: int,
    base: float,
    slow: float,
    workers: int,
    rounds: int,
    orders: tuple[bool, ...] = (True, False),
) -> dict[str, Any]:
    durations = [slow if i % 100 == 37 else base for i in range(n)]
    ideal = sum(durations) / workers
    expected = list(range(n))
    # What each item's sleep really took in the current run (a sleep overshoots its time by
    # tens of microseconds to milliseconds on a busy machine): the floor of that very run.
    took = [0.0] * n

    def work(i: int) -> int:
        started = _perf()
        time.sleep(durations[i])
        took[i] = _perf() - started
        return i

    results: dict[str, Any] = {
        "ideal_s": ideal,
        "floor_s": in_order_floor(durations, workers),
        "any_order_floor_s": any_order_floor(durations, workers),
        "items": n,
        "workers": workers,
    }
    for ordered in orders:
        over_floor: dict[str, list[float]] = {name: [] for name in all_runners}

        def timed(
            name: str,
            runner: Runner,
            ordered: bool = ordered,
            over_floor: dict[str, list[float]] = over_floor,
        ) -> Callable[[], float]:
            def run() -> float:
                started = _perf()
                out = list(runner(work, range(n), workers, ordered))
                elapsed = _perf() - started
                assert (out if ordered else sorted(out)) == expected
                over_floor[name].append(elapsed / in_order_floor(took, workers))
                return elapsed

            return run

        runners = {name: timed(name, r) for name, r in all_runners.items()}
        times = rounds_of(runners, rounds, seed=n)
        key = "ordered" if ordered else "unordered"
        results[key] = {name: statistics.median(t) for name, t in times.items()}
        # Wall time over the floor of the durations the items took in the same run.
        results[f"{key}_over_run_floor"] = {
            name: statistics.median(r) for name, r in over_floor.items()
        }
    return results


# -- 2. bursty and endless sources -----------------------------------------------------------


class Source:
    """Items 0, 1, ... at a rhythm: ``burst`` at once, then one every ``gap`` seconds, until
    ``stop`` is set or ``limit`` items were made. Records when each item was produced."""

    def __init__(self, burst: int, gap: float, limit: int) -> None:
        self.burst = burst
        self.gap = gap
        self.limit = limit
        self.produced: dict[int, float] = {}
        self.stop = threading.Event()

    def __iter__(self) -> Iterator[int]:
        for i in range(self.limit):
            if self.stop.is_set():
                return
            if i >= self.burst:
                time.sleep(self.gap)
            self.produced[i] = _perf()
            yield i


def _p99(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def rhythm(
    all_runners: dict[str, Runner],
    burst: int,
    take: int,
    limit: int,
    rounds: int,
) -> dict[str, dict[str, float]]:
    """Time to first result and p99 delays, per contender (medians of rounds)."""
    samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in all_runners}
    rng = random.Random(burst)
    for _ in range(rounds):
        order = list(all_runners)
        rng.shuffle(order)
        for name in order:
            source = Source(burst, 0.005, limit)
            finished: dict[int, float] = {}

            def fn(i: int, finished: dict[int, float] = finished) -> int:
                finished[i] = _perf()
                return i

            started = _perf()
            first = None
            handover: list[float] = []
            end_to_end: list[float] = []
            iterator = all_runners[name](fn, source, 4, True)
            for got, i in enumerate(iterator, 1):
                now = _perf()
                if first is None:
                    first = now - started
                handover.append(now - finished[i])
                end_to_end.append(now - source.produced[i])
                if got == take:
                    source.stop.set()
                    break
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
            samples[name].append((first or float("nan"), _p99(handover), _p99(end_to_end)))
    return {
        name: {
            "first_result_ms": 1000 * statistics.median(s[0] for s in runs),
            "p99_handover_ms": 1000 * statistics.median(s[1] for s in runs),
            "p99_source_to_caller_ms": 1000 * statistics.median(s[2] for s in runs),
        }
        for name, runs in samples.items()
    }


# -- 3. HTTP ---------------------------------------------------------------------------------

_SERVER = """
import http.server, sys, time

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        time.sleep(0.02)
        body = b"x" * 512
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 512
    daemon_threads = True

server = Server(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def http_gets(all_runners: dict[str, Runner], n: int, rounds: int) -> dict[str, Any]:
    # The server runs in its own process, so it does not compete for this one's GIL.
    server = subprocess.Popen([sys.executable, "-c", _SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        url = f"http://127.0.0.1:{port}/"

        def get(_: int) -> int:
            with urllib.request.urlopen(url, timeout=30) as response:
                return len(response.read())

        def timed(runner: Runner) -> Callable[[], float]:
            def run() -> float:
                started = _perf()
                total = sum(runner(get, range(n), 50, True))
                elapsed = _perf() - started
                assert total == 512 * n
                return elapsed

            return run

        times = rounds_of({name: timed(r) for name, r in all_runners.items()}, rounds, seed=7)
    finally:
        server.terminate()
        server.wait()
    return {
        "items": n,
        "ideal_s": n * 0.02 / 50,
        "seconds": {name: statistics.median(t) for name, t in times.items()},
        # Each contender's time over TPE's within each round, then the median: the load moves
        # more between rounds than within one.
        "over_tpe_per_round": {
            name: per_round_ratio(t, times["ThreadPoolExecutor.map"]) for name, t in times.items()
        },
    }


def per_round_ratio(numerators: list[float], denominators: list[float]) -> float:
    """The median over rounds of the ratio of two contenders' figures in the same round."""
    return statistics.median(a / b for a, b in zip(numerators, denominators, strict=True))


# -- 4. GIL-releasing CPU work ---------------------------------------------------------------


def gil_free(all_runners: dict[str, Runner], n: int, rounds: int) -> dict[str, Any]:
    rng = random.Random(3)
    # Compressible but not trivially so: zlib does real work on it.
    words = [bytes(rng.choice(b"abcdefghij") for _ in range(8)) for _ in range(512)]
    block = b" ".join(rng.choice(words) for _ in range(256 * 1024 // 9))[: 256 * 1024]
    big = block * 16  # 4 MiB for sha256
    kinds: dict[str, Callable[[int], int]] = {
        "zlib": lambda _: len(zlib.compress(block, 6)),
        "sha256": lambda _: len(hashlib.sha256(big).digest()),
    }
    out: dict[str, Any] = {}
    for kind, fn in kinds.items():

        def serial(fn: Callable[[int], int] = fn) -> float:
            started = _perf()
            for i in range(n):
                fn(i)
            return _perf() - started

        def bare(fn: Callable[[int], int] = fn) -> float:
            def half(start: int) -> None:
                for i in range(start, n, 2):
                    fn(i)

            threads = [threading.Thread(target=half, args=(s,)) for s in (0, 1)]
            started = _perf()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            return _perf() - started

        def timed(runner: Runner, fn: Callable[[int], int] = fn) -> Callable[[], float]:
            def run() -> float:
                started = _perf()
                for _ in runner(fn, range(n), 2, True):
                    pass
                return _perf() - started

            return run

        runners: dict[str, Callable[[], float]] = {"serial": serial, "2 bare threads": bare}
        runners.update({name: timed(r) for name, r in all_runners.items()})
        times = rounds_of(runners, rounds, seed=11)
        medians = {name: statistics.median(t) for name, t in times.items()}
        out[kind] = {
            "seconds": medians,
            "speedup": {name: medians["serial"] / t for name, t in medians.items()},
            # Each contender's speed-up over the bare threads' within each round (the ratio of
            # their times), then the median: the goal, less exposed to the load's swings.
            "over_bare_per_round": {
                name: per_round_ratio(times["2 bare threads"], t) for name, t in times.items()
            },
        }
    return out


# -- 5. trivial items ------------------------------------------------------------------------


def _identity(x: int) -> int:
    return x


def trivial(n: int, rounds: int) -> dict[str, float]:
    """Per-item wall and CPU time of tw.map, a serial ``map()`` and TPE.map. Each round runs
    the three in a shuffled order; the ratio to serial is taken within each round (the
    machine's load changes between rounds more than within one) and its median reported.
    CPU time (all threads of the process) is less disturbed by other processes than wall
    time, so its ratio is reported too."""
    small = n // 20

    def timed(body: Callable[[], int]) -> Callable[[], tuple[float, float]]:
        def run() -> tuple[float, float]:
            wall, cpu = _perf(), time.process_time()
            count = body()
            return (_perf() - wall) / count, (time.process_time() - cpu) / count

        return run

    def serial() -> int:
        for _ in map(_identity, range(n)):
            pass
        return n

    def tw_map() -> int:
        for _ in tw.map(_identity, range(n), workers=8):
            pass
        return n

    def tpe() -> int:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            for _ in pool.map(_identity, range(small)):
                pass
        return small

    names = {"serial map()": timed(serial), "tw.map": timed(tw_map), "TPE.map": timed(tpe)}
    rng = random.Random(5)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for _ in range(rounds):
        order = list(names)
        rng.shuffle(order)
        for name in order:
            samples[name].append(names[name]())
    serial_s, tw_s, _tpe_s = (samples[k] for k in ("serial map()", "tw.map", "TPE.map"))
    per_round = [t[0] / s[0] for t, s in zip(tw_s, serial_s, strict=True)]
    cpu_per_round = [t[1] / s[1] for t, s in zip(tw_s, serial_s, strict=True)]
    wall = {name: 1e6 * statistics.median(w for w, _ in v) for name, v in samples.items()}
    return {
        "serial_us": wall["serial map()"],
        "tw_us": wall["tw.map"],
        "tpe_us": wall["TPE.map"],
        "tw_over_serial": statistics.median(per_round),
        "tw_over_serial_min": min(per_round),
        "tw_over_serial_max": max(per_round),
        "tw_over_serial_cpu": statistics.median(cpu_per_round),
        "tpe_over_tw": wall["TPE.map"] / wall["tw.map"],
        "rounds": rounds,
    }


# -- 6. import time --------------------------------------------------------------------------


def import_time(repeats: int) -> dict[str, float]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))

    def once(code: str) -> float:
        started = _perf()
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
        return _perf() - started

    once("import threadwise")  # compiles the bytecode, if it was not yet
    bare: list[float] = []
    loaded: list[float] = []
    for _ in range(repeats):
        bare.append(once("pass"))
        loaded.append(once("import threadwise"))
    return {
        "bare_ms": 1000 * statistics.median(bare),
        "import_ms": 1000 * statistics.median(loaded),
        "over_bare_ms": 1000 * (statistics.median(loaded) - statistics.median(bare)),
    }


# -- charts and report -----------------------------------------------------------------------


def charts(results: dict[str, Any], svg_dir: Path) -> list[Path]:
    try:
        import matplotlib  # type: ignore[import-not-found, import-untyped, unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        print("note: matplotlib is not installed: no charts (pip install matplotlib)")
        return []
    plt.rcParams["svg.hashsalt"] = "threadwise"  # stable ids: the SVG changes only with data
    svg_dir.mkdir(parents=True, exist_ok=True)
    written = []

    def bars(
        name: str,
        title: str,
        unit: str,
        groups: dict[str, dict[str, float]],
        log: bool = False,
        goal: float | None = None,
        floor: float | None = None,
    ) -> None:
        labels = list(next(iter(groups.values())))
        fig, ax = plt.subplots(figsize=(8, 3.2))
        width = 0.8 / len(groups)
        for g, (group, values) in enumerate(groups.items()):
            xs = [i + (g - (len(groups) - 1) / 2) * width for i in range(len(labels))]
            ys = [values.get(label, float("nan")) for label in labels]
            colours = ["#d62728" if label == "tw.map" else None for label in labels]
            container = ax.bar(xs, ys, width, label=group)
            for patch, colour in zip(container.patches, colours, strict=True):
                if colour is not None:
                    patch.set_edgecolor("black")
                    patch.set_linewidth(1.5)
        ax.set_xticks(range(len(labels)), labels, fontsize=8)
        ax.set_ylabel(unit)
        if log:  # delays span a millisecond to seconds
            ax.set_yscale("log")
        if goal is not None:
            ax.axhline(goal, color="black", linestyle="--", linewidth=1, label="goal")
        if floor is not None:
            ax.axhline(floor, color="grey", linestyle=":", linewidth=1.5, label="in-order floor")
        ax.set_title(title, fontsize=10)
        if len(groups) > 1 or goal is not None or floor is not None:
            ax.legend(fontsize=8)
        fig.tight_layout()
        path = svg_dir / f"bench-{name}.svg"
        fig.savefig(path, format="svg", metadata={"Date": None})
        plt.close(fig)
        written.append(path)

    for scale in ("cpu", "io"):
        case = results[f"heavy_tail_{scale}"]
        ideal = case["ideal_s"]
        bars(
            f"heavy-tail-{scale}",
            f"heavy tail ({'1 ms, 1% at 100 ms, 16' if scale == 'cpu' else '20 ms, 1% at 2 s, 50'}"
            " workers): wall time / ideal (lower is better)",
            "x ideal",
            {
                kind: {name: t / ideal for name, t in case[kind].items()}
                for kind in ("ordered", "unordered")
            },
            goal=1.4,
            floor=case["floor_s"] / ideal,
        )
    for source in ("bursty", "endless"):
        case = results[source]
        bars(
            f"{source}-source",
            f"{source} source: delays in ms (lower is better, log scale)",
            "ms",
            {
                "first result": {n: v["first_result_ms"] for n, v in case.items()},
                "p99 fn -> caller": {n: v["p99_handover_ms"] for n, v in case.items()},
                "p99 source -> caller": {n: v["p99_source_to_caller_ms"] for n, v in case.items()},
            },
            log=True,
            goal=10.0,
        )
    http = results["http"]
    bars(
        "http",
        "1,000 GETs at 20 ms, 50 workers: wall time / ideal (lower is better)",
        "x ideal",
        {"wall time": {n: t / http["ideal_s"] for n, t in http["seconds"].items()}},
        goal=1.02 * http["seconds"]["ThreadPoolExecutor.map"] / http["ideal_s"],
    )
    gil = results["gil_free"]
    bars(
        "gil-free",
        "GIL-releasing work on 2 workers: speed-up over serial (higher is better)",
        "speed-up",
        {
            kind: {n: s for n, s in gil[kind]["speedup"].items() if n != "serial"}
            for kind in ("zlib", "sha256")
        },
    )
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small inputs, one round")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 3; quick 1)")
    parser.add_argument("--json", metavar="FILE", help="also write the results to FILE as JSON")
    parser.add_argument("--svg-dir", metavar="DIR", help="write the charts (SVG) into DIR")
    parser.add_argument(
        "--only", default="", help="comma-separated sections: tail,rhythm,http,gil,trivial,import"
    )
    args = parser.parse_args(argv)
    quick: bool = args.quick
    rounds = args.rounds or (1 if quick else 3)
    only = {s for s in args.only.split(",") if s}

    def wanted(section: str) -> bool:
        return not only or section in only

    # mpire and joblib warn about unsized inputs and unused results: expected here.
    warnings.simplefilter("ignore")
    runners, notes = contenders()
    print(
        f"threadwise {tw.__version__} workloads: {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} CPUs; medians of {rounds} rounds, "
        f"contenders interleaved: {', '.join(runners)}",
        flush=True,
    )
    results: dict[str, Any] = {"python": platform.python_version(), "rounds": rounds}
    if wanted("tail"):
        results["heavy_tail_cpu"] = heavy_tail(
            runners, 500 if quick else 2000, 0.001, 0.1, 16, rounds
        )
        print("heavy tail, CPU scale:", json.dumps(results["heavy_tail_cpu"], indent=1))
        results["heavy_tail_io"] = heavy_tail(
            runners, 300 if quick else 1000, 0.02, 2.0, 50, rounds
        )
        print("heavy tail, I/O scale:", json.dumps(results["heavy_tail_io"], indent=1))
        long_runners = {
            k: v for k, v in runners.items() if k in ("tw.map", "ThreadPoolExecutor.map")
        }
        results["heavy_tail_io_long"] = heavy_tail(
            long_runners, 1000 if quick else 5000, 0.02, 2.0, 50, rounds, orders=(True,)
        )
        print(
            "heavy tail, I/O scale, longer run:",
            json.dumps(results["heavy_tail_io_long"], indent=1),
        )
    if wanted("rhythm"):
        results["bursty"] = rhythm(runners, 200, 260, 1200, rounds)
        print("bursty source:", json.dumps(results["bursty"], indent=1))
        results["endless"] = rhythm(runners, 0, 100, 1200, rounds)
        print("endless source:", json.dumps(results["endless"], indent=1))
    if wanted("http"):
        results["http"] = http_gets(runners, 300 if quick else 1000, rounds)
        print("HTTP:", json.dumps(results["http"], indent=1))
    if wanted("gil"):
        results["gil_free"] = gil_free(runners, 16 if quick else 64, rounds)
        print("GIL-releasing:", json.dumps(results["gil_free"], indent=1))
    if wanted("trivial"):
        results["trivial"] = trivial(200_000 if quick else 2_000_000, max(rounds, 7))
        print("trivial items:", json.dumps(results["trivial"], indent=1))
    if wanted("import"):
        results["import"] = import_time(5 if quick else 30)
        print("import threadwise:", json.dumps(results["import"], indent=1))
    for note in notes:
        print(f"note: {note}")
    if args.svg_dir and not only:
        for path in charts(results, Path(args.svg_dir)):
            print(f"wrote {path}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
