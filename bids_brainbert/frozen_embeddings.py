"""Frozen-model embeddings of spectrogram windows: sliding windows per electrode and windows centred on events.

The arrays only; the embeddings step that finds the model and writes them as BIDS derivatives is
:mod:`bids_brainbert.workflows.embeddings`.

Windows are cut from a (n_channels, n_frames, n_freqs) spectrogram (usually a memory map), z-scored per
frequency within the window exactly as in pretraining, passed through the encoder, and pooled over frames:
``middle`` = mean of the middle k frames (BrainBERT's readout, k = 10) or ``mean`` = all frames.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from .errors import UsageError
from .model import BrainBertPretrainModel
from .precision import autocast
from .training.windows import zscore_frequencies

POOLINGS = ("middle", "mean")


@dataclass(frozen=True)
class EmbeddingParams:
    window_s: float = 5.0            # seconds per window (BrainBERT: 5 s)
    stride_s: float | None = None    # sliding-window step in seconds; None = window_s (non-overlapping)
    layer: int = -1                  # -1 last layer, 0 input stage, i the i-th transformer layer
    pooling: str = "middle"          # "middle" (mean of the middle ``middle_frames``) or "mean" (all frames)
    middle_frames: int = 10
    batch_size: int = 64             # windows per forward pass
    precision: str = "float32"       # "float32" or "bfloat16" (autocast; see bids_brainbert.precision)

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise UsageError(f"embedding pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        if self.window_s <= 0 or (self.stride_s is not None and self.stride_s <= 0) or self.middle_frames < 1:
            raise UsageError("embedding window, stride and middle frames must be positive")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pool_frames(hidden: torch.Tensor, pooling: str, middle_frames: int) -> torch.Tensor:
    """(B, T, d) -> (B, d)."""
    if pooling == "mean":
        return hidden.mean(dim=1)
    n_frames = hidden.shape[1]
    k = min(middle_frames, n_frames)
    start = (n_frames - k) // 2
    return hidden[:, start:start + k].mean(dim=1)


def embed_windows(model: BrainBertPretrainModel, windows: np.ndarray, params: EmbeddingParams,
                  device: torch.device | str = "cpu", normalize: bool = True) -> np.ndarray:
    """(N, T, n_freqs) raw spectrogram windows -> (N, d_model) float32 pooled embeddings (``normalize=False``:
    windows already normalised, see :mod:`bids_brainbert.windowing`)."""
    out = np.empty((len(windows), model.config.d_model), dtype=np.float32)
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(windows), params.batch_size):
            batch = np.stack([zscore_frequencies(np.asarray(w, dtype=np.float32)) if normalize
                              else np.asarray(w, dtype=np.float32) for w in windows[start:start + params.batch_size]])
            with autocast(params.precision, device):
                hidden = model.hidden_states(torch.from_numpy(batch).to(device), layer=params.layer)
            out[start:start + len(batch)] = pool_frames(hidden, params.pooling, params.middle_frames).float().cpu()
    return out


def window_frames(frame_rate_hz: float, seconds: float) -> int:
    return max(1, int(round(seconds * frame_rate_hz)))


def sliding_window_starts(n_frames: int, length: int, stride: int, edge_frames: int = 0) -> np.ndarray:
    """First frame of every window that fits between the edge zones."""
    last = n_frames - edge_frames - length
    if last < edge_frames:
        return np.zeros(0, dtype=int)
    return np.arange(edge_frames, last + 1, stride)


def windowed_embeddings(spectrogram: np.ndarray, frame_rate_hz: float, model: BrainBertPretrainModel,
                        params: EmbeddingParams, edge_frames: int = 0, start_time_s: float = 0.0,
                        device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Sliding-window embeddings per electrode.

    Returns (embeddings (n_channels, n_windows, d_model) float32, window centre times in seconds (n_windows,)).
    """
    length = window_frames(frame_rate_hz, params.window_s)
    stride = window_frames(frame_rate_hz, params.stride_s or params.window_s)
    starts = sliding_window_starts(spectrogram.shape[1], length, stride, edge_frames)
    embeddings = np.empty((spectrogram.shape[0], len(starts), model.config.d_model), dtype=np.float32)
    for channel in range(spectrogram.shape[0]):
        rows = np.asarray(spectrogram[channel])  # one electrode read from the memory map
        windows = np.stack([rows[s:s + length] for s in starts]) if len(starts) else rows[:0, None]
        embeddings[channel] = embed_windows(model, windows, params, device) if len(starts) else 0
    centres = start_time_s + (starts + length / 2) / frame_rate_hz
    return embeddings, centres


def event_window_starts(onsets_s: np.ndarray, n_frames: int, frame_rate_hz: float, length: int,
                        start_time_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Start frame of a window centred on each onset, and whether it lies inside the recording."""
    centres = np.round((np.asarray(onsets_s, float) - start_time_s) * frame_rate_hz).astype(int)
    starts = centres - length // 2
    valid = (starts >= 0) & (starts + length <= n_frames)
    return starts, valid


def event_locked_embeddings(spectrogram: np.ndarray, frame_rate_hz: float, onsets_s: np.ndarray,
                            model: BrainBertPretrainModel, params: EmbeddingParams, start_time_s: float = 0.0,
                            device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of windows centred on each event onset (events whose window leaves the recording are skipped).

    Returns (embeddings (n_channels, n_valid_events, d_model) float32, valid mask over the given events).
    """
    length = window_frames(frame_rate_hz, params.window_s)
    starts, valid = event_window_starts(onsets_s, spectrogram.shape[1], frame_rate_hz, length, start_time_s)
    kept = starts[valid]
    embeddings = np.empty((spectrogram.shape[0], len(kept), model.config.d_model), dtype=np.float32)
    for channel in range(spectrogram.shape[0]):
        if not len(kept):
            continue
        rows = np.asarray(spectrogram[channel])
        embeddings[channel] = embed_windows(model, np.stack([rows[s:s + length] for s in kept]), params, device)
    return embeddings, valid
