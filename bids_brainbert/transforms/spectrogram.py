"""One entry point from a preprocessed signal to a spectrogram, whichever front end is configured.

The workflow calls :func:`spectrogram_front_end` once per recording and then feeds it channel batches, so the
superlet and STFT implementations stay interchangeable behind :class:`SpectrogramFrontEnd`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import RunConfig
from ..errors import RecordingError
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


def superlet_backend(config: RunConfig) -> tuple[str, str | None]:
    """(backend, device) for the superlet: torch on a GPU when asked for or, with 'auto', when one is present."""
    if config.superlet_backend == "numpy":
        return "numpy", None
    import torch

    gpu = torch.cuda.is_available() and config.device != "cpu"
    device = (None if config.device == "auto" else config.device) if gpu else "cpu"
    if config.superlet_backend == "torch":
        return "torch", device
    return ("torch", device) if gpu else ("numpy", None)


def spectrogram_front_end(config: RunConfig, sfreq: float, source: str = "") -> SpectrogramFrontEnd:
    """Build the configured front end for a signal sampled at ``sfreq`` Hz.

    Raises RecordingError (naming ``source``) when the rate cannot represent the requested frequencies.
    """
    if config.spectrogram == "superlet":
        if sfreq <= 2 * config.superlet_freq_max:
            raise RecordingError(f"{source}: sampling rate {sfreq:g} Hz is too low for frequencies up to "
                                 f"{config.superlet_freq_max:g} Hz (needs > {2 * config.superlet_freq_max:g} Hz)")
        params = SuperletParams(
            freqs_hz=tuple(np.linspace(config.superlet_freq_min, config.superlet_freq_max, config.superlet_n_freqs)),
            base_cycles=config.superlet_base_cycles,
            order_min=config.superlet_order_min,
            order_max=config.superlet_order_max,
            decimation=config.superlet_decimation,
            mode=config.superlet_mode,
            definition=config.superlet_definition,
        )
        backend, device = superlet_backend(config)
        return SpectrogramFrontEnd(
            kind="superlet", sfreq=sfreq, freqs_hz=np.asarray(params.freqs_hz),
            frame_rate_hz=sfreq / params.decimation, first_frame_time_s=0.0,
            edge_frames=edge_frames(sfreq, params), params={**params.to_dict(), "backend": backend},
            _superlet=params, _backend=backend, _device=device,
        )
    if config.spectrogram == "stft":
        params = StftParams(nperseg=config.stft_nperseg, noverlap=config.stft_noverlap, n_bins=config.stft_n_bins)
        if params.n_bins > params.nperseg // 2 + 1:
            raise RecordingError(f"{source}: {params.n_bins} STFT bins requested but nperseg={params.nperseg} "
                                 f"gives only {params.nperseg // 2 + 1}")
        probe_len = params.nperseg * 4
        _, freqs, times = stft_spectrogram(np.zeros((1, probe_len)), sfreq, nperseg=params.nperseg,
                                           noverlap=params.noverlap, n_bins=params.n_bins)
        hop = params.nperseg - params.noverlap
        return SpectrogramFrontEnd(
            kind="stft", sfreq=sfreq, freqs_hz=np.asarray(freqs), frame_rate_hz=sfreq / hop,
            first_frame_time_s=float(times[0]), edge_frames=int(np.ceil(params.nperseg / 2 / hop)),
            params=params.to_dict(), _stft=params,
        )
    raise RecordingError(f"{source}: unknown spectrogram kind {config.spectrogram!r}")
