"""Objects (instances) from semantic masks, and the three-class (interior / border) encoding.

Label images are int32 arrays, 0 = background, objects numbered 1..n. Distances are in pixels.

* :func:`label_components` — connected components (8-connectivity by default, as ImageJ).
* :func:`split_touching` — split touching / overlapping round objects by a marker-controlled
  watershed on the Euclidean distance transform (EDT) of the mask. Each object is a hill of the
  EDT; two overlapping discs of radius ``R`` whose centres are ``d`` apart give two summits of
  height ``R`` joined by a saddle of height ``sqrt(R^2 - d^2/4)``. A summit becomes a marker only
  if it rises at least ``h`` above the saddle joining it to a higher summit (h-maxima, the
  *dynamic* of the maximum), so two discs are split when ``R - sqrt(R^2 - d^2/4) >= h``. An
  ellipse has a single EDT summit at its centre (its medial axis descends monotonically from
  there), and the spurious summits that pixelation creates along that ridge are well under one
  pixel high, so ``h`` of 1-2 px keeps elongated pores whole where a plain local-maximum detector
  would cut them. ``method="peak_local_max"`` (``min_distance``) is offered for comparison.
* :func:`instances_from_three_class` — paper 003: seeds are the connected object-interior regions
  of a class map; a watershed grows them over interior + border pixels. With ``seed_h`` each
  interior region is first cut at its necks by :func:`split_touching`, so that two touching
  objects whose *predicted* border line has a gap (their interiors join through it) still get a
  seed each.
* :func:`separate_objects` — one entry point choosing among the above by name (for params).
* :func:`three_class_from_instances` / :func:`three_class_from_binary` — training targets of that
  kind: every object pixel within ``border_width`` pixels (Chebyshev distance) of a pixel with a
  different label (background or another object) is *border*, the rest *interior*. The border is
  thus drawn on each object's edge and, twice as wide, along the line where objects touch, like
  the blue lines of the Au-tetrahedra masks. The image frame is not a border: an object cut by
  the frame keeps its interior there. With ``border_width >= 1`` the interiors of two different
  objects are never 8-adjacent, so the interior labelling separates them again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.morphology import local_maxima, reconstruction
from skimage.segmentation import watershed

#: A class whose name contains one of these words is a border class (paper 003's third class).
BORDER_WORDS = ("border", "boundary")

__all__ = [
    "border_classes",
    "label_components",
    "first_pixels",
    "split_touching",
    "instances_from_three_class",
    "three_class_from_instances",
    "three_class_from_binary",
    "separate_objects",
]


def _structure(connectivity: int) -> np.ndarray:
    if connectivity == 8:
        return np.ones((3, 3), dtype=bool)
    if connectivity == 4:
        return ndi.generate_binary_structure(2, 1)
    raise ValueError(f"connectivity must be 4 or 8, got {connectivity!r}")


def _watershed_connectivity(connectivity: int) -> int:
    _structure(connectivity)
    return 2 if connectivity == 8 else 1


def _as_mask(mask: np.ndarray, name: str = "mask") -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, cols), got shape {mask.shape}")
    if mask.dtype != bool and not np.issubdtype(mask.dtype, np.integer):
        raise TypeError(f"{name} must be bool or integer (non-zero = foreground), got dtype {mask.dtype}")
    return mask != 0


def label_components(mask: np.ndarray, connectivity: int = 8) -> np.ndarray:
    """Connected components of the non-zero pixels of a 2-D mask.

    Parameters
    ----------
    mask : numpy.ndarray
        2-D bool or integer mask; every non-zero pixel is foreground.
    connectivity : {4, 8}
        Pixel neighbourhood (8: diagonal neighbours connect, the ImageJ default).

    Returns
    -------
    numpy.ndarray of int32
        Labels 1..n in raster order of each component's first pixel, 0 = background.
    """
    fg = _as_mask(mask)
    labels, _ = ndi.label(fg, structure=_structure(connectivity))
    return labels.astype(np.int32, copy=False)


def _add_unreached(labels: np.ndarray, fg: np.ndarray, connectivity: int) -> np.ndarray:
    """Give every foreground component that no marker reached a label of its own."""
    missing = fg & (labels == 0)
    if missing.any():
        extra = label_components(missing, connectivity)
        labels[missing] = extra[missing] + labels.max()
    return labels



def first_pixels(labels: np.ndarray, above: int = 0) -> np.ndarray:
    """Raster index (``row * cols + col``) of the first pixel of each label ``above + 1 ..
    labels.max()``, every one of them present: what orders objects as a whole image numbers
    them.

    Examples
    --------
    >>> lab = np.array([[0, 2, 2], [1, 0, 3], [1, 3, 3]])
    >>> first_pixels(lab).tolist(), first_pixels(lab, above=1).tolist()
    ([3, 1, 5], [1, 5])
    """
    flat = labels.ravel()
    idx = np.flatnonzero(flat > above)
    ids, first = np.unique(flat[idx], return_index=True)
    out = np.zeros(int(ids[-1]) - above if ids.size else 0, np.int64)
    out[ids - above - 1] = idx[first]
    return out


def _h_maxima_watershed(fg: np.ndarray, h: float, footprint: np.ndarray | None = None,
                        wconn: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(EDT, markers, watershed labels)`` of the h-maxima split of ``fg`` (bool)."""
    dist = ndi.distance_transform_edt(fg)
    # h-maxima transform HMAX_h(EDT) = reconstruction by dilation of (EDT - h) under EDT;
    # markers = its regional maxima (plateaus). Not skimage.morphology.h_maxima: that returns
    # the pixels at the exact top value, and pixelation makes an elongated object's EDT top
    # out at several separate pixels of equal value (e.g. three markers on a 60 x 20 ellipse).
    hmax = reconstruction(dist - h, dist, method="dilation", footprint=footprint)
    peaks = local_maxima(hmax, footprint=footprint, connectivity=2, allow_borders=True) & fg
    del hmax
    markers = label_components(peaks, 8)
    return dist, markers, watershed(-dist, markers, mask=fg, connectivity=wconn)


def _split_by_bands(fg: np.ndarray, h: float, band_pixels: int) -> np.ndarray:
    """:func:`split_touching` (h-maxima, 8-connected, 3 x 3 footprint) band by band.

    Why the result equals the whole-image one: (1) for a pixel of component ``k`` the nearest
    background pixel lies within ``k``'s bounding box grown by one pixel (clamp any farther
    background pixel to that ring: it is closer and, being 8-adjacent to nothing of ``k`` or
    outside ``k``'s box, background), and a pixel of another component is never nearer than some
    background pixel (the digital line between them crosses background), so the EDT of ``k``
    in a crop of whole components, the others blanked, is the EDT of the image. (2) Where the
    EDT of ``k`` rises above ``h`` the reconstruction inside ``k`` is > 0 and is fed by ``k``'s
    own values only (anything entering through background is capped at 0), so ``k``'s regional
    maxima, markers and watershed are those of the image (the watershed floods only ``k`` and
    keeps its own pixels' priority order). (3) A component whose EDT never exceeds ``h`` lies in
    a plateau at a level <= 0 that either touches a component with higher values or, with no
    such component, covers the whole image (no maximum at all): it never gets a marker and stays
    one unreached object. Numbers follow the whole-image order (markers by first pixel, then the
    unreached components by first pixel).
    """
    rows, cols = fg.shape
    comps = label_components(fg, 8)  # reused in place for the output
    slices = ndi.find_objects(comps)
    n = len(slices)
    band_rows = max(1, band_pixels // cols)
    firsts: list[np.ndarray] = []   # per band: global raster index of each marker's first pixel
    tiny = np.zeros(n + 1, dtype=bool)
    n_markers = 0
    lo = 1
    while lo <= n:
        top = slices[lo - 1][0].start
        hi, bottom = lo, slices[lo - 1][0].stop
        # components are numbered by first pixel, so those starting in this band are a range
        while hi < n and slices[hi][0].start < top + band_rows:
            hi += 1
            bottom = max(bottom, slices[hi - 1][0].stop)
        r0, r1 = max(0, top - 1), min(rows, bottom + 1)
        crop = comps[r0:r1]
        sub = (crop >= lo) & (crop <= hi)
        dist, markers, ws = _h_maxima_watershed(sub, h)
        low = ndi.maximum(dist, labels=np.where(sub, crop, 0), index=np.arange(lo, hi + 1)) <= h
        del dist
        tiny[lo:hi + 1] = low
        big = sub & ~tiny[crop * sub]
        # markers in big components keep their raster order: record each one's first pixel
        flat = markers.ravel()
        idx = np.flatnonzero(flat)
        keep = big.ravel()[idx]
        ids, first = np.unique(flat[idx[keep]], return_index=True)
        remap = np.zeros(int(markers.max()) + 1, dtype=np.int64)
        remap[ids] = np.arange(n_markers + 1, n_markers + 1 + ids.size)
        firsts.append(idx[keep][first] + r0 * cols)
        n_markers += ids.size
        # provisional ids (negative, so later bands' ranges never select them)
        crop[big] = -remap[ws[big]]
        lo = hi + 1
    order = np.argsort(np.concatenate(firsts), kind="stable") if firsts else np.zeros(0, int)
    lut_markers = np.zeros(n_markers + 1, dtype=np.int32)
    lut_markers[order + 1] = np.arange(1, n_markers + 1, dtype=np.int32)
    lut_tiny = np.zeros(n + 1, dtype=np.int32)
    lut_tiny[tiny] = np.arange(n_markers + 1, n_markers + 1 + int(tiny.sum()), dtype=np.int32)
    for r in range(0, rows, band_rows):
        block = comps[r:r + band_rows]
        block[...] = np.where(block < 0, lut_markers[-np.minimum(block, 0)], lut_tiny[block.clip(0)])
    marker_firsts = np.sort(np.concatenate(firsts)) if firsts else np.zeros(0, np.int64)
    return comps, marker_firsts


def split_touching(
    mask: np.ndarray,
    *,
    method: str = "h_maxima",
    h: float = 2.0,
    min_distance: int = 5,
    footprint: np.ndarray | None = None,
    connectivity: int = 8,
    band_pixels: int | None = 1_000_000,
    return_order: bool = False,
) -> np.ndarray | tuple[np.ndarray, int, np.ndarray]:
    """Split touching or overlapping objects of a binary mask by a distance-transform watershed.

    Steps: EDT of the foreground (``scipy.ndimage.distance_transform_edt``, distance of each
    foreground pixel to the nearest background pixel; the image frame does not count as
    background) -> markers (one per summit, below) -> ``skimage.segmentation.watershed`` of the
    negated EDT from those markers, restricted to the mask. A foreground component that received
    no marker (an object thinner than about ``2 h`` px under h-maxima) is kept as one object.

    Parameters
    ----------
    mask : numpy.ndarray
        2-D bool / integer mask, non-zero = foreground.
    method : {"h_maxima", "peak_local_max"}
        ``"h_maxima"`` (default): markers are the EDT maxima whose dynamic is at least ``h``
        (regional maxima of the h-maxima transform, ``skimage.morphology.reconstruction`` of
        ``EDT - h`` under the EDT, then ``skimage.morphology.local_maxima``); split two discs of radius R at centre distance d when
        ``R - sqrt(R^2 - d^2 / 4) >= h``. ``"peak_local_max"``: markers are
        ``skimage.feature.peak_local_max`` peaks at least ``min_distance`` px apart within each
        component (plateau peaks merged); prone to cutting elongated objects.
    h : float
        Minimum summit height above its saddle, in px (h_maxima only). 1-2 px suppresses the
        pixelation summits along an elongated object's ridge; larger values split fewer pairs.
    min_distance : int
        Minimum peak separation in px (peak_local_max only).
    footprint : numpy.ndarray or None
        Neighbourhood passed to ``reconstruction`` and ``local_maxima`` / ``peak_local_max``
        (default: 3x3 / derived from ``min_distance``).
    connectivity : {4, 8}
        Connectivity of the components, the markers and the watershed flooding.
    band_pixels : int or None
        Memory bound: with the defaults (``"h_maxima"``, 8-connectivity, no ``footprint``) the
        connected components are processed in bands of whole components of about this many
        pixels (:func:`_split_by_bands`), so the working memory is ~100 B per pixel of a band
        (or of the largest component's bounding-box rows) on top of ~5 B per image pixel, and the
        labels are identical to processing the whole image at once (``None``; ~100 B/px of the
        image).
    return_order : bool
        Also return what the numbering follows, so that separate parts of an image can be
        numbered as the whole image would be: ``n_marked`` (objects ``1..n_marked`` grew from a
        marker, the components no marker reached follow) and, per object, the raster index of
        the first pixel of its marker (of the object itself for the others).

    Returns
    -------
    numpy.ndarray of int32
        Object labels 1..n, 0 = background; the union of the objects is exactly the mask.
        Numbered as the watershed of the whole image numbers them: objects grown from a marker in
        raster order of the marker's first pixel, then the components no marker reached in
        raster order of their first pixel. With ``return_order``, ``(labels, n_marked, first)``.

    Examples
    --------
    Two overlapping discs of radius 10 px, centres 14 px apart, and a separate small one:

    >>> import numpy as np
    >>> yy, xx = np.mgrid[:40, :70]
    >>> mask = ((yy - 20) ** 2 + (xx - 15) ** 2 <= 100) | ((yy - 20) ** 2 + (xx - 29) ** 2 <= 100)
    >>> mask |= (yy - 20) ** 2 + (xx - 60) ** 2 <= 9
    >>> labels = split_touching(mask, h=1.0)
    >>> int(labels.max()), bool(np.array_equal(labels > 0, mask))
    (3, True)
    >>> bool(np.array_equal(labels, split_touching(mask, h=1.0, band_pixels=None)))
    True
    """
    fg = _as_mask(mask)
    wconn = _watershed_connectivity(connectivity)
    if band_pixels is not None and (int(band_pixels) != band_pixels or band_pixels < 1):
        raise ValueError(f"band_pixels must be a positive integer or None, got {band_pixels!r}")
    if method not in ("h_maxima", "peak_local_max"):
        raise ValueError(f"method must be 'h_maxima' or 'peak_local_max', got {method!r}")
    if method == "h_maxima" and not h > 0:
        raise ValueError(f"h must be > 0 px, got {h!r}")
    if not fg.any():
        labels, firsts = np.zeros(fg.shape, dtype=np.int32), np.zeros(0, np.int64)
    elif method == "h_maxima":
        if band_pixels is not None and footprint is None and connectivity == 8 and not fg.all():
            labels, firsts = _split_by_bands(fg, float(h), int(band_pixels))
        else:
            _, markers, labels = _h_maxima_watershed(fg, float(h), footprint, wconn)
            firsts = first_pixels(markers) if return_order else None
            labels = _add_unreached(labels.astype(np.int32, copy=False), fg, connectivity)
    else:
        if int(min_distance) != min_distance or min_distance < 1:
            raise ValueError(f"min_distance must be a positive integer, got {min_distance!r}")
        dist = ndi.distance_transform_edt(fg)
        comps = label_components(fg, connectivity)
        coords = peak_local_max(
            dist, min_distance=int(min_distance), footprint=footprint, labels=comps, exclude_border=False
        )
        peaks = np.zeros(fg.shape, dtype=bool)
        peaks[tuple(coords.T)] = True
        markers = label_components(peaks, 8)
        firsts = first_pixels(markers) if return_order else None
        labels = watershed(-dist, markers, mask=fg, connectivity=wconn).astype(np.int32, copy=False)
        labels = _add_unreached(labels, fg, connectivity)
    if not return_order:
        return labels
    return labels, len(firsts), np.concatenate([firsts, first_pixels(labels, len(firsts))])


def _check_class_ids(interior: int, border: int) -> None:
    for name, v in (("interior", interior), ("border", border)):
        if int(v) != v or not 1 <= v <= 255:
            raise ValueError(f"{name} class id must be an integer in 1..255, got {v!r}")
    if interior == border:
        raise ValueError(f"interior and border class ids must differ, both are {interior}")


def instances_from_three_class(
    class_map: np.ndarray,
    interior: int = 1,
    border: int = 2,
    *,
    connectivity: int = 8,
    keep_seedless: bool = True,
    seed_h: float | None = None,
    return_order: bool = False,
) -> np.ndarray | tuple[np.ndarray, int, np.ndarray]:
    """Objects from an interior / border / background class map (paper 003's post-processing).

    Seeds are the connected components of ``class_map == interior``; a watershed grows them over
    the interior + border pixels, each border pixel joining the seed it is reached from first
    when flooding in order of distance to the nearest interior pixel (so roughly the nearest
    seed, through foreground pixels only). Pixels of any other class are background.

    A predicted border line is often broken where two objects touch, and one pixel of interior
    through the gap joins both interiors into one seed. With ``seed_h`` the interior is split
    first by :func:`split_touching` (h-maxima watershed of its Euclidean distance transform,
    ``h = seed_h``): the gap is a neck of the interior, so the two objects get a seed each
    wherever each interior rises at least ``seed_h`` px of distance above that neck.

    Parameters
    ----------
    class_map : numpy.ndarray
        2-D integer class ids (e.g. ``predict_mask`` of a 3-class model).
    interior, border : int
        Class ids of object interior and object border.
    connectivity : {4, 8}
        Connectivity of the seeds and of the flooding. Use 4 for annotations whose separating
        lines are only 4-connected (diagonal steps), which 8-connected interiors would cross.
    keep_seedless : bool
        A border-only component (no interior, e.g. an object thinner than twice the border
        width) becomes an object of its own; with False it is dropped (background).
    seed_h : float or None
        ``None`` (default): one seed per interior component (paper 003). A number (px, > 0):
        the interior components are cut at necks of dynamic ``>= seed_h`` first
        (:func:`split_touching` with ``h=seed_h``, within the ``connectivity`` components);
        larger values cut fewer, deeper necks. Two interiors of radius ``R`` joined through a
        gap of half-width ``w`` are cut when ``R - w >= seed_h``.
    return_order : bool
        Also return ``n_marked`` (objects grown from an interior seed: labels ``1..n_marked``;
        the seedless components follow) and each object's seed's first pixel (raster index;
        the object's own for the others), as :func:`split_touching` does.

    Returns
    -------
    numpy.ndarray of int32
        Object labels 1..n, 0 = background.

    Examples
    --------
    Two touching discs (radius 12 px) whose border line has a 4-pixel gap where they touch:

    >>> import numpy as np
    >>> yy, xx = np.mgrid[:40, :64]
    >>> left = (yy - 20) ** 2 + (xx - 20) ** 2 <= 144
    >>> right = (yy - 20) ** 2 + (xx - 43) ** 2 <= 144
    >>> cm = three_class_from_instances(left + 2 * (right & ~left), border_width=1)
    >>> cm[18:22, 30:34] = 1                       # the gap: interior joins interior
    >>> int(instances_from_three_class(cm).max()), int(instances_from_three_class(cm, seed_h=2.0).max())
    (1, 2)
    """
    cm = np.asarray(class_map)
    if cm.ndim != 2 or not np.issubdtype(cm.dtype, np.integer):
        raise ValueError(f"class_map must be a 2-D integer array, got shape {cm.shape}, dtype {cm.dtype}")
    _check_class_ids(interior, border)
    if seed_h is not None and not seed_h > 0:
        raise ValueError(f"seed_h must be > 0 px or None, got {seed_h!r}")
    wconn = _watershed_connectivity(connectivity)
    inner = cm == interior
    fg = inner | (cm == border)
    seeds = label_components(inner, connectivity)
    if seed_h is not None and inner.any():
        # cut at necks, never joining what `connectivity` keeps apart: one seed per (component, part)
        parts = split_touching(inner, h=float(seed_h), connectivity=connectivity)
        pair = seeds.astype(np.int64) * (int(parts.max()) + 1) + parts
        _, seeds = np.unique(pair, return_inverse=True)
        seeds = seeds.reshape(cm.shape).astype(np.int32)   # 0 stays 0: background pairs (0, 0) sort first
    if not inner.any():
        labels = np.zeros(cm.shape, dtype=np.int32)
    else:
        elevation = ndi.distance_transform_edt(~inner)
        labels = watershed(elevation, seeds, mask=fg, connectivity=wconn).astype(np.int32, copy=False)
    firsts = first_pixels(seeds) if return_order and inner.any() else np.zeros(0, np.int64)
    if keep_seedless:
        labels = _add_unreached(labels, fg, connectivity)
    if not return_order:
        return labels
    return labels, len(firsts), np.concatenate([firsts, first_pixels(labels, len(firsts))])


def three_class_from_instances(
    labels: np.ndarray, border_width: int = 2, interior: int = 1, border: int = 2
) -> np.ndarray:
    """Interior / border / background class map (uint8) of a label image.

    An object pixel is *border* when some pixel within Chebyshev distance ``border_width`` (a
    ``(2 w + 1)``-square window) carries a different label — background or another object — and
    *interior* otherwise. Found with one maximum and one minimum filter (``mode="nearest"``, so
    the image frame draws no border). ``border_width = 0`` gives no border.
    """
    lab = np.asarray(labels)
    if lab.ndim != 2 or not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"labels must be a 2-D integer array, got shape {lab.shape}, dtype {lab.dtype}")
    if int(border_width) != border_width or border_width < 0:
        raise ValueError(f"border_width must be an integer >= 0 px, got {border_width!r}")
    _check_class_ids(interior, border)
    out = np.zeros(lab.shape, dtype=np.uint8)
    obj = lab != 0
    out[obj] = interior
    if border_width > 0:
        size = 2 * int(border_width) + 1
        mixed = ndi.maximum_filter(lab, size=size, mode="nearest") != ndi.minimum_filter(lab, size=size, mode="nearest")
        out[obj & mixed] = border
    return out


def three_class_from_binary(
    mask: np.ndarray, *, border_width: int = 2, interior: int = 1, border: int = 2, **split_kw
) -> np.ndarray:
    """Three-class map of a binary mask: :func:`split_touching` (keyword arguments ``split_kw``)
    then :func:`three_class_from_instances`."""
    return three_class_from_instances(split_touching(mask, **split_kw), border_width, interior, border)


def separate_objects(
    mask: np.ndarray,
    method: str = "watershed",
    *,
    h: float = 2.0,
    min_distance: int = 5,
    split_method: str = "h_maxima",
    connectivity: int = 8,
    interior: int = 1,
    border: int = 2,
    seed_h: float | None = None,
) -> np.ndarray:
    """Object labels (int32) of a class-id mask, by a method named in the params.

    Parameters
    ----------
    mask : numpy.ndarray
        2-D class ids (or bool); for ``"components"`` and ``"watershed"`` every non-zero class is
        foreground.
    method : {"components", "watershed", "three_class"}
        ``"components"``: :func:`label_components`; ``"watershed"``: :func:`split_touching` with
        ``split_method`` (``"h_maxima"`` with ``h`` or ``"peak_local_max"`` with
        ``min_distance``); ``"three_class"``: :func:`instances_from_three_class` with the class
        ids ``interior`` and ``border`` and ``seed_h``.
    connectivity : {4, 8}
        Passed to the chosen function.
    seed_h : float or None
        ``"three_class"`` only: split the interior seeds at necks (px), see
        :func:`instances_from_three_class`.
    """
    if method == "components":
        return label_components(mask, connectivity)
    if method == "watershed":
        return split_touching(mask, method=split_method, h=h, min_distance=min_distance, connectivity=connectivity)
    if method == "three_class":
        return instances_from_three_class(mask, interior, border, connectivity=connectivity, seed_h=seed_h)
    raise ValueError(f"method must be 'components', 'watershed' or 'three_class', got {method!r}")


def border_classes(class_names: Mapping[Any, str] | None) -> tuple[list[int], list[int]]:
    """``(border ids, other foreground ids)`` from ``{class id: name}`` (ids as int or str).

    A border class is one whose name contains ``"border"`` or ``"boundary"`` (any case); class 0
    is background and never listed.
    """
    if not class_names:
        return [], []
    border, other = [], []
    for key, name in class_names.items():
        cid = int(key)
        if cid == 0:
            continue
        (border if any(w in str(name).lower() for w in BORDER_WORDS) else other).append(cid)
    return sorted(border), sorted(other)
