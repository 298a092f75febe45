"""dvc.yaml declares the code each stage runs exactly: no more, no less.

DVC reruns a stage only when a declared dependency changes. Each python stage depends on its code
fingerprint ``data/code/<stage>.json``, written by the ``code`` stage from the stage module's
import closure, and the ``code`` stage depends on every file of every closure. A module missing
from the ``code`` stage's deps means an edited module silently leaves stale results; an extra
one means needless runs of the (cheap) ``code`` stage.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from porescope.provenance.code_fingerprint import import_closure, imported_modules

ROOT = Path(__file__).resolve().parents[1]
DVC_YAML = yaml.safe_load((ROOT / "dvc.yaml").read_text())
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
CODE_STAGE = DVC_YAML["stages"]["code"]

STAGES = {name: spec for name, spec in DVC_YAML["stages"].items() if "python -m stages." in spec["cmd"]}
FINGERPRINTED = [n for n in STAGES if n != "code"]


def test_the_code_stage_fingerprints_every_python_stage() -> None:
    args = CODE_STAGE["cmd"].split()
    assert args[:5] == ["python", "-m", "stages.code", "--out", "data/code"]
    assert args[5:] == FINGERPRINTED, "the code stage must name every python stage, in pipeline order"
    assert CODE_STAGE["outs"] == ["data/code"] and not CODE_STAGE.get("params")


def test_the_code_stage_depends_on_exactly_the_imported_modules() -> None:
    needed = {f for name in STAGES for f in import_closure(f"stages.{name}", ROOT)}
    declared = set(CODE_STAGE["deps"])
    assert needed - declared == set(), "imported by a stage but not a dep of the code stage: add them"
    assert declared - needed == set(), "a dep of the code stage that no stage imports: remove them"


@pytest.mark.parametrize("name", FINGERPRINTED)
def test_each_stage_depends_on_its_fingerprint_and_on_no_code_file(name: str) -> None:
    deps = STAGES[name]["deps"]
    assert f"data/code/{name}.json" in deps
    assert [d for d in deps if str(d).startswith(("stages/", "porescope/"))] == []
    assert [d for d in deps if str(d).startswith("data/code")] == [f"data/code/{name}.json"]


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
    """Import closures skip ``__init__.py`` files; that is sound only while no package init
    imports project modules (the top-level init loads its public names lazily)."""
    for init in sorted((ROOT / "porescope").rglob("__init__.py")) + [ROOT / "stages" / "__init__.py"]:
        if "resources" in init.parts:
            continue
        module = ".".join(init.relative_to(ROOT).parent.parts)
        assert imported_modules(module, ROOT) == set(), f"{init.relative_to(ROOT)} imports project modules at import time"


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
