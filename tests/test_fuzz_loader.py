"""The loader survives anything: a ConfigError with a position, or a plan; nothing else.

Fixed seed and a bounded example count keep this fast and repeatable in CI; docs/security.md
gives the figures of a longer run (`WFE_FUZZ_EXAMPLES=20000 pytest tests/test_fuzz_loader.py`).
"""

from __future__ import annotations

import os
import random
import resource
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from wfe_yaml.errors import ConfigError
from wfe_yaml.loader import load

EXAMPLES = int(os.environ.get("WFE_FUZZ_EXAMPLES", "300"))
RESOURCES = Path(__file__).parent / "resources"
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=2000,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
KEYS = [
    "workflow",
    "workflows",
    "id",
    "steps",
    "name",
    "type",
    "config",
    "run",
    "parallel",
    "needs",
    "when",
    "field",
    "equals",
    "gt",
    "all",
    "any",
    "not",
    "inputs",
    "outputs",
    "error_behavior",
    "retry",
    "timeout",
    "ensure",
    "on_failure",
    "matrix",
    "include",
    "config",
    "secrets",
    "requires",
    "shell",
    "script",
    "workflow_version",
    "_t",
    "<<",
]
SCALARS = st.one_of(
    st.sampled_from(
        [
            "shell",
            "workflow",
            "js",
            "1s",
            "-1",
            "((x))",
            "${{ x }}",
            "~",
            "yes",
            "&a x",
            "*a",
            "!!binary",
            "[",
            "{",
            "'",
            '"',
            "|",
            ">-",
            "%",
            "@",
        ]
    ),
    st.integers(-(2**70), 2**70).map(str),
    st.text(string.printable, max_size=20),
)


def check_one(tmp_path: Path, text: str | bytes) -> None:
    path = tmp_path / "workflows.yaml"
    if isinstance(text, str):
        path.write_text(text)
    else:
        path.write_bytes(text)
    try:
        load(path, environ={})
    except ConfigError as error:
        for problem in error.errors:
            assert problem.message, "an error without a message"
            assert problem.mark is None or problem.mark.line >= 1


def yaml_tree(depth: int = 0) -> st.SearchStrategy[str]:
    """YAML-ish text built from the format's own words, so the fuzzer gets past parsing."""
    if depth > 3:
        return SCALARS
    child = st.deferred(lambda: yaml_tree(depth + 1))
    mapping = st.lists(st.tuples(st.sampled_from(KEYS), child), max_size=5).map(
        lambda items: "{" + ", ".join(f"{k}: {v}" for k, v in items) + "}"
    )
    sequence = st.lists(child, max_size=4).map(lambda items: "[" + ", ".join(items) + "]")
    return st.one_of(SCALARS, mapping, sequence)


@seed(20261121)
@FUZZ_SETTINGS
@given(text=yaml_tree())
def test_generated_documents_give_a_plan_or_positioned_errors(tmp_path: Path, text: str) -> None:
    check_one(tmp_path, f"workflow: {text}\n")
    check_one(tmp_path, text)


@seed(20261121)
@FUZZ_SETTINGS
@given(data=st.binary(max_size=400))
def test_binary_input_gives_an_error_not_a_crash(tmp_path: Path, data: bytes) -> None:
    check_one(tmp_path, data)


def resource_texts() -> list[str]:
    return [
        path.read_text(errors="replace")
        for path in sorted(RESOURCES.rglob("*.yaml"))
        if path.stat().st_size < 20_000
    ]


def mutations(text: str, rng: random.Random) -> list[str]:
    lines = text.splitlines()
    found = []
    for _ in range(8):
        copy = list(lines)
        if not copy:
            break
        index = rng.randrange(len(copy))
        choice = rng.randrange(5)
        if choice == 0:
            del copy[index]
        elif choice == 1:
            copy.insert(index, copy[rng.randrange(len(copy))])
        elif choice == 2:
            copy[index] = " " * rng.randrange(6) + copy[index]
        elif choice == 3:
            word = rng.choice([*KEYS, "- ", ": ", "[", "&x", "*x", "((a))"])
            cut = rng.randrange(len(copy[index]) + 1)
            copy[index] = copy[index][:cut] + word + copy[index][cut:]
        else:
            copy[index] = copy[index][: rng.randrange(len(copy[index]) + 1)]
        found.append("\n".join(copy) + "\n")
    return found


def test_mutated_test_resources_give_a_plan_or_positioned_errors(tmp_path: Path) -> None:
    rng = random.Random(20261121)
    texts = resource_texts()
    assert texts, "no resources to mutate"
    budget = max(EXAMPLES // 2, 50)
    tried = 0
    for text in texts:
        for mutated in mutations(text, rng):
            check_one(tmp_path, mutated)
            tried += 1
            if tried >= budget:
                return


@pytest.mark.parametrize(
    "text",
    [
        "a: &a ["
        + ",".join(["*a"] * 0)
        + "x]\n"
        + "".join(
            f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}" if i else "*a"] * 9) + "]\n"
            for i in range(12)
        ),
        "[" * 50_000 + "]" * 50_000,
        "workflow: {id: " + "x" * 5_000_000 + "}",
        "workflow:\n" + "  " * 3000 + "id: deep\n",
    ],
    ids=["alias-bomb", "deep-flow", "huge-scalar", "deep-indent"],
)
def test_hostile_documents_stay_within_memory(tmp_path: Path, text: str) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    check_one(tmp_path, text)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 200
