"""What a download batch did, file by file.

``FileResult`` and ``DownloadReport`` are written out rather than made with ``@dataclass``: the
``dataclasses`` module (with ``inspect``, ``ast``, ``dis`` and ``tokenize``) took a fifth of
``threadwise get``'s start-up, and a ``FileResult`` is made per URL. They keep what the
dataclasses gave: keyword or positional construction with the same defaults, a repr naming each
field, equality by value, ``match`` by position.
"""

from __future__ import annotations

from threadwise._typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing import Literal

    Status = Literal["done", "skipped", "failed", "cancelled"]


class FileResult:
    """The outcome of one URL."""

    # Spelled out for type checkers (positional patterns in `match`); the fields besides.
    __match_args__ = (
        "url",
        "path",
        "status",
        "bytes",
        "size",
        "seconds",
        "attempts",
        "error",
        "resumed_from",
        "segments",
        "note",
    )
    __slots__ = __match_args__

    def __init__(
        self,
        url: str,
        path: str | None = None,  # where the file is (or would have been)
        status: Status = "cancelled",
        bytes: int = 0,  # bytes received in this run
        size: int | None = None,  # size of the complete file, when known
        seconds: float = 0.0,
        attempts: int = 0,
        error: str | None = None,
        resumed_from: int = 0,  # bytes already there from an earlier, interrupted run
        segments: int = 1,  # parallel connections used for this file
        note: str | None = None,  # what an active file is doing now ("waiting 30 s: ...")
    ) -> None:
        self.url = url
        self.path = path
        self.status: Status = status
        self.bytes = bytes
        self.size = size
        self.seconds = seconds
        self.attempts = attempts
        self.error = error
        self.resumed_from = resumed_from
        self.segments = segments
        self.note = note

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in _FILE_FIELDS)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in _FILE_FIELDS)
        return f"FileResult({fields})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, FileResult)
        return self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]  # mutable, as an eq=True dataclass

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _FILE_FIELDS}


_FILE_FIELDS = FileResult.__match_args__


class DownloadReport:
    """Every URL's ``FileResult``, totals and throughput."""

    __match_args__ = ("files", "elapsed", "interrupted", "warnings")

    def __init__(
        self,
        files: list[FileResult] | None = None,
        elapsed: float = 0.0,
        interrupted: bool = False,
        warnings: list[str] | None = None,  # about the batch, not one file
    ) -> None:
        self.files: list[FileResult] = [] if files is None else files
        self.elapsed = elapsed
        self.interrupted = interrupted
        self.warnings: list[str] = [] if warnings is None else warnings

    def __repr__(self) -> str:
        return (
            f"DownloadReport(files={self.files!r}, elapsed={self.elapsed!r}, "
            f"interrupted={self.interrupted!r}, warnings={self.warnings!r})"
        )

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, DownloadReport)
        return (self.files, self.elapsed, self.interrupted, self.warnings) == (
            other.files,
            other.elapsed,
            other.interrupted,
            other.warnings,
        )

    __hash__ = None  # type: ignore[assignment]

    def count(self, status: Status) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def ok(self) -> bool:
        """True when every file is done or was already complete."""
        return all(f.status in ("done", "skipped") for f in self.files)

    @property
    def total_bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    @property
    def throughput(self) -> float:
        """Bytes per second over the whole batch."""
        return self.total_bytes / self.elapsed if self.elapsed > 0 else 0.0

    def failures(self) -> list[FileResult]:
        return [f for f in self.files if f.status in ("failed", "cancelled")]

    def summary(self) -> str:
        parts = [f"{self.count('done')} done"]
        statuses: tuple[Status, ...] = ("skipped", "failed", "cancelled")
        for status in statuses:
            n = self.count(status)
            if n:
                parts.append(f"{n} {status}")
        return (
            f"{plural(len(self.files), 'file')}: {', '.join(parts)}; {_human(self.total_bytes)} in "
            f"{self.elapsed:.2f} s ({_human(self.throughput)}/s)"
        )

    def __str__(self) -> str:
        lines = [f"{'status':<9} {'bytes':>10} {'time s':>7} {'tries':>5}  file / error"]
        for f in self.files:
            what = f.path or f.url
            if f.error:
                what = f"{what}: {f.error}"
            lines.append(
                f"{f.status:<9} {_human(f.bytes):>10} {f.seconds:>7.2f} {f.attempts:>5}  {what}"
            )
        lines.append(self.summary())
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "files": [f.to_json() for f in self.files],
            "elapsed": self.elapsed,
            "interrupted": self.interrupted,
            "warnings": list(self.warnings),
            "total_bytes": self.total_bytes,
            "throughput": self.throughput,
            "ok": self.ok,
        }


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 file``, ``2 files``; ``many`` for irregular plurals."""
    return f"{n} {word if n == 1 else (many or word + 's')}"
