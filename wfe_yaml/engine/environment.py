"""A step's environment, in DESIGN §4.1's rising precedence."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

PROTECTED = frozenset(
    {
        "PATH",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "DYLD_LIBRARY_PATH",
        "HOME",
        "SHELL",
        "USER",
        "LOGNAME",
        "TERM",
    }
)
"""Variables a workflow's data can never set: they would let data hijack the process."""


def data_variables(data: Mapping[str, Any]) -> dict[str, str]:
    """Every top-level data key as an UPPER_CASE variable: strings raw, others as JSON."""
    variables = {}
    for key, value in data.items():
        name = key.upper()
        if name in PROTECTED or not _usable_name(name):
            continue
        variables[name] = value if isinstance(value, str) else json.dumps(value)
    return variables


def step_environment(
    data: Mapping[str, Any],
    secrets: Mapping[str, str],
    workflow_env: Mapping[str, str],
    step_env: Mapping[str, str],
    standard: Mapping[str, str],
) -> dict[str, str]:
    """What a step adds on top of the runner's own environment (minus declared secrets)."""
    env = data_variables(data)
    env.update(secrets)
    env.update(workflow_env)
    env.update(step_env)
    env.update(standard)
    return env


def _usable_name(name: str) -> bool:
    return bool(name) and "=" not in name and "\0" not in name
