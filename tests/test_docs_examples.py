"""Every ```yaml example of the guides runs as documented.

An example is a complete workflows file. Comment lines steer the test:
`# file: NAME` writes the example under that name (an example that is not `workflows.yaml`
waits for the one that is), `# args: ...` adds `wfe run` arguments, `# expect: exit N` is
the documented exit code (default 0).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
GUIDES = ["composition.md", "preflight.md", "javascript.md", "history.md"]
FENCE = re.compile(r"```yaml\n(.*?)```", re.DOTALL)


def examples(guide: str) -> list[tuple[str, dict[str, str], list[str], int]]:
    """(id, files, extra args, expected exit) for each runnable example of a guide."""
    found = []
    pending: dict[str, str] = {}
    for index, text in enumerate(FENCE.findall((DOCS / guide).read_text())):
        name = _directive(text, "file") or "workflows.yaml"
        pending[name] = text
        if name != "workflows.yaml":
            continue
        args = shlex.split(_directive(text, "args") or "")
        expected = int((_directive(text, "expect") or "exit 0").split()[-1])
        found.append((f"{guide}#{index}", pending, args, expected))
        pending = {}
    return found


def _directive(text: str, key: str) -> str | None:
    match = re.search(rf"^# {key}: (.*)$", text, re.MULTILINE)
    return match.group(1).strip() if match else None


ALL = [example for guide in GUIDES for example in examples(guide)]


@pytest.mark.parametrize(
    ("files", "args", "expected"), [e[1:] for e in ALL], ids=[e[0] for e in ALL]
)
def test_guide_example_runs_as_documented(
    tmp_path: Path, files: dict[str, str], args: list[str], expected: int
) -> None:
    for name, text in files.items():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    completed = subprocess.run(
        [sys.executable, "-m", "wfe_yaml", "run", "--plain", "--no-store", *args]
        if _has_store_option()
        else [sys.executable, "-m", "wfe_yaml", "run", "--plain", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == expected, completed.stdout + completed.stderr


def test_every_guide_has_examples() -> None:
    for guide in GUIDES:
        assert examples(guide), f"{guide} has no runnable example"


def _has_store_option() -> bool:
    help_text = subprocess.run(
        [sys.executable, "-m", "wfe_yaml", "run", "--help"], capture_output=True, text=True
    ).stdout
    return "--no-store" in help_text
