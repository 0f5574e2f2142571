"""Static checks of the public API's types: mypy --strict and pyright check this file in CI
(it is not a test module; nothing here needs to run)."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from typing import assert_type

import threadwise as tw


def double(x: int) -> int:
    return 2 * x


def greet(name: str, *, punctuation: str = "!") -> str:
    return f"hello {name}{punctuation}"


def parse(text: str) -> list[int]:
    return [int(part) for part in text.split(",")]


def check_spawn() -> None:
    task = tw.spawn(double, 21)
    assert_type(task, tw.Task[int])
    assert_type(task.result(), int)
    assert_type(task.exception(), BaseException | None)
    assert_type(task.state, tw.State)
    assert_type(tw.spawn(greet, "you", punctuation="?").result(), str)
    tw.spawn(double, "not an int")  # type: ignore[arg-type]
    tw.spawn(greet, "you", shout=True)  # type: ignore[call-arg]


def check_group() -> None:
    with tw.TaskGroup(name="g", max_workers=4, timeout=1.0) as group:
        task = group.spawn(double, 1)
        assert_type(task, tw.Task[int])
        group.spawn(double)  # type: ignore[call-arg]


def check_executor() -> None:
    with tw.Executor(4, name="pool") as ex:
        future = ex.submit(double, 21)
        assert_type(future.result(), int)
        assert isinstance(future, concurrent.futures.Future)
        assert_type(ex.submit(greet, "you", punctuation="?").result(), str)
        ex.submit(double, "not an int")  # type: ignore[arg-type]
        assert_type(ex.map(double, [1, 2], buffersize=2), Iterator[int])


async def check_aio() -> None:
    assert_type(await tw.aio.run_sync(double, 21), int)
    await tw.aio.run_sync(double, "not an int")  # type: ignore[arg-type]

    async def fetch(url: str) -> bytes:
        return url.encode()

    assert_type(tw.aio.run(fetch, "x"), bytes)


def check_map() -> None:
    results = tw.map(double, range(10), workers=4)
    assert_type(results, Iterator[int])
    assert_type(tw.map(parse, ["1,2"]), Iterator[list[int]])


def check_pipeline() -> None:
    pipeline = tw.Pipeline(["1,2", "3"]).map(parse).flat_map(lambda xs: xs).filter(bool)
    assert_type(pipeline, tw.Pipeline[int])
    assert_type(pipeline.batch(10), tw.Pipeline[list[int]])
    assert_type(pipeline.run(), tw.PipelineReport)
    for item in pipeline:
        assert_type(item, int)


def check_primitives() -> None:
    queue: tw.Queue[str] = tw.Queue(maxsize=2, name="jobs")
    queue.put("x")
    assert_type(queue.get(), str)
    local = tw.ThreadLocal(lambda: [1, 2], close=lambda xs: xs.clear())
    assert_type(local.get(), list[int])
    with tw.move_on_after(1.0) as scope:
        assert_type(scope, tw.CancelScope)
    assert_type(tw.remaining(), float | None)


def check_service() -> None:
    tw.Service(greet, "you", interval=1.0, name="greeter")
    tw.Service(greet, 42)  # type: ignore[arg-type]
