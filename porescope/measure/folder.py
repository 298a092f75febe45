"""Measuring a folder of micrographs and writing the outputs of a run.

:func:`run_measure` runs the model on every micrograph in a folder (:func:`list_images`: the
folder is ``<source>/images/`` when it exists, else ``<source>`` itself; junk files
(``Thumbs.db``, dot-files, ...) and documentation files (``README.md``, ``*.txt``) are skipped,
sub-folders ignored) and measures each one (:func:`porescope.measure.measurement.measure_one`).

Outputs under ``out`` (the folder is built under a temporary name and swapped in whole):
``masks/<id>.png`` (class ids, full image size, 0 in cropped rows and the margin),
``overlays/<id>.png`` (pore outlines in red), ``objects.csv`` (ImageJ columns, ``image_id``),
``summary.csv`` (one row per image: porosity, the three counts, densities, sizes, spatial
verdicts, pixel size and its source, crop, margin, scale), ``figures/*.png`` (unless
``figures`` is false), ``report.md``, ``report.html``, ``run.json`` (settings and model).
``metrics`` gets a small JSON of the per-image headline numbers. An input folder without
images gives empty tables and a log line, not an error (the model file is still checked).
:func:`write_skipped` writes what a run that was switched off leaves instead. Both write the
marker file :data:`MARKER` (tool and version), and only a folder holding it is ever replaced.

Bad inputs (:func:`scan_inputs`): every file is checked up front from its first bytes and
header (format, size against ``measure.max_pixels``) before the model is loaded. Empty,
unreadable, unsupported or too large files, a second file with the same stem, and symlinks
that point outside the input folder (skipped: a link must not make porescope read files the
input folder does not hold) are *not measured*; so is a file that fails while it is measured
(e.g. truncated data after a good header). All other files are measured and written; the
ones left out are listed (file and one-line reason) in ``run.json`` (``not_measured``, only
when there are any) and in the report, and :func:`run_measure` then raises
:class:`PartialMeasureError` after writing everything. ``measure.strict`` (``--strict``) stops
at the first bad file instead, before anything is measured or written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from porescope.analysis import figures as afig
from porescope.analysis import membrane as ma
from porescope.errors import PorescopeError
from porescope.io.atomic import (
    encode_png,
    encode_png_palette,
    output_dir,
    write_bytes,
    write_csv,
    write_json,
    write_text,
)
from porescope.io.images import image_size
from porescope.io.pairing import IngestError, list_data_files
from porescope.measure.measurement import MeasureResult, measure_one
from porescope.measure.params import MeasureParams
from porescope.measure.segment import load_model_cached
from porescope.segmentation.models import ModelFileError
from porescope.parallel.cluster import map_ordered
from porescope.report.document import Block
from porescope.report.output import Report
from porescope.report.sections_measure import measure_report

LOG = logging.getLogger("porescope.measure")
#: file suffixes of documentation that may sit beside the images (skipped, not read)
DOC_SUFFIXES = frozenset({".md", ".txt", ".rst", ".csv", ".json", ".yaml", ".yml", ".html", ".pdf"})
#: marker file inside every folder ``measure`` writes; ``--overwrite`` replaces only such folders
MARKER = ".porescope-output"


class PartialMeasureError(PorescopeError):
    """A run that measured the good files and wrote its outputs, but left some files out.

    ``summary`` is the per-image table of what was measured, ``not_measured`` the
    ``(file, reason)`` pairs of what was not, ``out`` the output folder (written).
    """

    def __init__(self, out: Path, summary: pd.DataFrame, not_measured: list[tuple[str, str]]):
        self.out, self.summary, self.not_measured = out, summary, not_measured
        first = f"{not_measured[0][0]}: {not_measured[0][1]}"
        more = f" (and {len(not_measured) - 1} more)" if len(not_measured) > 1 else ""
        super().__init__(f"{out}: partial run: {len(summary)} image(s) measured, "
                         f"{len(not_measured)} not measured (listed in run.json and the report): "
                         f"{first}{more}")


def _image_folder(source: Path) -> Path:
    if not source.is_dir():
        raise IngestError(source, "input folder not found (or not a folder); give a folder of "
                                  "micrographs")
    return source / "images" if (source / "images").is_dir() else source


def _outside(entry: Path, folder: Path) -> bool:
    """Whether ``entry`` is a symlink whose target lies outside ``folder``."""
    if not entry.is_symlink():
        return False
    target, root = entry.resolve(), folder.resolve()
    return target.parent != root and root not in target.parents


def scan_inputs(source: str | os.PathLike, max_pixels: int | None = None, *,
                subfolders: bool = False) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files to measure in ``source`` (or ``source/images``), sorted, and the files that
    will not be measured, as ``(file, one-line reason)``. With ``subfolders``, the images of
    its immediate sub-folders too (one specimen per sub-folder; stems must stay unique).

    Junk and documentation files are skipped silently (logged). Not measured: empty or
    unreadable files, a second file with the same stem (outputs are named by stem), symlinks
    pointing outside the folder, and files whose first bytes or header show an unsupported
    format, a damaged header or more than ``max_pixels`` pixels
    (:func:`porescope.io.images.image_size`; nothing is decoded). Raises ``IngestError`` only
    for a missing input folder.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.png").write_bytes(b"not an image")
    >>> _ = (d / "notes.txt").write_text("documentation")
    >>> files, bad = scan_inputs(d)
    >>> files, [(pathlib.Path(f).name, why.split(":")[0]) for f, why in bad]
    ([], [('a.png', 'is not a supported image')])
    """
    folder = _image_folder(Path(source))
    files, problems = list_data_files(folder, what="a micrograph", warn_subfolders=not subfolders)
    if subfolders:
        for sub in sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")):
            more, bad = list_data_files(sub, what="a micrograph")
            files, problems = files + more, problems + bad
    keep, stems = [], {}
    for f in files:
        if f.suffix.lower() in DOC_SUFFIXES:
            LOG.info("%s: skipped (documentation, not a micrograph)", f)
            continue
        if _outside(f, folder):
            problems.append((str(f), f"is a symbolic link to {f.resolve()}, outside {folder}; "
                                     "copy the file into the input folder to measure it"))
            continue
        # outputs are named by stem; stems differing only in case collide on macOS / Windows
        key = f.stem.casefold()
        if key in stems:
            other = stems[key].relative_to(folder).as_posix()
            problems.append((str(f), f"has the same stem '{f.stem}' as {other} (letter case "
                                      "aside); outputs are named by stem, so rename one of them"))
            continue
        try:
            image_size(f, "first", max_pixels=max_pixels)
        except IngestError as exc:
            problems.append((str(f), exc.detail))
            continue
        stems[key] = f
        keep.append(f)
    problems.sort()
    for f, why in problems:
        LOG.warning("%s: not measured: %s", f, why)
    return keep, problems


def list_images(source: str | os.PathLike, max_pixels: int | None = None) -> list[Path]:
    """Image files to measure in ``source`` (or ``source/images``), sorted; junk and documentation
    files skipped. Raises ``IngestError`` naming every file that cannot be measured
    (:func:`scan_inputs`) - the strict form."""
    files, problems = scan_inputs(source, max_pixels)
    if problems:
        raise IngestError.from_problems(problems)
    return files


def _empty_tables(params: MeasureParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Header-only objects / summary tables (the columns a real image would give)."""
    probe = ma.analyse_mask(np.zeros((8, 8), np.uint8), pixel_size_nm=None,
                            params=params.analysis, rng=np.random.default_rng(0),
                            image_id="", spatial=False)
    info_cols = ["image_file", "format", "orig_height", "orig_width", "crop_bottom",
                 "pixel_size_source", "model_pixel_size_nm", "scale", "scale_source",
                 "normalisation", "warnings"]
    return (probe.objects.iloc[:0],
            pd.DataFrame(columns=list(probe.summary) + info_cols))


def summary_table(results: Iterable[MeasureResult]) -> pd.DataFrame:
    """One row per image: the analysis summary and the image info."""
    return pd.DataFrame([r.summary for r in results])


def render_report(summary: pd.DataFrame, run_info: Mapping[str, Any],
                  figures: Mapping[str, bytes], extra_blocks: Sequence[Block] = ()) -> Report:
    """The report of a measurement run: Markdown (figures linked as ``figures/<name>``) and one
    self-contained HTML page (:func:`porescope.report.sections_measure.measure_report`)."""
    return measure_report(summary, run_info, figures, extra_blocks=extra_blocks)


@dataclasses.dataclass(frozen=True)
class CertificateExtras:
    """What a run adds beyond the per-image tables: report ``blocks``, output ``tables``
    (``{file name: DataFrame}``) and ``metrics`` keys."""

    blocks: tuple[Block, ...] = ()
    tables: Mapping[str, pd.DataFrame] = dataclasses.field(default_factory=dict)
    metrics: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def certificate_extras(summary: pd.DataFrame, objects: pd.DataFrame, params: MeasureParams,
                       source: Path, paths: Mapping[str, str] | None = None) -> CertificateExtras:
    """Specimen figures with intervals (``params.specimens``), the systematic error budget
    (``params.validation``) and the comparison with a manual reference (``params.reference``).
    ``paths``: image id -> file path relative to the input folder (sub-folders = specimens)."""
    from porescope.analysis.error_budget import read_validation_table
    from porescope.measure.reference import read_reference, reference_errors
    from porescope.measure.specimens import specimen_results
    from porescope.report.sections_reference import reference_blocks
    from porescope.report.sections_specimens import specimen_blocks

    blocks: list[Block] = []
    tables: dict[str, pd.DataFrame] = {}
    metrics: dict[str, Any] = {}
    validation = read_validation_table(params.validation) if params.validation else None
    spec = specimen_results(summary, objects, params.specimens, source=source, seed=params.seed,
                            validation=validation, paths=paths)
    if spec is not None:
        tables["specimens.csv"] = spec.stats
        blocks += specimen_blocks(spec.stats, spec.budgets or None, confidence=params.specimens.confidence)
    if params.reference and not summary.empty:
        table, ref_metrics = reference_errors(summary, read_reference(params.reference))
        tables["reference.csv"] = table
        metrics["reference"] = ref_metrics
        blocks += reference_blocks(table, ref_metrics)
    return CertificateExtras(tuple(blocks), tables, metrics)


def check_certificate_inputs(params: MeasureParams, source: Path, files: list[Path]) -> None:
    """Read and check the manual reference, the validation table and the specimen rule before
    any image is measured (a typo found after hours of measuring costs the hours)."""
    from porescope.analysis.error_budget import read_validation_table
    from porescope.measure.reference import read_reference

    if params.reference:
        read_reference(params.reference)
    if params.validation:
        read_validation_table(params.validation)
        if params.specimens.rule == "none":
            LOG.warning("measure.validation %s is used for the per-specimen error budget only; "
                        "set measure.specimens (--specimens) to get it", params.validation)
    if params.specimens.rule != "none" and files:
        folder = _image_folder(source)
        rel = [f.relative_to(folder).as_posix() for f in files]
        params.specimens.keys([r if "/" in r else f"{source.name}/{r}" for r in rel])


def _metrics(summary: pd.DataFrame, model: Path) -> dict[str, Any]:
    images = {}
    for r in summary.itertuples(index=False):
        d = r._asdict()
        images[d["image_id"]] = {k: (None if isinstance(d[k], float) and not math.isfinite(d[k])
                                     else round(float(d[k]), 6))
                                 for k in ("porosity", "count_median_area", "count_split_labels",
                                           "count_boolean_model", "density_cm2_split_labels",
                                           "density_cm2_boolean_model")}
    return {"n_images": int(len(summary)), "model": model.as_posix(), "images": images}


def _version() -> str:
    try:
        return importlib.metadata.version("porescope")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def write_marker(folder: Path, tool: str = "porescope measure") -> None:
    """Write :data:`MARKER` into ``folder`` (being built, every other file written): what wrote
    it and each file's SHA-256 and path, so that a later ``--overwrite`` knows the folder is
    porescope's to replace and that nobody added or changed a file since."""
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                   if p.is_file() and p.name != MARKER)
    write_text(folder / MARKER, f"{tool} {_version()}\n"
               + "".join(f"{_digest(folder / f)}\t{f}\n" for f in files))


def _digest(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


#: written into an output folder after its marker (``--pdf``)
_AFTER_MARKER = frozenset({"report.pdf"})


def foreign_files(out: Path) -> list[str]:
    """Paths in a porescope output folder that its :data:`MARKER` does not list with their
    content hash: files a user added or changed since (empty for a marker of a porescope that
    listed nothing)."""
    lines = (out / MARKER).read_text(encoding="utf-8", errors="replace").splitlines()[1:]
    if not lines:
        return []
    written = {}
    for line in lines:
        digest, _, rel = line.partition("\t")
        written[rel] = digest
    foreign = []
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out).as_posix()
        if rel == MARKER or rel in _AFTER_MARKER or (p.is_dir() and not p.is_symlink()):
            continue
        if p.is_symlink() or not p.is_file() or written.get(rel) != _digest(p):
            foreign.append(rel)
    return foreign


def check_output_folder(out: Path, inputs: Path, overwrite: bool) -> bool:
    """Refuse unsafe outputs; returns whether an existing ``out`` may be replaced.

    The output may not be the input folder or contain it (replacing it would delete the
    micrographs), whatever ``overwrite`` says. An existing non-empty folder (or a file) is
    refused unless ``overwrite``, and even then unless it holds :data:`MARKER` (a folder that
    porescope wrote: ``--overwrite`` never deletes someone's thesis) and nothing else
    (:func:`foreign_files`: no file added or changed since); an empty folder is fine.
    """
    o, i = out.resolve(), inputs.resolve()
    if o == i or o in i.parents:
        raise FileExistsError(f"{out}: the output folder is (or contains) the input folder "
                              f"{inputs}; choose another output folder")
    if out.exists() or out.is_symlink():
        if out.is_dir() and not out.is_symlink() and not any(out.iterdir()):
            return True
        if not overwrite:
            raise FileExistsError(f"{out}: already exists; choose another output folder or pass "
                                  "--overwrite to replace it")
        if out.is_symlink() or not out.is_dir() or not (out / MARKER).is_file():
            raise FileExistsError(f"{out}: not a porescope output; refusing to delete it (it has "
                                  f"no {MARKER} marker file). Choose another output folder or "
                                  "remove it yourself")
        foreign = foreign_files(out)
        if foreign:
            raise FileExistsError(
                f"{out}: holds {len(foreign)} file(s) porescope did not write or that changed since "
                f"({', '.join(foreign[:5])}{', ...' if len(foreign) > 5 else ''}); refusing to "
                "delete them. Move them out, or choose another output folder")
    return True


def _measure_or_reason(image: Path, model: Path, params: MeasureParams, overlay: bool = False
                       ) -> MeasureResult | tuple[str, str]:
    """:func:`measure_one`, or ``(file, reason)`` when this file cannot be measured (a problem of
    the file, not of the model: model errors still stop the run)."""
    try:
        return measure_one(image, model, params, overlay=overlay)
    except ModelFileError:
        raise
    except PorescopeError as exc:
        why = getattr(exc, "detail", None) or str(exc)
        LOG.warning("%s: not measured: %s", image, why)
        return str(image), why.splitlines()[0]


def measure_and_encode(image: Path, model: Path, params: MeasureParams
                       ) -> MeasureResult | tuple[str, str]:
    """One image of a folder run: measured (``params.strict``: :func:`measure_one`, else
    :func:`_measure_or_reason`), its mask and outline overlay encoded as PNG into
    ``result.files``, and the image-sized arrays dropped, so that the run holds only tables and
    compressed images while the other files are measured."""
    result = measure_one(image, model, params, overlay=True) if params.strict else \
        _measure_or_reason(image, model, params, overlay=True)
    if not isinstance(result, MeasureResult):
        return result
    if result.analysis.labels is not None:
        overlay = encode_png(afig.outline_overlay(result.grey, result.analysis.labels), image)
    else:   # analysed in bands: the outlines painted into the grey image (dropped below)
        overlay = encode_png_palette(result.overlay.paint(result.grey), afig.OUTLINE_PALETTE,
                                     image)
    files = {f"masks/{result.image_id}.png": encode_png(result.mask, image),
             f"overlays/{result.image_id}.png": overlay}
    return dataclasses.replace(result, grey=None, mask=None, files=files, overlay=None,
                               analysis=dataclasses.replace(result.analysis, labels=None))


def run_measure(source: str | os.PathLike, model: str | os.PathLike, out: str | os.PathLike,
                params: MeasureParams, *, overwrite: bool = True,
                metrics: str | os.PathLike | None = None, scheduler: str | None = None,
                workers: int = 1, allow_empty: bool = True) -> pd.DataFrame:
    """Measure every micrograph of ``source`` and write the output folder ``out`` atomically.

    ``overwrite=False`` refuses an existing non-empty ``out`` before any work is done; with
    ``overwrite`` only a folder holding :data:`MARKER` is replaced.
    ``scheduler`` / ``workers``: run the images on Dask (:func:`porescope.parallel.cluster.map_ordered`);
    the results do not depend on it. ``allow_empty=False`` (the command line): a folder without
    a single readable micrograph is an error, nothing written (the pipeline stage writes empty
    tables for its empty ``data/measure``). Returns the per-image summary table.

    Raises
    ------
    PartialMeasureError
        After writing every output, when some files were not measured (see the module
        docstring); ``params.strict`` raises the first file's ``IngestError`` instead, before
        anything is measured.
    """
    source, model, out = Path(source), Path(model), Path(out)
    check_output_folder(out, source, overwrite)
    files, rejected = scan_inputs(source, params.max_pixels,
                                  subfolders=params.specimens.rule == "folder")
    if rejected and params.strict:
        raise IngestError.from_problems(rejected)
    if not files and not allow_empty:
        raise (IngestError.from_problems(rejected) if rejected else
               IngestError(source, "no micrographs found (only documentation or hidden files); "
                                   "give the folder holding the images"))
    load_model_cached(model, params)              # fail early on a bad model file, images or not
    check_certificate_inputs(params, source, files)
    if not files:
        LOG.warning("%s: no micrographs found to measure (only documentation / junk / bad files); "
                    "writing empty tables", source)
    if (scheduler is not None or workers > 1) and params.threads == 0:
        # share the cores between worker processes instead of oversubscribing them
        params = dataclasses.replace(params, threads=max(1, (os.cpu_count() or 1) // max(1, workers)))
    outcomes = map_ordered(measure_and_encode, files, model, params, scheduler=scheduler,
                           workers=workers)
    results = [r for r in outcomes if isinstance(r, MeasureResult)]
    rejected = sorted(rejected + [r for r in outcomes if not isinstance(r, MeasureResult)])
    results.sort(key=lambda r: r.image_id)
    figures: dict[str, bytes] = {}
    if results:
        summary = summary_table(results)
        objects = pd.concat([r.analysis.objects for r in results], ignore_index=True)
    else:
        objects, summary = _empty_tables(params)
    if results and params.figures:
        figures = afig.distribution_figures(
            {r.image_id: r.analysis.objects for r in results},
            {r.image_id: r.analysis.spatial for r in results},
            pixel_sizes={r.image_id: r.analysis.summary["pixel_size_nm"] for r in results},
            length_unit=params.analysis.length_unit)
    split = results[0].analysis.summary["split_method"] if results else ""
    run_info = {"model": model.as_posix(), "input": source.as_posix(), "split": split,
                "settings": json.loads(json.dumps(params.settings_dict())), "n_images": len(results)}
    if rejected:     # only then: the run.json of a complete run is unchanged
        run_info["not_measured"] = [{"file": f, "reason": why} for f, why in rejected]
    folder = _image_folder(source)
    extra = certificate_extras(summary, objects, params, source,
                               {f.stem: f.relative_to(folder).as_posix() for f in files})
    report = render_report(summary, run_info, figures, extra.blocks)
    with output_dir(out, overwrite=True) as tmp:
        for r in results:
            for name, data in r.files.items():
                write_bytes(tmp / name, data)
        write_csv(tmp / "objects.csv", objects)
        write_csv(tmp / "summary.csv", summary)
        for name, data in sorted(figures.items()):
            write_bytes(tmp / "figures" / name, data)
        write_text(tmp / "report.md", report.markdown)
        write_text(tmp / "report.html", report.html)
        write_json(tmp / "run.json", run_info)
        for name, table in extra.tables.items():
            write_csv(tmp / name, table)
        write_marker(tmp)
    if metrics is not None:
        numbers = _metrics(summary, model)
        if rejected:
            numbers["not_measured"] = [f for f, _ in rejected]
        numbers.update(extra.metrics)
        write_json(metrics, numbers)
    for r in summary.itertuples(index=False):
        LOG.info("%s: porosity %.2f %%, pores %d (split) / %.0f (Boolean), %s", r.image_id,
                 100 * r.porosity, r.count_split_labels, r.count_boolean_model,
                 "density %.3g /cm^2" % r.density_cm2_split_labels
                 if r.density_cm2_split_labels == r.density_cm2_split_labels else "pixel size unknown")
    LOG.info("wrote %s (%d image(s))", out, len(results))
    if rejected:
        raise PartialMeasureError(out, summary, rejected)
    return summary


def write_skipped(out: str | os.PathLike, metrics: str | os.PathLike | None, reason: str) -> None:
    """What a switched-off run leaves: ``out`` holding only a README that says why, and
    ``metrics`` = ``{"skipped": true, "reason": ...}`` (no numbers that could be mistaken for
    measurements)."""
    with output_dir(Path(out), overwrite=True) as tmp:
        write_text(tmp / "README.md", f"# Measurement skipped\n\n{reason}\n")
        write_marker(tmp)
    if metrics is not None:
        write_json(metrics, {"skipped": True, "reason": reason})
