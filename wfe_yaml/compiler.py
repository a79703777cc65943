"""Models → immutable Plan, with every static check of the format reported together."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from executors.base import registry
from wfe_yaml import conditions, expressions, secrets
from wfe_yaml.errors import ConfigError, Mark, did_you_mean
from wfe_yaml.models import ErrorBehavior, Step, Workflow
from wfe_yaml.plan import HOOK_KINDS, PlanStep, PlanWorkflow
from wfe_yaml.source import Positions
from wfe_yaml.types import parse_schema
from wfe_yaml.validation import errors_from_validation

Loc = tuple[str | int, ...]
_HOOK_LISTS = frozenset(HOOK_KINDS)
PLACEHOLDER = "\0invalid"
"""Type of a step that failed validation: kept so the rest of the file can still be checked."""


@dataclass(frozen=True)
class WorkflowSource:
    """A validated workflow and where it was written."""

    model: Workflow
    positions: Positions
    loc: Loc
    """Path of the workflow's mapping inside its file's data."""
    file: Path


class Problems:
    """Collects positioned errors and warnings while compiling."""

    def __init__(self) -> None:
        self.errors: list[ConfigError] = []
        self.warnings: list[ConfigError] = []

    def error(self, message: str, mark: Mark, hint: str | None = None) -> None:
        self.errors.append(ConfigError(message, mark, hint))

    def warn(self, message: str, mark: Mark, hint: str | None = None) -> None:
        self.warnings.append(ConfigError(message, mark, hint))


def compile_workflows(
    sources: list[WorkflowSource], secrets: Iterable[str], problems: Problems
) -> dict[str, PlanWorkflow]:
    declared_secrets = set(secrets)
    ids = [source.model.id for source in sources]
    workflows = {
        source.model.id: _WorkflowCompiler(source, declared_secrets, ids, problems).compile()
        for source in sources
    }
    _check_workflow_calls(sources, workflows, problems)
    return workflows


class _WorkflowCompiler:
    def __init__(
        self, source: WorkflowSource, secrets: set[str], workflow_ids: list[str], problems: Problems
    ):
        self.source = source
        self.workflow_ids = workflow_ids
        self.model = source.model
        self.secrets = secrets
        self.problems = problems
        self.names: dict[str, Loc] = {}
        self.default_behavior = self.model.error_behavior or ErrorBehavior()
        self.step_outputs = {
            ref.name for step in _all_model_steps(self.model) for ref in step.outputs
        }

    def mark(self, loc: Loc) -> Mark:
        return self.source.positions.value(self.written(loc))

    def key_mark(self, loc: Loc) -> Mark:
        return self.source.positions.key(self.written(loc))

    def written(self, loc: Loc) -> Loc:
        """The file path of `loc`: a hook written as a single mapping has no list index."""
        positions = self.source.positions
        path: list[str | int] = []
        for part in self.source.loc + loc:
            in_hook = isinstance(part, int) and path and path[-1] in _HOOK_LISTS
            if in_hook and positions.value((*path, part)) == positions.value(tuple(path)):
                continue
            path.append(part)
        return tuple(path)

    def compile(self) -> PlanWorkflow:
        model = self.model
        steps = self.scope(model.steps, ("steps",), sequential=True)
        ensure = self.hooks(model.ensure, ("ensure",))
        self.check_declared_outputs()
        if model.shared_volume is not None:
            self.problems.warn(
                "shared_volume is a WFE Kubernetes setting and is ignored here",
                self.key_mark(("shared_volume",)),
            )
        return PlanWorkflow(
            id=model.id,
            version=model.version,
            mark=self.key_mark(("id",)),
            source=self.source.file,
            name=model.name,
            description=model.description,
            inputs=parse_schema(model.inputs),
            outputs=parse_schema(model.outputs),
            steps=steps,
            ensure=ensure,
            timeout=model.timeout,
            env=dict(model.env),
            requires=tuple(model.requires),
            services=dict(model.services),
        )

    # -- scopes and dependencies ---------------------------------------------------------

    def scope(self, steps: list[Step], loc: Loc, sequential: bool) -> tuple[PlanStep, ...]:
        compiled = [self.step(step, (*loc, index)) for index, step in enumerate(steps)]
        instances = [self.expand_matrix(step, (*loc, index)) for index, step in enumerate(compiled)]
        names_by_group: dict[str, list[str]] = {}
        for step, group in zip(compiled, instances, strict=True):
            names_by_group.setdefault(step.name, [instance.name for instance in group])
        wired: list[PlanStep] = []
        previous: list[str] = []
        for index, (model, group) in enumerate(zip(steps, instances, strict=True)):
            needs = self.resolve_needs(model, (*loc, index), names_by_group, previous, sequential)
            wired.extend(replace(instance, needs=tuple(needs)) for instance in group)
            previous = [instance.name for instance in group]
        self.check_cycles(wired, steps, loc)
        return tuple(wired)

    def resolve_needs(
        self,
        model: Step,
        loc: Loc,
        names_by_group: Mapping[str, list[str]],
        previous: list[str],
        sequential: bool,
    ) -> list[str]:
        if model.needs is None:
            return previous if sequential else []
        resolved: list[str] = []
        for index, name in enumerate(model.needs):
            if name in names_by_group:
                resolved.extend(names_by_group[name])
                continue
            hint = did_you_mean(name, names_by_group)
            if name in self.names:
                hint = f"'{name}' is not at this level: a step can only need its siblings"
            self.problems.error(
                f"step '{model.name}' needs unknown step '{name}'",
                self.mark((*loc, "needs", index)),
                hint,
            )
        return resolved

    def check_cycles(self, wired: list[PlanStep], models: list[Step], loc: Loc) -> None:
        graph = {step.name: step.needs for step in wired}
        if len(graph) < len(wired):
            return  # duplicate names, already reported, would make false cycles
        cycle = _find_cycle(graph)
        if cycle is None:
            return
        first = next(i for i, m in enumerate(models) if cycle[0] in {m.name, _group(cycle[0])})
        self.problems.error(
            f"steps depend on each other in a cycle: {' -> '.join(cycle)}",
            self.mark((*loc, first, "needs")),
        )

    # -- one step ------------------------------------------------------------------------

    def step(self, model: Step, loc: Loc, hook: bool = False) -> PlanStep:
        self.register_name(model.name, loc)
        self.check_secrets(model, loc)
        self.check_when(model, loc)
        if model.inputs:
            self.problems.warn(
                "a step's `inputs:` is a WFE key with no effect here; it is ignored",
                self.key_mark((*loc, "inputs")),
            )
        if model.parallel is not None:
            return self.parallel_step(model, loc, hook)
        return self.leaf_step(model, loc, hook)

    def parallel_step(self, model: Step, loc: Loc, hook: bool) -> PlanStep:
        if model.type is not None:
            self.problems.error(
                f"step '{model.name}' has both 'type' and 'parallel': a parallel block runs "
                "its children and has no type of its own",
                self.key_mark((*loc, "type")),
            )
        if hook:
            self.problems.error(
                "a hook cannot be a parallel block", self.key_mark((*loc, "parallel"))
            )
        if model.config is not None:
            self.problems.error(
                f"parallel block '{model.name}' cannot have a config",
                self.key_mark((*loc, "config")),
            )
        if not model.parallel:
            self.problems.error(
                f"parallel block '{model.name}' has no steps", self.mark((*loc, "parallel"))
            )
        inherited, self.default_behavior = self.default_behavior, self.behavior(model)
        children = self.scope(model.parallel or [], (*loc, "parallel"), sequential=False)
        self.default_behavior = inherited
        return PlanStep(
            name=model.name,
            type=None,
            mark=self.key_mark((*loc, "name")),
            children=children,
            **self.common(model, loc),
        )

    def leaf_step(self, model: Step, loc: Loc, hook: bool) -> PlanStep:
        config = model.config or {}
        static_config = self.check_type_and_config(model, loc)
        if model.type == "workflow":
            self.check_call(model, config, loc)
        if hook:
            for key in ("needs", "matrix"):
                if getattr(model, key) is not None:
                    self.problems.error(
                        f"hook '{model.name}' cannot have '{key}'", self.key_mark((*loc, key))
                    )
        config_timeout = getattr(static_config, "timeout", None)
        timeouts = [t for t in (model.timeout, config_timeout) if t is not None]
        return PlanStep(
            name=model.name,
            type=model.type,
            mark=self.key_mark((*loc, "name")),
            config=config,
            static_config=static_config,
            timeout=min(timeouts) if timeouts else None,
            script_line=self.script_line(config, loc),
            **self.common(model, loc),
        )

    def behavior(self, model: Step) -> ErrorBehavior:
        behavior = model.error_behavior or self.default_behavior
        if model.continue_on_error:
            return behavior.model_copy(update={"type": "continue"})
        return behavior

    def common(self, model: Step, loc: Loc) -> dict[str, Any]:
        return {
            "when": model.when,
            "requires": tuple(model.requires),
            "max_parallel": model.max_parallel,
            "fail_fast": model.fail_fast,
            "error_behavior": self.behavior(model),
            "outputs": tuple(model.outputs),
            "runs_on": tuple(model.runs_on),
            "env": dict(model.env),
            "secrets": tuple(model.secrets),
            "matrix": model.matrix,
            **{kind: self.hooks(hooks, (*loc, kind)) for kind, hooks in model.hooks().items()},
        }

    def hooks(self, hooks: list[Step], loc: Loc) -> tuple[PlanStep, ...]:
        return tuple(self.step(hook, (*loc, index), hook=True) for index, hook in enumerate(hooks))

    def script_line(self, config: Mapping[str, Any], loc: Loc) -> int | None:
        for key in ("script", "run"):
            if isinstance(config.get(key), str):
                mark = self.mark((*loc, "config", key))
                text_starts_below = mark.line + 1
                return text_starts_below if "\n" in config[key] else mark.line
        return None

    def check_type_and_config(self, model: Step, loc: Loc) -> Any:
        if model.type == PLACEHOLDER:
            return None
        if model.type is None:
            self.problems.error(
                f"step '{model.name}' needs a 'type' ({', '.join(registry.primary_names())}) "
                "or a 'parallel' list",
                self.key_mark((*loc, "name")),
            )
            return None
        if not registry.has(model.type):
            broken = registry.broken.get(model.type)
            self.problems.error(
                f"step type '{model.type}' is unavailable: {broken}"
                if broken
                else f"unknown step type '{model.type}'",
                self.mark((*loc, "type")),
                did_you_mean(model.type, registry.names())
                or f"known types: {', '.join(registry.names())}",
            )
            return None
        return self.validate_config(model, loc)

    def validate_config(self, model: Step, loc: Loc) -> Any:
        assert model.type is not None
        config = model.config or {}
        for rel_loc, text in _strings(config, lambda text: "${{" in text):
            problem = expressions.syntax_problem(text)
            if problem:
                self.problems.error(problem, self.mark((*loc, "config", *rel_loc)))
        try:
            validated = registry.config_model(model.type).model_validate(config)
        except ValidationError as error:
            config_loc = (*self.source.loc, *loc, "config")
            found = errors_from_validation(
                error,
                self.source.positions,
                config_loc,
                skip=lambda problem: expressions.has_expression(problem.get("input")),
                data=config,
                context=f"the {model.type} config of step '{model.name}'",
            )
            if model.config is None:
                found = [self.missing_config(model, loc, error) for error in found]
            self.problems.errors.extend(found)
            return None
        if secrets.references(config):
            self.check_secret_references(model, loc)
            return None  # resolved when the step starts, never kept in the plan
        return None if expressions.has_expression(config) else validated

    def check_secret_references(self, model: Step, loc: Loc) -> None:
        for rel_loc, text in _strings(model.config or {}, secrets.references):
            name = secrets.references(text)[0]
            if name not in self.secrets:
                self.problems.error(
                    f"step '{model.name}' refers to secret '{name}' that the file does not declare",
                    self.mark((*loc, "config", *rel_loc)),
                    f"add it to the top-level `secrets: [{name}]`",
                )

    def missing_config(self, model: Step, loc: Loc, error: ConfigError) -> ConfigError:
        """A config error of a step that has no `config:` at all, shown at its `type:`."""
        return ConfigError(
            f"step '{model.name}' has no config: {error.message}",
            self.mark((*loc, "type")),
            error.hint,
        )

    def expand_matrix(self, step: PlanStep, loc: Loc) -> list[PlanStep]:
        if not step.matrix:
            return [step]
        keys = list(step.matrix)
        empty = [key for key in keys if not step.matrix[key]]
        if empty:
            self.problems.error(
                f"matrix key '{empty[0]}' has no values", self.mark((*loc, "matrix", empty[0]))
            )
            return [step]
        instances = []
        for values in itertools.product(*(step.matrix[key] for key in keys)):
            combination = dict(zip(keys, values, strict=True))
            label = ",".join(f"{key}={_label(value)}" for key, value in combination.items())
            instances.append(
                replace(step, name=f"{step.name}[{label}]", matrix=combination, group=step.name)
            )
        return instances

    # -- names, secrets, conditions, outputs ---------------------------------------------

    def register_name(self, name: str, loc: Loc) -> None:
        if name.startswith("\0"):
            return
        if name in self.names:
            first = self.mark((*self.names[name], "name"))
            self.problems.error(
                f"duplicate step name '{name}' in workflow '{self.model.id}' "
                f"(first used at line {first.line})",
                self.mark((*loc, "name")),
                "step names must be unique within a workflow, hooks and parallel children too",
            )
            return
        self.names[name] = loc

    def check_call(self, model: Step, config: Mapping[str, Any], loc: Loc) -> None:
        target = config.get("workflow")
        if isinstance(target, str) and "${{" not in target and target not in self.workflow_ids:
            self.problems.error(
                f"step '{model.name}' calls unknown workflow '{target}'",
                self.mark((*loc, "config", "workflow")),
                did_you_mean(target, self.workflow_ids)
                or f"workflows: {', '.join(self.workflow_ids)}",
            )

    def check_secrets(self, model: Step, loc: Loc) -> None:
        for index, name in enumerate(model.secrets):
            if name not in self.secrets:
                self.problems.error(
                    f"step '{model.name}' lists secret '{name}' that the file does not declare",
                    self.mark((*loc, "secrets", index)),
                    f"add it to the top-level `secrets: [{name}]`",
                )

    def check_when(self, model: Step, loc: Loc) -> None:
        if model.when is None:
            return
        declared = bool(self.model.inputs or self.model.outputs)
        problems = conditions.static_problems(
            model.when,
            dict(self.model.inputs) if declared else None,
            dict(self.model.outputs) if declared else None,
            self.step_outputs,
        )
        for rel_loc, message, is_warning in problems:
            mark = self.mark((*loc, "when", *rel_loc))
            if is_warning:
                self.problems.warn(message, mark)
            else:
                self.problems.error(message, mark)

    def check_declared_outputs(self) -> None:
        if any(step.type == PLACEHOLDER for step in _all_model_steps(self.model)):
            return  # a step with mistakes may be the one that declares it
        for name in self.model.outputs:
            if name not in self.step_outputs:
                self.problems.error(
                    f"workflow '{self.model.id}' declares output '{name}' that no step produces",
                    self.key_mark(("outputs", name)),
                    f"add `outputs: [{{name: {name}}}]` to the step that produces it",
                )


def _check_workflow_calls(
    sources: list[WorkflowSource], workflows: Mapping[str, PlanWorkflow], problems: Problems
) -> None:
    by_id = {source.model.id: source for source in sources}
    graph = {wf_id: tuple(sorted(wf.calls() & set(workflows))) for wf_id, wf in workflows.items()}
    cycle = _find_cycle(graph)
    if cycle:
        source = by_id[cycle[0]]
        problems.error(
            f"workflows call each other in a cycle: {' -> '.join(cycle)}",
            source.positions.key((*source.loc, "id")),
        )


def _find_cycle(graph: Mapping[str, tuple[str, ...]]) -> list[str] | None:
    """One cycle as a path `a, b, a`, or None; edges point at what a node depends on."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in graph.get(node, ()):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in graph:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def _all_model_steps(workflow: Workflow) -> list[Step]:
    found: list[Step] = []

    def walk(steps: list[Step]) -> None:
        for step in steps:
            found.append(step)
            walk(step.parallel or [])
            for kind in HOOK_KINDS:
                walk(getattr(step, kind))

    walk(workflow.steps)
    walk(workflow.ensure)
    return found


def _strings(value: Any, wanted: Callable[[str], Any], loc: Loc = ()) -> list[tuple[Loc, str]]:
    """The strings inside a config that `wanted` picks, each with its path."""
    if isinstance(value, str):
        return [(loc, value)] if wanted(value) else []
    if isinstance(value, dict):
        items: Iterable[tuple[str | int, Any]] = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return []
    return [found for key, item in items for found in _strings(item, wanted, (*loc, key))]


def _group(name: str) -> str:
    return name.split("[", 1)[0]


def _label(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
