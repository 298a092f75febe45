"""The public functions of porescope that wrap lower-level ones with a simpler signature.

:func:`measure_objects`, :func:`count_pores`, :func:`spatial_summary` and
:func:`synthesize_membrane` take plain arrays and physical units (nm per pixel) and fill in
what the library functions they call need (labels, observation window, generator, spec).
Import them from the package: ``from porescope import count_pores``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd


def measure_objects(labels: np.ndarray, pixel_size_nm: float | None = None, *,
                    connectivity: int = 8, length_unit: str = "um",
                    bar_rows: int = 0) -> pd.DataFrame:
    """Measure every object of a mask or label image, with ImageJ's column names.

    Parameters
    ----------
    labels : (rows, cols) array
        Integer labels (0 = background, one id per object), or a bool mask, whose connected
        components are labelled first (``connectivity``).
    pixel_size_nm : float, optional
        nm per pixel; adds physical columns (``Area_um2``, ``Feret_um``, ...).
    connectivity : {4, 8}
        Neighbourhood of a bool mask's components (ImageJ traces 8-connected objects).
    length_unit : {"um", "nm"}
        Unit of the physical columns.
    bar_rows : int
        Rows of an SEM data bar at the bottom, left out.

    Returns
    -------
    pandas.DataFrame
        One row per object: ``Area``, ``X``, ``Y``, ``Perim.``, ``Circ.``, ``Feret``,
        ``MinFeret``, ``Major``, ``Minor``, ``Solidity``, ... (pixel units) and the physical
        columns (:func:`porescope.measure.morphometry.measure_objects`).

    Examples
    --------
    >>> import numpy as np
    >>> mask = np.zeros((40, 60), bool)
    >>> mask[5:15, 5:15] = True                  # a 10 x 10 square
    >>> mask[20:30, 30:50] = True                # a 20 x 10 rectangle
    >>> table = measure_objects(mask, pixel_size_nm=100.0)
    >>> table["Area"].tolist(), table["Area_um2"].round(2).tolist()
    ([100, 200], [1.0, 2.0])
    """
    from porescope.measure.morphometry import label_mask
    from porescope.measure.morphometry import measure_objects as measure_labels

    labels = np.asarray(labels)
    if labels.dtype == bool:
        labels = label_mask(labels, connectivity)
    return measure_labels(labels, pixel_size=pixel_size_nm, bar_rows=bar_rows,
                          length_unit=length_unit)


def count_pores(mask: np.ndarray, pixel_size_nm: float | None = None, *,
                split_labels: np.ndarray | None = None, bar_rows: int = 0,
                include_edges: Iterable[str] = ("top", "left"), **options: Any) -> pd.DataFrame:
    """Count the pores of a mask with three estimators (overlapping pores make counting hard).

    Parameters
    ----------
    mask : (rows, cols) array
        Non-zero = pore.
    pixel_size_nm : float, optional
        nm per pixel, for the densities per cm^2.
    split_labels : (rows, cols) int array, optional
        Labels with touching pores split (e.g. a watershed); adds the ``split_labels`` count.
    bar_rows : int
        Rows of an SEM data bar at the bottom, left out.
    include_edges : iterable of str
        Guard frame: objects touching these edges count, those touching the other two not.
    **options
        Further settings of :func:`porescope.measure.counting.count_pores` (``small_factor``,
        ``large_factor``, ``mean_area``, ...).

    Returns
    -------
    pandas.DataFrame
        One row per estimator (``median_area``, ``split_labels``, ``boolean_model``):
        ``count``, ``density_per_px2``, ``density_per_cm2``, ``analysed_px``, ``detail``.

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:100, :100]
    >>> mask = np.zeros((100, 100), np.uint8)
    >>> for cy, cx in [(20, 20), (20, 70), (60, 30), (70, 75), (45, 50)]:
    ...     mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= 36] = 1
    >>> counts = count_pores(mask, pixel_size_nm=50.0)
    >>> float(counts.set_index("estimator").loc["median_area", "count"])
    5.0
    """
    from porescope.measure.counting import count_pores as count

    return count(np.asarray(mask), split_labels=split_labels, bar_rows=bar_rows,
                 include_edges=include_edges, pixel_size=pixel_size_nm, **options)


def spatial_summary(points: np.ndarray, shape: tuple[int, int], *, seed: int = 0,
                    n_sim: int = 99, alpha: float = 0.05) -> dict[str, Any]:
    """Are the pore centres random, clustered or self-avoiding?

    Parameters
    ----------
    points : (n, 2) array
        ``(x, y)`` centres in pixels (e.g. the ``X``, ``Y`` columns of :func:`measure_objects`).
    shape : (rows, cols)
        The analysed image; the observation window is the whole image.
    seed : int
        Seed of the Monte-Carlo simulations of complete spatial randomness.
    n_sim : int
        Number of simulations.
    alpha : float
        Significance level of the tests.

    Returns
    -------
    dict
        ``verdict`` (``"random"``, ``"clustering"`` or ``"self-avoiding"``, the Monte-Carlo
        mean nearest-neighbour test), ``n``, ``intensity``, ``nnd_mean``, ``nnd_median``,
        ``clark_evans``, ``biovoxxel``, ``monte_carlo`` (:func:`porescope.measure.spatial.spatial_summary`).

    Examples
    --------
    >>> import numpy as np
    >>> grid = np.array([(x, y) for x in range(5, 100, 10) for y in range(5, 100, 10)], float)
    >>> spatial_summary(grid, (100, 100), n_sim=39)["verdict"]
    'self-avoiding'
    """
    from porescope.measure.spatial import Window
    from porescope.measure.spatial import spatial_summary as summarise

    return summarise(np.asarray(points, float), Window.from_shape(*shape),
                     np.random.default_rng(seed), n_sim=n_sim, alpha=alpha)


def synthesize_membrane(height: int = 512, width: int = 512, *, porosity: float = 0.15,
                        mean_diameter_px: float = 25.0, pixel_size_nm: float | None = 25.0,
                        seed: int = 0, **spec: Any):
    """A synthetic SEM micrograph of a track-etched membrane with its exact truth.

    Parameters
    ----------
    height, width : int
        Image size in pixels.
    porosity : float
        Target porosity of the Boolean model, in [0, 0.95).
    mean_diameter_px : float
        Mean track diameter in pixels.
    pixel_size_nm : float or None
        nm per pixel (the truth's density per cm^2).
    seed : int
        Seed of every random draw.
    **spec
        Further fields of :class:`porescope.synthetic.membranes.MembraneSpec` (tilt,
        ``diameter_cv``, ``databar_height_px``, ``appearance``, ...).

    Returns
    -------
    SyntheticImage
        ``.image`` (uint8), ``.mask_opening`` / ``.mask_core`` (bool), ``.pores`` (table),
        ``.truth`` (dict: ``porosity``, ``n_true``, ``density_cm2``, ...).

    Examples
    --------
    >>> membrane = synthesize_membrane(96, 96, porosity=0.1, mean_diameter_px=12, seed=1)
    >>> membrane.image.shape, membrane.image.dtype.name
    ((96, 96), 'uint8')
    >>> bool(abs(membrane.truth["porosity"] - membrane.mask_opening.mean()) < 1e-12)
    True
    """
    from porescope.synthetic.membranes import MembraneSpec, synthesize_image

    spec_ = MembraneSpec(height=height, width=width, porosity=porosity,
                         mean_diameter_px=mean_diameter_px, pixel_size_nm=pixel_size_nm, **spec)
    return synthesize_image(spec_, np.random.default_rng(seed))
