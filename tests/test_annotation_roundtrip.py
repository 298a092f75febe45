"""The annotation round trip: the masks ``measure`` writes are plain 8-bit grey label images
(class ids 0/1, as Fiji and napari open them), and a mask, as written or corrected by hand, goes
back through ``ingest`` unchanged."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from porescope.io.mask_encoding import IGNORE_ID
from porescope.measure import folder
from porescope.measure.params import MeasureParams
from porescope.preprocessing.ingest import parse_ingest_params, run_ingest
from porescope.segmentation import models
from test_measure import membrane_image  # dark round pores on a grey surface

SETTINGS = MeasureParams(tile=64, overlap=16, device="cpu", threads=1, figures=False,
                         scale_bar=False)


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("roundtrip")
    cfg = models.model_config("Unet", "mobilenet_v2", 1, encoder_depth=3, decoder_channels=[16, 8, 4])
    torch.manual_seed(0)
    model = models.build_model(cfg)
    # a median threshold, so that the untrained model's mask holds both classes
    proba = torch.sigmoid(model.eval()(torch.zeros(1, 1, 64, 64))).detach().numpy()
    models.save_model_file(root / "model.pt", model, cfg, {"0": "background", "1": "pore"},
                           {"threshold": float(np.clip(np.median(proba), 0.01, 0.99))})
    inp = root / "input"
    inp.mkdir()
    cv2.imwrite(str(inp / "a.png"), membrane_image(96, 128, 1))
    tifffile.imwrite(inp / "b.tif", membrane_image(80, 96, 2).astype(np.uint16) * 200)
    out = {}
    for crop in (0, 10):
        out[crop] = root / f"out{crop}"
        folder.run_measure(inp, root / "model.pt", out[crop],
                           dataclasses.replace(SETTINGS, crop_bottom=crop))
    return {"root": root, "input": inp, **{f"out{k}": v for k, v in out.items()}}


def _dataset(measured: dict[str, Path], masks: Path, name: str) -> Path:
    """images/ = the measured micrographs, masks/ = the mask files (paired by stem)."""
    ds = measured["root"] / name
    shutil.copytree(measured["input"], ds / "images")
    shutil.copytree(masks, ds / "masks")
    return ds


def _read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_measure_masks_are_plain_8bit_label_images(measured: dict[str, Path]) -> None:
    for stem in ("a", "b"):
        im = Image.open(measured["out0"] / "masks" / f"{stem}.png")
        assert im.mode == "L"  # 8-bit grey, no palette or alpha: Fiji and napari read the ids
        assert set(np.unique(np.asarray(im)).tolist()) == {0, 1}


@pytest.mark.parametrize("encoding", [
    {"mask_format": "labels", "n_classes": 2},
    {"mask_format": "binary", "foreground": 1}])
@pytest.mark.parametrize("crop", [0, 10])
def test_measure_mask_goes_back_through_ingest_unchanged(measured, encoding, crop, tmp_path) -> None:
    out = measured[f"out{crop}"]
    ds = _dataset(measured, out / "masks", f"ds_{crop}_{encoding['mask_format']}")
    run_ingest(ds, tmp_path / "ingested",
               parse_ingest_params({"tile_size": 32, "crop_bottom": crop, **encoding}))
    for stem in ("a", "b"):
        written = _read(out / "masks" / f"{stem}.png")
        rows = written.shape[0] - crop
        np.testing.assert_array_equal(_read(tmp_path / "ingested" / "masks" / f"{stem}.png"),
                                      written[:rows])


def test_corrected_mask_with_unchecked_area_goes_back_through_ingest(measured, tmp_path) -> None:
    masks = tmp_path / "corrected"
    shutil.copytree(measured["out0"] / "masks", masks)
    a = _read(masks / "a.png").copy()
    a[5:15, 5:15] = 1            # an object the model missed
    a[40:60, 40:60] = 0          # a false detection erased
    a[:, 100:] = 2               # "not checked": painted with the ignore value
    Image.fromarray(a).save(masks / "a.png")
    ds = _dataset(measured, masks, "corrected_ds")
    run_ingest(ds, tmp_path / "ingested", parse_ingest_params(
        {"tile_size": 32, "mask_format": "labels", "n_classes": 2, "ignore_value": 2}))
    np.testing.assert_array_equal(_read(tmp_path / "ingested" / "masks" / "a.png"),
                                  np.where(a == 2, IGNORE_ID, a))
