"""Smoke test of the start-up benchmark: it runs and reports every case (no timing asserted:
goals belong to the benchmark's own PASS/FAIL column)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_startup.py"


def test_bench_startup_quick_reports_every_case(tmp_path: Path) -> None:
    out_file = tmp_path / "startup.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json", str(out_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for case in ("python -c pass", "import threadwise", "threadwise --help"):
        assert case in proc.stdout
    assert "threadwise get --help" in proc.stdout
    results = json.loads(out_file.read_text(encoding="utf-8"))
    assert set(results["median_ms"]) == {
        "python -c pass",
        "import threadwise",
        "threadwise --help",
        "threadwise get --help",
    }
    assert all(value > 0 for value in results["median_ms"].values())
