"""porescope: trustworthy pore statistics from electron micrographs (see README).

The public functions, importable from the package itself::

    from porescope import read_micrograph, measure_micrograph

are loaded on first use (PEP 562), so ``import porescope.<module>`` pays only for what that
module imports (the pipeline's stages import single modules; torch and matplotlib load only
when a function needs them).
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> module that defines it
_EXPORTS = {
    "read_micrograph": "porescope.io.micrograph",
    "Micrograph": "porescope.io.micrograph",
    "load_model": "porescope.measure.segment",
    "predict_mask": "porescope.measure.segment",
    "measure_micrograph": "porescope.measure.measurement",
    "MeasureParams": "porescope.measure.params",
    "measure_objects": "porescope.api",
    "count_pores": "porescope.api",
    "spatial_summary": "porescope.api",
    "synthesize_membrane": "porescope.api",
    "PorescopeError": "porescope.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'porescope' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value        # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
