"""Child workflows (`type: workflow`): a nested instance of the same run (DESIGN §4.5)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from executors.base import Executor, ExecutorConfig, StepRequest, StepResult, StepStatus
from wfe_yaml.durations import Duration
from wfe_yaml.types import check_inputs, check_value

S = StepStatus


class WorkflowConfig(ExecutorConfig):
    workflow: str = Field(min_length=1)
    version: int | None = None
    workflow_version: int | None = None
    inputs: dict[str, Any] = {}
    timeout: Duration | None = None

    @model_validator(mode="after")
    def _one_version(self) -> WorkflowConfig:
        both = self.version is not None and self.workflow_version is not None
        if both and self.version != self.workflow_version:
            raise ValueError("'version' and 'workflow_version' disagree: give one of them")
        return self


class WorkflowExecutor(Executor):
    names = ("workflow",)
    config_model = WorkflowConfig
    holds_slot = False

    async def run(self, request: StepRequest) -> StepResult:
        config: WorkflowConfig = request.config
        context = request.context
        plan = context.plan
        child = plan.workflows.get(config.workflow)
        if child is None:
            return StepResult.failed(f"no workflow '{config.workflow}' in this file")
        wanted = config.version or config.workflow_version
        if wanted is not None and wanted != child.version:
            return StepResult.failed(
                f"workflow '{child.id}' is version {child.version}, the step asks for {wanted}"
            )
        data = {**request.data, **config.inputs}
        problems = check_inputs(data, child.inputs)
        if problems:
            return StepResult.failed(f"inputs of workflow '{child.id}': " + "; ".join(problems))
        outcome = await context.run_workflow(child.id, data)
        if outcome.status is S.SKIPPED:
            return StepResult(S.SUCCEEDED, outputs={})
        if outcome.status is not S.SUCCEEDED:
            error = outcome.error or f"workflow '{child.id}' {outcome.status}"
            status = outcome.status if outcome.status in (S.CANCELLED, S.SUSPENDED) else S.FAILED
            return StepResult(status, error=error)
        missing = _missing_outputs(child.outputs, outcome.data)
        if missing:
            return StepResult.failed(f"workflow '{child.id}' did not produce {missing}")
        return StepResult(S.SUCCEEDED, outputs=_copy_back(context.step.outputs, outcome.data))


def _missing_outputs(declared: Any, data: dict[str, Any]) -> str | None:
    for name, spec in declared.items():
        if name not in data:
            if spec.optional:
                continue
            return f"its declared output '{name}' ({spec})"
        problem = check_value(data[name], spec, f"outputs.{name}")
        if problem:
            return f"a valid output: {problem}"
    return None


def _copy_back(refs: Any, data: dict[str, Any]) -> dict[str, Any]:
    """`outputs: [{name, path}]` copies child key `path` to parent key `name`; [] copies all."""
    if not refs:
        return dict(data)
    copied = {}
    for ref in refs:
        source = ref.path or ref.name
        if source in data:
            copied[ref.name] = data[source]
    return copied
