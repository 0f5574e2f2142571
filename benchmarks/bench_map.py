"""Map and pipeline benchmarks: throughput, latency-bound scaling, pipelines, flat memory.

Run ``python benchmarks/bench_map.py [--quick] [--json FILE] [--strict] [--callgrind]``.

Every figure is a ratio against a baseline measured in the same run, on the same machine:

1. Throughput: ``tw.map`` of an identity function, 8 workers, against
   ``ThreadPoolExecutor(8).map`` (on a 10x smaller input: it is that much slower), in items
   per second. Target: at least 100x.
2. Sleep-bound scaling: ``time.sleep(0.01)`` per item on 100 workers; wall time divided by the
   ideal (items x 0.01 s / 100). Target: at most 1.15. ``ThreadPoolExecutor(100).map`` beside it.
3. Pipeline: three cheap stages (x + 1, x * 2, keep multiples of 4) with ``tw.Pipeline``
   against a hand-written ``queue.Queue`` + threads pipeline with sentinels and, when it is
   installed, ``pypeln.thread``; baselines on a 10x smaller input. Target: at least 20x.
   Contenders take turns in each of 7 rounds; the figure is the median of per-round ratios.
4. Memory: peak RSS of ``tw.map`` over lazily generated items, 10,000,000 of them against
   10,000, each in a fresh interpreter (``VmHWM`` on Linux, ``ru_maxrss`` elsewhere). Target:
   flat, at most 5 MB more. ``ThreadPoolExecutor`` (which submits its whole input at once)
   beside it, also in fresh interpreters.
5. With ``--callgrind``: instructions per item under valgrind's callgrind (immune to the
   machine's load), ``tw.map`` against a serial ``map()`` loop and the pipeline against the
   serial chain of its three functions: a run of 300,000 items minus one of 100,000.

Throughput and sleep figures are the best of 3 interleaved runs, so a busy machine disturbs them
less; the pipeline figure is the median of 7 rounds of per-round ratios.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import queue
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import threadwise as tw

REPEATS = 3
PIPELINE_ROUNDS = 7  # the pipeline's figure is a median of per-round ratios
THROUGHPUT_TARGET = 100.0  # threadwise items/s over ThreadPoolExecutor items/s, at least
SLEEP_TARGET = 1.15  # wall time / ideal wall time, at most
PIPELINE_TARGET = 20.0  # threadwise items/s over the baseline's, at least
MEMORY_TARGET_MB = 5.0  # peak RSS growth from 10k items to the large input, at most
SLEEP_SECONDS = 0.01
BASELINE_SHRINK = 10  # slow baselines run on an input this many times smaller

_perf = time.perf_counter


@dataclass
class Row:
    """One line of the table: a figure, its target and whether it meets it."""

    name: str
    threadwise: str
    baseline: str
    figure: str
    target: str
    passed: bool | None  # None: informative, no target
    data: dict[str, Any] = field(default_factory=dict)


def _identity(x: int) -> int:
    return x


def _inc(x: int) -> int:
    return x + 1


def _double(x: int) -> int:
    return x * 2


def _multiple_of_4(x: int) -> bool:
    return x % 4 == 0


def _best(run: Callable[[], float], repeats: int) -> float:
    """The shortest of ``repeats`` timings (seconds): the one least disturbed by the machine."""
    return min(run() for _ in range(repeats))


def _count(results: Iterable[object]) -> int:
    n = 0
    for _ in results:
        n += 1
    return n


def _rate(n: float) -> str:
    if n >= 1e6:
        return f"{n / 1e6:.2f}M/s"
    if n >= 1e3:
        return f"{n / 1e3:.1f}k/s"
    return f"{n:.0f}/s"


def _verdict(passed: bool | None) -> str:
    return "-" if passed is None else ("PASS" if passed else "FAIL")


# -- 1. throughput ----------------------------------------------------------------------------


def _time_tw_map(n: int, workers: int) -> float:
    started = _perf()
    done = _count(tw.map(_identity, range(n), workers=workers))
    elapsed = _perf() - started
    assert done == n
    return elapsed


def _time_executor_map(n: int, workers: int) -> float:
    started = _perf()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        done = _count(pool.map(_identity, range(n)))
    elapsed = _perf() - started
    assert done == n
    return elapsed


def bench_throughput(n: int, repeats: int) -> Row:
    workers = 8
    small = n // BASELINE_SHRINK
    tw_times: list[float] = []
    tpe_times: list[float] = []
    for _ in range(repeats):  # interleaved, so both see the same machine
        tw_times.append(_time_tw_map(n, workers))
        tpe_times.append(_time_executor_map(small, workers))
    tw_rate = n / min(tw_times)
    tpe_rate = small / min(tpe_times)
    ratio = tw_rate / tpe_rate
    return Row(
        name=f"map identity, {n:,} items, 8 workers",
        threadwise=_rate(tw_rate),
        baseline=f"TPE(8).map {_rate(tpe_rate)} ({small:,} items)",
        figure=f"{ratio:.1f}x",
        target=f">= {THROUGHPUT_TARGET:g}x",
        passed=ratio >= THROUGHPUT_TARGET,
        data={
            "items": n,
            "baseline_items": small,
            "workers": workers,
            "threadwise_items_per_s": tw_rate,
            "threadpoolexecutor_items_per_s": tpe_rate,
            "ratio": ratio,
        },
    )


# -- 2. sleep-bound scaling -------------------------------------------------------------------


def _time_tw_sleep(n: int, workers: int) -> float:
    started = _perf()
    done = _count(tw.map(time.sleep, [SLEEP_SECONDS] * n, workers=workers))
    elapsed = _perf() - started
    assert done == n
    return elapsed


def _time_executor_sleep(n: int, workers: int) -> float:
    started = _perf()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        done = _count(pool.map(time.sleep, [SLEEP_SECONDS] * n))
    elapsed = _perf() - started
    assert done == n
    return elapsed


def bench_sleep(n: int, repeats: int) -> Row:
    workers = 100
    ideal = n * SLEEP_SECONDS / workers
    tw_times: list[float] = []
    tpe_times: list[float] = []
    for _ in range(repeats):
        tw_times.append(_time_tw_sleep(n, workers))
        tpe_times.append(_time_executor_sleep(n, workers))
    tw_ratio = min(tw_times) / ideal
    tpe_ratio = min(tpe_times) / ideal
    return Row(
        name=f"sleep(0.01) x {n:,}, 100 workers",
        threadwise=f"{min(tw_times):.3f} s",
        baseline=f"TPE(100).map {min(tpe_times):.3f} s = {tpe_ratio:.3f}",
        figure=f"{tw_ratio:.3f} of ideal",
        target=f"<= {SLEEP_TARGET:g}",
        passed=tw_ratio <= SLEEP_TARGET,
        data={
            "items": n,
            "workers": workers,
            "ideal_s": ideal,
            "threadwise_s": min(tw_times),
            "threadpoolexecutor_s": min(tpe_times),
            "threadwise_ratio": tw_ratio,
            "threadpoolexecutor_ratio": tpe_ratio,
        },
    )


# -- 3. pipelines -----------------------------------------------------------------------------


def _expected(n: int) -> tuple[int, int]:
    """(count, sum) of the pipeline's outputs, computed serially, to check every runner."""
    kept = [v for v in (_double(_inc(x)) for x in range(n)) if _multiple_of_4(v)]
    return len(kept), sum(kept)


def _run_tw_pipeline(n: int) -> tuple[float, int, int]:
    started = _perf()
    count = total = 0
    for value in tw.Pipeline(range(n)).map(_inc).map(_double).filter(_multiple_of_4):
        count += 1
        total += value
    return _perf() - started, count, total


_DONE = object()  # the sentinel of the hand-written pipeline


def _queue_stage(
    fn: Callable[[Any], Any], inbox: queue.Queue[Any], outbox: queue.Queue[Any], keep: bool
) -> None:
    """One stage of the classic pattern: get, apply, put, until the sentinel comes through."""
    while True:
        item = inbox.get()
        if item is _DONE:
            outbox.put(_DONE)
            return
        if keep:
            if fn(item):
                outbox.put(item)
        else:
            outbox.put(fn(item))


def _run_queue_pipeline(n: int) -> tuple[float, int, int]:
    started = _perf()
    queues: list[queue.Queue[Any]] = [queue.Queue(maxsize=1000) for _ in range(4)]

    def feed() -> None:
        for x in range(n):
            queues[0].put(x)
        queues[0].put(_DONE)

    threads = [
        threading.Thread(target=feed, name="feed"),
        threading.Thread(target=_queue_stage, args=(_inc, queues[0], queues[1], False)),
        threading.Thread(target=_queue_stage, args=(_double, queues[1], queues[2], False)),
        threading.Thread(target=_queue_stage, args=(_multiple_of_4, queues[2], queues[3], True)),
    ]
    for thread in threads:
        thread.start()
    count = total = 0
    out = queues[3]
    while True:
        value = out.get()
        if value is _DONE:
            break
        count += 1
        total += value
    for thread in threads:
        thread.join()
    return _perf() - started, count, total


def _pypeln_runner() -> Callable[[int], tuple[float, int, int]] | None:
    try:
        import pypeln  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        return None
    stages: Any = pypeln.thread

    def run(n: int) -> tuple[float, int, int]:
        started = _perf()
        stream = stages.map(_inc, range(n), workers=1, maxsize=1000)
        stream = stages.map(_double, stream, workers=1, maxsize=1000)
        stream = stages.filter(_multiple_of_4, stream, workers=1, maxsize=1000)
        count = total = 0
        for value in stream:
            count += 1
            total += value
        return _perf() - started, count, total

    return run


def _checked(run: Callable[[int], tuple[float, int, int]], n: int, who: str) -> float:
    """One timed run of ``run`` over ``n`` items, its outputs checked; items per second."""
    elapsed, count, total = run(n)
    expected = _expected(n)
    if (count, total) != expected:
        raise AssertionError(f"{who} produced {(count, total)}, expected {expected}")
    return n / elapsed


def bench_pipeline(n: int, repeats: int) -> tuple[list[Row], list[str]]:
    """Every contender once per round, in turn (the machine's load moves between rounds more
    than within one); each ratio is taken within a round, and the median of the rounds is
    the figure, with the best and worst round beside it."""
    small = n // BASELINE_SHRINK
    baselines: list[tuple[str, Callable[[int], tuple[float, int, int]], int]] = [
        ("queue.Queue+threads", _run_queue_pipeline, small)
    ]
    notes: list[str] = []
    pypeln_run = _pypeln_runner()
    if pypeln_run is None:
        notes.append("pypeln is not installed (pip install pypeln): its pipeline row is skipped")
    else:
        baselines.append(("pypeln.thread", pypeln_run, small))
    # The floor under the GIL: the three functions chained in one thread, no hand-over at all.
    baselines.append(("serial filter(map(map()))", _run_serial_pipeline, n))
    tw_rates: list[float] = []
    rates: dict[str, list[float]] = {label: [] for label, _, _ in baselines}
    for _ in range(repeats):
        tw_rates.append(_checked(_run_tw_pipeline, n, "threadwise"))
        for label, run, items in baselines:
            rates[label].append(_checked(run, items, label))
    tw_rate = statistics.median(tw_rates)
    rows = []
    for label, _, items in baselines:
        ratios = [t / b for t, b in zip(tw_rates, rates[label], strict=True)]
        ratio = statistics.median(ratios)
        rate = statistics.median(rates[label])
        serial = label.startswith("serial")
        rows.append(
            Row(
                name=f"3-stage pipeline, {n:,} items",
                threadwise=_rate(tw_rate),
                baseline=f"{label} {_rate(rate)}" + ("" if serial else f" ({items:,})"),
                figure=f"{ratio:.2f}x" if serial else f"{ratio:.1f}x",
                target="(speed)" if serial else f">= {PIPELINE_TARGET:g}x",
                passed=None if serial else ratio >= PIPELINE_TARGET,
                data={
                    "baseline": "serial" if serial else label,
                    "items": n,
                    "baseline_items": items,
                    "threadwise_items_per_s": tw_rate,
                    "baseline_items_per_s": rate,
                    "ratio": ratio,
                    "ratio_rounds": ratios,
                },
            )
        )
    return rows, notes


def _run_serial_pipeline(n: int) -> tuple[float, int, int]:
    started = _perf()
    count = total = 0
    for value in filter(_multiple_of_4, map(_double, map(_inc, range(n)))):
        count += 1
        total += value
    return _perf() - started, count, total


# -- 4. memory ---------------------------------------------------------------------------------

_MEMORY_SCRIPT = """
import json, resource, sys
runner, n = sys.argv[1], int(sys.argv[2])

def identity(x):
    return x

def items(n):  # generated lazily: the input itself takes no memory
    for i in range(n):
        yield i

count = 0
if runner == "threadwise":
    import threadwise as tw
    for _ in tw.map(identity, items(n), workers=8):
        count += 1
elif runner == "threadwise-unordered":
    import threadwise as tw
    for _ in tw.map(identity, items(n), workers=8, ordered=False):
        count += 1
else:
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for _ in pool.map(identity, items(n)):
            count += 1
assert count == n, (count, n)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
peak_mb = peak / (2**20 if sys.platform == "darwin" else 2**10)
source = "ru_maxrss"
try:
    # Linux: ru_maxrss also covers the parent's memory when the child was started by vfork +
    # exec (as subprocess does), so the peak of this process's own memory is read instead.
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                peak_mb, source = int(line.split()[1]) / 2**10, "VmHWM"
except OSError:
    pass
print(json.dumps({"peak_rss_mb": peak_mb, "source": source}))
"""


def _peak_rss_mb(runner: str, n: int) -> float:
    """Peak RSS (MB) of a fresh interpreter that runs ``runner`` over ``n`` items."""
    package_root = str(Path(tw.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT, runner, str(n)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory run {runner} {n} failed:\n{proc.stderr}")
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["peak_rss_mb"])


def bench_memory(large: int, tpe_large: int) -> tuple[list[Row], list[str]]:
    try:
        import resource  # noqa: F401  (not available on Windows)
    except ImportError:
        return [], ["memory: the resource module is not available here, section skipped"]
    small = 10_000
    rows = []
    for runner, label in [
        ("threadwise", "tw.map"),
        ("threadwise-unordered", "tw.map ordered=False"),
    ]:
        base = _peak_rss_mb(runner, small)
        big = _peak_rss_mb(runner, large)
        growth = big - base
        rows.append(
            Row(
                name=f"peak RSS {label}, {large:,} lazy items",
                threadwise=f"{big:.1f} MB",
                baseline=f"same, {small:,} items: {base:.1f} MB",
                figure=f"{growth:+.1f} MB",
                target=f"<= +{MEMORY_TARGET_MB:g} MB",
                passed=growth <= MEMORY_TARGET_MB,
                data={
                    "runner": runner,
                    "items": large,
                    "baseline_items": small,
                    "peak_rss_mb": big,
                    "baseline_peak_rss_mb": base,
                    "growth_mb": growth,
                },
            )
        )
    base = _peak_rss_mb("threadpoolexecutor", small)
    big = _peak_rss_mb("threadpoolexecutor", tpe_large)
    rows.append(
        Row(
            name=f"peak RSS TPE(8).map, {tpe_large:,} items",
            threadwise="-",
            baseline=f"{big:.1f} MB; {small:,} items: {base:.1f} MB",
            figure=f"{big - base:+.1f} MB",
            target="(grows)",
            passed=None,
            data={
                "runner": "threadpoolexecutor",
                "items": tpe_large,
                "baseline_items": small,
                "peak_rss_mb": big,
                "baseline_peak_rss_mb": base,
                "growth_mb": big - base,
            },
        )
    )
    return rows, []


# -- 5. instructions per item (optional: --callgrind) ----------------------------------------

_CALLGRIND_SCRIPT = """
import sys
import threadwise as tw

def identity(x):
    return x

def inc(x):
    return x + 1

def double(x):
    return x * 2

def multiple_of_4(x):
    return x % 4 == 0

def main(kind, n):
    if kind == "serial map()":
        for _ in map(identity, range(n)):
            pass
    elif kind == "tw.map":
        for _ in tw.map(identity, range(n), workers=2):
            pass
    elif kind == "serial chain":
        for _ in filter(multiple_of_4, map(double, map(inc, range(n)))):
            pass
    else:
        for _ in tw.Pipeline(range(n)).map(inc).map(double).filter(multiple_of_4):
            pass

main(sys.argv[1], int(sys.argv[2]))
"""

CALLGRIND_KINDS = ("serial map()", "tw.map", "serial chain", "3-stage Pipeline")


def bench_instructions(small: int, large: int) -> tuple[list[Row], list[str]]:
    """Instructions per item counted by callgrind (immune to the machine's load): a run of
    ``large`` items minus one of ``small``, so start-up and shutdown cancel out. The count
    covers every thread and the caller's own loop; the serial figures are the floor."""
    import _callgrind

    if not _callgrind.available():
        return [], ["valgrind is not installed: instruction counts skipped"]
    per_item = {
        kind: _callgrind.per_operation(_CALLGRIND_SCRIPT, kind, small, large)
        for kind in CALLGRIND_KINDS
    }
    rows = []
    for kind, floor in (("tw.map", "serial map()"), ("3-stage Pipeline", "serial chain")):
        ratio = per_item[kind] / per_item[floor]
        rows.append(
            Row(
                name=f"instructions per item, {kind}",
                threadwise=f"{per_item[kind]:,.0f}",
                baseline=f"{floor} loop {per_item[floor]:,.0f}",
                figure=f"{ratio:.2f}x",
                target="(cost)",
                passed=None,
                data={"kind": kind, "instructions": per_item[kind], "floor": per_item[floor]},
            )
        )
    return rows, []


# -- report -----------------------------------------------------------------------------------


def format_table(rows: list[Row]) -> str:
    headers = ("benchmark", "threadwise", "baseline", "figure", "target", "result")
    cells = [
        (r.name, r.threadwise, r.baseline, r.figure, r.target, _verdict(r.passed)) for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    # Left-align the text columns, right-align the figures.
    align = ["<", ">", "<", ">", "<", "<"]

    def line(values: tuple[str, ...]) -> str:
        text = "  ".join(f"{v:{a}{w}}" for v, a, w in zip(values, align, widths, strict=True))
        return text.rstrip()

    out = [line(headers), "  ".join("-" * w for w in widths)]
    out.extend(line(c) for c in cells)
    return "\n".join(out)


def _environment(quick: bool) -> dict[str, Any]:
    return {
        "threadwise": tw.__version__,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "quick": quick,
        "repeats": REPEATS,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="10x smaller inputs: a smoke run of a few seconds"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results to FILE as JSON")
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="also count instructions per item with valgrind's callgrind (minutes)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 1 if a figure misses its target"
    )
    args = parser.parse_args(argv)
    quick: bool = args.quick

    env = _environment(quick)
    print(
        f"threadwise {env['threadwise']} map benchmarks: {env['implementation']} "
        f"{env['python']}, {env['platform']}, {env['cpus']} CPUs; "
        f"timings are the best of {REPEATS} runs{' (quick)' if quick else ''}"
    )
    print("(running: the memory section starts fresh interpreters and takes longest)", flush=True)
    notes: list[str] = []
    rows = [
        bench_throughput(100_000 if quick else 1_000_000, REPEATS),
        bench_sleep(500 if quick else 2_000, REPEATS),
    ]
    pipeline_rows, pipeline_notes = bench_pipeline(100_000 if quick else 1_000_000, PIPELINE_ROUNDS)
    rows += pipeline_rows
    notes += pipeline_notes
    memory_rows, memory_notes = bench_memory(
        1_000_000 if quick else 10_000_000, 100_000 if quick else 1_000_000
    )
    rows += memory_rows
    if args.callgrind:
        cg_rows, cg_notes = bench_instructions(100_000, 300_000)
        rows += cg_rows
        notes += cg_notes
    notes += memory_notes

    print()
    print(format_table(rows))
    notes.insert(0, "TPE is concurrent.futures.ThreadPoolExecutor; (N items): a smaller input")
    if quick:
        notes.append(
            "--quick: small inputs amortise start-up less; the targets are set for the full run"
        )
    for note in notes:
        print(f"note: {note}")
    failed = [r.name for r in rows if r.passed is False]
    print()
    judged = sum(r.passed is not None for r in rows)
    print(f"targets met: {judged - len(failed)} of {judged}")

    if args.json:
        payload = {
            **env,
            "targets": {
                "throughput_ratio_min": THROUGHPUT_TARGET,
                "sleep_ratio_max": SLEEP_TARGET,
                "pipeline_ratio_min": PIPELINE_TARGET,
                "memory_growth_mb_max": MEMORY_TARGET_MB,
            },
            "results": [asdict(r) for r in rows],
            "notes": notes,
            "all_passed": not failed,
        }
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 1 if args.strict and failed else 0


if __name__ == "__main__":
    sys.exit(main())
