"""The ``porescope`` command line (console script ``porescope = porescope.cli.main:main``).

    porescope measure --model models/model.pt --input DIR --out DIR [--pixel-size-nm X]
                      [--crop-bottom N|auto] [--margin N] [--scale F] [--params params.yaml]
                      [--overwrite] [--scheduler ADDRESS|local] [--workers N]

One sub-command per function ``cmd_<name>(args) -> int``, registered by ``add_<name>_parser``;
other sub-commands (``lineage``, ``compare``) are added the same way. Errors a user can fix
(bad input file, bad parameter, existing output folder) are printed as one line
``porescope <command>: error: ...`` with exit status 2; anything else is a bug and raises.
"""

from __future__ import annotations

import argparse
import logging
import sys

from porescope.errors import PorescopeError
from porescope.logs import setup_logging

LOG = logging.getLogger("porescope.cli")


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="porescope",
        description="porescope: measure porosity, pore density, sizes and spatial statistics "
                    "of track-etched membranes (and particles) in electron micrographs.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    from porescope.cli.measure import add_measure_parser

    add_measure_parser(sub)
    from porescope.cli.compare import add_compare_parser
    from porescope.cli.lineage import add_lineage_parser

    add_lineage_parser(sub)
    add_compare_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging()
    try:
        return int(args.func(args))
    except (PorescopeError, FileExistsError) as exc:
        print(f"porescope {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C is the user's choice, not a bug: no traceback (measure's output folder is
        # renamed into place only at the end, so an interrupted run leaves none)
        print(f"porescope {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
