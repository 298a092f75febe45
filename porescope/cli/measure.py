"""``porescope measure``: segment and measure a folder of micrographs with a trained model.

Exit status: 0 = every micrograph measured; 3 = partial: the good files were measured and
written, the files listed under "Not measured" (``run.json`` and the report) were not;
2 = nothing written (bad parameter, model file, input folder, existing output, or any bad
file with ``--strict``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from porescope.config import ParamsError, load_params


def _pixels(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer number of pixels, got {value!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected pixels >= 0, got {n}")
    return n


def _crop(value: str) -> int | str:
    return "auto" if value == "auto" else _pixels(value)


def _positive(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not x > 0 or x == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value!r}")
    return x


def _scale(value: str) -> float | str:
    return "auto" if value == "auto" else _positive(value)


def add_measure_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "measure", help="segment and measure a folder of micrographs with a trained model",
        description="Run a trained porescope model on every micrograph of a folder (no masks "
                    "needed) and write masks, per-object and per-image tables, figures and a "
                    "report (Markdown + self-contained HTML). Settings come from the 'measure' and 'analyze' groups of "
                    "--params (built-in defaults without it); the options below override them. "
                    "Files that cannot be measured are listed under 'Not measured' (run.json, "
                    "report) and the others are measured; exit status 0 = all measured, 3 = "
                    "partial, 2 = error (nothing written; also when the folder holds no readable "
                    "micrograph).")
    p.add_argument("--model", required=True, type=Path, help="porescope model file (models/model.pt)")
    p.add_argument("--input", required=True, type=Path, help="folder of micrographs (or with images/)")
    p.add_argument("--out", required=True, type=Path,
                   help="output folder (must not exist unless --overwrite)")
    p.add_argument("--pixel-size-nm", type=_positive, default=None,
                   help="nm per pixel for every image (default: TIFF metadata, else the scale bar "
                        "read by OCR, else unknown)")
    p.add_argument("--no-scale-bar", action="store_true",
                   help="do not read the pixel size from the scale bar")
    p.add_argument("--crop-bottom", type=_crop, default=None,
                   help="rows of SEM data bar to drop, or 'auto' (default from params: 0)")
    p.add_argument("--margin", type=_pixels, default=None,
                   help="pixels ignored at every image edge (a frame around the micrograph)")
    p.add_argument("--scale", type=_scale, default=None,
                   help="resize factor before inference (2 = enlarge twice; overrides resample_to_model), "
                        "or 'auto': the factor that brings the image's pores (median size found by "
                        "a first pass at scale 1) to the model's trained pore size")
    p.add_argument("--params", type=Path, default=None,
                   help="params.yaml to read the 'measure' and 'analyze' groups (and seed) from")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output folder that porescope wrote (one holding the "
                        ".porescope-output marker; any other folder is refused)")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first file that cannot be measured (default: measure the "
                        "others, list the bad ones and exit with status 3)")
    p.add_argument("--specimens", default=None, metavar="RULE",
                   help="group the micrographs into specimens for the certificate: 'folder' (each "
                        "sub-folder of --input is a specimen), 'pattern:REGEX' (one group on the file "
                        "stem, e.g. 'pattern:^(.+?)_[0-9]+$') or 'metadata:CSV' (columns file, specimen)")
    p.add_argument("--validation", type=Path, default=None,
                   help="the validate stage's plots/validate/table.csv: the estimators' systematic "
                        "error at each specimen's porosity and pore size")
    p.add_argument("--reference", type=Path, default=None,
                   help="CSV of manual counts / porosity per image (columns image, count, porosity): "
                        "report every estimator's error against it")
    p.add_argument("--pdf", action="store_true",
                   help="also print the report to report.pdf (needs Chromium: apt-get install chromium)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the images on a Dask cluster: its scheduler address (tcp://host:8786), "
                        "or 'local' for a LocalCluster on this machine (default: this process)")
    p.add_argument("--workers", type=int, default=None,
                   help="LocalCluster worker processes (default: 2 with --scheduler local, else 1)")
    p.set_defaults(func=cmd_measure)


def cmd_measure(args: argparse.Namespace) -> int:
    """``porescope measure``: see :mod:`porescope.measure.folder`."""
    import dataclasses

    from porescope.analysis.params import AnalysisParams
    from porescope.measure.folder import PartialMeasureError, check_output_folder, run_measure
    from porescope.measure.params import parse_measure_params

    # refuse an existing output before reading params, the model or any image
    check_output_folder(args.out, args.input, args.overwrite)
    if args.params is not None:
        analysis = AnalysisParams.from_mapping(load_params(args.params, "analyze"),
                                               source=str(args.params))
        params = parse_measure_params(load_params(args.params, "measure"), analysis,
                                      source=str(args.params))
    else:
        params = parse_measure_params({}, AnalysisParams(), source="defaults")
    overrides = {}
    if args.pixel_size_nm is not None:
        overrides["pixel_size_nm"] = args.pixel_size_nm
    if args.no_scale_bar:
        overrides["scale_bar"] = False
    if args.crop_bottom is not None:
        overrides["crop_bottom"] = args.crop_bottom
    if args.margin is not None:
        overrides["margin_px"] = args.margin
    if args.scale is not None:
        if args.scale != "auto" and not 0.05 <= args.scale <= 20:
            raise ParamsError(f"--scale: expected a resize factor in [0.05, 20], got {args.scale}")
        overrides["scale"] = args.scale
    if args.strict:
        overrides["strict"] = True
    if args.specimens is not None:
        overrides["specimens"] = _specimens(args.specimens, params.specimens)
    if args.validation is not None:
        overrides["validation"] = str(args.validation)
    if args.reference is not None:
        overrides["reference"] = str(args.reference)
    params = dataclasses.replace(params, **overrides)
    workers = args.workers if args.workers is not None else (2 if args.scheduler == "local" else 1)
    if workers < 1:
        raise ParamsError(f"--workers: expected at least 1, got {workers}")
    try:
        run_measure(args.input, args.model, args.out, params, overwrite=args.overwrite,
                    scheduler=args.scheduler, workers=workers, allow_empty=False)
    except PartialMeasureError as exc:
        print(f"porescope measure: partial: {exc}", file=sys.stderr)
        status = 3
    else:
        status = 0
    if args.pdf:
        from porescope.report.pdf import html_to_pdf

        html_to_pdf(args.out / "report.html", args.out / "report.pdf")
    return status


def _specimens(rule: str, current):
    """``--specimens`` as :class:`~porescope.measure.specimens.SpecimenParams`."""
    import dataclasses

    kind, _, value = rule.partition(":")
    if kind == "folder" and not value:
        return dataclasses.replace(current, rule="folder")
    if kind == "pattern" and value:
        return dataclasses.replace(current, rule="pattern", pattern=value)
    if kind == "metadata" and value:
        return dataclasses.replace(current, rule="metadata", metadata=value)
    raise ParamsError(f"--specimens: expected folder, pattern:REGEX or metadata:CSV, got {rule!r}")
