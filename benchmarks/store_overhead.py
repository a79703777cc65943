"""What the run store costs: 500 sequential `true` steps (`shell: sh`), store on vs `--no-store`.

Runs `wfe run` both ways, alternating, three times each, and prints the medians and their ratio
(DESIGN §10 target: at most 1.15): of wall time, and of CPU time (the `wfe` process and the
steps it ran), which a machine loaded by other work disturbs much less. Also times the engine
alone in this process, with and without the store's subscriber, and the time spent inside that
subscriber: the store's own cost, which the noise of a busy machine hides in the ratios.

    python benchmarks/store_overhead.py [--steps 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
WFE = [sys.executable, "-m", "wfe_yaml"]


def workflows_text(steps: int) -> str:
    lines = ["workflow:", "  id: bench", "  steps:"]
    lines += [
        f"    - {{name: s{i}, type: shell, config: {{shell: sh, run: 'true'}}}}"
        for i in range(steps)
    ]
    return "\n".join(lines) + "\n"


def cli_run(directory: Path, *extra: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds of wfe and its steps)."""
    before = _children_cpu()
    started = time.perf_counter()
    subprocess.run(
        [*WFE, "run", "workflows.yaml", "-q", "--plain", *extra],
        cwd=directory,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started, _children_cpu() - before


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def engine_run(directory: Path, with_store: bool) -> tuple[float, float]:
    """(wall seconds of the run, seconds spent inside the store's subscriber)."""
    import wfe_yaml
    from wfe_yaml.engine.events import Event
    from wfe_yaml.store import RunRecorder, Store

    plan = wfe_yaml.load(directory / "workflows.yaml")
    inside = 0.0

    def timed(recorder: RunRecorder) -> Callable[[Event], None]:
        def subscriber(event: Event) -> None:
            nonlocal inside
            started = time.perf_counter()
            recorder(event)
            inside += time.perf_counter() - started

        return subscriber

    subscribers = []
    store = None
    if with_store:
        store = Store(directory / ".wfe" / "engine.db")
        subscribers.append(timed(RunRecorder(store, plan, exit_code_of=lambda status: 0)))
    started = time.perf_counter()
    result = wfe_yaml.Engine(subscribers=tuple(subscribers)).run(plan)
    elapsed = time.perf_counter() - started
    assert result.succeeded
    if store is not None:
        store.close()
    return elapsed, inside


def alternate(rounds: int, on: Callable[[], T], off: Callable[[], T]) -> tuple[list[T], list[T]]:
    timings: tuple[list[T], list[T]] = ([], [])
    for _ in range(rounds):
        timings[0].append(on())
        timings[1].append(off())
    return timings


def medians(timings: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(t[0] for t in timings), statistics.median(t[1] for t in timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        (directory / "workflows.yaml").write_text(workflows_text(options.steps))
        cli_on, cli_off = alternate(
            options.rounds,
            lambda: cli_run(directory),
            lambda: cli_run(directory, "--no-store"),
        )
        engine_on, engine_off = alternate(
            options.rounds,
            lambda: engine_run(directory, True),
            lambda: engine_run(directory, False),
        )
    (wall_on, cpu_on), (wall_off, cpu_off) = medians(cli_on), medians(cli_off)
    (engine_wall_on, inside), (engine_wall_off, _) = medians(engine_on), medians(engine_off)
    print(f"{options.steps} sequential steps, median of {options.rounds}")
    print(f"wfe run, wall: store {wall_on:.2f}s, --no-store {wall_off:.2f}s")
    print(f"wfe run, CPU:  store {cpu_on:.2f}s, --no-store {cpu_off:.2f}s")
    print(f"engine alone:  store {engine_wall_on:.2f}s, no store {engine_wall_off:.2f}s")
    print(
        f"inside the store's subscriber: {inside * 1000:.0f}ms"
        f" ({inside / engine_wall_on:.1%} of the run, {inside / options.steps * 1e6:.0f}us/step)"
    )
    print(f"engine alone ratio: {engine_wall_on / engine_wall_off:.3f}")
    print(
        f"store overhead ratio (wfe run): wall {wall_on / wall_off:.3f},"
        f" CPU {cpu_on / cpu_off:.3f} (target <= 1.15)"
    )


if __name__ == "__main__":
    main()
