"""The group level's own log: ``OUTPUT_DIR/logs/group/<run id>/bids-brainbert.{log,toml}``, the same per-run log
and configuration as the participant level writes per subject (``sub-<label>/log/<run id>/``)."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Iterator

from ..bids import derivatives as deriv
from ..config import RunConfig, write_config_toml

LOGGER = logging.getLogger("bids_brainbert")


class _RunLogHandler(logging.FileHandler):
    """A line that cannot be written (disk full) is dropped: stderr has it too."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def group_log_dir(config: RunConfig, run_id: str) -> Path:
    return deriv.ensure_inside(config.output_dir, config.output_dir / "logs" / "group" / run_id)


@contextlib.contextmanager
def group_log(config: RunConfig, run_id: str) -> Iterator[Path | None]:
    """Everything logged meanwhile also goes to the group log; under torchrun only the main process writes it."""
    if int(os.environ.get("RANK", "0")) != 0:
        yield None
        return
    folder = group_log_dir(config, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    write_config_toml(config, folder / "bids-brainbert.toml")
    handler = _RunLogHandler(folder / "bids-brainbert.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s | %(levelname)s | %(message)s"))
    LOGGER.addHandler(handler)
    try:
        yield folder
    finally:
        LOGGER.removeHandler(handler)
        handler.close()
