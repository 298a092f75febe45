"""DVC stage ``synthesize``: the built-in synthetic track-etched-membrane dataset with exact truth.

    python -m stages.synthesize --params params.yaml --out data/synthetic

Reads the ``synthesize`` group of params.yaml (:class:`porescope.synthetic.params.SynthesizeParams`)
and the shared ``seed``; the work and the files written are
:func:`porescope.synthetic.dataset.run_synthesize`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from porescope.config import parse_group
from porescope.synthetic.dataset import run_synthesize
from porescope.synthetic.params import SynthesizeParams
from stages.common import load_params, run_stage, setup_logging, stage_parser

GROUP = "synthesize"


def validate_params(raw: Mapping[str, Any], source: str = "params.yaml") -> dict[str, Any]:
    """Check a ``synthesize`` group mapping (with ``seed``); returns it (older callers' form)."""
    parse_group(SynthesizeParams, raw, group=GROUP, source=source)
    return dict(raw)


def run(params: Mapping[str, Any], out: str | Path) -> Path:
    """:func:`run_synthesize` for a group mapping holding ``seed`` (older callers' form)."""
    return run_synthesize(parse_group(SynthesizeParams, params, group=GROUP), params["seed"], out)


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output folder (e.g. data/synthetic)")
    args = parser.parse_args(argv)
    setup_logging()
    raw = load_params(args.params, GROUP)
    params = parse_group(SynthesizeParams, raw, group=GROUP, source=str(args.params))
    run_synthesize(params, raw["seed"], args.out)
    return 0


if __name__ == "__main__":
    run_stage("synthesize", main)
