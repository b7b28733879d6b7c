"""MEF3 and NWB recordings: written with mef3io and pynwb, read as the same raw as their BrainVision twin, through
the participant and group levels to the same outputs; discontinuous, mixed-rate and encrypted files refused."""

import json
import shutil
from pathlib import Path

import mef3io
import numpy as np
import pandas as pd
import pytest

from bids_brainbert.bids.discovery import index_recordings
from bids_brainbert.cli.run import main
from bids_brainbert.errors import RecordingError
from bids_brainbert.io import loading
from bids_brainbert.io.convert import twin_dataset, write_mef3, write_nwb
from bids_brainbert.io.formats import MEF3_PASSWORD_VARIABLE

from conftest import write_tiny_recording

SECONDS = 20.0
STFT = ["--skip-bids-validation", "--random-seed", "5", "--spectrogram", "stft", "--embedding-window-s", "2"]
GROUP = [*STFT, "--train-steps", "4", "--batch-size", "8", "--checkpoint-every", "4", "--model-size", "small",
         "--train-window-s", "2", "--analysis", "pretrain"]


def float32_close(actual: np.ndarray, expected: np.ndarray) -> None:
    """Equal within the rounding of float32 samples (BrainVision stores float32)."""
    np.testing.assert_allclose(actual, expected, rtol=0, atol=4 * np.finfo(np.float32).eps * np.abs(expected).max())


@pytest.fixture(scope="module")
def brainvision(tmp_path_factory) -> Path:
    """Two 20 s BrainVision recordings at 512 Hz (LA1..LA6 sEEG, ECG), LA3 marked bad in sub-02's channels.tsv."""
    root = tmp_path_factory.mktemp("formats") / "brainvision"
    write_tiny_recording(root, "01", None, "BrainVision", seconds=SECONDS, seed=11)
    write_tiny_recording(root, "02", None, "BrainVision", seconds=SECONDS, seed=12)
    channels = root / "sub-02/ieeg/sub-02_task-rest_channels.tsv"
    table = pd.read_csv(channels, sep="\t", dtype=str, keep_default_na=False)
    table.loc[table["name"] == "LA3", "status"] = "bad"
    table.to_csv(channels, sep="\t", index=False, lineterminator="\n")
    return root


@pytest.fixture(scope="module")
def twins(brainvision) -> dict[str, Path]:
    """The BrainVision dataset rewritten as MEF3, as NWB, and mixed (sub-01 MEF3, sub-02 NWB)."""
    out = {fmt: twin_dataset(brainvision, brainvision.with_name(fmt), fmt) for fmt in ("MEF3", "NWB")}
    mixed = brainvision.with_name("mixed")
    shutil.copytree(out["MEF3"], mixed)
    shutil.rmtree(mixed / "sub-02")
    shutil.copytree(out["NWB"] / "sub-02", mixed / "sub-02")
    out["mixed"] = mixed
    return out


@pytest.mark.parametrize("fmt, extension", [("MEF3", ".mefd"), ("NWB", ".nwb")])
def test_a_twin_reads_as_the_brainvision_raw(brainvision, twins, fmt, extension):
    """Samples in volts, names, types, status and annotations equal read_raw_bids' raw of the BrainVision file."""
    for original, twin in zip(index_recordings(brainvision), index_recordings(twins[fmt]), strict=True):
        assert twin.path.suffix == extension and twin.entities == original.entities
        expected, actual = loading.read_raw(original, preload=False), loading.read_raw(twin, preload=False)
        assert actual.ch_names == expected.ch_names
        assert actual.get_channel_types() == expected.get_channel_types()
        assert actual.info["bads"] == expected.info["bads"]
        assert actual.info["sfreq"] == expected.info["sfreq"] and actual.n_times == expected.n_times
        assert actual.info["line_freq"] == expected.info["line_freq"] == 50
        assert actual.info["meas_date"] == expected.info["meas_date"]
        np.testing.assert_array_equal(actual.annotations.onset, expected.annotations.onset)
        assert list(actual.annotations.description) == list(expected.annotations.description)
        float32_close(actual.get_data(), expected.get_data())
        # a window in the middle: the sample grid is the same whatever the rate's period in microseconds
        float32_close(actual.get_data(start=1234, stop=3456), expected.get_data(start=1234, stop=3456))


@pytest.mark.parametrize("fmt", ["MEF3", "NWB"])
def test_a_twin_loads_as_the_brainvision_recording(brainvision, twins, fmt):
    """open_recording: the same analysed channels, left-out channels (type, status=bad) and events; the
    channel-batched reads that bound memory give the same samples as one read."""
    for original, twin in zip(index_recordings(brainvision), index_recordings(twins[fmt]), strict=True):
        expected = loading.open_recording(original).load()
        opened = loading.open_recording(twin, batch_channels=1)
        actual = opened.load()
        assert actual.ch_names == expected.ch_names and actual.ch_types == expected.ch_types
        assert actual.dropped == expected.dropped
        pd.testing.assert_frame_equal(actual.events, expected.events)
        pd.testing.assert_frame_equal(actual.electrodes, expected.electrodes)
        float32_close(actual.data, expected.data)
        np.testing.assert_array_equal(opened.read([2, 0]), actual.data[[2, 0]])
    assert "LA3" in loading.open_recording(index_recordings(twins[fmt])[1]).dropped


def test_nwb_channel_names_from_channels_tsv(brainvision, tmp_path):
    """An electrodes table without label/name column: channels are named by channels.tsv, in its order."""
    root = tmp_path / "ds"
    shutil.copytree(brainvision, root, ignore=shutil.ignore_patterns("sub-02"))
    original = index_recordings(root)[0]
    raw = loading.read_raw(original)
    path = write_nwb(raw, original.path.with_suffix(".nwb"), labels=False)
    for partner in (".vhdr", ".vmrk", ".eeg"):
        original.path.with_suffix(partner).unlink()
    twin = index_recordings(root)[0]
    assert twin.path == path
    loaded = loading.open_recording(twin).load()
    assert loaded.ch_names == ["LA1", "LA2", "LA3", "LA4", "LA5", "LA6"]
    float32_close(loaded.data, raw.get_data(picks=loaded.ch_names))


@pytest.fixture(scope="module")
def level_outputs(brainvision, twins, tmp_path_factory):
    """Participant then group level on the BrainVision dataset and on its mixed MEF3 + NWB twin."""
    outputs = {}
    for name, root in (("brainvision", brainvision), ("mixed", twins["mixed"])):
        out = tmp_path_factory.mktemp(f"out-{name}") / "bids-brainbert"
        validated = [arg for arg in STFT if arg != "--skip-bids-validation"] if name == "mixed" else STFT
        assert main([str(root), str(out), "participant", *validated]) == 0  # the twin passes the validator
        assert main([str(root), str(out), "group", *GROUP]) == 0
        outputs[name] = out
    assert main([str(brainvision), str(outputs["brainvision"]), "group", *STFT, "--analysis", "decoding",
                 "--decoding-window-s", "1", "--decoding-contrast", "a,b", "--data-efficiency-draws", "2"]) == 0
    return outputs


def test_participant_and_group_outputs_equal_the_brainvision_twin(level_outputs):
    """Spectrograms within float32 rounding, channel and event tables equal; the embeddings of the models
    pretrained on each agree (12 AdamW steps amplify the inputs' float32 rounding a little: Adam divides tiny
    gradients by their own size)."""
    expected_root, actual_root = level_outputs["brainvision"], level_outputs["mixed"]
    files = sorted(p.relative_to(expected_root) for p in expected_root.glob("sub-*/ieeg/*"))
    assert {p.suffix for p in files} == {".npy", ".tsv", ".json"}
    assert files == sorted(p.relative_to(actual_root) for p in actual_root.glob("sub-*/ieeg/*"))
    for relative in files:
        expected, actual = expected_root / relative, actual_root / relative
        if relative.name.endswith("_spectrogram.npy"):
            float32_close(np.load(actual), np.load(expected))
        elif relative.suffix == ".npy":
            np.testing.assert_allclose(np.load(actual), np.load(expected), rtol=0.05, atol=0.05)
        elif relative.suffix == ".tsv":
            pd.testing.assert_frame_equal(pd.read_csv(actual, sep="\t"), pd.read_csv(expected, sep="\t"))
        elif relative.name.endswith("_spectrogram.json"):
            a, b = json.loads(actual.read_text()), json.loads(expected.read_text())
            assert a["Preprocessing"] == b["Preprocessing"] and a["Sources"] != b["Sources"]
            assert a["Sources"][0].endswith((".mefd", ".nwb"))
    assert (actual_root / "models/desc-brainbert/checkpoints/latest.json").is_file()


# ------------------------------------------------------------------------------------------- refused inputs
def _replace_session(twins, tmp_path, write) -> Path:
    """A copy of the MEF3 twin whose sub-01 session is rewritten by ``write(path, raw)``."""
    root = tmp_path / "ds"
    shutil.copytree(twins["MEF3"], root)
    recording = index_recordings(root)[0]
    raw = loading.read_raw(recording)
    shutil.rmtree(recording.path)
    write(recording.path, raw)
    return recording.path


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line.strip() for line in err.split("recording(s) failed:\n", 1)[1].splitlines() if line.startswith("  ")]
    assert len(lines) == 1, err
    return lines[0]


PASSWORDS = ("secret", "level-2 secret")


def _gapped(path, raw):
    data = raw.get_data() * 1e6
    data[:, 2000:2600] = np.nan          # NaN runs are stored as a discontinuity
    with mef3io.Writer(str(path), overwrite=True, units="uV") as writer:
        for name, row in zip(raw.ch_names, data):
            writer.write(name, row, 1_577_836_800_000_000, fs=raw.info["sfreq"], precision=5)


def _mixed_rates(path, raw):
    with mef3io.Writer(str(path), overwrite=True, units="uV") as writer:
        for name, row in zip(raw.ch_names, raw.get_data() * 1e6):
            keep = row[::2] if name == "ECG" else row
            writer.write(name, keep, 1_577_836_800_000_000, fs=raw.info["sfreq"] / (2 if name == "ECG" else 1),
                         precision=5)


@pytest.mark.parametrize("write, reason", [
    (_gapped, "discontinuous MEF3 recording (channel ECG: 1.172 s missing"),
    (_mixed_rates, "channels stored at different sampling rates (256 Hz: ECG; 512 Hz: LA1, LA2, LA3 ...)"),
    (lambda path, raw: write_mef3(raw, path, passwords=PASSWORDS), "encrypted MEF3 session: set its password"),
], ids=["discontinuous", "mixed-rates", "encrypted"])
def test_a_mef3_session_that_cannot_be_analysed_is_refused_naming_it(twins, tmp_path, capsys, write, reason):
    path = _replace_session(twins, tmp_path, write)
    assert main([str(tmp_path / "ds"), str(tmp_path / "out"), "participant", *STFT]) == 1
    line = _one_error_line(capsys)
    assert line.startswith(f"{path}: ") and reason in line, line
    assert not list((tmp_path / "out").glob("sub-01/ieeg/*_spectrogram.npy"))
    assert list((tmp_path / "out").glob("sub-02/ieeg/*_spectrogram.npy"))


def test_an_encrypted_mef3_session_opens_with_the_password_from_the_environment(twins, tmp_path, monkeypatch):
    path = _replace_session(twins, tmp_path, lambda path, raw: write_mef3(raw, path, passwords=PASSWORDS))
    recording = index_recordings(tmp_path / "ds")[0]
    monkeypatch.setenv(MEF3_PASSWORD_VARIABLE, "wrong")
    with pytest.raises(RecordingError, match="the password in BIDS_BRAINBERT_MEF3_PASSWORD does not open it"):
        loading.open_recording(recording)
    monkeypatch.setenv(MEF3_PASSWORD_VARIABLE, "secret")
    expected = loading.open_recording(index_recordings(twins["MEF3"])[0]).load()
    assert recording.path == path
    np.testing.assert_array_equal(loading.open_recording(recording).load().data, expected.data)


def _nwb_with(path: Path, raw, series: list[dict]) -> None:
    """An NWB file whose acquisition holds ElectricalSeries built from ``series`` (keyword sets over raw's
    channels: ``channels``, ``data``, ``rate`` or ``timestamps``)."""
    import pynwb
    from pynwb.ecephys import ElectricalSeries

    nwbfile = pynwb.NWBFile(session_description="test", identifier="x", session_start_time=raw.info["meas_date"])
    device = nwbfile.create_device(name="amp")
    group = nwbfile.create_electrode_group(name="g", description="g", location="n/a", device=device)
    nwbfile.add_electrode_column(name="label", description="channel name")
    for name in raw.ch_names:
        nwbfile.add_electrode(group=group, location="n/a", label=name)
    for k, spec in enumerate(series):
        rows = [raw.ch_names.index(name) for name in spec.pop("channels")]
        region = nwbfile.create_electrode_table_region(rows, "channels")
        nwbfile.add_acquisition(ElectricalSeries(name=f"s{k}", electrodes=region, **spec))
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)


def test_an_nwb_file_that_cannot_be_analysed_is_refused_naming_it(twins, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(twins["NWB"], root)
    recording = index_recordings(root)[0]
    raw = loading.read_raw(recording)
    data, sfreq = raw.get_data().T, raw.info["sfreq"]
    seeg = [name for name in raw.ch_names if name != "ECG"]
    times = np.arange(raw.n_times) / sfreq
    times[5000:] += 2.0                              # a 2 s gap
    _nwb_with(recording.path, raw, [{"channels": raw.ch_names, "data": data, "timestamps": times}])
    with pytest.raises(RecordingError, match=r"discontinuous timestamps \(1 step\(s\) off the 0.00195312 s sample "
                                             r"period, the first at 9.764 s"):
        loading.open_recording(recording)
    _nwb_with(recording.path, raw, [{"channels": seeg, "data": data[:, :6], "rate": sfreq},
                                    {"channels": ["ECG"], "data": data[::2, 6:], "rate": sfreq / 2}])
    with pytest.raises(RecordingError, match=f"^{recording.path}: ElectricalSeries at different rates"):
        loading.open_recording(recording)
    # regular timestamps and two series of one rate: read as one recording
    _nwb_with(recording.path, raw, [{"channels": seeg, "data": data[:5000, :6], "timestamps": times[:5000] + 1},
                                    {"channels": ["ECG"], "data": data[:5000, 6:], "timestamps": times[:5000] + 1}])
    # (checked=True: this shortened copy no longer holds the last events, which the table checks would refuse)
    joined = loading.read_raw(recording, checked=True)
    assert joined.ch_names == raw.ch_names and joined.n_times == 5000 and joined.info["sfreq"] == pytest.approx(sfreq)
    np.testing.assert_array_equal(joined.get_data(), raw.get_data(stop=5000))


# ------------------------------------------------------------------------------------------------- PyBIDS
def test_pybids_finds_every_derivative_by_its_entities(brainvision, level_outputs):
    """Plain BIDSLayout(OUT, validate=False) and BIDSLayout(raw, derivatives=OUT) find spectrograms, channel
    tables, embeddings, event embeddings and group tables with their sidecars; api.find_derivatives(as_layout=True)
    finds the models too, by desc and checkpoint step."""
    from bids import BIDSLayout

    from bids_brainbert import api

    out = level_outputs["brainvision"]
    plain = BIDSLayout(out, validate=False)
    with_raw = BIDSLayout(brainvision, derivatives=out)
    ours = api.find_derivatives(out, as_layout=True)
    for layout, scope in ((plain, "all"), (with_raw, "bids-brainbert"), (ours, "all")):
        def found(**entities):
            return sorted(Path(f.path).relative_to(out).as_posix() for f in layout.get(scope=scope, **entities))

        assert found(subject="02", desc="stft", suffix="spectrogram", extension=".npy") == [
            "sub-02/ieeg/sub-02_task-rest_desc-stft_spectrogram.npy"]
        assert found(task="rest", suffix="channels", extension=".tsv", desc="stft") == [
            f"sub-0{s}/ieeg/sub-0{s}_task-rest_desc-stft_channels.tsv" for s in (1, 2)]
        assert found(subject="01", desc="brainbert", suffix="embeddings", extension=".npy") == [
            "sub-01/ieeg/sub-01_task-rest_desc-brainbert_embeddings.npy"]
        assert found(subject="01", desc="brainbertEvents", suffix="embeddings", extension=".tsv") == [
            "sub-01/ieeg/sub-01_task-rest_desc-brainbertEvents_embeddings.tsv"]
        assert found(task="rest", desc="decoding", suffix="summary", extension=".tsv") == [
            "task-rest_desc-decoding_summary.tsv"]
        spectrogram = out / "sub-02/ieeg/sub-02_task-rest_desc-stft_spectrogram.npy"
        metadata = layout.get_metadata(str(spectrogram), scope=scope)
        assert metadata == json.loads(spectrogram.with_suffix(".json").read_text())
        assert metadata["Units"] == "V" and metadata["ChannelsFile"] == "sub-02_task-rest_desc-stft_channels.tsv"
    assert with_raw.get(scope="raw", subject="02", suffix="ieeg", extension=".vhdr")
    latest = json.loads((out / "models/desc-brainbert/checkpoints/latest.json").read_text())["checkpoint"]
    step = latest.split("-")[1]
    models = ours.get(desc="brainbert", suffix="model", extension=".safetensors", step=step)
    assert [Path(f.path) for f in models] == [out / f"models/desc-brainbert/checkpoints/{latest}/model.safetensors"]
    assert ours.get(return_type="id", target="step") == [step]


def test_an_nwb_file_pointing_outside_the_dataset_is_refused(twins, tmp_path):
    """An HDF5 external link would make us read a file outside the input dataset."""
    import h5py

    root = tmp_path / "ds"
    shutil.copytree(twins["NWB"], root)
    recording = index_recordings(root)[0]
    outside = tmp_path / "outside.h5"
    with h5py.File(outside, "w") as handle:
        handle["data"] = np.zeros((10, 7), dtype=np.float32)
    with h5py.File(recording.path, "a") as handle:
        del handle["acquisition/ieeg/data"]
        handle["acquisition/ieeg/data"] = h5py.ExternalLink(str(outside), "data")
    with pytest.raises(RecordingError, match=f"^{recording.path}: refers to data in other files "
                                             r"\(acquisition/ieeg/data \(external link to "):
        loading.open_recording(recording)


def test_a_mef3_session_linking_outside_the_dataset_is_refused(twins, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(twins["MEF3"], root)
    recording = index_recordings(root)[0]
    data = next(recording.path.glob("LA2.timd/*.segd/*.tdat"))
    outside = tmp_path / "elsewhere.tdat"
    shutil.move(data, outside)
    data.symlink_to(outside)
    with pytest.raises(RecordingError, match=f"^{recording.path}: LA2.timd/.*tdat is a symbolic link out of the "
                                             "session folder"):
        loading.open_recording(recording)
