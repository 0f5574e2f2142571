"""A hostile HTTP server for the downloader's tests: a ``DemoServer`` with one method per way
a real server misbehaves. Use the ``hostile`` fixture (tests/conftest.py)."""

from __future__ import annotations

from threadwise.download import DemoServer, ServedFile


class HostileServer(DemoServer):
    """``hostile.stall("a.bin", 100_000, after=30_000)`` adds a file and returns its
    ``ServedFile`` (its ``requests``, ``range_requests`` and ``request_headers`` say what the
    client did); ``hostile.url(name)`` is where it is served."""

    def stall(self, name: str, size: int, *, after: int, times: int = 1) -> ServedFile:
        """Send ``after`` bytes of the body, then nothing, keeping the socket open."""
        return self.add(name, size, stall_after=after, stall_times=times)

    def reset(self, name: str, size: int, *, after: int, times: int = 1) -> ServedFile:
        """Send ``after`` bytes of the body, then a TCP reset (RST)."""
        return self.add(name, size, reset_after=after, reset_times=times)

    def cut(self, name: str, size: int, *, after: int, times: int = 1) -> ServedFile:
        """Send ``after`` bytes of the body, then close the connection cleanly (FIN)."""
        return self.add(name, size, cut_after=after, cut_times=times)

    def ignore_range(self, name: str, size: int) -> ServedFile:
        """Answer every request, ranged or not, with the whole file (200)."""
        return self.add(name, size, ignore_range=True)

    def changing(self, name: str, size: int) -> ServedFile:
        """A file to edit between runs with ``.change()``: new bytes, ETag, Last-Modified."""
        return self.add(name, size)

    def disposition(self, name: str, size: int, *, filename: str) -> ServedFile:
        """A file whose Content-Disposition names it ``filename``."""
        return self.add(name, size, content_disposition=f'attachment; filename="{filename}"')

    def drip(self, name: str, size: int, *, rate: float) -> ServedFile:
        """A slow drip: ``rate`` bytes per second."""
        return self.add(name, size, drip=rate)

    def too_many(
        self, name: str, size: int, *, retry_after: str | None, times: int = 1
    ) -> ServedFile:
        """429 Too Many Requests (with ``Retry-After``) for the first ``times`` requests."""
        return self.add(name, size, fail_times=times, fail_status=429, retry_after=retry_after)

    def refused(self, name: str = "nothing.bin") -> str:
        """A URL where connections are refused."""
        return self.refused_url(name)
