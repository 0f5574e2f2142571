"""The names of ``typing`` that threadwise's modules use, without importing ``typing`` at run time.

``typing`` (with the ``re`` module it imports) takes longer to import than all of threadwise's
core, and threadwise needs almost nothing of it when running: every module has
``from __future__ import annotations``, so annotations stay strings. What is evaluated is
``T = TypeVar("T")``, ``class Task(Generic[T])``, ``class Waitable(Protocol)``, a few aliases
such as ``Literal["raise", "skip"]`` and ``cast()``. Type checkers see the real names from
``typing`` (the first branch below); the running program gets small stand-ins.

At run time the generic classes behave as the standard library's own (``queue.Queue``,
``concurrent.futures.Future``): ``tw.Queue[int]`` is a ``types.GenericAlias`` that creates a
plain ``tw.Queue``.
"""

from __future__ import annotations

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any as Any
    from typing import Generic as Generic
    from typing import Literal as Literal
    from typing import ParamSpec as ParamSpec
    from typing import Protocol as Protocol
    from typing import TextIO as TextIO
    from typing import TypeVar as TypeVar
    from typing import TypeVarTuple as TypeVarTuple
    from typing import cast as cast
else:
    from types import GenericAlias

    Any = object
    TextIO = object

    class TypeVar:
        """A type parameter's name: ``Generic[T]`` and annotations need nothing more."""

        __slots__ = ("__name__",)

        def __init__(self, name, *constraints, **options):
            self.__name__ = name

        def __repr__(self):
            return f"~{self.__name__}"

    ParamSpec = TypeVarTuple = TypeVar

    class Generic:
        """Base of threadwise's generic classes: ``Box[int]`` as for ``list[int]``."""

        __slots__ = ()

        def __class_getitem__(cls, params):
            if cls is Generic:  # `class Box(Generic[T])`: Box derives from this class
                return Generic
            return GenericAlias(cls, params)

    class Protocol:
        """Base of the structural types: at run time, an empty base class."""

        __slots__ = ()

    class _Special:
        """``Literal``: subscripted in type aliases that are evaluated at import."""

        __slots__ = ("_name",)

        def __init__(self, name):
            self._name = name

        def __getitem__(self, params):
            return GenericAlias(self, params)

        def __repr__(self):
            return f"typing.{self._name}"

    Literal = _Special("Literal")

    def cast(typ, val):
        return val
