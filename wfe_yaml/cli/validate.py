"""`wfe validate`: check a workflows file and report every mistake at once."""

from __future__ import annotations

import click

from wfe_yaml.cli.common import config_options, file_argument, load_plan


@click.command("validate")
@file_argument
@config_options
def command(file: str | None, assignments: tuple[str, ...], config_file: str | None) -> None:
    """Check FILE (default: workflows.yaml here) without running anything.

    Prints every mistake as file:line:col and exits 2 when there is one.
    """
    plan = load_plan(file, assignments, config_file)
    steps = sum(len(workflow.steps) for workflow in plan.workflows.values())
    names = ", ".join(plan.workflows)
    workflows = _count(len(plan.workflows), "workflow")
    click.echo(f"{plan.source.name}: ok ({workflows}: {names}; {_count(steps, 'step')})")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
