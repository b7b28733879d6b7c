"""User-facing errors and the exit codes they map to (documented in the README).

Every error raised for bad input is a :class:`BidsBrainbertError` carrying the exit code the command line
returns, so that the mapping lives in one place.
"""

from __future__ import annotations

import errno
import logging
import unicodedata
from pathlib import Path

EXIT_OK = 0
EXIT_PROCESSING_FAILURE = 1
EXIT_INVALID_DATASET = 16
EXIT_BAD_ANALYSIS_LEVEL = 17
EXIT_EMPTY_SELECTION = 18
EXIT_CHECKPOINT = 65
EXIT_USAGE = 64


class BidsBrainbertError(Exception):
    """An error the user can fix; its message is a single line naming the file and the problem."""

    exit_code = EXIT_PROCESSING_FAILURE


class UsageError(BidsBrainbertError):
    exit_code = EXIT_USAGE


class InvalidDatasetError(BidsBrainbertError):
    exit_code = EXIT_INVALID_DATASET


class ValidatorFailedError(BidsBrainbertError):
    """The BIDS validator itself failed (crashed, ran out of memory or time): nothing is known about the dataset,
    so this is not an invalid dataset (16)."""

    exit_code = EXIT_PROCESSING_FAILURE


class BadAnalysisLevelError(BidsBrainbertError):
    exit_code = EXIT_BAD_ANALYSIS_LEVEL


class EmptySelectionError(BidsBrainbertError):
    exit_code = EXIT_EMPTY_SELECTION


class RecordingError(BidsBrainbertError):
    """A single recording cannot be processed; the run goes on with the others."""

    exit_code = EXIT_PROCESSING_FAILURE


class CheckpointError(BidsBrainbertError):
    """A checkpoint file is missing, corrupt, of the wrong shape or unsafe to load."""

    exit_code = EXIT_CHECKPOINT


# A write refused for lack of space: the disk or a quota is full, or the file size limit (ulimit -f) is reached.
DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def resource_exhaustion(exc: BaseException, subject: Path | str, output_dir: Path | str | None = None) -> str | None:
    """One line saying what ran out while processing ``subject`` (a recording or the run), or None when ``exc``
    is not memory or disk exhaustion. These are not bugs: the fix is more memory or space, then the same command
    (finished outputs are kept)."""
    if isinstance(exc, MemoryError):
        return (f"{subject}: out of memory (give the job more memory, or use fewer --nprocs or a smaller "
                "--channel-batch-size), then re-run the same command")
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        where = exc.filename or output_dir or "the output or work directory"
        reason = exc.strerror or errno.errorcode.get(exc.errno, "")
        return (f"{subject}: disk full ({reason}) while writing {where}; free space there (or raise the quota or "
                "file size limit), then re-run the same command")
    return None


def one_line(text: str) -> str:
    """``text`` with line breaks and other control characters written as escapes (``\\n``, ``\\x1b``): names
    taken from a dataset (channels, files) must not break the one-line rule of messages or forge log lines."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or unicodedata.category(ch) == "Zs"
                   else ch.encode("unicode_escape").decode("ascii") for ch in text)


class OneLineFormatter(logging.Formatter):
    """Log records whose message is kept on one line (see :func:`one_line`); a traceback still follows."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        record.message = one_line(record.message)
        return super().formatMessage(record)
