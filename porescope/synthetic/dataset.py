"""Writing the built-in synthetic dataset to a folder (the ``synthesize`` stage's work).

:func:`run_synthesize` renders ``n_images`` micrographs with :mod:`porescope.synthetic.membranes`
and writes, atomically (the folder appears complete or not at all):

* ``images/mem_000.png ...``: uint8 grey SEM-like micrographs;
* ``masks/<id>.png``: uint8, 255 = pore, 0 = rest, in the convention ``mask``
  (``opening``: surface openings = dark core + lit wall; ``core``: the dark core only);
* ``masks_alt/<id>.png``: the other convention, same encoding;
* ``truth.csv``: one row per image (``image_id``, ``mask_convention`` and the truth of
  :func:`porescope.synthetic.membranes.synthesize_image`: counts, porosities, densities, E[A], ...);
* ``pores.csv``: one row per drawn pore (``image_id`` + :data:`~porescope.synthetic.membranes.PORE_COLUMNS`).

Image ``k`` is generated from its own child seed of ``seed``, so the files are byte-identical
for the same params and seed whatever ``workers`` is, and image ``k`` does not change when
``n_images`` does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from porescope.config import ParamsError
from porescope.io.atomic import output_dir, write_csv, write_png
from porescope.parallel.processes import worker_context
from porescope.synthetic import membranes as syn
from porescope.synthetic.params import SynthesizeParams

LOG = logging.getLogger("porescope.synthesize")


def image_id(k: int, n: int) -> str:
    """``mem_000``, ``mem_001``, ... (at least 3 digits, more when n_images > 1000).

    Examples
    --------
    >>> image_id(7, 24), image_id(7, 2000)
    ('mem_007', 'mem_0007')
    """
    return f"mem_{k:0{max(3, len(str(n - 1)))}d}"


def _make(job: tuple[syn.MembraneSpec, int, int]) -> syn.SyntheticImage:
    spec, seed, k = job
    return syn.synthesize_image(spec, syn.image_rng(seed, k))


def generate(params: SynthesizeParams, seed: int) -> Iterator[tuple[int, syn.SyntheticImage]]:
    """Iterator of ``(k, SyntheticImage)`` in image order.

    With ``workers > 1`` the jobs are submitted to a process pool before this returns; results
    are yielded in image order, so the output does not depend on the worker count.
    """
    try:
        specs = syn.dataset_specs(params, seed)
    except ValueError as exc:
        raise ParamsError(f"synthesize: {exc}") from None
    jobs = [(spec, seed, k) for k, spec in enumerate(specs)]
    if params.workers <= 1 or len(jobs) == 1:
        return enumerate(map(_make, jobs))
    pool = ProcessPoolExecutor(max_workers=min(params.workers, len(jobs)),
                               mp_context=worker_context([syn.__name__]))
    futures = [pool.submit(_make, job) for job in jobs]

    def results() -> Iterator[tuple[int, syn.SyntheticImage]]:
        try:
            for k, fut in enumerate(futures):
                yield k, fut.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    return results()


def run_synthesize(params: SynthesizeParams, seed: int, out: str | os.PathLike) -> Path:
    """Generate the dataset described by ``params`` and ``seed`` into the folder ``out``.

    See the module docstring for the files; returns ``Path(out)``.
    """
    n = params.n_images
    convention = params.mask
    other = "core" if convention == "opening" else "opening"
    truths, pores = [], []
    results = generate(params, seed)
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
