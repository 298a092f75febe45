"""Settings of a measurement run: the ``measure`` params group as a frozen dataclass."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from porescope.analysis.params import AnalysisParams
from porescope.config import Fail, ParamsError, parse_group, to_mapping
from porescope.io.micrograph import NormalisationParams
from porescope.measure.quality import QualityLimits
from porescope.measure.scale_auto import ScaleAutoParams
from porescope.measure.specimens import SpecimenParams

DEFAULT_SEED = 42


@dataclass(frozen=True)
class MeasureParams:
    """How to measure micrographs with a trained model (plain values: picklable).

    Fields are the keys of the ``measure`` params group, defaults = ``params.yaml``:
    enabled: false = the pipeline stage writes a "skipped" record instead of measuring.
    source: folder of micrographs (used by the pipeline stage only).
    pixel_size_nm: nm per pixel for every image, or None (TIFF metadata, else the scale bar).
    scale_bar: read the pixel size from the burned-in scale bar (OCR) when it is neither given
    nor in the file's metadata; the summary's ``pixel_size_source`` says ``scale_bar:<label>``.
    crop_bottom: rows of an SEM data bar to drop, or ``"auto"``.
    margin_px: pixels ignored at every edge (a frame drawn around an exported image).
    resample_to_model: resize to the model's training pixel size when both are known.
    scale: explicit resize factor before inference (overrides resample_to_model), or None, or
    ``"auto"``: estimated from the image's pore size (:mod:`porescope.measure.scale_auto`).
    scale_auto: settings of ``scale: auto`` (:class:`~porescope.measure.scale_auto.ScaleAutoParams`).
    tile, overlap, batch_size, tta, device, backend, threads: inference
    (:func:`porescope.segmentation.inference.predict_proba`).
    normalisation: for >8-bit images (:class:`~porescope.io.micrograph.NormalisationParams`).
    max_pixels: largest image that is read (checked from the file header, before decoding)
    and that inference may be run on (after resizing); larger files are not measured.
    band_pixels: a bigger image is analysed in bands of about this many pixels (whole regions
    each; the same numbers, without image-sized label images), its overlay drawn per band.
    figures: write the distribution figures (histograms, violins, KDE, correlation, Ripley).
    strict: stop at the first file that cannot be measured (before measuring anything);
    false = measure the good files, list the others as not measured, and end "partial".
    allow_partial: the pipeline stage succeeds (exit 0) after a partial run; false = it fails
    (exit 2) after writing the outputs, so that ``dvc repro`` does not record a run with
    micrographs silently missing. ``porescope measure`` always exits 3 after a partial run.

    min_region_contrast: drop predicted regions that are not darker than the surface around
    them: contrast ``(ring median - region mean) / ring median`` below this
    (:mod:`porescope.measure.pale_regions`: strips along bright frames, surface grain);
    None = keep every region. 0.2 was chosen on synthetic membranes with artefacts
    (``bench/pale_regions_synthetic.py``: it drops as many false regions as 0.3 and the
    fewest true pores).

    quality: the out-of-distribution guard's limits (:class:`~porescope.measure.quality.QualityLimits`);
    an image with any flag is "not certified".
    specimens: how images are grouped into specimens for the certificate
    (:class:`~porescope.measure.specimens.SpecimenParams`; ``rule: none`` = no specimens).
    reference: a CSV of manual counts / porosity per image (:mod:`porescope.measure.reference`);
    the run then reports each estimator's error against it. validation: the ``validate``
    stage's per-image error table, for the specimens' systematic error budget (None: none).

    Not in the group: analysis (the ``analyze`` group) and seed (the shared seed).
    """

    enabled: bool = True
    source: str = "data/measure"
    pixel_size_nm: float | None = field(default=None, metadata={"gt": 0})
    scale_bar: bool = True
    crop_bottom: int | Literal["auto"] = 0
    margin_px: int = field(default=0, metadata={"ge": 0, "le": 100_000})
    resample_to_model: bool = True
    scale: float | Literal["auto"] | None = field(default=None, metadata={"ge": 0.05, "le": 20})
    scale_auto: ScaleAutoParams = field(default_factory=ScaleAutoParams)
    tile: int = field(default=256, metadata={"ge": 32, "le": 8192})
    overlap: int = field(default=64, metadata={"ge": 0, "le": 4096})
    batch_size: int = field(default=4, metadata={"ge": 1, "le": 4096})
    tta: bool = False
    device: str = "auto"
    backend: Literal["auto", "torch", "onnxruntime"] = "auto"
    threads: int = field(default=0, metadata={"ge": 0, "le": 256})
    normalisation: NormalisationParams = field(default_factory=NormalisationParams)
    max_pixels: int = field(default=64_000_000, metadata={"ge": 1, "le": 10 ** 10})
    band_pixels: int = field(default=2_000_000, metadata={"ge": 10_000, "le": 10 ** 10})
    figures: bool = True
    strict: bool = False
    allow_partial: bool = False
    min_region_contrast: float | None = field(default=0.2, metadata={"ge": 0, "lt": 1})
    quality: QualityLimits = field(default_factory=QualityLimits)
    specimens: SpecimenParams = field(default_factory=SpecimenParams)
    reference: str | None = None
    validation: str | None = None
    analysis: AnalysisParams = field(default_factory=AnalysisParams)
    seed: int = DEFAULT_SEED

    def check(self, fail: Fail) -> None:
        if isinstance(self.crop_bottom, int) and self.crop_bottom < 0:
            raise fail("crop_bottom", "must be an integer >= 0 or 'auto'")
        if 2 * self.overlap > self.tile:
            raise fail("overlap", "must be at most tile / 2")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise fail("device", "must be auto, cpu, cuda or cuda:<n>")

    def settings_dict(self) -> dict[str, Any]:
        """What a run records in ``run.json``: the per-image settings (not source / enabled)."""
        n = self.normalisation
        return {"pixel_size_nm": self.pixel_size_nm, "scale_bar": self.scale_bar,
                "crop_bottom": self.crop_bottom,
                "margin_px": self.margin_px, "resample_to_model": self.resample_to_model,
                "scale": self.scale, "tile": self.tile, "overlap": self.overlap,
                "batch_size": self.batch_size, "tta": self.tta, "device": self.device,
                "backend": self.backend,
                "threads": self.threads, "normalisation": [n.method, n.low, n.high],
                "max_pixels": self.max_pixels, "figures": self.figures,
                "quality": to_mapping(self.quality), "specimens": to_mapping(self.specimens),
                "reference": self.reference, "validation": self.validation,
                "analysis": self.analysis.to_dict(), "seed": self.seed,
                # only then: the run.json of a run without auto is unchanged
                **({"scale_auto": to_mapping(self.scale_auto)} if self.scale == "auto" else {}),
                **({"min_region_contrast": self.min_region_contrast}
                   if self.min_region_contrast is not None else {})}


def parse_measure_params(raw: Mapping[str, Any] | None, analysis: AnalysisParams | None = None,
                         *, source: str = "params.yaml") -> MeasureParams:
    """:class:`MeasureParams` from the ``measure`` params group (with the shared ``seed`` that
    :func:`porescope.config.load_params` adds) and the ``analyze`` settings.

    Examples
    --------
    >>> parse_measure_params({"tile": 128, "overlap": 32, "seed": 7}).tile
    128
    >>> parse_measure_params({"overlap": 200})
    Traceback (most recent call last):
    ...
    porescope.config.ParamsError: params.yaml: measure.overlap: must be at most tile / 2 (got 200)
    """
    raw = dict(raw or {})
    if "analysis" in raw:   # a field, but set from the analyze group, never from measure
        raise ParamsError(f"{source}: measure.analysis: unknown parameter (the analysis settings "
                          "are the 'analyze' group)")
    params = parse_group(MeasureParams, raw, group="measure", source=source, extra=())
    if analysis is not None:
        params = dataclasses.replace(params, analysis=analysis)
    return params

