"""README figure: a real micrograph measured by ``porescope measure`` (photo5.jpg).

Left: the micrograph with the outlines of the predicted pores (after the watershed split, red);
right: the pore-size distributions (ECD and Area, pores not cut by the frame) in physical units.

The pixel size is measured on the image's own 50 um scale bar: the bar is the longest run of
bright pixels (>= 200) in the overlay rows near the bottom; its two ends are located to sub-pixel
precision as the half-maximum crossings (between the local background and the bar's plateau) of
linear interpolation along each bar row, and the length is averaged over the bar's rows.
50 000 nm / length = nm per pixel. ``--pixel-size-nm`` skips the measurement.

photo5 has its scale bar and text drawn over the bottom of the micrograph and a white frame of
2-4 px around it (an exported screenshot), so by default the bottom 70 rows are cropped
(``--crop-bottom``) and 8 px at every edge are left out of the analysis (``--margin``).

    python bench/figure_measure_example.py --model models/model.pt \\
        [--image ../shared/data/track-membranes-sem-unlabelled/photo5.jpg] \\
        [--out plots/readme/measure_example.png]
"""

from __future__ import annotations

import argparse
import dataclasses
import io
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from porescope.io.images import find_bottom_overlay, read_image, to_grey
from porescope.analysis.figures import outline_overlay
from porescope.analysis.params import AnalysisParams
from porescope.measure.measurement import measure_one
from porescope.measure.params import MeasureParams

ROOT = Path(__file__).resolve().parents[1]
PHOTO5 = ROOT.parent / "shared" / "data" / "track-membranes-sem-unlabelled" / "photo5.jpg"


def _crossing(profile: np.ndarray, start: int, step: int, half: float) -> float:
    """Sub-pixel position where ``profile`` falls below ``half`` walking from ``start`` by ``step``."""
    i = start
    while 0 <= i + step < profile.size and profile[i + step] >= half:
        i += step
    j = i + step
    a, b = float(profile[i]), float(profile[j])
    return i + step * (a - half) / (a - b)


def scale_bar_length_px(grey: np.ndarray, bright: int = 200) -> tuple[float, int, int]:
    """Length (px) of the bright scale-bar line near the bottom; also its first and last row."""
    rows = find_bottom_overlay(grey, bright=bright)
    if rows is None:
        raise ValueError("no bright scale bar found near the bottom of the image")
    r0, r1 = rows
    lengths = []
    for r in range(r0, r1 + 1):
        line = grey[r].astype(float)
        on = line >= bright
        # the longest run of bright pixels in this row
        edges = np.flatnonzero(np.diff(np.concatenate(([0], on.view(np.int8), [0]))))
        starts, stops = edges[::2], edges[1::2]
        k = int(np.argmax(stops - starts))
        a, b = int(starts[k]), int(stops[k]) - 1
        plateau = float(np.median(line[a:b + 1]))
        bg = float(np.median(np.concatenate((line[max(0, a - 12):max(0, a - 4)],
                                             line[b + 5:b + 13]))))
        half = 0.5 * (plateau + bg)
        left = _crossing(line, a, -1, half)
        right = _crossing(line, b, +1, half)
        lengths.append(right - left)
    return float(np.mean(lengths)), r0, r1


def figure(grey: np.ndarray, labels: np.ndarray, objects, summary: dict, px_nm: float,
           min_area_px: int) -> Figure:
    fig = Figure(figsize=(12.0, 5.6), layout="constrained")
    gs = fig.add_gridspec(2, 2, width_ratios=[1.55, 1.0])
    ax = fig.add_subplot(gs[:, 0])
    rgb = outline_overlay(grey, labels)[..., ::-1]
    ax.imshow(rgb, interpolation="lanczos")
    ax.set_axis_off()
    ax.set_title(f"photo5: predicted pores (red outlines)\nporosity {100 * summary['porosity']:.1f} %,"
                 f" {summary['count_split_labels']:.0f} pores (guard frame), "
                 f"{summary['density_cm2_split_labels']:.3g} pores/cm\u00b2", fontsize=10)
    inner = objects[~objects["touches_border"].to_numpy(bool)
                    & (objects["Area"].to_numpy() >= min_area_px)]
    for k, (col, label, unit) in enumerate((("ECD_um", "ECD", "\u00b5m"),
                                            ("Area_um2", "Area", "\u00b5m\u00b2"))):
        a = fig.add_subplot(gs[k, 1])
        v = inner[col].to_numpy(float)
        a.hist(v, bins=24, color="C0", edgecolor="white", linewidth=0.4)
        a.axvline(np.median(v), color="C3", linewidth=1.2,
                  label=f"median {np.median(v):.3g} {unit}")
        a.set_xlabel(f"{label} ({unit}); pores not cut by the frame, >= {min_area_px} px")
        a.set_ylabel("pores")
        a.legend(fontsize=8, frameon=False)
    fig.suptitle(f"porescope measure on a real SEM micrograph ({px_nm:.0f} nm/px from the 50 \u00b5m "
                 "scale bar; model trained on synthetic membranes only)", fontsize=10)
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "model.pt")
    parser.add_argument("--image", type=Path, default=PHOTO5)
    parser.add_argument("--pixel-size-nm", type=float, default=None)
    parser.add_argument("--bar-um", type=float, default=50.0, help="scale bar length, um")
    parser.add_argument("--crop-bottom", type=int, default=70, help="rows of text / scale bar to drop")
    parser.add_argument("--margin", type=int, default=8, help="px left out at every edge (frame)")
    parser.add_argument("--out", type=Path, default=ROOT / "plots" / "readme" / "measure_example.png")
    args = parser.parse_args(argv)

    grey = to_grey(read_image(args.image).pages[0].array)
    px = args.pixel_size_nm
    if px is None:
        length, r0, r1 = scale_bar_length_px(grey)
        px = args.bar_um * 1000.0 / length
        print(f"scale bar: rows {r0}-{r1}, {length:.2f} px long -> {px:.1f} nm/px")
    analysis = AnalysisParams.from_mapping({"split": {"h": 0.5},
                                            "counting": {"split_min_area_px": 20}})
    settings = dataclasses.replace(MeasureParams(), pixel_size_nm=px, crop_bottom=args.crop_bottom,
                                   margin_px=args.margin, analysis=analysis)
    res = measure_one(args.image, args.model, settings)
    s = res.analysis.summary
    print(f"{args.image.name}: porosity {100 * s['porosity']:.2f} %, counts median-area "
          f"{s['count_median_area']:.0f} / split {s['count_split_labels']:.0f} / Boolean "
          f"{s['count_boolean_model']:.1f}, density {s['density_cm2_split_labels']:.3g} /cm^2, "
          f"median ECD {s['ecd_um_median']:.2f} um, spatial: Clark-Evans {s['ce_verdict']} "
          f"(R {s['ce_R']:.2f}), Monte-Carlo {s['mc_verdict']}")
    fig = figure(res.grey, res.analysis.labels, res.analysis.objects, s, px,
                 analysis.counting.split_min_area_px)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from porescope.io.atomic import write_bytes

    write_bytes(args.out, buf.getvalue())
    print(f"wrote {args.out} ({len(buf.getvalue()) / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
