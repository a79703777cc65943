"""`python -m benchmarks [--json] [--check] [--repeat N] [--only NAME ...]`."""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.scenarios import SCENARIOS, Row


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--repeat", type=int, default=3, help="runs per command (median)")
    parser.add_argument("--only", nargs="*", choices=sorted(SCENARIOS), help="scenarios to run")
    options = parser.parse_args()
    compile_bytecode()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="wfe-bench-") as directory:
        # A plan cache of the benchmark's own: the first run of each file fills it, as a
        # user's first run does, and the user's cache is left alone.
        os.environ["WFE_PLAN_CACHE"] = str(Path(directory) / "plan-cache")
        for name in options.only or SCENARIOS:
            work = Path(directory) / name
            work.mkdir()
            print(f"running {name} …", file=sys.stderr)
            rows.extend(SCENARIOS[name](work, options.repeat))
    if options.json:
        print(json.dumps({"machine": machine(), "rows": [row.as_dict() for row in rows]}, indent=2))
    else:
        print(table(rows))
    missed = [row for row in rows if row.ok is False]
    return 1 if options.check and missed else 0


def compile_bytecode() -> None:
    """Measure wfe as an installed wheel runs: with its modules compiled. An editable install
    compiles them on first import, unless PYTHONDONTWRITEBYTECODE is set (it is on our CI
    machines), and then every run would compile about 50 modules (about 80 ms) again."""
    import executors
    import wfe_yaml

    for package in (wfe_yaml, executors):
        compileall.compile_dir(Path(package.__file__).parent, quiet=1)


def machine() -> dict[str, str]:
    return {
        "date": time.strftime("%Y-%m-%d"),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def table(rows: list[Row]) -> str:
    header = ("scenario", "subject", "seconds", "vs", "ratio", "peak MB", "target", "ok", "note")
    body = [
        (
            row.scenario,
            row.subject,
            f"{row.seconds:.3f}",
            row.baseline or "",
            f"{row.ratio:.2f}" if row.ratio is not None else "",
            f"{row.peak_rss_mb:.0f}" if row.peak_rss_mb else "",
            row.target or "",
            {True: "yes", False: "NO", None: ""}[row.ok],
            row.note,
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in [header, *body]
    )


if __name__ == "__main__":
    sys.exit(main())
