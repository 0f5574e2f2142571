"""threadwise.testing as a user sees it: installed, the plugin is active in a fresh project."""

from __future__ import annotations

import sys
import threading

import pytest

import threadwise as tw
from threadwise.testing import ThreadLeakError, assert_no_thread_leaks, tiny_switch_interval

LEAKY = """
import threading

stop = threading.Event()

def test_leaks():
    threading.Thread(target=stop.wait, args=(2,), name="leaky-worker").start()

def test_clean():
    t = threading.Thread(target=lambda: None, name="clean-worker")
    t.start()
    t.join()
"""


def test_fixture_fails_a_leaking_test_with_the_thread_name(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user=LEAKY.replace("def test_leaks():", "def test_leaks(no_thread_leaks):")
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    # the test body passes; its teardown reports the leak as an error
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*leaked 1 thread*", "*leaky-worker*"])


def test_ini_option_checks_every_test(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nthreadwise_leak_check = true\n")
    pytester.makepyfile(test_user=LEAKY)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    # the test body passes; its teardown reports the leak as an error
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*leaky-worker*"])


def test_without_the_option_nothing_is_checked(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=LEAKY)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_allow_thread_leak_marker_exempts_a_test(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nthreadwise_leak_check = true\n")
    pytester.makepyfile(
        test_user=LEAKY.replace(
            "def test_leaks():",
            "import pytest\n\n@pytest.mark.allow_thread_leak\ndef test_leaks():",
        )
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_context_manager_names_and_stacks_the_leak() -> None:
    release = threading.Event()
    try:
        with (
            pytest.raises(ThreadLeakError, match="held-open") as info,
            assert_no_thread_leaks(settle=0.05),
        ):
            threading.Thread(target=release.wait, name="held-open").start()
        assert "in wait" in str(info.value)  # the leaked thread's stack is shown
    finally:
        release.set()
        for thread in threading.enumerate():
            if thread.name == "held-open":
                thread.join()


def test_context_manager_passes_a_clean_block() -> None:
    with assert_no_thread_leaks():
        tw.spawn(lambda: 1).result()


def test_tiny_switch_interval_restores_the_previous_value() -> None:
    before = sys.getswitchinterval()
    with tiny_switch_interval():
        assert sys.getswitchinterval() == pytest.approx(1e-6)
    assert sys.getswitchinterval() == before
