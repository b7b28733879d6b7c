"""Which checkpoint of a model folder is the newest complete one (``checkpoints/latest.json``, else the folders)."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

from ..bids.derivatives import atomic_write_bytes

log = logging.getLogger("bids_brainbert.training.pretrain")   # where these lines were logged from before

CHECKPOINTS_DIR = "checkpoints"
LATEST_NAME = "latest.json"


# ------------------------------------------------------------------------------------------------ checkpoints
def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The newest complete (resumable) checkpoint directory under ``output_dir``, or None."""
    root = Path(output_dir) / CHECKPOINTS_DIR
    pointer = root / LATEST_NAME
    if pointer.is_file():
        try:
            name = json.loads(pointer.read_text(encoding="utf-8"))["checkpoint"]
            # a plain step-* name in this folder: the pointer must not lead anywhere else
            candidate = root / name if isinstance(name, str) and re.fullmatch(r"step-\d+", name) else None
            if candidate is not None and not candidate.is_symlink() and _is_complete(candidate):
                return candidate
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError, RecursionError):
            log.warning("%s: unreadable, looking for checkpoints directly", pointer)
    found = sorted((p for p in root.glob("step-*") if not p.is_symlink() and _is_complete(p)), key=lambda p: p.name)
    return found[-1] if found else None


def _is_complete(path: Path) -> bool:
    return all((path / name).is_file() for name in ("model.safetensors", "config.json", "training_state.json",
                                                     "training_state.safetensors"))


def _write_latest(root: Path, name: str, step: int, final: bool) -> None:
    atomic_write_bytes(root / LATEST_NAME, json.dumps({"checkpoint": name, "step": step, "final": final}).encode())
