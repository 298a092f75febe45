"""dvc.yaml declares its code dependencies exactly: what each stage imports, no more, no less.

DVC reruns a stage only when a declared dependency changes, so a module missing from ``deps``
means an edited module silently leaves stale results; an extra one means needless reruns.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DVC_YAML = yaml.safe_load((ROOT / "dvc.yaml").read_text())
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
PROJECT = ("stages", "porescope")


def _module_path(name: str) -> Path:
    path = ROOT / Path(*name.split("."))
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else path / "__init__.py"


def _imports(path: Path) -> set[str]:
    """Project modules (``stages`` and ``porescope``) that ``path`` imports at module level or inside functions."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            if not base.startswith(PROJECT):
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if _module_path(candidate).is_file() else base)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith(PROJECT))
    return found


def _closure(module: str) -> set[Path]:
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(_imports(_module_path(name)))
    paths = {_module_path(n).relative_to(ROOT) for n in seen}
    return {p for p in paths if p.name != "__init__.py"}  # package inits hold only docstrings


STAGES = {name: spec for name, spec in DVC_YAML["stages"].items() if "python -m stages." in spec["cmd"]}


@pytest.mark.parametrize("name", sorted(STAGES))
def test_code_deps_are_exactly_the_imported_modules(name: str) -> None:
    spec = STAGES[name]
    module = re.search(r"python -m (stages\.\w+)", spec["cmd"]).group(1)
    declared = {Path(d) for d in spec["deps"] if str(d).startswith(("stages/", "porescope/"))}
    needed = _closure(module)
    assert needed - declared == set(), f"{name}: imported but not declared as deps"
    assert declared - needed == set(), f"{name}: declared but not imported"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_params_groups_exist(name: str) -> None:
    for key in STAGES[name].get("params", []):
        node = PARAMS
        for part in key.split("."):  # a group or a dotted key inside one
            assert isinstance(node, dict) and part in node, f"{name}: params key {key!r} not in params.yaml"
            node = node[part]


def test_metrics_are_git_tracked_json_in_metrics_folder() -> None:
    for name, spec in DVC_YAML["stages"].items():
        for entry in spec.get("metrics", []):
            path, opts = next(iter(entry.items()))
            assert path.startswith("metrics/") and path.endswith(".json"), name
            assert opts.get("cache") is False, f"{name}: {path} must be cache: false (tracked by git)"


def test_package_inits_import_nothing_from_the_project() -> None:
    """The deps above skip ``__init__.py`` files; that is sound only while no package init
    imports project modules (the top-level init loads its public names lazily)."""
    for init in sorted((ROOT / "porescope").rglob("__init__.py")) + [ROOT / "stages" / "__init__.py"]:
        if "resources" in init.parts:
            continue
        assert _imports(init) == set(), f"{init.relative_to(ROOT)} imports project modules at import time"


@pytest.mark.parametrize("name", ["dvc.yaml", "dvc.lock", "params.yaml"])
def test_dvc_reads_the_pipeline_files_with_libyaml(name: str) -> None:
    """DVC parses dvc.yaml and dvc.lock twice and params.yaml once per stage on every
    ``dvc repro``; in pure Python that was about 45 % of the CPU of a no-op repro (issue 12), so
    pyproject.toml pins ruamel.yaml.clib. The C parser must give DVC exactly what the pure one did."""
    from dvc.utils.serialize._yaml import parse_yaml
    from ruamel.yaml import YAML

    assert YAML(typ="safe").Parser.__name__ == "CParser", "ruamel.yaml.clib missing: DVC parses YAML in pure Python"
    text = (ROOT / name).read_text()
    fast, pure = parse_yaml(text, name), YAML(typ="safe", pure=True).load(text)
    assert fast == pure and repr(fast) == repr(pure)
