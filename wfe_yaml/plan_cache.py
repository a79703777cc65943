"""Compiled plans kept between runs: `wfe run` of unchanged files skips parsing, validating
and compiling them (and importing the code that does it).

An entry is found by a key over what a plan is made of besides the files' text: wfe's own
code, the workflows file's path, the `-c` assignments, the config file and `WFE_CONFIG`. It
holds the plan and the content hash the store records for a run's files (the workflows file
and its includes), and it is used only while those files still have that content. A file that does
not load is never cached, so its errors show on every run. Anything wrong with an entry
(unreadable, written by other code, a file changed) means loading the files afresh.

Entries live in `$WFE_PLAN_CACHE` (`off` turns the cache off), else in
`$XDG_CACHE_HOME/wfe-yaml/plans` (`~/.cache/...`), readable by their owner only: a plan holds
the values of `((variables))`. An entry that someone else could have written is ignored, as
reading one runs what it says.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import pickle
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import wfe_yaml
from wfe_yaml.plan import Plan
from wfe_yaml.store.sources import snapshot

CACHE_ENV = "WFE_PLAN_CACHE"
OFF_VALUES = ("off", "0", "false", "no")
ENTRIES_KEPT = 64
"""The newest entries kept: one per file and set of `-c` values, config file and wfe version
(an edited file replaces its entry)."""

_CODE_PACKAGES = ("wfe_yaml", "executors")


def cached_load(
    path: Path,
    assignments: Iterable[str],
    config_file: str | None,
    load: Callable[[], Plan],
    environ: Mapping[str, str] = os.environ,
) -> Plan:
    """The plan `load()` would return, from the cache when its files have not changed."""
    directory = cache_directory(environ)
    if directory is None:
        return load()
    try:
        key = _key(path, list(assignments), config_file, environ.get("WFE_CONFIG"))
    except OSError:
        return load()  # a file it names is missing: loading reports that
    entry = directory / f"{key}.plan"
    plan = _read(entry)
    if plan is None:
        plan = load()
        _write(directory, entry, plan)
    return plan


def cache_directory(environ: Mapping[str, str] = os.environ) -> Path | None:
    """Where entries live; None when the cache is off."""
    chosen = environ.get(CACHE_ENV, "").strip()
    if chosen.lower() in OFF_VALUES:
        return None
    if chosen:
        return Path(chosen).expanduser()
    base = environ.get("XDG_CACHE_HOME", "").strip() or os.path.expanduser("~/.cache")
    return Path(base) / "wfe-yaml" / "plans"


def _key(
    path: Path, assignments: list[str], config_file: str | None, config_env: str | None
) -> str:
    config = None
    if config_file is not None:
        config = (os.path.realpath(config_file), Path(config_file).read_bytes())
    parts = (
        _code_fingerprint(),
        str(path),
        os.path.realpath(path),
        assignments,
        config,
        config_env,
    )
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def _code_fingerprint() -> tuple[object, ...]:
    """What the plan's classes and the loader's rules depend on: Python, pydantic, wfe."""
    files: list[tuple[str, int, int]] = []
    for package in _CODE_PACKAGES:
        spec = importlib.util.find_spec(package)
        for location in (spec.submodule_search_locations or []) if spec else []:
            files.extend(_sources_under(location))
    pydantic = importlib.util.find_spec("pydantic")
    origin = pydantic.origin if pydantic is not None else None
    stamp = os.stat(origin).st_mtime_ns if origin else None
    return (sys.version, wfe_yaml.__version__, origin, stamp, sorted(files))


def _sources_under(directory: str) -> list[tuple[str, int, int]]:
    found: list[tuple[str, int, int]] = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.endswith(".py"):
                stat = entry.stat()
                found.append((entry.path, stat.st_mtime_ns, stat.st_size))
            elif entry.is_dir() and not entry.name.startswith(("_", ".")):
                found.extend(_sources_under(entry.path))
    return found


def _read(entry: Path) -> Plan | None:
    try:
        with open(entry, "rb") as stream:
            if not _private(os.fstat(stream.fileno())):
                return None
            content_hash, plan = pickle.load(stream)
        unchanged = _content_hash(plan) == content_hash
    except Exception:  # missing, damaged, or from other code: the files are loaded afresh
        return None
    return plan if unchanged and isinstance(plan, Plan) else None


def _content_hash(plan: Plan) -> str:
    return snapshot(plan.source, plan.files)[0]


def _private(status: os.stat_result) -> bool:
    """Written by this user and by nobody else: unpickling runs what an entry says."""
    return status.st_uid == os.getuid() and not status.st_mode & 0o022


def _write(directory: Path, entry: Path, plan: Plan) -> None:
    """Keep the plan; a cache that cannot be written is only slower, never an error."""
    temporary = None
    try:
        data = pickle.dumps((_content_hash(plan), plan), protocol=pickle.HIGHEST_PROTOCOL)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with open(descriptor, "wb") as stream:
            stream.write(data)
        os.replace(temporary, entry)
        temporary = None
        _prune(directory)
    except Exception:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)


def _prune(directory: Path) -> None:
    entries = sorted(directory.glob("*.plan"), key=_modified, reverse=True)
    for stale in entries[ENTRIES_KEPT:]:
        with contextlib.suppress(OSError):
            stale.unlink()


def _modified(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0
