"""The command line end to end on BIDS datasets written with mne-bids: every flag and exit code."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bids_brainbert import __version__
from bids_brainbert.bids.derivatives import open_spectrogram, sha256_of_file
from bids_brainbert.bids.discovery import index_recordings
from bids_brainbert.bids.validation import find_validator, validation_errors
from bids_brainbert.cli.run import main
from conftest import tree_digest

REAL = Path(__file__).resolve().parent / "data" / "gripforce-ecog"   # cropped real recording, see its SOURCE.txt


def run(*args) -> int:
    return main([str(a) for a in args])


def outputs_of(out: Path, suffix: str = "_spectrogram.npy") -> list[Path]:
    return sorted(out.rglob(f"*{suffix}"))


def test_participant_level_writes_complete_derivatives(demo_derivatives):
    root, out, truth = demo_derivatives
    recordings = index_recordings(root)
    assert {r.extension for r in recordings} >= {".edf", ".vhdr"}
    assert len(outputs_of(out)) == len(recordings)
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Name"] == "bids-brainbert"
    assert description["GeneratedBy"][0]["Version"] == __version__
    assert description["SourceDatasets"][0]["URL"].startswith("file://")
    assert "*_spectrogram.npy" in (out / ".bidsignore").read_text()
    for recording in recordings:
        folder = out / recording.path.parent.relative_to(root)
        data_path = folder / f"{recording.stem_entities}_desc-superlet_spectrogram.npy"
        sidecar = json.loads(data_path.with_suffix(".json").read_text())
        channels = pd.read_csv(folder / f"{recording.stem_entities}_desc-superlet_channels.tsv", sep="\t")
        data = np.load(data_path, mmap_mode="r")
        assert data.dtype == np.float32 and list(data.shape) == sidecar["Shape"]
        assert data.shape[0] == len(channels) and data.shape[2] == 40
        assert sidecar["Axes"] == ["channel", "time", "frequency"]
        assert sidecar["FrequenciesHz"][0] == pytest.approx(0.1) and sidecar["FrequenciesHz"][-1] == pytest.approx(200)
        assert sidecar["SamplingFrequency"] == pytest.approx(2048 / 50)
        assert sidecar["Sources"] == [f"bids:raw:{recording.relative_path}"]
        assert sidecar["DataSha256"] == sha256_of_file(data_path)
        assert sidecar["RandomSeed"] == 7 and sidecar["SoftwareVersion"] == __version__
        assert sidecar["Preprocessing"]["Resampling"]["sfreq_hz"] == 2048
        assert np.isfinite(data).all() and (np.asarray(data) >= 0).all()
        # bad channels and non-iEEG channels never reach the derivative
        bads = truth.bad_channels.get(recording.subject, [])
        assert not set(bads) & set(channels["name"]), bads
        assert set(channels["type"]) <= {"SEEG", "ECOG"}
        assert "region" in channels.columns and channels["region"].notna().all()
        # one electrode is readable without loading the run
        name = channels["name"].iloc[-1]
        np.testing.assert_array_equal(open_spectrogram(data_path, channel=name), data[-1])
        assert {"x", "y", "z", "group"} <= set(channels.columns) and channels["x"].notna().all()
        assert sidecar["CoordinateSystem"]["iEEGCoordinateSystem"] == "ACPC"
    for subject in {r.subject for r in recordings}:
        logs = list((out / f"sub-{subject}" / "log").glob("*/bids-brainbert.log"))
        configs = list((out / f"sub-{subject}" / "log").glob("*/bids-brainbert.toml"))
        assert logs and configs and "wrote" in logs[0].read_text()
    assert not list(out.rglob(".*.tmp-*")), "temporary files left behind"


def test_planted_high_gamma_is_visible_in_the_spectrogram(demo_derivatives):
    root, out, truth = demo_derivatives
    subject = sorted(truth.responsive)[0]
    recording = next(r for r in index_recordings(root) if r.subject == subject)
    folder = out / recording.path.parent.relative_to(root)
    data_path = folder / f"{recording.stem_entities}_desc-superlet_spectrogram.npy"
    sidecar = json.loads(data_path.with_suffix(".json").read_text())
    names = pd.read_csv(folder / f"{recording.stem_entities}_desc-superlet_channels.tsv", sep="\t")["name"].tolist()
    events = pd.read_csv(recording.path.with_name(f"{recording.stem_entities}_events.tsv"), sep="\t")
    freqs = np.asarray(sidecar["FrequenciesHz"])
    band = (freqs >= 70) & (freqs <= 150)
    rate = sidecar["SamplingFrequency"]
    spec = np.load(data_path, mmap_mode="r")

    def evoked(row: int, condition: str) -> float:
        onsets = events.loc[events["trial_type"] == condition, "onset"].to_numpy()
        frames = [np.arange(int(o * rate), int((o + 0.5) * rate)) for o in onsets]
        frames = [f for f in frames if f[-1] < spec.shape[1]]
        return float(np.mean([spec[row][f][:, band].mean() for f in frames]))

    other = next(c for c in sorted(set(events["trial_type"])) if c != truth.condition)
    responsive = [n for n in truth.responsive[subject] if n in names]
    quiet = [n for n in names if n not in truth.responsive[subject]]
    assert responsive and quiet
    for name in responsive:
        assert evoked(names.index(name), truth.condition) > 1.5 * evoked(names.index(name), other), name
    ratios = [evoked(names.index(n), truth.condition) / evoked(names.index(n), other) for n in quiet]
    assert np.median(ratios) < 1.2


def test_outputs_pass_the_bids_validator(demo_derivatives):
    _, out, _ = demo_derivatives
    executable = find_validator()
    assert executable, "bids-validator-deno must be installed for the tests"
    assert validation_errors(out, executable) == []


def test_rerun_skips_complete_outputs_and_recomputes_corrupt_ones(demo_derivatives, tmp_path):
    root, out, _ = demo_derivatives
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    first, second = outputs_of(copy)[:2]
    mtime = first.stat().st_mtime_ns
    original = second.read_bytes()
    with open(second, "r+b") as fh:  # corrupt a finished file in place
        fh.seek(200)
        fh.write(b"\x00" * 64)
    assert run(root, copy, "participant", "--skip-bids-validation", "--random-seed", "7") == 0
    assert first.stat().st_mtime_ns == mtime, "a complete derivative was recomputed"
    assert second.read_bytes() == original, "a corrupt derivative was not recomputed identically"
    assert run(root, copy, "participant", "--skip-bids-validation", "--overwrite",
               "--participant-label", first.name[4:6]) == 0
    assert first.stat().st_mtime_ns != mtime


def test_nprocs_does_not_change_results(demo_derivatives, tmp_path):
    root, out, _ = demo_derivatives
    assert run(root, tmp_path, "participant", "--skip-bids-validation", "--nprocs", "1", "--random-seed", "7") == 0
    for ours, theirs in zip(outputs_of(tmp_path), outputs_of(out)):
        assert ours.read_bytes() == theirs.read_bytes()


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_console_script_runs():
    script = Path(sys.executable).with_name("bids-brainbert")  # the venv's console script, activated or not
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and __version__ in done.stdout


@pytest.mark.parametrize("args, code, message", [
    (["{root}", "{out}", "session"], 17, "analysis level 'session'"),
    (["{root}", "{out}", "group"], 1, "run the participant level first"),
    (["{root}", "{out}"], 64, "required"),
    (["{root}", "{out}", "participant", "--no-such-flag"], 64, "unrecognized"),
    (["{root}", "{out}", "participant", "--nprocs", "0"], 64, "--nprocs"),
    (["{root}", "{out}", "participant", "--reference", "median"], 64, "--reference"),
    (["{root}/nowhere", "{out}", "participant"], 16, "does not exist"),
    (["{root}", "{out}", "participant", "--participant-label", "99"], 18, "99"),
    (["{root}", "{out}", "participant", "--participant-label", "0_1"], 64, "not a BIDS label"),
    (["{root}", "{out}", "participant", "--participant-label", "../labels.txt"], 64, "label file not found"),
    (["{root}", "{out}", "participant", "--task-label", "nothing"], 18, "matches no"),
    (["{root}", "{root}/sourcedata/x", "participant"], 64, "must not be inside"),   # derivatives/ is allowed
])
def test_exit_codes(demo_dataset, tmp_path, capsys, args, code, message):
    root, _ = demo_dataset
    argv = [a.format(root=root, out=tmp_path / "out") for a in args] + ["--skip-bids-validation"]
    assert main(argv) == code
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) >= 1
    assert not (tmp_path / "out").exists() and not (root / "derivatives").exists()


def test_invalid_dataset_and_malformed_config(demo_dataset, tmp_path, capsys):
    root, _ = demo_dataset
    (tmp_path / "empty").mkdir()
    assert run(tmp_path / "empty", tmp_path / "out", "participant") == 16
    assert "dataset_description.json: missing" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("nprocs = [")
    assert run(root, tmp_path / "out", "participant", "--config-file", bad) == 64
    assert f"{bad}: malformed TOML" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def dry_run(capsys, root, *args) -> list[str]:
    assert run(root, "/nonexistent/out", "participant", "--dry-run", "--skip-bids-validation", *args) == 0
    return [line.split(" -> ")[0].strip() for line in capsys.readouterr().out.splitlines()[1:] if " -> " in line]


def test_dry_run_writes_nothing_and_filters(demo_dataset, tmp_path, capsys):
    root, _ = demo_dataset
    recordings = index_recordings(root)
    everything = dry_run(capsys, root)
    assert everything == [r.relative_path for r in recordings]
    assert not Path("/nonexistent/out").exists()
    subject = recordings[0].subject
    with_prefix = dry_run(capsys, root, "--participant-label", f"sub-{subject}")
    assert with_prefix == dry_run(capsys, root, "--participant-label", subject)
    assert with_prefix and all(p.startswith(f"sub-{subject}/") for p in with_prefix)
    label_file = tmp_path / "labels.txt"
    label_file.write_text(f"sub-{subject}\n")
    assert dry_run(capsys, root, "--participant-label", str(label_file)) == with_prefix
    excluded = dry_run(capsys, root, "--exclude-participant-label", subject)
    assert sorted(excluded + with_prefix) == sorted(everything)
    task = recordings[0].entities["task"]
    assert dry_run(capsys, root, "--task-label", task) == everything
    with_runs = [r for r in recordings if "run" in r.entities]
    assert with_runs, "the demo dataset must have runs"
    run_label = with_runs[-1].entities["run"]
    by_run = dry_run(capsys, root, "--run", str(int(run_label)))
    assert by_run == [r.relative_path for r in recordings if r.entities.get("run") and
                      int(r.entities["run"]) == int(run_label)]
    with_sessions = [r for r in recordings if "session" in r.entities]
    assert with_sessions, "the demo dataset must have sessions"
    session = with_sessions[0].entities["session"]
    assert dry_run(capsys, root, "--session-label", session) == [r.relative_path for r in with_sessions
                                                                if r.entities["session"] == session]
    filter_file = tmp_path / "filter.json"
    filter_file.write_text(json.dumps({"ieeg": {"subject": subject, "extension": recordings[0].extension}}))
    assert dry_run(capsys, root, "--bids-filter-file", str(filter_file)) == [
        r.relative_path for r in recordings if r.subject == subject and r.extension == recordings[0].extension]
    filter_file.write_text(json.dumps({"ieeg": {"subject": "nobody"}}))
    assert run(root, tmp_path / "o", "participant", "--bids-filter-file", filter_file,
               "--skip-bids-validation") == 18


def test_options_are_applied_and_recorded(demo_dataset, tmp_path):
    """--config-file (CLI wins), --spectrogram stft, --reference, --sampling-rate native, --no-line-noise,
    -w, -v, --random-seed, --channel-batch-size, --laplacian-min-neighbours."""
    root, _ = demo_dataset
    recording = index_recordings(root)[0]
    config = tmp_path / "options.toml"
    config.write_text('spectrogram = "stft"\nreference = "bipolar"\nrandom_seed = 3\n')
    out = tmp_path / "out"
    work = tmp_path / "work"
    assert run(root, out, "participant", "--config-file", config, "--reference", "car", "--sampling-rate", "native",
               "--no-line-noise", "-w", work, "-v", "--channel-batch-size", "3", "--participant-label",
               recording.subject, "--skip-bids-validation") == 0
    sidecar_path = next(out.rglob(f"{recording.stem_entities}_desc-stft_spectrogram.json"))
    sidecar = json.loads(sidecar_path.read_text())
    assert sidecar["Transform"]["Kind"] == "stft" and sidecar["RandomSeed"] == 3
    assert sidecar["Preprocessing"]["Reference"]["scheme"] == "car"
    assert sidecar["Preprocessing"]["LineNoise"]["applied"] is False
    assert sidecar["Preprocessing"]["Resampling"]["applied"] is False
    raw_json = json.loads(recording.path.with_name(f"{recording.stem_entities}_ieeg.json").read_text())
    assert sidecar["SignalSamplingFrequency"] == raw_json["SamplingFrequency"]
    toml_text = next(out.rglob("bids-brainbert.toml")).read_text()
    assert 'spectrogram = "stft"' in toml_text and 'reference = "car"' in toml_text
    assert not work.exists() or not any(work.iterdir()), "scratch files left in the work directory"

    out2 = tmp_path / "out2"
    assert run(root, out2, "participant", "--participant-label", recording.subject, "--reference", "laplacian",
               "--laplacian-min-neighbours", "1", "--skip-bids-validation") == 0
    sidecar2 = json.loads(next(out2.rglob(f"{recording.stem_entities}_desc-superlet_spectrogram.json")).read_text())
    assert sidecar2["Preprocessing"]["Reference"]["scheme"] == "laplacian"
    n1 = sidecar2["Shape"][0]
    out3 = tmp_path / "out3"
    assert run(root, out3, "participant", "--participant-label", recording.subject, "--reference", "laplacian",
               "--skip-bids-validation") == 0
    n2 = json.loads(next(out3.rglob(f"{recording.stem_entities}_desc-superlet_spectrogram.json")).read_text())["Shape"][0]
    assert n1 > n2, "one neighbour must keep the shaft ends that two neighbours drop"


def test_a_bad_recording_fails_alone(demo_dataset, tmp_path, capsys):
    root, _ = demo_dataset
    copy = tmp_path / "ds"
    shutil.copytree(root, copy)
    recordings = index_recordings(copy)
    broken = next(r for r in recordings if r.extension == ".vhdr")
    broken.path.with_suffix(".eeg").unlink()
    out = tmp_path / "out"
    assert run(copy, out, "participant", "--skip-bids-validation") == 1
    err = capsys.readouterr().err
    assert str(broken.path) in err and "cannot be read" in err
    written = outputs_of(out)
    assert len(written) == len(recordings) - 1
    assert not list(out.rglob(f"{broken.stem_entities}_desc-*"))


def test_real_gripforce_recording(tmp_path, capsys):
    """A real BrainVision recording (µV, DBS/ECOG/MISC, 1000 Hz; shipped in tests/data), read in place without
    writing to it."""
    assert REAL.is_dir()
    before = tree_digest(REAL)
    # its SOURCE.txt is not a BIDS file: the validator must stop us (exit 16) unless told to skip
    assert run(REAL, tmp_path / "refused", "participant") == 16
    assert "NOT_INCLUDED" in capsys.readouterr().err
    out = tmp_path / "out"
    assert run(REAL, out, "participant", "--skip-bids-validation", "--include-dbs") == 0
    channels = pd.read_csv(next(out.rglob("*_desc-superlet_channels.tsv")), sep="\t")
    assert set(channels["type"]) == {"ECOG", "DBS"}
    assert "MOV_RIGHT" not in set(channels["name"])
    assert sum(channels["type"] == "ECOG") == 6
    sidecar = json.loads(next(out.rglob("*_desc-superlet_spectrogram.json")).read_text())
    assert sidecar["Preprocessing"]["InputSamplingFrequency"] == 1000
    assert sidecar["Preprocessing"]["LineNoise"]["notch_freqs_hz"] == [60.0, 120.0, 180.0, 240.0, 300.0, 360.0]
    data = np.load(next(out.rglob("*_spectrogram.npy")))
    assert data.shape[1] == int(np.ceil(8 * 2048 / 50)) and np.isfinite(data).all()
    # this file stores ~1e8 counts at 0.1 µV resolution (tens of volts): converted faithfully, and flagged
    log = next(out.rglob("bids-brainbert.log")).read_text()
    assert "implausible for iEEG" in log and "check the units" in log
    assert np.median(data) > 0.01
    without_dbs = tmp_path / "no_dbs"
    assert run(REAL, without_dbs, "participant", "--skip-bids-validation") == 0
    channels = pd.read_csv(next(without_dbs.rglob("*_desc-superlet_channels.tsv")), sep="\t")
    assert set(channels["type"]) == {"ECOG"}
    assert tree_digest(REAL) == before
    assert validation_errors(out, find_validator()) == []


def test_demo_command(tmp_path):
    previous = os.umask(0o022)
    try:
        assert run("demo", tmp_path, "--small") == 0
    finally:
        os.umask(previous)
    assert (tmp_path / "rawdata" / "dataset_description.json").exists()
    # readable by others (a container writing it as another UID must not leave it private)
    assert (tmp_path / "rawdata").stat().st_mode & 0o777 == 0o755
    derivatives = tmp_path / "derivatives" / "bids-brainbert"
    assert len(outputs_of(derivatives)) == len(index_recordings(tmp_path / "rawdata"))
