"""File names for downloads: taken from the URL or a Content-Disposition header, and made
safe — a name never leaves the destination folder, whatever the server sends."""

from __future__ import annotations

import os
import re
import threading

# C0 and C1 control characters (C1 includes CSI, a terminal escape) and what Windows forbids.
_UNSAFE = re.compile(r'[\x00-\x1f\x7f-\x9f<>:"|?*]')
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)
_MAX_NAME_BYTES = 200


def sanitize(name: str) -> str | None:
    """The last path component of ``name``, without anything that could escape a folder or
    break a file system; None if nothing usable is left."""
    name = name.replace("\\", "/").split("/")[-1]  # `../../x`, `/etc/x`, `..\\x` → `x`
    name = re.sub(r"^[A-Za-z]:", "", name)  # drive letters: `C:x` → `x`
    name = _UNSAFE.sub("", name).strip(" .\t")  # ". . ." and "..." leave nothing
    if not name:
        return None
    if _WINDOWS_RESERVED.match(name):
        name = "_" + name
    encoded = name.encode("utf-8")
    if len(encoded) > _MAX_NAME_BYTES:
        stem, dot, ext = name.rpartition(".")
        keep = ext.encode("utf-8")[:20].decode("utf-8", "ignore") if dot and stem else ""
        budget = _MAX_NAME_BYTES - len(keep.encode("utf-8")) - 1
        head = encoded[:budget].decode("utf-8", "ignore")
        name = f"{head}.{keep}" if keep else head
    return name


# A last path component that needs none of sanitize's changes (most do not).
_PLAIN = re.compile(r"[A-Za-z0-9_+=,-][A-Za-z0-9._+=,-]{0,150}")


def name_from_url(url: str, path: str | None = None) -> str:
    """The file name for ``url`` (``path``: its path, when the caller split it already)."""
    if path is None:
        from urllib.parse import urlsplit

        path = urlsplit(url).path
    last = path.rpartition("/")[2]
    if _PLAIN.fullmatch(last) and last[-1] != "." and not _WINDOWS_RESERVED.match(last):
        return last
    from urllib.parse import unquote

    return sanitize(unquote(path)) or "index.html"


_FILENAME_STAR = re.compile(r"filename\*\s*=\s*([^;]+)", re.IGNORECASE)


def name_from_content_disposition(header: str | None) -> str | None:
    """The file name a Content-Disposition header suggests, sanitised. ``filename*``
    (RFC 5987, any charset) wins over ``filename``, as RFC 6266 asks."""
    if not header:
        return None
    star = _FILENAME_STAR.search(header)
    if star:
        from urllib.parse import unquote

        charset, _, rest = star.group(1).strip().strip('"').partition("'")
        _, _, encoded = rest.partition("'")
        try:
            decoded = unquote(encoded, encoding=charset or "utf-8", errors="strict")
        except (LookupError, UnicodeDecodeError):
            decoded = ""
        name = sanitize(decoded) if decoded else None
        if name:
            return name
    import email.message  # only for the rare header without filename*

    message = email.message.Message()
    message["content-disposition"] = header
    try:
        raw = message.get_filename()
    except Exception:
        return None
    return sanitize(raw) if raw else None


def with_suffix_number(name: str, n: int) -> str:
    stem, dot, ext = name.rpartition(".")
    if dot and stem:
        return f"{stem} ({n}).{ext}"
    return f"{name} ({n})"


class NameRegistry:
    """Hands out names inside one folder so that no two downloads of a batch share one."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._taken: set[str] = set()
        self._lock = threading.Lock()

    def claim(self, name: str, *, avoid_existing: bool = False) -> str:
        """``name`` or ``name (n).ext``: not claimed before in this batch (and, with
        ``avoid_existing``, not an existing file)."""
        with self._lock:
            candidate, n = name, 0
            while candidate.lower() in self._taken or (
                avoid_existing and os.path.lexists(os.path.join(self.folder, candidate))
            ):
                n += 1
                candidate = with_suffix_number(name, n)
            self._taken.add(candidate.lower())
            return candidate

    def release(self, name: str) -> None:
        with self._lock:
            self._taken.discard(name.lower())


def inside(root: str, name: str) -> str:
    """The path of ``name`` in the folder ``root`` (already resolved with ``realpath``),
    checked to stay inside it: one plain component, and not a symlink to elsewhere."""
    if (
        not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or "\x00" in name
        or (os.altsep is not None and os.altsep in name)
    ):
        raise ValueError(f"refusing a file name that could leave the destination: {name!r}")
    path = os.path.join(root, name)
    if os.path.islink(path):
        raise ValueError(f"refusing to write through a symbolic link: {path!r}")
    return path
