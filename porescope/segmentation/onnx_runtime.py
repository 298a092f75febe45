"""Run a porescope segmentation network with ONNX Runtime instead of torch eager.

On a CPU, ONNX Runtime runs the default network (smp Unet with a MobileNetV3 encoder) several
times faster than torch eager for the same float32 result up to rounding (about 1e-6 in the
logits): it fuses convolutions with their batch norms and activations and plans memory once.

* :func:`export_onnx` writes a network as an ONNX graph with a dynamic batch, height and width,
  so that one file serves any tile size (smp models still need multiples of 32).
* :class:`OnnxModel` loads such a graph (a file or bytes) into a CPU session with a fixed number
  of intra-op threads and maps a float32 ``N x 1 x h x w`` batch to logits ``N x C x h x w``,
  deterministically run to run.
* :func:`onnx_model_for` exports a live torch network in memory once and caches the session for
  as long as the network's weights do not change; :func:`porescope.segmentation.inference.
  predict_proba` uses it for ``backend="onnxruntime"``.

The legacy TorchScript-based exporter (``torch.onnx.export(dynamo=False)``) is used: it needs no
package besides ``onnx`` and exports every smp architecture the project tests.
"""

from __future__ import annotations

import io
import os
import warnings
import weakref
from pathlib import Path

import numpy as np
import torch

__all__ = ["OPSET", "export_onnx", "OnnxModel", "onnx_model_for"]

#: ONNX opset written by :func:`export_onnx` (supported by onnx 1.23 and onnxruntime 1.31).
OPSET = 17

_INPUT = "image"
_OUTPUT = "logits"


def _model_device(model: torch.nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def export_onnx(model: torch.nn.Module, path: str | os.PathLike | None = None, *, opset: int = OPSET,
                example_size: int = 64) -> Path | bytes:
    """Write a segmentation network as ONNX with dynamic batch, height and width axes.

    Parameters
    ----------
    model : torch.nn.Module
        Maps float32 ``N x 1 x h x w`` to logits ``N x C x h x w``. Exported in eval mode (its
        previous mode is restored) on the device of its parameters.
    path : str, os.PathLike or None
        Where to write the ``.onnx`` file; ``None`` returns the serialised graph as bytes.
    opset : int
        ONNX opset version (default :data:`OPSET`).
    example_size : int
        Side in pixels of the zero example input used for tracing (a multiple of 32 for smp).

    Returns
    -------
    pathlib.Path or bytes
        The path written, or the graph when ``path`` is None.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Conv2d(1, 1, 3, padding=1)
    >>> graph = export_onnx(net)
    >>> OnnxModel(graph, threads=1)(np.zeros((2, 1, 8, 5), np.float32)).shape
    (2, 1, 8, 5)
    """
    example = torch.zeros(1, 1, int(example_size), int(example_size), device=_model_device(model))
    target: io.BytesIO | str = io.BytesIO() if path is None else os.fspath(path)
    axes = {0: "batch", 2: "height", 3: "width"}
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings():
            # the TorchScript exporter is deprecated in favour of dynamo, which needs onnxscript
            warnings.simplefilter("ignore", category=DeprecationWarning)
            warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
            torch.onnx.export(model, (example,), target, dynamo=False, opset_version=int(opset),
                              input_names=[_INPUT], output_names=[_OUTPUT],
                              dynamic_axes={_INPUT: axes, _OUTPUT: axes}, do_constant_folding=True)
    finally:
        model.train(was_training)
    if isinstance(target, io.BytesIO):
        return target.getvalue()
    return Path(target)


class OnnxModel:
    """A segmentation network in an ONNX Runtime CPU session.

    Parameters
    ----------
    source : bytes, str or os.PathLike
        A graph written by :func:`export_onnx` (bytes or a file path).
    threads : int or None
        Intra-op threads of the session; ``None`` takes ``torch.get_num_threads()`` (the thread
        count the stages configure). Inter-op parallelism is off, so a run is deterministic.

    Calling the object with a float32 ``N x 1 x h x w`` array returns float32 logits
    ``N x C x h x w`` (a numpy array).

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Conv2d(1, 2, 1)
    >>> m = OnnxModel(export_onnx(net), threads=1)
    >>> x = np.ones((1, 1, 4, 4), np.float32)
    >>> bool(np.allclose(m(x), net(torch.from_numpy(x)).detach().numpy(), atol=1e-6))
    True
    """

    def __init__(self, source: bytes | str | os.PathLike, *, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.threads = int(threads) if threads else max(1, torch.get_num_threads())
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.use_deterministic_compute = True
        # threads that busy-wait between kernels steal the CPU from the rest of the process
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        data = source if isinstance(source, bytes) else os.fspath(source)
        self.session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1] != 1:
            raise ValueError(f"OnnxModel: input must be float32 N x 1 x h x w, got shape {batch.shape}")
        return self.session.run(None, {self.input_name: batch})[0]


_CACHE: weakref.WeakKeyDictionary[torch.nn.Module, tuple[tuple, OnnxModel]] = weakref.WeakKeyDictionary()


def _weights_version(model: torch.nn.Module) -> tuple:
    # a tensor's _version grows with every in-place change (optimiser steps, load_state_dict)
    return tuple((t.data_ptr(), t._version) for t in (*model.parameters(), *model.buffers()))


def onnx_model_for(model: torch.nn.Module | OnnxModel, threads: int | None = None) -> OnnxModel:
    """An :class:`OnnxModel` of a torch network, exported in memory and cached per network.

    The export (about a second for the default network) is redone only when the network's
    weights or buffers have changed in place since the last call, or ``threads`` differs. An
    :class:`OnnxModel` is returned as it is.
    """
    if isinstance(model, OnnxModel):
        return model
    want = int(threads) if threads else max(1, torch.get_num_threads())
    key = _weights_version(model)
    hit = _CACHE.get(model)
    if hit is not None and hit[0] == key and hit[1].threads == want:
        return hit[1]
    onnx_model = OnnxModel(export_onnx(model), threads=want)
    _CACHE[model] = (_weights_version(model), onnx_model)
    return onnx_model
