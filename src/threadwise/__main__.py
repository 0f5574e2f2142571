"""Entry point for ``python -m threadwise``."""

from threadwise.cli import run

run()
