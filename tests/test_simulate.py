"""The simulated example dataset: valid BIDS, readable with mne-bids, and carrying exactly what it claims."""

import json
import time

import mne_bids
import numpy as np
import pandas as pd
import pytest
from scipy import signal

from bids_brainbert.bids.validation import find_validator, validation_errors
from bids_brainbert.io.simulate import CONDITIONS, TASK, DemoTruth, write_demo_dataset
from conftest import DEMO_SECONDS

AUDITORY = {"superior temporal gyrus", "transverse temporal gyrus"}


def bids_paths(root, truth):
    """One BIDSPath per run of every subject in ``truth``."""
    return [mne_bids.BIDSPath(subject=sub, session="01", task=TASK, run=run, datatype="ieeg", root=root)
            for sub in sorted(truth.runs) for run in truth.runs[sub]]


def read(bids_path):
    return mne_bids.read_raw_bids(bids_path, verbose=False)


def high_gamma_ratio(raw, tmin=0.1, tmax=0.6):
    """Per channel: mean 70-150 Hz power in [tmin, tmax] s after speech onsets / after nonspeech onsets."""
    sfreq = raw.info["sfreq"]
    sos = signal.butter(4, [70, 150], btype="bandpass", fs=sfreq, output="sos")
    power = np.abs(signal.hilbert(signal.sosfiltfilt(sos, raw.get_data(), axis=1), axis=1)) ** 2

    def evoked(condition):
        onsets = [o for o, d in zip(raw.annotations.onset, raw.annotations.description) if d == condition]
        assert len(onsets) >= 5, condition
        return np.mean([power[:, int((o + tmin) * sfreq):int((o + tmax) * sfreq)].mean(axis=1) for o in onsets], axis=0)

    with np.errstate(invalid="ignore", divide="ignore"):
        return dict(zip(raw.ch_names, evoked("speech") / evoked("nonspeech")))


def test_dataset_files_and_formats(demo_dataset):
    root, truth = demo_dataset
    assert sorted(truth.responsive) == ["01", "02", "03"]
    assert truth.condition == "speech" and set(CONDITIONS) == {"speech", "nonspeech"}
    description = json.loads((root / "dataset_description.json").read_text())
    assert description["DatasetType"] == "raw" and description["BIDSVersion"]
    assert description["Name"] and description["License"] and description["Authors"]
    assert (root / "README").read_text().startswith("# bids-brainbert simulated")
    participants = pd.read_csv(root / "participants.tsv", sep="\t")
    assert participants["participant_id"].tolist() == ["sub-01", "sub-02", "sub-03"]
    assert {"age", "sex", "hand"} <= set(participants.columns) and participants["age"].between(18, 80).all()
    assert json.loads((root / "code" / "demo_truth.json").read_text()) == truth.to_dict()
    assert DemoTruth.from_dict(truth.to_dict()) == truth

    ieeg = sorted(p.relative_to(root).as_posix() for p in root.rglob("*_ieeg.*") if p.suffix != ".json")
    assert ieeg == [
        "sub-01/ses-01/ieeg/sub-01_ses-01_task-listening_run-01_ieeg.edf",
        "sub-01/ses-01/ieeg/sub-01_ses-01_task-listening_run-02_ieeg.edf",
        "sub-02/ses-01/ieeg/sub-02_ses-01_task-listening_ieeg.eeg",
        "sub-02/ses-01/ieeg/sub-02_ses-01_task-listening_ieeg.vhdr",
        "sub-02/ses-01/ieeg/sub-02_ses-01_task-listening_ieeg.vmrk",
        "sub-03/ses-01/ieeg/sub-03_ses-01_task-listening_ieeg.edf",
    ]
    assert truth.formats == {"01": "EDF", "02": "BrainVision", "03": "EDF"}
    for bids_path in bids_paths(root, truth):
        for suffix, ext in [("channels", ".tsv"), ("events", ".tsv"), ("events", ".json"), ("ieeg", ".json")]:
            assert bids_path.copy().update(suffix=suffix, extension=ext).fpath.exists(), (suffix, ext)
        sidecar = json.loads(bids_path.copy().update(suffix="ieeg", extension=".json").fpath.read_text())
        assert sidecar["TaskName"] == TASK
        assert sidecar["SamplingFrequency"] == truth.sampling_rates[bids_path.subject]
        assert sidecar["PowerLineFrequency"] == truth.line_freqs[bids_path.subject]
        assert sidecar["iEEGReference"] != "n/a"


def test_read_back_with_mne_bids(demo_dataset):
    root, truth = demo_dataset
    assert truth.sampling_rates == {"01": 2048.0, "02": 1000.0, "03": 512.0}
    assert set(truth.line_freqs.values()) == {50.0, 60.0}
    seen_types = set()
    for bids_path in bids_paths(root, truth):
        sub = bids_path.subject
        raw = read(bids_path)
        types = dict(zip(raw.ch_names, raw.get_channel_types()))
        seen_types |= set(types.values())
        assert raw.info["sfreq"] == truth.sampling_rates[sub]
        assert raw.info["line_freq"] == truth.line_freqs[sub]
        assert raw.info["bads"] == truth.bad_channels[sub]
        assert raw.times[-1] == pytest.approx(DEMO_SECONDS, abs=0.01)
        assert {n for n, t in types.items() if t == "seeg"} >= {f"LA{i}" for i in range(1, 9)} | {
            f"A'{i}" for i in range(1, 7)}
        if sub == "02":
            assert [n for n, t in types.items() if t == "ecog"] == [f"G{i}" for i in range(1, 17)]
            assert types["MIC"] == "misc"
        else:
            assert types["ECG"] == "ecg" and "RH6" in types
        assert set(truth.responsive[sub]) <= {n for n, t in types.items() if t in ("seeg", "ecog")}
        assert not set(truth.responsive[sub]) & set(truth.bad_channels[sub])
        # events: both conditions, balanced, >= 2 s apart and clear of the recording edges
        descriptions = list(raw.annotations.description)
        assert sorted(set(descriptions)) == ["nonspeech", "speech"]
        assert descriptions.count("speech") == descriptions.count("nonspeech") >= 7
        onsets = np.asarray(raw.annotations.onset)
        assert np.all(np.diff(onsets) >= 2.0 - 1e-6) and onsets[0] >= 1.0 and onsets[-1] <= raw.times[-1] - 0.99
        events = pd.read_csv(bids_path.copy().update(suffix="events", extension=".tsv").fpath, sep="\t")
        assert list(events.columns[:3]) == ["onset", "duration", "trial_type"]
        assert events["duration"].between(0.3, 1.0).all()
        # channels.tsv: status and group
        channels = pd.read_csv(bids_path.copy().update(suffix="channels", extension=".tsv").fpath, sep="\t")
        assert channels.loc[channels["status"] == "bad", "name"].tolist() == truth.bad_channels[sub]
        assert channels.set_index("name").loc["LA3", "group"] == "LA"
        # amplitudes: tens of µV for good iEEG channels, the bad one really bad
        data = raw.get_data()
        ieeg = [i for i, n in enumerate(raw.ch_names) if types[n] in ("seeg", "ecog") and n not in raw.info["bads"]]
        rms = data[ieeg].std(axis=1)
        assert np.all((rms > 10e-6) & (rms < 100e-6)), rms
        bad = data[raw.ch_names.index(truth.bad_channels[sub][0])]
        assert bad.std() == 0 or bad.std() > 5 * np.median(rms)
    assert seen_types == {"seeg", "ecog", "ecg", "misc"}


def test_electrodes_tsv(demo_dataset):
    root, truth = demo_dataset
    for sub in sorted(truth.responsive):
        folder = root / f"sub-{sub}" / "ses-01" / "ieeg"
        table = pd.read_csv(folder / f"sub-{sub}_ses-01_space-ACPC_electrodes.tsv", sep="\t").set_index("name")
        coordsystem = json.loads((folder / f"sub-{sub}_ses-01_space-ACPC_coordsystem.json").read_text())
        assert coordsystem["iEEGCoordinateSystem"] == "ACPC" and coordsystem["iEEGCoordinateUnits"] == "m"
        assert list(table.columns[:4]) == ["x", "y", "z", "size"]
        assert {"group", "hemisphere", "type", "region"} <= set(table.columns)
        assert table[["x", "y", "z"]].notna().all().all() and table["region"].notna().all()
        assert (table[["x", "y", "z"]].abs() < 0.09).all().all()            # inside a head, in metres
        assert "ECG" not in table.index and "MIC" not in table.index
        assert set(table.loc[truth.responsive[sub], "region"]) <= AUDITORY
        assert set(table["hemisphere"]) <= {"L", "R"}
        assert (table.loc[table.index.str.startswith("RH"), "hemisphere"] == "R").all()
        # a shaft is a straight line of contacts 5 mm apart
        shaft = table.loc[[f"LA{i}" for i in range(1, 9)], ["x", "y", "z"]].to_numpy()
        steps = np.diff(shaft, axis=0)
        lengths = np.linalg.norm(steps, axis=1, keepdims=True)
        np.testing.assert_allclose(lengths, 0.005, atol=1e-4)
        np.testing.assert_allclose(steps / lengths, np.broadcast_to(steps[0] / lengths[0], steps.shape), atol=2e-3)
        # mne-bids turns the table into a montage in the ACPC (ras) frame
        raw = read(bids_paths(root, truth)[0].copy().update(subject=sub, run=truth.runs[sub][0]))
        positions = raw.get_montage().get_positions()
        assert positions["coord_frame"] == "ras"
        np.testing.assert_allclose(positions["ch_pos"]["LA1"], table.loc["LA1", ["x", "y", "z"]].to_numpy(float))
    ecog = pd.read_csv(root / "sub-02/ses-01/ieeg/sub-02_ses-01_space-ACPC_electrodes.tsv", sep="\t")
    assert set(ecog.loc[ecog["name"].str.startswith("G"), "group"]) == {"G"}
    assert set(ecog.loc[ecog["name"].str.startswith("G"), "type"]) == {"grid"}


def test_planted_high_gamma_response(demo_dataset):
    root, truth = demo_dataset
    for bids_path in bids_paths(root, truth):
        sub = bids_path.subject
        raw = read(bids_path)
        ratios = high_gamma_ratio(raw)
        ieeg = [n for n, t in zip(raw.ch_names, raw.get_channel_types())
                if t in ("seeg", "ecog") and n not in raw.info["bads"]]
        for name in truth.responsive[sub]:
            assert ratios[name] > 3.0, (sub, name, ratios[name])
        quiet = np.array([ratios[n] for n in ieeg if n not in truth.responsive[sub]])
        assert len(quiet) >= 15
        assert np.all(quiet < 1.5), (sub, quiet.max())
        assert 0.85 < np.median(quiet) < 1.15, (sub, np.median(quiet))


def test_spectrum_has_1_over_f_background_and_line_noise(demo_dataset):
    root, truth = demo_dataset
    for bids_path in bids_paths(root, truth):
        sub = bids_path.subject
        raw = read(bids_path)
        sfreq, line = raw.info["sfreq"], truth.line_freqs[sub]
        picks = [i for i, (n, t) in enumerate(zip(raw.ch_names, raw.get_channel_types()))
                 if t in ("seeg", "ecog") and n not in raw.info["bads"]]
        freqs, psd = signal.welch(raw.get_data()[picks], fs=sfreq, nperseg=int(4 * sfreq))
        psd = np.median(psd, axis=0)

        def at(f):
            return psd[np.argmin(np.abs(freqs - f))]

        band = (freqs >= 2) & (freqs <= 40)
        slope = np.polyfit(np.log10(freqs[band]), np.log10(psd[band]), 1)[0]
        assert -2.5 < slope < -0.8, (sub, slope)
        other = 60.0 if line == 50.0 else 50.0
        assert at(line) > 20 * at(other) and at(line) > 20 * at(line + 3)
        assert at(2 * line) > 4 * at(2 * line + 3)          # first harmonic too (high gamma nearby lifts 2f+3)


def test_same_seed_same_data_other_seed_other_data(demo_dataset, tmp_path):
    root, truth = demo_dataset
    again = write_demo_dataset(tmp_path / "again", small=True, seed=42, duration_s=DEMO_SECONDS)
    other = write_demo_dataset(tmp_path / "other", small=True, seed=7, duration_s=DEMO_SECONDS)
    assert again == truth
    for ours in bids_paths(root, truth):
        theirs = ours.copy().update(root=tmp_path / "again")
        np.testing.assert_array_equal(read(ours).get_data(), read(theirs).get_data())
        different = read(ours.copy().update(root=tmp_path / "other")).get_data()
        assert different.shape == read(ours).get_data().shape
        assert not np.array_equal(different, read(ours).get_data())
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "again") for p in (tmp_path / "again").rglob("*") if p.is_file())
    for rel in files:      # byte-identical, sidecars and binary files alike
        assert (root / rel).read_bytes() == (tmp_path / "again" / rel).read_bytes(), rel
    assert other.bad_channels == truth.bad_channels


def test_small_dataset_passes_the_bids_validator(demo_dataset):
    root, _ = demo_dataset
    executable = find_validator()
    assert executable, "bids-validator-deno must be installed for the tests"
    assert validation_errors(root, executable) == []


def test_default_dataset_is_fast_complete_and_valid(tmp_path):
    start = time.perf_counter()
    truth = write_demo_dataset(tmp_path / "full")
    elapsed = time.perf_counter() - start
    assert elapsed < 15.0, elapsed
    root = tmp_path / "full"
    assert validation_errors(root, find_validator()) == []
    for bids_path in bids_paths(root, truth):
        raw = read(bids_path)
        assert raw.times[-1] == pytest.approx(120.0, abs=0.01)
        descriptions = list(raw.annotations.description)
        assert descriptions.count("speech") >= 30 and descriptions.count("nonspeech") >= 30
        onsets = np.asarray(raw.annotations.onset)
        assert np.all(np.diff(onsets) >= 2.0 - 1e-6) and onsets[-1] + 1.0 <= 120.0 + 1e-6
    small_start = time.perf_counter()
    write_demo_dataset(tmp_path / "small", small=True)
    assert time.perf_counter() - small_start < 3.0


def test_more_subjects_and_rewriting_in_place(tmp_path):
    root = tmp_path / "ds"
    write_demo_dataset(root, small=True, duration_s=20.0)
    truth = write_demo_dataset(root, n_subjects=4, duration_s=12.0)
    assert sorted(truth.responsive) == ["01", "02", "03", "04"]
    assert truth.runs["04"] == [None] and truth.sampling_rates["04"] == 2048.0
    assert pd.read_csv(root / "participants.tsv", sep="\t")["participant_id"].tolist() == [
        "sub-01", "sub-02", "sub-03", "sub-04"]
    raw = read(mne_bids.BIDSPath(subject="04", session="01", task=TASK, datatype="ieeg", root=root))
    assert raw.times[-1] == pytest.approx(12.0, abs=0.01) and raw.info["bads"] == truth.bad_channels["04"]
    assert validation_errors(root, find_validator()) == []


def test_refuses_to_write_into_another_dataset(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "dataset_description.json").write_text("{}")
    with pytest.raises(FileExistsError):
        write_demo_dataset(tmp_path / "mine", small=True)
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["dataset_description.json"]


@pytest.mark.parametrize("kwargs", [{"n_subjects": 0}, {"duration_s": 5.0}, {"duration_s": float("nan")},
                                    {"seed": -1}, {"seed": 1.5}])
def test_bad_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        write_demo_dataset(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()
