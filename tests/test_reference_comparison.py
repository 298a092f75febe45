"""Measured vs a lab's manual reference: errors per image and pooled, on a hand-made case."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from porescope.measure.reference import ReferenceError, read_reference, reference_errors

ROOT = Path(__file__).resolve().parents[1]


def summary():
    return pd.DataFrame({"image_id": ["a", "b", "c"], "porosity": [0.12, 0.30, 0.05],
                         "count_median_area": [80, 190, 21], "count_split_labels": [110, 180, 19],
                         "count_boolean_model": [99.0, 205.0, 20.0]})


def test_errors_by_hand(tmp_path):
    ref = tmp_path / "manual.csv"
    ref.write_text("image,count,porosity\na.tif,100,0.10\nb,200,\nd,7,0.2\n")
    table, m = reference_errors(summary(), read_reference(ref))
    assert list(table["image"]) == ["a", "b"] and m["n_images"] == 2 and m["missing"] == ["d"]
    # split: a +10 %, b -10 %; pooled (110 + 180) / 300 - 1 = -3.33 %
    assert m["count"]["split_labels"] == {"mean_abs_pct": 10.0, "max_abs_pct": 10.0, "pooled_pct": -3.3333}
    # Boolean: a -1 %, b +2.5 %; pooled 304 / 300 - 1 = +1.33 %
    assert m["count"]["boolean_model"] == {"mean_abs_pct": 1.75, "max_abs_pct": 2.5, "pooled_pct": 1.3333}
    assert m["count"]["median_area"]["max_abs_pct"] == 20.0
    # porosity only where the reference has it: a is +2 pp
    assert m["porosity"] == {"mean_abs_pp": 2.0, "max_abs_pp": 2.0, "pooled_pp": 2.0}
    assert np.isnan(table.loc[1, "porosity_error_pp"])


def test_porescope_reference_columns_are_understood():
    path = ROOT / "data" / "reference" / "track-membranes-sem" / "counts.csv"
    ref = read_reference(path)
    assert len(ref) == 9 and set(ref.columns) == {"image", "count", "porosity"}
    assert ref.set_index("image").loc["photo5", "count"] == 58


@pytest.mark.parametrize("text, message", [
    ("stem_only\nx\n", "needs an 'image' column"),
    ("image,notes\nx,hello\n", "needs a 'count' and / or a 'porosity' column"),
    ("image,count\nx,1\nx,2\n", "listed twice: x"),
    ("image,porosity\nx,12.5\n", "must be a fraction"),
    ("image,count\nx,12\ny,abc\nz,\n", r"'count' is not a number for image\(s\) y \('abc'\)"),
])
def test_bad_reference_tables_are_named(tmp_path, text, message):
    path = tmp_path / "ref.csv"
    path.write_text(text)
    with pytest.raises(ReferenceError, match=message):
        read_reference(path)
    with pytest.raises(ReferenceError, match="not found"):
        read_reference(tmp_path / "absent.csv")
