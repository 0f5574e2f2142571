"""What a map or pipeline run did, stage by stage: the counts that must add up."""

from __future__ import annotations

import itertools

from ._typing import Any


class StageReport:
    """What one stage did. ``items_in == completed + failed + not_started`` always holds."""

    # Plain slots, not a dataclass: ``import threadwise`` stays free of the dataclasses module.
    __slots__ = (
        "busy_seconds",
        "completed",
        "cpu_seconds",
        "discarded",
        "errors",
        "failed",
        "items_in",
        "items_out",
        "kind",
        "name",
        "not_started",
        "retries",
        "utilisation",
        "workers",
    )

    def __init__(self, name: str, kind: str, workers: int) -> None:
        self.name = name
        self.kind = kind
        self.workers = workers
        self.items_in = 0
        self.items_out = 0
        self.completed = 0
        self.failed = 0
        self.not_started = 0
        self.retries = 0
        self.discarded = 0  # outputs made but dropped because the run stopped early
        self.busy_seconds = 0.0
        self.cpu_seconds = 0.0  # CPU time of the stage's threads while busy (this process)
        self.utilisation = 0.0
        self.errors: list[tuple[Any, BaseException]] = []

    @property
    def accounted(self) -> bool:
        return self.items_in == self.completed + self.failed + self.not_started

    @property
    def hint(self) -> str | None:
        """Why the stage may not scale, when its figures show it: several workers busy at
        once, but together using about one core (each waits for the GIL)."""
        workers, busy, cpu = self.workers, self.busy_seconds, self.cpu_seconds
        cores = gil_cores(workers, busy, cpu, GIL_HINT_MIN_CPU)
        if cores is None:
            return None
        return (
            f"stage {self.name!r} looks GIL-bound: {workers} workers were busy at once but "
            f"used about {cores:.1f} CPU core together; pure-Python work does not run faster "
            "on more threads: use executor=concurrent.futures.ProcessPoolExecutor(), a Dask "
            "cluster (executor='tcp://...'), tw.map(..., executor='auto'), or a free-threaded "
            "Python"
        )

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in _STAGE_FIELDS)
        return f"StageReport({fields})"


# Seconds of CPU a stage must have used before its report judges whether it is GIL-bound.
GIL_HINT_MIN_CPU = 0.2


def gil_cores(workers: int, busy: float, cpu: float, min_cpu: float = 0.0) -> float | None:
    """The CPU cores ``workers`` threads used together while busy, when that says they wait
    for the GIL (None otherwise): several busy at once, waiting well beyond their CPU time
    (for I/O or the GIL), and about one core used in all (the GIL)."""
    if workers < 2 or cpu <= 0 or cpu < min_cpu or busy < 1.5 * cpu:
        return None
    cores = cpu * workers / busy
    return cores if 0.6 <= cores <= 1.3 else None


_STAGE_FIELDS = (
    "name",
    "kind",
    "workers",
    "items_in",
    "items_out",
    "completed",
    "failed",
    "not_started",
    "retries",
    "discarded",
    "busy_seconds",
    "utilisation",
)


class PipelineReport:
    """The outcome of a pipeline run, stage by stage."""

    __slots__ = (
        "abandoned",
        "backend",
        "cancelled",
        "decision",
        "delivered",
        "elapsed",
        "error",
        "finished",
        "name",
        "source_read",
        "source_unsent",
        "stages",
    )

    def __init__(self, name: str, stages: list[StageReport]) -> None:
        self.name = name
        self.stages = stages
        self.source_read = 0  # items pulled from the source
        self.source_unsent = 0  # of those, never handed to the first stage (the run stopped)
        self.delivered = 0
        self.elapsed = 0.0
        self.finished = False
        self.cancelled: str | None = None
        self.error: BaseException | None = None
        # Names of threads still running after the grace period (stuck in code that cannot be
        # cancelled): left behind as daemon threads rather than waited for forever.
        self.abandoned: list[str] = []
        # executor="auto": where the work ran in the end ("threads" or "processes"), and the
        # decision with the figures behind it. None for any other run.
        self.backend: str | None = None
        self.decision: str | None = None

    @property
    def bottleneck(self) -> str | None:
        """The busiest stage (highest utilisation): the one to give more workers."""
        if not self.stages:
            return None
        return max(self.stages, key=lambda s: s.utilisation).name

    @property
    def accounted(self) -> bool:
        """Every item read from the source is accounted for at every stage."""
        if not all(stage.accounted for stage in self.stages):
            return False
        if self.stages and self.stages[0].items_in + self.source_unsent != self.source_read:
            return False
        return all(a.items_out == b.items_in for a, b in itertools.pairwise(self.stages))

    def __repr__(self) -> str:
        return (
            f"PipelineReport(name={self.name!r}, source_read={self.source_read}, "
            f"delivered={self.delivered}, elapsed={self.elapsed:.3f}, finished={self.finished}, "
            f"cancelled={self.cancelled!r}, stages={self.stages!r})"
        )

    def __str__(self) -> str:
        head = (
            f"{'stage':<20} {'workers':>7} {'in':>10} {'out':>10} {'failed':>7} "
            f"{'not run':>8} {'busy s':>8} {'util':>6}"
        )
        lines = [f"pipeline {self.name!r}: {self.elapsed:.3f} s", head, "-" * len(head)]
        for s in self.stages:
            lines.append(
                f"{s.name[:20]:<20} {s.workers:>7} {s.items_in:>10} {s.items_out:>10} "
                f"{s.failed:>7} {s.not_started:>8} {s.busy_seconds:>8.3f} {s.utilisation:>6.0%}"
            )
        lines.append(f"bottleneck: {self.bottleneck}")
        if self.cancelled:
            lines.append(f"cancelled: {self.cancelled}")
        if self.abandoned:
            lines.append(f"abandoned threads: {', '.join(self.abandoned)}")
        if self.decision:
            lines.append(f"executor='auto' decided: {self.decision}")
        lines.extend(f"hint: {hint}" for hint in self.hints)
        return "\n".join(lines)

    @property
    def hints(self) -> list[str]:
        """What the figures suggest (a GIL-bound stage and its remedy), stage by stage."""
        if self.backend == "processes":  # executor="auto" applied the remedy already
            return []
        return [hint for stage in self.stages if (hint := stage.hint) is not None]
