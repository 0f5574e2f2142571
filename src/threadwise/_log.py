"""Loggers that import ``logging`` when they first log, not when threadwise is imported.

threadwise logs only when something went wrong (a callback raised, a task's failure went
unretrieved), while importing ``logging`` costs a third of ``import threadwise``. A module keeps
its ``logger = Logger("threadwise")`` line and its ``logger.warning(...)`` calls; the first call
imports ``logging`` and each call goes to ``logging.getLogger(name)``, so handlers, levels and
``caplog`` see the same logger as before.
"""

from __future__ import annotations

from ._typing import TYPE_CHECKING

if TYPE_CHECKING:
    # For type checkers the stand-in is a Logger: same constructor, same methods.
    from logging import Logger as Logger
else:

    class Logger:
        __slots__ = ("name",)

        def __init__(self, name):
            self.name = name

        def __getattr__(self, attribute):
            # A bound method of the real logger: called from the caller's frame, so the record
            # names the caller's file and line, as with a logger made by logging.getLogger().
            import logging

            return getattr(logging.getLogger(self.name), attribute)

        def __repr__(self):
            return f"<threadwise lazy logger {self.name!r}>"
