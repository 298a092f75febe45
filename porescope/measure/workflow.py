"""Measure new micrographs with a trained model (the DVC stage ``measure`` and ``porescope measure``).

    python -m stages.measure --params params.yaml --model models/model.pt \\
        --source data/measure --out data/measured --metrics metrics/measure.json

Runs the model on every micrograph in a folder - no masks needed; any size; PNG, JPEG, TIFF,
WebP or BMP detected from the content (:mod:`porescope.io.images`, the ingest readers) - and
measures the predicted masks with :func:`porescope.analysis.membrane.analyse_mask` (params
group ``analyze``). The folder is ``<source>/images/`` when it exists, else ``<source>`` itself;
junk files (``Thumbs.db``, dot-files, ...) and documentation files (``README.md``, ``*.txt``)
are skipped, sub-folders ignored (:func:`porescope.io.pairing.list_data_files`).

Per image (:func:`measure_one`, a pure function of picklable arguments, so images can be
distributed to processes or a Dask cluster; results do not depend on the order):

1. read, first page, grey (BT.601), >8-bit -> uint8 (``measure.normalisation``);
2. drop the SEM data bar: ``crop_bottom`` rows, or ``auto`` (:func:`~porescope.io.images.detect_data_bar`);
   ``margin_px`` pixels at every edge are left out of the analysis (a frame around an exported
   image; the network still sees them as context);
3. pixel size: ``measure.pixel_size_nm`` (or ``--pixel-size-nm``), else the TIFF metadata,
   else unknown (pixel units only, densities per px^2);
4. scale: the network only knows the pore sizes (in pixels) it was trained on. With
   ``resample_to_model`` and both the image's and the model's training pixel size known (the
   model file's ``meta.pixel_size_nm``), the image is resized by ``image nm/px / model nm/px``
   before inference (``cv2.INTER_AREA`` to shrink, ``INTER_LINEAR`` to enlarge) and the class
   probabilities are resized back (``INTER_LINEAR``) before the per-pixel decision; ``scale``
   (or ``--scale``) sets the factor explicitly (2 = enlarge twice). Measurements are always
   made at the image's own resolution;
5. sliding-window inference (:func:`porescope.segmentation.inference.predict_proba`, ``tile`` /
   ``overlap`` / ``batch_size`` / ``tta``), then the analysis.

Outputs under ``--out`` (the folder is built under a temporary name and swapped in whole):
``masks/<id>.png`` (class ids, full image size, 0 in cropped rows and the margin),
``overlays/<id>.png`` (pore outlines in red), ``objects.csv`` (ImageJ columns, ``image_id``),
``summary.csv`` (one row per image: porosity, the three counts, densities, sizes, spatial
verdicts, pixel size and its source, crop, margin, scale), ``figures/*.png`` (unless
``measure.figures: false``), ``report.md``, ``run.json`` (settings and model).
``--metrics`` gets a small JSON of the per-image headline numbers. An input folder without
images gives empty tables and a log line, not an error.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from porescope.config import ParamsError
from porescope import analysis as ma
from porescope.parallel.cluster import map_ordered
from porescope.io.atomic import (
    output_dir,
    write_bytes,
    write_csv,
    write_json,
    write_png,
    write_text,
)
from porescope.io.images import (
    detect_data_bar,
    find_bottom_overlay,
    read_image,
    to_grey,
    to_uint8,
)
from porescope.segmentation.models import decision_threshold
from porescope.io.pairing import IngestError, list_data_files
from porescope.report.output import Report
from porescope.report.sections_measure import measure_report

LOG = logging.getLogger("porescope.measure")
GROUP = "measure"
#: file suffixes of documentation that may sit beside the images (skipped, not read)
DOC_SUFFIXES = frozenset({".md", ".txt", ".rst", ".csv", ".json", ".yaml", ".yml", ".html", ".pdf"})
DEFAULT_SEED = 42


@dataclass(frozen=True)
class MeasureSettings:
    """How to measure one image (all plain values: picklable, hashable).

    pixel_size_nm: nm per pixel for every image, or None (TIFF metadata, else unknown).
    crop_bottom: rows of an SEM data bar to drop, or ``"auto"``.
    margin_px: pixels ignored at every edge (a frame drawn around an exported image).
    resample_to_model: resize to the model's training pixel size when both are known.
    scale: explicit resize factor before inference (overrides resample_to_model), or None.
    tile, overlap, batch_size, tta, device, threads: inference (see porescope.segmentation.inference).
    normalisation: (method, low, high) for >8-bit images (porescope.io.images.to_uint8).
    max_pixels: largest image (after resizing) that inference may be run on.
    figures: write the distribution figures (histograms, violins, KDE, correlation, Ripley).
    analysis: the ``analyze`` params. seed: the shared seed (Monte-Carlo tests).
    """

    pixel_size_nm: float | None = None
    crop_bottom: int | str = 0
    margin_px: int = 0
    resample_to_model: bool = True
    scale: float | None = None
    tile: int = 256
    overlap: int = 64
    batch_size: int = 4
    tta: bool = False
    device: str = "auto"
    threads: int = 0
    normalisation: tuple[str, float, float] = ("percentile", 0.1, 99.9)
    max_pixels: int = 64_000_000
    figures: bool = True
    analysis: ma.AnalysisParams = field(default_factory=ma.AnalysisParams)
    seed: int = DEFAULT_SEED


@dataclass
class MeasureResult:
    """What :func:`measure_one` returns for one image.

    image_id (file stem), grey (uint8 analysed image, data bar cropped), mask (uint8 class ids
    at the file's full size, 0 in the cropped rows), analysis (ImageAnalysis), info (dict:
    image_file, format, orig_height, orig_width, crop_bottom, pixel_size_nm,
    pixel_size_source, model_pixel_size_nm, scale, scale_source, normalisation, warnings).
    """

    image_id: str
    grey: np.ndarray
    mask: np.ndarray
    analysis: ma.ImageAnalysis
    info: dict[str, Any]


# --------------------------------------------------------------------------------------------
# params
# --------------------------------------------------------------------------------------------

_KEYS = ("source", "pixel_size_nm", "crop_bottom", "margin_px", "resample_to_model", "scale",
         "tile", "overlap", "batch_size", "tta", "device", "threads", "normalisation", "max_pixels",
         "figures")


def _is_num(x: Any) -> bool:
    return (isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)
            and math.isfinite(float(x)))


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def parse_settings(raw: Mapping[str, Any] | None, analysis: ma.AnalysisParams, *, seed: int,
                   source: str = "params.yaml") -> tuple[str, MeasureSettings]:
    """``(source folder, MeasureSettings)`` from a ``measure`` params group (missing keys take
    the defaults); raises :class:`ParamsError` naming ``measure.<key>``."""
    p = dict(raw or {})
    p.pop("seed", None)
    for key in p:
        if key not in _KEYS:
            raise ParamsError(f"{source}: {GROUP}.{key}: unknown parameter (known: {', '.join(_KEYS)})")
    d = MeasureSettings()

    def err(key: str, why: str) -> ParamsError:
        return ParamsError(f"{source}: {GROUP}.{key}: {why} (got {p.get(key)!r})")

    folder = p.get("source", "data/measure")
    if not isinstance(folder, str) or not folder:
        raise err("source", "must be a folder path")
    px = p.get("pixel_size_nm", d.pixel_size_nm)
    if px is not None and not (_is_num(px) and px > 0):
        raise err("pixel_size_nm", "must be null (metadata / unknown) or a number > 0 nm per pixel")
    crop = p.get("crop_bottom", d.crop_bottom)
    if not (crop == "auto" or (_is_int(crop) and crop >= 0)):
        raise err("crop_bottom", "must be an integer >= 0 or 'auto'")
    res = p.get("resample_to_model", d.resample_to_model)
    if not isinstance(res, bool):
        raise err("resample_to_model", "must be true or false")
    scale = p.get("scale", d.scale)
    if scale is not None and not (_is_num(scale) and 0.05 <= scale <= 20):
        raise err("scale", "must be null or a resize factor in [0.05, 20]")
    for key, lo, hi in (("margin_px", 0, 100_000), ("tile", 32, 8192), ("overlap", 0, 4096),
                        ("batch_size", 1, 4096),
                        ("threads", 0, 256), ("max_pixels", 1, 10 ** 10)):
        v = p.get(key, getattr(d, key))
        if not (_is_int(v) and lo <= v <= hi):
            raise err(key, f"must be an integer in [{lo}, {hi}]")
    if 2 * p.get("overlap", d.overlap) > p.get("tile", d.tile):
        raise err("overlap", "must be at most tile / 2")
    for key in ("tta", "figures"):
        if not isinstance(p.get(key, getattr(d, key)), bool):
            raise err(key, "must be true or false")
    dev = p.get("device", d.device)
    if not isinstance(dev, str) or not (dev in ("auto", "cpu", "cuda") or dev.startswith("cuda:")):
        raise err("device", "must be auto, cpu, cuda or cuda:<n>")
    norm = p.get("normalisation", {"method": d.normalisation[0], "low": d.normalisation[1],
                                   "high": d.normalisation[2]})
    if (not isinstance(norm, Mapping) or set(norm) - {"method", "low", "high"}
            or norm.get("method", "percentile") not in ("percentile", "dtype")
            or not all(_is_num(norm.get(k, 0.0)) for k in ("low", "high"))):
        raise err("normalisation", "must be {method: percentile|dtype, low: %, high: %}")
    settings = MeasureSettings(
        pixel_size_nm=None if px is None else float(px),
        crop_bottom=crop if crop == "auto" else int(crop),
        margin_px=int(p.get("margin_px", d.margin_px)), resample_to_model=res,
        scale=None if scale is None else float(scale), tile=int(p.get("tile", d.tile)),
        overlap=int(p.get("overlap", d.overlap)), batch_size=int(p.get("batch_size", d.batch_size)),
        tta=bool(p.get("tta", d.tta)), device=dev, threads=int(p.get("threads", d.threads)),
        normalisation=(str(norm.get("method", "percentile")), float(norm.get("low", 0.1)),
                       float(norm.get("high", 99.9))),
        max_pixels=int(p.get("max_pixels", d.max_pixels)), figures=bool(p.get("figures", d.figures)),
        analysis=analysis, seed=int(seed))
    return folder, settings


# --------------------------------------------------------------------------------------------
# one image
# --------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=2)
def _cached_model(model_path: str, stamp: tuple[int, int], device: str, threads: int):
    """(model, payload, torch device) - loaded once per process and model file version."""
    from porescope.segmentation.devices import configure_cpu_threads, select_device
    from porescope.segmentation.models import load_model

    dev = select_device(device)
    configure_cpu_threads(threads)
    model, payload = load_model(model_path, dev)
    return model, payload, dev


def load_model_cached(model_path: str | os.PathLike, settings: MeasureSettings):
    """The model of ``model_path`` for ``settings`` (cached by path, size and mtime)."""
    path = Path(model_path)
    if not path.is_file():
        from porescope.segmentation.models import ModelFileError

        raise ModelFileError(f"{path}: file not found; train a model (dvc repro train) or give "
                             "the path of a porescope model file")
    st = path.stat()
    return _cached_model(str(path.resolve()), (st.st_size, st.st_mtime_ns), settings.device,
                         settings.threads)


def model_pixel_size_nm(payload: Mapping[str, Any]) -> float | None:
    """Training pixel size recorded in a model file (``meta.pixel_size_nm``), or None."""
    v = (payload.get("meta") or {}).get("pixel_size_nm")
    return float(v) if _is_num(v) and float(v) > 0 else None


def resize_factor(image_px: float | None, model_px: float | None, settings: MeasureSettings
                  ) -> tuple[float, str]:
    """``(factor, source)``: how much to enlarge the image before inference, and why."""
    if settings.scale is not None:
        return float(settings.scale), "scale"
    if settings.resample_to_model and image_px and model_px:
        return image_px / model_px, "pixel sizes"
    return 1.0, "none"


def _predict(model, device, grey: np.ndarray, factor: float, settings: MeasureSettings,
             name: str, threshold: float) -> np.ndarray:
    import cv2

    from porescope.segmentation.inference import decide, predict_mask, predict_proba

    kw = dict(tile=settings.tile, overlap=settings.overlap, batch_size=settings.batch_size,
              tta=settings.tta, device=device, amp=device.type == "cuda")
    h, w = grey.shape
    if abs(factor - 1.0) < 1e-9:
        return predict_mask(model, grey, threshold=threshold, **kw)
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    if size[0] * size[1] > settings.max_pixels:
        raise ParamsError(f"{name}: resizing by {factor:.4g} would give a {size[0]}x{size[1]} image "
                         f"(more than measure.max_pixels = {settings.max_pixels}); check the pixel "
                         "sizes (image vs the model's training pixel size) or set measure.scale / "
                         "--scale (e.g. 1)")
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(grey, size, interpolation=interp)
    proba = predict_proba(model, resized, **kw)
    back = np.stack([cv2.resize(np.ascontiguousarray(c), (w, h), interpolation=cv2.INTER_LINEAR)
                     for c in proba])
    return decide(back, threshold)


def measure_one(image_path: str | os.PathLike, model_path: str | os.PathLike,
                settings: MeasureSettings) -> MeasureResult:
    """Read, segment and measure one micrograph (see the module docstring).

    Pure in its arguments (the model is loaded once per process and cached), so calls can run
    in any order or process with identical results. Raises ``IngestError`` (unreadable /
    unsupported file, crop too large), ``ModelFileError`` or ``ValueError``, naming the file.
    """
    path = Path(image_path)
    name = str(path)
    model, payload, device = load_model_cached(model_path, settings)
    img = read_image(path, pages="first")
    warnings: list[str] = []
    if img.n_pages > 1:
        warnings.append(f"{img.n_pages} pages; only the first was measured")
    page = img.pages[0]
    grey_full = to_grey(page.array, page.palette, name)
    method, low, high = settings.normalisation
    grey_full, norm = to_uint8(grey_full, method, low, high)
    oh, ow = grey_full.shape
    if settings.crop_bottom == "auto":
        crop = detect_data_bar(grey_full)
        if not crop:
            overlay = find_bottom_overlay(grey_full)
            if overlay is not None:
                warnings.append(f"bright scale bar / text over the micrograph in rows "
                                f"{overlay[0]}-{overlay[1]} (not a separate data bar, so not "
                                f"cropped; set crop_bottom to e.g. {oh - overlay[0] + 4} to "
                                "drop those rows)")
    else:
        crop = int(settings.crop_bottom)
    if crop >= oh - 8:
        raise IngestError(name, f"crop_bottom = {crop} rows leaves less than 8 of its {oh} rows; "
                                "lower crop_bottom")
    grey = np.ascontiguousarray(grey_full[:oh - crop])
    margin = settings.margin_px
    if 2 * margin >= min(grey.shape):
        raise ParamsError(f"{name}: margin_px = {margin} leaves nothing of the "
                          f"{grey.shape[1]}x{grey.shape[0]} image; lower it")
    if settings.pixel_size_nm is not None:
        px, px_src = float(settings.pixel_size_nm), "given"
        if img.pixel_size_nm and abs(img.pixel_size_nm - px) > 0.01 * px:
            warnings.append(f"given pixel size {px:g} nm differs from the file's metadata "
                            f"({img.pixel_size_source}: {img.pixel_size_nm:.6g} nm); used the given one")
    elif img.pixel_size_nm:
        px, px_src = float(img.pixel_size_nm), img.pixel_size_source
    else:
        px, px_src = None, "unknown"
    model_px = model_pixel_size_nm(payload)
    factor, factor_src = resize_factor(px, model_px, settings)
    if not (0.25 <= factor <= 4.0):
        warnings.append(f"resized by {factor:.3g} before inference ({factor_src}); the model may "
                        "see pores far from the sizes it was trained on")
    pred = _predict(model, device, grey, factor, settings, name, decision_threshold(payload))
    image_id = path.stem
    analysis = ma.analyse_mask(pred, pixel_size_nm=px, params=settings.analysis,
                               rng=ma.image_rng(settings.seed, image_id, "measure"),
                               image_id=image_id, margin=margin,
                               class_names=payload.get("class_names"))
    mask = np.zeros((oh, ow), np.uint8)
    h_a = oh - crop
    mask[margin:h_a - margin, margin:ow - margin] = pred[margin:h_a - margin, margin:ow - margin]
    for w in warnings:
        LOG.warning("%s: %s", name, w)
    info = {"image_file": path.name, "format": img.format, "orig_height": oh, "orig_width": ow,
            "crop_bottom": crop, "pixel_size_nm": px if px is not None else math.nan,
            "pixel_size_source": px_src,
            "model_pixel_size_nm": model_px if model_px is not None else math.nan,
            "scale": factor, "scale_source": factor_src, "normalisation": norm,
            "warnings": "; ".join(warnings)}
    return MeasureResult(image_id, grey, mask, analysis, info)


# --------------------------------------------------------------------------------------------
# a folder
# --------------------------------------------------------------------------------------------

def list_images(source: str | os.PathLike) -> list[Path]:
    """Image files to measure in ``source`` (or ``source/images``), sorted; junk and documentation
    files skipped. Raises ``IngestError`` for a missing folder, empty / unreadable files or two
    files with the same stem (their outputs would collide)."""
    source = Path(source)
    if not source.is_dir():
        raise IngestError(source, "input folder not found (or not a folder); give a folder of "
                                  "micrographs")
    folder = source / "images" if (source / "images").is_dir() else source
    files, problems = list_data_files(folder, what="a micrograph")
    keep, stems = [], {}
    for f in files:
        if f.suffix.lower() in DOC_SUFFIXES:
            LOG.info("%s: skipped (documentation, not a micrograph)", f)
            continue
        if f.stem in stems:
            problems.append((str(f), f"has the same stem '{f.stem}' as {stems[f.stem].name}; "
                                      "outputs are named by stem, so rename one of them"))
            continue
        stems[f.stem] = f
        keep.append(f)
    if problems:
        raise IngestError.from_problems(problems)
    return keep


def _empty_tables(settings: MeasureSettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Header-only objects / summary tables (the columns a real image would give)."""
    probe = ma.analyse_mask(np.zeros((8, 8), np.uint8), pixel_size_nm=None,
                            params=settings.analysis, rng=np.random.default_rng(0),
                            image_id="", spatial=False)
    info_cols = ["image_file", "format", "orig_height", "orig_width", "crop_bottom",
                 "pixel_size_source", "model_pixel_size_nm", "scale", "scale_source",
                 "normalisation", "warnings"]
    return (probe.objects.iloc[:0],
            pd.DataFrame(columns=list(probe.summary) + info_cols))


def summary_table(results: Iterable[MeasureResult]) -> pd.DataFrame:
    """One row per image: the analysis summary and the image info."""
    rows = []
    for r in results:
        info = {k: v for k, v in r.info.items() if k != "pixel_size_nm"}
        rows.append({**r.analysis.summary, **info})
    return pd.DataFrame(rows)


def render_report(summary: pd.DataFrame, run_info: Mapping[str, Any],
                  figures: Mapping[str, bytes]) -> Report:
    """The report of a measurement run: Markdown (figures linked as ``figures/<name>``) and one
    self-contained HTML page (:func:`porescope.report.document.measure_report`)."""
    return measure_report(summary, run_info, figures)


def _metrics(summary: pd.DataFrame, model: Path) -> dict[str, Any]:
    images = {}
    for r in summary.itertuples(index=False):
        d = r._asdict()
        images[d["image_id"]] = {k: (None if isinstance(d[k], float) and not math.isfinite(d[k])
                                     else round(float(d[k]), 6))
                                 for k in ("porosity", "count_median_area", "count_split_labels",
                                           "count_boolean_model", "density_cm2_split_labels",
                                           "density_cm2_boolean_model")}
    return {"n_images": int(len(summary)), "model": model.as_posix(), "images": images}


def check_output_folder(out: Path, inputs: Path, overwrite: bool) -> bool:
    """Refuse unsafe outputs; returns whether an existing ``out`` may be replaced.

    The output may not be the input folder or contain it (replacing it would delete the
    micrographs), whatever ``overwrite`` says. An existing non-empty folder (or a file) is
    refused unless ``overwrite``; an empty folder is fine.
    """
    o, i = out.resolve(), inputs.resolve()
    if o == i or o in i.parents:
        raise FileExistsError(f"{out}: the output folder is (or contains) the input folder "
                              f"{inputs}; choose another output folder")
    if out.exists() or out.is_symlink():
        if out.is_dir() and not out.is_symlink() and not any(out.iterdir()):
            return True
        if not overwrite:
            raise FileExistsError(f"{out}: already exists; choose another output folder or pass "
                                  "--overwrite to replace it")
    return True


def run_measure(source: str | os.PathLike, model: str | os.PathLike, out: str | os.PathLike,
                settings: MeasureSettings, *, overwrite: bool = True,
                metrics: str | os.PathLike | None = None, scheduler: str | None = None,
                workers: int = 1) -> pd.DataFrame:
    """Measure every micrograph of ``source`` and write the output folder ``out`` atomically.

    ``overwrite=False`` refuses an existing non-empty ``out`` before any work is done.
    ``scheduler`` / ``workers``: run the images on Dask (:func:`porescope.parallel.cluster.map_ordered`);
    the results do not depend on it. Returns the per-image summary table.
    """
    source, model, out = Path(source), Path(model), Path(out)
    check_output_folder(out, source, overwrite)
    files = list_images(source)
    if files:
        load_model_cached(model, settings)          # fail early on a bad model file
    else:
        LOG.warning("%s: no micrographs found (only documentation / junk files); writing empty "
                    "tables", source)
    if (scheduler is not None or workers > 1) and settings.threads == 0:
        # share the cores between worker processes instead of oversubscribing them
        settings = dataclasses.replace(settings, threads=max(1, (os.cpu_count() or 1) // max(1, workers)))
    results = map_ordered(measure_one, files, model, settings, scheduler=scheduler, workers=workers)
    results.sort(key=lambda r: r.image_id)
    figures: dict[str, bytes] = {}
    if results:
        summary = summary_table(results)
        objects = pd.concat([r.analysis.objects for r in results], ignore_index=True)
    else:
        objects, summary = _empty_tables(settings)
    if results and settings.figures:
        figures = ma.distribution_figures(
            {r.image_id: r.analysis.objects for r in results},
            {r.image_id: r.analysis.spatial for r in results},
            pixel_sizes={r.image_id: r.analysis.summary["pixel_size_nm"] for r in results},
            length_unit=settings.analysis.length_unit)
    split = results[0].analysis.summary["split_method"] if results else ""
    run_info = {"model": model.as_posix(), "input": source.as_posix(), "split": split,
                "settings": _settings_dict(settings), "n_images": len(results)}
    report = render_report(summary, run_info, figures)
    with output_dir(out, overwrite=True) as tmp:
        for r in results:
            write_png(tmp / "masks" / f"{r.image_id}.png", r.mask)
            write_png(tmp / "overlays" / f"{r.image_id}.png",
                      ma.outline_overlay(r.grey, r.analysis.labels))
        write_csv(tmp / "objects.csv", objects)
        write_csv(tmp / "summary.csv", summary)
        for name, data in sorted(figures.items()):
            write_bytes(tmp / "figures" / name, data)
        write_text(tmp / "report.md", report.markdown)
        write_text(tmp / "report.html", report.html)
        write_json(tmp / "run.json", run_info)
    if metrics is not None:
        write_json(metrics, _metrics(summary, model))
    for r in summary.itertuples(index=False):
        LOG.info("%s: porosity %.2f %%, pores %d (split) / %.0f (Boolean), %s", r.image_id,
                 100 * r.porosity, r.count_split_labels, r.count_boolean_model,
                 "density %.3g /cm^2" % r.density_cm2_split_labels
                 if r.density_cm2_split_labels == r.density_cm2_split_labels else "pixel size unknown")
    LOG.info("wrote %s (%d image(s))", out, len(results))
    return summary


def _settings_dict(settings: MeasureSettings) -> dict[str, Any]:
    d = dataclasses.asdict(settings)
    d["analysis"] = settings.analysis.to_dict()
    d["normalisation"] = list(settings.normalisation)
    return json.loads(json.dumps(d))
