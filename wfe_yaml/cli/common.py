"""What several verbs share: finding the file, loading it, and reporting config errors."""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

if TYPE_CHECKING:
    from wfe_yaml.errors import ConfigError
    from wfe_yaml.plan import Plan

F = TypeVar("F", bound=Callable[..., Any])
EXIT_CONFIG = 2

freeze_after_loading = False
"""Set by the `wfe` command itself (not when the CLI is called in-process, as tests do)."""


@contextlib.contextmanager
def long_lived_objects() -> Iterator[None]:
    """Loading a file creates objects that live until `wfe` exits: imported modules, pydantic
    validators, the plan. The cyclic garbage collector would walk them again and again (it
    took 35 ms of a 0.3 s `wfe validate` of 1,000 steps, and 45 ms of a 500-step run). It
    is paused while they are made, and in the `wfe` process they are then frozen out of its
    way; garbage made afterwards is collected as usual."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze_after_loading:
            gc.freeze()
        if enabled:
            gc.enable()


def file_argument(function: F) -> F:
    return click.argument("file", required=False, type=click.Path(dir_okay=True))(function)


def config_options(function: F) -> F:
    """`-c key=value` and `--config-file`: values for `((name))` interpolation."""
    function = click.option(
        "-c",
        "--config",
        "assignments",
        multiple=True,
        metavar="KEY=VALUE",
        help="Set a ((variable)); the value is typed like an output (true, 3, 1.5, text).",
    )(function)
    return click.option(
        "--config-file",
        type=click.Path(dir_okay=False),
        help="YAML or JSON file of ((variable)) values.",
    )(function)


def resolve_file(file: str | None) -> Path:
    if file:
        return Path(file)
    from wfe_yaml.errors import ConfigError
    from wfe_yaml.loader import find_default_file

    try:
        return find_default_file()
    except ConfigError as error:
        fail(error)


def load_plan(
    file: str | None,
    assignments: Iterable[str] = (),
    config_file: str | None = None,
    *,
    cached: bool = False,
) -> Plan:
    """Load the plan or print every config error and exit 2. `cached`: from the plan cache
    when the files are unchanged (`wfe run`; the checking verbs always read the files)."""
    with long_lived_objects():
        return _load_plan(file, list(assignments), config_file, cached)


def _load_plan(
    file: str | None, assignments: list[str], config_file: str | None, cached: bool
) -> Plan:
    from wfe_yaml.errors import ConfigError
    from wfe_yaml.plan_cache import cached_load

    path = resolve_file(file)

    def load() -> Plan:
        # Imported here: a plan from the cache needs none of the loading code.
        from wfe_yaml.interpolate import parse_assignment
        from wfe_yaml.loader import load

        pairs = [parse_assignment(text) for text in assignments]
        return load(path, config_file=config_file, assignments=pairs)

    try:
        plan = cached_load(path, assignments, config_file, load) if cached else load()
    except ConfigError as error:
        fail(error)
    show_warnings(plan.warnings)
    return plan


def show_warnings(warnings: Iterable[ConfigError]) -> None:
    for warning in warnings:
        text = warning.format().replace("error: ", "warning: ", 1)
        click.echo(style(text, "yellow"), err=True)


def fail(error: ConfigError) -> NoReturn:
    errors = error.errors
    for item in errors:
        click.echo(style(item.format(), "red"), err=True)
    if len(errors) > 1:
        click.echo(f"{len(errors)} errors", err=True)
    sys.exit(EXIT_CONFIG)


def style(text: str, colour: str) -> str:
    import os

    if os.environ.get("NO_COLOR") is not None or not sys.stderr.isatty():
        return text
    return click.style(text, fg=colour)


def secret_options(function: Any) -> Any:
    """`--secret NAME=VALUE` and `--secret-file FILE`: values of the file's `secrets:`."""
    function = click.option(
        "--secret-file",
        "secret_files",
        multiple=True,
        type=click.Path(dir_okay=False),
        help="A dotenv file (NAME=value lines) of secret values.",
    )(function)
    return click.option(
        "--secret",
        "secret_pairs",
        multiple=True,
        metavar="NAME=VALUE",
        help="A secret's value (beats --secret-file, which beats the environment).",
    )(function)


def read_secrets(plan: Any, pairs: tuple[str, ...], files: tuple[str, ...]) -> dict[str, str]:
    """Every declared secret's value, or exit 2 naming the missing ones before anything runs."""
    import os

    from wfe_yaml.errors import ConfigError
    from wfe_yaml.secrets import load_secrets

    try:
        return load_secrets(plan.secrets, os.environ, pairs, files)
    except ConfigError as error:
        fail(error)


def broker_options(function: Any) -> Any:
    """`--broker URL` (or WFE_BROKER) and `--distribute`: steps on Celery workers."""
    function = click.option(
        "--distribute", is_flag=True, help="Send every step to the workers (--broker)."
    )(function)
    return click.option(
        "--broker",
        envvar="WFE_BROKER",
        metavar="URL",
        help="Redis URL of a Celery broker: steps with `runs_on:` go to `wfe worker`s.",
    )(function)
