"""The benchmark harness as its user sees it: the rows it reports and its `--check` verdict.
No timing is asserted here; only that every figure is there and that the verdict follows the
rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_benchmarks(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def report() -> dict[str, object]:
    done = run_benchmarks("--only", "sequential", "startup", "--repeat", "1", "--json", "--check")
    assert done.returncode in (0, 1), done.stderr
    data: dict[str, object] = json.loads(done.stdout)
    data["exit"] = done.returncode
    return data


def rows(report: dict[str, object]) -> dict[str, dict[str, object]]:
    found = report["rows"]
    assert isinstance(found, list)
    return {f"{row['scenario']}/{row['subject']}": row for row in found}


def test_every_subject_of_the_scenarios_is_timed_or_named_missing(
    report: dict[str, object],
) -> None:
    by_subject = rows(report)
    for subject in (
        "500 sequential steps/bash loop of sh -c true",
        "500 sequential steps/Python floor: posix_spawn loop",
        "500 sequential steps/wfe (store on)",
        "500 sequential steps/wfe --no-store",
        "500 sequential steps/wfe, plan cache off",
        "start-up/python -c pass",
        "start-up/wfe --version",
        "start-up/wfe validate (1,000 steps)",
    ):
        assert by_subject[subject]["seconds"] > 0, subject
    for peer in ("task", "just"):
        row = by_subject[f"500 sequential steps/{peer}"]
        assert row["seconds"] > 0 or row["note"] == "not installed"


def test_targets_carry_a_verdict_and_the_exit_follows_them(report: dict[str, object]) -> None:
    by_subject = rows(report)
    targets = [row for row in by_subject.values() if row["target"]]
    assert {row["target"] for row in targets} >= {
        "≤ 1.5× bash loop",
        "store costs ≤ 15%",
        "≤ 5× python -c pass",
        "≤ 2× the imports",
    }
    assert all(isinstance(row["ok"], bool) for row in targets)
    missed = any(row["ok"] is False for row in targets)
    assert report["exit"] == (1 if missed else 0)


def test_ratios_are_against_the_named_baseline(report: dict[str, object]) -> None:
    by_subject = rows(report)
    bash = by_subject["500 sequential steps/bash loop of sh -c true"]["seconds"]
    wfe = by_subject["500 sequential steps/wfe (store on)"]
    assert wfe["baseline"] == "bash loop"
    assert wfe["ratio"] == pytest.approx(wfe["seconds"] / bash)


def test_the_table_names_every_column() -> None:
    done = run_benchmarks("--only", "startup", "--repeat", "1")
    assert done.returncode == 0, done.stderr
    header = done.stdout.splitlines()[0].split()
    assert header == [
        "scenario",
        "subject",
        "seconds",
        "vs",
        "ratio",
        "peak",
        "MB",
        "target",
        "ok",
        "note",
    ]
    assert "wfe --version" in done.stdout
