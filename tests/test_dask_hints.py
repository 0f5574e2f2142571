"""The report's GIL-bound hint, which names the remedy (a process pool or a cluster): its rule on
given figures, and the CPU time a run measures."""

from __future__ import annotations

import pytest

import threadwise as tw
from threadwise._report import GIL_HINT_MIN_CPU, PipelineReport, StageReport


def stage(workers: int, busy: float, cpu: float, name: str = "parse") -> StageReport:
    report = StageReport(name, "map", workers)
    report.busy_seconds = busy
    report.cpu_seconds = cpu
    return report


def test_several_busy_workers_on_one_core_look_gil_bound() -> None:
    hint = stage(workers=4, busy=4.0, cpu=1.0).hint
    assert hint is not None
    assert "stage 'parse' looks GIL-bound" in hint
    assert "4 workers" in hint
    assert "about 1.0 CPU core" in hint
    assert "ProcessPoolExecutor" in hint
    assert "executor='tcp://...'" in hint


@pytest.mark.parametrize(
    ("workers", "busy", "cpu"),
    [
        (1, 4.0, 1.0),  # one worker: nothing to scale
        (4, 4.0, GIL_HINT_MIN_CPU / 2),  # too little CPU to judge by
        (4, 4.0, 3.5),  # busy about equals CPU: the threads ran in parallel (no GIL wait)
        (4, 4.0, 0.2),  # mostly waiting on I/O: 0.2 core in all
        (8, 4.0, 2.0),  # waited, but used 4 cores: GIL-free work on a larger machine
    ],
)
def test_no_hint_when_the_figures_do_not_say_gil(workers: int, busy: float, cpu: float) -> None:
    assert stage(workers, busy, cpu).hint is None


def test_the_pipeline_report_lists_and_prints_its_hints() -> None:
    report = PipelineReport("p", [stage(4, 4.0, 1.0), stage(4, 4.0, 0.01, name="fetch")])
    assert len(report.hints) == 1
    assert "'parse'" in report.hints[0]
    assert f"hint: {report.hints[0]}" in str(report).splitlines()
    quiet = PipelineReport("q", [stage(4, 4.0, 0.01)])
    assert quiet.hints == []
    assert "hint:" not in str(quiet)


def spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i % 7
    return total


def test_a_run_measures_the_cpu_time_of_its_stages() -> None:
    # spin(40_000): a few ms of pure Python each.
    pipeline = (
        tw.Pipeline([40_000] * 40)
        .map(spin, workers=2, name="cpu")
        .map(lambda x: tw.sleep(0.005) or x, workers=2, name="sleepy")
    )
    pipeline.run()
    report = pipeline.report
    assert report is not None
    cpu, sleepy = report.stages
    assert 0 < cpu.cpu_seconds <= cpu.busy_seconds * 1.05
    assert sleepy.cpu_seconds < 0.5 * sleepy.busy_seconds
    assert sleepy.hint is None
