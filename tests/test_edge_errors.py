"""bench/edge_errors.py: pixel errors split into misplaced edges and missed / invented structures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench_scripts import load_bench


def _module():
    return load_bench("edge_errors")


def test_shifted_edges_and_a_missed_segment_are_told_apart() -> None:
    """A membrane predicted 2 px too wide on one side, one membrane missed entirely: the widening
    is within 2 px of the truth, the missed one is a far error in one big component, and
    forgiving 2 px leaves only the missed membrane in the Dice."""
    ee = _module()
    truth = np.zeros((64, 64), bool)
    truth[:, 10:14] = True   # found, too wide
    truth[:, 40:44] = True   # missed
    pred = np.zeros_like(truth)
    pred[:, 10:16] = True
    e = ee.edge_errors(truth, pred, radii=(1, 2), big=(50,))
    assert (e["tp"], e["fp"], e["fn"]) == (256, 128, 256)
    assert (e["fp_le_1"], e["fp_le_2"]) == (64, 128)
    assert (e["fn_le_1"], e["fn_le_2"], e["far_px"], e["far_px_in_ge_50"]) == (0, 0, 256, 256)
    row = {**e}
    assert ee.dice_forgiving(row, 2) == pytest.approx(2 * 256 / (2 * 256 + 256))
    assert ee.dice_forgiving(row, 1) == pytest.approx(2 * 256 / (2 * 256 + 64 + 256))


def test_command_line_prints_pooled_rows(tmp_path: Path, capsys) -> None:
    ee = _module()
    (tmp_path / "t").mkdir()
    (tmp_path / "p").mkdir()
    truth = np.zeros((32, 32), np.uint8)
    truth[:, 8:12] = 1
    Image.fromarray(truth).save(tmp_path / "t" / "a.png")
    Image.fromarray(np.roll(truth, 1, axis=1)).save(tmp_path / "p" / "a.png")
    assert ee.main(["--truth", str(tmp_path / "t"), "--pred", str(tmp_path / "p"), "--ids", "a"]) == 0
    out = capsys.readouterr().out
    assert "pooled" in out and "100% of the errors within 1 px of an edge" in out
