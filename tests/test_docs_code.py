"""The Python blocks of the README and of the docs pages that are not copied from examples/
run as shown (each block in a fresh interpreter)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Pages whose blocks are whole programs. (map-and-pipelines.md and tutorial.md quote the
# example scripts, which test_examples.py and test_tour.py run.)
PAGES = [
    "README.md",
    "docs/reference.md",
    "docs/design.md",
    "docs/debugging.md",
    "docs/downloads.md",
]


def blocks() -> list[tuple[str, int, str]]:
    found = []
    for page in PAGES:
        path = ROOT / page
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"```python\n(.*?)```", text, flags=re.DOTALL):
            code = match.group(1)
            line = text.count("\n", 0, match.start()) + 1
            found.append((page, line, code))
    return found


@pytest.mark.parametrize(("page", "line", "code"), blocks(), ids=lambda v: str(v)[:40])
def test_block_runs(page: str, line: int, code: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, f"{page}:{line} failed:\n{result.stderr[-2000:]}"
