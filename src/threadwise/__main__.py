"""Entry point for ``python -m threadwise``."""

import gc

from threadwise.cli import main

code = main()
# The process ends now. At exit the interpreter clears every module and lets the collector
# free the cycles that leaves (functions and their globals, classes): tens of milliseconds
# for a process that ran for a few hundred. Frozen objects are left for the OS to reclaim.
gc.freeze()
raise SystemExit(code)
