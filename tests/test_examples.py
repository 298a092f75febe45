"""The example notebooks run from top to bottom with this checkout's code.

They measure shared real data (``<repo>/../shared/data``, or ``PORESCOPE_SHARED_DATA``) and are
skipped, saying why, when those data are not there.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
DATA = Path(os.environ.get("PORESCOPE_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.mark.parametrize("name, needs", [
    ("measure_in_python.ipynb", "track-membranes-sem-unlabelled/photo5.jpg"),
])
def test_notebook_runs(name, needs, monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="nbformat missing: pip install -e '.[dev]'")
    nbclient = pytest.importorskip("nbclient", reason="nbclient missing: pip install -e '.[dev]'")
    pytest.importorskip("ipykernel", reason="ipykernel missing: pip install -e '.[dev]'")
    if not (DATA / needs).is_file():
        pytest.skip(f"{name} measures {needs} of the shared data, not found under {DATA} "
                    "(set PORESCOPE_SHARED_DATA to its folder)")
    # the kernel is a child process: it imports this checkout and finds the data by the env
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    monkeypatch.setenv("PORESCOPE_SHARED_DATA", str(DATA))
    nb = nbformat.read(EXAMPLES / name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(EXAMPLES)}})
    client.execute()               # raises CellExecutionError naming the failing cell
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.get("outputs", []))
    assert "objects" in text and "pore centres are" in text
