"""DVC stage ``synthesize``: the built-in synthetic track-etched-membrane dataset with exact truth.

    python -m stages.synthesize --params params.yaml --out data/synthetic

Reads the ``synthesize`` group of params.yaml (and the shared ``seed``), renders
``n_images`` micrographs with :mod:`porescope.synthetic.membranes` and writes, atomically (the folder
appears complete or not at all):

* ``images/mem_000.png ...``: uint8 grey SEM-like micrographs;
* ``masks/<id>.png``: uint8, 255 = pore, 0 = rest, in the convention ``synthesize.mask``
  (``opening``: surface openings = dark core + lit wall; ``core``: the dark core only);
* ``masks_alt/<id>.png``: the other convention, same encoding;
* ``truth.csv``: one row per image (``image_id``, ``mask_convention`` and the truth of
  :func:`porescope.synthetic.membranes.synthesize_image`: counts, porosities, densities, E[A], ...);
* ``pores.csv``: one row per drawn pore (``image_id`` + :data:`~porescope.synthetic.membranes.PORE_COLUMNS`).

Image ``k`` is generated from its own child seed of the shared seed, so the files are
byte-identical for the same params and seed whatever ``workers`` is, and image ``k`` does not
change when ``n_images`` does.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from stages.common import ParamsError, load_params, run_stage, setup_logging, stage_parser
from porescope.synthetic import membranes as syn
from porescope.io.atomic import output_dir, write_csv, write_png
from porescope.parallel.processes import worker_context

LOG = logging.getLogger("porescope.synthesize")
GROUP = "synthesize"


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _is_num(x: Any) -> bool:
    return (isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)
            and math.isfinite(float(x)))


def validate_params(raw: Mapping[str, Any], source: str = "params.yaml") -> dict[str, Any]:
    """Check a ``synthesize`` params group (with ``seed``); return it as a plain dict.

    Every key of :data:`porescope.synthetic.membranes.DEFAULT_PARAMS` is required and no other is
    allowed; ``appearance`` must hold exactly the keys of
    :data:`~porescope.synthetic.membranes.DEFAULT_APPEARANCE_RANGES`, each a pair ``[low, high]`` with
    ``0 <= low <= high``. Raises :class:`ParamsError` naming ``synthesize.<key>``.
    """
    def err(key: str, why: str) -> ParamsError:
        value = p.get(key, "<missing>") if "." not in key else "<see key>"
        return ParamsError(f"{source}: {GROUP}.{key}: {why} (got {value!r})")

    p = dict(raw)
    expected = set(syn.DEFAULT_PARAMS) | {"seed"}
    for key in sorted(expected - set(p)):
        raise ParamsError(f"{source}: {GROUP}.{key}: missing")
    for key in sorted(set(p) - expected):
        raise ParamsError(f"{source}: {GROUP}.{key}: unknown parameter "
                          f"(known: {', '.join(sorted(syn.DEFAULT_PARAMS))})")

    def need_int(key: str, lo: int, hi: int | None = None) -> None:
        if not _is_int(p[key]) or p[key] < lo or (hi is not None and p[key] > hi):
            raise err(key, f"must be an integer in [{lo}, {hi if hi is not None else 'inf'}]")

    def need_num(key: str, lo: float, hi: float, lo_open: bool = False, hi_open: bool = False) -> None:
        x = p[key]
        ok = _is_num(x) and (x > lo if lo_open else x >= lo) and (x < hi if hi_open else x <= hi)
        if not ok:
            interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
            raise err(key, f"must be a number in {interval}")

    need_int("seed", 0)
    need_int("n_images", 1, 100_000)
    need_int("height", 32, 16384)
    need_int("width", 32, 16384)
    need_int("workers", 1, 256)
    need_int("supersample", 1, 16)
    need_int("databar_height_px", 0, p["height"] - 8)
    if p["pixel_size_nm"] is not None:
        need_num("pixel_size_nm", 0.0, 1e7, lo_open=True)
    need_num("porosity_min", 0.0, 0.95, hi_open=True)
    need_num("porosity_max", 0.0, 0.95, hi_open=True)
    if p["porosity_max"] < p["porosity_min"]:
        raise err("porosity_max", f"must be >= porosity_min ({p['porosity_min']})")
    side = min(p["height"], p["width"])
    need_num("diameter_min_px", 1.0, side)
    need_num("diameter_max_px", 1.0, side)
    if p["diameter_max_px"] < p["diameter_min_px"]:
        raise err("diameter_max_px", f"must be >= diameter_min_px ({p['diameter_min_px']})")
    need_num("diameter_cv", 0.0, 0.3)
    if p["tilt_distribution"] not in syn.TILT_DISTRIBUTIONS:
        raise err("tilt_distribution", f"must be one of {list(syn.TILT_DISTRIBUTIONS)}")
    need_num("tilt_sigma_deg", 0.0, 90.0)
    need_num("tilt_max_deg", 0.0, 80.0)
    need_num("azimuth_spread_deg", 0.0, 360.0)
    need_num("core_depth", 0.0, 10.0)
    need_num("databar_probability", 0.0, 1.0)
    if p["mask"] not in syn.MASK_CONVENTIONS:
        raise err("mask", f"must be one of {list(syn.MASK_CONVENTIONS)}")

    app = p["appearance"]
    if not isinstance(app, Mapping):
        raise err("appearance", "must be a mapping of [low, high] ranges")
    for key in sorted(set(syn.DEFAULT_APPEARANCE_RANGES) - set(app)):
        raise ParamsError(f"{source}: {GROUP}.appearance.{key}: missing")
    for key in sorted(set(app) - set(syn.DEFAULT_APPEARANCE_RANGES)):
        raise ParamsError(f"{source}: {GROUP}.appearance.{key}: unknown appearance parameter "
                          f"(known: {', '.join(sorted(syn.DEFAULT_APPEARANCE_RANGES))})")
    positive = {"rim_width_px", "halo_sigma", "texture_scale_px"}
    for key, rng in app.items():
        ok = (isinstance(rng, (list, tuple)) and len(rng) == 2 and all(_is_num(v) for v in rng)
              and 0 <= rng[0] <= rng[1] and (key not in positive or rng[0] > 0))
        if not ok:
            raise ParamsError(f"{source}: {GROUP}.appearance.{key}: must be [low, high] with "
                              f"{'0 < ' if key in positive else '0 <= '}low <= high (got {rng!r})")
    p["appearance"] = {k: [float(v[0]), float(v[1])] for k, v in app.items()}
    return p


def image_id(k: int, n: int) -> str:
    """``mem_000``, ``mem_001``, ... (at least 3 digits, more when n_images > 1000)."""
    return f"mem_{k:0{max(3, len(str(n - 1)))}d}"


def _make(job: tuple[syn.MembraneSpec, int, int]) -> syn.SyntheticImage:
    spec, seed, k = job
    return syn.synthesize_image(spec, syn.image_rng(seed, k))


def generate(params: Mapping[str, Any]) -> Iterator[tuple[int, syn.SyntheticImage]]:
    """Iterator of ``(k, SyntheticImage)`` in order for validated params.

    With ``workers > 1`` the jobs are submitted to a process pool before this returns; results
    are yielded in image order, so the output does not depend on the worker count.
    """
    try:
        specs = syn.dataset_specs(params, params["seed"])
    except ValueError as exc:
        raise ParamsError(f"{GROUP}: {exc}") from None
    jobs = [(spec, params["seed"], k) for k, spec in enumerate(specs)]
    if params["workers"] <= 1 or len(jobs) == 1:
        return enumerate(map(_make, jobs))
    pool = ProcessPoolExecutor(max_workers=min(params["workers"], len(jobs)),
                               mp_context=worker_context([syn.__name__]))
    futures = [pool.submit(_make, job) for job in jobs]

    def results() -> Iterator[tuple[int, syn.SyntheticImage]]:
        try:
            for k, fut in enumerate(futures):
                yield k, fut.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    return results()


def run(params: Mapping[str, Any], out: str | Path) -> Path:
    """Generate the dataset described by validated ``params`` into the folder ``out``."""
    n = params["n_images"]
    convention = params["mask"]
    other = "core" if convention == "opening" else "opening"
    truths, pores = [], []
    results = generate(params)
    with output_dir(out) as tmp:
        for sub in ("images", "masks", "masks_alt"):
            (tmp / sub).mkdir()
        for k, res in tqdm(results, total=n, desc="synthesize", unit="img"):
            iid = image_id(k, n)
            masks = {"opening": res.mask_opening, "core": res.mask_core}
            write_png(tmp / "images" / f"{iid}.png", res.image)
            write_png(tmp / "masks" / f"{iid}.png", masks[convention].astype(np.uint8) * 255)
            write_png(tmp / "masks_alt" / f"{iid}.png", masks[other].astype(np.uint8) * 255)
            truths.append({"image_id": iid, "mask_convention": convention, **res.truth})
            table = res.pores.copy()
            table.insert(0, "image_id", iid)
            pores.append(table)
        write_csv(tmp / "truth.csv", pd.DataFrame(truths))
        pore_table = pd.concat(pores, ignore_index=True) if pores else pd.DataFrame(
            columns=["image_id", *syn.PORE_COLUMNS])
        write_csv(tmp / "pores.csv", pore_table)
    truth = pd.DataFrame(truths)
    LOG.info("wrote %d images to %s (mask %s): porosity %.3f-%.3f, %d pores counted",
             n, out, convention, truth["porosity"].min(), truth["porosity"].max(),
             int(truth["n_true"].sum()))
    return Path(out)


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output folder (e.g. data/synthetic)")
    args = parser.parse_args(argv)
    setup_logging()
    params = validate_params(load_params(args.params, GROUP), str(args.params))
    run(params, args.out)
    return 0


if __name__ == "__main__":
    run_stage("synthesize", main)
