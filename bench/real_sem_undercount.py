"""Where the split count and the manual reference of the nine real SEM images disagree.

Segments every image as ``bench/real_sem_reference.py`` does (whole image, the model's scale,
the reference's analysed region, the ``measure`` / ``analyze`` defaults), then matches each
manually counted pore centre (``data/reference/track-membranes-sem/centres/<image>.csv``) to
the split object (:func:`porescope.analysis.membrane.analyse_mask` labels) that holds it (or
the nearest within ``--tol`` px) and puts every difference between the two counts in one class:

* ``miss``: a counted reference pore with no object (``miss_debris``: its prediction was a
  region smaller than ``min_region_area_px``, removed as debris);
* ``merge_doublet`` / ``merge_bridged``: one object holds 2+ counted reference pores (each one
  beyond the first is lost); ``doublet`` when the reference marks them as one connected
  opening (its ``group``), ``bridged`` when they are separate openings in the reference;
* ``merge_edge``: a counted reference pore merged with an uncounted one that touches the
  bottom / right edge, so that the guard frame drops both;
* ``small``: the object of a counted reference pore is smaller than ``split_min_area_px``
  (the split count ignores it);
* ``area_plus``: with ``counting.split_max_pores`` other than 1, an object counted as more
  pores (by its area) than the counted reference pores it holds;
* ``border_minus`` / ``border_plus``: the guard-frame rule disagrees (the object touches the
  bottom / right edge and the reference pore does not, or the reverse);
* ``fragment``: an extra counted object without a centre beside an object holding one in the
  same connected region (the split cut one pore in two); ``false``: any other counted object
  without a centre.

``count - manual = fragment + false + border_plus + area_plus - miss - miss_debris - merge_* -
small - border_minus`` holds exactly (checked). Overlays (3x; objects: green counted, red not counted;
centres: yellow matched, red missed, magenta merged; false / fragment objects outlined blue)
go to ``--out``.

    python bench/real_sem_undercount.py --model models/model.pt [--out /tmp/undercount]
        [--set counting.split_max_pores=2 ...] [--min-contrast 0.3 | none]

``--min-contrast``: the predicted regions that are not darker than the surface around them are
dropped first (``measure.min_region_contrast``, :mod:`porescope.measure.pale_regions`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from porescope.analysis.membrane import analyse_mask
from porescope.io.images import read_image, to_grey
from porescope.measure.measurement import measure_micrograph
from porescope.measure.counting import split_pores_per_object
from porescope.measure.morphometry import label_mask
from porescope.measure.pale_regions import drop_pale_regions
from porescope.measure.segment import load_model, predict_mask
from real_sem_reference import IMAGES, REFERENCE, add_contrast_option, measure_params, region

CLASSES = ("miss", "miss_debris", "merge_doublet", "merge_bridged", "merge_edge", "small",
           "border_minus", "border_plus", "area_plus", "fragment", "false")
LOSS = {"miss", "miss_debris", "merge_doublet", "merge_bridged", "merge_edge", "small",
        "border_minus"}


def object_at(labels: np.ndarray, xs: np.ndarray, ys: np.ndarray, tol: float) -> np.ndarray:
    """Label holding each point, else the nearest object pixel's label within ``tol`` px, else 0."""
    dist, (ir, ic) = ndi.distance_transform_edt(labels == 0, return_indices=True)
    near = labels[ir[ys, xs], ic[ys, xs]]
    return np.where(dist[ys, xs] <= tol, near, 0)


def classify(labels: np.ndarray, objects: pd.DataFrame, centres: pd.DataFrame,
             pores: np.ndarray, debris: np.ndarray, tol: float
             ) -> tuple[dict[str, int], pd.DataFrame, pd.DataFrame]:
    """Class counts, the centres (with ``label`` and ``cls``) and the objects (with
    ``n_centres``, ``pores`` - what the split count counts for each - and ``cls``).
    ``centres`` x / y are in the region's coordinates."""
    xs, ys = centres["x"].to_numpy(), centres["y"].to_numpy()
    cen = centres.assign(label=object_at(labels, xs, ys, tol), cls="")
    obj = objects.assign(pores=pores, cls="").set_index("label")
    counts = dict.fromkeys(CLASSES, 0)
    regions = label_mask(labels > 0, 8)
    region_of = pd.Series(regions[ys, xs], index=cen.index)
    for i, c in cen[cen["label"] == 0].iterrows():
        if c["guard_frame_counted"]:
            kind = "miss_debris" if debris[c["y"], c["x"]] else "miss"
            counts[kind] += 1
            cen.loc[i, "cls"] = kind
    obj["n_centres"] = cen[cen["label"] > 0].groupby("label").size().reindex(obj.index,
                                                                            fill_value=0)
    for lab, o in obj.iterrows():
        mine = cen[cen["label"] == lab]
        m, c = int(mine["guard_frame_counted"].sum()), int(o["pores"])
        if mine.empty:
            if c:
                rows, cols = np.nonzero(labels == lab)
                kind = "fragment" if (region_of == regions[rows[0], cols[0]]).any() else "false"
                counts[kind] += c
                obj.loc[lab, "cls"] = kind
            continue
        merged = max(m - max(c, 1), 0)     # counted reference pores beyond what the object counts
        if merged:
            kind = "merge_doublet" if mine["group"].nunique() == 1 else "merge_bridged"
            counts[kind] += merged
            obj.loc[lab, "cls"] = kind
            cen.loc[mine.index, "cls"] = kind
        rest = c - m + merged
        if rest < 0 or (rest > 0 and m == 0):
            kind = ("border_plus" if rest > 0 else "small" if o["counted"]
                    else "merge_edge" if (mine["guard_frame_counted"] == 0).any() else "border_minus")
            counts[kind] += 1
            rest -= 1 if rest > 0 else -1
            obj.loc[lab, "cls"] = kind
            cen.loc[mine.index[mine["cls"] == ""], "cls"] = kind
        if rest > 0:
            counts["area_plus"] += rest
            obj.loc[lab, "cls"] = "area_plus"
    return counts, cen, obj.reset_index()


def draw(grey: np.ndarray, labels: np.ndarray, obj: pd.DataFrame, cen: pd.DataFrame,
         scale: int = 3) -> np.ndarray:
    big = cv2.cvtColor(cv2.resize(grey, None, fx=scale, fy=scale,
                                  interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR)
    up = cv2.resize(labels.astype(np.int32).astype(np.float32), None, fx=scale, fy=scale,
                    interpolation=cv2.INTER_NEAREST).astype(np.int32)
    for _, o in obj.iterrows():
        colour = ((255, 80, 0) if o["cls"] in ("false", "fragment")
                  else (0, 200, 0) if o["pores"] else (0, 0, 255))
        m = (up == o["label"]).astype(np.uint8)
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(big, contours, -1, colour, 1)
        if o["cls"]:
            cv2.putText(big, o["cls"][:8], (int(o["X"] * scale) + 4, int(o["Y"] * scale) + 12),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.3, colour, 1)
    for _, c in cen.iterrows():
        colour = ((0, 0, 255) if c["cls"].startswith("miss")
                  else (255, 0, 255) if c["cls"].startswith("merge") else (0, 255, 255))
        p = (int(c["x"] * scale + scale // 2), int(c["y"] * scale + scale // 2))
        cv2.circle(big, p, 2, colour, -1)
        if not c["guard_frame_counted"]:
            cv2.circle(big, p, 5, colour, 1)   # not counted by the reference's guard frame
    return big


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("/tmp/undercount"))
    ap.add_argument("--tol", type=float, default=2.0, help="px from a centre to its object")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="analyze setting, e.g. counting.split_max_pores=2 (repeatable)")
    add_contrast_option(ap)
    args = ap.parse_args()
    counts = pd.read_csv(REFERENCE / "counts.csv")
    model = load_model(args.model, device="cpu")
    params = measure_params(args.set, args.min_contrast)
    ap_ = params.analysis
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for r in counts.itertuples(index=False):
        grey = to_grey(read_image(IMAGES / r.file).pages[0].array, None, r.file)
        pred = predict_mask(model, grey, backend=args.backend)
        ys, xs = region(r, grey.shape)
        sub = pred[ys, xs] > 0
        if args.min_contrast is not None:     # as measure_micrograph does it with the param
            sub = drop_pale_regions(grey[ys, xs], sub, args.min_contrast,
                                    overlay_level=params.quality.overlay_level)[0]
        a = analyse_mask(sub, params=ap_, image_id=r.image, spatial=False)
        _, summary = measure_micrograph(grey[ys, xs], mask=sub, params=params, image_id=r.image)
        assert a.summary["count_split_labels"] == summary["count_split_labels"]
        cen = pd.read_csv(REFERENCE / "centres" / f"{r.image}.csv")
        cen["x"] -= xs.start
        cen["y"] -= ys.start
        assert int(cen["guard_frame_counted"].sum()) == r.manual_count_guard_frame
        # removed as debris: predicted foreground that the analysis does not keep
        debris = sub & (a.labels == 0)
        cp = ap_.counting
        pores = split_pores_per_object(
            a.objects, include_edges=ap_.include_edges, min_area=cp.split_min_area_px,
            min_area_at_edges=cp.split_min_area_at_edges,
            mean_area=a.summary["mean_pore_area_px"], max_pores=cp.split_max_pores)
        cls, cen, obj = classify(a.labels, a.objects, cen, pores, debris, args.tol)
        count = int(a.summary["count_split_labels"])
        assert pores.sum() == count     # the library's per-object numbers make the count
        gain = sum(v for k, v in cls.items() if k not in LOSS)
        loss = sum(v for k, v in cls.items() if k in LOSS)
        assert count - r.manual_count_guard_frame == gain - loss, (r.image, cls, count)
        rows.append({"image": r.image, "manual": r.manual_count_guard_frame, "split": count,
                     "err_pct": round(100 * (count / r.manual_count_guard_frame - 1), 1), **cls})
        cv2.imwrite(str(args.out / f"{r.image}.png"), draw(grey[ys, xs], a.labels, obj, cen))
        cen.to_csv(args.out / f"{r.image}_centres.csv", index=False)
        obj.to_csv(args.out / f"{r.image}_objects.csv", index=False)
    table = pd.DataFrame(rows)
    total = table.drop(columns=["image", "err_pct"]).sum()
    table.loc[len(table)] = {"image": "all", **total.to_dict(),
                             "err_pct": round(100 * (total["split"] / total["manual"] - 1), 1)}
    pd.set_option("display.width", 200)
    print(f"model {args.model}, analyze {' '.join(args.set) or 'defaults'}, min_region_contrast "
          f"{args.min_contrast}, tol {args.tol} px; "
          f"overlays in {args.out}")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
