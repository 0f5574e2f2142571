"""threadwise.download: a parallel downloader built on threadwise (needs the ``cli`` extra).

from threadwise.download import download
report = download(urls, "downloads", workers=16)
print(report)
"""

from __future__ import annotations

from threadwise import _typing

from ._download import DownloadInterrupted, InsecureWarning, download
from ._files import load_checksums
from ._report import DownloadReport, FileResult
from ._request import Request

if _typing.TYPE_CHECKING:
    from ._server import DemoServer, ServedFile


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"DemoServer", "ServedFile"})


def __getattr__(name: str) -> _typing.Any:
    # The demo server pulls in http.server: loaded only when asked for, so that a download
    # does not pay for its import.
    if name in ("DemoServer", "ServedFile"):
        from . import _server

        return getattr(_server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DemoServer",
    "DownloadInterrupted",
    "DownloadReport",
    "FileResult",
    "InsecureWarning",
    "Request",
    "ServedFile",
    "download",
    "load_checksums",
]
