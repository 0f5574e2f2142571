"""Entry point for ``python -m threadwise``."""

from threadwise.cli import main

raise SystemExit(main())
