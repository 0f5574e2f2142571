"""The emitter: hands a stage's results to the next stage (or the caller), in order if asked,
re-cut into chunks of the size the receiver wants.

The reorder window is bounded by items and by (estimated) memory, not by chunks: while one
slow item holds up the sequence, the other workers go on with later items and their outputs
wait here. Only when the held outputs pass the bound does a worker wait (its output already
stored) for the oldest item to come in; the worker holding the oldest item never waits here,
so the run always moves on.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

from ._pool import ChunkSizer
from ._sync import Condition, Lock, Queue
from ._typing import Any

# Outputs an ordered stage may hold while it waits for an older item, at most: this many items,
# or this many per worker if more (the more workers, the more items finish while one slow item
# runs: 50 workers on 20 ms items finish 4,900 during a 2 s one), and this many bytes.
WINDOW_ITEMS = 4096
WINDOW_ITEMS_PER_WORKER = 256
WINDOW_BYTES = 64 << 20


def window_items(workers: int) -> int:
    return max(WINDOW_ITEMS, WINDOW_ITEMS_PER_WORKER * workers)


def _weight(items: list[Any]) -> int:
    """Estimated bytes of a chunk of results, from its first one (chunks hold alike items)."""
    if not items:
        return 0
    try:
        each = sys.getsizeof(items[0])
    except Exception:  # an object whose __sizeof__ fails: count it as small
        each = 64
    return (each + 8) * len(items)


class Emitter:
    """The only object that puts into its receiver ``inbox``."""

    def __init__(
        self,
        ordered: bool,
        inbox: Queue[tuple[int, list[Any]]],
        sizer: ChunkSizer | None,
        sent: Callable[[int], None],
        *,
        workers: int = 1,
        max_bytes: int | None = None,
    ) -> None:
        self.ordered = ordered
        self.inbox = inbox
        self.sizer = sizer
        self.sent = sent
        self.max_items = window_items(workers)
        self.max_bytes = WINDOW_BYTES if max_bytes is None else max_bytes
        self.lock = Lock()
        self.ahead = Condition(self.lock)
        self.buffer: dict[int, tuple[list[Any], int]] = {}  # seq -> (outputs, weight)
        self.held_items = 0
        self.held_bytes = 0
        self.next_seq = 0
        self.pending: list[Any] = []
        self.out_seq = 0
        self._dropped_lock = threading.Lock()
        self.dropped = 0  # outputs never stored because the run was cancelled first

    def emit(self, seq: int, items: list[Any]) -> None:
        try:
            self.lock.acquire()
        except BaseException:  # cancelled before it could store them: these outputs drop
            with self._dropped_lock:
                self.dropped += len(items)
            raise
        try:
            if not self.ordered:
                if self.pending:
                    self.pending.extend(items)
                else:
                    self.pending = items
            elif seq == self.next_seq:
                self._release(items)
            else:
                weight = _weight(items)
                self.buffer[seq] = (items, weight)
                self.held_items += len(items)
                self.held_bytes += weight
                # Over the bound: stop taking new work until the oldest item comes in. The
                # outputs are stored already, so a cancellation here loses nothing.
                while (
                    self.held_items > self.max_items or self.held_bytes > self.max_bytes
                ) and seq in self.buffer:
                    self.ahead.wait()
                if seq in self.buffer:
                    return  # still waiting for an older item: nothing new to send
            self._flush(final=False)
        finally:
            self.lock.release()

    def _release(self, items: list[Any]) -> None:
        """``items`` are the next due: move them, and the run of stored ones after them, to
        ``pending``."""
        if self.pending:
            self.pending.extend(items)
        else:
            self.pending = items
        self.next_seq += 1
        buffer = self.buffer
        if not buffer or self.next_seq not in buffer:
            return
        pending = self.pending
        while self.next_seq in buffer:
            ready, weight = buffer.pop(self.next_seq)
            self.held_items -= len(ready)
            self.held_bytes -= weight
            self.next_seq += 1
            pending.extend(ready)
        self.ahead.notify_all()

    def close(self, extra: list[Any] | None = None) -> None:
        with self.lock:
            if extra:
                self.pending.extend(extra)
            self._flush(final=True)
        self.inbox.close()

    def leftovers(self) -> int:
        """Outputs never sent (after the workers stopped): dropped, pending or held."""
        with self._dropped_lock:
            count = self.dropped
            self.dropped = 0
        count += len(self.pending) + sum(len(items) for items, _ in self.buffer.values())
        self.pending, self.buffer = [], {}
        self.held_items = self.held_bytes = 0
        return count

    def _flush(self, *, final: bool) -> None:
        """Send ``pending`` on in chunks of the receiver's size. A short rest goes now if the
        receiver is idle (or always, for the output), rather than wait to fill up. If a put
        is cancelled, ``pending`` keeps exactly what was not sent."""
        pending = self.pending
        if not pending:
            return
        eager = self.sizer is None
        size = ChunkSizer.MAX_ITEMS if self.sizer is None else self.sizer.size()
        start = 0
        try:
            while start < len(pending):
                left = len(pending) - start
                if left < size and not (eager or final or self.inbox.empty()):
                    break
                end = start + min(size, left)
                whole = start == 0 and end == len(pending)
                self._put(pending if whole else pending[start:end])
                start = end
        finally:
            if start:
                self.pending = pending[start:]

    def _put(self, chunk: list[Any]) -> None:
        self.inbox.put((self.out_seq, chunk))
        self.out_seq += 1
        self.sent(len(chunk))
