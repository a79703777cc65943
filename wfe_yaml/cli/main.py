"""The `wfe` command. Verbs live in their own modules and are imported only when used."""

from __future__ import annotations

import importlib
from typing import Any

import click

from wfe_yaml import __version__

VERBS = {
    "run": ("wfe_yaml.cli.run", "Run a workflow."),
    "validate": ("wfe_yaml.cli.validate", "Check a workflows file and report every mistake."),
    "plan": ("wfe_yaml.cli.plan", "Show the resolved plan without running it."),
    "graph": ("wfe_yaml.cli.graph", "Draw a workflow's steps as Mermaid or DOT."),
    "preflight": ("wfe_yaml.cli.preflight", "Run only the preflight checks of a workflow."),
    "schema": ("wfe_yaml.cli.schema", "Print the JSON Schema of the format, for editors."),
    "runs": ("wfe_yaml.cli.runs", "List recorded runs, newest first."),
    "show": ("wfe_yaml.cli.show", "Show a recorded run: steps, outputs, skip reasons."),
    "logs": ("wfe_yaml.cli.logs", "Print (or follow) the logs of a run's steps."),
    "resume": ("wfe_yaml.cli.resume", "Continue a run that did not succeed."),
    "cancel": ("wfe_yaml.cli.cancel", "Cancel a running run (its ensure hooks still run)."),
    "gc": ("wfe_yaml.cli.gc", "Delete old runs and their logs."),
    "worker": ("wfe_yaml.cli.worker", "Run steps sent by `wfe run --broker` (Celery worker)."),
    "workers": ("wfe_yaml.cli.workers", "List live workers and their queues."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(VERBS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in VERBS:
            return None
        module = importlib.import_module(VERBS[name][0])
        command: click.Command = module.command
        return command

    def format_commands(self, ctx: click.Context, formatter: Any) -> None:
        rows = [(name, help_text) for name, (_, help_text) in VERBS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="wfe")
def main() -> None:
    """Run your whole CI locally from one workflows.yaml.

    \b
    wfe run                  run workflows.yaml in this directory
    wfe validate ci.yaml     check a file, report every mistake with file:line
    wfe plan                 show what would run
    """


def entry() -> None:
    """The `wfe` executable."""
    from wfe_yaml.cli import common

    common.freeze_after_loading = True
    main()
