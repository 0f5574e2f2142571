"""Small immutable value classes without the ``dataclasses`` module.

``@dataclass`` imports ``inspect`` (and through it ``ast``, ``dis`` and ``tokenize``), several
times the import time of the modules that would use it. ``Record`` gives a ``__slots__`` class
what a frozen dataclass would: a repr naming each field, equality and hashing by value, no
assignment after ``__init__``, pickling and ``match`` by position.
"""

from __future__ import annotations

from ._typing import Any


class Record:
    """Fields are the subclass's ``__slots__``, in order; its ``__init__`` passes their values
    to ``Record.__init__`` in that order."""

    __slots__: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        type.__setattr__(cls, "__match_args__", cls.__slots__)

    def __init__(self, *values: object) -> None:
        for name, value in zip(self.__slots__, values, strict=True):
            object.__setattr__(self, name, value)

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__qualname__}({fields})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record) or other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(
            f"cannot assign to field {name!r}: {type(self).__qualname__} is frozen"
        )

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: {type(self).__qualname__} is frozen")

    def __reduce__(self) -> tuple[type[Record], tuple[object, ...]]:
        return type(self), self._values()
