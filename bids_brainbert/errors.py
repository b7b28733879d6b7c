"""User-facing errors and the exit codes they map to (documented in the README).

Every error raised for bad input is a :class:`BidsBrainbertError` carrying the exit code the command line
returns, so that the mapping lives in one place.
"""

from __future__ import annotations

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
