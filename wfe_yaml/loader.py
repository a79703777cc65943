"""Load a workflows file into a Plan: source → interpolation → models → compiler."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from wfe_yaml.compiler import PLACEHOLDER, Problems, WorkflowSource, compile_workflows
from wfe_yaml.errors import ConfigError, Mark, raise_all
from wfe_yaml.interpolate import (
    collect_variables,
    interpolate,
    load_config_file,
    parse_config_env,
    reads_config,
    unused_assignments,
    variable_names,
)
from wfe_yaml.models import Document
from wfe_yaml.plan import Plan
from wfe_yaml.source import SourceFile, kind_of, load_with_includes
from wfe_yaml.validation import errors_from_validation

DEFAULT_FILES = ("workflows.yaml", "workflows.yml", "wfe.yaml")
STEP_LISTS = ("steps", "parallel", "ensure", "on_success", "on_failure", "compensate")
# Without these a step cannot be checked further, or checking it would report false mistakes.
_STEP_CORE_KEYS = {"name", "type", "config", "parallel", "outputs"}
_WORKFLOW_CORE_KEYS = {"id", "steps", "inputs", "outputs"}
_DOCUMENT_CORE_KEYS = {"workflow", "workflows", "secrets"}


def find_default_file(directory: Path | None = None) -> Path:
    """The workflows file of a directory, by its default names."""
    directory = directory or Path.cwd()
    for name in DEFAULT_FILES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"no workflows file in {directory}: looked for {', '.join(DEFAULT_FILES)}",
        hint="pass the file as an argument: wfe run path/to/workflows.yaml",
    )


def load(
    path: str | Path,
    config: Mapping[str, Any] | None = None,
    *,
    config_file: str | Path | None = None,
    assignments: Iterable[tuple[str, Any]] = (),
    environ: Mapping[str, str] | None = None,
) -> Plan:
    """Load and check a workflows file; raise ConfigError with every mistake found.

    Variables for `((name))`, in rising precedence: the file's `config:`, `config_file`, the
    `WFE_CONFIG` environment variable, `assignments` (`-c key=value`), then `config`.
    """
    environ = os.environ if environ is None else environ
    assignments = list(assignments)
    files = load_with_includes(Path(path))
    outer = _outer_variables(config, config_file, assignments, environ)
    main_config = _file_config(files[0])
    problems = Problems()
    documents: list[tuple[SourceFile, Document]] = []
    used: set[str] = set()
    for index, file in enumerate(files):
        layers = [_file_config(file), main_config, *outer] if index else [main_config, *outer]
        variables = collect_variables(layers)
        document = _validate(file, variables, is_main=index == 0, problems=problems, used=used)
        if document is not None:
            documents.append((file, document))
    if len(documents) < len(files):
        raise_all(problems.errors)
    problems.warnings.extend(_unused_assignments(files, assignments, used))
    return _compile(files, documents, collect_variables([main_config, *outer]), problems)


def _outer_variables(
    config: Mapping[str, Any] | None,
    config_file: str | Path | None,
    assignments: Iterable[tuple[str, Any]],
    environ: Mapping[str, str],
) -> list[Mapping[str, Any]]:
    layers: list[Mapping[str, Any]] = []
    if config_file is not None:
        layers.append(load_config_file(Path(config_file)))
    if environ.get("WFE_CONFIG"):
        layers.append(parse_config_env(environ["WFE_CONFIG"]))
    for key, value in assignments:
        layers.append(_nested(key, value))
    if config:
        layers.append(config)
    return layers


def _unused_assignments(
    files: list[SourceFile], assignments: Iterable[tuple[str, Any]], used: set[str]
) -> list[ConfigError]:
    declared = {name for file in files for name in variable_names(_file_config(file))}
    return unused_assignments(
        [key for key, _ in assignments],
        used | declared,
        expressions_read_config=any(reads_config(file.text) for file in files),
    )


def _nested(dotted: str, value: Any) -> dict[str, Any]:
    head, _, rest = dotted.partition(".")
    return {head: _nested(rest, value) if rest else value}


def _file_config(file: SourceFile) -> Mapping[str, Any]:
    data = file.data
    config = data.get("config") if isinstance(data, dict) else None
    return config if isinstance(config, dict) else {}


def _validate(
    file: SourceFile,
    variables: Mapping[str, Any],
    is_main: bool,
    problems: Problems,
    used: set[str],
) -> Document | None:
    if not isinstance(file.data, dict):
        problems.error(_shape_problem(file), Mark(str(file.path), 1, 1))
        return None
    skip = _nothing
    try:
        data = _strip_private_keys(interpolate(file, variables, used))
    except ConfigError as error:
        # Keep going on the raw text so the other mistakes of the file show up too; values
        # still holding a reference were reported already.
        problems.errors.extend(error.errors)
        data = _strip_private_keys(file.data)
        skip = _uninterpolated
    if _check_shape(file, data, is_main, problems):
        return None
    try:
        return Document.model_validate(data)
    except ValidationError as error:
        problems.errors.extend(errors_from_validation(error, file.positions, skip=skip, data=data))
        return _salvage(data, error)


def _salvage(data: dict[str, Any], error: ValidationError) -> Document | None:
    """The document with its invalid steps replaced by inert placeholders.

    Compiling what is left still finds the mistakes models can't see (unknown step types,
    `needs:` targets, cycles), so one `wfe validate` reports them all. Placeholders keep list
    indices, so positions stay right. When the mistake is in a key its step, workflow or
    document can do without (`timeout`, `when`, an unknown key), only that key is dropped.
    """
    for _ in range(20):
        for problem in error.errors():
            if not _repair(data, problem):
                return None
        try:
            return Document.model_validate(data)
        except ValidationError as again:
            error = again
    return None


def _repair(data: dict[str, Any], problem: Any) -> bool:
    loc = tuple(problem["loc"])
    step = _step_loc(loc)
    if step is not None:
        if not _drop_key(_lookup(data, step), loc[len(step) :], _STEP_CORE_KEYS):
            _replace_step(data, step)
        return True
    owner = loc[:2] if loc[:1] == ("workflows",) else loc[:1] if loc[:1] == ("workflow",) else ()
    protected = _DOCUMENT_CORE_KEYS if not owner else _WORKFLOW_CORE_KEYS
    return _drop_key(_lookup(data, owner), loc[len(owner) :], protected)


def _drop_key(holder: Any, rest: tuple[Any, ...], protected: set[str]) -> bool:
    """Remove the key a problem is in, unless the mapping cannot do without it.

    An unknown key that looks like a misspelt protected one (`confg:`) stands for it: dropping
    it would only lead to a false "missing" mistake later.
    """
    key = rest[0] if rest else None
    if not isinstance(holder, dict) or key not in holder or key in protected:
        return False
    if difflib.get_close_matches(str(key), protected, n=1, cutoff=0.6):
        return False
    del holder[key]
    return True


def _lookup(data: Any, loc: tuple[Any, ...]) -> Any:
    """The value at a pydantic loc; an index into a mapping is a single hook written unlisted."""
    for part in loc:
        if isinstance(data, dict) and isinstance(part, int):
            continue
        in_mapping = isinstance(data, dict) and part in data
        in_list = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if not (in_mapping or in_list):
            return None
        data = data[part]
    return data


def _step_loc(loc: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """The path of the innermost step inside an error's loc, or None when not in a step."""
    for end in range(len(loc) - 1, 0, -1):
        if isinstance(loc[end], int) and loc[end - 1] in STEP_LISTS:
            return loc[: end + 1]
    return None


def _replace_step(data: Any, loc: tuple[Any, ...]) -> None:
    holder, key, index = _lookup(data, loc[:-2]), loc[-2], loc[-1]
    if not isinstance(holder, dict) or key not in holder:
        return  # inside a step that was already replaced
    steps = holder[key]
    original = steps[index] if isinstance(steps, list) else steps
    name = original.get("name") if isinstance(original, dict) else None
    if not isinstance(name, str) or not name:
        name = "\0" + ".".join(map(str, loc))
    placeholder = {"name": name, "type": PLACEHOLDER}
    if isinstance(steps, list):
        steps[index] = placeholder
    else:
        holder[key] = placeholder


def _nothing(problem: Any) -> bool:
    return False


def _uninterpolated(problem: Any) -> bool:
    value = problem.get("input")
    return isinstance(value, str) and "((" in value


def _shape_problem(file: SourceFile) -> str:
    if file.data is None:
        return f"{file.path.name} is empty: it needs a `workflow:` or `workflows:` section"
    return (
        f"the top level of {file.path.name} must be a mapping with `workflow:`, "
        f"not {kind_of(file.data)}"
    )


def _check_shape(file: SourceFile, data: dict[str, Any], is_main: bool, problems: Problems) -> bool:
    """The one-of rule for `workflow:`/`workflows:`; True when it failed."""
    has_single, has_many = "workflow" in data, "workflows" in data
    top = Mark(str(file.path), 1, 1)
    if has_single and has_many:
        problems.error(
            "use either `workflow:` or `workflows:`, not both",
            file.positions.key(("workflows",)),
        )
        return True
    if not has_single and not has_many:
        problems.error(
            f"{file.path.name} defines no workflow: add a `workflow:` or `workflows:` section",
            top,
            None if is_main else "an included file must define workflows",
        )
        return True
    key = "workflows" if has_many else "workflow"
    if data[key] in (None, [], {}):
        problems.error(f"`{key}:` is empty", file.positions.value((key,)))
        return True
    return False


def _strip_private_keys(data: dict[str, Any]) -> dict[str, Any]:
    """Keys starting with `_` are homes for anchors: drop them at document, workflow, step level."""
    document = _public(data)
    if isinstance(document.get("workflow"), dict):
        document["workflow"] = _strip_workflow(document["workflow"])
    if isinstance(document.get("workflows"), list):
        document["workflows"] = [_strip_workflow(item) for item in document["workflows"]]
    return document


def _strip_workflow(workflow: Any) -> Any:
    return _strip_step(workflow)


def _strip_steps(steps: Any) -> Any:
    if isinstance(steps, list):
        return [_strip_step(step) for step in steps]
    return _strip_step(steps)


def _strip_step(step: Any) -> Any:
    if not isinstance(step, dict):
        return step
    stripped = _public(step)
    for key in STEP_LISTS:
        if key in stripped:
            stripped[key] = _strip_steps(stripped[key])
    return stripped


def _public(mapping: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in mapping.items() if not key.startswith("_")}


def _compile(
    files: list[SourceFile],
    documents: list[tuple[SourceFile, Document]],
    variables: Mapping[str, Any],
    problems: Problems,
) -> Plan:
    main = documents[0][1]
    sources = _workflow_sources(documents, problems)
    workflows = compile_workflows(sources, main.secrets, problems)
    if main.entry is not None and main.entry not in workflows:
        problems.error(
            f"entry '{main.entry}' is not a workflow of this file",
            files[0].positions.value(("entry",)),
            f"workflows: {', '.join(workflows)}",
        )
    raise_all(problems.errors)
    return Plan(
        source=files[0].path,
        workflows=workflows,
        entry=main.entry,
        secrets=tuple(main.secrets),
        capabilities=dict(main.capabilities),
        variables=dict(variables),
        warnings=tuple(sorted(problems.warnings, key=_position)),
        files=tuple(file.path for file in files),
    )


def _position(problem: ConfigError) -> tuple[str, int, int]:
    mark = problem.mark
    return (mark.file, mark.line, mark.col) if mark else ("", 0, 0)


def _workflow_sources(
    documents: list[tuple[SourceFile, Document]], problems: Problems
) -> list[WorkflowSource]:
    """Workflows in file order; within a file an id is unique, across files the first wins."""
    sources: dict[str, WorkflowSource] = {}
    for file, document in documents:
        seen_here: dict[str, int] = {}
        for index, workflow in enumerate(document.all_workflows()):
            loc: tuple[str | int, ...] = (
                ("workflow",) if document.workflow is not None else ("workflows", index)
            )
            if workflow.id in seen_here:
                problems.error(
                    f"duplicate workflow id '{workflow.id}'",
                    file.positions.value((*loc, "id")),
                    "workflow ids must be unique in a file",
                )
                continue
            seen_here[workflow.id] = index
            if workflow.id not in sources:
                sources[workflow.id] = WorkflowSource(workflow, file.positions, loc, file.path)
    return list(sources.values())
