"""The steps table decides what --analysis runs; one failure wrapper turns a bad recording into a failed outcome
at both levels."""

import errno
from pathlib import Path

import pytest

from bids_brainbert.bids.discovery import Recording, parse_entities
from bids_brainbert.cli.parser import build_parser
from bids_brainbert.errors import RecordingError
from bids_brainbert.workflows.outcomes import RecordingOutcome, per_recording
from bids_brainbert.workflows.steps import ANALYSES, STEPS, runs, steps_for


def test_every_analysis_is_a_list_of_declared_steps_ending_with_the_reports():
    choices = next(a for a in build_parser()._actions if a.dest == "analysis").choices
    assert tuple(choices) == tuple(ANALYSES)
    for analysis, names in ANALYSES.items():
        assert all(name in STEPS and STEPS[name].level == "group" for name in names)
        assert names[-1] == "reports"
    assert [s.name for s in steps_for("all")] == ["pretrain", "decoding", "population", "dimensionality", "reports"]
    assert not runs("all", "finetune") and runs("finetune", "finetune") and not runs("reports", "decoding")
    assert {s.name for s in STEPS.values() if s.needs_atlas} == {"decoding", "dimensionality"}
    assert all(step.inputs and step.outputs for step in STEPS.values())


def recording(tmp_path: Path) -> Recording:
    path = tmp_path / "raw" / "sub-01" / "ieeg" / "sub-01_task-x_ieeg.edf"
    return Recording(path, parse_entities(path.name))


@pytest.mark.parametrize("error, message", [
    (RecordingError("bad header"), "bad header"),
    (ValueError("a bug\nsecond line"), "sub-01_task-x_ieeg.edf: unexpected error (ValueError: a bug)"),
    (OSError(errno.EACCES, "Permission denied", "/elsewhere/input.edf"), "/elsewhere/input.edf: cannot be read"),
])
def test_a_failing_recording_becomes_a_one_line_failed_outcome_and_is_discarded(tmp_path, error, message):
    discarded = []

    def work() -> RecordingOutcome:
        raise error

    outcome = per_recording(recording(tmp_path), tmp_path / "out", None, work, discard=lambda: discarded.append(1))
    assert outcome.status == "failed" and message in outcome.message and "\n" not in outcome.message
    assert discarded == [1]


def test_an_output_that_cannot_be_written_says_so(tmp_path):
    def work() -> RecordingOutcome:
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "out" / "x.npy"))

    outcome = per_recording(recording(tmp_path), tmp_path / "out", None, work)
    assert outcome.message == f"{tmp_path / 'out' / 'x.npy'}: Read-only file system (not writable?)"


def test_an_interrupt_discards_and_stops(tmp_path):
    discarded = []

    def work() -> RecordingOutcome:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        per_recording(recording(tmp_path), tmp_path / "out", None, work, discard=lambda: discarded.append(1))
    assert discarded == [1]
    kept = per_recording(recording(tmp_path), tmp_path / "out", None,
                         lambda: RecordingOutcome("sub-01", "written"), discard=lambda: discarded.append(2))
    assert kept.status == "written" and discarded == [1]


def test_the_seed_salts_of_the_analyses_differ():
    from bids_brainbert import seeds

    assert len(set(seeds.SALTS.values())) == len(seeds.SALTS)
    assert all(getattr(seeds, name) == value for name, value in seeds.SALTS.items())
