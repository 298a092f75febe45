"""Write a minimal ``ingest``-stage output folder for tests of the stages that read it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from porescope.io.images import array_sha256  # the ingest contract's content hash


def write_ingested(root: Path, sources: Mapping[str, tuple[np.ndarray, np.ndarray]], *, tile: int,
                   classes: Mapping[str, str], png_level: Mapping[str, int] | None = None,
                   source_fields: Mapping[str, Any] | None = None) -> Path:
    """An ingest-layout folder (images/, masks/, tiles/{images,masks}.npy, sources.csv, tiles.csv,
    classes.json) from ``{source id: (uint8 image, class-id mask)}``, tiled on a ``tile`` grid
    without padding. ``png_level[source]``: PNG compression of that source's image file (another
    raw hash for the same pixels); ``source_fields``: sources.csv values to set (e.g. the pixel
    size); ``pixel_size_nm`` may be a callable of the source id."""
    for sub in ("images", "masks", "tiles"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    png_level = png_level or {}
    fields = {"pixel_size_nm": np.nan, "pixel_size_source": "", **(source_fields or {})}
    src_rows, tile_rows, stacks = [], [], {"images": [], "masks": []}
    for sid, (image, mask) in sources.items():
        params = [cv2.IMWRITE_PNG_COMPRESSION, png_level[sid]] if sid in png_level else []
        ok, buf = cv2.imencode(".png", image, params)
        assert ok
        (root / "images" / f"{sid}.png").write_bytes(buf.tobytes())
        cv2.imwrite(str(root / "masks" / f"{sid}.png"), mask)
        h, w = image.shape
        row = {"source_id": sid, "image_file": f"{sid}.png",
               "image_sha256": hashlib.sha256(buf.tobytes()).hexdigest(),
               "mask_file": f"{sid}.png", "mask_sha256": array_sha256(mask), "height": h, "width": w,
               "orig_height": h, "orig_width": w, "crop_bottom": 0, "page": 0, "normalisation": "none"}
        src_rows.append({**row, **{k: v(sid) if callable(v) else v for k, v in fields.items()}})
        for y in range(0, h, tile):
            for x in range(0, w, tile):
                ti, tm = image[y:y + tile, x:x + tile], mask[y:y + tile, x:x + tile]
                stacks["images"].append(ti)
                stacks["masks"].append(tm)
                tile_rows.append({"tile_id": f"{sid}__y{y:05d}_x{x:05d}", "source_id": sid, "y": y,
                                  "x": x, "tile_size": tile, "valid_height": tile, "valid_width": tile,
                                  "image_sha256": array_sha256(ti), "mask_sha256": array_sha256(tm),
                                  "fg_fraction": float((tm > 0).mean())})
    pd.DataFrame(src_rows).to_csv(root / "sources.csv", index=False)
    pd.DataFrame(tile_rows).to_csv(root / "tiles.csv", index=False)
    for kind, tiles in stacks.items():  # rows in the order of tiles.csv
        np.save(root / "tiles" / f"{kind}.npy", np.stack(tiles))
    (root / "classes.json").write_text(json.dumps(dict(classes)))
    return root
