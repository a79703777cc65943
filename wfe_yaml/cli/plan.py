"""`wfe plan`: the resolved plan as a readable tree, or JSON for machines."""

from __future__ import annotations

import json
from typing import Any

import click

from wfe_yaml.cli.common import config_options, fail, file_argument, load_plan
from wfe_yaml.durations import format_duration
from wfe_yaml.errors import ConfigError
from wfe_yaml.plan import HOOK_KINDS, Plan, PlanStep, PlanWorkflow


@click.command("plan")
@file_argument
@click.argument("workflow", required=False)
@config_options
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def command(
    file: str | None,
    workflow: str | None,
    assignments: tuple[str, ...],
    config_file: str | None,
    as_json: bool,
) -> None:
    """Show what `wfe run` would do: workflows, steps, order, conditions, configs."""
    plan = load_plan(file, assignments, config_file)
    try:
        chosen = [plan.workflow(workflow)] if workflow else list(plan.workflows.values())
    except ConfigError as error:
        fail(error)
    if as_json:
        click.echo(json.dumps(plan_to_dict(plan, chosen), indent=2, default=str))
        return
    for item in chosen:
        click.echo("\n".join(render_workflow(item)))


def render_workflow(workflow: PlanWorkflow) -> list[str]:
    title = f"workflow {workflow.id} (v{workflow.version})"
    if workflow.name:
        title += f" — {workflow.name}"
    lines = [title]
    for label, schema in (("inputs", workflow.inputs), ("outputs", workflow.outputs)):
        if schema:
            lines.append(f"  {label}: " + ", ".join(f"{k}: {v}" for k, v in schema.items()))
    if workflow.requires:
        lines.append(f"  requires: {', '.join(workflow.requires)}")
    if workflow.timeout is not None:
        lines.append(f"  timeout: {format_duration(workflow.timeout)}")
    if workflow.env:
        lines.append(f"  env: {_short(dict(workflow.env))}")
    for step in workflow.steps:
        lines.extend(render_step(step, "  "))
    for hook in workflow.ensure:
        lines.extend(render_step(hook, "  ", label="ensure "))
    return lines


def render_step(step: PlanStep, indent: str, label: str = "") -> list[str]:
    kind = "parallel" if step.is_parallel else step.type
    head = f"{indent}- {label}{step.name} [{kind}]"
    details = []
    if step.needs:
        details.append(f"after {', '.join(step.needs)}")
    if step.when is not None:
        from wfe_yaml.conditions import describe

        details.append(f"when {describe(step.when)}")
    if step.requires:
        details.append(f"requires {', '.join(step.requires)}")
    if step.timeout is not None:
        details.append(f"timeout {format_duration(step.timeout)}")
    if step.error_behavior.type != "terminate":
        details.append(f"on error {step.error_behavior.type}")
    lines = [head + (f"  ({'; '.join(details)})" if details else "")]
    for key, value in step.config.items():
        lines.append(f"{indent}    {key}: {_short(value)}")
    for child in step.children:
        lines.extend(render_step(child, indent + "    "))
    for kind_name in HOOK_KINDS:
        for hook in step.hooks(kind_name):
            lines.extend(render_step(hook, indent + "    ", label=f"{kind_name} "))
    return lines


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    first, *rest = text.strip().splitlines() or [""]
    more = f"{len(rest)} line{'s' if len(rest) > 1 else ''}"
    return first + (f" … (+{more})" if rest else "")


def plan_to_dict(plan: Plan, workflows: list[PlanWorkflow]) -> dict[str, Any]:
    return {
        "source": str(plan.source),
        "entry": plan.entry,
        "workflows": [
            {
                "id": wf.id,
                "version": wf.version,
                "name": wf.name,
                "inputs": {k: str(v) for k, v in wf.inputs.items()},
                "outputs": {k: str(v) for k, v in wf.outputs.items()},
                "requires": list(wf.requires),
                "timeout": _duration(wf.timeout),
                "env": dict(wf.env),
                "steps": [step_to_dict(step) for step in wf.steps],
                "ensure": [step_to_dict(step) for step in wf.ensure],
            }
            for wf in workflows
        ],
    }


def step_to_dict(step: PlanStep) -> dict[str, Any]:
    item: dict[str, Any] = {
        "name": step.name,
        "type": step.type or "parallel",
        "needs": list(step.needs),
        "config": dict(step.config),
        "when": step.when.model_dump(exclude_unset=True) if step.when is not None else None,
        "requires": list(step.requires),
        "matrix": dict(step.matrix) if step.matrix else None,
        "timeout": _duration(step.timeout),
        "error_behavior": step.error_behavior.model_dump(mode="json"),
        "env": dict(step.env),
        "secrets": list(step.secrets),
        "outputs": [ref.model_dump(exclude_none=True) for ref in step.outputs],
        "runs_on": list(step.runs_on),
    }
    if step.children:
        item["parallel"] = [step_to_dict(child) for child in step.children]
    for kind in HOOK_KINDS:
        if step.hooks(kind):
            item[kind] = [step_to_dict(hook) for hook in step.hooks(kind)]
    return item


def _duration(seconds: float | None) -> str | None:
    """A duration the way the format writes it, as in `error_behavior` (`1500ms`)."""
    return None if seconds is None else f"{round(seconds * 1000)}ms"
