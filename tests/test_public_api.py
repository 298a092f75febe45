"""The public API: ``porescope.<name>`` for every name of ``porescope.__all__``, loaded lazily,
each documented (numpydoc) with an example that runs."""

from __future__ import annotations

import doctest
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import porescope

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = ["read_micrograph", "load_model", "predict_mask", "measure_micrograph",
             "measure_objects", "count_pores", "spatial_summary", "synthesize_membrane"]
HEAVY = ("torch", "matplotlib", "segmentation_models_pytorch", "dask")


def _modules_after(code: str) -> set[str]:
    """Modules loaded by running ``code`` in a fresh interpreter (dotted names and top levels)."""
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json\n"
                          "print(json.dumps(sorted(set(sys.modules) | {m.split('.')[0] for m in sys.modules})))"],
                         cwd=ROOT, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_all_lists_the_public_functions():
    assert set(FUNCTIONS) <= set(porescope.__all__)
    assert set(porescope.__all__) <= set(dir(porescope))
    for name in porescope.__all__:
        assert getattr(porescope, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'measure_everything'"):
        porescope.measure_everything


@pytest.mark.parametrize("code", ["import porescope", "import porescope.io.micrograph",
                                  "import porescope.preprocessing.ingest",
                                  "from porescope import read_micrograph"])
def test_imports_stay_light(code):
    """Importing the package or a reading module must not load torch or matplotlib (every
    pipeline stage imports ``porescope.<module>`` and must pay only for what it uses)."""
    loaded = _modules_after(code)
    assert not loaded & set(HEAVY), (code, sorted(loaded & set(HEAVY)))


def test_a_heavy_name_loads_on_first_use():
    assert "porescope.measure.segment" not in _modules_after("import porescope")
    loaded = _modules_after("import porescope\nporescope.load_model")
    assert "porescope.measure.segment" in loaded   # torch only when a model is loaded
    assert "torch" not in loaded


@pytest.mark.parametrize("name", FUNCTIONS)
def test_numpydoc_with_a_running_example(name):
    func = getattr(porescope, name)
    doc = inspect.getdoc(func)
    for section in ("Parameters\n----------", "Returns\n-------", "Examples\n--------"):
        assert section in doc, (name, section)
    documented = {p for p in inspect.signature(func).parameters if not p.startswith("*")}
    for p in documented - {"spec", "options"}:
        assert p in doc.split("Returns\n-------")[0], (name, p)
    tests = doctest.DocTestFinder().find(func, name, globs=dict(func.__globals__))
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for t in tests:
        runner.run(t)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0 and result.failed == 0, (name, result)
