"""Instruction counts under valgrind's callgrind, shared by the benchmarks' ``--callgrind``.

Instructions do not depend on the machine's load, as wall and CPU times do. Each figure is a
run of ``large`` operations minus one of ``small``, so the interpreter's start-up, imports and
shutdown cancel out. The count covers every thread of the process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import threadwise as tw


def available() -> bool:
    return shutil.which("valgrind") is not None


def start(script: str, *args: str) -> subprocess.Popen[str]:
    """Run ``python -c script *args`` under callgrind; read its count with ``collected``."""
    package_root = str(Path(tw.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-c",
            script,
            *args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def collected(proc: subprocess.Popen[str]) -> int:
    _, err = proc.communicate(timeout=1800)
    for line in err.splitlines():
        if "Collected :" in line:
            return int(line.split("Collected :")[1].split()[0])
    raise RuntimeError(f"valgrind gave no instruction count:\n{err[-2000:]}")


def per_operation(script: str, kind: str, small: int, large: int) -> float:
    """Instructions per operation of ``kind``: the script runs ``kind`` ``n`` times, given
    as its two arguments. The two runs go side by side (one core each)."""
    procs = [start(script, kind, str(small)), start(script, kind, str(large))]
    low, high = (collected(p) for p in procs)
    return (high - low) / (large - small)
