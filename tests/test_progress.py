"""progress=: callbacks get increasing samples and a final one; bars go to stderr."""

from __future__ import annotations

import logging
import sys
import threading
import time

import pytest

import threadwise as tw
from threadwise.testing import busy_threads  # idle cached threads retire any time


class Recorder:
    """A progress callback that keeps every sample (and the thread it was called on)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.samples: list[tw.ProgressInfo] = []

    def __call__(self, info: tw.ProgressInfo) -> None:
        with self.lock:
            self.samples.append(info)


def slow_inc(x: int) -> int:
    time.sleep(0.01)
    return x + 1


def check_samples(samples: list[tw.ProgressInfo], n: int) -> None:
    assert samples, "the callback was never called"
    done = [s.done for s in samples]
    assert done == sorted(done), done  # never goes backwards
    assert [s.finished for s in samples] == [False] * (len(samples) - 1) + [True]
    final = samples[-1]
    assert final.done == n
    elapsed = [s.elapsed for s in samples]
    assert elapsed == sorted(elapsed)
    assert all(s.rate >= 0 for s in samples)


def test_map_callback_gets_increasing_samples_and_a_final_one() -> None:
    recorder = Recorder()
    n = 50
    results = list(tw.map(slow_inc, range(n), workers=1, progress=recorder))
    assert results == [x + 1 for x in range(n)]
    check_samples(recorder.samples, n)
    # About 0.5 s of work sampled every 0.2 s: intermediate samples were taken too.
    assert len(recorder.samples) >= 2
    assert recorder.samples[0].done < n
    final = recorder.samples[-1]
    assert final.total == n  # the length of a list is known up front
    assert final.eta == 0
    assert final.description


def test_pipeline_run_callback() -> None:
    recorder = Recorder()
    report = (
        tw.Pipeline(range(300), name="counted")
        .map(slow_inc, workers=8)
        .filter(lambda x: x % 3 == 0)
        .run(progress=recorder)
    )
    check_samples(recorder.samples, report.delivered)
    assert report.delivered == 100
    assert recorder.samples[-1].description == "counted"


def test_total_unknown_for_a_generator() -> None:
    recorder = Recorder()
    assert len(list(tw.map(slow_inc, (x for x in range(5)), progress=recorder))) == 5
    final = recorder.samples[-1]
    assert final.total is None
    assert final.eta is None
    assert final.done == 5


def test_callback_gets_a_final_sample_when_the_run_fails() -> None:
    recorder = Recorder()

    def fail(x: int) -> int:
        raise ValueError(x)

    with pytest.raises(ValueError, match="0"):
        list(tw.map(fail, range(10), progress=recorder))
    assert recorder.samples[-1].finished
    assert recorder.samples[-1].done == 0


def test_a_failing_callback_is_logged_and_the_run_continues(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(info: tw.ProgressInfo) -> None:
        raise RuntimeError("callback bug")

    with caplog.at_level(logging.ERROR, logger="threadwise"):
        assert list(tw.map(slow_inc, range(5), progress=broken)) == [1, 2, 3, 4, 5]
    failures = [r for r in caplog.records if r.exc_info and r.exc_info[0] is RuntimeError]
    assert failures


def test_force_draws_on_stderr_and_leaves_no_thread(capsys: pytest.CaptureFixture[str]) -> None:
    baseline = len(busy_threads())
    results = list(tw.map(slow_inc, range(30), workers=2, progress="force"))
    assert results == [x + 1 for x in range(30)]
    assert len(busy_threads()) == baseline
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "30" in captured.err  # the final count is shown


def test_force_without_rich_writes_a_plain_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)  # import rich... raises ImportError
    monkeypatch.setitem(sys.modules, "rich.console", None)
    monkeypatch.setitem(sys.modules, "rich.progress", None)
    baseline = len(busy_threads())
    report = tw.Pipeline(range(20), name="plain").map(slow_inc, workers=4).run(progress="force")
    assert report.delivered == 20
    assert len(busy_threads()) == baseline
    err = capsys.readouterr().err
    assert "plain: 20/20 items" in err
    assert err.endswith("\n")


def test_true_draws_nothing_when_stderr_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    baseline = len(busy_threads())
    seen_threads: set[str] = set()

    def fn(x: int) -> int:
        seen_threads.update(t.name for t in threading.enumerate())
        return x

    assert list(tw.map(fn, range(10), workers=1, progress=True)) == list(range(10))
    assert len(busy_threads()) == baseline
    assert any(name.endswith("-map-1") for name in seen_threads)  # the worker is seen
    assert not any(name.startswith("progress") for name in seen_threads)  # no sampler ran
    assert capsys.readouterr().err == ""


def test_false_draws_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert list(tw.map(slow_inc, range(3), progress=False)) == [1, 2, 3]
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("value", [42, "yes", 1.5])
def test_bad_progress(value: object) -> None:
    with pytest.raises(TypeError, match=r"\bprogress\b"):
        tw.map(slow_inc, range(3), progress=value)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"\bprogress\b"):
        tw.Pipeline(range(3)).run(progress=value)  # type: ignore[arg-type]


def test_a_callback_that_never_returns_does_not_hang_the_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()
    calls = 0

    def stuck(info: tw.ProgressInfo) -> None:
        nonlocal calls
        calls += 1
        release.wait(10)  # a callback blocked in something it cannot leave

    started = time.monotonic()
    try:
        with caplog.at_level(logging.WARNING, logger="threadwise"):
            # 40 items of 10 ms: the sampler calls back (every 0.2 s) before the end.
            out = list(tw.Pipeline(range(40)).map(slow_inc).iterate(progress=stuck, grace=0.3))
        assert out == [x + 1 for x in range(40)]
        assert calls == 1
        assert time.monotonic() - started < 5
        assert "did not return within 0.3 s" in caplog.text
    finally:
        release.set()
        for thread in threading.enumerate():
            if thread.name.startswith("progress "):
                thread.join(10)
