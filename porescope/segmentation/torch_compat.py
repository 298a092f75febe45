"""Import torch, torchvision and segmentation-models-pytorch safely on a CPU-only machine.

torchvision 0.28.0 on PyPI is a CUDA build; with the CPU wheel of torch 2.13.0 its import
fails with ``operator torchvision::nms does not exist`` because the compiled operators that
register ``torchvision::nms``/``qnms`` are absent, and smp/timm import torchvision. Declaring
the two operator schemas before that first import lets torchvision's Python-side registrations
succeed (the ops themselves are never called by segmentation models). Done only when torch has
no CUDA and the ops are missing, so a matched CUDA install is left untouched.
"""

from __future__ import annotations

import os
from types import ModuleType

_LIBRARY = None  # keep the torch.library handle alive for the life of the process


def _ensure_torchvision_ops() -> None:
    global _LIBRARY
    import torch

    if torch.version.cuda is not None or _LIBRARY is not None:
        return
    try:
        torch._C._dispatch_find_schema_or_throw("torchvision::nms", "")
        return  # registered already (a build that matches torch)
    except RuntimeError:
        pass
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIBRARY = lib


def import_smp() -> ModuleType:
    """Return the ``segmentation_models_pytorch`` module, importable offline on CPU.

    Also sets ``HF_HUB_OFFLINE=1`` (unless the user set it) so that a request for hub weights
    fails at once instead of after tens of seconds of network timeouts.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _ensure_torchvision_ops()
    import segmentation_models_pytorch as smp

    return smp
