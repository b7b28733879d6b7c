"""Window-exact model input (--embedding-windowing brainbert) against an independent rewrite of how BrainBERT's
code built each window, and through the command line with a checkpoint in the published layout."""

import json
import warnings

import mne_bids
import numpy as np
import pandas as pd
import pytest
import torch
from scipy import signal as sps

from bids_brainbert.cli.run import main
from bids_brainbert.errors import UsageError
from bids_brainbert.params import SpectrogramParams
from bids_brainbert.transforms.spectrogram import spectrogram_front_end
from bids_brainbert.transforms.superlet import SuperletParams
from bids_brainbert.windowing import (brainbert_window_inputs, event_sample_starts, resolve_windowing,
                                      sliding_sample_starts)
from conftest import write_tiny_recording
from test_superlet import direct_superlet

SFREQ = 2048.0
WINDOW = 10240          # 5 s at 2048 Hz


def original_stft_window(x: np.ndarray) -> np.ndarray:
    """As described: scipy STFT (400/350, Hann) of the window alone, |first 40 bins|, z-score of every frequency
    over all frames (population sd), then 10 frames cut at each end; (time, frequency)."""
    _, _, z = sps.stft(x.astype(np.float64), fs=SFREQ, nperseg=400, noverlap=350)
    magnitude = np.abs(z[:40])
    assert magnitude.shape[1] == 206
    scores = (magnitude - magnitude.mean(axis=1, keepdims=True)) / magnitude.std(axis=1, keepdims=True)
    return scores[:, 10:-10].T


def original_superlet_window(x: np.ndarray, params: SuperletParams) -> np.ndarray:
    """As described: the superlet of the window alone at full rate, every 50th sample, 5 frames cut at each end,
    then each frequency z-scored over what is left; (time, frequency)."""
    full = direct_superlet(x.astype(np.float64), SFREQ, params, support_sd=5.0)
    kept = full[:, 5:-5]
    return ((kept - kept.mean(axis=1, keepdims=True)) / kept.std(axis=1, keepdims=True)).T


def window_signal(seed: int, n: int = WINDOW) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.standard_normal(n)) * 1e-6 + 2e-5 * rng.standard_normal(n)


def test_stft_windows_as_the_original():
    front_end = spectrogram_front_end(SpectrogramParams(kind="stft"), SFREQ)
    windows = np.stack([window_signal(1), window_signal(2)])
    ours = brainbert_window_inputs(front_end, windows)
    assert ours.shape == (2, 186, 40) and ours.dtype == np.float32
    for got, x in zip(ours, windows):
        np.testing.assert_allclose(got, original_stft_window(x), atol=2e-5)


def test_superlet_windows_as_the_original():
    front_end = spectrogram_front_end(SpectrogramParams(), SFREQ)   # BrainBERT's superlet parameters and wavelet set
    x = window_signal(3)
    ours = brainbert_window_inputs(front_end, x[None])[0]
    assert ours.shape == (195, 40)
    expected = original_superlet_window(x, front_end._superlet)
    # float32 kernel against a float64 direct convolution, in z-units
    assert np.abs(ours - expected).max() < 2e-2
    assert min(np.corrcoef(a, b)[0, 1] for a, b in zip(ours.T, expected.T)) > 0.999


def test_window_positions_and_choice():
    np.testing.assert_array_equal(sliding_sample_starts(25000, WINDOW, WINDOW), [0, WINDOW])
    starts, valid = event_sample_starts(np.array([1.0, 3.0, 6.0]), 8 * 2048, SFREQ, WINDOW)
    np.testing.assert_array_equal(starts, [2048 - 5120, 6144 - 5120, 12288 - 5120])
    np.testing.assert_array_equal(valid, [False, True, False])
    assert resolve_windowing("auto", published=True) == "brainbert"
    assert resolve_windowing("auto", published=False) == "recording"
    assert resolve_windowing("brainbert", published=False) == "brainbert"
    with pytest.raises(UsageError):
        resolve_windowing("frames", published=True)


def test_published_weights_get_window_exact_event_embeddings(tmp_path):
    """Through the command line, the event embedding of a window equals the published model run in float64 on
    that window built the original way."""
    from test_model import PublishedLayout, save_published_layout

    root = tmp_path / "rawdata"
    write_tiny_recording(root, "01", fmt="BrainVision", sfreq=SFREQ, seconds=8.0, seed=4)
    torch.manual_seed(3)
    layout = PublishedLayout(d=32, n_freqs=40, n_layers=2, nhead=4, d_ff=48)
    with torch.no_grad():
        for param in layout.parameters():
            param.add_(0.1 * torch.randn_like(param))
    checkpoint = tmp_path / "stft_large_pretrained.pth"
    save_published_layout(checkpoint, layout)
    out = tmp_path / "out"
    assert main([str(root), str(out), "participant", "--model", str(checkpoint), "--spectrogram", "stft",
                 "--reference", "none", "--no-line-noise", "--skip-bids-validation"]) == 0
    events_file = next(out.rglob("*_desc-brainbertEvents_embeddings.npy"))
    sidecar = json.loads(events_file.with_suffix(".json").read_text())
    assert sidecar["Windowing"]["Kind"] == "brainbert" and sidecar["Windowing"]["FramesPerWindow"] == 186
    assert sidecar["Windowing"]["WindowSamples"] == WINDOW
    kept = pd.read_csv(events_file.with_suffix(".tsv"), sep="\t")
    assert kept["onset"].tolist() == [3.0, 5.0]        # the windows of 1 s and 7 s leave the 8 s recording
    embeddings = np.load(events_file)
    names = pd.read_csv(next(out.rglob("*_desc-stft_channels.tsv")), sep="\t")["name"].tolist()
    with warnings.catch_warnings():  # the tiny dataset has no electrode positions
        warnings.simplefilter("ignore")
        raw = mne_bids.read_raw_bids(mne_bids.BIDSPath(subject="01", task="rest", datatype="ieeg", root=root),
                                     verbose=False)
    signal = raw.get_data(picks=names)
    reference = layout.double().eval()
    for event, onset in enumerate(kept["onset"]):
        centre = int(round(onset * SFREQ))
        for channel in (0, len(names) - 1):
            window = original_stft_window(signal[channel, centre - WINDOW // 2:centre + WINDOW // 2])
            with torch.no_grad():
                hidden = reference(torch.from_numpy(window)[None])[0][0]
            expected = hidden[88:98].mean(0).numpy()               # BrainBERT's readout: the middle 10 frames
            got = embeddings[channel, event]
            assert np.linalg.norm(got - expected) <= 1e-5 * np.linalg.norm(expected)
    # the Python API builds the same windows from the same signal
    from bids_brainbert import api

    via_api = api.window_exact_embeddings(signal, SFREQ, api.load_model(checkpoint), kept["onset"].to_numpy(),
                                          spectrogram="stft")
    assert via_api["events_windowing"] == sidecar["Windowing"] and via_api["kept"].all()
    np.testing.assert_allclose(via_api["events"], embeddings, rtol=1e-4, atol=1e-5 * np.abs(embeddings).max())
    np.testing.assert_allclose(via_api["windows"], np.load(next(out.rglob("*_desc-brainbert_embeddings.npy"))),
                               rtol=1e-4, atol=1e-5 * np.abs(embeddings).max())
    windows_sidecar = json.loads(next(out.rglob("*_desc-brainbert_embeddings.json")).read_text())
    assert windows_sidecar["Windowing"]["Kind"] == "brainbert" and windows_sidecar["Shape"][1] == 1
    assert via_api["windowing"] == windows_sidecar["Windowing"]
    # the sliding window [0, 5 s) as the original's pretraining segments reach its transform: less the last sample
    assert windows_sidecar["Windowing"]["WindowSamples"] == WINDOW - 1
    assert windows_sidecar["Windowing"]["FramesPerWindow"] == 186
    sliding = np.load(next(out.rglob("*_desc-brainbert_embeddings.npy")))
    for channel in (0, len(names) - 1):
        with torch.no_grad():
            hidden = reference(torch.from_numpy(original_stft_window(signal[channel, :WINDOW - 1]))[None])[0][0]
        expected = hidden.mean(0).numpy()                         # all frames, as for the dimensionality
        assert np.linalg.norm(sliding[channel, 0] - expected) <= 1e-5 * np.linalg.norm(expected)
    # asked for windows of the whole-recording spectrogram instead, the same weights give other embeddings
    frames = tmp_path / "frames"
    assert main([str(root), str(frames), "participant", "--model", str(checkpoint), "--spectrogram", "stft",
                 "--reference", "none", "--no-line-noise", "--skip-bids-validation",
                 "--embedding-windowing", "recording"]) == 0
    other_file = next(frames.rglob("*_desc-brainbertEvents_embeddings.npy"))
    assert json.loads(other_file.with_suffix(".json").read_text())["Windowing"]["Kind"] == "recording"
    other = np.load(other_file)
    assert other.shape == embeddings.shape
    assert np.linalg.norm(other - embeddings) > 1e-3 * np.linalg.norm(embeddings)
    # run again on that output with the default windowing: those embeddings are recomputed, not kept as done
    assert main([str(root), str(frames), "participant", "--model", str(checkpoint), "--spectrogram", "stft",
                 "--reference", "none", "--no-line-noise", "--skip-bids-validation"]) == 0
    assert json.loads(other_file.with_suffix(".json").read_text())["Windowing"]["Kind"] == "brainbert"
    np.testing.assert_array_equal(np.load(other_file), embeddings)


def test_superlet_window_exact_embeddings_through_the_cli(tmp_path):
    """--embedding-windowing brainbert with one of our (superlet) models: each window's superlet alone, 5 frames
    cut, z-scored, as an independent rewrite builds it from the same preprocessed signal."""
    from bids_brainbert.model import ModelConfig, build_model, save_checkpoint

    root = tmp_path / "rawdata"
    write_tiny_recording(root, "01", fmt="BrainVision", sfreq=SFREQ, seconds=8.0, seed=6)
    model = build_model(ModelConfig(n_freqs=40, d_model=16, n_layers=1, n_heads=2, d_ff=32, dropout=0.0), seed=1)
    checkpoint = save_checkpoint(tmp_path / "ours", model.eval())
    out = tmp_path / "out"
    assert main([str(root), str(out), "participant", "--model", str(checkpoint), "--reference", "none",
                 "--no-line-noise", "--embedding-windowing", "brainbert", "--skip-bids-validation"]) == 0
    events_file = next(out.rglob("*_desc-brainbertEvents_embeddings.npy"))
    windowing = json.loads(events_file.with_suffix(".json").read_text())["Windowing"]
    assert windowing["Kind"] == "brainbert" and windowing["FramesPerWindow"] == 195
    assert windowing["FramesCutEachEnd"] == 5
    names = pd.read_csv(next(out.rglob("*_desc-superlet_channels.tsv")), sep="\t")["name"].tolist()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = mne_bids.read_raw_bids(mne_bids.BIDSPath(subject="01", task="rest", datatype="ieeg", root=root),
                                     verbose=False)
    centre = int(round(3.0 * SFREQ))                        # the first event whose window fits
    window = original_superlet_window(raw.get_data(picks=names[:1])[0, centre - WINDOW // 2:centre + WINDOW // 2],
                                      SuperletParams())
    reference = model.double().eval()
    with torch.no_grad():
        expected = reference.hidden_states(torch.from_numpy(window)[None])[0, 92:102].mean(0).numpy()
    got = np.load(events_file)[0, 0]
    # float32 superlet kernel against the float64 direct convolution (measured: 7e-6)
    assert np.linalg.norm(got - expected) <= 1e-4 * np.linalg.norm(expected)
    # the superlet definition is recorded in the spectrogram sidecar, and Moca's set gives another spectrogram
    spectrogram = next(out.rglob("*_desc-superlet_spectrogram.npy"))
    assert json.loads(spectrogram.with_suffix(".json").read_text())["Transform"]["definition"] == "brainbert"
    moca = tmp_path / "moca"
    assert main([str(root), str(moca), "participant", "--reference", "none", "--no-line-noise",
                 "--superlet-definition", "moca", "--skip-bids-validation"]) == 0
    moca_spectrogram = next(moca.rglob("*_desc-superlet_spectrogram.npy"))
    assert json.loads(moca_spectrogram.with_suffix(".json").read_text())["Transform"]["definition"] == "moca"
    ours, theirs = np.load(spectrogram), np.load(moca_spectrogram)
    assert ours.shape == theirs.shape and np.abs(ours[:, :, 0] - theirs[:, :, 0]).max() > 0.05 * ours[:, :, 0].max()
