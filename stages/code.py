"""DVC stage ``code``: one fingerprint of the code each stage runs.

    python -m stages.code --out data/code synthesize ingest split ...

For every stage name ``S`` given, writes ``<out>/S.json``: the import closure of the module
``stages.S`` with each file's MD5 (:func:`porescope.provenance.code_fingerprint.code_fingerprint`).
Stage ``S`` depends on ``<out>/S.json`` instead of on each of its code files, so it reruns
exactly when one of them changes, while DVC checks each code file once per ``dvc repro``
(this stage's deps) rather than once per stage that imports it. The folder is written
atomically (all files or none).
"""

from __future__ import annotations

import re
from pathlib import Path

from porescope.errors import PorescopeError
from porescope.io.atomic import output_dir, write_json
from porescope.provenance.code_fingerprint import code_fingerprint
from stages.common import run_stage, setup_logging, stage_parser


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("Write the code fingerprint of each named stage.")
    parser.add_argument("--out", default="data/code", help="output folder")
    parser.add_argument("stages", nargs="+", help="stage names; the module of stage S is stages.S")
    args = parser.parse_args(argv)
    setup_logging()
    root = Path.cwd()  # DVC runs a stage in the repository root (its wdir)
    for name in args.stages:
        if not re.fullmatch(r"[A-Za-z_]\w*", name) or not (root / "stages" / f"{name}.py").is_file():
            raise PorescopeError(f"stage '{name}': no module stages/{name}.py below {root}")
    with output_dir(args.out) as tmp:
        for name in args.stages:
            write_json(tmp / f"{name}.json", code_fingerprint(f"stages.{name}", root))
    return 0


if __name__ == "__main__":
    run_stage("code", main)
