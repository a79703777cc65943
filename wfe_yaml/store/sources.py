"""The text of a run's workflows files: hashed to notice edits, kept to show what changed."""

from __future__ import annotations

import difflib
import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

DIFF_LINES = 40


def snapshot(main: Path, files: Iterable[Path]) -> tuple[str, dict[str, str]]:
    """(content hash, {name: text}) of the main file and its includes, names relative to the
    main file's directory."""
    base = main.resolve().parent
    digest = hashlib.sha256()
    texts: dict[str, str] = {}
    for file in sorted({Path(f).resolve() for f in files} | {main.resolve()}):
        name = _relative(file, base)
        data = file.read_bytes()
        digest.update(name.encode() + b"\0" + len(data).to_bytes(8, "big") + data)
        texts[name] = data.decode("utf-8", errors="replace")
    return digest.hexdigest(), texts


def _relative(file: Path, base: Path) -> str:
    try:
        return str(file.relative_to(base))
    except ValueError:
        return os.path.relpath(file, base)


def describe_changes(
    old: Mapping[str, str], new: Mapping[str, str], limit: int = DIFF_LINES
) -> list[str]:
    """A unified diff of every changed file, cut to `limit` lines."""
    lines: list[str] = []
    for name in sorted(set(old) | set(new)):
        before, after = old.get(name), new.get(name)
        if before == after:
            continue
        lines.extend(
            line.rstrip("\n")
            for line in difflib.unified_diff(
                (before or "").splitlines(keepends=True),
                (after or "").splitlines(keepends=True),
                fromfile=f"{name} (recorded)" if before is not None else "/dev/null",
                tofile=f"{name} (now)" if after is not None else "/dev/null",
                n=1,
            )
        )
    if len(lines) > limit:
        hidden = len(lines) - limit
        lines = [*lines[:limit], f"... ({hidden} more diff lines)"]
    return lines
