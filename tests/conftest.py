"""Shared pytest fixtures."""

import hashlib
from datetime import datetime, timezone
from pathlib import Path

import pytest

from bids_brainbert.cli.run import main
from bids_brainbert.io.simulate import write_demo_dataset

# long enough that windows fit between the superlet edge zones (18 s at each end for 0.1 Hz)
DEMO_SECONDS = 60.0


@pytest.fixture(scope="session")
def demo_dataset(tmp_path_factory):
    """The small simulated BIDS iEEG dataset (seed 42), written once per session: ``(root, DemoTruth)``.

    Shared by many tests: treat it as read-only (copy it before changing anything).
    """
    root = tmp_path_factory.mktemp("demo") / "rawdata"
    truth = write_demo_dataset(root, small=True, duration_s=DEMO_SECONDS)
    return root, truth


def tree_digest(root: Path) -> str:
    """One hash over every file's relative path and bytes (to prove a tree was not modified)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="session")
def demo_derivatives(demo_dataset, tmp_path_factory):
    """The participant level run once (validator on, two processes) on the small demo dataset:
    ``(root, output_dir, DemoTruth)``. Read-only for the tests: copy before changing."""
    root, truth = demo_dataset
    before = tree_digest(root)
    out = tmp_path_factory.mktemp("derivatives") / "bids-brainbert"
    assert main([str(root), str(out), "participant", "--nprocs", "2", "--random-seed", "7"]) == 0
    assert tree_digest(root) == before, "the input dataset was modified"
    return root, out, truth


# ------------------------------------------------------------------------------------ tiny datasets (mne-bids)
TINY_CHANNELS = tuple(f"LA{i}" for i in range(1, 7))    # one sEEG shaft; the Laplacian keeps LA2..LA5


def tiny_signal(n_samples: int, seed: int, n_channels: int = len(TINY_CHANNELS) + 1) -> "np.ndarray":
    """iEEG-like noise in volts (a few tens of µV: random walk plus white noise), reproducible from ``seed``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.standard_normal((n_channels, n_samples)), axis=1)
    walk -= walk.mean(axis=1, keepdims=True)
    return 2e-6 * walk + 20e-6 * rng.standard_normal((n_channels, n_samples))


def write_tiny_recording(root: Path, subject: str, run: str | None = None, fmt: str = "EDF", sfreq: float = 512.0,
                         seconds: float = 8.0, data: "np.ndarray | None" = None, seed: int = 0) -> Path:
    """One recording of six sEEG contacts (LA1..LA6) and an ECG channel written with mne-bids; returns its path.

    ``data`` (channels x samples, volts) replaces the simulated signal, e.g. to plant NaN, flat or clipped
    channels (BrainVision stores float32, so NaN survives)."""
    import warnings

    import mne
    import mne_bids
    import numpy as np

    names, types = list(TINY_CHANNELS) + ["ECG"], ["seeg"] * len(TINY_CHANNELS) + ["ecg"]
    n_samples = int(round(sfreq * seconds))
    signal = tiny_signal(n_samples, seed) if data is None else np.asarray(data, dtype=float)
    raw = mne.io.RawArray(signal, mne.create_info(names, sfreq, types, verbose=False), verbose=False)
    raw.set_meas_date(datetime(2020, 1, 1, tzinfo=timezone.utc))
    raw.info["line_freq"] = 50
    onsets = np.arange(1.0, seconds - 1.0, 2.0)
    raw.set_annotations(mne.Annotations(onsets, [0.5] * len(onsets), ["a", "b"] * (len(onsets) // 2)
                                        + ["a"] * (len(onsets) % 2)))
    path = mne_bids.BIDSPath(subject=subject, task="rest", run=run, datatype="ieeg", root=root)
    with warnings.catch_warnings(), mne.utils.use_log_level("error"):
        warnings.simplefilter("ignore")
        mne_bids.write_raw_bids(raw, path, event_id={"a": 1, "b": 2}, format=fmt, allow_preload=True,
                                physical_range="channelwise" if fmt == "EDF" else "auto", overwrite=True,
                                verbose=False)
    mne_bids.make_dataset_description(path=root, name="tiny", dataset_type="raw", authors=["tests"],
                                      overwrite=True, verbose=False)
    return next(root.glob(f"sub-{subject}/ieeg/{path.basename}_ieeg.*"))


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """Three 8 s recordings (sub-01 run-01 and run-02 in EDF, sub-02 in BrainVision), 512 Hz, six sEEG contacts.

    Read-only for the tests: copy it before changing anything."""
    root = tmp_path_factory.mktemp("tiny") / "rawdata"
    write_tiny_recording(root, "01", "01", "EDF", seed=1)
    write_tiny_recording(root, "01", "02", "EDF", seed=2)
    write_tiny_recording(root, "02", None, "BrainVision", seed=3)
    return root
