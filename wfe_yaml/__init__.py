"""wfe-yaml: run a CI pipeline written in YAML, locally or on workers.

plan = wfe_yaml.load("workflows.yaml")
result = wfe_yaml.Engine().run(plan)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from wfe_yaml.engine import Engine, RunResult
    from wfe_yaml.errors import ConfigError
    from wfe_yaml.loader import load

__all__ = ["ConfigError", "Engine", "RunResult", "__version__", "load"]

_LAZY = {
    "load": "wfe_yaml.loader",
    "Engine": "wfe_yaml.engine",
    "RunResult": "wfe_yaml.engine",
    "ConfigError": "wfe_yaml.errors",
}


def __getattr__(name: str) -> Any:
    # Lazy so that `wfe --version` does not pay for pydantic and jinja2.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'wfe_yaml' has no attribute {name!r}")
