"""The scenarios of DESIGN §10: the same work for every tool, measured side by side."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.tools import interleaved, median_of, program

PYTHON = sys.executable


@dataclass
class Row:
    scenario: str
    subject: str
    seconds: float
    baseline: str | None
    ratio: float | None
    peak_rss_mb: float
    target: str | None = None
    ok: bool | None = None
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def wfe() -> str:
    found = program("wfe")
    if found is None:
        raise SystemExit("wfe is not installed: pip install -e '.[dev,js]'")
    return found


def store_flag() -> list[str]:
    """`--no-store` where the store exists (so both store settings can be compared)."""
    help_text = subprocess.run([wfe(), "run", "--help"], capture_output=True, text=True).stdout
    return ["--no-store"] if "--no-store" in help_text else []


def steps_file(path: Path, count: int, step: str, parallel: bool = False) -> Path:
    lines = ["workflow:", "  id: bench", "  steps:"]
    body = [f"    - {{name: s{i}, {step}}}" for i in range(count)]
    if parallel:
        lines += ["    - name: all", "      parallel:"]
        body = ["    " + line for line in body]
    path.write_text("\n".join(lines + body) + "\n")
    return path


SH_TRUE = "type: shell, config: {shell: sh, run: 'true'}"
PYTHON_FLOOR = "Python floor: posix_spawn loop"
PLAN_CACHE_OFF = "wfe, plan cache off"
"""A first run, or the first after an edit: the files are parsed, validated and compiled."""


def _python_spawn_loop(count: int) -> str:
    """The least any runner written in Python can take for the same work: the interpreter's
    start-up and the cheapest spawn Python has, with no pipes, no bookkeeping and no imports
    beyond `os` (the harness finds `sh` for it)."""
    sh = program("sh")
    return (
        "import os\n"
        f"for _ in range({count}):\n"
        f"    os.waitpid(os.posix_spawn({sh!r}, ['sh', '-c', 'true'], os.environ), 0)\n"
    )


def sequential(work: Path, repeat: int) -> list[Row]:
    count = 500
    steps_file(work / "seq.yaml", count, SH_TRUE)
    (work / "Taskfile.yml").write_text(
        "version: '3'\ntasks:\n  default:\n    cmds:\n"
        + "".join("      - sh -c true\n" for _ in range(count))
    )
    (work / "justfile").write_text("default:\n" + "".join("    true\n" for _ in range(count)))
    commands = {
        "bash loop of sh -c true": ["bash", "-c", f"for i in $(seq {count}); do sh -c true; done"],
        PYTHON_FLOOR: [PYTHON, "-c", _python_spawn_loop(count)],
        "wfe (store on)": [wfe(), "run", "--plain", "-q", "seq.yaml"],
        PLAN_CACHE_OFF: ["env", "WFE_PLAN_CACHE=off", wfe(), "run", "--plain", "-q", "seq.yaml"],
    }
    no_store = store_flag()
    if no_store:
        commands["wfe --no-store"] = [wfe(), "run", "--plain", "-q", *no_store, "seq.yaml"]
    peers = {"task": program("task"), "just": program("just")}
    if peers["task"]:
        commands["task"] = [peers["task"], "--silent"]
    if peers["just"]:
        commands["just"] = [peers["just"], "--quiet"]
    timings = interleaved(commands, work, repeat)
    base = timings["bash loop of sh -c true"].seconds
    wfe_time = timings["wfe (store on)"].seconds
    rows = [
        _row("500 sequential steps", name, t.seconds, "bash loop", base, t.peak_rss_mb)
        for name, t in timings.items()
    ]
    _target(rows, "wfe (store on)", "≤ 1.5× bash loop", wfe_time / base <= 1.5)
    floor = timings[PYTHON_FLOOR].seconds
    for peer in ("task", "just"):
        if peer in timings:
            peer_time = timings[peer].seconds
            note = f"wfe / {peer} = {wfe_time / peer_time:.2f}"
            if floor > peer_time:
                note += f"; the Python floor alone is {floor / peer_time:.2f}× {peer}"
            note += f"; cache off: {timings[PLAN_CACHE_OFF].seconds / peer_time:.2f}"
            _target(rows, peer, f"wfe ≤ {peer}", wfe_time <= peer_time, note=note)
        else:
            rows.append(Row("500 sequential steps", peer, 0, None, None, 0, note="not installed"))
    if no_store:
        off = timings["wfe --no-store"].seconds
        _target(
            rows,
            "wfe --no-store",
            "store costs ≤ 15%",
            wfe_time / off <= 1.15,
            note=f"store on / off = {wfe_time / off:.2f}",
        )
    return rows


def parallel(work: Path, repeat: int) -> list[Row]:
    sleep = "type: shell, config: {shell: sh, run: 'sleep 0.5'}"
    steps_file(work / "par.yaml", 64, sleep, parallel=True)
    steps_file(work / "one.yaml", 1, sleep)
    base_args = [wfe(), "run", "--plain", "-q", *store_flag()]
    timings = interleaved(
        {
            "wfe 1 step": [*base_args, "one.yaml"],
            "wfe 64 parallel --jobs 64": [*base_args, "--jobs", "64", "par.yaml"],
        },
        work,
        repeat,
    )
    base = timings["wfe 1 step"].seconds
    rows = [
        _row("64 parallel sleep 0.5", name, t.seconds, "wfe 1 step", base, t.peak_rss_mb)
        for name, t in timings.items()
    ]
    many = timings["wfe 64 parallel --jobs 64"].seconds
    _target(rows, "wfe 64 parallel --jobs 64", "≤ 1.5× one step", many / base <= 1.5)
    return rows


def startup(work: Path, repeat: int) -> list[Row]:
    steps_file(work / "big.yaml", 1000, "type: shell, config: {run: 'echo hi'}, needs: []")
    timings = interleaved(
        {
            "python -c pass": [PYTHON, "-c", "pass"],
            "wfe --version": [wfe(), "--version"],
            "import yaml, jinja2, click, pydantic": [
                PYTHON,
                "-c",
                "import yaml, jinja2, click, pydantic",
            ],
            "wfe validate (1,000 steps)": [wfe(), "validate", "big.yaml"],
        },
        work,
        repeat,
    )
    python = timings["python -c pass"].seconds
    imports = timings["import yaml, jinja2, click, pydantic"].seconds
    version = timings["wfe --version"].seconds
    validate = timings["wfe validate (1,000 steps)"].seconds
    rows = [
        _row(
            "start-up", "python -c pass", python, None, None, timings["python -c pass"].peak_rss_mb
        ),
        _row(
            "start-up",
            "wfe --version",
            version,
            "python -c pass",
            python,
            timings["wfe --version"].peak_rss_mb,
        ),
        _row(
            "start-up",
            "import yaml, jinja2, click, pydantic",
            imports,
            None,
            None,
            timings["import yaml, jinja2, click, pydantic"].peak_rss_mb,
        ),
        _row(
            "start-up",
            "wfe validate (1,000 steps)",
            validate,
            "the four imports",
            imports,
            timings["wfe validate (1,000 steps)"].peak_rss_mb,
        ),
    ]
    _target(rows, "wfe --version", "≤ 5× python -c pass", version / python <= 5)
    _target(rows, "wfe validate (1,000 steps)", "≤ 2× the imports", validate / imports <= 2)
    return rows


def javascript(work: Path, repeat: int) -> list[Row]:
    js = "type: javascript, config: {script: 'output(\"x\", 1)'}"
    steps_file(work / "js.yaml", 100, js)
    steps_file(work / "sh.yaml", 100, SH_TRUE)
    args = [wfe(), "run", "--plain", "-q", *store_flag()]
    timings = interleaved(
        {"wfe 100 shell true": [*args, "sh.yaml"], "wfe 100 javascript": [*args, "js.yaml"]},
        work,
        repeat,
    )
    base = timings["wfe 100 shell true"].seconds
    rows = [
        _row("100 JavaScript steps", name, t.seconds, "100 shell steps", base, t.peak_rss_mb)
        for name, t in timings.items()
    ]
    js_time = timings["wfe 100 javascript"].seconds
    _target(rows, "wfe 100 javascript", "≤ 3× 100 shell steps", js_time / base <= 3)
    return rows


def big_output(work: Path, repeat: int) -> list[Row]:
    data = work / "200mb.txt"
    if not data.exists():
        line = (b"0123456789abcdefghijklmnopqrstuvwxyz" * 3)[:76] + b"\n"
        chunk = line * 13_000
        with data.open("wb") as handle:
            while handle.tell() < 200_000_000:
                handle.write(chunk)
    size_mb = data.stat().st_size / 1e6
    (work / "out.yaml").write_text(
        "workflow:\n  id: out\n  steps:\n    - name: print\n      type: shell\n"
        "      config: {shell: sh, run: 'cat 200mb.txt; echo \"##wfe[output done=true]\"'}\n"
    )
    (work / "empty.yaml").write_text(
        "workflow:\n  id: out\n  steps:\n    - {name: print, type: shell,"
        " config: {shell: sh, run: 'echo \"##wfe[output done=true]\"'}}\n"
    )
    args = [wfe(), "run", "--plain", "-q", *store_flag()]
    timings = interleaved(
        {
            "cat | cat > /dev/null": ["sh", "-c", "cat 200mb.txt | cat > /dev/null"],
            "sh -c true": ["sh", "-c", "true"],
            "wfe step printing nothing": [*args, "empty.yaml"],
            "wfe step printing 200 MB": [*args, "out.yaml"],
        },
        work,
        repeat,
    )
    cat_seconds = timings["cat | cat > /dev/null"].seconds - timings["sh -c true"].seconds
    # wfe's share can come close to the noise of its start-up: never zero or less.
    wfe_seconds = max(
        timings["wfe step printing 200 MB"].seconds - timings["wfe step printing nothing"].seconds,
        0.001,
    )
    cat_rate, wfe_rate = size_mb / cat_seconds, size_mb / wfe_seconds
    peak = timings["wfe step printing 200 MB"].peak_rss_mb
    rows = [
        Row(
            "200 MB output",
            "cat | cat",
            cat_seconds,
            None,
            None,
            timings["cat | cat > /dev/null"].peak_rss_mb,
            note=f"{cat_rate:.0f} MB/s",
        ),
        Row(
            "200 MB output",
            "wfe (start-up subtracted)",
            wfe_seconds,
            "cat | cat",
            cat_rate / wfe_rate,
            peak,
            note=f"{wfe_rate:.0f} MB/s; throughput {wfe_rate / cat_rate:.2f}× cat",
        ),
    ]
    _target(
        rows,
        "wfe (start-up subtracted)",
        "RSS ≤ 150 MB, throughput ≥ 0.5× cat",
        peak <= 150 and wfe_rate >= 0.5 * cat_rate,
    )
    return rows


def scaling(work: Path, repeat: int) -> list[Row]:
    args = [wfe(), "run", "--plain", "-q"]
    sizes = (100, 1000, 5000)
    seconds = {}
    for count in sizes:
        steps_file(work / f"scale{count}.yaml", count, SH_TRUE)
        seconds[count] = median_of([*args, f"scale{count}.yaml"], work, repeat).seconds
    early = (seconds[1000] - seconds[100]) / 900
    late = (seconds[5000] - seconds[1000]) / 4000
    rows = [
        Row(
            "scaling",
            f"{count} steps",
            seconds[count],
            None,
            None,
            0,
            note=f"{seconds[count] / count * 1000:.2f} ms/step",
        )
        for count in sizes
    ]
    rows.append(
        Row(
            "scaling",
            "slope 1,000→5,000 vs 100→1,000",
            late,
            "100→1,000",
            late / early,
            0,
            note=f"{early * 1000:.2f} → {late * 1000:.2f} ms per extra step",
        )
    )
    _target(rows, "slope 1,000→5,000 vs 100→1,000", "flat (≤ 1.25×)", late / early <= 1.25)
    return rows


SCENARIOS: dict[str, Callable[[Path, int], list[Row]]] = {
    "sequential": sequential,
    "parallel": parallel,
    "startup": startup,
    "javascript": javascript,
    "output": big_output,
    "scaling": scaling,
}


def _row(
    scenario: str,
    subject: str,
    seconds: float,
    baseline: str | None,
    base: float | None,
    rss: float,
) -> Row:
    ratio = seconds / base if base else None
    return Row(scenario, subject, seconds, baseline, ratio, rss)


def _target(rows: list[Row], subject: str, target: str, ok: bool, note: str = "") -> None:
    for row in rows:
        if row.subject == subject:
            row.target, row.ok = target, ok
            row.note = note or row.note
