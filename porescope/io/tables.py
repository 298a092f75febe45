"""Reading the pipeline's own intermediate datasets (ingest / split / augment outputs).

These are files the pipeline wrote itself (CSV tables, ``classes.json``, PNGs: uint8 grey
images, uint8 class-id masks; the tile stacks are read with :mod:`porescope.io.stacks`), so
reading is strict: a missing or undecodable file is an error naming it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from porescope.errors import PorescopeError


class PipelineDataError(PorescopeError, ValueError):
    """An intermediate file is missing or malformed; the message names it and the stage to rerun."""


def read_png(path: str | os.PathLike) -> np.ndarray:
    """Read a PNG written by the pipeline, unchanged (grey uint8 stays 2-D)."""
    data = np.fromfile(path, dtype=np.uint8) if Path(path).is_file() else None
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data is not None and data.size else None
    if image is None:
        raise PipelineDataError(f"{path}: missing or not a readable PNG; rerun the stage that writes it")
    return image


#: Columns read as strings (ids and hashes must not become numbers: "001" stays "001").
STRING_COLUMNS = ("source_id", "tile_id", "image_id", "image_file", "mask_file", "image_sha256", "mask_sha256",
                  "normalisation", "pixel_size_source", "source_image_file", "source_image_sha256", "split",
                  "file", "sample_id")


def read_table(path: str | os.PathLike, required: Iterable[str] = (), unique: str | None = None) -> pd.DataFrame:
    """Read a pipeline CSV: ids/hashes as strings, only empty cells as missing.

    Raises :class:`PipelineDataError` naming ``path`` when the file is absent or unreadable,
    lacks a ``required`` column, or has repeated values in the ``unique`` column.
    """
    path = Path(path)
    if not path.is_file():
        raise PipelineDataError(f"{path}: missing; rerun the stage that writes it (dvc repro)")
    try:
        head = pd.read_csv(path, nrows=0)
        dtypes = {c: str for c in head.columns if c in STRING_COLUMNS}
        table = pd.read_csv(path, dtype=dtypes, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise PipelineDataError(f"{path}: not a readable CSV table: {exc}") from None
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise PipelineDataError(f"{path}: missing column(s) {missing}")
    if unique is not None and table[unique].duplicated().any():
        dup = table.loc[table[unique].duplicated(), unique].unique()[:10].tolist()
        raise PipelineDataError(f"{path}: repeated {unique} {dup}")
    return table


def read_classes(ingested: str | os.PathLike) -> dict[int, str]:
    """Class id -> name from ``<ingested>/classes.json`` (ids 0..255, 0 = background required)."""
    path = Path(ingested) / "classes.json"
    try:
        classes = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PipelineDataError(f"{path}: missing; rerun ingest") from None
    except json.JSONDecodeError as exc:
        raise PipelineDataError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(classes, dict) or not classes:
        raise PipelineDataError(f"{path}: expected a non-empty mapping of class id -> name")
    try:
        out = {int(k): str(v) for k, v in classes.items()}
    except ValueError:
        raise PipelineDataError(f"{path}: class ids must be integers, got {sorted(classes)}") from None
    if 0 not in out or min(out) < 0 or max(out) > 255:
        raise PipelineDataError(f"{path}: class ids {sorted(out)} must include 0 (background) and lie in 0..255")
    return dict(sorted(out.items()))
