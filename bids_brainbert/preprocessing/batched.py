"""The preprocessing chain (notch, re-reference, resample) computed a few channels at a time.

An hour of 128 channels at 2048 Hz is 7.5 GB in float64, and filtering copies it several times: the participant
level instead reads a batch of input channels, filters each one, derives the output channels that need only
those inputs and resamples them, so memory depends on the batch, not on the recording. Every step works on one
channel independently except the re-referencing; the Laplacian and bipolar montages need only neighbours (read
with the batch), and a common average is accumulated over the whole group in a first streaming pass. The result
equals :func:`remove_line_noise` -> :meth:`ReferencePlan.apply` -> :func:`resample_signal` on the whole signal
to the last bit (tests/test_preprocessing.py checks it).
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from .line_noise import remove_line_noise
from .referencing import ReferencePlan
from .resampling import resample_signal

__all__ = ["preprocessed_batches"]

# (input indices) -> (len(indices), n_samples) float64 signal
ReadInputs = Callable[[list[int]], np.ndarray]


def _filtered(read: ReadInputs, indices: list[int], sfreq: float, line_freq: float | None,
              notch: dict) -> np.ndarray:
    """Inputs ``indices`` with line noise removed, one channel at a time (the filter's copies stay small)."""
    data = read(indices)
    if line_freq:
        for row in data:
            row[:] = remove_line_noise(row[None], sfreq, line_freq, **notch)[0]
    return data


def _shared_means(read: ReadInputs, plan: ReferencePlan, sfreq: float, line_freq: float | None, notch: dict,
                  batch_channels: int) -> dict[tuple[int, ...], np.ndarray]:
    """Mean of each shared reference set (common average groups), streamed over channel batches.

    The rows are added in increasing input order, starting from the first row: exactly the order in which
    ``x[list(refs)].mean(axis=0)`` sums them (the sets are sorted), so the mean is bit-identical to it."""
    shared = plan.shared_references
    if not shared:
        return {}
    sums: dict[tuple[int, ...], np.ndarray] = {}
    members = sorted({i for refs in shared for i in refs})
    for start in range(0, len(members), batch_channels):
        indices = members[start:start + batch_channels]
        data = _filtered(read, indices, sfreq, line_freq, notch)
        for index, row in zip(indices, data):
            for refs in shared:
                if index in refs:
                    if refs in sums:
                        sums[refs] += row
                    else:
                        sums[refs] = row.copy()
        del data
    return {refs: total / len(refs) for refs, total in sums.items()}


def preprocessed_batches(read: ReadInputs, plan: ReferencePlan, sfreq: float, *, line_freq: float | None,
                         notch: dict, target_sfreq: float | None,
                         batch_channels: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first output row, float32 rows)``: the preprocessed output channels of ``plan`` in order.

    Parameters
    ----------
    read : callable
        Input indices (into ``plan.input_names``) -> their raw signal, float64 volts.
    plan : ReferencePlan
        Which outputs are derived from which inputs.
    sfreq : float
        Sampling rate of the inputs in Hz.
    line_freq : float or None
        Power-line frequency to notch (None: no notch); ``notch`` holds the other arguments of
        :func:`remove_line_noise`.
    target_sfreq : float or None
        Rate to resample to (:func:`resample_signal`).
    batch_channels : int
        Output channels per batch; the inputs read at once are those plus their neighbours.
    """
    means = _shared_means(read, plan, sfreq, line_freq, notch, batch_channels)
    n_outputs = len(plan.derivations)
    for start in range(0, n_outputs, batch_channels):
        rows = range(start, min(start + batch_channels, n_outputs))
        indices = plan.inputs_of(rows)
        inputs = dict(zip(indices, _filtered(read, indices, sfreq, line_freq, notch)))
        referenced = np.empty(len(inputs[indices[0]]), dtype=np.float64)
        out = None
        for row in rows:
            plan.output_row(row, inputs, means, referenced)
            resampled = resample_signal(referenced[None], sfreq, target_sfreq)[0][0]
            if out is None:
                out = np.empty((len(rows), resampled.size), dtype=np.float32)
            out[row - start] = resampled   # the staged signal is float32, as the transform reads it
        del inputs
        yield start, out
