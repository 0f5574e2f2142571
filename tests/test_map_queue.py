"""The queues between a map's threads: when a sender waiting for room is woken."""

from __future__ import annotations

import threading

from threadwise._stage import ChunkQueue

WAIT = 5.0  # upper bound for anything the tests wait for; never reached when all is well


def _blocked_sender(queue: ChunkQueue, chunk: list[int]) -> threading.Thread:
    """A thread putting ``chunk`` into the full ``queue``, returned once it waits for room."""
    sender = threading.Thread(target=queue.put, args=((99, chunk),))
    sender.start()
    pause = threading.Event()  # never set: a short sleep
    while len(queue.not_full._waiters) != 1:
        assert sender.is_alive()
        pause.wait(0.001)
    return sender


def test_a_queue_full_by_items_wakes_its_sender_once_down_to_half() -> None:
    queue = ChunkQueue(maxsize=8, name="test", max_items=16)
    for seq in range(4):
        queue.put((seq, [seq] * 4))  # 16 items: full by items, with room for more chunks
    sender = _blocked_sender(queue, [7] * 4)
    assert queue.get()[0] == 0
    # 12 items left: no wake-up yet (the sender would only put one chunk and wait again).
    assert len(queue.not_full._waiters) == 1
    assert queue.get()[0] == 1
    # 8 items left, half the bound: the sender is woken and puts its chunk.
    sender.join(WAIT)
    assert not sender.is_alive()
    assert [queue.get()[0] for _ in range(3)] == [2, 3, 99]


def test_a_queue_full_by_chunks_wakes_its_sender_once_down_to_half() -> None:
    queue = ChunkQueue(maxsize=4, name="test", max_items=4096)
    for seq in range(4):
        queue.put((seq, [seq]))
    sender = _blocked_sender(queue, [7])
    assert queue.get()[0] == 0
    # 3 chunks left: no wake-up yet (each would cost the sender a thread switch for a chunk).
    assert len(queue.not_full._waiters) == 1
    assert queue.get()[0] == 1
    sender.join(WAIT)
    assert not sender.is_alive()
    assert [queue.get()[0] for _ in range(3)] == [2, 3, 99]


def test_a_closed_queue_wakes_its_sender() -> None:
    queue = ChunkQueue(maxsize=8, name="test", max_items=4)
    queue.put((0, [0] * 4))
    errors: list[BaseException] = []

    def put() -> None:
        try:
            queue.put((1, [1]))
        except BaseException as exc:
            errors.append(exc)

    sender = threading.Thread(target=put)
    sender.start()
    pause = threading.Event()  # never set: a short sleep
    while len(queue.not_full._waiters) != 1:
        assert sender.is_alive()
        pause.wait(0.001)
    queue.close()
    sender.join(WAIT)
    assert not sender.is_alive()
    assert len(errors) == 1
