"""Per-specimen certificate figures of a measure run: grouping, intervals, systematic budget.

A certificate states porosity, pore density and pore size *per specimen*, over several
micrographs. :func:`specimen_results` groups the run's images into specimens
(:func:`porescope.io.grouping.group_keys`: a file-name pattern, a metadata CSV, or the input
folder as one specimen), computes each specimen's figures with 95 % intervals
(:func:`porescope.analysis.specimens.specimen_statistics`) and, when the pipeline's validation
table is at hand, the estimators' measured bias and spread at the specimen's porosity and pore
size (:func:`porescope.analysis.error_budget.specimen_budgets`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from porescope.io.grouping import GroupRule


@dataclass(frozen=True)
class SpecimenParams(GroupRule):
    """How micrographs are grouped into specimens (the ``measure.specimens`` params group).

    rule: ``none`` (no specimen table), ``folder`` (each sub-folder of the input folder is a
    specimen; images directly in the input folder form one named after it), ``pattern`` (a
    regex with one group, searched in the file name without its extension, e.g.
    ``^(.+?)_[0-9]+$`` groups ``M1_01.tif``, ``M1_02.tif`` as ``M1``) or ``metadata`` (a CSV
    with a ``file_column`` and a ``column`` naming each file's specimen); see
    :class:`porescope.io.grouping.GroupRule`.
    confidence: of the intervals; n_boot: bootstrap resamples of the cross-check interval.
    """

    confidence: float = field(default=0.95, metadata={"gt": 0.5, "lt": 1.0})
    n_boot: int = field(default=2000, metadata={"ge": 100, "le": 100_000})


@dataclass(frozen=True)
class SpecimenResult:
    """``stats``: one row per (specimen, quantity) (:data:`porescope.analysis.specimens.STAT_COLUMNS`);
    ``groups``: image id -> specimen; ``budgets``: specimen -> systematic error budget (empty
    without a validation table)."""

    stats: pd.DataFrame
    groups: pd.Series
    budgets: Mapping[str, pd.DataFrame]


def specimen_results(summary: pd.DataFrame, objects: pd.DataFrame | None, params: SpecimenParams, *,
                     source: str | Path, seed: int = 0,
                     validation: pd.DataFrame | None = None,
                     paths: Mapping[str, str] | None = None) -> SpecimenResult | None:
    """Specimen figures of a measure run, or ``None`` when ``params.rule`` is ``none``.

    Parameters
    ----------
    summary : DataFrame
        The run's ``summary.csv`` (one row per image; ``image_id``, ``image_file``, ...).
    objects : DataFrame or None
        The run's ``objects.csv`` (for median sizes and Feret diameters).
    params : SpecimenParams
    source : path
        The input folder (its name is the specimen with ``rule: folder``).
    seed : int
        Seed of the bootstrap cross-check.
    validation : DataFrame, optional
        The validate stage's per-image error table (``plots/validate/table.csv``).
    paths : mapping, optional
        Image id -> file path relative to the input folder (``"M1/img_01.png"``); with
        ``rule: folder`` each sub-folder is a specimen, images directly in the input
        folder belong to a specimen named after it. Default: the ``image_file`` column.

    Returns
    -------
    SpecimenResult or None

    Raises
    ------
    porescope.io.grouping.GroupingError
        A file without a specimen, a pattern without a group, a CSV missing the file or column.

    Examples
    --------
    >>> summary = pd.DataFrame({"image_id": ["M1_01", "M1_02"], "image_file": ["M1_01.png", "M1_02.png"],
    ...                         "porosity": [0.10, 0.12], "analysed_area_px": [1e6, 1e6]})
    >>> res = specimen_results(summary, None, SpecimenParams(rule="pattern", pattern=r"^(.+?)_\\d+$"),
    ...                        source="in")
    >>> dict(res.groups)
    {'M1_01': 'M1', 'M1_02': 'M1'}
    """
    from porescope.analysis.error_budget import specimen_budgets, specimen_diameters_px
    from porescope.analysis.specimens import specimen_statistics

    if params.rule == "none" or summary.empty:
        return None
    rel = [(paths or {}).get(i, f) for i, f in zip(summary["image_id"], summary["image_file"])]
    files = [f if "/" in f else f"{Path(source).name}/{f}" for f in rel]
    keys = params.keys(files)
    groups = pd.Series(list(keys), index=list(summary["image_id"]), name="specimen")
    stats = specimen_statistics(summary, groups, objects=objects, confidence=params.confidence,
                                n_boot=params.n_boot, seed=seed)
    budgets: dict[str, pd.DataFrame] = {}
    if validation is not None and not validation.empty:
        scale = float(summary["scale"].iloc[0]) if "scale" in summary else 1.0
        budgets = dict(specimen_budgets(stats, validation, specimen_diameters_px(summary, groups, scale)))
    return SpecimenResult(stats, groups, budgets)
