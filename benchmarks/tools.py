"""Finding the programs to compare, and timing them."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sysconfig
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


def program(name: str) -> str | None:
    """The real executable: pyenv-style shims would add their own start-up to every timing."""
    scripts = Path(sysconfig.get_path("scripts")) / name
    if scripts.is_file() and os.access(scripts, os.X_OK):
        return str(scripts)
    return shutil.which(name)


@dataclass
class Timing:
    seconds: float
    peak_rss_mb: float


def run_once(argv: Sequence[str], cwd: Path, stdin: int | None = None) -> Timing:
    """Wall time and peak RSS of one run (the command must succeed)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=stdin
    )
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if process.stderr:
        process.stderr.close()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {process.returncode}: {stderr[-500:]}")
    return Timing(elapsed, usage.ru_maxrss / 1024)


def median_of(argv: Sequence[str], cwd: Path, repeat: int) -> Timing:
    runs = [run_once(argv, cwd) for _ in range(repeat)]
    return Timing(
        statistics.median(run.seconds for run in runs), max(run.peak_rss_mb for run in runs)
    )


def interleaved(commands: dict[str, Sequence[str]], cwd: Path, repeat: int) -> dict[str, Timing]:
    """Median timings, alternating the commands so machine noise hits all of them alike."""
    runs: dict[str, list[Timing]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, argv in commands.items():
            runs[name].append(run_once(argv, cwd))
    return {
        name: Timing(
            statistics.median(t.seconds for t in timings), max(t.peak_rss_mb for t in timings)
        )
        for name, timings in runs.items()
    }
