"""`threadwise.__all__` is the public API: it names exactly what the package exports."""

from __future__ import annotations

import inspect
import types

import threadwise as tw
import threadwise.download as twd


def _public_names(module: types.ModuleType) -> set[str]:
    names = set()
    for name in dir(module):  # dir(): also the names a module loads lazily (PEP 562)
        value = getattr(module, name)
        if name.startswith("_") or isinstance(value, types.ModuleType):
            continue
        if name in ("annotations",):  # from __future__
            continue
        names.add(name)
    return names


def test_all_matches_the_real_exports() -> None:
    assert set(tw.__all__) - {"__version__"} == _public_names(tw)
    assert len(tw.__all__) == len(set(tw.__all__))


def test_every_name_in_all_exists_and_says_it_is_threadwise() -> None:
    for name in tw.__all__:
        value = getattr(tw, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__module__ == "threadwise", name


def test_download_all_matches_its_exports() -> None:
    assert set(twd.__all__) == _public_names(twd)


def test_the_contract_names_are_all_there() -> None:
    contract = {
        "spawn", "Task", "State", "Thread", "TaskGroup", "Cancelled", "sleep", "checkpoint",
        "move_on_after", "fail_after", "remaining", "Lock", "RLock", "Event", "Semaphore",
        "Condition", "Queue", "map", "Pipeline", "ThreadLocal", "Service", "threads",
        "ThreadInfo", "dump",
    }  # fmt: skip
    assert contract <= set(tw.__all__)
