"""Map and pipelines on real Dask worker processes over loopback: a 2-process ``LocalCluster``,
and a scheduler and workers started with Dask's own ``dask scheduler`` / ``dask worker``."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import threadwise as tw

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
dask: Any = distributed  # distributed has no type hints

HERE = Path(__file__).resolve().parent


def square(x: int) -> int:
    return x * x


def slow_square(x: int) -> int:
    time.sleep(0.01)
    return x * x


def odd(x: int) -> bool:
    return x % 2 == 1


def die_on_7(x: int) -> int:
    """Kills the worker process running it when given 7: Dask gives up on that task."""
    if x == 7:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def pid_of_worker() -> int:
    return os.getpid()


def local_cluster() -> Any:
    return dask.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        # Any free port (None still binds Dask's HTTP server to 8787, maybe taken).
        dashboard_address=":0",
    )


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """A cluster of 2 worker processes, warmed up before the per-test thread snapshot: Dask
    starts long-lived threads of its own in this process (its event loop, 'Dask-Offload')."""
    cluster = local_cluster()
    client = dask.Client(cluster)
    try:
        assert list(tw.map(square, range(20), executor=client.get_executor())) == [
            x * x for x in range(20)
        ]
        yield client
    finally:
        client.close()
        cluster.close()


def worker_pids(client: Any) -> list[int]:
    return sorted(client.run(pid_of_worker).values())


def scheduler_tasks(client: Any) -> int:
    """Tasks the scheduler still holds, from every client."""

    def count(dask_scheduler: Any) -> int:
        return len(dask_scheduler.tasks)

    return int(client.run_on_scheduler(count))


def wait_no_tasks(client: Any, within: float = 10.0) -> int:
    deadline = time.monotonic() + within
    while (left := scheduler_tasks(client)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.mark.parametrize("ordered", [True, False])
def test_map_on_worker_processes_matches_threads(client: Any, ordered: bool) -> None:
    items = range(300)
    executor = client.get_executor()
    on_dask = list(tw.map(square, items, ordered=ordered, executor=executor))
    on_threads = list(tw.map(square, items, ordered=ordered))
    if ordered:
        assert on_dask == on_threads == [x * x for x in items]
    else:
        assert Counter(on_dask) == Counter(on_threads) == Counter(x * x for x in items)
    # The work really ran in the worker processes, not in this one.
    assert os.getpid() not in worker_pids(client)


@pytest.mark.parametrize("ordered", [True, False])
def test_mixed_pipeline_on_worker_processes_matches_threads(client: Any, ordered: bool) -> None:
    """Thread stages and cluster stages in one pipeline: same outputs, every item counted."""

    def build(executor: concurrent.futures.Executor | None) -> tw.Pipeline[int]:
        return (
            tw.Pipeline(range(200))
            .map(square, workers=3, ordered=ordered, executor=executor)
            .filter(odd, workers=2, ordered=ordered)
            .flat_map(lambda x: [x, -x], ordered=ordered)
            .map(square, workers=2, ordered=ordered, executor=executor)
        )

    on_dask = build(client.get_executor())
    dask_out = list(on_dask)
    thread_out = list(build(None))
    expected = [y * y for x in range(200) if odd(x * x) for y in (x * x, -x * x)]
    if ordered:
        assert dask_out == thread_out == expected
    else:
        assert Counter(dask_out) == Counter(thread_out) == Counter(expected)
    report = on_dask.report
    assert report is not None
    assert report.finished
    assert report.accounted
    assert [stage.completed for stage in report.stages] == [200, 200, 100, 200]
    assert report.delivered == len(expected)


@pytest.fixture
def own_client(client: Any) -> Iterator[Any]:
    """A cluster of its own, closed at the end of the test: the threads Dask starts in this
    process to watch a restarted worker end with it."""
    with local_cluster() as cluster, dask.Client(cluster, set_as_default=False) as own:
        yield own


def test_kill_9_of_a_worker_mid_map_counts_each_item_once(own_client: Any) -> None:
    """A worker process killed with SIGKILL while it runs chunks: Dask runs its chunks again
    elsewhere (the nanny restarts the worker), and every item comes out exactly once."""
    client = own_client
    victim = worker_pids(client)[0]
    n = 300
    pipeline = tw.Pipeline(range(n)).map(
        slow_square, workers=4, ordered=False, executor=client.get_executor()
    )
    seen: list[int] = []
    for i, value in enumerate(pipeline):
        seen.append(value)
        if i == 20:
            os.kill(victim, signal.SIGKILL)
    assert victim not in worker_pids(client)  # it really died (and was replaced)
    assert Counter(seen) == Counter(x * x for x in range(n))
    report = pipeline.report
    assert report is not None
    assert report.finished
    assert report.accounted
    stage = report.stages[0]
    assert (stage.items_in, stage.completed, stage.failed, stage.items_out) == (n, n, 0, n)
    assert (stage.not_started, stage.discarded) == (0, 0)
    assert report.delivered == n


@pytest.fixture
def fragile_client(client: Any) -> Iterator[Any]:
    """A cluster of its own that gives up on a task at the first worker it kills."""
    dask_config: Any = pytest.importorskip("dask").config
    with (
        dask_config.set({"distributed.scheduler.allowed-failures": 0}),
        local_cluster() as cluster,
        dask.Client(cluster, set_as_default=False) as own,
    ):
        yield own


def test_a_chunk_dask_gives_up_on_fails_its_items_with_killed_worker(fragile_client: Any) -> None:
    """KilledWorker fails each item of the chunk; retries run them again one by one (all but
    the item that kills its worker succeed), on_error applies, each item is counted once."""
    executor = fragile_client.get_executor()
    n = 20
    # One chunk in flight at a time: a worker that dies takes down only the chunk with 7
    # (Dask fails every task that was on it).
    skipping = tw.Pipeline(range(n)).map(
        die_on_7, workers=1, executor=executor, retries=1, backoff=0.001, on_error="skip"
    )
    assert list(skipping) == [x for x in range(n) if x != 7]
    report = skipping.report
    assert report is not None
    assert report.accounted
    stage = report.stages[0]
    assert (stage.completed, stage.failed, stage.not_started) == (n - 1, 1, 0)
    assert stage.retries >= 1  # each item of the lost chunk, one by one
    assert [item for item, _ in stage.errors] == [7]
    assert isinstance(stage.errors[0][1], dask.KilledWorker)

    raising = tw.Pipeline(range(n)).map(die_on_7, workers=1, executor=executor)
    with pytest.raises(dask.KilledWorker) as info:
        raising.run()
    notes = getattr(info.value, "__notes__", [])
    assert any("raised by stage" in note for note in notes), notes
    report = raising.report
    assert report is not None
    assert report.accounted
    assert report.stages[0].failed == 1


def test_breaking_out_of_a_cluster_map_clears_the_scheduler(client: Any) -> None:
    results = tw.map(slow_square, range(10_000), workers=4, executor=client.get_executor())
    for i, _ in enumerate(results):
        if i == 10:
            break
    results.close()  # type: ignore[attr-defined]
    assert wait_no_tasks(client) == 0


# -- a cluster of separate processes, started with Dask's own commands ---------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture(scope="module")
def cli_cluster() -> Iterator[str]:
    """``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1: the address."""
    dask_bin = Path(sys.executable).with_name("dask")
    if not dask_bin.exists():
        pytest.skip("the dask command is not installed beside this interpreter")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}
    processes = [
        start(
            [
                str(dask_bin),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--dashboard-address",
                ":0",
                "--no-show",
            ],
            env,
        )
    ]
    try:
        for _ in range(2):
            processes.append(
                start(
                    [
                        str(dask_bin),
                        "worker",
                        address,
                        "--nthreads",
                        "1",
                        "--host",
                        "127.0.0.1",
                        "--no-dashboard",
                        "--no-nanny",
                    ],
                    env,
                )
            )
        yield address
    finally:
        for process in reversed(processes):
            stop(process)


def test_map_by_address_on_a_dask_scheduler_and_workers(cli_cluster: str) -> None:
    """``executor=`` given as the scheduler's address: the client is made and closed by
    threadwise; the results match threads."""
    from threadwise import dask as tw_dask

    with dask.Client(cli_cluster, timeout=30) as client:
        client.wait_for_workers(2, timeout=60)
    with tw_dask.connect(cli_cluster) as executor:
        for ordered in (True, False):
            out = list(tw.map(square, range(200), ordered=ordered, executor=executor))
            if ordered:
                assert out == [x * x for x in range(200)]
            else:
                assert Counter(out) == Counter(x * x for x in range(200))
    # By address alone: threadwise makes the client (and closes it at exit or close_all()).
    try:
        pipeline = tw.Pipeline(range(100)).map(square, executor=cli_cluster).filter(odd)
        assert list(pipeline) == [x * x for x in range(100) if odd(x * x)]
        assert list(tw.map(square, range(10), executor=cli_cluster)) == [x * x for x in range(10)]
    finally:
        tw_dask.close_all()


CTRL_C_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import threadwise as tw
    from threadwise import dask as tw_dask
    from test_dask_processes import slow_square

    with tw_dask.connect(sys.argv[1]) as executor:
        for i, _ in enumerate(tw.map(slow_square, range(100_000), executor=executor)):
            if i == 20:
                print("running", flush=True)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process")
def test_ctrl_c_of_a_process_running_a_cluster_map(cli_cluster: str) -> None:
    """Ctrl-C exits promptly, and the scheduler is left with no tasks of the run."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}
    with subprocess.Popen(
        [sys.executable, "-c", CTRL_C_SCRIPT, cli_cluster],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == "running\n"
            sent = time.monotonic()
            child.send_signal(signal.SIGINT)
            child.wait(30)
            took = time.monotonic() - sent
            _, stderr = child.communicate()
        finally:
            if child.poll() is None:
                child.kill()
    print(f"exited {took:.2f} s after SIGINT")
    assert child.returncode != 0
    assert "KeyboardInterrupt" in stderr, stderr
    # Well under 1 s on an idle machine; the bound is generous for a loaded one.
    assert took < 5.0, took

    with dask.Client(cli_cluster, timeout=30) as client:
        assert wait_no_tasks(client) == 0
