"""The feeder: the one thread that reads the source, handing items on in chunks.

Reads are bulk (``islice`` in C) so trivial items cost almost nothing to hand over. A bulk
read of a source that slows down or blocks would hold the items it already has, so for any
source that is not a built-in container the items go into a shared ``deque`` as they are
read (``deque.extend`` appends one by one), and the consumer, when it has waited a few
milliseconds for output with nothing coming, rescues them: it hands whatever the feeder holds
to the first stage while the feeder is still inside the source. Sequence numbers are given
under one lock, so rescued items keep their place in an ordered run.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

from ._pool import ChunkSizer, Lent, Loan, RemoteChunkSizer
from ._report import PipelineReport
from ._typing import Any, cast

_perf = time.perf_counter

# Iterators of these never block and never run user code: read them in bulk, no rescue needed.
_CONTAINERS = (list, tuple, range, str, bytes, bytearray)
# ... and these are read by slicing, which copies a chunk in one C call (an ``islice`` costs
# a call per item): a range slice is a range, which ``list`` fills without growing.
_SLICED = (list, tuple, range)
# A slice of these goes to a stage as it is, not copied into a list: a stage only iterates,
# indexes and measures its input chunk. A range slice holds no items at all, so the feeder
# creates none: the stage's own pass creates each number as it needs it (a trivial map over
# a range: 6% fewer instructions per item).
_KEPT = (tuple, range)

# How long the consumer waits for output before rescuing items the feeder holds, and the
# longest it lets that wait grow to while there is nothing to rescue.
RESCUE_AFTER = 0.004
RESCUE_AFTER_MAX = 0.05


class Feeder:
    """Reads ``source`` into chunks and passes each to ``deliver(seq, chunk)``.

    ``deliver`` is called under ``self.lock``, with consecutive sequence numbers. It may block
    (backpressure); ``rescue`` then does nothing, as the receiver is busy anyway.
    """

    def __init__(
        self,
        source: Iterable[Any],
        report: PipelineReport,
        deliver: Callable[[int, list[Any]], None],
        *,
        receiver: ChunkSizer | None,
        receiver_full: Callable[[], bool],
    ) -> None:
        self.iterator = iter(source)
        # Read by index, as their own iterators do (items appended meanwhile are read too).
        self.sequence: list[Any] | tuple[Any, ...] | range | None = (
            source if type(source) in _SLICED else None  # type: ignore[assignment]
        )
        self.report = report
        self.deliver = deliver
        self.receiver = receiver
        # A remote stage cuts the last chunks of a source of known length smaller.
        self.rest_sized: Callable[[int], int] | None = (
            getattr(receiver, "size_of_rest", None) if self.sequence is not None else None
        )
        self.lender = receiver if isinstance(receiver, RemoteChunkSizer) else None
        if self.lender is not None:
            self.lender.lending = True  # this feeder takes back what its loan did not run
        self.lent: Loan | None = None  # a loan sent, not back yet
        # Without a stage the chunks go to an emitter, which extends them: lists only.
        self.keep = _KEPT if receiver is not None else ()
        self.receiver_full = receiver_full
        self.bulk = type(source) in _CONTAINERS
        self.fresh: deque[Any] = deque()  # read from the source, not yet handed on
        self.lock = threading.Lock()  # guards fresh's draining, seq and the counters
        self.seq = 0
        self.rescued = 0  # items rescued during the current read

    @property
    def rescuable(self) -> bool:
        return not self.bulk

    def run(self) -> None:
        """The feeder thread's body. Returns at the end of the source; raises its error."""
        iterator = self.iterator
        fresh = self.fresh
        extend = fresh.extend
        lock = self.lock
        receiver = self.receiver
        own = ChunkSizer()  # the source's own pace: a slow source gets small chunks
        max_items = ChunkSizer.MAX_ITEMS
        bulk = self.bulk
        sequence = self.sequence
        keep = self.keep
        rest_sized = self.rest_sized
        position = 0
        try:
            while True:
                if rest_sized is not None and sequence is not None:
                    size = rest_sized(len(sequence) - position)
                else:
                    size = receiver.size() if receiver is not None else max_items
                # A container is never a slow source: one read of it slowed down by the
                # machine (a first read of one item, preempted) must not shrink the chunks.
                if own.cost is not None and not bulk:
                    pace = own.size()
                    if pace < max_items:  # a slow source: smaller chunks, sent sooner
                        size = min(size, pace)
                started = _perf()
                if sequence is not None:  # a list, tuple or range: a slice is the chunk
                    piece = sequence[position : position + size]
                    # Typed as a list: a kept tuple or range is read as one (see _KEPT).
                    chunk = cast(
                        "list[Any]",
                        piece if type(piece) is list or type(piece) in keep else list(piece),
                    )
                    position += len(chunk)
                    elapsed = _perf() - started
                    pulled = len(chunk)
                    if chunk:
                        with lock:
                            self._send(chunk)
                elif bulk:  # a container: nothing to rescue, read straight into the chunk
                    chunk = list(itertools.islice(iterator, size))
                    elapsed = _perf() - started
                    pulled = len(chunk)
                    if chunk:
                        with lock:
                            self._send(chunk)
                else:
                    # Appends item by item in C: if the source raises part-way, the items it
                    # gave before are in ``fresh``, counted (never lost), and rescuable while
                    # the source blocks.
                    extend(itertools.islice(iterator, size))
                    elapsed = _perf() - started
                    with lock:
                        pulled = len(fresh) + self.rescued
                        self.rescued = 0
                        if fresh:
                            chunk = list(fresh)
                            fresh.clear()
                            self._send(chunk)
                own.record(pulled, elapsed)
                if self.lent is not None:
                    back = self._take_back(self.lent)
                    if back:
                        if sequence is not None:
                            position -= len(back)
                        else:
                            iterator = self.iterator = itertools.chain(back, iterator)
                        continue
                if pulled < size:
                    return
        finally:
            self._count_leftovers()

    def _take_back(self, loan: Loan) -> list[Any]:
        """Wait for the lent chunk; the items it did not run are no longer read nor received
        (they are sent again)."""
        back = loan.wait()
        self.lent = None
        if back:
            with self.lock:
                self.report.source_read -= len(back)
                if loan.uncount is not None:
                    loan.uncount(-len(back))
        return back

    def _send(self, chunk: list[Any], *, own: bool = True) -> None:
        """Hand ``chunk`` on (the caller holds ``lock``). ``deliver`` accounts for the chunk
        even when it raises (the receiver counts it in first)."""
        lender = self.lender
        if own and lender is not None and lender.loan is not None and self.lent is None:
            # The receiver's first large chunk: lent, once (this thread waits for it before
            # it sends anything else).
            loan, lender.loan = lender.loan, None
            chunk = Lent(chunk, loan)
            self.lent = loan
        self.report.source_read += len(chunk)
        self.deliver(self.seq, chunk)
        self.seq += 1

    def rescue(self) -> bool:
        """Hand on what the feeder holds while it waits inside the source. Called by the
        consumer, never blocks: True if items were handed on."""
        fresh = self.fresh
        if not fresh or not self.lock.acquire(blocking=False):
            return False
        try:
            # The receiver has room (only the feeder and this call put into it, both under
            # the lock), so the hand-over below does not block.
            if not fresh or self.receiver_full():
                return False
            popleft = fresh.popleft
            chunk = [popleft() for _ in range(len(fresh))]
            self.rescued += len(chunk)
            try:
                self._send(chunk, own=False)
            except Exception:  # the run is stopping (its queue closed): counted as not run
                return False
            return True
        finally:
            self.lock.release()

    def _count_leftovers(self) -> None:
        """Items read but never handed on (the source failed or the run stopped)."""
        with self.lock:
            left = len(self.fresh)
            self.fresh.clear()
            self.report.source_read += left
            self.report.source_unsent += left
