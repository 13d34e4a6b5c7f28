"""The package's logger, ``logging.getLogger("streamlstm")``, and one-line notices on stderr.

A notice is a log record (INFO) and, unless ``STREAMLSTM_QUIET=1``, the same line on stderr, so
that a long pause (a first compile) is explained even where logging is not configured.
"""

from __future__ import annotations

import logging
import os
import sys

logger = logging.getLogger("streamlstm")


def notice(message: str) -> None:
    """Log ``message`` at INFO and print it on stderr as ``streamlstm: message``."""
    logger.info(message)
    if os.environ.get("STREAMLSTM_QUIET", "") in ("", "0"):
        try:
            print(f"streamlstm: {message}", file=sys.stderr, flush=True)
        except (OSError, ValueError):  # a closed or broken stderr must not break a step
            pass
