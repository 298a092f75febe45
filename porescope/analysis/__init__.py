"""Per-image membrane analysis: measurements, truth comparison and distribution figures.

Modules, one concept each:

* :mod:`~porescope.analysis.params`: :class:`AnalyzeParams`, the ``analyze`` params group;
* :mod:`~porescope.analysis.membrane`: :func:`analyse_mask`, everything measured on one mask;
* :mod:`~porescope.analysis.truth`: the exact truth of a synthetic image per estimator;
* :mod:`~porescope.analysis.comparison`: measured against true, error statistics;
* :mod:`~porescope.analysis.figures` and :mod:`~porescope.analysis.plots`: figures;
* :mod:`~porescope.analysis.accuracy`: the predicted test masks against the reference
  (the ``analyze`` stage);
* :mod:`~porescope.analysis.validation`: accuracy on fresh synthetic membranes with exact
  truth (the ``validate`` stage).

The names below are the public API of the first five.

Examples
--------
>>> import numpy as np
>>> import porescope.analysis as pa
>>> mask = np.zeros((50, 50), np.uint8)
>>> mask[5:15, 5:15] = 1
>>> pa.analyse_mask(mask).summary["n_pores"]
1
"""

from porescope.analysis.comparison import (
    band_names,
    boolean_known_area_row,
    compare_with_reference,
    summarise_errors,
)
from porescope.analysis.figures import (
    count_error_figure,
    distribution_figures,
    figure_png,
    outline_overlay,
    porosity_error_figure,
    porosity_scatter_figure,
)
from porescope.analysis.membrane import (
    DEFAULT_SEED,
    ESTIMATORS,
    ImageAnalysis,
    analyse_mask,
    image_rng,
)
from porescope.analysis.params import (
    AnalysisParams,
    AnalyzeParams,
    CountingParams,
    SpatialParams,
    SplitParams,
)
from porescope.analysis.truth import (
    mask_reference,
    pore_edge_contacts,
    read_synthetic_truth,
    synthetic_reference,
)

__all__ = [
    "AnalyzeParams", "AnalysisParams", "CountingParams", "SplitParams", "SpatialParams",
    "ESTIMATORS", "DEFAULT_SEED", "ImageAnalysis", "analyse_mask", "image_rng",
    "read_synthetic_truth", "pore_edge_contacts", "synthetic_reference", "mask_reference",
    "compare_with_reference", "boolean_known_area_row", "band_names", "summarise_errors",
    "figure_png", "distribution_figures", "outline_overlay", "porosity_scatter_figure",
    "porosity_error_figure", "count_error_figure",
]
