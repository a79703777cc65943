"""Every ```yaml example of docs/running.md runs with `wfe run` as the guide says.

An example is a complete workflows file. Comment lines inside it steer the test: `# args: ...`
adds `wfe run` arguments (split like a shell would), `# expect: exit N` is the documented exit
code (default 0).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "running.md"
FENCE = re.compile(r"^```yaml\n(.*?)^```", re.DOTALL | re.MULTILINE)


def directive(text: str, key: str) -> str | None:
    match = re.search(rf"^# {key}: (.*)$", text, re.MULTILINE)
    return match.group(1).strip() if match else None


def examples() -> list[Any]:
    found = []
    for index, text in enumerate(FENCE.findall(GUIDE.read_text())):
        args = shlex.split(directive(text, "args") or "")
        expected = int((directive(text, "expect") or "exit 0").removeprefix("exit "))
        found.append(pytest.param(text, args, expected, id=f"running.md#{index}"))
    return found


@pytest.mark.parametrize(("text", "args", "expected"), examples())
def test_example_runs_as_documented(
    run_wfe: Any, text: str, args: list[str], expected: int
) -> None:
    code, stdout, stderr = run_wfe(text, "run", "--plain", *args)
    assert code == expected, stdout + stderr


def test_the_guide_covers_each_topic_with_examples() -> None:
    text = GUIDE.read_text()
    headings = re.findall(r"^## (.*)$", text, re.MULTILINE)
    assert headings == [
        "Order",
        "Parallelism",
        "Conditions",
        "Failure handling",
        "Outputs and data",
        "Reports and exit codes",
    ]
    assert len(examples()) >= 10
    assert sum(directive(e.values[0], "expect") is not None for e in examples()) >= 3
