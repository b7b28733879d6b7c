"""Model input built window by window, as BrainBERT's own code built it (``--embedding-windowing brainbert``).

The original transforms each 5 s window of signal on its own, never the whole recording:

- STFT (the published weights): scipy's STFT of the window's samples (zero-padded boundary), magnitude of the
  first bins, each frequency z-scored over all the window's frames (206 for 10,240 samples), then 10 frames cut at
  each end: 186 frames into the model.
- Superlet: the superlet of the window alone, every ``decimation``-th sample, 5 frames cut at each end, then each
  frequency z-scored over the frames left: 195 frames for 10,240 samples.

Its decoding and feature windows are the 10,240 samples [onset - 5120, onset + 5120) (event embeddings here); the
5 s segments of its pretraining data reach its transform less their last sample (sliding-window embeddings here:
10,239 samples from each window start; the frame counts are the same). Our own models instead see windows cut
from one whole-recording transform (``recording``): no window edge is zero-padded, and a recording is transformed
once, not once per window. ``auto`` picks ``brainbert`` for the published weights (they were trained on per-window input) and
``recording`` otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import UsageError

WINDOWINGS = ("auto", "recording", "brainbert")
# Frames the original drops at each end of a window, after (STFT) or before (superlet) z-scoring.
STFT_CUT_FRAMES = 10
SUPERLET_CUT_FRAMES = 5
# Windows transformed at once: each carries its own zero padding (+-36 s for BrainBERT's 0.1 Hz superlet), so
# memory grows with their number, not with the recording.
WINDOWS_PER_TRANSFORM = 32


def resolve_windowing(request: str, published: bool) -> str:
    """``recording`` or ``brainbert`` for an --embedding-windowing value and a model format."""
    if request not in WINDOWINGS:
        raise UsageError(f"embedding windowing must be one of {', '.join(WINDOWINGS)}, got {request!r}")
    if request == "auto":
        return "brainbert" if published else "recording"
    return request


def window_samples(window_s: float, sfreq: float) -> int:
    return int(round(window_s * sfreq))


def sliding_sample_starts(n_samples: int, length: int, stride: int) -> np.ndarray:
    """First sample of every whole window from the start of the recording on (as the original's 5 s segments)."""
    if n_samples < length:
        return np.zeros(0, dtype=int)
    return np.arange(0, n_samples - length + 1, stride)


def event_sample_starts(onsets_s: np.ndarray, n_samples: int, sfreq: float, length: int
                        ) -> tuple[np.ndarray, np.ndarray]:
    """First sample of the window [onset - length/2, onset + length/2) of each onset (seconds from the first
    sample), and whether it lies inside the recording."""
    onsets = np.round(np.asarray(onsets_s, float) * sfreq).astype(np.int64)
    starts = onsets - length // 2
    return starts, (starts >= 0) & (starts + length <= n_samples)


@dataclass(frozen=True)
class WindowRecipe:
    """How one window becomes model input: which transform, the frames cut and where the z-score is taken."""

    kind: str               # "stft" | "superlet"
    cut_frames: int         # dropped at each end
    zscore_before_cut: bool

    def describe(self, length: int, frames: int) -> dict:
        order = "before" if self.zscore_before_cut else "after"
        return {"Kind": "brainbert", "WindowSamples": length, "Transform": f"{self.kind} of each window alone",
                "FramesCutEachEnd": self.cut_frames, "FramesPerWindow": frames,
                "Normalization": f"z-score per frequency over the window's frames, {order} the cut"}


def window_recipe(kind: str) -> WindowRecipe:
    if kind == "stft":
        return WindowRecipe("stft", STFT_CUT_FRAMES, zscore_before_cut=True)
    return WindowRecipe("superlet", SUPERLET_CUT_FRAMES, zscore_before_cut=False)


def zscore_over_time(spec: np.ndarray) -> np.ndarray:
    """(..., F, T) -> z-scores of each frequency over time (population sd); a flat row gives 0, never NaN."""
    mean = spec.mean(axis=-1, keepdims=True)
    sd = spec.std(axis=-1, keepdims=True)
    return (spec - mean) / np.where(sd > 0, sd, 1.0)


def brainbert_window_inputs(front_end, windows: np.ndarray) -> np.ndarray:
    """(n_windows, n_samples) signal windows -> (n_windows, frames, n_freqs) float32 model input, each window
    transformed and normalised alone the original's way (``front_end``: a SpectrogramFrontEnd)."""
    recipe = window_recipe(front_end.kind)
    spec = front_end.transform(np.asarray(windows)).astype(np.float64)     # (n, F, T) magnitude
    cut = recipe.cut_frames
    if spec.shape[-1] <= 2 * cut:
        raise UsageError(f"a {windows.shape[-1]}-sample window gives {spec.shape[-1]} {recipe.kind} frames, too few "
                         f"to cut {cut} at each end as BrainBERT did: use a longer --embedding-window-s")
    if recipe.zscore_before_cut:
        spec = zscore_over_time(spec)[..., cut:-cut]
    else:
        spec = zscore_over_time(spec[..., cut:-cut])
    return np.ascontiguousarray(spec.transpose(0, 2, 1), dtype=np.float32)


@dataclass
class WindowExactEmbeddings:
    """Embeddings of one recording built from window-exact input, and what the sidecars say about them."""

    windows: tuple[np.ndarray, np.ndarray]        # (channel, window, feature), window centre times in seconds
    events: tuple[np.ndarray, np.ndarray] | None  # (channel, event, feature), valid mask over the events
    description: dict                             # of the sliding windows
    events_description: dict


def window_exact_embeddings(signal: np.ndarray, front_end, model, window_params, event_params,
                            onsets_s: np.ndarray | None, device) -> WindowExactEmbeddings:
    """Sliding-window and event embeddings of a (channel, sample) preprocessed ``signal`` (may be a memory map:
    one channel is read at a time), every window transformed alone (see :func:`brainbert_window_inputs`)."""
    from .frozen_embeddings import embed_windows   # deferred: torch; params.py imports this module's constants

    sfreq = front_end.sfreq
    length = window_samples(window_params.window_s, sfreq)
    stride = window_samples(window_params.stride_s or window_params.window_s, sfreq)
    n_channels, n_samples = signal.shape
    starts = sliding_sample_starts(n_samples, length, stride)
    d_model = model.config.d_model
    sliding = np.zeros((n_channels, len(starts), d_model), dtype=np.float32)
    event_starts, valid = (event_sample_starts(onsets_s, n_samples, sfreq, length) if onsets_s is not None
                           else (np.zeros(0, dtype=int), np.zeros(0, dtype=bool)))
    kept = event_starts[valid]
    locked = np.zeros((n_channels, len(kept), d_model), dtype=np.float32)
    # (starts, samples fed to the transform, output, readout): sliding windows as its pretraining segments (less
    # their last sample), events as its decoding windows
    passes = ((starts, length - 1, sliding, window_params), (kept, length, locked, event_params))
    for channel in range(n_channels):
        row = np.asarray(signal[channel], dtype=np.float64)
        for positions, fed, out, params in passes:
            for first in range(0, len(positions), WINDOWS_PER_TRANSFORM):
                chunk = positions[first:first + WINDOWS_PER_TRANSFORM]
                inputs = brainbert_window_inputs(front_end, np.stack([row[s:s + fed] for s in chunk]))
                out[channel, first:first + len(chunk)] = embed_windows(model, inputs, params, device,
                                                                       normalize=False)
    recipe = window_recipe(front_end.kind)
    described = [recipe.describe(fed, brainbert_window_inputs(front_end, np.zeros((1, fed))).shape[1])
                 for _, fed, _, _ in passes]
    centres = (starts + length / 2) / sfreq
    return WindowExactEmbeddings((sliding, centres), (locked, valid) if onsets_s is not None else None,
                                 described[0], described[1])


RECORDING_WINDOWING = {"Kind": "recording",
                       "Transform": "windows cut from the whole-recording spectrogram derivative",
                       "Normalization": "z-score per frequency within each window"}
