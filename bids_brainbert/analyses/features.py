"""Per-electrode features of windows centred on events: the baselines (voltage, spectrogram middle-frames mean)
and a container that gathers per-recording feature arrays (possibly memory-mapped) into per-electrode matrices.

Everything takes arrays (signals in volts, rates in Hz, times in seconds) and returns arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

VOLTAGE_BIN_S = 0.1          # the voltage baseline: mean voltage in consecutive 100 ms bins of the window
LOG_FLOOR = 1e-30            # magnitudes are log10-transformed; this keeps exact zeros finite


class FrontEnd(Protocol):
    """What we need of :class:`bids_brainbert.transforms.spectrogram.SpectrogramFrontEnd`."""

    sfreq: float
    frame_rate_hz: float
    first_frame_time_s: float
    freqs_hz: np.ndarray

    def transform(self, signal: np.ndarray) -> np.ndarray: ...


def event_windows(onsets_s, window_s: float, duration_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows of ``window_s`` seconds centred on each onset: (starts_s, stops_s, inside the recording)."""
    onsets = np.asarray(onsets_s, float)
    starts, stops = onsets - window_s / 2, onsets + window_s / 2
    valid = np.isfinite(onsets) & (starts >= 0) & (stops <= duration_s + 1e-9)
    return starts, stops, valid


def merged_segments(starts_s: np.ndarray, stops_s: np.ndarray) -> list[tuple[float, float, np.ndarray]]:
    """Union of the windows as disjoint segments ``(start_s, stop_s, indices of the windows inside)``."""
    order = np.argsort(starts_s, kind="stable")
    segments: list[tuple[float, float, list[int]]] = []
    for i in order:
        if segments and starts_s[i] <= segments[-1][1]:
            segments[-1] = (segments[-1][0], max(segments[-1][1], stops_s[i]), segments[-1][2] + [int(i)])
        else:
            segments.append((float(starts_s[i]), float(stops_s[i]), [int(i)]))
    return [(a, b, np.asarray(idx)) for a, b, idx in segments]


def voltage_features(signal: np.ndarray, sfreq: float, starts_s: np.ndarray, window_s: float,
                     bin_s: float = VOLTAGE_BIN_S) -> np.ndarray:
    """Mean voltage in consecutive ``bin_s`` bins of each window: (n_channels, n_windows, n_bins) float32."""
    bin_len = max(1, int(round(bin_s * sfreq)))
    n_bins = max(1, int(round(window_s * sfreq)) // bin_len)
    out = np.empty((signal.shape[0], len(starts_s), n_bins), dtype=np.float32)
    for k, start in enumerate(np.round(np.asarray(starts_s) * sfreq).astype(int)):
        chunk = np.asarray(signal[:, start:start + n_bins * bin_len], dtype=np.float64)
        out[:, k] = chunk.reshape(signal.shape[0], n_bins, bin_len).mean(axis=2)
    return out


def middle_frames_log_power(spectrogram: np.ndarray, centre_frames: np.ndarray, middle_frames: int) -> np.ndarray:
    """Mean over the ``middle_frames`` frames centred on each centre of log10 magnitude.

    ``spectrogram``: (n_channels, n_frames, n_freqs) (e.g. a memory map); returns (n_channels, n_centres, n_freqs).
    """
    n_frames = spectrogram.shape[1]
    first = np.clip(np.asarray(centre_frames, int) - middle_frames // 2, 0, max(0, n_frames - middle_frames))
    out = np.empty((spectrogram.shape[0], len(first), spectrogram.shape[2]), dtype=np.float32)
    for ch in range(spectrogram.shape[0]):
        rows = np.log10(np.maximum(np.asarray(spectrogram[ch], dtype=np.float64), LOG_FLOOR))
        for k, f in enumerate(first):
            out[ch, k] = rows[f:f + middle_frames].mean(axis=0)
    return out


def spectrogram_features(signal: np.ndarray, front_end: FrontEnd, onsets_s: np.ndarray, window_s: float,
                         middle_frames: int, channel_batch: int = 16, offset_s: float = 0.0) -> np.ndarray:
    """Log10 magnitude averaged over the ``middle_frames`` frames around each onset + ``offset_s``:
    (n_ch, n_events, n_freqs).

    Only the union of the event windows (centred on the onsets) is transformed (overlapping windows as one
    segment), one channel batch at a time, so the cost grows with the events' coverage of the recording, not its
    length. Every onset is at least ``window_s / 2`` from its segment's ends, as in a transform of each window on
    its own.
    """
    return spectrogram_features_at_offsets(signal, front_end, onsets_s, window_s, middle_frames, (offset_s,),
                                           channel_batch)[0]


def spectrogram_features_at_offsets(signal: np.ndarray, front_end: FrontEnd, onsets_s: np.ndarray, window_s: float,
                                    middle_frames: int, offsets_s, channel_batch: int = 16) -> np.ndarray:
    """:func:`spectrogram_features` read out at several offsets from one transform of the windows:
    (n_offsets, n_ch, n_events, n_freqs). An offset must keep the readout inside the window."""
    sfreq = front_end.sfreq
    onsets = np.asarray(onsets_s, float)
    offsets = np.asarray(offsets_s, float)
    half_readout = middle_frames / front_end.frame_rate_hz / 2
    if len(offsets) and np.abs(offsets).max() + half_readout > window_s / 2 + 1e-9:
        raise ValueError(f"readout offset {np.abs(offsets).max():g} s leaves the {window_s:g} s window")
    starts, stops = onsets - window_s / 2, onsets + window_s / 2
    n_ch = signal.shape[0]
    out = np.empty((len(offsets), n_ch, len(onsets), len(front_end.freqs_hz)), dtype=np.float32)
    for seg_start, seg_stop, members in merged_segments(starts, stops):
        a, b = int(round(seg_start * sfreq)), int(round(seg_stop * sfreq))
        for c0 in range(0, n_ch, channel_batch):
            batch = np.asarray(signal[c0:c0 + channel_batch, a:b], dtype=np.float64)
            spec = front_end.transform(batch).transpose(0, 2, 1)          # (batch, frames, freqs)
            for k, offset in enumerate(offsets):
                centres = np.round((onsets[members] + offset - a / sfreq - front_end.first_frame_time_s)
                                   * front_end.frame_rate_hz).astype(int)
                out[k, c0:c0 + len(batch)][:, members] = middle_frames_log_power(spec, centres, middle_frames)
    return out


@dataclass
class FeatureSet:
    """One kind of feature for the examples of a subject, gathered from its recordings.

    ``blocks[r]`` is an array (n_channels_r, n_events_r, n_features) (a memory map is fine), ``channels[r]`` its row
    names and ``rows[r]`` the event rows of ``blocks[r]`` used as examples, in example order (recording by recording).
    """

    name: str
    blocks: list[np.ndarray] = field(default_factory=list)
    channels: list[list[str]] = field(default_factory=list)
    rows: list[np.ndarray] = field(default_factory=list)

    def add(self, block: np.ndarray, channels: list[str], rows: np.ndarray) -> None:
        self.blocks.append(block)
        self.channels.append(list(channels))
        self.rows.append(np.asarray(rows, int))

    def electrodes(self) -> list[str]:
        """Channels present in every recording, in the first recording's order."""
        if not self.channels:
            return []
        common = set(self.channels[0]).intersection(*map(set, self.channels[1:]))
        return [c for c in self.channels[0] if c in common]

    def electrode(self, name: str) -> np.ndarray:
        """(n_examples, n_features) float64 for one electrode (reads only its rows of each block)."""
        return np.concatenate([np.asarray(block[chans.index(name)], dtype=np.float64)[rows]
                               for block, chans, rows in zip(self.blocks, self.channels, self.rows)])

    def population(self) -> np.ndarray:
        """(n_examples, n_electrodes * n_features): every common electrode's features side by side."""
        return np.concatenate([self.electrode(name) for name in self.electrodes()], axis=1)
