"""The Python API for pipelines: the README's example runs as written, and every step gives the CLI's numbers."""

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from bids_brainbert import api
from bids_brainbert.bids.discovery import index_recordings
from bids_brainbert.cli.run import main
from bids_brainbert.errors import UsageError
from bids_brainbert.model import build_model, save_checkpoint

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_python_example() -> str:
    """The first ```python block of the README's "Python API" section."""
    section = README.read_text(encoding="utf-8").split("## Python API", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "no python example in the README's Python API section"
    return blocks[0]


def write_model(models_dir: Path) -> Path:
    """A complete (resumable) checkpoint of a freshly initialised small model, as the group level leaves one."""
    model = build_model("small", seed=3)
    optimizer = torch.optim.AdamW(model.parameters())
    return save_checkpoint(models_dir / "checkpoints" / "step-00000001", model, optimizer=optimizer,
                           training_state={"step": 1})


@pytest.fixture
def demo_out(demo_derivatives, tmp_path):
    """``demo_out/`` laid out as after the README's demo and group level: rawdata, derivatives and a model."""
    root, out, _ = demo_derivatives
    demo = tmp_path / "demo_out"
    shutil.copytree(root, demo / "rawdata")
    shutil.copytree(out, demo / "derivatives" / "bids-brainbert")
    write_model(demo / "derivatives" / "bids-brainbert" / "models" / "desc-brainbert")
    return demo


def test_readme_example_runs(demo_out, capsys):
    previous = os.getcwd()
    os.chdir(demo_out.parent)
    try:
        namespace: dict = {}
        exec(compile(readme_python_example(), "README.md (Python API)", "exec"), namespace)
    finally:
        os.chdir(previous)
    windows, events, kept = namespace["windows"], namespace["events"], namespace["kept"]
    n_channels = namespace["written"].data.shape[0]
    assert windows.shape[0] == n_channels and windows.shape[1] >= 1 and windows.shape[2] == 384
    assert events.shape == (n_channels, int(kept.sum()), 384) and kept.any()
    assert np.isfinite(windows).all() and np.isfinite(events).all()
    assert "events embedded" in capsys.readouterr().out


def test_api_embeddings_equal_the_cli_derivatives(demo_out):
    """The participant level picks up the group model and writes embeddings; the API reproduces them."""
    rawdata, out = demo_out / "rawdata", demo_out / "derivatives" / "bids-brainbert"
    assert main([str(rawdata), str(out), "participant", "--skip-bids-validation", "--participant-label", "02"]) == 0
    recording = next(r for r in index_recordings(rawdata) if r.subject == "02")
    found = api.find_derivatives(out)
    path = found.loc[found["subject"] == "02", "path"].iloc[0]
    spectrogram = api.read_spectrogram(path)
    model = api.load_model(out / "models" / "desc-brainbert")
    windows, centres = api.sliding_embeddings(spectrogram, model)
    written = np.load(path.with_name(f"{recording.stem_entities}_desc-brainbert_embeddings.npy"))
    np.testing.assert_allclose(windows, written, rtol=1e-5, atol=1e-6)
    events_table = api.find_derivatives(out, suffix="embeddings")
    # the model's and, by default, its random-weights control's (same files, desc <label>Random)
    assert set(events_table["desc"]) == {"brainbert", "brainbertEvents", "brainbertRandom", "brainbertRandomEvents"}
    assert set(events_table["subject"]) == {"02"}


def test_preprocessing_options_reach_the_signal(demo_out):
    raw = next(r for r in index_recordings(demo_out / "rawdata") if r.subject == "01").path
    default = api.load_preprocessed(raw)
    lower = api.load_preprocessed(raw, sampling_rate=1024, reference="car", line_noise=False)
    assert default.sfreq == 2048 and lower.sfreq == 1024
    assert lower.signal.shape[1] == pytest.approx(default.signal.shape[1] / 2, abs=1)
    assert lower.provenance["LineNoise"]["applied"] is False
    assert lower.provenance["Reference"]["scheme"] == "car"
    # the shaft Laplacian (default for sEEG) drops shaft ends; a common average keeps every contact
    assert len(lower.channels) == lower.signal.shape[0] > len(default.channels) == default.signal.shape[0]
    spectrogram = api.compute_spectrogram(lower.signal[:2], lower.sfreq, superlet_n_freqs=10, superlet_freq_max=100)
    assert spectrogram.data.shape[0] == 2 and spectrogram.data.shape[2] == 10
    assert spectrogram.freqs_hz[-1] == pytest.approx(100) and spectrogram.frame_rate_hz == pytest.approx(1024 / 50)
    stft = api.compute_spectrogram(lower.signal[:2], lower.sfreq, spectrogram="stft")
    assert stft.sidecar["Transform"]["Kind"] == "stft" and stft.data.shape[2] == 40


def test_bad_inputs_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="unknown option"):
        api.load_preprocessed(tmp_path / "sub-01_task-x_ieeg.edf", sampling_rte=100)
    with pytest.raises(UsageError, match="unknown option"):   # a front-end option is not preprocessing's
        api.load_preprocessed(tmp_path / "sub-01_task-x_ieeg.edf", superlet_n_freqs=10)
    with pytest.raises(UsageError, match="superlet-freq-min"):   # checked once, by the parameters
        api.compute_spectrogram(np.zeros((1, 4096)), 2048.0, superlet_freq_min=300.0)
    with pytest.raises(UsageError, match="not an existing BIDS iEEG recording"):
        api.load_preprocessed(tmp_path / "sub-01_task-x_ieeg.edf")
    (tmp_path / "models" / "checkpoints").mkdir(parents=True)
    with pytest.raises(UsageError, match="no complete checkpoint"):
        api.load_model(tmp_path / "models")
    assert api.find_derivatives(tmp_path).empty
