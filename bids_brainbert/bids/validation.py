"""Validate the input dataset with the official BIDS validator (bids-validator-deno), as fMRIPrep does."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

from ..errors import InvalidDatasetError, ValidatorFailedError

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
                              errors="replace", timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise ValidatorFailedError(f"{executable}: the BIDS validator failed: it did not finish in "
                                   f"{timeout_s:.0f} s on {bids_dir} (use --skip-bids-validation)") from None
    except OSError as exc:
        raise ValidatorFailedError(f"{executable}: the BIDS validator failed to start ({exc.strerror or exc}) "
                                   "(use --skip-bids-validation)") from None
    try:
        report = json.loads(done.stdout)
    except (json.JSONDecodeError, RecursionError):
        report = None
    if not isinstance(report, dict) or not isinstance(report.get("issues", {}), dict):
        # a crash (out of memory, a killed or broken validator) says nothing about the dataset: not exit 16
        raise ValidatorFailedError(f"{executable}: the BIDS validator failed on {bids_dir} ({_last_words(done)}) "
                                   "(use --skip-bids-validation)")
    issues = report.get("issues", {}).get("issues", [])
    return [issue for issue in issues if isinstance(issue, dict) and issue.get("severity") == "error"]


def _last_words(done: subprocess.CompletedProcess) -> str:
    """The validator's own last message and how it ended, on one line."""
    lines = [line.strip() for line in (done.stderr or done.stdout or "").splitlines() if line.strip()]
    ended = (f"killed by signal {-done.returncode}" if done.returncode < 0
             else f"exit status {done.returncode}")
    return f"{lines[-1][:300]}; {ended}" if lines else f"no output; {ended}"


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
