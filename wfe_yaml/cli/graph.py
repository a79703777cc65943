"""`wfe graph`: a workflow's steps and their order as Mermaid or DOT."""

from __future__ import annotations

import click

from wfe_yaml.cli.common import config_options, fail, file_argument, load_plan
from wfe_yaml.errors import ConfigError
from wfe_yaml.plan import PlanStep, PlanWorkflow


@click.command("graph")
@file_argument
@click.argument("workflow", required=False)
@config_options
@click.option(
    "--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True
)
def command(
    file: str | None,
    workflow: str | None,
    assignments: tuple[str, ...],
    config_file: str | None,
    fmt: str,
) -> None:
    """Draw WORKFLOW of FILE: one node per step, an arrow per dependency."""
    plan = load_plan(file, assignments, config_file)
    try:
        target = plan.workflow(workflow)
    except ConfigError as error:
        fail(error)
    click.echo(mermaid(target) if fmt == "mermaid" else dot(target))


def _edges(steps: tuple[PlanStep, ...], prefix: str) -> list[tuple[str, str]]:
    edges: list[tuple[str, str]] = []
    for step in steps:
        node = _node_id(prefix, step.name)
        edges.extend((_node_id(prefix, need), node) for need in step.needs)
        edges.extend(_edges(step.children, f"{prefix}/{step.name}"))
    return edges


def _node_id(prefix: str, name: str) -> str:
    return "n_" + "".join(ch if ch.isalnum() else "_" for ch in f"{prefix}/{name}")


def _label(step: PlanStep) -> str:
    kind = "parallel" if step.is_parallel else step.type
    return f"{step.name} ({kind})".replace('"', "'")


def mermaid(workflow: PlanWorkflow) -> str:
    lines = ["flowchart TD"]

    def nodes(steps: tuple[PlanStep, ...], prefix: str, indent: str) -> None:
        for step in steps:
            node = _node_id(prefix, step.name)
            if step.children:
                lines.append(f'{indent}subgraph {node}["{_label(step)}"]')
                nodes(step.children, f"{prefix}/{step.name}", indent + "  ")
                lines.append(f"{indent}end")
            else:
                lines.append(f'{indent}{node}["{_label(step)}"]')

    nodes(workflow.steps, workflow.id, "  ")
    lines.extend(f"  {a} --> {b}" for a, b in _edges(workflow.steps, workflow.id))
    return "\n".join(lines)


def dot(workflow: PlanWorkflow) -> str:
    lines = [f'digraph "{workflow.id}" {{', "  rankdir=TB;", "  node [shape=box];"]

    def nodes(steps: tuple[PlanStep, ...], prefix: str, indent: str) -> None:
        for step in steps:
            node = _node_id(prefix, step.name)
            if step.children:
                lines.append(f"{indent}subgraph cluster_{node} {{")
                lines.append(f'{indent}  label="{_label(step)}";')
                lines.append(f'{indent}  {node} [label="{step.name}", shape=point];')
                nodes(step.children, f"{prefix}/{step.name}", indent + "  ")
                lines.append(f"{indent}}}")
            else:
                lines.append(f'{indent}{node} [label="{_label(step)}"];')

    nodes(workflow.steps, workflow.id, "  ")
    lines.extend(f"  {a} -> {b};" for a, b in _edges(workflow.steps, workflow.id))
    lines.append("}")
    return "\n".join(lines)
