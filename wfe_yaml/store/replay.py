"""Which recorded steps a run restores instead of running: resume, `--only` and `--from`.

Replay rules: a step whose latest record succeeded is restored with its recorded outputs. A
child-workflow step restores whole; when it did not succeed, its own succeeded steps restore one
by one (`ci/cover/measure`). A parallel block never restores as a block (its record holds no
outputs): its children do, one by one. Hooks are never restored: they run with their step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from wfe_yaml.errors import ConfigError, did_you_mean
from wfe_yaml.plan import Plan, PlanStep, PlanWorkflow
from wfe_yaml.store.records import StoredStep

Decision = Literal["run", "restore", "omit"]


def latest_records(steps: Iterable[StoredStep]) -> dict[str, StoredStep]:
    """Step path → its record from the latest attempt that has one (records come in order)."""
    latest: dict[str, StoredStep] = {}
    for step in steps:
        latest[step.path] = step
    return latest


def resume_replay(steps: Iterable[StoredStep]) -> dict[str, dict[str, Any]]:
    """What `wfe resume` restores: every step whose latest record succeeded."""
    return {
        path: record.outputs
        for path, record in latest_records(steps).items()
        if _restorable(record)
    }


def _restorable(record: StoredStep) -> bool:
    return record.status == "succeeded" and not record.hook and record.type != "parallel"


def current_view(steps: Iterable[StoredStep]) -> list[StoredStep]:
    """One record per step path, as the run stands now, in the order the steps first started.

    A step restored by a later attempt shows the attempt that really ran it.
    """
    first_seen: dict[str, int] = {}
    ran: dict[str, StoredStep] = {}
    latest: dict[str, StoredStep] = {}
    for index, step in enumerate(steps):
        first_seen.setdefault(step.path, index)
        latest[step.path] = step
        if not step.restored:
            ran[step.path] = step
    view = []
    for path in sorted(latest, key=first_seen.__getitem__):
        record = latest[path]
        earlier = ran.get(path)
        if record.restored and earlier is not None and earlier.status == "succeeded":
            record = earlier
        view.append(record)
    return view


@dataclass(frozen=True)
class Selection:
    """A plan narrowed by `--only` / `--from`: the steps to restore, and those left out."""

    mode: str
    step: str
    plan: Plan
    replay: dict[str, dict[str, Any]]
    omitted: list[str]

    def record(self) -> dict[str, Any]:
        return {"mode": self.mode, "step": self.step, "omitted": self.omitted}


def select(
    plan: Plan,
    workflow: PlanWorkflow,
    mode: str,
    ref: str,
    successes: Mapping[str, StoredStep],
) -> Selection:
    """`--only REF` runs REF alone; `--from REF` runs REF and every step after it in plan order.

    Every other step restores its newest successful record; a step that never succeeded is left
    out of the run (its dependants then wait for what it waited for).
    """
    order = [entry.path for entry in _plan_order(workflow)]
    targets = resolve_step(workflow, ref)
    if mode == "only":
        chosen = {path for path in order if any(_within(path, t) for t in targets)}
    else:
        first = min(order.index(target) for target in targets)
        chosen = set(order[first:])

    def decide(path: str, step: PlanStep) -> Decision:
        if path in chosen:
            return "run"
        return "restore" if path in successes else "omit"

    narrowed, omitted, restored = narrow(plan, workflow, decide)
    replay = {path: successes[path].outputs for path in restored}
    return Selection(mode, ref, narrowed, replay, omitted)


def omit(plan: Plan, workflow: PlanWorkflow, paths: Iterable[str]) -> Plan:
    """The plan without these steps of the workflow (a resumed `--only`/`--from` run)."""
    left_out = set(paths)
    if not left_out:
        return plan
    narrowed, _, _ = narrow(
        plan, workflow, lambda path, step: "omit" if path in left_out else "run"
    )
    return narrowed


def narrow(
    plan: Plan, workflow: PlanWorkflow, decide: Callable[[str, PlanStep], Decision]
) -> tuple[Plan, list[str], list[str]]:
    """Apply a decision to each step of the workflow: (new plan, omitted paths, restored paths).

    A parallel block that is not run whole is decided child by child, and left out when none of
    its children is left.
    """
    omitted: list[str] = []
    restored: list[str] = []

    def scope(steps: tuple[PlanStep, ...], prefix: str) -> tuple[PlanStep, ...]:
        kept: list[PlanStep] = []
        removed: dict[str, tuple[str, ...]] = {}
        for step in steps:
            path = f"{prefix}/{step.name}"
            decision = decide(path, step)
            if decision == "run":
                kept.append(step)
            elif step.is_parallel:
                children = scope(step.children, path)
                if children:
                    kept.append(replace(step, children=children))
                else:
                    omitted.append(path)
                    removed[step.name] = step.needs
            elif decision == "restore":
                restored.append(path)
                kept.append(step)
            else:
                omitted.append(path)
                removed[step.name] = step.needs
        return tuple(replace(step, needs=_rewired(step.needs, removed)) for step in kept)

    steps = scope(workflow.steps, workflow.id)
    workflows = {**plan.workflows, workflow.id: replace(workflow, steps=steps)}
    return replace(plan, workflows=workflows), omitted, restored


def _rewired(needs: tuple[str, ...], removed: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    """A step that waited for a left-out step waits for what that one waited for."""
    result: list[str] = []
    pending = list(needs)
    seen: set[str] = set()
    while pending:
        name = pending.pop(0)
        if name in seen:
            continue
        seen.add(name)
        if name in removed:
            pending[:0] = removed[name]
        else:
            result.append(name)
    return tuple(result)


@dataclass(frozen=True)
class _Entry:
    path: str
    parent: str
    step: PlanStep


def _plan_order(workflow: PlanWorkflow) -> list[_Entry]:
    """Every step of the workflow (parallel children included), depth first."""
    order: list[_Entry] = []

    def walk(steps: tuple[PlanStep, ...], prefix: str) -> None:
        for step in steps:
            path = f"{prefix}/{step.name}"
            order.append(_Entry(path, prefix, step))
            walk(step.children, path)

    walk(workflow.steps, workflow.id)
    return order


def _within(path: str, ancestor: str) -> bool:
    return path == ancestor or path.startswith(ancestor + "/")


def resolve_step(workflow: PlanWorkflow, ref: str) -> list[str]:
    """The step paths REF names: a path (`ci/tests/unit` or `tests/unit`), a step name, or the
    name of a matrix step (all its instances)."""
    order = _plan_order(workflow)
    wanted = ref if ref.startswith(workflow.id + "/") else f"{workflow.id}/{ref}"
    if any(entry.path == wanted for entry in order):
        return [wanted]
    matches = [e for e in order if ref in (e.step.name, e.step.group)]
    if matches and len({entry.parent for entry in matches}) == 1:
        return [entry.path for entry in matches]
    if matches:
        raise ConfigError(
            f"step '{ref}' is ambiguous in workflow '{workflow.id}': "
            + ", ".join(entry.path for entry in matches),
            hint="give its path instead",
        )
    names = [entry.step.group or entry.step.name for entry in order]
    raise ConfigError(
        f"no step '{ref}' in workflow '{workflow.id}'",
        hint=did_you_mean(ref, names) or f"steps: {', '.join(dict.fromkeys(names))}",
    )
