"""The plan cache: `wfe run` of unchanged files reuses their compiled plan, and any change to
what a plan is made of (a file, an include, `-c`, the config file, WFE_CONFIG) loads afresh."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import RunWfe, write_workflows
from wfe_yaml import plan_cache
from wfe_yaml.errors import ConfigError
from wfe_yaml.loader import load
from wfe_yaml.plan import Plan

MAIN = """
include: [steps.yaml]
workflow:
  id: ci
  steps:
    - name: build
      type: shell
      config: {run: "echo ((greeting))"}
"""
INCLUDED = """
workflows:
  - id: other
    steps:
      - {name: lint, type: shell, config: {run: "true"}}
"""


class Loads:
    """A counting `load` for cached_load, with the loader's arguments."""

    def __init__(self, path: Path, cache: Path) -> None:
        self.path = path
        self.environ = {plan_cache.CACHE_ENV: str(cache)}
        self.count = 0

    def __call__(self, assignments: tuple[str, ...] = (), config_file: str | None = None) -> Plan:
        def fresh() -> Plan:
            self.count += 1
            pairs = [tuple(text.split("=", 1)) for text in assignments]
            return load(self.path, config_file=config_file, assignments=pairs, environ=self.environ)

        return plan_cache.cached_load(
            self.path, assignments, config_file, fresh, environ=self.environ
        )


@pytest.fixture
def project(tmp_path: Path) -> Loads:
    write_workflows(tmp_path, MAIN)
    write_workflows(tmp_path, INCLUDED, "steps.yaml")
    return Loads(tmp_path / "workflows.yaml", tmp_path / "cache")


def run_text(plan: Plan) -> str:
    return str(plan.workflow("ci").steps[0].config["run"])


def test_unchanged_files_are_loaded_once(project: Loads) -> None:
    first = project(("greeting=hi",))
    second = project(("greeting=hi",))
    assert project.count == 1
    assert second.workflows == first.workflows
    assert run_text(second) == "echo hi"


@pytest.mark.parametrize(
    "change",
    [
        lambda p: p.path.write_text(MAIN.replace("echo", "printf")),
        lambda p: (p.path.parent / "steps.yaml").write_text(INCLUDED.replace("lint", "check")),
    ],
    ids=["main file", "included file"],
)
def test_a_changed_file_is_loaded_afresh(project: Loads, change: Callable[[Loads], None]) -> None:
    before = project(("greeting=hi",))
    change(project)
    after = project(("greeting=hi",))
    assert project.count == 2
    assert after.workflows != before.workflows


def test_other_assignments_config_file_or_wfe_config_load_afresh(
    project: Loads, tmp_path: Path
) -> None:
    assert run_text(project(("greeting=hi",))) == "echo hi"
    assert run_text(project(("greeting=bye",))) == "echo bye"
    config = tmp_path / "config.yaml"
    config.write_text("greeting: from-file\n")
    assert run_text(project(config_file=str(config))) == "echo from-file"
    config.write_text("greeting: edited\n")
    assert run_text(project(config_file=str(config))) == "echo edited"
    project.environ["WFE_CONFIG"] = '{"greeting": "from-env"}'
    assert run_text(project(config_file=str(config))) == "echo from-env"
    assert project.count == 5
    del project.environ["WFE_CONFIG"]
    assert run_text(project(("greeting=hi",))) == "echo hi"  # its entry is still there
    assert project.count == 5


def test_a_damaged_entry_is_ignored(project: Loads, tmp_path: Path) -> None:
    project(("greeting=hi",))
    for entry in (tmp_path / "cache").iterdir():
        entry.write_bytes(b"not a plan")
    assert run_text(project(("greeting=hi",))) == "echo hi"
    assert project.count == 2


def test_an_entry_others_could_have_written_is_ignored(project: Loads, tmp_path: Path) -> None:
    project(("greeting=hi",))
    for entry in (tmp_path / "cache").iterdir():
        entry.chmod(0o666)
    project(("greeting=hi",))
    assert project.count == 2


def test_a_file_with_mistakes_is_never_cached(project: Loads, tmp_path: Path) -> None:
    project.path.write_text(MAIN.replace("shell", "shel"))
    for _ in range(2):
        with pytest.raises(ConfigError, match="shel"):
            project(("greeting=hi",))
    assert project.count == 2
    assert not list((tmp_path / "cache").glob("*.plan"))


def test_the_cache_can_be_turned_off(project: Loads, tmp_path: Path) -> None:
    project.environ[plan_cache.CACHE_ENV] = "off"
    project(("greeting=hi",))
    project(("greeting=hi",))
    assert project.count == 2
    assert not (tmp_path / "cache").exists()


def test_entries_are_private_and_the_oldest_go(
    project: Loads, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plan_cache, "ENTRIES_KEPT", 2)
    for word in ("a", "b", "c"):
        project((f"greeting={word}",))
    entries = list((tmp_path / "cache").glob("*.plan"))
    assert len(entries) == 2
    assert all(stat.S_IMODE(entry.stat().st_mode) == 0o600 for entry in entries)
    assert stat.S_IMODE((tmp_path / "cache").stat().st_mode) == 0o700
    project(("greeting=c",))
    assert project.count == 3  # the newest entry is still there


def test_wfe_run_uses_the_cache_and_still_shows_warnings_and_edits(
    run_wfe: RunWfe, tmp_path: Path
) -> None:
    yaml_text = """
    workflow:
      id: ci
      shared_volume: {size: 1Gi}
      steps:
        - {name: hello, type: shell, config: {run: "echo first version"}}
    """
    cache = {plan_cache.CACHE_ENV: str(tmp_path / "cache")}
    for _ in range(2):
        code, out, err = run_wfe(yaml_text, "run", "--plain", env=cache)
        assert code == 0, err
        assert "first version" in out
        assert "shared_volume is a WFE Kubernetes setting" in err
    assert len(list((tmp_path / "cache").glob("*.plan"))) == 1
    code, out, err = run_wfe(yaml_text.replace("first", "second"), "run", "--plain", env=cache)
    assert code == 0, err
    assert "second version" in out
