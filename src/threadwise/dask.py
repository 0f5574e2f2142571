"""Dask clusters for ``tw.map`` and pipeline stages.

``executor="tcp://host:8786"`` (any Dask scheduler address) sends a stage's chunks to that
cluster through a client shared by every stage given the same address, made on first use and
closed when the interpreter exits (or by ``close_all()``). ``connect(address)`` makes a client
of your own for the length of a ``with`` block and closes it after.

``distributed`` is an optional dependency (``pip install 'threadwise[dask]'``), imported only
when a cluster is first used.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

__all__ = ["ClusterExecutor", "close_all", "connect", "is_address"]

P = ParamSpec("P")
R = TypeVar("R")

INSTALL_HINT = "pip install 'threadwise[dask]'"
# The schemes of Dask's comms: an executor given as a string must name one.
_SCHEMES = ("tcp://", "tls://", "ucx://", "inproc://", "ws://", "wss://")


def is_address(value: object) -> bool:
    """Whether ``value`` reads as a Dask scheduler address (``tcp://host:port`` and such)."""
    return isinstance(value, str) and value.startswith(_SCHEMES) and len(value) > 6


def _distributed(why: str) -> Any:
    try:
        import distributed
    except ModuleNotFoundError as exc:
        if exc.name != "distributed":  # pragma: no cover - a broken install, not a missing one
            raise
        raise ModuleNotFoundError(
            f"{why} needs Dask's distributed package: {INSTALL_HINT}", name="distributed"
        ) from None
    return distributed


def _check_address(address: object, name: str) -> str:
    if not isinstance(address, str):
        raise TypeError(f"{name} must be a Dask scheduler address string, got {address!r}")
    if not is_address(address):
        raise ValueError(
            f"{name} must be a Dask scheduler address such as 'tcp://127.0.0.1:8786', "
            f"got {address!r}"
        )
    return address


@contextmanager
def connect(address: str, *, timeout: float = 30.0) -> Iterator[concurrent.futures.Executor]:
    """A client of the cluster at ``address`` for the ``with`` block, as an executor to pass
    to ``executor=``; the client is closed at the end of the block.

    ``timeout`` bounds the connection to the scheduler (``OSError`` when it is not reached).
    """
    _check_address(address, "address")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    distributed = _distributed(f"threadwise.dask.connect({address!r})")
    client = distributed.Client(address, timeout=timeout, set_as_default=False)
    try:
        yield client.get_executor()
    finally:
        client.close()


_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def _shared_client(address: str) -> Any:
    # Under the lock: two stages starting at once must not both connect.
    with _clients_lock:
        client = _clients.get(address)
        if client is None or client.status in ("closing", "closed"):
            distributed = _distributed(f"executor={address!r}")
            client = distributed.Client(address, set_as_default=False)
            _clients[address] = client
        return client


def close_all() -> None:
    """Close the clients that ``executor=<address>`` made. Later use connects again."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.close()


atexit.register(close_all)


def _client_executor_type() -> type | None:
    """Dask's ``Client.get_executor()`` class, if ``distributed`` is loaded already (a user
    who passes one has loaded it; no one else pays for the import)."""
    cfexecutor = sys.modules.get("distributed.cfexecutor")
    return getattr(cfexecutor, "ClientExecutor", None)


def _client_threads(client: Any) -> int | None:
    # The scheduler's identity, which the client keeps and refreshes every few seconds: no
    # round trip. Missing (an older distributed, a client still connecting): not known.
    try:
        threads = client._scheduler_identity.get("total_threads")
    except Exception:
        return None
    return threads if isinstance(threads, int) and threads > 0 else None


def chunk_submitter(
    executor: concurrent.futures.Executor,
) -> Callable[..., concurrent.futures.Future[Any]]:
    """How a stage submits its chunks to ``executor``.

    On a Dask client's executor, with ``pure=False``: Dask then names the task with a fresh
    random key instead of hashing the function and the chunk (0.12-0.15 ms per chunk, of
    about 6 ms of client CPU per chunk in all), and a chunk submitted again (a retry) is a
    new task, never the held outcome of an equal earlier one.
    """
    if isinstance(executor, ClusterExecutor):
        return executor.submit_chunk
    client_executor = _client_executor_type()
    if client_executor is not None and isinstance(executor, client_executor):
        submit = executor.submit

        def submit_chunk(fn: Callable[..., Any], /, *args: Any) -> Any:
            return submit(fn, *args, pure=False)

        return submit_chunk
    return executor.submit


def executor_threads(executor: concurrent.futures.Executor) -> int | None:
    """How many chunks ``executor`` runs at once, when it says: a Dask cluster's threads, a
    standard pool's workers. None when it does not."""
    if isinstance(executor, ClusterExecutor):
        return executor.threads()
    client_executor = _client_executor_type()
    if client_executor is not None and isinstance(executor, client_executor):
        return _client_threads(getattr(executor, "_client", None))
    workers = getattr(executor, "_max_workers", None)
    return workers if isinstance(workers, int) and workers > 0 else None


class ClusterExecutor(concurrent.futures.Executor):
    """The executor that ``executor="tcp://..."`` stands for: chunks go to the shared client of
    that address, connected on the first ``submit``."""

    def __init__(self, address: str) -> None:
        self.address = _check_address(address, "executor")
        import importlib.util

        # The install hint now, when the stage is made, not at its first chunk (without the
        # cost of importing distributed before it is used).
        if importlib.util.find_spec("distributed") is None:
            _distributed(f"executor={address!r}")

    def submit(
        self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> concurrent.futures.Future[R]:
        future: concurrent.futures.Future[R] = (
            _shared_client(self.address).get_executor().submit(fn, *args, **kwargs)
        )
        return future

    def submit_chunk(self, fn: Callable[..., Any], /, *args: Any) -> concurrent.futures.Future[Any]:
        """``submit`` for a stage's chunk: a task of its own, never hashed (see
        ``chunk_submitter``)."""
        future: concurrent.futures.Future[Any] = (
            _shared_client(self.address).get_executor().submit(fn, *args, pure=False)
        )
        return future

    def threads(self) -> int | None:
        """Threads across the cluster's workers, as last reported to the client (connected
        now if it is not yet: the stage's first chunk would connect it anyway)."""
        return _client_threads(_shared_client(self.address))

    def __repr__(self) -> str:
        return f"ClusterExecutor({self.address!r})"
