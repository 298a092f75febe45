"""Segmentation models: build any smp architecture, save and load porescope checkpoints.

A porescope model file is a ``torch.save`` of a plain dict (loadable with
``torch.load(..., weights_only=True)``)::

    {"format": "porescope-model/1", "config": {arch, encoder, classes, ...},
     "class_names": {"0": "background", ...}, "state_dict": {...}, "meta": {...}}

``config`` is everything :func:`build_model` needs, so a model file is self-describing and
``evaluate`` / ``measure`` never need the training params to rebuild the network.
Inputs are 1-channel float images in [0, 1] (:func:`porescope.segmentation.inference.normalise`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from porescope.segmentation.torch_compat import import_smp
from porescope.errors import PorescopeError

MODEL_FORMAT = "porescope-model/1"

#: Architectures the project tests; any other smp architecture name also works.
TESTED_ARCHITECTURES = ("Unet", "UnetPlusPlus", "FPN", "DeepLabV3Plus", "MAnet", "Linknet")


class ModelFileError(PorescopeError, ValueError):
    """A model or weights file cannot be used; the message names the file."""


def model_config(arch: str, encoder: str, classes: int, *, encoder_depth: int = 5,
                 decoder_channels: list[int] | None = None, full_res_channels: int = 0) -> dict[str, Any]:
    """The JSON-able dict that :func:`build_model` rebuilds a network from.

    ``full_res_channels`` > 0 adds a :class:`FullResolutionSkip` of that many channels; 0 (the
    default) leaves the key out, so configs of plain smp models are unchanged.
    """
    config: dict[str, Any] = {"arch": str(arch), "encoder": str(encoder), "classes": int(classes),
                              "in_channels": 1, "encoder_depth": int(encoder_depth)}
    if decoder_channels:
        config["decoder_channels"] = [int(c) for c in decoder_channels]
    if full_res_channels:
        config["full_res_channels"] = int(full_res_channels)
    return config


def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class FullResolutionSkip(nn.Module):
    """An smp encoder-decoder with a skip connection at the input resolution.

    smp's U-Net decoders drop the encoder's full-resolution feature map (for ResNet and
    MobileNet encoders it is the input itself): their last block upsamples half-resolution
    features with no pixel-level input. Structures a few pixels wide (EM membranes, pore
    edges) then have their edges placed from half-resolution features. This module adds what
    the original U-Net's first level has: two 3 x 3 convolutions on the input at full
    resolution (``channels`` each), concatenated with the decoder output and fused by one more
    3 x 3 convolution before the segmentation head.

    The encoder, decoder and head keep smp's parameter names (``encoder.*``, ``decoder.*``,
    ``segmentation_head.*``), so encoder weights and ``train.init_from`` of a plain smp model
    load into it; only ``full_res.*`` starts from random init.

    Parameters
    ----------
    base : segmentation_models_pytorch.base.SegmentationModel
        A built smp model (``encoder``, ``decoder``, ``segmentation_head``).
    in_channels : int
        Input channels (1 for porescope's grey images).
    channels : int
        Channels of the full-resolution convolutions, >= 1.

    Examples
    --------
    >>> import torch
    >>> net = build_model(model_config("Unet", "resnet18", 1, encoder_depth=3,
    ...                                decoder_channels=[32, 16, 8], full_res_channels=8))
    >>> type(net).__name__, tuple(net(torch.zeros(1, 1, 64, 64)).shape)
    ('FullResolutionSkip', (1, 1, 64, 64))
    """

    def __init__(self, base: nn.Module, in_channels: int, channels: int) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        if not isinstance(base.segmentation_head[1], nn.Identity):
            # FPN, DeepLabV3(+), PAN decode at 1/4 or 1/8 and upsample in the head
            raise ValueError(f"full_res_channels needs a decoder whose output has the input's resolution "
                             f"(Unet, UnetPlusPlus, MAnet, Linknet); {type(base).__name__} upsamples in its head")
        self.encoder, self.decoder = base.encoder, base.decoder
        self.segmentation_head = base.segmentation_head
        decoded = self.segmentation_head[0].in_channels  # the decoder's last width
        self.full_res = nn.ModuleDict({
            "stem": nn.Sequential(_conv_bn_relu(in_channels, channels), _conv_bn_relu(channels, channels)),
            "fuse": _conv_bn_relu(decoded + channels, decoded)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        decoded = self.decoder(self.encoder(x))
        fused = self.full_res["fuse"](torch.cat([decoded, self.full_res["stem"](x)], dim=1))
        return self.segmentation_head(fused)


def build_model(config: Mapping[str, Any]) -> nn.Module:
    """Build a randomly initialised smp model (never downloads weights).

    ``config`` as from :func:`model_config`. ``classes`` = 1 means a binary model (one logit
    per pixel); > 1 a multi-class model (softmax over ``classes`` logits).
    """
    smp = import_smp()
    kwargs: dict[str, Any] = {}
    if "decoder_channels" in config:
        kwargs["decoder_channels"] = list(config["decoder_channels"])
    if config.get("encoder_depth", 5) != 5:
        kwargs["encoder_depth"] = int(config["encoder_depth"])
        if "decoder_channels" not in kwargs and config["arch"] in ("Unet", "UnetPlusPlus", "MAnet"):
            kwargs["decoder_channels"] = [256, 128, 64, 32, 16][: kwargs["encoder_depth"]]
    in_channels = int(config.get("in_channels", 1))
    try:
        model = smp.create_model(config["arch"], encoder_name=config["encoder"], encoder_weights=None,
                                 in_channels=in_channels, classes=int(config["classes"]), **kwargs)
        if config.get("full_res_channels"):
            model = FullResolutionSkip(model, in_channels, int(config["full_res_channels"]))
        return model
    except (KeyError, ValueError, TypeError, RuntimeError, AttributeError) as exc:
        raise ValueError(f"cannot build smp model {dict(config)}: {exc}") from exc


def _load_state(path: str | os.PathLike, what: str = "porescope model file",
                hint: str = "give the models/model.pt a porescope training wrote") -> Any:
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for corrupt files
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        # torch's own advice (weights_only=False) would run code from an untrusted file
        why = ("it holds something other than plain tensors, or is no torch file" if
               "weights_only" in text or "Weights only" in text else
               "empty or truncated" if isinstance(exc, EOFError) or path.stat().st_size == 0 else
               f"{type(exc).__name__}: {text}" if text else type(exc).__name__)
        if path.suffix.lower() == ".onnx":
            hint = "an ONNX export: give the .pt file next to it"
        raise ModelFileError(f"{path}: not a {what} ({why}); {hint}") from None


def load_encoder_weights(model: nn.Module, path: str | os.PathLike) -> list[str]:
    """Load a local encoder state dict (e.g. ImageNet weights fetched on another machine).

    Accepts a bare state dict or one under ``"state_dict"``; keys may carry an ``encoder.``
    prefix. A 3-channel first convolution is summed over its input channels to fit the
    1-channel model (the usual grey-image adaptation). Returns the encoder keys left unset.
    """
    state = _load_state(path, "torch state dict of encoder weights",
                        "give a state dict saved with torch.save(encoder.state_dict(), path)")
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise ModelFileError(f"{path}: expected a state dict of tensors")
    encoder = model.encoder  # type: ignore[attr-defined]
    target = encoder.state_dict()
    adapted = {}
    for key, value in state.items():
        key = key.removeprefix("encoder.")
        if key not in target:
            continue
        if value.ndim == 4 and target[key].ndim == 4 and value.shape[1] == 3 and target[key].shape[1] == 1:
            value = value.sum(dim=1, keepdim=True)
        if value.shape != target[key].shape:
            raise ModelFileError(f"{path}: '{key}' has shape {tuple(value.shape)}, "
                                 f"the encoder expects {tuple(target[key].shape)}")
        adapted[key] = value
    if not adapted:
        raise ModelFileError(f"{path}: no key matches the encoder '{type(encoder).__name__}'")
    missing = sorted(set(target) - set(adapted))
    encoder.load_state_dict(adapted, strict=False)
    return missing


def init_from_model(model: nn.Module, path: str | os.PathLike) -> dict[str, list[str]]:
    """Transfer weights from a previous porescope model file (pre-training, paper 003).

    Every tensor whose name and shape match is copied; the rest (typically the segmentation
    head when the number of classes differs) keeps its random init. Returns the copied and
    skipped keys.
    """
    checkpoint = read_model_file(path)
    target = model.state_dict()
    copied, skipped = [], []
    for key, value in checkpoint["state_dict"].items():
        if key in target and target[key].shape == value.shape:
            target[key] = value
            copied.append(key)
        else:
            skipped.append(key)
    if not copied:
        raise ModelFileError(f"{path}: no weights match this architecture/encoder")
    model.load_state_dict(target)
    return {"copied": copied, "skipped": skipped}


def save_model_file(path: str | os.PathLike, model_or_state: nn.Module | Mapping[str, torch.Tensor],
                    config: Mapping[str, Any], class_names: Mapping[str, str],
                    meta: Mapping[str, Any] | None = None) -> Path:
    """Write a porescope model file atomically (tensors cloned to CPU, contiguous)."""
    import io

    from porescope.io.atomic import write_bytes

    state = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    payload = {
        "format": MODEL_FORMAT,
        "config": dict(config),
        "class_names": {str(k): str(v) for k, v in class_names.items()},
        "state_dict": {k: v.detach().to("cpu").clone().contiguous() for k, v in state.items()},
        "meta": dict(meta or {}),
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    return write_bytes(path, buf.getvalue())


def _model_error(path: str | os.PathLike, what: str) -> ModelFileError:
    return ModelFileError(f"{path}: {what} (not a usable porescope model file)")


def check_threshold(value: Any, source: str | os.PathLike = "model file") -> float:
    """A stored decision threshold as a float strictly between 0 and 1; else :class:`ModelFileError`.

    Examples
    --------
    >>> check_threshold(0.31)
    0.31
    >>> check_threshold("high", "model.pt")
    Traceback (most recent call last):
    ...
    porescope.segmentation.models.ModelFileError: model.pt: meta.threshold must be a number between 0 and 1, got 'high' (not a usable porescope model file)
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise _model_error(source, f"meta.threshold must be a number between 0 and 1, got {value!r}")
    return float(value)


def _check_payload(payload: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Raise :class:`ModelFileError` naming ``path`` and the first structural problem found."""
    config = payload.get("config")
    if not isinstance(config, Mapping):
        raise _model_error(path, "missing 'config' (architecture, encoder, classes)")
    for key in ("arch", "encoder"):
        if not isinstance(config.get(key), str) or not config[key]:
            raise _model_error(path, f"config.{key} is missing or not a name, got {config.get(key)!r}")
    for key in ("encoder_depth", "in_channels", "full_res_channels"):
        if key in config and (isinstance(config[key], bool) or not isinstance(config[key], int)):
            raise _model_error(path, f"config.{key} must be an integer, got {config[key]!r}")
    channels = config.get("decoder_channels", [])
    if not isinstance(channels, (list, tuple)) or not all(isinstance(c, int) for c in channels):
        raise _model_error(path, f"config.decoder_channels must be a list of integers, got {channels!r}")
    classes = config.get("classes")
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise _model_error(path, f"config.classes must be a positive integer, got {classes!r}")
    state = payload.get("state_dict")
    if not isinstance(state, Mapping) or not state:
        raise _model_error(path, "missing 'state_dict' (the network weights)")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise _model_error(path, f"state_dict entry {bad[0]!r} is not a tensor")
    names = payload.get("class_names")
    if not isinstance(names, Mapping):
        raise _model_error(path, "missing 'class_names' ({class id: name})")
    # a binary model has one output channel and two classes (background + foreground)
    expected = [str(k) for k in range(max(classes, 2))]
    if sorted(map(str, names), key=lambda k: (len(k), k)) != expected:
        raise _model_error(path, f"class_names has ids {sorted(map(str, names))}, but config.classes = "
                                 f"{classes} needs ids {expected}")
    meta = payload.get("meta") or {}
    if not isinstance(meta, Mapping):
        raise _model_error(path, f"'meta' must be a mapping, got {type(meta).__name__}")
    if "threshold" in meta:
        check_threshold(meta["threshold"], path)


def read_model_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a porescope model file (``weights_only=True``).

    Raises :class:`ModelFileError` naming the file and what is missing or wrong: not a torch
    file, not a porescope model, missing ``config`` / ``state_dict`` / ``class_names``, a class
    count that does not match ``config.classes``, a threshold that is not a number in (0, 1).
    """
    payload = _load_state(path)
    if not isinstance(payload, Mapping) or payload.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{path}: not a porescope model file (expected format {MODEL_FORMAT})")
    _check_payload(payload, path)
    return dict(payload)


@dataclass(frozen=True)
class LoadedModel:
    """A network rebuilt from a model file, with what the file says about it.

    Unpacks as ``model, payload = load_model(...)`` (the form callers used before it had fields).
    """

    model: nn.Module
    payload: dict[str, Any]
    device: torch.device
    path: Path

    @property
    def config(self) -> dict[str, Any]:
        """What :func:`build_model` rebuilt the network from."""
        return dict(self.payload["config"])

    @property
    def class_names(self) -> dict[str, str]:
        """``{"0": "background", ...}`` (string class ids)."""
        return {str(k): str(v) for k, v in self.payload["class_names"].items()}

    @property
    def threshold(self) -> float:
        """The binary decision threshold stored with the model (area-calibrated), else 0.5."""
        return decision_threshold(self.payload, self.path)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.model, self.payload))


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu", *,
               threads: int | None = None) -> LoadedModel:
    """Rebuild the network stored in a porescope model file, in eval mode on ``device``.

    Parameters
    ----------
    path : path of a model file written by :func:`save_model_file`.
    device : a torch device or its name; ``"auto"`` = CUDA when available, else CPU.
    threads : CPU threads for torch and OpenCV (``0`` = one per core, at most 8); ``None`` leaves
        them as they are.

    Returns
    -------
    LoadedModel
        ``.model``, ``.payload`` (the file's dict), ``.config``, ``.class_names``, ``.threshold``,
        ``.device``; unpacks as ``model, payload``.

    Raises
    ------
    ModelFileError
        The file is missing, not a torch file or not a porescope model, lacks ``config`` or
        weights, names an architecture or encoder that cannot be built, has weights that do not
        fit its config, or a bad threshold / class count (message names the file).
    """
    from porescope.segmentation.devices import configure_cpu_threads, select_device

    device = select_device(device) if isinstance(device, str) else torch.device(device)
    if threads is not None:
        configure_cpu_threads(int(threads))
    payload = read_model_file(path)
    try:
        model = build_model(payload["config"])
    except ValueError as exc:
        raise _model_error(path, f"config cannot be built: {exc}") from None
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise ModelFileError(f"{path}: weights do not fit {payload['config']}: {exc}") from None
    return LoadedModel(model.to(device).eval(), payload, device, Path(path))


def decision_threshold(payload: Mapping[str, Any], source: str | os.PathLike = "model file") -> float:
    """The binary decision threshold stored with a model (area-calibrated in training), else 0.5."""
    meta = payload.get("meta") or {}
    return check_threshold(meta["threshold"], source) if "threshold" in meta else 0.5
