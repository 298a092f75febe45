"""Decode annotation masks, as users bring them, to ``uint8`` class ids.

Datasets encode their classes differently (METHODS.md section 3: the mapping is a parameter,
never guessed). Three encodings:

``binary``
    Two values. Pixels equal to ``foreground`` become class 1, the single other value class 0.
    ISBI 2012 uses ``foreground=0`` (membrane = 0, cell interior = 255); the synthetic set and
    most tools ``255``. A mask may hold only one of the two values (an empty or a full mask).
    A third value is an error (typically a mask saved as JPEG, whose compression invents grey
    levels along edges): nothing is thresholded silently.
``labels``
    Pixel values are the class ids themselves (0 = background, 1, 2, ...), checked against the
    declared ids. Palette PNGs/TIFFs count their palette *indices* as the values.
``rgb``
    Each colour is a class through a map ``{(R, G, B): class_id}`` (e.g. red = particle,
    blue = boundary, black = background). A colour outside the map is an error listing the
    colours found and their pixel counts.

Partial annotations. A value (``binary``, ``labels``, ``instances``) or a colour (``rgb``) may be
declared the *ignore* value, "not annotated here": its pixels decode to :data:`IGNORE_ID` (255),
which is no class. Training, threshold calibration and the metrics skip those pixels (nnU-Net's
ignore label); see :func:`annotated`.

Grey masks stored as RGB (R = G = B everywhere) are accepted for ``binary``/``labels``; grey
masks for ``rgb`` are read as the colours (v, v, v); an alpha channel is ignored. Ingest derives
nothing else from the masks (no boundary or distance targets; the three-class target of
METHODS.md is built later, from these class ids).

Every error is an :class:`~porescope.io.pairing.IngestError` whose message starts with the mask
file, gives the unexpected values and their pixel counts, and says what to do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from porescope.io.images import histogram
from porescope.io.pairing import IngestError

MaskFormat = Literal["binary", "labels", "rgb", "instances"]
Colour = tuple[int, int, int]

#: Class id of "not annotated" pixels in decoded masks (and every mask written after ingest);
#: never a class, so no class may use it when an ignore value is declared.
IGNORE_ID = 255


def annotated(mask: np.ndarray) -> np.ndarray:
    """Boolean array: True where ``mask`` (decoded class ids) is annotated, i.e. not :data:`IGNORE_ID`.

    Examples
    --------
    >>> annotated(np.array([[0, 1, 255]], np.uint8)).tolist()
    [[True, True, False]]
    """
    return np.asarray(mask) != IGNORE_ID


@dataclass(frozen=True)
class MaskEncoding:
    """How a dataset encodes classes in its mask files.

    ``class_names``: class id -> name, always containing 0; ``foreground`` for ``binary``;
    ``colour_map`` for ``rgb``; ``ignore``: the raw value (a colour for ``rgb``) of pixels that
    are not annotated, decoded to :data:`IGNORE_ID`, or ``None``.
    """

    format: MaskFormat
    class_names: Mapping[int, str]
    foreground: int | float = 255
    colour_map: Mapping[Colour, int] | None = None
    ignore: int | Colour | None = None

    @property
    def class_ids(self) -> tuple[int, ...]:
        return tuple(sorted(self.class_names))


def parse_colour(key: Any) -> Colour:
    """``"255,0,0"``, ``"255 0 0"``, ``"#ff0000"`` or ``[255, 0, 0]`` -> ``(255, 0, 0)``."""
    if isinstance(key, str):
        s = key.strip()
        if re.fullmatch(r"#[0-9a-fA-F]{6}", s):
            return (int(s[1:3], 16), int(s[3:5], 16), int(s[5:7], 16))
        parts = [p for p in re.split(r"[,\s;]+", s.strip("()[]")) if p]
    elif isinstance(key, Sequence):
        parts = list(key)
    else:
        raise ValueError(f"colour {key!r}: expected 'R,G,B', '#rrggbb' or [R, G, B]")
    try:
        rgb = tuple(int(p) for p in parts)
    except (TypeError, ValueError):
        raise ValueError(f"colour {key!r}: expected three integers 0..255") from None
    if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
        raise ValueError(f"colour {key!r}: expected three integers 0..255")
    return rgb  # type: ignore[return-value]


def parse_colour_map(mapping: Mapping[Any, Any]) -> dict[Colour, int]:
    """``{"255,0,0": 1, "0,0,255": 2, "0,0,0": 0}`` -> ``{(255, 0, 0): 1, ...}``.

    Raises ``ValueError`` (naming the entry) for a bad colour, a non-integer or negative class
    id, or one colour given twice.
    """
    out: dict[Colour, int] = {}
    for key, value in mapping.items():
        colour = parse_colour(key)
        if (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                or not 0 <= value <= 255):
            raise ValueError(f"colour {key!r}: class id must be an integer 0..255, got {value!r}")
        if colour in out:
            raise ValueError(f"colour {key!r} is given twice")
        out[colour] = int(value)
    return out


def _counts_text(values: np.ndarray, counts: np.ndarray, fmt=str, limit: int = 12) -> str:
    order = np.argsort(-counts, kind="stable")
    items = [f"{fmt(values[i])}: {int(counts[i])} px" for i in order[:limit]]
    if len(order) > limit:
        items.append(f"... {len(order) - limit} more")
    return ", ".join(items)


def _value_counts(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if a.dtype in (np.uint8, np.uint16):
        counts = histogram(a)
        values = np.flatnonzero(counts)
        return values, counts[values]
    return np.unique(a, return_counts=True)


def _as_single_plane(mask: np.ndarray, name: str, what: str) -> np.ndarray:
    if mask.ndim == 2:
        return mask
    if mask.ndim == 3 and mask.shape[2] in (2, 3, 4):
        colour = mask[..., :3] if mask.shape[2] >= 3 else mask[..., :1]
        if colour.shape[2] == 1 or (np.array_equal(colour[..., 0], colour[..., 1])
                                    and np.array_equal(colour[..., 0], colour[..., 2])):
            return np.ascontiguousarray(colour[..., 0])
        raise IngestError(name, f"mask has colour pixels (R, G, B differ) but ingest.mask_format "
                                f"is '{what}'; for colour-coded classes set mask_format: rgb "
                                "with a colour_map, or save the mask as grey values")
    raise IngestError(name, f"mask has an unsupported pixel layout {mask.shape}")


def decode_binary(mask: np.ndarray, foreground: int | float, name: str = "mask",
                  file_format: str | None = None, ignore: int | None = None) -> np.ndarray:
    """Binary mask -> ``uint8`` class ids: ``foreground`` -> 1, the one other value -> 0,
    ``ignore`` (if given) -> :data:`IGNORE_ID`.

    Examples
    --------
    >>> decode_binary(np.array([[0, 255, 128]], np.uint8), 255, ignore=128).tolist()
    [[0, 1, 255]]
    """
    plane = _as_single_plane(mask, name, "binary")
    values, counts = _value_counts(plane)
    others = [v for v in values.tolist() if v != foreground and v != ignore]
    if len(others) > 1:
        hint = ("The file is a JPEG, whose lossy compression creates intermediate grey levels: "
                "re-export the mask as PNG or TIFF (or threshold it once and save it losslessly)"
                if file_format == "jpeg" else "Re-export the mask with exactly two values")
        if foreground not in values.tolist():
            hint += (f"; note that the foreground value {foreground} does not occur at all - "
                     f"check ingest.foreground (the pixel value of the objects, e.g. 255, 1, or "
                     "0 for ISBI)")
        raise IngestError(name, f"binary mask has {len(values)} distinct values, expected 2 "
                                f"(foreground {foreground} and one background value): "
                                f"{_counts_text(values, counts)}. {hint}; or declare the classes "
                                "with mask_format: labels")
    ids = (plane == foreground).astype(np.uint8)
    if ignore is not None:
        ids[plane == ignore] = IGNORE_ID
    return ids


def decode_labels(mask: np.ndarray, class_ids: Sequence[int], name: str = "mask",
                  ignore: int | None = None) -> np.ndarray:
    """Label mask (values are class ids) -> ``uint8``; ``ignore`` (if given) -> :data:`IGNORE_ID`;
    any other value outside ``class_ids`` is an error."""
    plane = _as_single_plane(mask, name, "labels")
    if plane.dtype.kind == "f":
        if not np.all(np.isfinite(plane)) or not np.all(plane == np.round(plane)):
            raise IngestError(name, "label mask holds non-integer values; save class ids as "
                                    "integers (8- or 16-bit)")
    values, counts = _value_counts(plane)
    bad = ~np.isin(values, np.asarray(list(class_ids) + ([] if ignore is None else [ignore])))
    if bad.any():
        raise IngestError(name, f"label mask holds values outside the declared class ids "
                                f"{sorted(class_ids)}: {_counts_text(values[bad], counts[bad])} "
                                f"(all values: {_counts_text(values, counts)}). Declare those "
                                "classes (ingest.n_classes / class_names), or fix the mask; a "
                                "0/255 mask is mask_format: binary")
    if ignore is not None:
        return np.where(plane == ignore, IGNORE_ID, plane).astype(np.uint8)
    return plane.astype(np.uint8)


def decode_rgb(mask: np.ndarray, colour_map: Mapping[Colour, int], name: str = "mask",
               palette: np.ndarray | None = None) -> np.ndarray:
    """Colour-coded mask -> ``uint8`` class ids via ``colour_map``; unmapped colours are an error.

    Palette images are looked up through ``palette``; grey masks read as (v, v, v).
    """
    if palette is not None and mask.ndim == 2:
        mask = palette[mask]
    if mask.ndim == 2:
        mask = np.repeat(mask[..., None], 3, axis=2)
    if mask.ndim != 3 or mask.shape[2] not in (3, 4):
        raise IngestError(name, f"mask has an unsupported pixel layout {mask.shape} for "
                                "mask_format: rgb (expected RGB or RGBA)")
    if mask.dtype != np.uint8:
        raise IngestError(name, f"colour mask is {mask.dtype}, expected 8 bits per channel; "
                                "save it as 8-bit RGB")
    if not colour_map:
        raise ValueError("decode_rgb needs a non-empty colour_map")
    rgb = mask[..., :3]
    key = ((rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8)
           | rgb[..., 2].astype(np.uint32))
    known_keys = np.array(sorted((r << 16) | (g << 8) | b for r, g, b in colour_map), np.uint32)
    known_ids = np.array([colour_map[((k >> 16) & 255, (k >> 8) & 255, k & 255)]
                          for k in known_keys.tolist()], np.uint8)
    pos = np.minimum(np.searchsorted(known_keys, key), len(known_keys) - 1)
    matched = known_keys[pos] == key
    if not matched.all():
        values, counts = np.unique(key[~matched], return_counts=True)

        def fmt(v: int) -> str:
            return f"({(v >> 16) & 255},{(v >> 8) & 255},{v & 255})"

        known = ", ".join(f"({r},{g},{b})" for r, g, b in colour_map)
        raise IngestError(name, f"colour mask holds {len(values)} colour(s) not in "
                                f"ingest.colour_map: {_counts_text(values, counts, fmt)}. "
                                f"Mapped colours: {known}. Add them to colour_map (\"R,G,B\": "
                                "class id) or repaint the mask with exact colours (anti-aliased "
                                "or JPEG-compressed masks create mixed colours)")
    return known_ids[pos]


def decode_instances(mask: np.ndarray, name: str = "mask", ignore: int | None = None
                     ) -> np.ndarray:
    """Instance mask (each object its own integer value, 0 = background) -> ``int32`` labels;
    pixels equal to ``ignore`` (if given; not annotated) become -1.

    8- or 16-bit single-plane integer masks, as label exports from Fiji / QuPath / CellPose
    write them; the ids need not be consecutive.

    Examples
    --------
    >>> decode_instances(np.array([[0, 3, 9]], np.uint16), ignore=9).tolist()
    [[0, 3, -1]]
    """
    plane = _as_single_plane(mask, name, "instance mask")
    if not np.issubdtype(plane.dtype, np.integer):
        raise IngestError(name, "instance mask holds non-integer values; save one integer id per "
                                "object (0 = background) as an 8- or 16-bit PNG/TIFF")
    if plane.min(initial=0) < 0:
        raise IngestError(name, "instance mask holds negative ids; ids must be >= 0")
    labels = plane.astype(np.int32)
    if ignore is not None:
        labels[plane == ignore] = -1
    return labels


def decode_mask(mask: np.ndarray, encoding: MaskEncoding, name: str = "mask",
                palette: np.ndarray | None = None, file_format: str | None = None) -> np.ndarray:
    """Decode ``mask`` (as read by :mod:`porescope.io.images`) with ``encoding``.

    Returns ``uint8`` class ids, same rows and columns. For ``binary`` and ``labels``, palette
    indices are the values (``labels``) or are looked up to grey-equal colours (``binary``).
    """
    if encoding.format == "binary":
        if palette is not None and mask.ndim == 2:
            mask = palette[mask]
        return decode_binary(mask, encoding.foreground, name, file_format, encoding.ignore)
    if encoding.format == "labels":
        return decode_labels(mask, encoding.class_ids, name, encoding.ignore)
    if encoding.format == "rgb":
        if encoding.colour_map is None:
            raise ValueError("mask_format 'rgb' needs a colour_map")
        colour_map = dict(encoding.colour_map)
        if encoding.ignore is not None:
            colour_map[encoding.ignore] = IGNORE_ID  # type: ignore[index]
        return decode_rgb(mask, colour_map, name, palette)
    raise ValueError(f"unknown mask format {encoding.format!r} (use binary, labels or rgb)")
