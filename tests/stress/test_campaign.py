"""The short fault-injection campaign CI runs; `python -m threadwise.stress --runs 10000` is
the long one. Each example is one randomised run, reproducible from its seed."""

from __future__ import annotations

import random
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from threadwise import stress
from threadwise.testing import tiny_switch_interval


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_randomised_runs_keep_every_invariant(seed: int) -> None:
    totals = stress.Totals()
    with tiny_switch_interval():
        problem = stress.run_one(seed, totals)
    assert problem is None, f"seed {seed}: {problem}"
    assert totals.leaks == totals.lost == totals.hangs == 0


def test_the_campaign_counts_what_it_injected() -> None:
    totals = stress.campaign(60, seed=12345)
    assert totals.runs == 60
    assert totals.failures_injected > 0
    assert totals.cancellations > 0
    assert sum(totals.scenarios.values()) == 60
    assert totals.problems == []
    assert "leaks=0 lost=0 hangs=0" in totals.line()


@pytest.mark.parametrize("fault", sorted(stress.FAULTS))
def test_each_harsher_fault_keeps_every_invariant(fault: str) -> None:
    """Failed thread starts, a source raising mid-chunk, fn raising Cancelled by hand, close
    hooks blocking past the grace: 12 seeded runs of each."""
    totals = stress.campaign(12, seed=2024, only=fault)
    assert totals.scenarios == {fault: 12}
    assert totals.problems == []
    assert "leaks=0 lost=0 hangs=0" in totals.line()


def test_the_injected_thread_start_failures_are_undone() -> None:
    real = threading.Thread.start
    with stress.flaky_thread_starts(random.Random(0), 1.0) as failed:
        thread = threading.Thread(target=lambda: None)
        with pytest.raises(stress.CannotStart):
            thread.start()
    assert failed == [1]
    assert threading.Thread.start is real


def test_the_command_line_runs_one_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert stress.main(["--runs", "5", "--only", "source-raises", "--seed", "3"]) in (0, 1)
    out = capsys.readouterr().out
    assert "scenarios: source-raises=5" in out
    assert "runs=5 " in out
