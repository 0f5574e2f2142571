"""The download display shared by ``threadwise get`` and ``threadwise demo``: a live view while
a batch runs and a summary when it ends.

The live view is a ``progress=`` callback of ``download()``: its sampler thread calls it about ten
times a second with the report, and the callback redraws from that snapshot. The download
threads only count bytes; no drawing happens in them.
"""

from __future__ import annotations

import collections
import math
import os
import sys
import time
from collections.abc import Callable
from types import TracebackType

from threadwise._record import Record
from threadwise._typing import TYPE_CHECKING, Any, Literal, TextIO

if TYPE_CHECKING:
    from threadwise.download import DownloadReport, FileResult

INSTALL_HINT = "pip install 'threadwise[cli]'"

Mode = Literal["live", "lines", "off"]

# Per-file rows of the summary table; larger batches list only the files that did not finish.
_TABLE_ROWS = 40
# Active files shown under the overall bar of the live display.
_ACTIVE_ROWS = 12
# Seconds of samples the displayed rate is averaged over.
_RATE_WINDOW = 3.0


# -- small helpers ----------------------------------------------------------------------------
def human_bytes(n: float) -> str:
    """``1536`` → ``"1.5 KiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _duration(seconds: float) -> str:
    whole = max(0, math.ceil(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def have_rich() -> bool:
    """Whether rich can be imported (it comes with the ``cli`` extra)."""
    try:
        import rich.console  # noqa: F401
    except ImportError:
        return False
    return True


def missing_client() -> str | None:
    """The name of the HTTP client module when it is not installed, else None.

    Looked up, not imported: the downloader imports urllib3 only when a download needs it
    (https, a proxy), and importing it costs tens of milliseconds of every run."""
    import importlib.util

    return None if importlib.util.find_spec("urllib3") is not None else "urllib3"


def _file_name(f: FileResult) -> str:
    if f.path:
        return os.path.basename(f.path) or f.url
    return f.url


# -- the state of a batch, read from a report ----------------------------------------------------
def file_state(f: FileResult) -> str:
    """``pending``, ``active``, or the file's final status.

    A ``FileResult`` starts as ``cancelled`` with the error ``"not started"``; the downloader
    clears the error when it starts the file and sets the final status when it ends.
    """
    if f.status == "cancelled":
        if f.error is None:
            return "active"
        if f.error == "not started":
            return "pending"
    return f.status


class Snapshot(Record):
    """What the display shows at one moment (a ``Record``, as a frozen dataclass without
    importing ``dataclasses``)."""

    __slots__ = (  # noqa: RUF023 - the fields, in order
        "files",
        "finished",
        "failed",
        "cancelled",
        "done_bytes",  # bytes on disk for the batch (this run's and resumed ones)
        "known_total",  # the sizes known so far (every finished file counts as complete)
        "estimated_total",  # known_total plus an estimate for files of unknown size
        "active",
    )
    files: int
    finished: int
    failed: int
    cancelled: int
    done_bytes: int
    known_total: int
    estimated_total: int | None
    active: list[FileResult]

    def __init__(
        self,
        *,
        files: int,
        finished: int,
        failed: int,
        cancelled: int,
        done_bytes: int,
        known_total: int,
        estimated_total: int | None,
        active: list[FileResult],
    ) -> None:
        super().__init__(
            files, finished, failed, cancelled, done_bytes, known_total, estimated_total, active
        )


def snapshot(report: DownloadReport) -> Snapshot:
    """Count what is finished, active and known in ``report`` (read without locks: ints only)."""
    done_bytes = known_total = finished = failed = cancelled = 0
    unknown = 0
    known_sizes: list[int] = []
    active: list[FileResult] = []
    for f in report.files:
        state = file_state(f)
        received = f.resumed_from + f.bytes
        size = f.size
        if size is not None:
            known_sizes.append(size)
        if state in ("done", "skipped"):
            finished += 1
            amount = size if size is not None else received
            done_bytes += amount
            known_total += amount
        elif state in ("failed", "cancelled"):
            finished += 1
            done_bytes += received
            if state == "failed":
                failed += 1
                known_total += received  # never completes: finished where it stopped
            else:
                cancelled += 1  # interrupted: the rest is still to come, in a later run
                known_total += size if size is not None else received
        else:
            if state == "active":
                active.append(f)
            if size is not None:
                done_bytes += min(received, size)
                known_total += size
            else:
                done_bytes += received
                unknown += 1
    estimated: int | None = known_total
    if unknown:
        # Files not started yet: assume the average size of those already seen.
        estimated = (
            known_total + unknown * sum(known_sizes) // len(known_sizes) if known_sizes else None
        )
    return Snapshot(
        files=len(report.files),
        finished=finished,
        failed=failed,
        cancelled=cancelled,
        done_bytes=done_bytes,
        known_total=known_total,
        estimated_total=estimated,
        active=active,
    )


class _Rate:
    """Bytes per second over the last few seconds of samples."""

    def __init__(self) -> None:
        self._samples: collections.deque[tuple[float, int]] = collections.deque()

    def add(self, now: float, total: int) -> float:
        samples = self._samples
        samples.append((now, total))
        while len(samples) > 2 and now - samples[0][0] > _RATE_WINDOW:
            samples.popleft()
        first_time, first_total = samples[0]
        if now - first_time <= 0:
            return 0.0
        return (total - first_total) / (now - first_time)


# -- the display ---------------------------------------------------------------------------------
class DownloadDisplay:
    """A ``progress=`` callback for ``download()`` and the context that owns its output.

    ``live``: a rich Live view on ``stream`` (an overall bar, then one line per active file).
    ``lines``: one plain line per finished file. ``off``: nothing.
    """

    def __init__(self, title: str, *, stream: TextIO, mode: Mode) -> None:
        self.title = title
        self.stream = stream
        self.mode: Mode = mode
        self._live: Any = None
        self._printed: set[int] = set()
        self._notes: dict[int, str] = {}  # the note last printed for each active file
        self._rate = _Rate()
        self._started = time.monotonic()
        self.frames = 0

    @classmethod
    def choose(
        cls, title: str, *, quiet: bool, stream: TextIO | None = None, plain: bool = False
    ) -> DownloadDisplay:
        """``off`` when quiet, ``live`` on a terminal with rich (unless ``plain``), ``lines``
        otherwise."""
        out = sys.stderr if stream is None else stream
        if quiet:
            mode: Mode = "off"
        elif isatty(out) and have_rich() and not plain:
            mode = "live"
        else:
            mode = "lines"
        return cls(title, stream=out, mode=mode)

    @property
    def callback(self) -> Callable[[DownloadReport], None] | Literal[False]:
        """What to pass as ``download(progress=...)``."""
        return False if self.mode == "off" else self

    def __enter__(self) -> DownloadDisplay:
        self._started = time.monotonic()
        if self.mode == "live":
            from rich.console import Console
            from rich.live import Live

            self._live = Live(
                console=Console(file=self.stream),
                auto_refresh=False,  # redrawn by our callback: no thread of rich's own
                transient=False,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.stop()

    def __call__(self, report: DownloadReport) -> None:
        try:
            if self.mode == "live" and self._live is not None:
                self._live.update(self.render(report), refresh=True)
                self.frames += 1
            elif self.mode == "lines":
                self._print_finished(report)
        except Exception as exc:  # a display problem must never stop a download
            self.mode = "off"
            print(f"threadwise: progress display disabled: {exc!r}", file=sys.stderr)

    # -- plain lines --------------------------------------------------------------------------
    def _print_finished(self, report: DownloadReport) -> None:
        files = report.files
        width = len(str(len(files)))
        for index, f in enumerate(files):
            if index in self._printed:
                continue
            state = file_state(f)
            if state == "active":
                # A wait or a retry: say so once, rather than nothing for minutes.
                note = f.note
                if note and self._notes.get(index) != note:
                    self._notes[index] = note
                    print(f"{self.title}: {_file_name(f)}: {note}", file=self.stream, flush=True)
                continue
            if state == "pending":
                continue
            self._printed.add(index)
            size = f.size if f.size is not None else f.resumed_from + f.bytes
            line = (
                f"{self.title}: [{len(self._printed):>{width}}/{len(files)}] "
                f"{f.status:<9} {_file_name(f)}  {human_bytes(size)}  {f.seconds:.2f} s"
            )
            if f.error:
                line += f"  {f.error}"
            print(line, file=self.stream, flush=True)

    # -- rich frame ---------------------------------------------------------------------------
    def render(self, report: DownloadReport, width: int | None = None) -> Any:
        """The rich renderable for ``report``'s current state, fitted to ``width`` columns
        (default: the live console's width)."""
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        columns: int = width if width is not None else 100
        if width is None and self._live is not None:
            columns = self._live.console.width
        snap = snapshot(report)
        now = time.monotonic()
        rate = self._rate.add(now, report.total_bytes)
        if snap.finished == snap.files:
            rate = report.throughput  # the final figure: the average over the whole batch
        total = snap.estimated_total
        estimated = total != snap.known_total

        # Rows of (name, total or None, completed, amount, percent, info).
        rows: list[tuple[Text, int | None, int, str, str, str]] = []
        shown = min(snap.done_bytes, total) if total else snap.done_bytes
        amount = f"{human_bytes(snap.done_bytes)}/{'~' if estimated else ''}"
        amount += human_bytes(total) if total is not None else "?"
        info = [f"{human_bytes(rate)}/s"]
        if snap.finished < snap.files:
            if total and rate > 0:
                left = max(0, total - snap.done_bytes) / rate
                info.append(f"ETA {'~' if estimated else ''}{_duration(left)}")
            else:
                info.append("ETA -")
        else:
            info.append(f"in {report.elapsed:.2f} s")
        info.append(f"{snap.finished}/{snap.files} {plural(snap.files, 'file')}")
        if snap.failed:
            info.append(f"{snap.failed} failed")
        if snap.cancelled:
            info.append(f"{snap.cancelled} cancelled")
        percent = f"{100 * shown / total:.0f}%" if total else ""
        rows.append(
            (Text(self.title, style="bold"), total or None, shown, amount, percent, " ".join(info))
        )
        for f in snap.active[:_ACTIVE_ROWS]:
            received = f.resumed_from + f.bytes
            notes = f"attempt {f.attempts}" if f.attempts > 1 else ""
            if f.segments > 1:
                notes = f"{f.segments} segments {notes}".strip()
            if f.note:  # waiting for a Retry-After, or for the next retry: not a stuck 0 B
                notes = f.note
            name = Text("  " + _file_name(f))
            if f.size:
                done = min(received, f.size)
                amount = f"{human_bytes(done)}/{human_bytes(f.size)}"
                rows.append((name, f.size, done, amount, f"{100 * done / f.size:.0f}%", notes))
            elif f.note and not received:
                # Nothing received yet because it waits: say so even where the notes column
                # does not fit ("waiting 30 s"), not "0 B".
                rows.append((name, None, 0, f.note.partition(":")[0], "", notes))
            else:
                rows.append((name, None, received, human_bytes(received), "", notes))
        hidden = len(snap.active) - _ACTIVE_ROWS

        # The bar gets what the other columns leave, within limits. When the line would not
        # fit, the overall figures go on a line of their own under the bars.
        name_width = min(32, max(12, columns // 4), max(len(row[0]) for row in rows))
        amount_width = max(len(row[3]) for row in rows)
        info_width = max(len(row[5]) for row in rows)
        fixed = name_width + amount_width + 4 + 3  # 4: "100%"; 3: the gaps between columns
        wide = fixed + 1 + info_width + 10 <= columns
        room = columns - fixed - (1 + info_width if wide else 0)
        bar_width = max(10, min(40, room))
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True, width=name_width, overflow="ellipsis")
        grid.add_column(no_wrap=True, width=bar_width)
        grid.add_column(no_wrap=True, justify="right")
        grid.add_column(no_wrap=True, justify="right", width=4)
        if wide:
            grid.add_column(no_wrap=True, overflow="ellipsis")
        for name, size, done, amount, percent, notes in rows:
            bar = ProgressBar(total=size, completed=done, width=bar_width)
            grid.add_row(name, bar, amount, percent, *([notes] if wide else []))
        if hidden > 0:
            grid.add_row(Text(f"  ... and {hidden} more", style="dim"))
        if wide:
            return grid
        from rich.console import Group

        return Group(Text(self.title + ": " + rows[0][5], no_wrap=True, overflow="ellipsis"), grid)


def isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# -- the summary --------------------------------------------------------------------------------
def plural(n: int, word: str) -> str:
    """``word`` for 1, ``word + "s"`` otherwise: "1 file", "2 files"."""
    return word if n == 1 else word + "s"


def print_summary(
    report: DownloadReport,
    out: TextIO,
    *,
    use_rich: bool | None = None,
    dry_run: bool = False,
) -> None:
    """A table of the files, the totals, and every failure with its error.

    On a terminal (with rich): a table, of the files that did not finish when the batch is
    large. Elsewhere (a file, a pipe): one plain row for every file, for scripts to read.
    """
    if use_rich is None:
        use_rich = isatty(out) and have_rich()  # rich is not even imported for a pipe
    if use_rich:
        _print_rich_summary(report, out, dry_run)
    else:
        _print_plain_summary(report, out, dry_run)
    failures = [f for f in report.files if f.status == "failed"]
    if failures:
        n = len(report.files)
        print(f"\n{len(failures)} of {n} {plural(n, 'file')} failed:", file=out)
        for f in failures:
            print(f"  {f.url}\n    {f.error or 'no error recorded'}", file=out)
    if dry_run:
        print("dry run: nothing was written", file=out)
    out.flush()


def _status(f: FileResult, dry_run: bool) -> str:
    # A dry run's "done" means the server answered: nothing was downloaded.
    return "found" if dry_run and f.status == "done" else f.status


def _size_cell(f: FileResult) -> str:
    """The size of a complete file; what arrived (of how much) for the others."""
    received = f.resumed_from + f.bytes
    if f.status in ("done", "skipped"):
        if f.size is None and f.bytes == 0 and f.status == "done":
            return "?"  # a dry run of a file of unknown size
        return human_bytes(f.size if f.size is not None else received)
    if f.size is not None:
        return f"{human_bytes(min(received, f.size))} of {human_bytes(f.size)}"
    return human_bytes(received)


def _rows(report: DownloadReport) -> tuple[list[FileResult], int]:
    """The rows of a terminal's table, and how many complete files it leaves out."""
    files = report.files
    if len(files) <= _TABLE_ROWS:
        return list(files), 0
    unfinished = [f for f in files if f.status not in ("done", "skipped")]
    shown = unfinished[:_TABLE_ROWS]
    return shown, len(files) - len(shown)


def _print_rich_summary(report: DownloadReport, out: TextIO, dry_run: bool) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    styles = {"done": "green", "skipped": "cyan", "failed": "red", "cancelled": "yellow"}
    console = Console(file=out)
    rows, hidden = _rows(report)
    if rows:  # a large batch that all finished gets no table of nothing but "... and N more"
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        table.add_column("status")
        table.add_column("size", justify="right")
        table.add_column("time", justify="right")
        table.add_column("tries", justify="right")
        table.add_column("file", overflow="fold")
        for f in rows:
            table.add_row(
                f"[{styles.get(f.status, '')}]{_status(f, dry_run)}[/]",
                _size_cell(f),
                f"{f.seconds:.2f} s",
                str(f.attempts),
                _file_name(f),
            )
        if hidden:
            table.add_row(
                "", "", "", "", f"... and {hidden} more {plural(hidden, 'file')}, all complete"
            )
        console.print(table)
    console.print(report.summary(), soft_wrap=True, highlight=False)


def _print_plain_summary(report: DownloadReport, out: TextIO, dry_run: bool) -> None:
    print(f"{'status':<9} {'size':>22} {'time':>8} {'tries':>5}  file", file=out)
    for f in report.files:
        print(
            f"{_status(f, dry_run):<9} {_size_cell(f):>22} {f.seconds:>6.2f} s {f.attempts:>5}  "
            f"{_file_name(f)}",
            file=out,
        )
    print(report.summary(), file=out)
