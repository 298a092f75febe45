"""Smooth random fields for the synthetic micrographs: filtered noise and a fast Gaussian blur.

Examples
--------
>>> import numpy as np
>>> n = filtered_noise(np.random.default_rng(0), (64, 48), 2.0)
>>> n.shape, n.dtype, round(float(n.std()), 3)
((64, 48), dtype('float32'), 1.0)
>>> smooth(n, 12.0).shape
(64, 48)
"""

from __future__ import annotations

import cv2
import numpy as np


def filtered_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise normalised to unit standard deviation (float32).

    ``sigma`` is the filter's standard deviation in px. For ``sigma >= 4`` px the noise is made
    at a lower resolution and resized up (cheaper, same look)."""
    f = max(1, int(sigma // 2))
    small = (-(-shape[0] // f), -(-shape[1] // f))
    n = rng.standard_normal(small, dtype=np.float32)
    n = cv2.GaussianBlur(n, (0, 0), sigma / f, borderType=cv2.BORDER_REFLECT)
    if f > 1:
        n = cv2.resize(n, (small[1] * f, small[0] * f), interpolation=cv2.INTER_CUBIC)[:shape[0], :shape[1]]
    sd = float(n.std())
    return n / sd if sd > 0 else n


def smooth(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a float32 image (sigma px, reflecting border); large sigmas are done at
    a reduced resolution."""
    f = max(1, int(sigma // 4))
    if f == 1:
        return cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    h, w = img.shape
    small = cv2.resize(img, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / f, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
