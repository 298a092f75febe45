"""bench/real_sem_reference.py's comparison (used by bench/real_sem_seeds.py) on the real images."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from bench_scripts import load_bench
from porescope.measure.segment import load_model
from porescope.segmentation import models


@pytest.fixture(scope="module")
def ref():
    module = load_bench("real_sem_reference")
    if not module.IMAGES.is_dir():
        pytest.skip(f"{module.IMAGES} not found: the real SEM images are in ../shared/data")
    return module


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.pt"
    cfg = models.model_config("Unet", "mobilenet_v2", 1, encoder_depth=3, decoder_channels=[16, 8, 4])
    torch.manual_seed(0)
    models.save_model_file(path, models.build_model(cfg), cfg, {"0": "background", "1": "pore"})
    return load_model(path, device="cpu")


def test_compare_model_scores_every_image_and_records_the_guard(ref, tiny_model):
    """An untrained network: every reference image is measured, the errors are those of the
    counts against the manual ones, and each image carries the guard's verdict."""
    got, table, metrics = ref.compare_model(tiny_model, ref.measure_params(), 1.0, guard=True)
    counts = pd.read_csv(ref.REFERENCE / "counts.csv")
    assert got["image_id"].tolist() == counts["image"].tolist() and metrics["n_images"] == len(counts)
    err = table.set_index("image")["split_labels_error_pct"]
    expected = 100 * (got.set_index("image_id")["count_split_labels"] / counts.set_index("image")
                      ["manual_count_guard_frame"] - 1)
    np.testing.assert_allclose(err.to_numpy(float), expected.to_numpy(float), atol=1e-3)
    assert set(got["certified"]) <= {"yes", "no"}
    flagged = got[got["certified"] == "no"]
    assert (flagged["guard_flags"].str.len() > 0).all()      # a withheld verdict names its reason
