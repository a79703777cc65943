"""Docker steps (`type: docker`) and WFE's Kubernetes steps (`kubernetes`/`k8s`) run locally.

The config models are complete, so files using these types validate today. Running them needs
the Docker engine integration (extra `docker`), which has not landed yet: such a step fails
with a message saying so, or is skipped under `requires: [docker]` when no engine is reachable.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from executors.base import Executor, ExecutorConfig, StepRequest, StepResult
from wfe_yaml.durations import Duration

NOT_YET = (
    "{kind} steps cannot run yet: the Docker executor is not part of this release; "
    "guard the step with `requires: [docker]` to skip it meanwhile"
)


class DockerConfig(ExecutorConfig):
    image: str = Field(min_length=1)
    run: str | None = None
    command: list[str] | None = None
    entrypoint: str | list[str] | None = None
    env: dict[str, str] = {}
    volumes: list[str] = []
    working_dir: str | None = None
    user: str | None = None
    network: str = "bridge"
    pull: Literal["always", "if-not-present", "never"] = "if-not-present"
    memory: str | int | None = None
    cpus: float | None = None
    timeout: Duration | None = None

    @model_validator(mode="after")
    def _run_or_command(self) -> DockerConfig:
        if self.run is not None and self.command is not None:
            raise ValueError("'run' and 'command' exclude each other")
        return self


class KubernetesConfig(ExecutorConfig):
    image: str = Field(min_length=1)
    run: str | None = None
    command: list[str] | None = None
    shell: str = "/bin/sh"
    env: dict[str, str] = {}
    working_dir: str | None = None
    memory: str | None = None
    cpu: str | None = None
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    namespace: str | None = None
    kubeconfig: str | None = None
    timeout: Duration | None = None


class DockerExecutor(Executor):
    names = ("docker",)
    config_model = DockerConfig

    async def run(self, request: StepRequest) -> StepResult:
        return StepResult.failed(NOT_YET.format(kind="docker"))


class KubernetesExecutor(Executor):
    names = ("kubernetes", "k8s")
    config_model = KubernetesConfig

    async def run(self, request: StepRequest) -> StepResult:
        return StepResult.failed(NOT_YET.format(kind="kubernetes"))
