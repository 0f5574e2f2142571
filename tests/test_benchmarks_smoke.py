"""Smoke test of the kernel benchmark: it runs, reports every wait and the overhead ratio.

No timing is asserted here: timing goals belong to the benchmark's own PASS/FAIL column.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_kernel.py"

WAITS = [
    "tw.sleep",
    "Event.wait",
    "Lock.acquire",
    "RLock.acquire",
    "Semaphore.acquire",
    "Condition.wait",
    "Queue.get",
    "Queue.put",
    "Task.join",
]


def test_bench_kernel_quick_reports_every_wait_and_the_ratio(tmp_path: Path) -> None:
    out_file = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json", str(out_file)],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout

    # One table row per wait, starting with its name (so "Lock.acquire" is not matched by
    # the "RLock.acquire" row), followed by the trial count, three figures and the verdict.
    for name in WAITS:
        row = rf"^\s*{re.escape(name)}\s+20\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+(PASS|FAIL)\s*$"
        assert re.search(row, out, re.MULTILINE), f"no latency row for {name}:\n{out}"
    assert re.search(r"ratio threadwise/ThreadPoolExecutor: \d+\.\d+", out), out

    data = json.loads(out_file.read_text(encoding="utf-8"))
    assert data["quick"] is True
    assert [entry["primitive"] for entry in data["latency"]] == WAITS
    for entry in data["latency"]:
        assert entry["trials"] == 20
        assert 0 < entry["p50_ms"] <= entry["p99_ms"] <= entry["max_ms"]
    overhead = data["overhead"]
    assert overhead["tasks"] == 2_000
    assert overhead["threadwise_us_per_task"] > 0
    assert overhead["threadpoolexecutor_us_per_task"] > 0
    expected_ratio = overhead["threadwise_us_per_task"] / overhead["threadpoolexecutor_us_per_task"]
    assert abs(overhead["ratio"] - expected_ratio) < 1e-9


def test_bench_kernel_rejects_unknown_options() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--no-such-option"],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert proc.returncode == 2
    assert "usage:" in proc.stderr
