"""Training windows over memory-mapped spectrogram derivatives, and run-/subject-wise splits.

A derivative is one ``.npy`` per recording, float32, shape (n_channels, n_frames, n_freqs), with a JSON sidecar
of the same name (``SamplingFrequency`` in frames/s, ``EdgeFrames`` affected by padding at each end, ``Shape``,
``FrequenciesHz``). One dataset item is one channel × one window of ``round(window_s × SamplingFrequency)``
frames, read as a slice of the memory map (a run is never loaded whole), z-scored per frequency over the
window's frames, and returned as a float32 tensor (frames, n_freqs).

The index is built from shapes and sidecars only, so opening a dataset of thousands of runs is cheap.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import RecordingError, UsageError

_SUBJECT_RE = re.compile(r"(?:^|_)sub-([A-Za-z0-9]+)")


@dataclass(frozen=True)
class WindowedRecording:
    """What the index knows about one derivative file."""

    path: Path
    n_channels: int
    n_frames: int
    n_freqs: int
    frame_rate_hz: float
    edge_frames: int
    starts: tuple[int, ...]     # first frame of every window

    @property
    def n_items(self) -> int:
        return self.n_channels * len(self.starts)


def sidecar_path(npy_path: Path) -> Path:
    return npy_path.with_suffix(".json")


def read_sidecar(npy_path: Path) -> dict:
    path = sidecar_path(npy_path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordingError(f"{path}: sidecar missing (needed for SamplingFrequency and EdgeFrames)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RecordingError(f"{path}: not valid JSON ({exc})") from None


def zscore_frequencies(window: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """(T, F) → (T, F): each frequency minus its mean over time, divided by its std over time plus a floor.

    The floor is ``eps`` × the mean of the per-frequency stds (relative, so it means the same for magnitudes
    in volts or in z-units) plus the smallest normal float, so a flat bin or a dead channel gives 0, never NaN.
    A batch (B, T, F) is normalised window by window in one vectorised pass.
    """
    n_frames = window.shape[-2]
    # the same numbers as window.mean/.std(axis=-2), but the sum of squares as one einsum: 10x faster on batches
    mean = window.sum(axis=-2, keepdims=True) / n_frames
    deviation = window - mean
    std = np.sqrt(np.einsum("...tf,...tf->...f", deviation, deviation)[..., None, :] / n_frames)
    floor = eps * std.mean(axis=-1, keepdims=True) + np.finfo(window.dtype).tiny
    deviation /= std + floor
    return deviation


def subject_of(path: str | os.PathLike) -> str:
    """The ``sub-<label>`` label in a file name, or a RecordingError naming the file."""
    match = _SUBJECT_RE.search(Path(path).name)
    if not match:
        raise RecordingError(f"{path}: no sub-<label> entity in the file name")
    return match.group(1)


class SpectrogramWindows(Dataset):
    """Channel × window items over spectrogram derivatives (see the module docstring).

    Parameters
    ----------
    paths : derivative ``.npy`` files, each with its ``.json`` sidecar.
    window_s : window length in seconds (frames = round(window_s × SamplingFrequency)); every file must give
        the same number of frames (a batch stacks them).
    stride_s : step between window starts in seconds; None → window_s (non-overlapping).
    skip_edges : leave out the sidecar's ``EdgeFrames`` at both ends of each recording.
    normalize : z-score each frequency over time within the window (BrainBERT's normalisation).
    eps : relative floor added to each standard deviation (see :func:`zscore_frequencies`), so flat (e.g. dead)
        channels give zeros, not NaN.
    spans : per file, the frame ranges ``[first, stop)`` its windows must lie in (a validation block within a
        run, and the training parts around it); files not listed use all their frames.
    """

    def __init__(self, paths: Iterable[str | os.PathLike], window_s: float = 5.0, stride_s: float | None = None,
                 skip_edges: bool = True, normalize: bool = True, eps: float = 1e-6,
                 spans: Mapping[str, Sequence[Sequence[int]]] | None = None):
        if window_s <= 0 or (stride_s is not None and stride_s <= 0):
            raise UsageError(f"window_s and stride_s must be positive, got {window_s!r}, {stride_s!r}")
        self.window_s = float(window_s)
        self.stride_s = float(stride_s) if stride_s is not None else None
        self.skip_edges = skip_edges
        self.normalize = normalize
        self.eps = float(eps)
        self.spans = {str(Path(k)): [tuple(int(v) for v in span) for span in spans_of]
                      for k, spans_of in (spans or {}).items()}
        self.recordings: list[WindowedRecording] = []
        self.window_frames: int | None = None
        self.n_freqs: int | None = None
        for path in paths:
            self.recordings.append(self._index(Path(path)))
        if not self.recordings:
            raise UsageError("no spectrogram files given")
        self._offsets = np.cumsum([0] + [r.n_items for r in self.recordings]).tolist()
        self._maps: dict[int, np.ndarray] = {}

    def _index(self, path: Path) -> WindowedRecording:
        sidecar = read_sidecar(path)
        try:
            data = np.load(path, mmap_mode="r")
        except FileNotFoundError:
            raise RecordingError(f"{path}: no such file") from None
        except (ValueError, OSError) as exc:
            raise RecordingError(f"{path}: not a readable .npy file ({exc})") from None
        if data.ndim != 3:
            raise RecordingError(f"{path}: expected (channels, frames, freqs), got shape {data.shape}")
        if "Shape" in sidecar and list(sidecar["Shape"]) != list(data.shape):
            raise RecordingError(f"{path}: shape {list(data.shape)} differs from the sidecar's {sidecar['Shape']}")
        try:
            rate = float(sidecar["SamplingFrequency"])
        except (KeyError, TypeError, ValueError):
            raise RecordingError(f"{sidecar_path(path)}: SamplingFrequency (frames/s) missing or invalid") from None
        if not math.isfinite(rate) or rate <= 0:
            raise RecordingError(f"{sidecar_path(path)}: SamplingFrequency must be positive, got {rate}")
        n_channels, n_frames, n_freqs = (int(n) for n in data.shape)
        window = int(round(self.window_s * rate))
        stride = window if self.stride_s is None else max(1, int(round(self.stride_s * rate)))
        if window < 2:
            raise UsageError(f"{path}: a {self.window_s} s window is {window} frame(s) at {rate} frames/s")
        if self.window_frames is None:
            self.window_frames, self.n_freqs = window, n_freqs
        elif window != self.window_frames or n_freqs != self.n_freqs:
            raise UsageError(f"{path}: windows of {window} frames x {n_freqs} freqs, but earlier files give "
                             f"{self.window_frames} x {self.n_freqs} (mixed frame rates or frequency grids)")
        edge = int(sidecar.get("EdgeFrames", 0) or 0) if self.skip_edges else 0
        first, stop = edge, n_frames - edge
        starts = tuple(range(first, stop - window + 1, stride)) if stop - first >= window else ()
        if str(path) in self.spans:         # the file's window grid, kept where a window lies wholly in a span
            starts = tuple(f for f in starts if any(a <= f and f + window <= b for a, b in self.spans[str(path)]))
        return WindowedRecording(path, n_channels, n_frames, n_freqs, rate, edge, starts)

    def __len__(self) -> int:
        return self._offsets[-1]

    def locate(self, index: int) -> tuple[Path, int, int]:
        """(file, channel, first frame) of item ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(index)
        file_idx = bisect_right(self._offsets, index) - 1
        rec = self.recordings[file_idx]
        local = index - self._offsets[file_idx]
        channel, window_idx = divmod(local, len(rec.starts))
        return rec.path, channel, rec.starts[window_idx]

    def _map(self, file_idx: int) -> np.ndarray:
        # Opened lazily in whichever process reads (DataLoader workers get their own maps).
        mapped = self._maps.get(file_idx)
        if mapped is None:
            mapped = np.load(self.recordings[file_idx].path, mmap_mode="r")
            self._maps[file_idx] = mapped
        return mapped

    def read_window(self, index: int) -> np.ndarray:
        """Item ``index`` as a float32 numpy array (frames, n_freqs), normalised if configured."""
        if not 0 <= index < len(self):
            raise IndexError(index)
        file_idx = bisect_right(self._offsets, index) - 1
        rec = self.recordings[file_idx]
        channel, window_idx = divmod(index - self._offsets[file_idx], len(rec.starts))
        start = rec.starts[window_idx]
        window = np.array(self._map(file_idx)[channel, start:start + self.window_frames, :], dtype=np.float64)
        if not np.isfinite(window).all():
            window = np.nan_to_num(window, nan=0.0, posinf=0.0, neginf=0.0)
        if self.normalize:
            window = zscore_frequencies(window, self.eps)
        return window.astype(np.float32)

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self.read_window(int(index)))

    def read_windows(self, indices: Sequence[int]) -> np.ndarray:
        """Items ``indices`` as one float32 array (len(indices), frames, n_freqs), normalised if configured.

        The same windows as :meth:`read_window`, for a whole batch at once: the items are located with one
        vectorised search, each window (one contiguous block of the file: frames x freqs) is copied straight
        into the batch, and the z-scoring runs on the whole batch.
        """
        index = np.asarray(indices, dtype=np.int64).reshape(-1)
        if index.size and (index.min() < 0 or index.max() >= len(self)):
            bad = index[(index < 0) | (index >= len(self))][0]
            raise IndexError(int(bad))
        offsets = np.asarray(self._offsets, dtype=np.int64)
        file_of = np.searchsorted(offsets, index, side="right") - 1
        batch = np.empty((index.size, self.window_frames or 0, self.n_freqs or 0), dtype=np.float64)
        length = self.window_frames
        for file_idx in np.unique(file_of).tolist():
            rec = self.recordings[file_idx]
            rows = np.flatnonzero(file_of == file_idx)
            channel, window_idx = np.divmod(index[rows] - offsets[file_idx], len(rec.starts))
            first = np.asarray(rec.starts, dtype=np.int64)[window_idx]
            mapped = self._map(file_idx)
            for row, ch, start in zip(rows.tolist(), channel.tolist(), first.tolist()):
                batch[row] = mapped[ch, start:start + length, :]
        if not np.isfinite(batch).all():
            batch = np.nan_to_num(batch, nan=0.0, posinf=0.0, neginf=0.0)
        if self.normalize:
            batch = zscore_frequencies(batch, self.eps)
        return batch.astype(np.float32)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_maps"] = {}   # memory maps are reopened after pickling (spawned workers)
        return state

    @property
    def hours(self) -> float:
        """Total duration covered by the windows of one channel summed over channels, in hours."""
        return sum(r.n_items * self.window_frames / r.frame_rate_hz for r in self.recordings) / 3600.0


def split_paths(paths: Sequence[str | os.PathLike], val_fraction: float = 0.1, by: str = "run", seed: int = 0
                ) -> tuple[list[Path], list[Path]]:
    """Deterministic train/validation split of derivative files, whole runs or whole subjects at a time.

    ``by="run"``: each file is a unit; ``by="subject"``: all files of a ``sub-<label>`` go to the same side.
    ``round(val_fraction × units)`` units (at least one when there are two or more units and the fraction is
    positive, never all of them) go to validation. The same inputs and seed always give the same split,
    whatever order the paths come in.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise UsageError(f"val_fraction must lie in [0, 1), got {val_fraction!r}")
    if by not in ("run", "subject"):
        raise UsageError(f"split by must be 'run' or 'subject', got {by!r}")
    files = sorted({Path(p) for p in paths}, key=str)
    units: dict[str, list[Path]] = {}
    for path in files:
        key = str(path) if by == "run" else subject_of(path)
        units.setdefault(key, []).append(path)
    keys = sorted(units)
    n_val = int(round(val_fraction * len(keys)))
    if val_fraction > 0 and len(keys) >= 2:
        n_val = min(max(n_val, 1), len(keys) - 1)
    else:
        n_val = 0
    random.Random(seed).shuffle(keys)
    val_keys = set(keys[:n_val])
    train = [p for k in sorted(units) if k not in val_keys for p in units[k]]
    val = [p for k in sorted(units) if k in val_keys for p in units[k]]
    return train, val
