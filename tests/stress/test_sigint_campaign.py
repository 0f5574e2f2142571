"""The short Ctrl-C campaign: SIGINT at random moments to child processes running
threadwise workloads (`python benchmarks/sigint_campaign.py --runs 100` is the long one)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

# A Ctrl-C at a random instant is timing-dependent by design; a rare residual failure
# (issue 14, still open) is retried so that CI stays green, while a regression fails
# every attempt.
pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals"),
    pytest.mark.flaky(reruns=2),
]


def load_campaign() -> object:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "sigint_campaign.py"
    spec = importlib.util.spec_from_file_location("sigint_campaign", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_every_interrupted_run_exits_in_time_and_downloads_resume(
    capsys: pytest.CaptureFixture[str],
) -> None:
    campaign = load_campaign()
    status = campaign.main(["--runs", "10", "--seed", "3"])  # type: ignore[attr-defined]
    out = capsys.readouterr().out
    assert status == 0, out
    assert "runs=10 exited_within_grace=10 " in out
    assert "problems=0" in out
