"""Build the manual reference for the nine real SEM micrographs of track-etched membranes.

Reads ``../shared/data/track-membranes-sem-unlabelled/*.jpg`` (never copied into the repository)
and writes ``data/reference/track-membranes-sem/``:

* ``centres/<stem>.csv``: every pore counted by eye (x, y in px, which edges of the analysed region
  it touches, merged group id),
* ``masks/<stem>.png``: hand-checked opening masks (0 background, 255 pore, full image size) for the
  images listed in ``MASKED``,
* ``counts.csv``: one row per image (analysed region, counts, porosity of the checked masks).

How the reference was made: a semi-automatic step (threshold of the dark cores, distance-transform
peaks as candidate centres, marker-watershed growth of each core into its opening up to the inner
edge of the bright rim) followed by corrections decided by looking at 3-8x enlargements of each
image. The corrections are
data in ``SPECS`` below (centres dropped / added at pixel coordinates, shapes added to or removed
from the mask), so the whole reference is rebuilt deterministically:

    python bench/reference_masks.py            # rewrite the reference files
    python bench/reference_masks.py --check    # compare with the files on disk, exit 1 if different
    python bench/reference_masks.py --overlay /tmp/ov   # review images (outlines, numbered centres)

The images are read from ``../shared/data`` beside the repository, or from
``$PORESCOPE_SHARED_DATA`` (for a git worktree elsewhere).

Mask convention: the opening at the membrane surface (dark core plus the grey inclined wall of a
tilted track); the bright edge-effect fringe outside the pore edge is background. See the README
of the dataset.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from scipy import ndimage as ndi
from skimage import feature, filters, measure, morphology, segmentation

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from porescope.io.images import read_image, to_grey  # noqa: E402

#: ``../shared/data`` beside the repository; PORESCOPE_SHARED_DATA overrides it (a git worktree
#: elsewhere, or a copy of the data on another machine).
SHARED_DATA = Path(os.environ.get("PORESCOPE_SHARED_DATA", ROOT.parent / "shared" / "data"))
SOURCE = SHARED_DATA / "track-membranes-sem-unlabelled"
OUT = ROOT / "data" / "reference" / "track-membranes-sem"

# Coordinates are px of the full image, x = column, y = row. Correction shapes are tagged tuples:
# ("disk", x, y, radius), ("ellipse", x, y, semi-axis along x, semi-axis along y, angle deg
# counter-clockwise), ("span", y, x0, x1) = one row from x0 to x1 inclusive, ("polygon", ((x, y),
# ...)).
Shape = tuple


@dataclass(frozen=True)
class ImageSpec:
    """What was decided by eye for one image."""

    margins: tuple[int, int, int, int]  # top, bottom, left, right: rows/cols outside the region
    region_reason: str = ""
    masked: bool = False  # a hand-checked mask is published
    min_distance: int = 4  # candidate peaks closer than this are one pore
    rim_k: float = 2.0  # rim = brighter than the local surface by this many noise sigmas
    smooth_radius: int = 1  # disk radius of the opening that removes spurs from the mask
    core_threshold: float | None = None  # grey level of the dark cores; None: Otsu of the region
    core_contrast: float | None = None  # instead: darker than a 21-px median by this many levels
    drop: tuple[tuple[int, int], ...] = ()  # candidate centres rejected (nearest within 4 px)
    add: tuple[tuple[int, int], ...] = ()  # pores the candidates missed
    mask_add: tuple[Shape, ...] = ()
    mask_remove: tuple[Shape, ...] = ()
    ambiguous: int = 0  # objects that could be counted either way
    notes: str = ""


PHOTO8_NOTES = ("photo8 and photo10 are the same micrograph (mean abs. grey difference 3.2 levels, "
                "different JPEG compression); strong charging halos; the two small dark-centred "
                "rings at (180,46) and (192,51) are counted as small pores but could be debris")

SPECS: dict[str, ImageSpec] = {
    "photo3": ImageSpec(
        (2, 0, 2, 0), "white 2-px frame on top and left edges", min_distance=3,
        drop=((180, 63),  # third peak inside the vertical doublet (180,60)+(180,67)
              (82, 64), (142, 99), (63, 139), (7, 149)),  # doublets seen as one peak: re-marked
        add=((78, 64), (89, 64), (142, 95), (142, 104), (63, 134), (58, 143), (5, 153),
             (13, 148),
             (2, 19)),  # pore cut by the left edge, two dark columns next to the frame
        ambiguous=3,
        notes="small pores (~8 px) with many doublets; (128,139) is elongated, counted as one; "
              "(163,116)+(166,117) and (110,24)+(112,27) are counted as doublets but could be "
              "single irregular pores"),
    "photo4": ImageSpec(
        (2, 0, 2, 6), "scanned print: bright paper edge top/left 2 px, right 6 px",
        drop=((257, 8), (5, 10)),  # dark smudges in the scanned page's corners, not pores
        add=((3, 242),),  # pore cut by the left edge: a dark half-disc sliver
        ambiguous=1,
        notes="a scanned printed figure (text of the other page shows through); pores are dark "
              "grey discs without rims; the left-edge sliver at (3,242) could be a print defect"),
    "photo5": ImageSpec(
        (1, 64, 3, 5), "white frame (top 1, left 3, right 5 px); scale bar and text '10kV X500 "
        "50um 0000 21/AUG/15' drawn over rows 580-610, the band from row 578 down is excluded",
        masked=True, min_distance=6,
        drop=((248, 8),),  # one pore at the top edge gave two peaks
        add=((423, 26),  # second opening of the doublet at (407, 19): lobe and notch in the rim
             (643, 1)),  # pore cut by the top edge, a 2-row black sliver under the frame
        mask_add=(("span", 1, 635, 651), ("span", 2, 638, 648)),
        ambiguous=2,
        notes="doublet at (407,19)+(423,26) could be one tilted pore; (532,105) is counted as one "
              "strongly tilted pore though it could be two; small bright rings (debris, ~5 px) "
              "at (388,172) and (388,297) are not pores; pores under the text band are not "
              "counted"),
    "photo6": ImageSpec(
        (5, 5, 5, 5), "white frame 5 px on all four sides", masked=True, rim_k=1.0,
        smooth_radius=2,
        drop=((57, 6),),  # one pore at the top edge gave two peaks
        notes="rough granular surface; the pore at (83,24) is irregular, counted as one; rims "
              "are grey halos, masks follow the dark opening"),
    "photo7": ImageSpec(
        (0, 0, 0, 0), "no frame or overlay", masked=True, smooth_radius=2,
        drop=((62, 29), (166, 59), (259, 223),  # doublets seen as one peak: re-marked
              (2, 89), (399, 223)),  # the same at the left / right edge (waist in the rim)
        add=((57, 30), (67, 30), (168, 56), (163, 63), (257, 221), (264, 228),
             (5, 86), (6, 96), (394, 221), (392, 233)),
        # growth ran out over grey surface above the pair (114,116)+(130,118) and filled the
        # patch of surface enclosed by their rims
        mask_remove=(("polygon", ((105, 100.5), (131, 100.5), (131, 110.5), (105, 110.5))),
                     ("polygon", ((116.5, 110.5), (127.5, 110.5), (127.5, 112.5), (125.5, 113.5),
                                  (124.5, 118.5), (120.5, 118.5), (118.5, 112.5),
                                  (116.5, 111.5))),
                     # the same below (280,62) and (359,245): grey surface, rows from 69 / 252
                     ("polygon", ((275.5, 68.5), (289.5, 68.5), (289.5, 73.5), (275.5, 73.5))),
                     ("polygon", ((282.5, 67.5), (288.5, 67.5), (288.5, 68.5), (282.5, 68.5))),
                     ("polygon", ((344.5, 251.5), (368.5, 251.5), (368.5, 257.5), (344.5, 257.5))),
                     ("polygon", ((344.5, 246.5), (352.5, 246.5), (352.5, 251.5), (344.5, 251.5)))),
        ambiguous=6,
        notes="dense; oversized shapes with a waist, (62,29), (166,59), (259,223) and the "
              "edge-cut (2,89) and (399,223), are counted as doublets; (24,214)+(24,218) and "
              "the right-edge cluster at x 392-399, y 43-64 (three pores) could each be one "
              "fewer; a small bright ring at (171,136) is debris"),
    "photo8": ImageSpec(
        (0, 0, 2, 0), "dark 2-px strip along the left edge", core_contrast=50,
        drop=((6, 34),),  # one pore gave two peaks
        add=((165, 0),  # pore cut by the top edge: 4 dark pixels on row 0 above a bright arc
             (180, 46), (192, 51)),  # two small pores (dark centre, bright ring), ~3-4 px
        ambiguous=2,
        notes=PHOTO8_NOTES),
    "photo9": ImageSpec(
        (0, 31, 0, 0), "logo 'IHcs' (rows 188-220, cols 5-60) and text 'Image for illustrative "
        "purposes only' (rows 220-223) burned in at the bottom; rows from 194 down are excluded",
        masked=True,
        add=((223, 169),),  # pore cut by the right edge: only its grey wall is inside the image
        mask_add=(("span", 164, 224, 224), ("span", 165, 224, 224), ("span", 166, 222, 224),
                  ("span", 167, 223, 224), ("span", 168, 223, 224), ("span", 169, 223, 224),
                  ("span", 170, 223, 224), ("span", 171, 223, 224), ("span", 172, 224, 224),
                  ("span", 173, 224, 224)),
        ambiguous=1,
        notes="bright rim arc at the top edge (cols 72-82) belongs to a pore outside the image, "
              "not counted; the pore under the logo (x 62, y 218) lies outside the region"),
    "photo10": ImageSpec(
        (0, 0, 2, 0), "dark 2-px strip along the left edge", core_contrast=50,
        add=((165, 0),  # pore cut by the top edge: 4 dark pixels on row 0 above a bright arc
             (180, 46), (192, 51)),  # two small pores (dark centre, bright ring), ~3-4 px
        ambiguous=2,
        notes=PHOTO8_NOTES),
    "photos2": ImageSpec(
        (0, 1, 0, 0), "scale bar on the last row", masked=True,
        add=((122, 19),),  # second opening of the doublet at (118, 11): lobe and notch in the rim
        ambiguous=3,
        notes="doublet at (118,11)+(122,19) could be one tilted pore; the elongated pore at "
              "(167,49) is counted as one strongly tilted pore though it could be two; bright rim "
              "at the right edge (x 205-210, y 15-35) belongs to a pore outside the image, not "
              "counted; a small bright ring at (111,81) is debris"),
}
MASKED = tuple(s for s, spec in SPECS.items() if spec.masked)


def load_grey(stem: str, source: Path = SOURCE) -> np.ndarray:
    """The image as the project reads it: format from content, BT.601 luma, uint8."""
    page = read_image(source / f"{stem}.jpg").pages[0]
    return to_grey(page.array, page.palette)


def region_mask(shape: tuple[int, int], margins: tuple[int, int, int, int]) -> np.ndarray:
    """Boolean analysed region: the image less ``margins`` (top, bottom, left, right) px."""
    top, bottom, left, right = margins
    roi = np.zeros(shape, bool)
    roi[top:shape[0] - bottom, left:shape[1] - right] = True
    return roi


def core_mask(grey: np.ndarray, roi: np.ndarray, threshold: float | None = None,
              contrast: float | None = None) -> tuple[np.ndarray, float]:
    """Dark pore cores: threshold (Otsu of the region by default) of the lightly smoothed image.

    With ``contrast``, a pixel is core when it is that much darker than the 21-px median around
    it (images with strong charging halos, where no global level separates pores from surface).
    """
    smooth = ndi.gaussian_filter(grey.astype(float), 1.0)
    if contrast is not None:
        smooth = smooth - cv2.medianBlur(grey, 21).astype(float)
        threshold = -contrast
    elif threshold is None:
        threshold = float(filters.threshold_otsu(smooth[roi]))
    core = (smooth < threshold) & roi
    core = morphology.remove_small_objects(core, max_size=8)
    return ndi.binary_fill_holes(core), threshold


def candidate_centres(core: np.ndarray, min_distance: int) -> np.ndarray:
    """(x, y) of distance-transform peaks of the cores, sorted by row then column."""
    dist = ndi.distance_transform_edt(core)
    peaks = feature.peak_local_max(dist, min_distance=min_distance, threshold_abs=1.5,
                                   labels=measure.label(core), exclude_border=False)
    peaks = peaks[np.lexsort((peaks[:, 1], peaks[:, 0]))]
    return peaks[:, ::-1].astype(int)


def surface_level(grey: np.ndarray, core: np.ndarray, roi: np.ndarray) -> np.ndarray:
    """Local grey of the membrane surface: cores and outside pixels replaced, then a wide median."""
    surface = roi & ~ndi.binary_dilation(core, iterations=3)
    fill = np.where(surface, grey, int(np.median(grey[surface]))).astype(np.uint8)
    size = max(15, int(round(min(grey.shape) / 6)) | 1)
    return cv2.medianBlur(fill, size).astype(float)


def opening_mask(grey: np.ndarray, core: np.ndarray, roi: np.ndarray,
                 rim_k: float = 2.0, reach: float = 1.6, smooth_radius: int = 1) -> np.ndarray:
    """Grow each core into its opening, up to the inner edge of the bright rim.

    Marker watershed on the smoothed intensity: the cores flood upwards (through the grey wall of
    a tilted track) and meet the flood from the surface (markers: everything farther than
    ``reach`` core radii from a core) on the crest of the bright rim; the rim pixels (brighter
    than the local surface by ``rim_k`` noise sigmas) are then removed, so the opening ends at
    the inner edge of the rim.
    """
    smooth = ndi.gaussian_filter(grey.astype(float), 0.7)
    level = surface_level(grey, core, roi)
    resid = (grey - level)[roi & ~ndi.binary_dilation(core, iterations=3)]
    noise = 1.4826 * float(np.median(np.abs(resid - np.median(resid))))
    lab = measure.label(core)
    radius = np.zeros(lab.max() + 1)
    for reg in measure.regionprops(lab):
        radius[reg.label] = np.sqrt(reg.area / np.pi)
    dist, (ri, ci) = ndi.distance_transform_edt(~core, return_indices=True)
    far = dist > np.maximum(1.5, reach * radius[lab[ri, ci]])
    bright = smooth > level + rim_k * noise
    # Both floods run uphill: the cores through the wall, the surface towards the rim, and meet on
    # the rim crest; the bright rim itself (edge effect, outside the edge) is then taken away.
    markers = np.where(core, 1, 0) + np.where((far & ~core) | ~roi, 2, 0)
    flooded = segmentation.watershed(smooth, markers)
    opening = (flooded == 1) & ~bright
    opening = ndi.binary_opening(opening, morphology.disk(smooth_radius)) | core
    return ndi.binary_fill_holes(opening) & roi


def draw(shape: Shape, mask_shape: tuple[int, int]) -> np.ndarray:
    """Boolean image of one correction shape (see ``Shape``)."""
    from skimage import draw as skd

    out = np.zeros(mask_shape, bool)
    kind, *args = shape
    if kind == "disk":
        x, y, r = args
        rr, cc = skd.disk((y, x), r, shape=mask_shape)
    elif kind == "ellipse":
        x, y, a, b, angle = args
        rr, cc = skd.ellipse(y, x, b, a, shape=mask_shape, rotation=np.deg2rad(angle))
    elif kind == "span":
        y, x0, x1 = args
        rr, cc = np.full(x1 - x0 + 1, y), np.arange(x0, x1 + 1)
    elif kind == "polygon":
        xs, ys = zip(*args[0])
        rr, cc = skd.polygon(ys, xs, mask_shape)
    else:
        raise ValueError(f"unknown correction shape {kind!r}")
    out[rr, cc] = True
    return out


def nearest(points: np.ndarray, x: int, y: int) -> int:
    d = np.hypot(points[:, 0] - x, points[:, 1] - y)
    return int(np.argmin(d)) if len(d) and d.min() <= 4 else -1


def centres_for(spec: ImageSpec, candidates: np.ndarray, stem: str) -> np.ndarray:
    """Candidates less the dropped ones plus the added ones."""
    keep = np.ones(len(candidates), bool)
    for x, y in spec.drop:
        i = nearest(candidates, x, y)
        if i < 0 or not keep[i]:
            raise ValueError(f"{stem}: no candidate centre near ({x}, {y}) to drop")
        keep[i] = False
    added = np.asarray(spec.add, int).reshape(-1, 2)
    return np.vstack([candidates[keep], added])


@dataclass
class Reference:
    stem: str
    grey: np.ndarray
    roi: np.ndarray
    mask: np.ndarray
    centres: np.ndarray
    edges: list[str] = field(default_factory=list)  # per centre, letters t/b/l/r touched
    group: np.ndarray | None = None  # per centre, mask component id
    sha256: str = ""  # of the source file


def build(stem: str, source: Path = SOURCE) -> Reference:
    spec = SPECS[stem]
    grey = load_grey(stem, source)
    roi = region_mask(grey.shape, spec.margins)
    core, _ = core_mask(grey, roi, spec.core_threshold, spec.core_contrast)
    candidates = candidate_centres(core, spec.min_distance)
    # Count-only images: the dark cores (checked by eye) decide border contact and merging.
    mask = (opening_mask(grey, core, roi, rim_k=spec.rim_k, smooth_radius=spec.smooth_radius)
            if spec.masked else core.copy())
    for shp in spec.mask_add:
        mask |= draw(shp, grey.shape)
    for shp in spec.mask_remove:
        mask &= ~draw(shp, grey.shape)
    mask &= roi
    centres = centres_for(spec, candidates, stem)
    digest = hashlib.sha256((source / f"{stem}.jpg").read_bytes()).hexdigest()
    ref = Reference(stem, grey, roi, mask, centres, sha256=digest)
    assign(ref)
    return ref


def assign(ref: Reference) -> None:
    """Split the mask among the centres (marker watershed) and note the edges each pore touches."""
    comp = measure.label(ref.mask, connectivity=2)
    markers = np.zeros(ref.mask.shape, int)
    xs, ys = ref.centres[:, 0], ref.centres[:, 1]
    markers[ys, xs] = np.arange(1, len(xs) + 1)
    dist = ndi.distance_transform_edt(ref.mask)
    pores = segmentation.watershed(-dist, markers, mask=ref.mask | (markers > 0))
    rows = np.flatnonzero(ref.roi.any(1))
    cols = np.flatnonzero(ref.roi.any(0))
    top, bottom, left, right = rows[0], rows[-1], cols[0], cols[-1]
    # The dark core of a count-only image stops about 1 px inside the opening edge.
    tol = 0 if SPECS[ref.stem].masked else 1
    ref.edges = []
    for i in range(1, len(xs) + 1):
        rr, cc = np.nonzero(pores == i)
        hits = (("t", rr.min() <= top + tol), ("b", rr.max() >= bottom - tol),
                ("l", cc.min() <= left + tol), ("r", cc.max() >= right - tol))
        ref.edges.append("".join(k for k, hit in hits if hit))
    ref.group = comp[ys, xs]


def overlay(ref: Reference, scale: int) -> np.ndarray:
    """Review image: enlarged grey, mask outline green, region magenta, centres numbered."""
    big = cv2.resize(ref.grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    big = cv2.cvtColor(big, cv2.COLOR_GRAY2BGR)
    up = cv2.resize(ref.mask.astype(np.uint8), None, fx=scale, fy=scale,
                    interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(up, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(big, contours, -1, (0, 220, 0), 1)
    rows = np.flatnonzero(ref.roi.any(1))
    cols = np.flatnonzero(ref.roi.any(0))
    cv2.rectangle(big, (int(cols[0]) * scale, int(rows[0]) * scale),
                  ((int(cols[-1]) + 1) * scale - 1, (int(rows[-1]) + 1) * scale - 1),
                  (255, 0, 255), 1)
    for i, (x, y) in enumerate(ref.centres):
        px, py = int(x * scale + scale // 2), int(y * scale + scale // 2)
        cv2.circle(big, (px, py), 2, (0, 0, 255), -1)
        cv2.putText(big, f"{i}{ref.edges[i]}", (px + 3, py - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                    (0, 255, 255), 1)
    return big


COUNT_COLUMNS = ("image", "file", "sha256", "width", "height", "margin_top", "margin_bottom",
                 "margin_left", "margin_right", "analysed_px", "manual_count_guard_frame",
                 "manual_count_all", "n_border_cut", "n_merged_groups", "n_pores_in_merged_groups",
                 "ambiguous_objects", "porosity_manual", "mask_file", "region_note",
                 "annotator_notes")
CENTRE_COLUMNS = ("pore", "x", "y", "edges", "guard_frame_counted", "group", "group_size",
                  "origin")


def counts_row(ref: Reference) -> dict[str, object]:
    """One row of ``counts.csv`` for a built reference."""
    spec = SPECS[ref.stem]
    groups = group_ids(ref)
    ids, sizes = np.unique(groups, return_counts=True)
    merged = sizes >= 2
    masked = spec.masked
    return {
        "image": ref.stem, "file": f"{ref.stem}.jpg", "sha256": ref.sha256,
        "width": ref.grey.shape[1],
        "height": ref.grey.shape[0], "margin_top": spec.margins[0],
        "margin_bottom": spec.margins[1], "margin_left": spec.margins[2],
        "margin_right": spec.margins[3], "analysed_px": int(ref.roi.sum()),
        "manual_count_guard_frame": sum(guard_counted(e) for e in ref.edges),
        "manual_count_all": len(ref.centres),
        "n_border_cut": sum(bool(e) for e in ref.edges),
        "n_merged_groups": int(merged.sum()), "n_pores_in_merged_groups": int(sizes[merged].sum()),
        "ambiguous_objects": spec.ambiguous,
        "porosity_manual": f"{porosity(ref.mask, ref.roi):.6f}" if masked else "",
        "mask_file": f"masks/{ref.stem}.png" if masked else "",
        "region_note": spec.region_reason, "annotator_notes": spec.notes,
    }


def guard_counted(edges: str) -> bool:
    """Guard-frame rule: pores touching the top or left edge count, bottom or right do not."""
    return "b" not in edges and "r" not in edges


def group_ids(ref: Reference) -> np.ndarray:
    """Merged-group id per pore: its mask component, or a group of its own outside the mask."""
    groups = ref.group.astype(int).copy()
    alone = groups == 0
    groups[alone] = -np.arange(1, alone.sum() + 1)
    return groups


def porosity(mask: np.ndarray, roi: np.ndarray) -> float:
    """Pore pixels / analysed pixels."""
    return float(mask[roi].sum() / roi.sum())


def centre_rows(ref: Reference) -> list[dict[str, object]]:
    spec = SPECS[ref.stem]
    groups = group_ids(ref)
    n_auto = len(ref.centres) - len(spec.add)
    rows = []
    for i, (x, y) in enumerate(ref.centres):
        rows.append({"pore": i + 1, "x": int(x), "y": int(y), "edges": ref.edges[i],
                     "guard_frame_counted": int(guard_counted(ref.edges[i])),
                     "group": int(groups[i]) if groups[i] > 0 else "",
                     "group_size": int((groups == groups[i]).sum()),
                     "origin": "candidate" if i < n_auto else "added"})
    return rows


def csv_text(rows: list[dict[str, object]], columns: tuple[str, ...]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def png_bytes(mask: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def outputs(source: Path = SOURCE) -> dict[str, bytes]:
    """Every reference file, relative path -> content, built from the shared images."""
    files: dict[str, bytes] = {}
    rows = []
    for stem in SPECS:
        ref = build(stem, source)
        rows.append(counts_row(ref))
        files[f"centres/{stem}.csv"] = csv_text(centre_rows(ref), CENTRE_COLUMNS).encode()
        if SPECS[stem].masked:
            files[f"masks/{stem}.png"] = png_bytes(ref.mask)
    files["counts.csv"] = csv_text(rows, COUNT_COLUMNS).encode()
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--check", action="store_true",
                        help="compare with the files on disk instead of writing them")
    parser.add_argument("--overlay", type=Path, help="also write review images to this folder")
    args = parser.parse_args(argv)
    if not SOURCE.is_dir():
        print(f"shared images not found: {SOURCE} (set PORESCOPE_SHARED_DATA)", file=sys.stderr)
        return 2
    files = outputs()
    differ = []
    for rel, content in files.items():
        path = args.out / rel
        if args.check:
            if not path.is_file() or not same(path, content):
                differ.append(rel)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    if args.overlay:
        args.overlay.mkdir(parents=True, exist_ok=True)
        for stem in SPECS:
            ref = build(stem)
            scale = max(2, 800 // max(ref.grey.shape))
            cv2.imwrite(str(args.overlay / f"{stem}.png"), overlay(ref, scale))
    if differ:
        print("differ from the files on disk: " + ", ".join(differ), file=sys.stderr)
        return 1
    print(("checked " if args.check else "wrote ") + f"{len(files)} files in {args.out}")
    return 0


def same(path: Path, content: bytes) -> bool:
    """Masks compare as pixels (PNG encoders may differ), tables as text."""
    if path.suffix == ".png":
        with Image.open(path) as im:
            on_disk = np.asarray(im)
        with Image.open(io.BytesIO(content)) as im:
            return np.array_equal(on_disk, np.asarray(im))
    return path.read_bytes() == content


if __name__ == "__main__":
    sys.exit(main())
