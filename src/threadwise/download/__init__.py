"""threadwise.download: a parallel downloader built on threadwise (needs the ``cli`` extra).

from threadwise.download import download
report = download(urls, "downloads", workers=16)
print(report)
"""

from __future__ import annotations

from ._download import DownloadInterrupted, InsecureWarning, download
from ._files import load_checksums
from ._report import DownloadReport, FileResult
from ._request import Request
from ._server import DemoServer, ServedFile

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
