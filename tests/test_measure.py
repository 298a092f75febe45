"""Tests of ``stages.measure``, ``porescope measure`` and the measure library: outputs, safety,
scale, real images, the ``enabled`` switch, in-memory measurement."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import tifffile
import torch
import yaml

from porescope.cli import main as cli
from porescope.measure import folder, measurement, segment
from porescope.measure.params import MeasureParams, parse_measure_params
from stages import measure as measure_stage
from porescope.config import ParamsError
from porescope.segmentation import models
from porescope.analysis.membrane import AnalysisParams
from porescope.io.pairing import IngestError
from porescope.segmentation.inference import predict_proba

# the shared real data beside the repository (PORESCOPE_SHARED_DATA for another checkout layout)
DATA = Path(os.environ.get("PORESCOPE_SHARED_DATA",
                          Path(__file__).resolve().parents[2] / "shared" / "data"))
UNLABELLED = DATA / "track-membranes-sem-unlabelled"
FAST = AnalysisParams.from_mapping({"spatial": {"n_sim": 9, "n_radii": 10}})
SETTINGS = MeasureParams(tile=64, overlap=16, device="cpu", threads=1, analysis=FAST, figures=False)


def tiny_model(path: Path, meta: dict | None = None) -> Path:
    cfg = models.model_config("Unet", "mobilenet_v2", 1, encoder_depth=3, decoder_channels=[16, 8, 4])
    torch.manual_seed(0)
    models.save_model_file(path, models.build_model(cfg), cfg, {"0": "background", "1": "pore"}, meta)
    return path


def membrane_image(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((h, w), 130, np.uint8)
    yy, xx = np.ogrid[:h, :w]
    for _ in range(8):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 <= 36] = 10
    return img


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("measure")
    model = tiny_model(root / "model.pt")
    model50 = tiny_model(root / "model50.pt", {"pixel_size_nm": 50.0})
    inp = root / "input"
    inp.mkdir()
    cv2.imwrite(str(inp / "a.png"), membrane_image(80, 100, 1))
    b = membrane_image(70, 90, 2).astype(np.uint16) * 200           # 16-bit, ImageJ 25 nm/px
    tifffile.imwrite(inp / "b.tif", b, imagej=True, resolution=(40.0, 40.0), metadata={"unit": "um"})
    (inp / "README.md").write_text("micrographs to measure\n")
    (inp / ".gitkeep").write_text("")
    empty = root / "empty"
    empty.mkdir()
    (empty / "README.md").write_text("put micrographs here\n")
    (empty / ".gitkeep").write_text("")
    return {"root": root, "model": model, "model50": model50, "input": inp, "empty": empty}


def test_run_measure_writes_everything(files, tmp_path):
    out = tmp_path / "out"
    summary = folder.run_measure(files["input"], files["model"], out,
                                  dataclasses.replace(SETTINGS, figures=True),
                                  metrics=tmp_path / "m.json")
    assert list(summary["image_id"]) == ["a", "b"]
    for sub in ("masks/a.png", "masks/b.png", "overlays/a.png", "objects.csv", "summary.csv",
                "report.md", "run.json", "figures/area_histogram.png"):
        assert (out / sub).is_file(), sub
    assert cv2.imread(str(out / "masks" / "a.png"), cv2.IMREAD_UNCHANGED).shape == (80, 100)
    assert cv2.imread(str(out / "masks" / "b.png"), cv2.IMREAD_UNCHANGED).shape == (70, 90)
    table = pd.read_csv(out / "summary.csv").set_index("image_id")
    assert table.loc["b", "pixel_size_nm"] == pytest.approx(25.0)
    assert table.loc["b", "pixel_size_source"].startswith("tiff")
    assert np.isnan(table.loc["a", "pixel_size_nm"]) and table.loc["a", "pixel_size_source"] == "unknown"
    assert table.loc["b", "normalisation"].startswith("percentile")       # 16-bit -> uint8
    assert {"porosity", "count_median_area", "count_split_labels", "count_boolean_model",
            "density_cm2_split_labels", "ce_verdict", "scale", "crop_bottom"} <= set(table.columns)
    objects = pd.read_csv(out / "objects.csv")
    assert {"image_id", "Area", "Perim.", "Feret", "ECD", "counted"} <= set(objects.columns)
    report = (out / "report.md").read_text()
    assert "| a |" in report and "| b |" in report
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["n_images"] == 2 and set(m["images"]) == {"a", "b"}


def test_results_do_not_depend_on_order(files, tmp_path):
    both = folder.run_measure(files["input"], files["model"], tmp_path / "o", SETTINGS)
    alone = measurement.measure_one(files["input"] / "b.tif", files["model"], SETTINGS)
    row = both.set_index("image_id").loc["b"]
    for key in ("porosity", "count_split_labels", "count_boolean_model", "mc_nnd_p", "ce_R"):
        assert row[key] == pytest.approx(alone.analysis.summary[key], nan_ok=True)


def test_empty_folder_gives_empty_tables(files, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="porescope.measure"):
        summary = folder.run_measure(files["empty"], files["model"], tmp_path / "o", SETTINGS)
    assert summary.empty and "no micrographs found" in caplog.text
    objects = pd.read_csv(tmp_path / "o" / "objects.csv")
    table = pd.read_csv(tmp_path / "o" / "summary.csv")
    assert objects.empty and "Area" in objects.columns
    assert table.empty and "porosity" in table.columns
    assert "No micrographs" in (tmp_path / "o" / "report.md").read_text()


def test_stage_main_with_params(files, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({
        "seed": 1, "analyze": {"spatial": {"n_sim": 9}},
        "measure": {"source": "x", "pixel_size_nm": 30.0, "crop_bottom": 0, "tile": 64,
                    "overlap": 16, "device": "cpu", "threads": 1, "figures": False}}))
    assert measure_stage.main(["--params", str(params), "--model", str(files["model"]), "--source",
                         str(files["input"]), "--out", str(tmp_path / "o"), "--metrics",
                         str(tmp_path / "m.json")]) == 0
    table = pd.read_csv(tmp_path / "o" / "summary.csv")
    assert (table["pixel_size_nm"] == 30.0).all() and (table["pixel_size_source"] == "given").all()
    assert "differs from the file's metadata" in table.set_index("image_id").loc["b", "warnings"]


def test_cli_refuses_to_overwrite(files, tmp_path, capsys):
    out = tmp_path / "results"
    out.mkdir()
    (out / "mine.txt").write_text("user data")
    argv = ["measure", "--model", str(files["model"]), "--input", str(files["input"]),
            "--out", str(out)]
    assert cli.main(argv) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "mine.txt").read_text() == "user data"
    # the input folder (or a parent of it) is never an output, even with --overwrite
    assert cli.main(["measure", "--model", str(files["model"]), "--input", str(files["input"]),
                     "--out", str(files["input"].parent), "--overwrite"]) == 2
    assert (files["input"] / "a.png").is_file()


def test_cli_overwrite_and_options(files, tmp_path):
    out = tmp_path / "results"
    out.mkdir()                                         # an empty folder is fine
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"seed": 1, "analyze": {"spatial": {"n_sim": 9}},
                                      "measure": {"tile": 64, "overlap": 16, "device": "cpu", "threads": 1,
                                                  "figures": False}}))
    base = ["measure", "--model", str(files["model"]), "--input", str(files["input"]),
            "--out", str(out), "--params", str(params)]
    assert cli.main(base + ["--pixel-size-nm", "40", "--crop-bottom", "5", "--scale", "1.5",
                            "--margin", "3"]) == 0
    t = pd.read_csv(out / "summary.csv").set_index("image_id")
    assert (t["pixel_size_nm"] == 40.0).all() and (t["crop_bottom"] == 5).all()
    assert (t["margin"] == 3).all() and t.loc["a", "analysed_px"] == (75 - 6) * (100 - 6)
    assert (t["scale"] == 1.5).all() and (t["scale_source"] == "scale").all()
    assert t.loc["a", "height"] == 75       # analysed rows
    mask = cv2.imread(str(out / "masks" / "a.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (80, 100) and not mask[:3].any() and not mask[72:].any()
    (out / "marker").write_text("x")                   # a file the user added: kept, run refused
    assert cli.main(base + ["--overwrite"]) == 2
    assert (out / "marker").read_text() == "x"
    (out / "marker").unlink()
    assert cli.main(base + ["--overwrite"]) == 0
    with pytest.raises(SystemExit):
        cli.main(base + ["--crop-bottom", "lots"])


def _good_and_broken(tmp_path: Path) -> Path:
    inp = tmp_path / "in"
    inp.mkdir()
    cv2.imwrite(str(inp / "good.png"), membrane_image(64, 64, 3))
    (inp / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    return inp


def test_strict_bad_image_names_it_and_writes_nothing(files, tmp_path, capsys):
    inp = _good_and_broken(tmp_path)
    strict = dataclasses.replace(SETTINGS, strict=True)
    with pytest.raises(IngestError, match="broken.png"):
        folder.run_measure(inp, files["model"], tmp_path / "o", strict)
    assert not (tmp_path / "o").exists()
    assert cli.main(["measure", "--model", str(files["model"]), "--input", str(inp), "--out",
                     str(tmp_path / "o"), "--strict"]) == 2
    assert "broken.png" in capsys.readouterr().err and not (tmp_path / "o").exists()
    (inp / "broken.png").unlink()
    (inp / "notes.txt").write_text("x")
    (inp / "good.jpg").write_bytes((inp / "good.png").read_bytes())      # same stem twice
    with pytest.raises(IngestError, match="same stem"):
        folder.run_measure(inp, files["model"], tmp_path / "o", strict)


def test_strict_stops_before_the_model_is_loaded(files, tmp_path):
    inp = _good_and_broken(tmp_path)
    with pytest.raises(IngestError, match="broken.png"):       # not the missing model
        folder.run_measure(inp, tmp_path / "no-model.pt", tmp_path / "o",
                           dataclasses.replace(SETTINGS, strict=True))


def test_partial_run_measures_the_good_files_and_lists_the_bad(files, tmp_path):
    inp = _good_and_broken(tmp_path)
    out = tmp_path / "o"
    with pytest.raises(folder.PartialMeasureError, match="broken.png") as exc:
        folder.run_measure(inp, files["model"], out, SETTINGS, metrics=tmp_path / "m.json")
    assert list(exc.value.summary["image_id"]) == ["good"]
    assert (out / "masks" / "good.png").is_file() and not (out / "masks" / "broken.png").exists()
    assert list(pd.read_csv(out / "summary.csv")["image_id"]) == ["good"]
    run = json.loads((out / "run.json").read_text())
    assert run["n_images"] == 1
    assert [b["file"] for b in run["not_measured"]] == [str(inp / "broken.png")]
    assert "damaged PNG header" in run["not_measured"][0]["reason"]
    assert "\n" not in run["not_measured"][0]["reason"]
    report = (out / "report.md").read_text()
    assert "Not measured" in report and "broken.png" in report
    assert "broken.png" in (out / "report.html").read_text()
    assert json.loads((tmp_path / "m.json").read_text())["not_measured"] == [str(inp / "broken.png")]


def test_complete_run_json_has_no_not_measured_key(files, tmp_path):
    folder.run_measure(files["input"], files["model"], tmp_path / "o", SETTINGS)
    assert "not_measured" not in json.loads((tmp_path / "o" / "run.json").read_text())
    assert "Not measured" not in (tmp_path / "o" / "report.md").read_text()


def test_cli_partial_run_exits_3_and_keeps_the_measured(files, tmp_path, capsys):
    inp = _good_and_broken(tmp_path)
    assert cli.main(["measure", "--model", str(files["model"]), "--input", str(inp), "--out",
                     str(tmp_path / "o")]) == 3
    err = capsys.readouterr().err
    assert "partial" in err and "broken.png" in err
    assert (tmp_path / "o" / "masks" / "good.png").is_file()


def _stage_params(tmp_path: Path, **measure) -> Path:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({
        "seed": 1, "analyze": {"spatial": {"n_sim": 9}},
        "measure": {"tile": 64, "overlap": 16, "device": "cpu", "threads": 1, "figures": False,
                    **measure}}))
    return params


def test_stage_fails_after_a_partial_run_unless_allowed(files, tmp_path):
    inp = _good_and_broken(tmp_path)
    argv = ["--model", str(files["model"]), "--source", str(inp), "--out", str(tmp_path / "o")]
    with pytest.raises(folder.PartialMeasureError):
        measure_stage.main(["--params", str(_stage_params(tmp_path))] + argv)
    assert (tmp_path / "o" / "masks" / "good.png").is_file()      # written, then failed
    assert measure_stage.main(["--params", str(_stage_params(tmp_path, allow_partial=True))]
                              + argv) == 0


def test_resampling_to_the_model_pixel_size(files):
    s = dataclasses.replace(SETTINGS, pixel_size_nm=25.0)
    r = measurement.measure_one(files["input"] / "a.png", files["model50"], s)
    assert r.info["scale"] == pytest.approx(0.5) and r.info["scale_source"] == "pixel sizes"
    assert r.info["model_pixel_size_nm"] == 50.0 and r.mask.shape == (80, 100)
    r2 = measurement.measure_one(files["input"] / "a.png", files["model50"],
                             dataclasses.replace(s, resample_to_model=False))
    assert r2.info["scale"] == 1.0 and r2.info["scale_source"] == "none"
    with pytest.raises(ParamsError, match=r"a\.png.*scale"):
        measurement.measure_one(files["input"] / "a.png", files["model"],
                            dataclasses.replace(s, scale=8.0, max_pixels=10_000))
    assert segment.resize_factor(314.0, 25.0, SETTINGS) == (pytest.approx(12.56), "pixel sizes")
    assert segment.resize_factor(None, 25.0, SETTINGS) == (1.0, "none")


@pytest.mark.parametrize("raw, key", [({"crop_bottom": "x"}, "measure.crop_bottom"),
                                      ({"pixel_size_nm": 0}, "measure.pixel_size_nm"),
                                      ({"scale": 100}, "measure.scale"),
                                      ({"margin_px": -1}, "measure.margin_px"),
                                      ({"sorce": "a"}, "measure.sorce")])
def test_bad_params(raw, key):
    with pytest.raises(ParamsError, match=key.replace(".", r"\.")):
        parse_measure_params(raw, FAST)


class DarkCores(torch.nn.Module):
    """A fixed 'segmenter' for the real-image test: 3x3 mean, then pore where grey < 64."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
        return (0.25 - x) * 100.0


def test_photo5_porosity_is_plausible(monkeypatch, files):
    """photo5.jpg (750 x 642, WebP content) shows about 75 whole or cut pores with dark cores
    about 30 px across (judged by eye; 50 um scale bar = 159 px, so ~9-10 um cores). Dark cores
    alone then cover about 75 * pi/4 * 30^2 / (750 * 642) = 11 % (less where pores are cut by
    the frame, more where the bright crescent walls are not counted): expect 6-14 %, and 55-95
    pores after splitting merged ones. With 316 nm per pixel the density is ~ count / (750 * 642
    * (316e-7)^2 cm^2) = count / 4.8e-4 cm^2, i.e. 1.1e5 to 2.0e5 per cm^2."""
    if not (UNLABELLED / "photo5.jpg").is_file():
        pytest.skip(f"real data not available at {UNLABELLED}")
    payload = {"class_names": {"0": "background", "1": "pore"}, "meta": {}}
    fixed = segment.SegmentationModel(DarkCores(), payload, torch.device("cpu"))
    monkeypatch.setattr(measurement, "load_model_cached", lambda path, params: fixed)
    s = dataclasses.replace(SETTINGS, tile=256, overlap=32, pixel_size_nm=316.0)
    r = measurement.measure_one(UNLABELLED / "photo5.jpg", files["model"], s)
    summ = r.analysis.summary
    assert r.info["format"] == "webp" and r.mask.shape == (642, 750)
    assert 0.06 <= summ["porosity"] <= 0.14
    assert 55 <= summ["count_split_labels"] <= 95
    assert 1.1e5 <= summ["density_cm2_split_labels"] <= 2.0e5
    assert 20 <= summ["ecd_px_median"] <= 40


@pytest.mark.slow
def test_dask_local_cluster_with_two_workers_gives_identical_outputs(files, tmp_path):
    pytest.importorskip("dask.distributed")
    single = tmp_path / "single"
    dask_out = tmp_path / "dask"
    folder.run_measure(files["input"], files["model"], single, SETTINGS)
    folder.run_measure(files["input"], files["model"], dask_out, SETTINGS, scheduler="local", workers=2)
    produced = sorted(p.relative_to(single).as_posix() for p in single.rglob("*") if p.is_file())
    assert produced == sorted(p.relative_to(dask_out).as_posix() for p in dask_out.rglob("*") if p.is_file())
    for name in produced:
        if name == "run.json":
            continue  # records the run's own settings (threads per worker differ)
        assert (single / name).read_bytes() == (dask_out / name).read_bytes(), name


def test_cli_scheduler_option_reaches_run_measure(files, tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(folder, "run_measure", lambda *a, **k: seen.update(k) or None)
    assert cli.main(["measure", "--model", str(files["model"]), "--input", str(files["input"]),
                     "--out", str(tmp_path / "o"), "--scheduler", "local"]) == 0
    assert seen["scheduler"] == "local" and seen["workers"] == 2


# ============================================================================ params, switch, library
ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_params_yaml():
    """The dataclass defaults are the defaults: params.yaml must repeat them exactly."""
    from porescope.config import to_mapping

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())["measure"]
    defaults = to_mapping(MeasureParams())
    del defaults["analysis"], defaults["seed"]
    assert defaults == raw
    assert parse_measure_params(raw) == MeasureParams()


def test_measure_analysis_is_not_a_measure_key():
    with pytest.raises(ParamsError, match=r"measure\.analysis"):
        parse_measure_params({"analysis": {}})


def test_disabled_stage_writes_a_skipped_record_and_no_numbers(files, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"seed": 1, "analyze": {}, "measure": {"enabled": False}}))
    out = tmp_path / "measured"
    out.mkdir()
    (out / "old.csv").write_text("stale numbers")      # a previous run's outputs go
    assert measure_stage.main(["--params", str(params), "--model", str(tmp_path / "no-model.pt"),
                               "--source", str(files["input"]), "--out", str(out),
                               "--metrics", str(tmp_path / "m.json")]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["skipped"] is True and "measure.enabled" in metrics["reason"]
    assert set(metrics) == {"skipped", "reason"}
    assert sorted(p.name for p in out.iterdir()) == [folder.MARKER, "README.md"]
    assert "measure.enabled" in (out / "README.md").read_text()


def test_enabled_must_be_a_boolean():
    with pytest.raises(ParamsError, match=r"measure\.enabled"):
        parse_measure_params({"enabled": "no"})


def test_measure_micrograph_with_a_model_equals_the_file_run(files):
    """The in-memory function and the folder run measure the same image identically."""
    from porescope import measure_micrograph

    r = measurement.measure_one(files["input"] / "a.png", files["model"], SETTINGS)
    grey = cv2.imread(str(files["input"] / "a.png"), cv2.IMREAD_UNCHANGED)
    objects, summary = measure_micrograph(grey, model=files["model"], params=SETTINGS, image_id="a")
    pd.testing.assert_frame_equal(objects, r.analysis.objects)
    for key, value in r.summary.items():
        if key not in ("image_file", "format"):
            assert summary[key] == pytest.approx(value, nan_ok=True) if isinstance(value, float) \
                else summary[key] == value, key


def test_measure_micrograph_with_a_mask_crops_the_data_bar():
    from porescope import measure_micrograph

    yy, xx = np.mgrid[:100, :120]
    mask = np.zeros((100, 120), np.uint8)
    for cy, cx in [(20, 20), (25, 80), (60, 50)]:
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= 49] = 1
    image = np.where(mask > 0, 20, 140).astype(np.uint16) * 100   # 16-bit
    image[90:] = 0
    objects, summary = measure_micrograph(image, mask=mask, crop_bottom=10, pixel_size_nm=200.0,
                                          params=SETTINGS)
    assert len(objects) == 3 and summary["crop_bottom"] == 10 and summary["height"] == 90
    assert summary["porosity"] == pytest.approx(mask[:90].mean())
    assert summary["pixel_size_source"] == "given"
    same, _ = measure_micrograph(image, mask=mask[:90], crop_bottom=10, params=SETTINGS)
    assert same["Area"].tolist() == objects["Area"].tolist()
    with pytest.raises(ValueError, match="mask shape"):
        measure_micrograph(image, mask=mask[:50], crop_bottom=10, params=SETTINGS)
    with pytest.raises(ValueError, match="either model"):
        measure_micrograph(image, params=SETTINGS)


def test_big_image_in_bands_gives_the_same_outputs(files, tmp_path):
    """An image above measure.band_pixels is analysed in bands (issue 14, bounded memory): the
    masks, regions, counts and guard are those of the whole-image run, pores too up to a few
    watershed tie pixels between touching pores (see analyse_mask's band_pixels); the overlay
    is a palette PNG that shows the same image."""
    from PIL import Image

    inp = tmp_path / "big"
    inp.mkdir()
    rng = np.random.default_rng(3)
    img = np.full((330, 270), 150, np.uint8)
    yy, xx = np.ogrid[:330, :270]
    for cy, cx in rng.uniform(0, 330, (90, 2)) * [1, 270 / 330]:
        img[(xx - cx) ** 2 + (yy - cy) ** 2 <= 30] = 15
    img[5:9, 20:200] = 255                                  # a burned-in bar
    cv2.imwrite(str(inp / "big.png"), img)
    runs = {}
    for name, band in (("whole", 4_000_000), ("bands", 10_000)):
        out = tmp_path / name
        # the untrained model's regions are pale: keep them all (tests/test_pale_regions.py)
        folder.run_measure(inp, files["model"], out, dataclasses.replace(
            SETTINGS, band_pixels=band, margin_px=3, min_region_contrast=None))
        runs[name] = out
    w, b = runs["whole"], runs["bands"]
    sw, sb = pd.read_csv(w / "summary.csv"), pd.read_csv(b / "summary.csv")
    exact = [c for c in sw.columns if c.startswith(("porosity", "count_", "density_", "n_",
                                                    "quality_", "certified", "median_region"))]
    pd.testing.assert_frame_equal(sw[exact], sb[exact])
    ow, ob = pd.read_csv(w / "objects.csv"), pd.read_csv(b / "objects.csv")
    assert len(ow) == len(ob) > 20
    assert (ow["region"] == ob["region"]).all() and (ow["counted"] == ob["counted"]).all()
    assert ow.groupby("region")["Area"].sum().equals(ob.groupby("region")["Area"].sum())
    assert (ow["Area"] - ob["Area"]).abs().max() <= 5
    assert (w / "masks/big.png").read_bytes() == (b / "masks/big.png").read_bytes()
    bgr = cv2.imread(str(w / "overlays/big.png"))
    palette = Image.open(b / "overlays/big.png")
    assert palette.mode == "P"
    rgb = np.asarray(palette.convert("RGB"))
    same = (rgb[..., ::-1] == bgr).all(axis=-1) | ((bgr == 255).all(axis=-1) & (rgb == 254).all(axis=-1))
    assert same.mean() > 0.999          # the image and its outlines, but for the tie lines
    assert (rgb == (255, 0, 0)).all(axis=-1).sum() > 100       # outlines drawn


def test_a_margin_leaving_a_sliver_names_the_file_once(files):
    """margin_px must leave at least 9 x 9 px; the message names the file once and the sizes."""
    params = dataclasses.replace(SETTINGS, margin_px=46)            # 100 x 80 -> 8 x -12 px
    with pytest.raises(IngestError) as err:
        measurement.measure_one(files["input"] / "a.png", files["model"], params)
    text = str(err.value)
    assert text.count("a.png") == 1 and "leaves 8 x 0 px of the 100 x 80 px image" in text


def test_uncertain_pixels_are_counted_inside_the_margin_only(files):
    """The guard's uncertain share is over the analysed region: the pixels of the margin count
    neither as pore area nor as uncertain."""
    from porescope.measure.segment import load_model as load_seg, predict_mask

    grey = cv2.imread(str(files["input"] / "a.png"), cv2.IMREAD_UNCHANGED)
    model = load_seg(files["model"], device="cpu")
    _, whole = predict_mask(model, grey, tile=64, overlap=16, return_uncertain=True)
    _, inner = predict_mask(model, grey, tile=64, overlap=16, return_uncertain=True, margin=10)
    proba = predict_proba(model.network, grey, tile=64, overlap=16)[0]
    assert whole == int(((proba > 0.25) & (proba < 0.75)).sum())
    assert inner == int(((proba[10:-10, 10:-10] > 0.25) & (proba[10:-10, 10:-10] < 0.75)).sum())


def test_cli_bad_scheduler_address_is_a_one_line_error(files, tmp_path, capsys):
    out = tmp_path / "o"
    assert cli.main(["measure", "--model", str(files["model"]), "--input", str(files["input"]),
                     "--out", str(out), "--scheduler", "garbage"]) == 2
    err = capsys.readouterr().err
    assert "scheduler 'garbage': cannot connect" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("option, value, message", [
    ("--reference", "ref.csv", "'count' is not a number for image(s) a ('abc')"),
    ("--validation", "val.csv", "not a validate table; missing column(s)"),
    ("--specimens", "pattern:([", "pattern"),
])
def test_certificate_inputs_are_checked_before_measuring(files, tmp_path, capsys, monkeypatch,
                                                         option, value, message):
    """A bad reference, validation table or specimen rule stops the run before any image is
    measured, naming the file or rule."""
    (tmp_path / "ref.csv").write_text("image,count\na,abc\nb,10\n")
    (tmp_path / "val.csv").write_text("image_id,porosity\nx,0.1\n")
    measured = []
    monkeypatch.setattr(folder, "measure_and_encode", lambda *a, **k: measured.append(a))
    arg = str(tmp_path / value) if value.endswith(".csv") else value
    out = tmp_path / "o"
    assert cli.main(["measure", "--model", str(files["model"]), "--input", str(files["input"]),
                     "--out", str(out), option, arg]) == 2
    assert message in capsys.readouterr().err and not measured and not out.exists()


def test_cli_folder_without_a_micrograph_is_an_error_and_writes_nothing(files, tmp_path, capsys):
    out = tmp_path / "o"
    base = ["measure", "--model", str(files["model"]), "--out", str(out)]
    assert cli.main(base + ["--input", str(files["empty"])]) == 2
    assert "no micrographs found" in capsys.readouterr().err and not out.exists()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.png").write_bytes(b"not a png")
    assert cli.main(base + ["--input", str(bad)]) == 2
    assert "x.png" in capsys.readouterr().err and not out.exists()


def test_implausible_pixel_size_is_warned_in_the_summary(files):
    params = dataclasses.replace(SETTINGS, pixel_size_nm=1e-12)
    r = measurement.measure_one(files["input"] / "a.png", files["model"], params)
    assert "is outside 0.001-100000 nm of any electron micrograph" in r.summary["warnings"]
    r = measurement.measure_one(files["input"] / "a.png", files["model"], SETTINGS)
    assert "outside" not in r.summary["warnings"]


def test_ctrl_c_is_a_one_line_message_and_exit_130(files, tmp_path, capsys, monkeypatch):
    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(folder, "measure_and_encode", interrupted)
    out = tmp_path / "o"
    assert cli.main(["measure", "--model", str(files["model"]), "--input", str(files["input"]),
                     "--out", str(out)]) == 130
    assert capsys.readouterr().err.strip() == "porescope measure: interrupted" and not out.exists()


def test_an_image_narrower_than_9_px_is_named_too_small(files, tmp_path):
    cv2.imwrite(str(tmp_path / "thin.png"), np.full((400, 2), 120, np.uint8))
    with pytest.raises(IngestError, match=r"thin\.png: the image is 2 x 400 px \(at least 9 x 9 needed\)$"):
        measurement.measure_one(tmp_path / "thin.png", files["model"], SETTINGS)
