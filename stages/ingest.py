"""DVC stage ``ingest``: bring any labelled (or unlabelled) micrograph dataset into one layout.

Command (paths from ``dvc.yaml``)::

    python -m stages.ingest --params params.yaml --source <ingest.source> --out data/ingested

``--source`` wins over ``ingest.source`` when both are given (``dvc.yaml`` passes
``${ingest.source}``, so they agree under DVC; a differing value is logged). Everything else comes
from the ``ingest`` group of ``params.yaml``; unknown keys are an error (a typo such as
``forground`` must not be ignored silently).

Params (``ingest:``), defaults in :data:`DEFAULTS`:

``source``         folder with ``images/`` and ``masks/`` (pairs by file stem, any supported
                   format, detected from content). Without ``images/`` (and with
                   ``require_masks: false``) the folder itself holds the images.
``require_masks``  every image needs a mask (default true). When false, masks are used where
                   present and ``masks/`` may be absent (images to measure, not to train on).
``mask_suffix``    text after the image stem in mask file names (``"_mask"``), default ``""``.
``mask_format``    ``binary`` | ``labels`` | ``rgb`` | ``instances`` (one integer id per object,
                   0 = background; becomes class 1, or interior/border with ``target``)
                   (:mod:`porescope.io.mask_encoding`).
``target``         ``as_is`` (the decoded classes) or ``three_class``: interior (1) / border (2) /
                   background (0) derived from binary or instance masks (paper 003), so a model
                   learns to separate touching objects. Binary masks are first split into objects
                   with the distance-transform watershed (``split_h``, px); ``border_width`` px of
                   each object's edge, and of every line where two objects touch, becomes border.
``foreground``     binary only: pixel value of the objects (255; 0 for ISBI 2012).
``n_classes``      labels: ids are 0..n_classes-1 (or give ``class_names``).
``colour_map``     rgb: ``{"R,G,B": class id}``, e.g. ``{"255,0,0": 1, "0,0,255": 2, "0,0,0": 0}``.
``class_names``    list (index = id) or mapping id -> name; must include 0. Defaults:
                   binary ``[background, pore]``; labels/rgb ``background, class_1, ...``.
``tile_size``      tile side in px (256); images are cut on a stride-``tile_size`` grid and
                   mirror-padded (:mod:`porescope.preprocessing.tiling`).
``pad_mode``       ``reflect`` (default) or ``symmetric``.
``crop_bottom``    rows of an SEM data bar to remove, an integer, or ``auto`` to detect it per
                   image (:func:`porescope.io.images.detect_data_bar`; text drawn over the image
                   is not cropped, only warned about).
``pixel_size_nm``  a number (nm per pixel, all images), or ``auto`` / null: read from TIFF
                   metadata (FEI/Thermo, Zeiss, ImageJ, TIFF resolution); empty when unknown.
``normalisation``  for >8-bit images: ``{method: percentile, low: 0.1, high: 99.9}`` (or
                   ``method: dtype``); recorded per source in ``sources.csv``. 8-bit data are
                   never changed.
``multipage``      ``first``: first page of multi-page TIFFs only (a warning says how many were
                   left out); ``all``: every page becomes its own source ``<stem>_p<k>``
                   (k = 0-based page index; single-page files keep their stem). A multi-page
                   mask must then have the same page count.
``min_size``       smallest allowed image side in px after the crop (32).
``workers``        processes (1); the output does not depend on it.

Outputs (``--out``, built in a temporary folder and swapped in only when complete): see
``notes/contracts.md`` - ``images/``, ``masks/``, ``tiles/images/``, ``tiles/masks/``,
``sources.csv``, ``tiles.csv``, ``classes.json``. ``image_file``/``mask_file`` are paths relative
to the source folder; ``fg_fraction`` is the fraction of a tile's valid (unpadded) pixels whose
class is not 0. Without a mask, the mask columns are empty and no mask PNGs are written.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from stages.common import ParamsError, load_params, run_stage, setup_logging, stage_parser
from porescope.io import atomic as atomic_io
from porescope.io.images import (
    array_sha256,
    bytes_sha256,
    decode_image,
    detect_data_bar,
    find_bottom_overlay,
    to_grey,
    to_uint8,
)
from porescope.segmentation.instances import three_class_from_binary, three_class_from_instances
from porescope.io.mask_encoding import (
    MaskEncoding,
    decode_instances,
    decode_mask,
    parse_colour_map,
)
from porescope.io.pairing import IngestError, SourcePair, find_pairs
from porescope.parallel.processes import worker_context
from porescope.preprocessing.tiling import cut_tiles

LOG = logging.getLogger("porescope.ingest")

DEFAULTS: dict[str, Any] = {
    "source": "data/synthetic",
    "require_masks": True,
    "mask_suffix": "",
    "mask_format": "binary",
    "foreground": 255,
    "n_classes": None,
    "colour_map": None,
    "class_names": None,
    "tile_size": 256,
    "pad_mode": "reflect",
    "crop_bottom": 0,
    "pixel_size_nm": "auto",
    "normalisation": {"method": "percentile", "low": 0.1, "high": 99.9},
    "multipage": "first",
    "min_size": 32,
    "workers": 1,
    "target": "as_is",
    "border_width": 2,
    "split_h": 0.5,
}

SOURCES_COLUMNS = ["source_id", "image_file", "image_sha256", "mask_file", "mask_sha256",
                   "height", "width", "orig_height", "orig_width", "crop_bottom", "page",
                   "normalisation", "pixel_size_nm", "pixel_size_source"]
TILES_COLUMNS = ["tile_id", "source_id", "y", "x", "tile_size", "valid_height", "valid_width",
                 "image_sha256", "mask_sha256", "fg_fraction"]

#: PNG encoder settings for every output PNG, fixed so the bytes are reproducible: zlib level 1,
#: run-length strategy, "sub" row filter (OpenCV 5's defaults, spelled out; fast for micrographs
#: and very compact for class-id masks).
def _png_params() -> list[int]:
    import cv2

    return [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
            cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB]


@dataclass(frozen=True)
class IngestParams:
    """Validated ``ingest`` params (see the module doc)."""

    source: str | None
    require_masks: bool
    mask_suffix: str
    encoding: MaskEncoding
    tile_size: int
    pad_mode: str
    crop_bottom: int | str
    pixel_size_nm: float | None
    norm_method: str
    norm_low: float
    norm_high: float
    multipage: str
    min_size: int
    workers: int
    target: str = "as_is"
    border_width: int = 2
    split_h: float = 0.5

    @property
    def class_names(self) -> dict[int, str]:
        """Class id -> name of the written masks (three_class adds a border class 2)."""
        names = dict(self.encoding.class_names)
        if self.target == "three_class":
            return {0: names[0], 1: names[1], 2: "border"}
        return names


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _class_names(raw: Any, key: str = "ingest.class_names") -> dict[int, str]:
    if isinstance(raw, Mapping):
        out = {}
        for k, v in raw.items():
            try:
                kid = int(k)
            except (TypeError, ValueError):
                raise ParamsError(f"{key}: key {k!r} is not a class id (integer)") from None
            out[kid] = str(v)
        return out
    if isinstance(raw, Sequence) and not isinstance(raw, str):
        return {i: str(v) for i, v in enumerate(raw)}
    raise ParamsError(f"{key}: expected a list of names (index = class id) or a mapping "
                      f"id -> name, got {raw!r}")


def parse_params(raw: Mapping[str, Any]) -> IngestParams:
    """Validate the ``ingest`` params group (``seed`` is ignored); raises ``ParamsError``."""
    unknown = sorted(set(raw) - set(DEFAULTS) - {"seed"})
    if unknown:
        raise ParamsError(f"ingest: unknown key(s) {unknown}; known keys: {sorted(DEFAULTS)}")
    p = {**DEFAULTS, **{k: v for k, v in raw.items() if k != "seed"}}

    fmt = p["mask_format"]
    if fmt not in ("binary", "labels", "rgb", "instances"):
        raise ParamsError(f"ingest.mask_format: {fmt!r}; use binary, labels, rgb or instances")
    if p["target"] not in ("as_is", "three_class"):
        raise ParamsError(f"ingest.target: {p['target']!r}; use as_is or three_class")
    if p["target"] == "three_class" and fmt not in ("binary", "instances"):
        raise ParamsError(f"ingest.target three_class derives interior/border from binary or instance "
                          f"masks; mask_format {fmt!r} already defines its classes (use target: as_is)")
    if not _is_int(p["border_width"]) or p["border_width"] < 1:
        raise ParamsError(f"ingest.border_width: expected an integer >= 1 (px), got {p['border_width']!r}")
    if isinstance(p["split_h"], bool) or not isinstance(p["split_h"], (int, float)) or p["split_h"] <= 0:
        raise ParamsError(f"ingest.split_h: expected a positive number (px), got {p['split_h']!r}")
    fg = p["foreground"]
    if isinstance(fg, bool) or not isinstance(fg, (int, float, np.integer, np.floating)):
        raise ParamsError(f"ingest.foreground: expected a pixel value (number), got {fg!r}")
    n_classes = p["n_classes"]
    if n_classes is not None and (not _is_int(n_classes) or n_classes < 2 or n_classes > 256):
        raise ParamsError(f"ingest.n_classes: expected an integer 2..256 or null, "
                          f"got {n_classes!r}")
    names = None if p["class_names"] is None else _class_names(p["class_names"])
    colour_map = None
    if fmt in ("binary", "instances"):
        names = names if names is not None else {0: "background", 1: "pore" if fmt == "binary" else "object"}
        if sorted(names) != [0, 1]:
            raise ParamsError(f"ingest.class_names: {fmt} masks have classes 0 and 1, got ids "
                              f"{sorted(names)}")
    elif fmt == "labels":
        if names is None and n_classes is None:
            raise ParamsError("ingest.mask_format is 'labels': set ingest.n_classes or "
                              "ingest.class_names so the allowed class ids are known")
        if names is None:
            names = {0: "background", **{k: f"class_{k}" for k in range(1, n_classes)}}
        elif n_classes is not None and sorted(names) != list(range(n_classes)):
            raise ParamsError(f"ingest.class_names has ids {sorted(names)} but ingest.n_classes "
                              f"is {n_classes}; make them agree (or drop n_classes)")
    else:
        if not isinstance(p["colour_map"], Mapping) or not p["colour_map"]:
            raise ParamsError("ingest.colour_map: mask_format 'rgb' needs a mapping "
                              "{\"R,G,B\": class id}, e.g. {\"255,0,0\": 1, \"0,0,0\": 0}")
        try:
            colour_map = parse_colour_map(p["colour_map"])
        except ValueError as exc:
            raise ParamsError(f"ingest.colour_map: {exc}") from None
        ids = sorted(set(colour_map.values()) | {0})
        if names is None:
            names = {k: ("background" if k == 0 else f"class_{k}") for k in ids}
        missing = sorted(set(colour_map.values()) - set(names))
        if missing:
            raise ParamsError(f"ingest.class_names: no name for class id(s) {missing} used in "
                              "ingest.colour_map")
        if n_classes is not None and max(names) >= n_classes:
            raise ParamsError(f"ingest.n_classes is {n_classes} but class id {max(names)} is used")
    if 0 not in names:
        raise ParamsError("ingest.class_names: class id 0 (background) must be named")
    encoding = MaskEncoding(fmt, dict(sorted(names.items())), fg, colour_map)

    tile = p["tile_size"]
    if not _is_int(tile) or tile < 16:
        raise ParamsError(f"ingest.tile_size: expected an integer >= 16, got {tile!r}")
    if tile % 32:
        LOG.warning("ingest.tile_size %d is not a multiple of 32; most segmentation encoders "
                    "need multiples of 32", tile)
    if p["pad_mode"] not in ("reflect", "symmetric"):
        raise ParamsError(f"ingest.pad_mode: {p['pad_mode']!r}; use reflect or symmetric")
    crop = p["crop_bottom"]
    if crop is None:
        crop = 0
    if not (crop == "auto" or (_is_int(crop) and crop >= 0)):
        raise ParamsError(f"ingest.crop_bottom: expected rows to remove (integer >= 0) or "
                          f"'auto', got {crop!r}")
    px = p["pixel_size_nm"]
    if px is None or px == "auto":
        px = None
    elif (isinstance(px, bool) or not isinstance(px, (int, float)) or not math.isfinite(px)
          or px <= 0):
        raise ParamsError(f"ingest.pixel_size_nm: expected a positive number (nm per pixel), "
                          f"'auto' or null, got {px!r}")
    else:
        px = float(px)
    norm = p["normalisation"]
    if isinstance(norm, str):
        norm = {"method": norm}
    if not isinstance(norm, Mapping):
        raise ParamsError(f"ingest.normalisation: expected a mapping {{method, low, high}}, "
                          f"got {norm!r}")
    norm = {**DEFAULTS["normalisation"], **norm}
    extra = sorted(set(norm) - {"method", "low", "high"})
    if extra:
        raise ParamsError(f"ingest.normalisation: unknown key(s) {extra}")
    if norm["method"] not in ("percentile", "dtype"):
        raise ParamsError(f"ingest.normalisation.method: {norm['method']!r}; use percentile "
                          "or dtype")
    try:
        low, high = float(norm["low"]), float(norm["high"])
    except (TypeError, ValueError):
        raise ParamsError("ingest.normalisation.low/high: expected numbers (percentiles)") from None
    if not 0 <= low < high <= 100:
        raise ParamsError(f"ingest.normalisation: need 0 <= low < high <= 100, got {low}, {high}")
    if p["multipage"] not in ("first", "all"):
        raise ParamsError(f"ingest.multipage: {p['multipage']!r}; use first or all")
    if not _is_int(p["min_size"]) or p["min_size"] < 1:
        raise ParamsError(f"ingest.min_size: expected an integer >= 1, got {p['min_size']!r}")
    if not _is_int(p["workers"]) or p["workers"] < 1:
        raise ParamsError(f"ingest.workers: expected an integer >= 1, got {p['workers']!r}")
    if not isinstance(p["require_masks"], bool):
        raise ParamsError(f"ingest.require_masks: expected true or false, "
                          f"got {p['require_masks']!r}")
    if not isinstance(p["mask_suffix"], str):
        raise ParamsError(f"ingest.mask_suffix: expected text, got {p['mask_suffix']!r}")
    return IngestParams(
        source=None if p["source"] is None else str(p["source"]),
        require_masks=p["require_masks"], mask_suffix=p["mask_suffix"], encoding=encoding,
        tile_size=int(tile), pad_mode=p["pad_mode"], crop_bottom=crop, pixel_size_nm=px,
        norm_method=norm["method"], norm_low=low, norm_high=high, multipage=p["multipage"],
        min_size=int(p["min_size"]), workers=int(p["workers"]), target=p["target"],
        border_width=int(p["border_width"]), split_h=float(p["split_h"]))


# --------------------------------------------------------------------------------------------
def _size(h: int, w: int) -> str:
    return f"{w} x {h} px"


def _write_png(path: Path, array: np.ndarray) -> None:
    """Encode with the fixed PNG settings and write. Only ever called inside the temporary
    folder of :func:`porescope.io.atomic.output_dir`, which makes the whole output atomic, so
    a per-file temp-and-rename would only add file-system operations."""
    import cv2

    ok, buf = cv2.imencode(".png", array, _png_params())
    if not ok:
        raise ValueError(f"{path}: OpenCV could not encode an array of shape {array.shape}")
    with open(path, "xb") as fh:
        fh.write(buf.tobytes())


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise IngestError(path, f"cannot be read ({exc.strerror or exc}); check the file") from None


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def ingest_pair(pair: SourcePair, params: IngestParams, source_root: Path, out: Path
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Read, check, crop, normalise, decode and tile one image (and mask); write its PNGs under
    ``out``. Returns its ``sources.csv`` and ``tiles.csv`` rows. Raises ``IngestError``."""
    data = _read(pair.image)
    image = decode_image(data, str(pair.image), pages=params.multipage)
    if params.multipage == "first" and image.n_pages > 1:
        LOG.warning("%s: has %d pages; only the first is ingested (ingest.multipage: first; set "
                    "multipage: all to ingest every page as <stem>_p<k>)",
                    pair.image, image.n_pages)
    mask_file = mask = mask_data = None
    if pair.mask is not None:
        mask_data = _read(pair.mask)
        mask = decode_image(mask_data, str(pair.mask), pages=params.multipage)
        if params.multipage == "all" and mask.n_pages != image.n_pages:
            raise IngestError(pair.mask, f"mask has {mask.n_pages} page(s) but its image "
                                         f"{pair.image.name} has {image.n_pages}; with "
                                         "ingest.multipage: all each page needs its mask page")
        mask_file = _rel(pair.mask, source_root)

    if params.pixel_size_nm is not None:
        px, px_src = params.pixel_size_nm, "param"
        meta = image.pixel_size_nm
        if meta is not None and abs(meta - px) > 0.01 * px:
            LOG.warning("%s: ingest.pixel_size_nm = %g nm but the file's metadata (%s) says "
                        "%.6g nm; using the param", pair.image, px, image.pixel_size_source, meta)
    else:
        px, px_src = image.pixel_size_nm, image.pixel_size_source
    if px is not None:
        px = float(f"{px:.9g}")

    source_rows, tile_rows = [], []
    for k, page in enumerate(image.pages):
        name = str(pair.image)
        sid = pair.stem if image.n_pages == 1 or params.multipage == "first" \
            else f"{pair.stem}_p{page.index}"
        if image.n_pages > 1 and params.multipage == "all":
            name = f"{pair.image} (page {page.index})"
        grey = to_grey(page.array, page.palette, name)
        oh, ow = grey.shape
        if params.crop_bottom == "auto":
            crop = detect_data_bar(grey)
            if crop:
                LOG.info("%s: data bar of %d rows detected and cropped", name, crop)
            else:
                overlay = find_bottom_overlay(grey)
                if overlay is not None:
                    LOG.warning("%s: bright scale bar / text drawn over the micrograph near rows "
                                "%d-%d; crop_bottom: auto leaves it (no separate data bar: the "
                                "rows around it are micrograph). To drop those rows set "
                                "crop_bottom to an integer, e.g. %d", name, overlay[0],
                                overlay[1], oh - overlay[0] + max(4, oh // 20))
        else:
            crop = int(params.crop_bottom)
        if crop >= oh:
            raise IngestError(name, f"crop_bottom = {crop} rows removes the whole image "
                                    f"({_size(oh, ow)}); lower ingest.crop_bottom")
        grey = grey[:oh - crop]
        h, w = grey.shape
        if min(h, w) < params.min_size:
            raise IngestError(name, f"image is {_size(h, w)} (width x height)"
                                    f"{f' after cropping {crop} rows' if crop else ''}, smaller "
                                    f"than ingest.min_size = {params.min_size} px; remove it, or "
                                    "lower min_size if such small images are intended")
        u8, norm = to_uint8(grey, params.norm_method, params.norm_low, params.norm_high)

        ids = None
        if mask is not None:
            mpage = mask.pages[k]
            mname = str(pair.mask) if mask.n_pages == 1 or params.multipage == "first" \
                else f"{pair.mask} (page {mpage.index})"
            mh, mw = mpage.array.shape[:2]
            if (mh, mw) == (oh, ow):
                cut = crop
            elif crop and (mh, mw) == (h, w):
                cut = 0
                LOG.info("%s: mask already excludes the %d cropped rows", mname, crop)
            else:
                raise IngestError(mname, f"mask is {_size(mh, mw)} (width x height) but its image "
                                         f"{pair.image.name} is {_size(oh, ow)}"
                                         f"{f' ({_size(h, w)} after the crop)' if crop else ''}; "
                                         "a mask must cover its image pixel for pixel: re-export "
                                         "it at the image size or fix the pairing")
            ids = _mask_classes(mpage.array, params, mname, mpage.palette, mask.format, mh - cut)

        try:
            _write_png(out / "images" / f"{sid}.png", u8)
        except FileExistsError:
            raise IngestError(name, f"gives source id '{sid}', which another file also gives (a "
                                    "page suffix _p<k> of ingest.multipage: all meets a file "
                                    "stem); rename one of the files") from None
        if ids is not None:
            _write_png(out / "masks" / f"{sid}.png", ids)
        source_rows.append({
            "source_id": sid, "image_file": _rel(pair.image, source_root),
            "image_sha256": bytes_sha256(data), "mask_file": mask_file,
            "mask_sha256": bytes_sha256(mask_data) if mask_data is not None else None,
            "height": h, "width": w, "orig_height": oh, "orig_width": ow, "crop_bottom": crop,
            "page": page.index, "normalisation": norm, "pixel_size_nm": px,
            "pixel_size_source": px_src})

        tiles, positions = cut_tiles(u8, params.tile_size, params.pad_mode)
        mtiles = cut_tiles(ids, params.tile_size, params.pad_mode)[0] if ids is not None else None
        for i, pos in enumerate(positions):
            tid = f"{sid}__y{pos.y:05d}_x{pos.x:05d}"
            _write_png(out / "tiles" / "images" / f"{tid}.png", tiles[i])
            row = {"tile_id": tid, "source_id": sid, "y": pos.y, "x": pos.x,
                   "tile_size": params.tile_size, "valid_height": pos.valid_height,
                   "valid_width": pos.valid_width, "image_sha256": array_sha256(tiles[i]),
                   "mask_sha256": None, "fg_fraction": None}
            if mtiles is not None:
                _write_png(out / "tiles" / "masks" / f"{tid}.png", mtiles[i])
                valid = mtiles[i][:pos.valid_height, :pos.valid_width]
                row["mask_sha256"] = array_sha256(mtiles[i])
                row["fg_fraction"] = float(np.count_nonzero(valid)) / valid.size
            tile_rows.append(row)
    return source_rows, tile_rows


def _mask_classes(array: np.ndarray, params: IngestParams, name: str, palette: np.ndarray | None,
                  file_format: str | None, rows: int) -> np.ndarray:
    """Decoded class ids of a mask cut to ``rows``, with the ``target`` derivation applied."""
    if params.encoding.format == "instances":
        labels = decode_instances(array, name)[:rows]
        if params.target == "three_class":
            return three_class_from_instances(labels, params.border_width)
        return (labels > 0).astype(np.uint8)
    ids = decode_mask(array, params.encoding, name, palette, file_format)[:rows]
    if params.target == "three_class":
        return three_class_from_binary(ids > 0, border_width=params.border_width, h=params.split_h)
    return ids


def _worker(args: tuple[SourcePair, IngestParams, Path, Path]):
    return ingest_pair(*args)


def run_ingest(source: str | Path, out: str | Path, params: IngestParams) -> dict[str, Any]:
    """Ingest the dataset at ``source`` into ``out`` (replaced only when everything succeeded).

    Returns a summary ``{"sources", "tiles", "megapixels", "skipped_pages"}``.
    Raises ``IngestError`` for bad input (nothing is written then).
    """
    source, out = Path(source), Path(out)
    if out.resolve() == source.resolve() or source.resolve() in out.resolve().parents:
        raise ParamsError(f"--out {out} lies inside the source folder {source}; write the "
                          "ingested data elsewhere (e.g. data/ingested)")
    pairs = find_pairs(source, require_masks=params.require_masks, mask_suffix=params.mask_suffix)
    LOG.info("%s: %d image(s), %d with masks", source, len(pairs),
             sum(p.mask is not None for p in pairs))
    with atomic_io.output_dir(out) as tmp:
        for sub in ("images", "masks", "tiles/images", "tiles/masks"):
            (tmp / sub).mkdir(parents=True, exist_ok=True)
        jobs = [(p, params, source, tmp) for p in pairs]
        bar = tqdm(total=len(jobs), desc="ingest", unit="img", file=sys.stderr)
        results = []
        try:
            if params.workers > 1 and len(jobs) > 1:
                pool = ProcessPoolExecutor(max_workers=min(params.workers, len(jobs)),
                                           mp_context=worker_context(["porescope.io.images"]))
                try:
                    for res in pool.map(_worker, jobs):
                        results.append(res)
                        bar.update()
                except BaseException:
                    # stop queued jobs and wait for running ones, so that nothing writes into
                    # the temporary folder after output_dir has removed it
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
                pool.shutdown(wait=True)
            else:
                for job in jobs:
                    results.append(_worker(job))
                    bar.update()
        finally:
            bar.close()
        srows = [r for s, _ in results for r in s]
        trows = [r for _, t in results for r in t]
        seen: dict[str, str] = {}
        for r in srows:
            if r["source_id"] in seen:
                raise IngestError(source / r["image_file"],
                                  f"gives source id '{r['source_id']}', which "
                                  f"{seen[r['source_id']]} also gives (a page suffix _p<k> "
                                  "meets a file stem); rename one of the files")
            seen[r["source_id"]] = r["image_file"]
        sources = pd.DataFrame(srows, columns=SOURCES_COLUMNS).sort_values(
            "source_id", kind="stable").reset_index(drop=True)
        tiles = pd.DataFrame(trows, columns=TILES_COLUMNS).sort_values(
            ["source_id", "y", "x"], kind="stable").reset_index(drop=True)
        atomic_io.write_csv(tmp / "sources.csv", sources)
        atomic_io.write_csv(tmp / "tiles.csv", tiles)
        atomic_io.write_json(tmp / "classes.json",
                             {str(k): v for k, v in params.class_names.items()})
    mp = float((sources["height"] * sources["width"]).sum()) / 1e6 if len(sources) else 0.0
    LOG.info("%s: %d source(s), %d tile(s), %.2f Mpx written", out, len(sources), len(tiles), mp)
    return {"sources": len(sources), "tiles": len(tiles), "megapixels": mp}


def main(argv: Sequence[str] | None = None) -> int:
    parser = stage_parser("Ingest a micrograph dataset: read any supported format, decode masks "
                          "to class ids, crop SEM data bars, tile, and record provenance.")
    parser.add_argument("--source", default=None,
                        help="dataset folder (images/, masks/); overrides ingest.source")
    parser.add_argument("--out", default="data/ingested", help="output folder (data/ingested)")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        params = parse_params(load_params(args.params, "ingest"))
        source = args.source if args.source is not None else params.source
        if source is None:
            raise ParamsError("ingest.source is not set and --source was not given")
        if args.source is not None and params.source is not None and \
                Path(args.source) != Path(params.source):
            LOG.info("--source %s overrides ingest.source %s", args.source, params.source)
        run_ingest(source, args.out, params)
    except (IngestError, ParamsError) as exc:
        LOG.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    run_stage("ingest", main)
