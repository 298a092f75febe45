"""Choosing the compute device and CPU thread count (shared by training and inference)."""

from __future__ import annotations

import os

import torch


def select_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; otherwise the named device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def configure_cpu_threads(threads: int = 0) -> int:
    """Set torch's and OpenCV's thread counts (``0`` = one per available core, at most 8).

    Results on CPU are deterministic for a fixed thread count; the count is recorded with every
    model so a rerun knows whether to expect identical bytes. OpenCV keeps its own thread pool
    (it ignores ``OMP_NUM_THREADS``): left at all cores, two worker processes each running
    OpenCV and torch on a 2-core machine oversubscribe it and run no faster than one.
    """
    import cv2

    if threads <= 0:
        available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        threads = max(1, min(8, available))
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    return threads
