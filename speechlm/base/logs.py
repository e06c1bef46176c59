"""Logging set-up shared by training, decoding and scoring: stderr plus a log file under exp/."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import List, Optional

FORMAT = "%(asctime)s %(levelname)s [%(name)s] %(message)s"


def setup_logging(log_file: Optional[Path], is_main: bool = True) -> None:
    """Log to stderr and ``log_file`` on the main process; other DDP ranks stay quiet."""
    handlers: List[logging.Handler] = [logging.StreamHandler(sys.stderr)] if is_main else []
    if log_file is not None and is_main:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(level=logging.INFO, format=FORMAT,
                        handlers=handlers or [logging.NullHandler()], force=True)
