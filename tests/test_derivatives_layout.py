"""``<bids_dir>/derivatives/bids-brainbert`` as the output (the BIDS and fMRIPrep convention): allowed there and only
there; the raw data beside it is never written, and neither discovery nor the validator takes the derivatives (or
other non-raw folders) for raw data."""

import shutil
import stat
from pathlib import Path

import pytest

from bids_brainbert.bids.discovery import index_recordings
from bids_brainbert.cli.run import main
from write_audit import snapshot, writes_under

@pytest.fixture
def one_subject(demo_dataset, tmp_path) -> Path:
    root, _ = demo_dataset
    copy = tmp_path / "ds"
    shutil.copytree(root, copy)
    for extra in sorted(copy.glob("sub-*"))[1:]:
        shutil.rmtree(extra)
    return copy


def _fake_raw_copies(root: Path, folder: str) -> None:
    """A pipeline's (or the lab's) copies of the raw layout inside a non-raw folder: sub-*/ieeg/*_ieeg.edf."""
    for recording in index_recordings(root):
        target = root / folder / recording.path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(recording.path, target)


def test_discovery_ignores_derivatives_and_other_non_raw_folders(one_subject):
    expected = [r.path for r in index_recordings(one_subject)]
    for folder in ("derivatives/other-pipeline", "sourcedata", "code", "stimuli", "phenotype"):
        _fake_raw_copies(one_subject, folder)
    assert [r.path for r in index_recordings(one_subject)] == expected


def test_output_under_the_datasets_derivatives_folder(one_subject, tmp_path):
    """Validator on, twice (the second run sees the derivatives inside the dataset), and the raw data read-only:
    nothing outside derivatives/ is written, created, renamed or chmod-ed (snapshot and audit hook)."""
    out = one_subject / "derivatives" / "bids-brainbert"
    (one_subject / "derivatives").mkdir()
    modes = {p: stat.S_IMODE(p.stat().st_mode) for p in [one_subject, *one_subject.rglob("*")]}
    try:
        for path, mode in modes.items():
            if path != one_subject / "derivatives":
                path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        before = snapshot(one_subject, exclude="derivatives")
        with writes_under(one_subject, allowed=one_subject / "derivatives") as writes:
            assert main([str(one_subject), str(out), "participant"]) == 0
            first = {p: p.stat().st_mtime_ns for p in out.rglob("*_spectrogram.npy")}
            assert main([str(one_subject), str(out), "participant"]) == 0
        assert writes == []
        assert snapshot(one_subject, exclude="derivatives") == before
    finally:
        for path, mode in modes.items():
            path.chmod(mode)
    recordings = index_recordings(one_subject)
    assert len(first) == len(recordings) >= 1
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*_spectrogram.npy")} == first   # complete: skipped
    assert (out / "dataset_description.json").is_file()


@pytest.mark.parametrize("inside", ["", "derivatives", "sub-01/out", "sourcedata/bids-brainbert", "code/out"])
def test_output_elsewhere_inside_the_dataset_is_refused(one_subject, tmp_path, capsys, inside):
    out = one_subject / inside if inside else one_subject
    assert main([str(one_subject), str(out), "participant", "--skip-bids-validation", "--dry-run"]) == 64
    assert "must not be inside the BIDS directory" in capsys.readouterr().err


def test_a_derivatives_symlink_into_the_raw_data_is_refused(one_subject, capsys):
    subject = sorted(one_subject.glob("sub-*"))[0]
    (one_subject / "derivatives").symlink_to(subject, target_is_directory=True)
    out = one_subject / "derivatives" / "bids-brainbert"
    assert main([str(one_subject), str(out), "participant", "--skip-bids-validation", "--dry-run"]) == 64
    assert "must not be inside the BIDS directory" in capsys.readouterr().err
