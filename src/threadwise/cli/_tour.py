"""``threadwise tour``: the classic threading lessons, rewritten with threadwise, run one by one.

Each lesson is a commented script in ``examples/tour/`` named ``NN_topic.py``; its docstring's
first line is its title. The scripts are the only copy: the tour runs them from the source
checkout this module belongs to (each also runs on its own with ``python``). Lessons run
in-process with ``runpy``, so the whole tour takes a few seconds.
"""

from __future__ import annotations

import argparse
import ast
import re
import runpy
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_LESSON_FILE = re.compile(r"^(\d+)_(\w+)\.py$")


class TourNotFound(Exception):
    """The lesson scripts are not where the tour looks for them."""


@dataclass(frozen=True)
class Lesson:
    """One lesson script: ``number`` and ``topic`` come from its file name."""

    number: int
    topic: str
    path: Path
    title: str

    @property
    def label(self) -> str:
        """``"07 lifecycle states"``: the number and the topic in words."""
        return f"{self.number:02d} {self.topic.replace('_', ' ')}"


def lessons_dir() -> Path:
    """Where the lesson scripts are: ``examples/tour`` of the source checkout."""
    return Path(__file__).resolve().parents[3] / "examples" / "tour"


def _title(path: Path) -> str:
    try:
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        doc = None
    return doc.strip().splitlines()[0] if doc else ""


def find_lessons(directory: Path | None = None) -> list[Lesson]:
    """The lessons in ``directory`` (default: ``lessons_dir()``), in order.

    Raises ``TourNotFound`` when the folder is missing or holds no lesson.
    """
    folder = lessons_dir() if directory is None else directory
    if not folder.is_dir():
        raise TourNotFound(
            f"the tour needs a source checkout: its lessons are the scripts in examples/tour/ "
            f"of the threadwise repository, and {folder} does not exist (an installed "
            f"package does not include them)"
        )
    lessons = []
    for path in folder.iterdir():
        match = _LESSON_FILE.match(path.name)
        if match and path.is_file():
            number, topic = match.groups()
            lessons.append(Lesson(int(number), topic, path, _title(path)))
    if not lessons:
        raise TourNotFound(f"no lesson scripts (NN_topic.py) in {folder}")
    return sorted(lessons, key=lambda lesson: (lesson.number, lesson.topic))


def _normalise(text: str) -> str:
    return re.sub(r"[\s\-]+", "_", text.strip().lower())


def select(lessons: Sequence[Lesson], selectors: Sequence[str]) -> list[Lesson]:
    """The lessons matching any selector, in tour order (all of them when there is none).

    A selector is a lesson number (``7``, ``07``) or part of a topic (``states``,
    ``thread-local``). Raises ``ValueError`` naming a selector that matches nothing.
    """
    if not selectors:
        return list(lessons)
    chosen: set[Lesson] = set()
    for selector in selectors:
        wanted = _normalise(selector)
        if wanted.isdigit():
            matches = [lesson for lesson in lessons if lesson.number == int(wanted)]
        else:
            matches = [lesson for lesson in lessons if wanted and wanted in lesson.topic]
        if not matches:
            raise ValueError(
                f"no lesson matches {selector!r}; `threadwise tour --list` shows the lessons"
            )
        chosen.update(matches)
    return [lesson for lesson in lessons if lesson in chosen]


def list_lessons(lessons: Sequence[Lesson]) -> None:
    """Print one line per lesson: number, topic, title."""
    width = max(len(lesson.label) for lesson in lessons)
    for lesson in lessons:
        print(f"{lesson.label:<{width}}  {lesson.title}")


def run_lesson(lesson: Lesson, index: int, total: int) -> bool:
    """Run one lesson in this process under a header; False if it raised."""
    rule = "=" * 78
    print(rule)
    print(f"Lesson {lesson.number} ({index}/{total}): {lesson.title or lesson.label}")
    print(f"  python {_shown_path(lesson.path)}")
    print(rule, flush=True)
    try:
        runpy.run_path(str(lesson.path), run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (None, 0):
            if not isinstance(exc.code, int):
                print(exc.code, file=sys.stderr)
            print(f"lesson {lesson.label} exited with {exc.code!r}", file=sys.stderr)
            return False
    except (KeyboardInterrupt, BrokenPipeError):
        raise  # Ctrl-C, or the reader of our output went away: stop the whole tour
    except BaseException:
        sys.stdout.flush()
        traceback.print_exc()
        print(f"lesson {lesson.label} failed", file=sys.stderr)
        return False
    finally:
        sys.stdout.flush()
    print()
    return True


def _shown_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def tour(
    selectors: Sequence[str] = (), *, list_only: bool = False, directory: Path | None = None
) -> int:
    """Run (or with ``list_only``, list) the selected lessons; return the exit code.

    0: every lesson ran; 1: a lesson raised or the lessons are missing; 2: a selector
    matched no lesson.
    """
    try:
        lessons = find_lessons(directory)
    except TourNotFound as exc:
        print(f"threadwise tour: {exc}", file=sys.stderr)
        return 1
    try:
        chosen = select(lessons, selectors)
    except ValueError as exc:
        print(f"threadwise tour: {exc}", file=sys.stderr)
        return 2
    if list_only:
        list_lessons(chosen)
        return 0
    start = time.perf_counter()
    failed = [
        lesson.label
        for index, lesson in enumerate(chosen, 1)
        if not run_lesson(lesson, index, len(chosen))
    ]
    elapsed = time.perf_counter() - start
    n = len(chosen)
    lessons_word = "lesson" if n == 1 else "lessons"
    if failed:
        print(f"{len(failed)} of {n} {lessons_word} failed: {', '.join(failed)}")
        return 1
    print(f"{n} {lessons_word} run in {elapsed:.1f} s, all finished without an error.")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the tour with the parsed options; return the exit code."""
    selectors: list[str] = args.lessons
    list_only: bool = args.list
    return tour(selectors, list_only=list_only)


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register the ``tour`` subcommand."""
    parser = subparsers.add_parser(
        "tour",
        help="run the threading tutorial's lessons, rewritten with threadwise",
        description="Run the lessons of the threading tutorial rewritten with threadwise, one "
        "commented script per lesson (examples/tour/ in the source checkout), each printing "
        "what it demonstrates.",
    )
    parser.add_argument(
        "lessons",
        nargs="*",
        metavar="LESSON",
        help="lessons to run, by number (7) or part of the topic (states); default: all",
    )
    parser.add_argument(
        "--list",
        action="store_true",
        help="list the lessons instead of running them",
    )
    parser.set_defaults(handler=run)
    return parser
