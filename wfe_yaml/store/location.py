"""Where the store is: `--store`, else `WFE_STORE`, else `.wfe/wfe.db` (DESIGN §6)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from wfe_yaml.errors import ConfigError
from wfe_yaml.store.store import Store

STORE_ENV = "WFE_STORE"
DEFAULT_DIR = ".wfe"
DEFAULT_NAME = "wfe.db"


def run_store_path(
    workflows_file: Path, option: str | None, environ: Mapping[str, str] | None = None
) -> Path:
    """The store a run writes to: by default beside its workflows file."""
    chosen = _chosen(option, environ)
    return (
        chosen
        if chosen is not None
        else workflows_file.absolute().parent / DEFAULT_DIR / DEFAULT_NAME
    )


def history_store_path(option: str | None, environ: Mapping[str, str] | None = None) -> Path:
    """The store the history verbs read: by default the one of the current directory."""
    chosen = _chosen(option, environ)
    return chosen if chosen is not None else Path.cwd() / DEFAULT_DIR / DEFAULT_NAME


def open_history(option: str | None) -> Store:
    """The existing store the history verbs read (they never create one)."""
    path = history_store_path(option)
    if not path.is_file():
        raise ConfigError(
            f"no run history at {path}",
            hint="run a workflow here first, or point at a store with --store or WFE_STORE",
        )
    return Store(path)


def _chosen(option: str | None, environ: Mapping[str, str] | None) -> Path | None:
    environ = os.environ if environ is None else environ
    value = option or environ.get(STORE_ENV)
    return Path(value).expanduser().absolute() if value else None
