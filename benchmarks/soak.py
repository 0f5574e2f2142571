"""Soak: a pipeline over an endless source for N minutes, memory sampled as it goes.

    python benchmarks/soak.py [--minutes 10] [--every 30]

Prints one line per sample (items so far, tracemalloc current/peak, RSS) and the growth
between the first and the last sample: flat memory means nothing accumulates per item.
"""

from __future__ import annotations

import argparse
import itertools
import time
import tracemalloc

import threadwise as tw


def rss_mb() -> float:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    args = parser.parse_args(argv)
    tracemalloc.start()
    stored = 0

    def store(batch: list[int]) -> None:
        nonlocal stored
        stored += len(batch)

    pipeline = (
        tw.Pipeline(itertools.count(), name="soak")
        .map(lambda x: x * 2, workers=4)
        .filter(lambda x: x % 3 != 0)
        .map(str, workers=2)
        .batch(100)
        .each(store)
    )
    samples: list[tuple[float, int, float, float]] = []
    started = time.monotonic()
    next_sample = started
    with tw.move_on_after(args.minutes * 60):
        for _ in pipeline:
            now = time.monotonic()
            if now >= next_sample:
                current, peak = tracemalloc.get_traced_memory()
                samples.append((now - started, stored, current / 1e6, rss_mb()))
                print(
                    f"t={now - started:7.1f}s items={stored:>13,} traced={current / 1e6:7.2f} MB "
                    f"peak={peak / 1e6:7.2f} MB rss={rss_mb():7.1f} MB",
                    flush=True,
                )
                next_sample += args.every
    first, last = samples[1] if len(samples) > 1 else samples[0], samples[-1]
    print(
        f"growth from t={first[0]:.0f}s to t={last[0]:.0f}s: traced {last[2] - first[2]:+.2f} MB, "
        f"rss {last[3] - first[3]:+.1f} MB over {last[1] - first[1]:,} items"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
