"""`wfe preflight`: run only the preflight steps of a workflow and print what they found."""

from __future__ import annotations

import asyncio
import sys

import click

from wfe_yaml.cli.common import config_options, fail, file_argument, load_plan
from wfe_yaml.errors import ConfigError
from wfe_yaml.plan import Plan, PlanStep, PlanWorkflow, walk_steps


@click.command("preflight")
@file_argument
@click.argument("workflow", required=False)
@config_options
def command(
    file: str | None, workflow: str | None, assignments: tuple[str, ...], config_file: str | None
) -> None:
    """Check the tools WORKFLOW needs (its `type: preflight` steps and those of the workflows
    it calls) without running anything else. Exits 1 when an essential tool is missing."""
    plan = load_plan(file, assignments, config_file)
    try:
        target = plan.workflow(workflow)
    except ConfigError as error:
        fail(error)
    steps = preflight_steps(plan, target)
    if not steps:
        click.echo(f"workflow '{target.id}' has no preflight step")
        return
    failures = asyncio.run(_check_all(steps))
    sys.exit(1 if failures else 0)


def preflight_steps(plan: Plan, root: PlanWorkflow) -> list[tuple[PlanWorkflow, PlanStep]]:
    """Preflight steps of the workflow and of every workflow it calls, each once."""
    found: list[tuple[PlanWorkflow, PlanStep]] = []
    seen: set[str] = set()
    pending = [root]
    while pending:
        workflow = pending.pop(0)
        if workflow.id in seen:
            continue
        seen.add(workflow.id)
        for step in walk_steps(workflow.steps + workflow.ensure):
            if step.type == "preflight":
                found.append((workflow, step))
        pending.extend(
            plan.workflows[name] for name in sorted(workflow.calls()) if name in plan.workflows
        )
    return found


async def _check_all(steps: list[tuple[PlanWorkflow, PlanStep]]) -> int:
    from executors.base import StepRequest, registry

    failures = 0
    executor = registry.executor("preflight")
    for workflow, step in steps:
        click.echo(f"{workflow.id}/{step.name}:")
        request = StepRequest(
            run_id="preflight",
            workflow=workflow.id,
            path=f"{workflow.id}/{step.name}",
            name=step.name,
            type="preflight",
            config=step.static_config or dict(step.config),
            working_dir=workflow.workspace,
            workspace=workflow.workspace,
            log=lambda stream, lines: click.echo("\n".join(f"  {line}" for line in lines)),
        )
        result = await executor.run(request)
        if result.error:
            click.echo(f"  ✗ {result.error}")
            failures += 1
    return failures
