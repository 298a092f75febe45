"""Code fingerprints: import closures, the ``code`` stage, and the guard's check of them."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from porescope.errors import PorescopeError
from porescope.provenance.code_fingerprint import (
    FINGERPRINT_KIND,
    code_fingerprint,
    file_md5,
    import_closure,
    read_fingerprint,
    stale_files,
)
from porescope.provenance.dep_guard import DependencyChangedError, StaleCodeError, guard_dependencies

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def package(tmp_path: Path) -> Path:
    """``app`` with every kind of import the closure must follow (and some it must not)."""
    files = {
        "app/__init__.py": "",
        "app/main.py": "import os\nfrom app import helpers\nfrom app.sub import leaf as _leaf\n",
        "app/helpers.py": "from .sub.tool import work\n\ndef later():\n    import app.lazy\n",
        "app/lazy.py": "from . import constants\n",
        "app/constants.py": "",
        "app/sub/__init__.py": "",
        "app/sub/leaf.py": "from ..constants import *\n",
        "app/sub/tool.py": "def work():\n    pass\n",
        "app/unused.py": "import app.main\n",
        "other/mod.py": "",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path


def test_closure_follows_absolute_relative_and_function_level_imports(package: Path) -> None:
    assert import_closure("app.main", package, packages=("app",)) == [
        "app/constants.py", "app/helpers.py", "app/lazy.py", "app/main.py", "app/sub/leaf.py", "app/sub/tool.py"]
    # a name imported from a module (work from tool) is that module; other packages are not followed
    assert import_closure("app.sub.tool", package, packages=("app",)) == ["app/sub/tool.py"]


def test_closure_of_a_real_stage() -> None:
    train = import_closure("stages.train", ROOT)
    assert {"stages/train.py", "stages/common.py", "porescope/segmentation/train_model.py",
            "porescope/provenance/dep_guard.py", "porescope/provenance/code_fingerprint.py"} <= set(train)
    assert not any(f.startswith("porescope/report/") for f in train)  # train writes no report
    assert all((ROOT / f).is_file() for f in train)


def test_fingerprint_records_each_files_md5_and_changes_with_one_byte(package: Path) -> None:
    first = code_fingerprint("app.main", package, packages=("app",))
    assert first["kind"] == FINGERPRINT_KIND and first["module"] == "app.main"
    assert first["files"]["app/lazy.py"] == file_md5(package / "app/lazy.py")
    assert read_fingerprint(json.dumps(first)) == first["files"]
    assert stale_files(first["files"], package) == []
    (package / "app/sub/tool.py").write_text("def work():\n    pass \n")
    second = code_fingerprint("app.main", package, packages=("app",))
    assert {k for k in first["files"] if first["files"][k] != second["files"][k]} == {"app/sub/tool.py"}
    assert stale_files(first["files"], package) == ["app/sub/tool.py: changed since the fingerprint was written"]
    assert code_fingerprint("app.unused", package, packages=("app",))["files"].keys() > first["files"].keys()


def test_code_stage_writes_one_fingerprint_per_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stages.code import main

    monkeypatch.chdir(ROOT)  # the stage reads code relative to the repository root
    assert main(["--out", str(tmp_path / "code"), "train", "report"]) == 0
    assert sorted(p.name for p in (tmp_path / "code").iterdir()) == ["report.json", "train.json"]
    written = json.loads((tmp_path / "code" / "train.json").read_text())
    assert written == code_fingerprint("stages.train", ROOT)


def test_code_stage_refuses_an_unknown_stage_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stages.code import main

    monkeypatch.chdir(ROOT)
    with pytest.raises(PorescopeError, match="stage 'nope': no module stages/nope.py"):
        main(["--out", str(tmp_path / "code"), "train", "nope"])
    assert not (tmp_path / "code").exists()


GUARDED = textwrap.dedent("""\
    stages:
      work:
        cmd: python -m app.main
        deps:
          - code/work.json
          - notes.json
        outs:
          - out.txt
    """)


@pytest.fixture()
def fingerprinted(package: Path) -> Path:
    (package / "dvc.yaml").write_text(GUARDED)
    (package / "params.yaml").write_text("seed: 1\n")
    (package / "code").mkdir()
    (package / "code" / "work.json").write_text(json.dumps(code_fingerprint("app.main", package, packages=("app",))))
    (package / "notes.json").write_text('{"kind": "notes"}')  # a JSON dep that is no fingerprint
    return package


def test_guard_passes_when_the_code_is_what_the_fingerprint_records(fingerprinted: Path) -> None:
    with guard_dependencies("work", fingerprinted / "dvc.yaml"):
        (fingerprinted / "out.txt").write_text("done\n")
        (fingerprinted / "app" / "unused.py").write_text("# not this stage's code\n")


def test_guard_refuses_to_start_on_code_edited_after_the_fingerprint(fingerprinted: Path) -> None:
    (fingerprinted / "app" / "sub" / "leaf.py").write_text("EDITED = 1\n")
    ran = False
    with pytest.raises(StaleCodeError, match="app/sub/leaf.py: changed since") as info:
        with guard_dependencies("work", fingerprinted / "dvc.yaml"):
            ran = True
    assert not ran and "'work'" in str(info.value) and isinstance(info.value, PorescopeError)


def test_guard_names_code_edited_while_the_stage_ran(fingerprinted: Path) -> None:
    with pytest.raises(DependencyChangedError) as info:
        with guard_dependencies("work", fingerprinted / "dvc.yaml"):
            (fingerprinted / "app" / "lazy.py").write_text("from . import constants  # edited\n")
    assert info.value.changes == ["app/lazy.py: content changed"]
