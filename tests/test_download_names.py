"""File names for downloads: whatever a URL or a server says, a name stays one safe path
component inside the destination folder, and no two downloads of a batch share one."""

from __future__ import annotations

import os
import sys
import threading
import unicodedata
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from threadwise.download._names import (
    NameRegistry,
    inside,
    name_from_content_disposition,
    name_from_url,
    sanitize,
)


def is_one_safe_component(name: str) -> bool:
    return (
        name not in ("", ".", "..")
        and not any(c in name for c in "/\\\x00")
        and not any(unicodedata.category(c) == "Cc" for c in name)
    )


# -- sanitize ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("my file (2).txt", "my file (2).txt"),
        ("caf\u00e9.txt", "caf\u00e9.txt"),
        ("../../evil", "evil"),
        ("/etc/passwd", "passwd"),
        ("..\\x", "x"),
        ("C:\\Windows\\evil.dll", "evil.dll"),
        ("C:evil", "evil"),
        ("a\x00b.txt", "ab.txt"),
        ("\x1b[31mred\x07.txt", "[31mred.txt"),
        ("  spaced  ", "spaced"),
        ("...hidden...", "hidden"),
        ('we<i>rd:"na|me?*', "weirdname"),
        ("con", "_con"),
        ("NUL.txt", "_NUL.txt"),
        ("lpt1", "_lpt1"),
        ("console.txt", "console.txt"),
    ],
)
def test_sanitize(raw: str, expected: str) -> None:
    assert sanitize(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", ".", "..", "...", "/", "../", "..\\", "\x00", " ", "C:", "\x7f"]
)
def test_sanitize_leaves_nothing_usable(raw: str) -> None:
    assert sanitize(raw) is None


def test_sanitize_shortens_long_names_and_keeps_the_extension() -> None:
    name = sanitize("x" * 1000 + ".tar")
    assert name is not None
    assert name.endswith(".tar")
    assert len(name.encode("utf-8")) <= 255
    assert set(name[: -len(".tar")]) == {"x"}


def test_sanitize_shortens_multibyte_names_to_valid_utf8() -> None:
    name = sanitize("\u00e9" * 300 + ".\u20ac\u20ac")
    assert name is not None
    encoded = name.encode("utf-8")  # would raise on a split character
    assert len(encoded) <= 255
    assert name.endswith(".\u20ac\u20ac")


@given(st.text())
@example("a\x85b")  # NEL, a C1 control character
@example("\x9b31mred")  # CSI: a terminal escape in one character
@example("x" * 300 + " .y")
def test_sanitize_gives_one_safe_component_or_none(text: str) -> None:
    name = sanitize(text)
    if name is not None:
        assert is_one_safe_component(name), repr(name)
        assert len(name.encode("utf-8")) <= 255


@given(st.text(alphabet=st.sampled_from("./\\:\x00 ab"), max_size=30))
def test_sanitize_of_path_like_text_stays_in_the_folder(text: str) -> None:
    name = sanitize(text)
    if name is not None:
        assert os.path.dirname(os.path.normpath(os.path.join("root", name))) == "root"


# -- names from URLs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://example.com/files/data.tar.gz", "data.tar.gz"),
        ("http://example.com/files/data.bin?token=1&x=/y#frag", "data.bin"),
        ("https://example.com/my%20file.txt", "my file.txt"),
        ("https://example.com/%E2%82%AC.txt", "\u20ac.txt"),
        ("http://example.com/", "index.html"),
        ("http://example.com", "index.html"),
        ("http://example.com/dir/", "index.html"),
        ("http://example.com/..%2F..%2Fevil", "evil"),
        ("http://example.com/%2e%2e", "index.html"),
        ("http://example.com/a%00b", "ab"),
        ("http://example.com/x%5C..%5Cy", "y"),
    ],
)
def test_name_from_url(url: str, expected: str) -> None:
    assert name_from_url(url) == expected


@given(st.text())
@example("a%C2%85b")  # percent-encoded NEL
def test_name_from_url_is_always_a_safe_component(path: str) -> None:
    name = name_from_url("http://example.com/" + path)
    assert is_one_safe_component(name), repr(name)


# -- names from Content-Disposition ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('attachment; filename="report.pdf"', "report.pdf"),
        ("attachment; filename=report.pdf", "report.pdf"),
        ('inline; filename="a b.txt"', "a b.txt"),
        ('attachment; filename="../../evil"', "evil"),
        ('attachment; filename="/etc/passwd"', "passwd"),
        ('attachment; filename="C:evil"', "evil"),
        ("attachment; filename*=UTF-8''%E2%82%AC%20rates.txt", "\u20ac rates.txt"),
        ("attachment; filename*=utf-8''na%C3%AFve.txt", "na\u00efve.txt"),
        ("attachment; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd", "passwd"),
    ],
)
def test_name_from_content_disposition(header: str, expected: str) -> None:
    assert name_from_content_disposition(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        "attachment; filename=\"fallback.txt\"; filename*=UTF-8''%E2%82%AC.txt",
        "attachment; filename*=UTF-8''%E2%82%AC.txt; filename=\"fallback.txt\"",
    ],
)
def test_filename_star_wins_over_filename(header: str) -> None:
    """RFC 6266 section 4.3: with both, a recipient picks ``filename*`` (whatever the order);
    ``filename`` is the fallback for old clients."""
    assert name_from_content_disposition(header) == "\u20ac.txt"


@pytest.mark.parametrize(
    "header",
    [None, "", "attachment", "inline", 'attachment; filename=""', 'attachment; filename=".."'],
)
def test_no_usable_name_in_content_disposition(header: str | None) -> None:
    assert name_from_content_disposition(header) is None


@given(st.text())
@example("a\x85b")
def test_content_disposition_names_are_safe_components(value: str) -> None:
    header = 'attachment; filename="' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    name = name_from_content_disposition(header)
    if name is not None:
        assert is_one_safe_component(name), repr(name)


# -- NameRegistry ---------------------------------------------------------------------------------


def test_registry_numbers_repeated_names(tmp_path: Path) -> None:
    names = NameRegistry(str(tmp_path))
    assert names.claim("a.txt") == "a.txt"
    assert names.claim("a.txt") == "a (1).txt"
    assert names.claim("a.txt") == "a (2).txt"
    assert names.claim("README") == "README"
    assert names.claim("README") == "README (1)"


def test_registry_ignores_case(tmp_path: Path) -> None:
    names = NameRegistry(str(tmp_path))
    first = names.claim("Data.BIN")
    second = names.claim("data.bin")
    third = names.claim("DATA.bin")
    assert first == "Data.BIN"
    assert len({first.lower(), second.lower(), third.lower()}) == 3


def test_registry_avoids_existing_files_only_when_asked(tmp_path: Path) -> None:
    (tmp_path / "x.bin").write_bytes(b"already here")
    names = NameRegistry(str(tmp_path))
    assert names.claim("x.bin", avoid_existing=True) == "x (1).bin"
    assert names.claim("x.bin") == "x.bin"  # not claimed in this batch yet


def test_registry_release_frees_a_name(tmp_path: Path) -> None:
    names = NameRegistry(str(tmp_path))
    assert names.claim("f.txt") == "f.txt"
    names.release("F.TXT")
    assert names.claim("f.txt") == "f.txt"


def test_registry_is_unique_across_threads(tmp_path: Path) -> None:
    names = NameRegistry(str(tmp_path))
    claimed: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def claim_many() -> None:
        start.wait()
        mine = [names.claim("same.bin") for _ in range(50)]
        with lock:
            claimed.extend(mine)

    threads = [threading.Thread(target=claim_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(claimed) == 400
    assert len({name.lower() for name in claimed}) == 400


# -- inside ---------------------------------------------------------------------------------------


def test_inside_accepts_a_plain_name(tmp_path: Path) -> None:
    root = os.path.realpath(tmp_path)
    assert inside(root, "a.txt") == os.path.join(root, "a.txt")


@pytest.mark.parametrize(
    "name",
    [
        "../x",
        "../../etc/passwd",
        "/etc/passwd",
        "sub/x",
        "..",
        ".",
        "",
        "a/../../x",
        "..\\x",
        "a\x00",
    ],
)
def test_inside_refuses_escapes(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="refusing"):
        inside(os.path.realpath(tmp_path), name)


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_inside_refuses_a_symlink_that_points_outside(tmp_path: Path) -> None:
    folder = tmp_path / "dest"
    folder.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("not yours")
    (folder / "link.txt").symlink_to(outside)
    with pytest.raises(ValueError, match="refusing"):
        inside(os.path.realpath(folder), "link.txt")


def test_sanitized_names_are_accepted_by_inside(tmp_path: Path) -> None:
    for raw in ("../../evil", "/etc/passwd", "..\\x", "C:evil", "a\x00b", "x" * 500):
        name = sanitize(raw)
        assert name is not None
        root = os.path.realpath(tmp_path)
        assert os.path.dirname(inside(root, name)) == root
