"""One recording's result, and the one failure wrapper both levels run per-recording work through: a recording
that fails (bad input, a full disk, a bug we did not foresee) is reported in one line and the others go on; only
an interrupt (Ctrl-C, SIGTERM) stops the run."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..bids.discovery import Recording
from ..errors import BidsBrainbertError, resource_exhaustion
from .scratch import scratch_parent

LOGGER = logging.getLogger("bids_brainbert")


@dataclass
class RecordingOutcome:
    recording: str                       # path relative to the dataset root
    status: str                          # "written" | "skipped" | "failed"
    message: str = ""
    outputs: list[str] = field(default_factory=list)
    seconds: float = 0.0


def per_recording(recording: Recording, output_dir: Path, work_dir: Path | None,
                  work: Callable[[], RecordingOutcome],
                  discard: Callable[[], None] | None = None) -> RecordingOutcome:
    """``work()``'s outcome, or a failed one naming the file and the reason; ``discard`` removes what a failed
    or interrupted recording left half-written."""
    started = time.perf_counter()
    try:
        outcome = work()
    except BidsBrainbertError as exc:
        LOGGER.error("%s", exc)
        outcome = RecordingOutcome(recording.relative_path, "failed", str(exc))
    except (MemoryError, OSError) as exc:
        message = resource_exhaustion(exc, recording.path, output_dir)
        if message is None:   # another OSError: the file and the system's reason
            message = os_error_message(exc, recording, output_dir, work_dir)
        LOGGER.error("%s", message)
        outcome = RecordingOutcome(recording.relative_path, "failed", message)
    except KeyboardInterrupt:   # Ctrl-C or SIGTERM: what was renamed into place for this recording goes too
        if discard is not None:
            discard()
        raise
    except Exception as exc:  # a bug or an input we did not foresee must not stop the other recordings
        text = str(exc).strip()
        message = (f"{recording.path}: unexpected error ({type(exc).__name__}: "
                   f"{text.splitlines()[0] if text else ''})")
        LOGGER.exception("%s", message)
        outcome = RecordingOutcome(recording.relative_path, "failed", message)
    if outcome.status == "failed" and discard is not None:
        discard()
    outcome.seconds = time.perf_counter() - started
    return outcome


def os_error_message(exc: OSError, recording: Recording, output_dir: Path, work_dir: Path | None) -> str:
    """The file and the system's reason; "not writable?" only for a file we write (output or work directory),
    an input that cannot be read is said to be one."""
    where = Path(exc.filename) if exc.filename else recording.path
    reason = exc.strerror or str(exc)
    writable_roots = [Path(d).absolute() for d in (output_dir, scratch_parent(work_dir)) if d]
    if any(where.absolute() == root or root in where.absolute().parents for root in writable_roots):
        return f"{where}: {reason} (not writable?)"
    return f"{where}: cannot be read ({reason})"
