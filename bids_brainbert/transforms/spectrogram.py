"""One entry point from a preprocessed signal to a spectrogram, whichever front end is configured.

The workflow calls :func:`spectrogram_front_end` once per recording and then feeds it channel batches, so the
superlet and STFT implementations stay interchangeable behind :class:`SpectrogramFrontEnd`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import RecordingError
from ..params import SpectrogramParams
from .stft import StftParams, stft_spectrogram
from .superlet import SuperletParams, edge_frames, superlet_transform


@dataclass(frozen=True)
class SpectrogramFrontEnd:
    """A configured time-frequency transform for one sampling rate."""

    kind: str                      # "superlet" | "stft"
    sfreq: float                   # Hz of the input signal
    freqs_hz: np.ndarray           # (n_freqs,)
    frame_rate_hz: float           # output frames per second
    first_frame_time_s: float      # time of frame 0 relative to the first sample
    edge_frames: int               # frames at each end influenced by zero padding
    params: dict[str, Any]         # JSON-serialisable parameters, for sidecars
    _superlet: SuperletParams | None = None
    _stft: StftParams | None = None
    _backend: str = "numpy"
    _device: str | None = None

    def n_frames(self, n_samples: int) -> int:
        if self._superlet is not None:
            return -(-n_samples // self._superlet.decimation)
        return stft_spectrogram(np.zeros((1, n_samples)), self.sfreq, **self._stft_kwargs())[0].shape[-1]

    def _stft_kwargs(self) -> dict[str, Any]:
        p = self._stft
        return {"nperseg": p.nperseg, "noverlap": p.noverlap, "n_bins": p.n_bins}

    def transform(self, signal: np.ndarray) -> np.ndarray:
        """(n_channels, n_samples) volts -> (n_channels, n_freqs, n_frames) float32 magnitude."""
        if self._superlet is not None:
            return superlet_transform(signal, self.sfreq, self._superlet, dtype=np.float32, backend=self._backend,
                                      device=self._device)
        spec, _, _ = stft_spectrogram(np.asarray(signal, dtype=np.float64), self.sfreq, **self._stft_kwargs())
        return spec.astype(np.float32, copy=False)


def superlet_backend(backend: str, device: str) -> tuple[str, str | None]:
    """(backend, device) for the superlet: torch on a GPU when asked for or, with 'auto', when one is present
    (``device``: the --device request)."""
    if backend == "numpy":
        return "numpy", None
    import torch   # only the torch backend needs it

    gpu = torch.cuda.is_available() and device != "cpu"
    resolved = (None if device == "auto" else device) if gpu else "cpu"
    if backend == "torch":
        return "torch", resolved
    return ("torch", resolved) if gpu else ("numpy", None)


def spectrogram_front_end(params: SpectrogramParams, sfreq: float, source: str = "") -> SpectrogramFrontEnd:
    """Build the configured front end for a signal sampled at ``sfreq`` Hz.

    Raises RecordingError (naming ``source``) when the rate cannot represent the requested frequencies.
    """
    if params.kind == "superlet":
        settings = params.superlet
        if sfreq <= 2 * settings.freq_max:
            raise RecordingError(f"{source}: sampling rate {sfreq:g} Hz is too low for frequencies up to "
                                 f"{settings.freq_max:g} Hz (needs > {2 * settings.freq_max:g} Hz)")
        superlet = settings.transform_params()
        backend, device = superlet_backend(settings.backend, params.device)
        return SpectrogramFrontEnd(
            kind="superlet", sfreq=sfreq, freqs_hz=np.asarray(superlet.freqs_hz),
            frame_rate_hz=sfreq / superlet.decimation, first_frame_time_s=0.0,
            edge_frames=edge_frames(sfreq, superlet), params={**superlet.to_dict(), "backend": backend},
            _superlet=superlet, _backend=backend, _device=device,
        )
    stft = params.stft
    if stft.n_bins > stft.nperseg // 2 + 1:
        raise RecordingError(f"{source}: {stft.n_bins} STFT bins requested but nperseg={stft.nperseg} "
                             f"gives only {stft.nperseg // 2 + 1}")
    probe_len = stft.nperseg * 4
    _, freqs, times = stft_spectrogram(np.zeros((1, probe_len)), sfreq, nperseg=stft.nperseg,
                                       noverlap=stft.noverlap, n_bins=stft.n_bins)
    hop = stft.nperseg - stft.noverlap
    return SpectrogramFrontEnd(
        kind="stft", sfreq=sfreq, freqs_hz=np.asarray(freqs), frame_rate_hz=sfreq / hop,
        first_frame_time_s=float(times[0]), edge_frames=int(np.ceil(stft.nperseg / 2 / hop)),
        params=stft.to_dict(), _stft=stft,
    )
