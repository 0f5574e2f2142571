"""Start-up time of ``import threadwise`` and of the ``threadwise`` command, beside a bare
interpreter measured in the same run.

Each case is a fresh interpreter, run many times; the cases take turns, one run each (round
robin), so that a busy moment of the machine falls on all of them alike, and each figure is the
median. The bytecode is compiled first, as an installed package's is (it is not written when
PYTHONDONTWRITEBYTECODE is set, and compiling on every run would dwarf the rest).

    python benchmarks/bench_startup.py            # 3 rounds of 15 runs per case
    python benchmarks/bench_startup.py --quick    # a smoke run
    python benchmarks/bench_startup.py --json results.json --strict
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import threadwise

_MAIN = "import sys; from threadwise.cli import main; sys.exit(main(sys.argv[1:]))"

# name -> (the interpreter's arguments, the goal in ms of wall time or None, and whether the
# goal counts from the bare interpreter's time rather than from zero)
CASES: dict[str, tuple[list[str], float | None, bool]] = {
    "python -c pass": (["-c", "pass"], None, False),
    "import threadwise": (["-c", "import threadwise"], 15.0, True),
    "threadwise --help": (["-c", _MAIN, "--help"], 60.0, False),
    "threadwise get --help": (["-c", _MAIN, "get", "--help"], 80.0, False),
}


def _once(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    return (time.perf_counter() - started) * 1000


def measure(rounds: int, runs: int) -> dict[str, float]:
    """The median wall time of each case in ms, over ``rounds`` x ``runs`` runs."""
    samples: dict[str, list[float]] = {name: [] for name in CASES}
    for args, _, _ in CASES.values():
        _once(args)  # warm the page cache and write any missing bytecode
    for _ in range(rounds * runs):
        for name, (args, _, _) in CASES.items():  # one run of each case in turn
            samples[name].append(_once(args))
    return {name: statistics.median(values) for name, values in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="1 round of 3 runs per case")
    parser.add_argument("--json", metavar="FILE", help="also write the results to FILE as JSON")
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 1 if a figure misses its goal"
    )
    args = parser.parse_args(argv)
    compileall.compile_dir(Path(threadwise.__file__).parent, quiet=1)
    rounds, runs = (1, 3) if args.quick else (3, 15)
    medians = measure(rounds, runs)
    bare = medians["python -c pass"]
    print(f"start-up, median of {rounds * runs} runs per case, cases interleaved")
    if hasattr(os, "getloadavg"):
        print("load average: " + ", ".join(f"{load:.2f}" for load in os.getloadavg()))
    print(f"{'case':<24} {'ms':>7} {'over bare':>10}  goal")
    missed = []
    for name, (_, goal, over_bare) in CASES.items():
        value = medians[name]
        verdict = ""
        if goal is not None:
            measured = value - bare if over_bare else value
            where = " over bare" if over_bare else ""
            verdict = f"<= {goal:.0f} ms{where}: {'PASS' if measured <= goal else 'FAIL'}"
            if measured > goal:
                missed.append(name)
        print(f"{name:<24} {value:>7.1f} {value - bare:>+10.1f}  {verdict}")
    if args.quick:
        print("--quick: too few runs for the figures to mean much")
    if args.json:
        results = {"rounds": rounds, "runs": runs, "median_ms": medians}
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
