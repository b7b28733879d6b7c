"""Validate the input dataset with the official BIDS validator (bids-validator-deno), as fMRIPrep does."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

from ..errors import InvalidDatasetError

LOGGER = logging.getLogger("bids_brainbert")
VALIDATOR = "bids-validator-deno"


def find_validator() -> str | None:
    """The validator executable: on PATH, or beside this Python (a venv that was not activated)."""
    beside = Path(sys.executable).with_name(VALIDATOR)
    return shutil.which(VALIDATOR) or (str(beside) if beside.exists() else None)


def validation_errors(bids_dir: Path, executable: str, timeout_s: float = 600.0) -> list[dict]:
    """Error-severity issues the validator reports for ``bids_dir`` (warnings are ignored)."""
    try:
        done = subprocess.run([executable, "--format", "json", str(bids_dir)], capture_output=True, text=True,
                              timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise InvalidDatasetError(f"{bids_dir}: the BIDS validator did not finish in {timeout_s:.0f} s "
                                  "(use --skip-bids-validation)") from None
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        message = (done.stderr or done.stdout).strip().splitlines()
        raise InvalidDatasetError(f"{bids_dir}: the BIDS validator failed ({message[-1] if message else 'no output'})"
                                  " (use --skip-bids-validation)") from None
    return [issue for issue in report.get("issues", {}).get("issues", []) if issue.get("severity") == "error"]


def validate_dataset(bids_dir: Path) -> None:
    """Raise InvalidDatasetError (exit 16) when the validator reports errors."""
    executable = find_validator()
    if executable is None:
        LOGGER.warning("%s not installed: only basic BIDS checks were made (pip install bids-validator-deno)",
                       VALIDATOR)
        return
    errors = validation_errors(bids_dir, executable)
    if errors:
        shown = "; ".join(f"{e.get('code')} at {e.get('location', '?')}" for e in errors[:3])
        more = f" and {len(errors) - 3} more" if len(errors) > 3 else ""
        raise InvalidDatasetError(f"{bids_dir}: BIDS validator found {len(errors)} error(s): {shown}{more} "
                                  "(fix them or use --skip-bids-validation)")
