"""threadwise's own suite uses its public test helpers: `threadwise_leak_check = true` in
pyproject.toml makes the plugin fail every test that leaves a thread running."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

pytest_plugins = ["pytester"]


@pytest.fixture
def hostile() -> Iterator[HostileServer]:
    """A started ``HostileServer`` on 127.0.0.1 (tests/hostile_server.py), stopped after."""
    from hostile_server import HostileServer

    with HostileServer() as server:
        yield server


if TYPE_CHECKING:  # pragma: no cover
    from hostile_server import HostileServer
