"""The development membranes of the guard's bench scripts: synthetic membranes WITH artefacts.

Drawn with the ``validate`` sizes, porosity and diameter ranges of ``params.yaml`` and the
``synthesize.artefacts`` (frames, text, logos, rough patches, charging, JPEG ...), seeds
``seed + offset`` for each offset: never the validation images, so a guard rule is not chosen
on the images that judge it.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

import porescope.synthetic.membranes as syn
from porescope.analysis.validation import ValidateParams, validation_specs
from real_sem_reference import ROOT


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """``--model``, ``--params``, ``--offsets`` and ``--n-images`` (per offset)."""
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--offsets", type=int, nargs="+", default=[2_000_003, 3_000_017])
    ap.add_argument("--n-images", type=int, default=24)


def development_specs(p: dict[str, Any], offsets: list[int], n_images: int
                      ) -> Iterator[tuple[int, int, syn.MembraneSpec, np.random.Generator]]:
    """``(offset, k, spec, rng)`` of each development membrane of the params mapping ``p``."""
    vp = ValidateParams.from_mapping(p["validate"])
    for off in offsets:
        dev = replace(vp, artefacts=True, seed_offset=off, n_images=n_images)
        for k, spec in enumerate(validation_specs(dev, p["synthesize"], p["seed"])):
            yield off, k, spec, syn.image_rng(p["seed"] + off, k)
