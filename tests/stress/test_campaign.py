"""The short fault-injection campaign CI runs; `python -m threadwise.stress --runs 10000` is
the long one. Each example is one randomised run, reproducible from its seed."""

from __future__ import annotations

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
