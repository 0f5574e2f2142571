"""An extract-transform-load pipeline: stages, retries, skipped records, backpressure, report.

Run it with ``python examples/pipeline_etl.py`` (well under two seconds). The "network" and
the "database" are simulated with ``tw.sleep``.

    source ──> download (8 threads, retries) ──> parse (skip bad rows) ──> keep paid orders
           ──> batch of 20 ──> store (1 thread)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import threadwise as tw


@dataclass(frozen=True)
class Order:
    id: int
    customer: str
    amount: float


# -- the stage functions: plain functions of one item ----------------------------------------
_attempts: dict[int, int] = {}
_attempts_lock = threading.Lock()


def download(order_id: int) -> str:
    """Fetch one raw CSV row. Every 25th order fails once with a transient error."""
    tw.sleep(0.002)  # network latency (cancellable)
    with _attempts_lock:
        _attempts[order_id] = _attempts.get(order_id, 0) + 1
        first_try = _attempts[order_id] == 1
    if order_id % 25 == 0 and first_try:
        raise ConnectionError(f"connection reset while fetching order {order_id}")
    if order_id % 40 == 7:
        return f"{order_id},customer-{order_id % 9},not-a-number"  # a corrupt row
    return f"{order_id},customer-{order_id % 9},{(order_id % 11) - 2}"


def parse(row: str) -> Order:
    """CSV row -> Order; raises ValueError on a corrupt row."""
    order_id, customer, amount = row.split(",")
    return Order(int(order_id), customer, float(amount))


def is_paid(order: Order) -> bool:
    return order.amount > 0


stored: list[Order] = []


def store(batch: list[Order]) -> None:
    """Write one batch to the "database": one round trip per batch, not per row."""
    tw.sleep(0.005)
    stored.extend(batch)


def etl(order_ids: range) -> tw.Pipeline[list[Order]]:
    return (
        tw.Pipeline(order_ids, name="orders")
        # Slow I/O: many threads. retries re-runs a failed item with exponential backoff
        # (base `backoff` seconds, with jitter) before giving up on it.
        .map(download, workers=8, retries=2, backoff=0.005, name="download")
        # on_error="skip": a corrupt row is recorded in the report and the run goes on.
        .map(parse, workers=2, on_error="skip", name="parse")
        .filter(is_paid, name="paid only")
        .batch(20, name="batch")
        .each(store, name="store")
    )


def full_run() -> None:
    report = etl(range(1, 401)).run()
    print(report)  # the per-stage table
    parse_stage = report.stages[1]
    print(f"retries in download: {report.stages[0].retries}")
    print(f"skipped by parse: {parse_stage.failed}, first: {parse_stage.errors[0][0]!r}")
    print(f"stored {len(stored)} paid orders in {report.stages[-1].items_in} batches")
    # Every item read is accounted for at every stage: in == completed + failed + not started.
    print(f"finished: {report.finished}, accounted: {report.accounted}")


def slow_consumer() -> None:
    # Backpressure: queues between stages are bounded, so when the consumer is slow the
    # stages (and the reading of the source) wait instead of filling memory.
    pipeline = tw.Pipeline(range(1_000_000), name="backpressure").map(lambda x: x * 2)
    for taken, _ in enumerate(pipeline, start=1):
        tw.sleep(0.002)  # a slow consumer
        if taken == 100:
            break
    report = pipeline.report
    assert report is not None
    print(
        f"backpressure: consumer took 100, source read {report.source_read:,} "
        f"of 1,000,000; cancelled: {report.cancelled!r}"
    )
    # Leaving early is accounted too: what was read but never processed is "not run".
    print(report)
    print(f"after early exit, accounted: {report.accounted}")


def failing_stage() -> None:
    # With the default on_error="raise", the first failure cancels every stage and is raised;
    # pipeline.report still describes the run.
    pipeline = (
        tw.Pipeline(range(1, 401), name="strict")
        .map(download, workers=8, retries=2, backoff=0.005, name="download")
        .map(parse, name="parse")  # on_error="raise"
    )
    try:
        pipeline.run()
    except ValueError as exc:
        print(f"failure raised: {exc!r}")
        print(f"  {exc.__notes__[0]}")
    report = pipeline.report
    assert report is not None
    print(f"  finished: {report.finished}, accounted: {report.accounted}")


def main() -> None:
    full_run()
    slow_consumer()
    _attempts.clear()
    failing_stage()


if __name__ == "__main__":
    main()
