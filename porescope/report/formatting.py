"""Number and text formats of the report's cells; every value missing or not finite is ``n/a``.

* porosity in % with 2 decimals (``100 * fraction``); porosity errors in percentage points
  with sign and 2 decimals (``+0.36``);
* counts of the frame-counting estimators (median-area rule, watershed split) as integers, the
  Boolean-model count with 1 decimal; count errors in % with sign and 1 decimal;
* densities with 3 significant digits in scientific notation, ``3.72×10⁷`` (per cm² when the
  pixel size is known, else per px², the unit then in the cell);
* lengths (ECD) with 3 significant digits, trailing zeros kept (:func:`format_sig`), in the
  analysis length unit when the pixel size is known, else in px;
* segmentation scores (Dice, IoU, precision, recall, AP) with 4 decimals; Clark-Evans R with 3.

The inputs are loaded JSON and CSV values, so the readers here are lenient:
:func:`finite_or_none` and :func:`lookup` turn anything missing into ``None``.

Examples
--------
>>> format_sci(37231445.3125), format_sig(0.0554), format_porosity(0.2050), format_signed(-4.6875)
('3.72×10⁷', '0.0554', '20.50', '-4.7')
>>> format_count(68.7034, "boolean_model"), format_count(61.0, "split_labels"), format_number(None)
('68.7', '61', 'n/a')
>>> lookup({"a": {"b": 1}}, "a", "b"), lookup({"a": None}, "a", "b")
(1, None)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["NA", "finite_or_none", "lookup", "format_number", "format_signed", "format_sci",
           "format_sig", "format_porosity", "format_count", "format_text", "format_plain"]

#: the text of a missing or non-finite value
NA = "n/a"
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def finite_or_none(x: Any) -> float | None:
    """``float(x)`` when finite, else None (None, NaN, inf, empty or non-numeric strings)."""
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def format_number(x: Any, spec: str = ".4f") -> str:
    """``format(x, spec)``, or ``n/a`` when ``x`` is missing or not finite."""
    v = finite_or_none(x)
    return NA if v is None else format(v, spec)


def format_signed(x: Any, decimals: int = 1) -> str:
    """Signed fixed-point (``+1.5``, ``-0.36``), ``n/a`` when missing."""
    return format_number(x, f"+.{decimals}f")


def format_sci(x: Any, digits: int = 3) -> str:
    """Scientific notation with ``digits`` significant digits: ``3.72×10⁷``; ``0`` for zero."""
    v = finite_or_none(x)
    if v is None:
        return NA
    if v == 0:
        return "0"
    exp = math.floor(math.log10(abs(v)))
    mant = round(v / 10.0 ** exp, digits - 1)
    if abs(mant) >= 10:                     # 9.995 -> 10.0: carry into the exponent
        exp += 1
        mant = round(v / 10.0 ** exp, digits - 1)
    text = f"{mant:.{digits - 1}f}"
    return text if exp == 0 else f"{text}×10{str(exp).translate(_SUPERSCRIPT)}"


def format_sig(x: Any, digits: int = 3) -> str:
    """``digits`` significant digits in fixed-point, trailing zeros kept (``0.510``, ``0.0554``,
    ``29.9``; integers of more digits are shown whole, ``1235``)."""
    v = finite_or_none(x)
    if v is None:
        return NA
    if v == 0:
        return f"{0:.{digits - 1}f}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(v))))
    return f"{v:.{decimals}f}"


def format_porosity(fraction: Any) -> str:
    """Porosity fraction as % with 2 decimals (``0.2050 -> 20.50``)."""
    v = finite_or_none(fraction)
    return NA if v is None else f"{100.0 * v:.2f}"


def format_count(x: Any, estimator: str) -> str:
    """A pore count: integer for frame counts, 1 decimal for the Boolean-model estimate."""
    return format_number(x, ".1f" if estimator.startswith("boolean_model") else ".0f")


def format_text(x: Any) -> str:
    """A text cell: ``n/a`` for a missing value (None, NaN, empty)."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)) or str(x).strip() == "":
        return NA
    return str(x)


def lookup(d: Any, *keys: Any) -> Any:
    """Nested lookup that returns None for any missing level."""
    for k in keys:
        if not isinstance(d, Mapping) or k not in d:
            return None
        d = d[k]
    return d


def format_plain(v: Any) -> str:
    """A parameter value as YAML writes it (``null``, ``true``, ``[a, b]``, ``{k: v}``; floats ``g``)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return format(v, "g")
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(format_plain(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{k}: {format_plain(x)}" for k, x in v.items()) + "}"
    return str(v)
