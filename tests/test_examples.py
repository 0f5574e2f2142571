"""Every example in examples/ runs to completion and prints what it demonstrates.

Each file (subfolders included) runs in a fresh interpreter, the way a reader would run it;
they run a few at a time, since they mostly wait.
Known examples must also print their key lines; a new example only needs to exit 0 and print
something, until it gets an entry here.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
HOW_TO = ROOT / "docs" / "map-and-pipelines.md"

# Lines an example must print, by path relative to examples/. Each one only appears when the
# behaviour it names actually happened (the values are computed by the example).
EXPECTED: dict[str, list[str]] = {
    "map_basics.py": [
        "ordered: ['page-0', 'page-1', 'page-2', 'page-3'] ... 16 pages",
        "completion order: [0.0, 0.1, 0.2, 0.3]",
        "lazy: nothing pulled before iterating: True",
        "early exit: 50 results taken from an endless source",
        "early exit: worker threads left after del: 0",
        "threadwise: raised by stage 'map' for item 'three'",
        "timeout: pipeline 'map(<lambda>)' did not finish within 0.2 s",
        "rate: 20 calls at 100/s",
        "retries/skip: kept [0, 1, 2, 3, 4, 6, 7]",
        "progress: 8/8 done, finished=True",
        "executor (ThreadPoolExecutor): sum of squares below 100 = 328350",
    ],
    "pipeline_etl.py": [
        "pipeline 'orders'",
        "bottleneck: ",
        "retries in download: 16",
        "skipped by parse: 10, first: '7,customer-7,not-a-number'",
        "stored 282 paid orders in 15 batches",
        "finished: True, accounted: True",
        "backpressure: consumer took 100, source read ",
        "cancelled: 'the consumer stopped iterating'",
        "after early exit, accounted: True",
        "failure raised: ValueError(\"could not convert string to float: 'not-a-number'\")",
        "threadwise: raised by stage 'parse' for item '7,customer-7,not-a-number'",
        "finished: False, accounted: True",
    ],
    "thread_local_sessions.py": [
        "fetched 80 pages with ",
        "all closed after the map: True",
        "open sessions left: 0",
        "3 tasks opened 3 sessions, all closed: True",
        "main thread session open: True, open: 1",
        "after close_all(): closed True, open: 0",
    ],
}


def _examples() -> list[Path]:
    return sorted(p for p in EXAMPLES.rglob("*.py") if "__pycache__" not in p.parts)


def _key(path: Path) -> str:
    return path.relative_to(EXAMPLES).as_posix()


def test_the_known_examples_exist() -> None:
    # A renamed or deleted example must not silently drop its checks.
    found = {_key(p) for p in _examples()}
    missing = sorted(set(EXPECTED) - found)
    assert not missing, f"examples listed in EXPECTED but not found: {missing}"


def _run(path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "error", "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [sys.executable, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=path.parent,
        env=env,
    )


@pytest.fixture(scope="module")
def runs() -> dict[Path, subprocess.CompletedProcess[str]]:
    """Every example's run, a few at a time (they mostly wait), done before the first check."""
    paths = _examples()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        return dict(zip(paths, pool.map(_run, paths), strict=True))


@pytest.mark.parametrize("path", _examples(), ids=_key)
def test_example_runs(path: Path, runs: dict[Path, subprocess.CompletedProcess[str]]) -> None:
    proc = runs[path]
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{_key(path)} exited with {proc.returncode}:\n{output}"
    assert proc.stdout.strip(), f"{_key(path)} printed nothing"
    for line in EXPECTED.get(_key(path), []):
        assert line in proc.stdout, f"{_key(path)} did not print {line!r}:\n{output}"


def test_the_how_to_page_quotes_the_examples_verbatim() -> None:
    # The page's code is taken from the examples, so it is code that runs (and is tested
    # above). Only the signature block is not an excerpt.
    page = HOW_TO.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.DOTALL)
    excerpts = [b for b in blocks if not b.startswith("tw.map(fn, iterable")]
    assert len(excerpts) >= 10, f"expected the page to quote the examples, found {len(blocks)}"
    sources = [p.read_text(encoding="utf-8") for p in _examples()]
    # A block may join several top-level definitions (two blank lines apart) from one file.
    pieces = [piece for block in excerpts for piece in block.split("\n\n\n")]
    stale = [p for p in pieces if not any(p.strip() in source for source in sources)]
    assert not stale, "code in the how-to page not found in examples/:\n" + "\n---\n".join(stale)
