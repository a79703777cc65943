"""`wfe graph`: a workflow's steps and their order as Mermaid or DOT, coloured by the status of
a recorded run with `--run`."""

from __future__ import annotations

from collections.abc import Mapping

import click

from wfe_yaml.cli.common import config_options, fail, file_argument, load_plan
from wfe_yaml.cli.history import store_option
from wfe_yaml.errors import ConfigError
from wfe_yaml.plan import PlanStep, PlanWorkflow

STATUS_COLOURS = {
    "succeeded": "#c8e6c9",
    "failed": "#ffcdd2",
    "skipped": "#eeeeee",
    "cancelled": "#fff3c4",
    "compensated": "#e1bee7",
    "suspended": "#ffe0b2",
    "interrupted": "#ffe0b2",
    "running": "#bbdefb",
}


@click.command("graph")
@file_argument
@click.argument("workflow", required=False)
@config_options
@click.option(
    "--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True
)
@click.option("--run", "run_ref", metavar="RUN", help="Colour the steps by their status in RUN.")
@store_option
def command(
    file: str | None,
    workflow: str | None,
    assignments: tuple[str, ...],
    config_file: str | None,
    fmt: str,
    run_ref: str | None,
    store_path: str | None,
) -> None:
    """Draw WORKFLOW of FILE: one node per step, an arrow per dependency.

    With --run, FILE and WORKFLOW default to the run's, and each step is coloured by the status
    it has in that run.
    """
    statuses: dict[str, str] = {}
    if run_ref is not None:
        run_file, run_workflow, statuses = recorded_statuses(run_ref, store_path)
        file, workflow = file or run_file, workflow or run_workflow
    plan = load_plan(file, assignments, config_file)
    try:
        target = plan.workflow(workflow)
    except ConfigError as error:
        fail(error)
    click.echo(mermaid(target, statuses) if fmt == "mermaid" else dot(target, statuses))


def recorded_statuses(run_ref: str, store_path: str | None) -> tuple[str, str, dict[str, str]]:
    """(file, workflow, step path → status) of a recorded run."""
    from wfe_yaml.cli.history import find_run, open_history_or_fail, step_status
    from wfe_yaml.store.replay import current_view

    store = open_history_or_fail(store_path)
    run = find_run(store, run_ref)
    steps = current_view(store.steps(run.id))
    return run.file, run.workflow, {step.path: step_status(step, run) for step in steps}


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


def mermaid(workflow: PlanWorkflow, statuses: Mapping[str, str] | None = None) -> str:
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
    lines.extend(_mermaid_classes(workflow, statuses or {}))
    return "\n".join(lines)


def _mermaid_classes(workflow: PlanWorkflow, statuses: Mapping[str, str]) -> list[str]:
    by_status: dict[str, list[str]] = {}
    for path in _paths(workflow.steps, workflow.id):
        status = statuses.get(path)
        if status in STATUS_COLOURS:
            by_status.setdefault(status, []).append(_path_id(path))
    lines = []
    for status, nodes in by_status.items():
        lines.append(f"  classDef {status} fill:{STATUS_COLOURS[status]}")
        lines.append(f"  class {','.join(nodes)} {status}")
    return lines


def _paths(steps: tuple[PlanStep, ...], prefix: str) -> list[str]:
    paths = []
    for step in steps:
        path = f"{prefix}/{step.name}"
        paths.append(path)
        paths.extend(_paths(step.children, path))
    return paths


def _path_id(path: str) -> str:
    prefix, _, name = path.rpartition("/")
    return _node_id(prefix, name)


def _fill(statuses: Mapping[str, str] | None, path: str) -> str | None:
    status = (statuses or {}).get(path)
    return STATUS_COLOURS.get(status) if status else None


def dot(workflow: PlanWorkflow, statuses: Mapping[str, str] | None = None) -> str:
    lines = [f'digraph "{workflow.id}" {{', "  rankdir=TB;", "  node [shape=box];"]

    def nodes(steps: tuple[PlanStep, ...], prefix: str, indent: str) -> None:
        for step in steps:
            node = _node_id(prefix, step.name)
            fill = _fill(statuses, f"{prefix}/{step.name}")
            if step.children:
                lines.append(f"{indent}subgraph cluster_{node} {{")
                lines.append(f'{indent}  label="{_label(step)}";')
                if fill:
                    lines.append(f'{indent}  style=filled; fillcolor="{fill}";')
                lines.append(f'{indent}  {node} [label="{step.name}", shape=point];')
                nodes(step.children, f"{prefix}/{step.name}", indent + "  ")
                lines.append(f"{indent}}}")
            else:
                colour = f', style=filled, fillcolor="{fill}"' if fill else ""
                lines.append(f'{indent}{node} [label="{_label(step)}"{colour}];')

    nodes(workflow.steps, workflow.id, "  ")
    lines.extend(f"  {a} -> {b};" for a, b in _edges(workflow.steps, workflow.id))
    lines.append("}")
    return "\n".join(lines)
