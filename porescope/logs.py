"""Log format shared by the command line and the DVC stages."""

from __future__ import annotations

import logging
import os


def setup_logging() -> None:
    """Log INFO and above to stderr in a compact format (DVC shows it while a stage runs)."""
    logging.basicConfig(level=os.environ.get("PORESCOPE_LOG", "INFO"),
                        format="%(levelname)s %(name)s: %(message)s")
