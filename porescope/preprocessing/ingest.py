"""Ingest: bring any labelled (or unlabelled) micrograph dataset into one layout.

:func:`run_ingest` reads every image (and mask) of a dataset folder, decodes the masks to class
ids, crops SEM data bars, converts to 8-bit grey, tiles, and writes (``out``, built in a
temporary folder and swapped in only when complete): ``images/`` and ``masks/`` (one PNG per
source, full size), ``tiles/images.npy`` and ``tiles/masks.npy``, ``sources.csv``,
``tiles.csv``, ``classes.json``. ``image_file`` / ``mask_file`` are paths relative to the source
folder; ``fg_fraction`` is the fraction of a tile's valid (unpadded) pixels whose class is not 0.
Without a mask, the mask columns are empty and no mask PNG is written.

The tiles are two stacks (:mod:`porescope.io.stacks`), uint8 ``(N, tile_size, tile_size)``, row
``k`` = row ``k`` of ``tiles.csv``: ``tiles/images.npy`` (grey) and ``tiles/masks.npy`` (class
ids; the rows of tiles without a mask, empty ``mask_sha256``, are 0 and stand for nothing;
absent when no source has a mask). Every tile has the same shape: ``tile_size`` is one value for
all datasets of ``sources`` and the images are 8-bit grey.

The settings are :class:`IngestParams` (the ``ingest`` params group):

``source``         folder with ``images/`` and ``masks/`` (pairs by file stem, any supported
                   format, detected from content). Without ``images/`` (and with
                   ``require_masks: false``) the folder itself holds the images.
``require_masks``  every image needs a mask. When false, masks are used where present and
                   ``masks/`` may be absent (images to measure, not to train on).
``mask_suffix``    text after the image stem in mask file names (``"_mask"``).
``mask_format``    ``binary`` | ``labels`` | ``rgb`` | ``instances`` (one integer id per object,
                   0 = background; becomes class 1, or interior/border with ``target``)
                   (:mod:`porescope.io.mask_encoding`).
``target``         ``as_is`` (the decoded classes) or ``three_class``: interior (1) / border (2) /
                   background (0) derived from binary or instance masks (paper 003). Binary
                   masks are first split into objects with the distance-transform watershed
                   (``split_h``, px); ``border_width`` px of each object's edge, and of every
                   line where two objects touch, becomes border.
``foreground``     binary only: pixel value of the objects (255; 0 for ISBI 2012).
``n_classes``      labels: ids are 0..n_classes-1 (or give ``class_names``).
``colour_map``     rgb: ``{"R,G,B": class id}``, e.g. ``{"255,0,0": 1, "0,0,255": 2, "0,0,0": 0}``.
``class_names``    list (index = id) or mapping id -> name; must include 0. ``null``: binary
                   ``[background, pore]``, instances ``[background, object]``, labels/rgb
                   ``background, class_1, ...``.
``tile_size``      tile side in px; images are cut on a stride-``tile_size`` grid and
                   mirror-padded (:mod:`porescope.preprocessing.tiling`).
``pad_mode``       ``reflect`` or ``symmetric``.
``crop_bottom``    rows of an SEM data bar to remove, or ``auto`` (:mod:`porescope.io.micrograph`).
``pixel_size_nm``  a number (nm per pixel, all images), or ``auto`` / null: read from TIFF
                   metadata (FEI/Thermo, Zeiss, ImageJ, TIFF resolution); empty when unknown.
``normalisation``  for >8-bit images (:class:`~porescope.io.micrograph.NormalisationParams`);
                   recorded per source in ``sources.csv``. 8-bit data are never changed.
``multipage``      ``first``: first page of multi-page TIFFs only (a warning says how many were
                   left out); ``all``: every page becomes its own source ``<stem>_p<k>``
                   (k = 0-based page index; single-page files keep their stem). A multi-page
                   mask must then have the same page count.
``min_size``       smallest allowed image side in px after the crop.
``max_pixels``     largest image (and mask) decoded, rows x cols summed over the pages read;
                   checked from the file header before the file is read whole, so a
                   decompression bomb costs a few bytes of reading
                   (default :data:`porescope.io.images.DEFAULT_MAX_PIXELS`, 400 Mpx).
``workers``        processes; the output does not depend on it.
``ignore_value``   partial annotations: the mask value (binary, labels, instances) or colour
                   (rgb: ``"R,G,B"``) painted where nothing is annotated; those pixels become
                   :data:`~porescope.io.mask_encoding.IGNORE_ID` (255) in the written masks and
                   are skipped by training, threshold calibration and the metrics. ``null``
                   (default): every mask pixel is annotated.
``sources``        several datasets at once (:mod:`porescope.preprocessing.datasets`): a list of
                   ``{name, path, weight, role}`` plus any of the mask and pixel-size keys above
                   for that dataset; source ids become ``<name>__<stem>`` and ``sources.csv``
                   gains the columns ``dataset``, ``weight``, ``role``. ``null`` (default): the
                   one dataset at ``source``.
"""

from __future__ import annotations

import logging
import shutil
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from tqdm import tqdm

from porescope.config import Fail, ParamsError, parse_group, to_mapping
from porescope.io import atomic as atomic_io
from porescope.io.images import (
    DEFAULT_MAX_PIXELS,
    array_sha256,
    bytes_sha256,
    decode_image,
    image_size,
)
from porescope.io.mask_encoding import (
    IGNORE_ID,
    MaskEncoding,
    annotated,
    decode_instances,
    decode_mask,
    parse_colour,
    parse_colour_map,
)
from porescope.io.micrograph import NormalisationParams, page_micrograph
from porescope.io.pairing import IngestError, SourcePair, find_pairs
from porescope.io.stacks import StackWriter
from porescope.parallel.processes import worker_context
from porescope.preprocessing.datasets import DATASET_COLUMNS, DatasetParams, source_id
from porescope.preprocessing.tiling import cut_tiles
from porescope.segmentation.instances import three_class_from_binary, three_class_from_instances

LOG = logging.getLogger("porescope.ingest")

SOURCES_COLUMNS = ["source_id", "image_file", "image_sha256", "mask_file", "mask_sha256",
                   "height", "width", "orig_height", "orig_width", "crop_bottom", "page",
                   "normalisation", "pixel_size_nm", "pixel_size_source"]
TILES_COLUMNS = ["tile_id", "source_id", "y", "x", "tile_size", "valid_height", "valid_width",
                 "image_sha256", "mask_sha256", "fg_fraction"]

#: Folder (inside the temporary output) of each image's tiles, gathered into the stacks at the end.
_PARTS = ".tile_parts"


class _Bad(Exception):
    """A rule of the ingest params is broken: ``(key, why)``."""


@dataclass(frozen=True)
class IngestParams:
    """The ``ingest`` params group (see the module docstring); defaults = ``params.yaml``."""

    source: str | None = "data/synthetic"
    require_masks: bool = True
    mask_suffix: str = ""
    mask_format: Literal["binary", "labels", "rgb", "instances"] = "binary"
    foreground: int | float = 255
    n_classes: int | None = field(default=None, metadata={"ge": 2, "le": 256})
    colour_map: dict | None = None
    class_names: tuple[str, ...] | dict | None = ("background", "pore")
    tile_size: int = field(default=128, metadata={"ge": 16})
    pad_mode: Literal["reflect", "symmetric"] = "reflect"
    crop_bottom: int | Literal["auto"] | None = 0
    pixel_size_nm: float | Literal["auto"] | None = field(default=25.0, metadata={"gt": 0})
    normalisation: NormalisationParams = field(default_factory=NormalisationParams)
    multipage: Literal["first", "all"] = "first"
    min_size: int = field(default=32, metadata={"ge": 1})
    max_pixels: int = field(default=DEFAULT_MAX_PIXELS, metadata={"ge": 1, "le": 10 ** 11})
    workers: int = field(default=1, metadata={"ge": 1})
    target: Literal["as_is", "three_class"] = "as_is"
    border_width: int = field(default=2, metadata={"ge": 1})
    split_h: float = field(default=0.5, metadata={"gt": 0})
    ignore_value: int | str | tuple[int, ...] | None = None
    sources: tuple[DatasetParams, ...] | None = None

    def check(self, fail: Fail) -> None:
        if self.target == "three_class" and self.mask_format not in ("binary", "instances"):
            raise fail("target", f"three_class derives interior/border from binary or instance "
                                 f"masks; mask_format {self.mask_format!r} already defines its "
                                 "classes (use target: as_is)")
        if isinstance(self.crop_bottom, int) and self.crop_bottom < 0:
            raise fail("crop_bottom", "expected rows to remove (integer >= 0) or 'auto'")
        try:
            self.encoding
        except _Bad as exc:
            raise fail(*exc.args) from None
        if self.sources is not None:
            self._check_sources(fail)
        if self.tile_size % 32:
            LOG.warning("ingest.tile_size %d is not a multiple of 32; most segmentation encoders "
                        "need multiples of 32", self.tile_size)

    def _check_sources(self, fail: Fail) -> None:
        if not self.sources:
            raise fail("sources", "an empty list; give datasets, or null for ingest.source")
        names = [d.name for d in self.sources]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise fail("sources", f"dataset name(s) {twice} given twice; names must be unique")
        if not any(d.weight > 0 for d in self.sources):
            raise fail("sources", "every dataset has weight 0; at least one must be trained on")
        classes = {d.name: self.for_dataset(d).output_class_names for d in self.sources}
        first = names[0]
        for name, found in classes.items():
            if found != classes[first]:
                raise fail("sources", f"dataset {name!r} gives classes {found} but {first!r} "
                                      f"gives {classes[first]}; all datasets must give the same "
                                      "class ids and names (set class_names per dataset)")

    def for_dataset(self, dataset: DatasetParams) -> IngestParams:
        """The ingest params of one dataset of ``sources``: the flat keys, overridden by the
        dataset's own (raises ``ParamsError`` naming ``ingest.sources.<name>.<key>``)."""
        raw = {**to_mapping(self), **dataset.overrides(), "source": dataset.path, "sources": None}
        return parse_group(IngestParams, raw, group=f"ingest.sources.{dataset.name}")

    @property
    def crop_rows(self) -> int | str:
        """``crop_bottom`` with null read as 0."""
        return 0 if self.crop_bottom is None else self.crop_bottom

    @property
    def pixel_size(self) -> float | None:
        """The given pixel size, or ``None`` for ``auto`` / null (metadata)."""
        return None if self.pixel_size_nm in (None, "auto") else float(self.pixel_size_nm)

    @property
    def encoding(self) -> MaskEncoding:
        """How the masks encode classes (raises :class:`_Bad` for inconsistent params)."""
        fmt, n_classes = self.mask_format, self.n_classes
        names = None if self.class_names is None else _class_names(self.class_names)
        colour_map = None
        if fmt in ("binary", "instances"):
            names = names if names is not None else {0: "background",
                                                     1: "pore" if fmt == "binary" else "object"}
            if sorted(names) != [0, 1]:
                raise _Bad("class_names", f"{fmt} masks have classes 0 and 1, got ids {sorted(names)}")
        elif fmt == "labels":
            if names is None and n_classes is None:
                raise _Bad("n_classes", "mask_format is 'labels': set ingest.n_classes or "
                                        "ingest.class_names so the allowed class ids are known")
            if names is None:
                names = {0: "background", **{k: f"class_{k}" for k in range(1, n_classes)}}
            elif n_classes is not None and sorted(names) != list(range(n_classes)):
                raise _Bad("class_names", f"has ids {sorted(names)} but ingest.n_classes is "
                                          f"{n_classes}; make them agree (or drop n_classes)")
        else:
            if not isinstance(self.colour_map, Mapping) or not self.colour_map:
                raise _Bad("colour_map", "mask_format 'rgb' needs a mapping {\"R,G,B\": class id}, "
                                         "e.g. {\"255,0,0\": 1, \"0,0,0\": 0}")
            try:
                colour_map = parse_colour_map(self.colour_map)
            except ValueError as exc:
                raise _Bad("colour_map", str(exc)) from None
            ids = sorted(set(colour_map.values()) | {0})
            if names is None:
                names = {k: ("background" if k == 0 else f"class_{k}") for k in ids}
            missing = sorted(set(colour_map.values()) - set(names))
            if missing:
                raise _Bad("class_names", f"no name for class id(s) {missing} used in "
                                          "ingest.colour_map")
            if n_classes is not None and max(names) >= n_classes:
                raise _Bad("n_classes", f"is {n_classes} but class id {max(names)} is used")
        if 0 not in names:
            raise _Bad("class_names", "class id 0 (background) must be named")
        ignore = self._ignore(fmt, names, colour_map)
        return MaskEncoding(fmt, dict(sorted(names.items())), self.foreground, colour_map, ignore)

    def _ignore(self, fmt: str, names: Mapping[int, str], colour_map: Mapping | None
                ) -> int | tuple[int, int, int] | None:
        """``ignore_value`` checked against the format: a colour for rgb, else an integer that
        is no class value (raises :class:`_Bad`)."""
        value = self.ignore_value
        if value is None:
            return None
        if IGNORE_ID in names:
            raise _Bad("class_names", f"class id {IGNORE_ID} marks not-annotated pixels once "
                                      "ingest.ignore_value is set; renumber that class")
        if fmt == "rgb":
            try:
                colour = parse_colour(value)
            except ValueError as exc:
                raise _Bad("ignore_value", f"{exc} (mask_format rgb: the colour painted where "
                                           "nothing is annotated)") from None
            if colour_map and colour in colour_map:
                raise _Bad("ignore_value", f"colour {colour} is also a class in ingest.colour_map")
            return colour
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Bad("ignore_value", f"mask_format {fmt}: expected the integer mask value "
                                       f"painted where nothing is annotated, got {value!r}")
        clash = {"binary": value == self.foreground, "instances": value == 0,
                 "labels": value in names}[fmt]
        if clash:
            raise _Bad("ignore_value", f"{value} is also a class value of the {fmt} masks "
                                       "(foreground, background 0 or a class id); paint "
                                       "not-annotated pixels with a value no class uses")
        return value

    @property
    def output_class_names(self) -> dict[int, str]:
        """Class id -> name of the written masks (three_class adds a border class 2)."""
        names = dict(self.encoding.class_names)
        if self.target == "three_class":
            return {0: names[0], 1: names[1], 2: "border"}
        return names


def _class_names(raw: Any) -> dict[int, str]:
    if isinstance(raw, Mapping):
        out = {}
        for k, v in raw.items():
            try:
                out[int(k)] = str(v)
            except (TypeError, ValueError):
                raise _Bad("class_names", f"key {k!r} is not a class id (integer)") from None
        return out
    return {i: str(v) for i, v in enumerate(raw)}


def parse_ingest_params(raw: Mapping[str, Any] | None, source: str = "params.yaml") -> IngestParams:
    """:class:`IngestParams` from the ``ingest`` params group; raises ``ParamsError``.

    Examples
    --------
    >>> parse_ingest_params({"tile_size": 64}).tile_size
    64
    >>> parse_ingest_params({"mask_format": "labels", "class_names": None})
    Traceback (most recent call last):
    ...
    porescope.config.ParamsError: params.yaml: ingest.n_classes: mask_format is 'labels': set ingest.n_classes or ingest.class_names so the allowed class ids are known (got None)
    """
    return parse_group(IngestParams, raw, group="ingest", source=source)


#: PNG encoder settings for every output PNG, fixed so the bytes are reproducible: zlib level 1,
#: run-length strategy, "sub" row filter (OpenCV 5's defaults, spelled out; fast for micrographs
#: and very compact for class-id masks).
def _png_params() -> list[int]:
    import cv2

    return [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
            cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB]


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


def ingest_pair(pair: SourcePair, params: IngestParams, source_root: Path, out: Path,
                dataset: DatasetParams | None = None, part: int = 0
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Read, check, crop, normalise, decode and tile one image (and mask); write its PNGs under
    ``out`` and its tiles, in the order of its ``tiles.csv`` rows, to
    ``out/.tile_parts/<part>.images.npy`` (and ``.masks.npy``). Returns its ``sources.csv`` and
    ``tiles.csv`` rows. Raises ``IngestError``. ``dataset`` (one of ``ingest.sources``) prefixes
    the source id and adds its columns."""
    # header size check first: a bomb is refused before the file is read whole
    image_size(pair.image, params.multipage, max_pixels=params.max_pixels)
    data = _read(pair.image)
    image = decode_image(data, str(pair.image), pages=params.multipage,
                         max_pixels=params.max_pixels)
    if params.multipage == "first" and image.n_pages > 1:
        LOG.warning("%s: has %d pages; only the first is ingested (ingest.multipage: first; set "
                    "multipage: all to ingest every page as <stem>_p<k>)",
                    pair.image, image.n_pages)
    mask_file = mask = mask_data = None
    if pair.mask is not None:
        image_size(pair.mask, params.multipage, max_pixels=params.max_pixels)
        mask_data = _read(pair.mask)
        mask = decode_image(mask_data, str(pair.mask), pages=params.multipage,
                            max_pixels=params.max_pixels)
        if params.multipage == "all" and mask.n_pages != image.n_pages:
            raise IngestError(pair.mask, f"mask has {mask.n_pages} page(s) but its image "
                                         f"{pair.image.name} has {image.n_pages}; with "
                                         "ingest.multipage: all each page needs its mask page")
        mask_file = _rel(pair.mask, source_root)

    source_rows, tile_rows, tile_images, tile_masks = [], [], [], []
    for k, page in enumerate(image.pages):
        name = str(pair.image)
        sid = pair.stem if image.n_pages == 1 or params.multipage == "first" \
            else f"{pair.stem}_p{page.index}"
        sid = source_id(dataset.name if dataset is not None else None, sid)
        if image.n_pages > 1 and params.multipage == "all":
            name = f"{pair.image} (page {page.index})"
        mg = page_micrograph(image, k, crop_bottom=params.crop_rows,
                             pixel_size_nm=params.pixel_size, normalisation=params.normalisation,
                             name=name, given_source="param")
        for note in mg.warnings:
            LOG.warning("%s: %s", name, note)
        px, px_src = mg.pixel_size_nm, mg.pixel_size_source
        if px is not None:
            px = float(f"{px:.9g}")
        u8, crop, norm = mg.image, mg.crop_bottom, mg.normalisation
        oh, ow = mg.orig_shape
        h, w = u8.shape
        if min(h, w) < params.min_size:
            raise IngestError(name, f"image is {_size(h, w)} (width x height)"
                                    f"{f' after cropping {crop} rows' if crop else ''}, smaller "
                                    f"than ingest.min_size = {params.min_size} px; remove it, or "
                                    "lower min_size if such small images are intended")

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
        if dataset is not None:
            source_rows[-1].update(dataset=dataset.name, weight=dataset.weight, role=dataset.role)

        tiles, positions = cut_tiles(u8, params.tile_size, params.pad_mode)
        mtiles = cut_tiles(ids, params.tile_size, params.pad_mode)[0] if ids is not None else None
        tile_images.append(tiles)
        for i, pos in enumerate(positions):
            tid = f"{sid}__y{pos.y:05d}_x{pos.x:05d}"
            row = {"tile_id": tid, "source_id": sid, "y": pos.y, "x": pos.x,
                   "tile_size": params.tile_size, "valid_height": pos.valid_height,
                   "valid_width": pos.valid_width, "image_sha256": array_sha256(tiles[i]),
                   "mask_sha256": None, "fg_fraction": None}
            if mtiles is not None:
                valid = mtiles[i][:pos.valid_height, :pos.valid_width]
                row["mask_sha256"] = array_sha256(mtiles[i])
                # not-annotated pixels are no foreground
                fg = np.count_nonzero(valid) - np.count_nonzero(valid == IGNORE_ID)
                row["fg_fraction"] = float(fg) / valid.size
            tile_rows.append(row)
        if mtiles is not None:
            tile_masks.append(mtiles)
    # a file has a mask for every page or for none (a page count mismatch is refused above)
    for kind, arrays in (("images", tile_images), ("masks", tile_masks)):
        if arrays:
            np.save(out / _PARTS / f"{part:06d}.{kind}.npy", np.concatenate(arrays), allow_pickle=False)
    return source_rows, tile_rows


def _mask_classes(array: np.ndarray, params: IngestParams, name: str, palette: np.ndarray | None,
                  file_format: str | None, rows: int) -> np.ndarray:
    """Decoded class ids of a mask cut to ``rows``, with the ``target`` derivation applied.
    Not-annotated pixels stay :data:`IGNORE_ID` (background while the target is derived)."""
    encoding = params.encoding
    if encoding.format == "instances":
        labels = decode_instances(array, name, encoding.ignore)[:rows]
        hidden = labels < 0
        labels = np.maximum(labels, 0)
        if params.target == "three_class":
            ids = three_class_from_instances(labels, params.border_width)
        else:
            ids = (labels > 0).astype(np.uint8)
    else:
        ids = decode_mask(array, encoding, name, palette, file_format)[:rows]
        hidden = ~annotated(ids)
        if params.target == "three_class":
            ids = three_class_from_binary((ids > 0) & ~hidden, border_width=params.border_width,
                                          h=params.split_h)
    if encoding.ignore is not None:
        ids[hidden] = IGNORE_ID
    return ids


def _worker(args: tuple[SourcePair, IngestParams, Path, Path, DatasetParams | None, int]):
    return ingest_pair(*args)


def _write_tile_stacks(out: Path, tiles: pd.DataFrame, tile_size: int) -> None:
    """Gather the parts written by :func:`ingest_pair` into ``out/tiles/images.npy`` and
    ``masks.npy``, row ``k`` = row ``k`` of ``tiles`` (its ``_part`` / ``_row`` columns say where
    each tile lies), then remove them. A masks row of a tile without a mask is 0; no masks file
    when no tile has a mask."""
    parts, shape = out / _PARTS, (tile_size, tile_size)
    where = tiles[["_part", "_row"]].to_numpy()
    masked = tiles["mask_sha256"].notna().to_numpy()
    for kind in ("images", "masks"):
        if kind == "masks" and not masked.any():
            continue
        opened: dict[int, np.ndarray] = {}  # the tiles of one source are consecutive rows
        with StackWriter(out / "tiles" / f"{kind}.npy", len(tiles), shape) as stack:
            for (k, j), has_mask in zip(where, masked):
                if kind == "masks" and not has_mask:
                    stack.append(np.zeros(shape, np.uint8))
                    continue
                if k not in opened:
                    opened = {k: np.load(parts / f"{k:06d}.{kind}.npy", mmap_mode="r")}
                stack.append(opened[k][j])
        del opened
    shutil.rmtree(parts)


def _pairs(source: Path, out: Path, params: IngestParams
           ) -> list[tuple[SourcePair, IngestParams, Path, DatasetParams | None]]:
    """Every image (and mask) with its params, root folder and dataset: of the folder
    ``source``, or of every dataset of ``params.sources``."""
    datasets = [(None, params, source)] if params.sources is None else \
        [(d, params.for_dataset(d), Path(d.path)) for d in params.sources]
    jobs = []
    for dataset, dparams, root in datasets:
        if out.resolve() == root.resolve() or root.resolve() in out.resolve().parents:
            raise ParamsError(f"--out {out} lies inside the source folder {root}; write the "
                              "ingested data elsewhere (e.g. data/ingested)")
        pairs = find_pairs(root, require_masks=dparams.require_masks,
                           mask_suffix=dparams.mask_suffix)
        LOG.info("%s: %d image(s), %d with masks", root, len(pairs),
                 sum(p.mask is not None for p in pairs))
        jobs.extend((p, dparams, root, dataset) for p in pairs)
    return jobs


def run_ingest(source: str | Path, out: str | Path, params: IngestParams) -> dict[str, Any]:
    """Ingest the dataset at ``source`` into ``out`` (replaced only when everything succeeded).

    Returns a summary ``{"sources", "tiles", "megapixels", "skipped_pages"}``.
    Raises ``IngestError`` for bad input (nothing is written then).
    """
    source, out = Path(source), Path(out)
    pairs = _pairs(source, out, params)
    with atomic_io.output_dir(out) as tmp:
        for sub in ("images", "masks", "tiles", _PARTS):
            (tmp / sub).mkdir(parents=True, exist_ok=True)
        jobs = [(p, dparams, root, tmp, dataset, k)
                for k, (p, dparams, root, dataset) in enumerate(pairs)]
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
        trows = [{**r, "_part": k, "_row": j} for k, (_, t) in enumerate(results)
                 for j, r in enumerate(t)]
        seen: dict[str, str] = {}
        roots = {} if params.sources is None else {d.name: Path(d.path) for d in params.sources}
        for r in srows:
            if r["source_id"] in seen:
                raise IngestError(roots.get(r.get("dataset"), source) / r["image_file"],
                                  f"gives source id '{r['source_id']}', which "
                                  f"{seen[r['source_id']]} also gives (a page suffix _p<k> "
                                  "meets a file stem); rename one of the files")
            seen[r["source_id"]] = r["image_file"]
        columns = SOURCES_COLUMNS + ([] if params.sources is None else list(DATASET_COLUMNS))
        sources = pd.DataFrame(srows, columns=columns).sort_values(
            "source_id", kind="stable").reset_index(drop=True)
        tiles = pd.DataFrame(trows, columns=[*TILES_COLUMNS, "_part", "_row"]).sort_values(
            ["source_id", "y", "x"], kind="stable").reset_index(drop=True)
        _write_tile_stacks(tmp, tiles, params.tile_size)
        tiles = tiles[TILES_COLUMNS]
        atomic_io.write_csv(tmp / "sources.csv", sources)
        atomic_io.write_csv(tmp / "tiles.csv", tiles)
        atomic_io.write_json(tmp / "classes.json",
                             {str(k): v for k, v in params.output_class_names.items()})
    mp = float((sources["height"] * sources["width"]).sum()) / 1e6 if len(sources) else 0.0
    LOG.info("%s: %d source(s), %d tile(s), %.2f Mpx written", out, len(sources), len(tiles), mp)
    return {"sources": len(sources), "tiles": len(tiles), "megapixels": mp}


