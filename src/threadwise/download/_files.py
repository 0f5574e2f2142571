"""Files of a download: checksums, the .part sidecar that makes a resume safe, writes."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Mapping

from .._typing import Any

CHUNK = 1 << 20  # bytes per read and write: large blocks, straight into the file


def _parse_checksum(value: str, where: str) -> tuple[str, str]:
    import hashlib

    algorithm, sep, digest = value.strip().partition(":")
    if not sep:
        algorithm, digest = "sha256", algorithm
    algorithm = algorithm.lower()
    if algorithm not in hashlib.algorithms_guaranteed:
        raise ValueError(f"checksums: unknown algorithm {algorithm!r} in {where}")
    digest = digest.lower()
    if not digest or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"checksums: {value!r} in {where} is not a hex digest")
    return algorithm, digest


def load_checksums(
    source: Mapping[str, str] | str | os.PathLike[str] | None,
) -> dict[str, tuple[str, str]]:
    """``{url or file name: "sha256:hex"}``, or a ``sha256sum``-style manifest file."""
    if source is None:
        return {}
    if isinstance(source, Mapping):
        return {str(k): _parse_checksum(str(v), repr(k)) for k, v in source.items()}
    if isinstance(source, str | os.PathLike):
        result: dict[str, tuple[str, str]] = {}
        with open(source, encoding="utf-8") as manifest:
            for number, line in enumerate(manifest, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                digest, _, name = line.partition(" ")
                name = name.strip().lstrip("*")  # `sha256sum -b` marks binary mode with *
                if not name:
                    raise ValueError(f"checksums: line {number} of {source} has no file name")
                result[name] = _parse_checksum(digest, f"line {number} of {source}")
        return result
    raise TypeError(f"checksums must be a mapping, a manifest path or None, got {source!r}")


def _hash_file(path: str, algorithm: str) -> str:
    import hashlib

    hasher = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            hasher.update(block)
    return hasher.hexdigest()


def _write_all(fd: int, data: memoryview, offset: int) -> None:
    while data:
        written = os.pwrite(fd, data, offset)
        data = data[written:]
        offset += written


def _json() -> Any:
    import json  # here: batches of small files never write a sidecar, and start-up counts

    return json


class _Meta:
    """The sidecar of a ``.part`` file: what a resume must check against."""

    @staticmethod
    def path(part: str) -> str:
        return part + ".json"

    @staticmethod
    def load(part: str) -> dict[str, Any]:
        try:
            with open(_Meta.path(part), encoding="utf-8") as f:
                data = _json().load(f)
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    @staticmethod
    def save(part: str, data: dict[str, Any]) -> None:
        tmp = _Meta.path(part) + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            _json().dump(data, f)
        os.replace(tmp, _Meta.path(part))

    @staticmethod
    def remove(part: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(_Meta.path(part))


def _discard(part: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(part)
    _Meta.remove(part)


def _is_disk_error(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EFBIG)
