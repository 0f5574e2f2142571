"""CPython's own threading and queue test suites run against threadwise's types.

``cpython_test(name)`` imports ``test.<name>`` from the running interpreter's own ``test``
package, or skips the calling test module with one clear line where the interpreter was
installed without it (some distributions split it out).
"""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest


def cpython_test(name: str) -> ModuleType:
    try:
        return importlib.import_module(f"test.{name}")
    except ImportError:
        pytest.skip(
            f"this Python ships without its test package (test.{name})", allow_module_level=True
        )
