"""STFT front end with BrainBERT's published parameters (the released weights were trained on it).

scipy.signal.stft, Hann window of 400 samples, 350 overlap (hop 50), the first 40 bins, magnitude. At 2048 Hz that
is 0-199.7 Hz in 5.12 Hz steps; at other rates the bin frequencies follow the rate and are reported in Hz.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import signal as sps


@dataclass(frozen=True)
class StftParams:
    nperseg: int = 400
    noverlap: int = 350
    n_bins: int = 40
    window: str = "hann"
    output: str = "magnitude"     # "magnitude" | "power"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def stft_spectrogram(signal: np.ndarray, sfreq: float, *, nperseg: int = 400, noverlap: int = 350, n_bins: int = 40,
                     window: str = "hann", output: str = "magnitude"
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n_channels, n_samples) -> (spec (n_channels, n_bins, n_frames), freqs_hz (n_bins,), frame_times_s).

    Frame times are the centres of the analysis windows relative to the first sample (scipy's zero-padded
    boundary: the first frame is centred on sample 0).
    """
    x = np.atleast_2d(np.asarray(signal, dtype=np.float64))
    freqs, times, z = sps.stft(x, fs=sfreq, window=window, nperseg=nperseg, noverlap=noverlap, axis=-1)
    magnitude = np.abs(z[:, :n_bins, :])
    if output == "power":
        magnitude = magnitude ** 2
    elif output != "magnitude":
        raise ValueError(f"unknown STFT output {output!r}")
    return magnitude, freqs[:n_bins], times
