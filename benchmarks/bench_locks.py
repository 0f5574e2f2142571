"""Lock benchmark: the uncontended cost of tw.Lock against threading.Lock, debug mode off and on.

Run ``python benchmarks/bench_locks.py [--quick] [--json FILE] [--strict]``.

Each figure is the cost of one acquire + release pair on a lock no other thread touches, in
nanoseconds, measured with ``timeit`` in both forms, ``with lock: pass`` and
``lock.acquire(); lock.release()``: best of 5 repetitions, minus the cost of the same empty
``timeit`` loop. The ratio compares each threadwise figure with ``threading.Lock`` in the same
form, measured in the same run.

- **debug off**: a named ``tw.Lock`` with ``tw.debug(False)``.
- **debug on**: a named ``tw.Lock`` with ``tw.debug(True)`` while the thread holds another named
  lock, so every acquire runs the lock-order check (the order "outer, then this lock" is looked
  up in the recorded graph).

Goals: at most 3x ``threading.Lock`` with debug off, at most 10x with debug on.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import threading
import timeit
from dataclasses import asdict, dataclass
from typing import Any

import threadwise as tw
from threadwise import _debug

REPEAT = 5
NUMBER = 200_000
QUICK_NUMBER = 20_000
GOAL_OFF = 3.0
GOAL_ON = 10.0

FORMS = {
    "with": "with lock:\n    pass",
    "acquire/release": "acquire()\nrelease()",
}


@dataclass
class Row:
    lock: str
    mode: str  # "stdlib", "debug off", "debug on"
    form: str
    ns_per_pair: float
    ratio: float | None = None  # against threading.Lock in the same form


def _best_ns(stmt: str, namespace: dict[str, Any], number: int) -> float:
    """Best of REPEAT timings of ``stmt``, in ns per run, minus the empty loop's cost."""
    timer = timeit.Timer(stmt, globals=namespace)
    empty = timeit.Timer("pass", globals=namespace)
    best = min(timer.repeat(REPEAT, number)) / number
    loop = min(empty.repeat(REPEAT, number)) / number
    return max(best - loop, 0.0) * 1e9


def _namespace(lock: Any) -> dict[str, Any]:
    return {"lock": lock, "acquire": lock.acquire, "release": lock.release}


def measure(number: int) -> list[Row]:
    rows: list[Row] = []
    previous_debug = tw.debug()
    try:
        for form, stmt in FORMS.items():
            tw.debug(False)
            rows.append(
                Row(
                    "threading.Lock",
                    "stdlib",
                    form,
                    _best_ns(stmt, _namespace(threading.Lock()), number),
                )
            )
            rows.append(
                Row(
                    "tw.Lock('inner')",
                    "debug off",
                    form,
                    _best_ns(stmt, _namespace(tw.Lock(name="inner")), number),
                )
            )
            # Debug on, with another named lock held, so every acquire checks the order.
            tw.debug(True)
            _debug.reset()
            outer = tw.Lock(name="outer")
            outer.acquire()
            try:
                rows.append(
                    Row(
                        "tw.Lock('inner')",
                        "debug on",
                        form,
                        _best_ns(stmt, _namespace(tw.Lock(name="inner")), number),
                    )
                )
            finally:
                outer.release()
                assert tw.lock_order_violations() == []
    finally:
        tw.debug(previous_debug)
        _debug.reset()
    baseline = {row.form: row.ns_per_pair for row in rows if row.mode == "stdlib"}
    for row in rows:
        if row.mode != "stdlib":
            row.ratio = row.ns_per_pair / baseline[row.form] if baseline[row.form] else None
    return rows


def verdicts(rows: list[Row]) -> list[tuple[str, float, float, bool]]:
    """(mode, worst ratio, goal, passed) for debug off and on."""
    out = []
    for mode, goal in (("debug off", GOAL_OFF), ("debug on", GOAL_ON)):
        worst = max(row.ratio or 0.0 for row in rows if row.mode == mode)
        out.append((mode, worst, goal, worst <= goal))
    return out


def format_report(rows: list[Row], number: int) -> str:
    lines = [
        f"Uncontended acquire + release, ns per pair (best of {REPEAT} x {number:,}, "
        "empty-loop cost removed)",
        "",
        f"{'lock':<18} {'mode':<10} {'form':<16} {'ns/pair':>8}  {'vs threading.Lock':>17}",
        "-" * 74,
    ]
    for row in rows:
        ratio = "1.00x (baseline)" if row.ratio is None else f"{row.ratio:.2f}x"
        lines.append(
            f"{row.lock:<18} {row.mode:<10} {row.form:<16} {row.ns_per_pair:>8.1f}  {ratio:>17}"
        )
    lines.append("")
    for mode, worst, goal, passed in verdicts(rows):
        verdict = "PASS" if passed else "FAIL"
        lines.append(f"{verdict}  {mode}: worst ratio {worst:.2f}x (goal <= {goal:g}x)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_NUMBER:,} pairs per timing (smoke run)"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results to FILE as JSON")
    parser.add_argument(
        "--strict", action="store_true", help="exit status 1 if a ratio misses its goal"
    )
    args = parser.parse_args(argv)
    number = QUICK_NUMBER if args.quick else NUMBER
    rows = measure(number)
    print(format_report(rows, number))
    results = verdicts(rows)
    if args.json:
        data = {
            "threadwise": tw.__version__,
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "quick": args.quick,
            "repeat": REPEAT,
            "number": number,
            "rows": [asdict(row) for row in rows],
            "goals": [
                {"mode": mode, "worst_ratio": worst, "goal": goal, "passed": passed}
                for mode, worst, goal, passed in results
            ],
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
    if args.strict and not all(passed for *_, passed in results):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
