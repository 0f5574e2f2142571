"""The short random-interrupt campaign: Ctrl-C at a random instant inside every primitive,
TaskGroup, map, Pipeline and Service, from a timer thread, then the checks (no thread left,
the primitive works and its counts add up, the cancel-scope stack at the top level).
`python benchmarks/interrupt_campaign.py --trials 300` is the long one."""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings
from pathlib import Path
from types import ModuleType

import pytest

# A Ctrl-C at a random instant is timing-dependent by design; a rare residual failure (about
# one attempt in a few CI runs, never reproduced outside one) is retried so that CI stays
# green, while a regression fails every attempt.
pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals"),
    pytest.mark.flaky(reruns=2),
]


def load_campaign() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "interrupt_campaign.py"
    spec = importlib.util.spec_from_file_location("interrupt_campaign", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


CAMPAIGN = load_campaign()
# Per target and per way of interrupting; THREADWISE_KI_TRIALS sets it (CI uses fewer on the
# Pythons it runs after the main one, whose run has the full count).
TRIALS = int(os.environ.get("THREADWISE_KI_TRIALS", "30"))


@pytest.mark.parametrize("how", ["main", "signal"])
@pytest.mark.parametrize("target", [t.name for t in CAMPAIGN.available_targets()])
def test_ctrl_c_at_a_random_instant_leaves_everything_working(target: str, how: str) -> None:
    results = CAMPAIGN.campaign(TRIALS, seed=7, how=how, names=[target])
    result = results[target]
    assert result.trials == TRIALS
    if result.failures:
        # A passing rerun hides this attempt's failure: the warnings summary keeps what it
        # found (the residual failure has never been reproduced outside a full CI run).
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn(
                f"interrupt campaign {target}-{how}: {result.failures} of {TRIALS} trials "
                "failed:\n" + "\n".join(result.examples),
                UserWarning,
                stacklevel=1,
            )
    assert result.failures == 0, "\n".join(result.examples)


def test_the_campaign_finds_a_lock_left_held() -> None:
    """The harness itself: a lock whose `with` block can be left holding it is caught."""

    class LeakyLock:
        def __init__(self) -> None:
            import threading

            self.inner = threading.Lock()

        def acquire(self, timeout: float = -1) -> bool:
            return self.inner.acquire(timeout=timeout)

        def release(self) -> None:
            self.inner.release()

        def locked(self) -> bool:
            return self.inner.locked()

        def __enter__(self) -> None:
            self.inner.acquire()

        def __exit__(self, *exc: object) -> None:
            if exc[0] is None:  # forgets to release when the block raised
                self.inner.release()

    class Leaky(CAMPAIGN.LockTarget):  # type: ignore[name-defined,misc]
        name = "leaky"

        def setup(self) -> None:
            self.lock = LeakyLock()

        def op(self) -> None:
            with self.lock:
                while True:  # the Ctrl-C always lands inside the block
                    pass

        def check(self) -> list[str]:
            return CAMPAIGN._free_and_working(self.lock, "LeakyLock")  # type: ignore[no-any-return]

    import random

    problems = CAMPAIGN.run_trial(Leaky, random.Random(1), "main")
    assert any("still held" in p for p in problems), problems


def test_the_command_line_prints_trials_and_failures_per_target(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = CAMPAIGN.main(["--trials", "3", "--targets", "event,cancel-scope", "--seed", "1"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "event                        3         0" in out
    assert "cancel-scope                 3         0" in out
    assert "total                        6         0" in out
