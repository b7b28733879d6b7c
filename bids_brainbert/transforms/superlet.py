"""Fractional adaptive superlet transform (Moca et al. 2021), exact and fast, on numpy or torch.

Definition and parameters: :mod:`.superlet_params` (BrainBERT's by default). Every output frame ``j`` is the
superlet at sample ``j * decimation`` of a 'same'-mode convolution with zeros outside the signal; a sinusoid of
amplitude A at an analysed frequency gives A/2.

How it is fast (see :mod:`.superlet_numpy`): one FFT per channel; each wavelet's spectrum is an analytic Gaussian,
so its response is the band of the signal's spectrum around its frequency times that Gaussian; the band is folded
onto M = N / decimation bins and inverted at the output rate directly. The original computes every wavelet at full
rate by FFT convolution. The fold and the geometric mean run as compiled loops (:mod:`.superlet_numba`); the
wavelets of one frequency share one logarithm. Wavelets may be split into two classes by how far they reach in
time, so that the many short (high-frequency) wavelets are not computed over the long zero padding that the few
0.1 Hz ones need; the shortest, a few samples wide, are cheaper in the time domain.

How memory stays bounded: a recording longer than ``chunk_frames`` output frames is cut into chunks of that many
frames, each transformed with enough signal on both sides for the wavelets at hand (overlap-save), so the work
arrays never depend on the recording's length and the result equals the one-shot transform.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from .superlet_numpy import direct_log_superlet, folded_log_superlet
from .superlet_params import (EDGE_SD, SuperletParams, edge_frames, longest_wavelet_sd_s,  # noqa: F401 (API)
                              morlet_sd_s, superlet_frame_times, wavelet_set)
from .superlet_plan import (TAIL_SD, fft_length, padding_samples, sampled_morlet_spectrum,  # noqa: F401
                            DirectPlan, direct_plan, is_direct, superlet_plan, wavelet_context_samples)

# Output frames per chunk for long recordings: 24,576 frames are 10 min at BrainBERT's 40.96 frames/s, long
# enough that the context on both sides (36-45 s for a 0.1 Hz superlet) costs little extra work.
CHUNK_FRAMES = 24576
BACKENDS = ("numpy", "torch")


def superlet_transform(signal: np.ndarray, sfreq: float, params: SuperletParams = SuperletParams(), *,
                       dtype: type = np.float32, workers: int | None = None, backend: str = "numpy",
                       device: Any = None, chunk_frames: int = CHUNK_FRAMES, trim_edges: bool = False,
                       zscore: bool = False) -> np.ndarray:
    """Superlet spectrogram of every channel.

    Parameters
    ----------
    signal : (n_channels, n_samples) or (n_samples,) real array (any unit; the output has the same unit).
        May be a memory map: only one chunk is read at a time.
    sfreq : sampling rate in Hz.
    params : :class:`SuperletParams` (frequencies in Hz, orders, decimation, output kind).
    dtype : np.float32 (complex64 arithmetic) or np.float64 (complex128).
    workers : threads for the FFTs (scipy.fft); None = scipy's default.
    backend : "numpy" (scipy.fft) or "torch" (``device``: "cpu", "cuda", ...; CUDA when available if None).
    chunk_frames : output frames computed per chunk (bounds memory for long recordings).
    trim_edges : drop the :func:`edge_frames` at each end (influenced by the zero padding).
    zscore : standardise each channel's frequency rows over time (after the output kind is applied).

    Returns
    -------
    (n_channels, n_freqs, n_frames) array of ``dtype``; n_frames = ceil(n_samples / decimation), less
    2 * edge_frames when trimming.
    """
    x = signal if getattr(signal, "ndim", 0) == 2 else np.atleast_2d(np.asarray(signal))
    n_channels, n_samples = x.shape
    if max(params.freqs_hz) >= sfreq / 2:
        raise ValueError(f"superlet frequency {max(params.freqs_hz)} Hz is not below Nyquist ({sfreq / 2} Hz)")
    if backend not in BACKENDS:
        raise ValueError(f"superlet backend must be one of {BACKENDS}, got {backend!r}")
    dtype = np.dtype(dtype)
    decimation = params.decimation
    n_frames = -(-n_samples // decimation)
    one_shot = n_frames <= chunk_frames
    chunk_frames = min(chunk_frames, n_frames)
    kernel = _kernel(backend, device, workers, decimation)
    passes = []  # (plan, context samples) per wavelet class
    for low, high in _context_classes(n_samples if one_shot else chunk_frames * decimation, not one_shot,
                                      float(sfreq), params, dtype):
        context = -(-high // decimation) * decimation
        core = n_samples if one_shot else chunk_frames * decimation + context
        plan = superlet_plan(fft_length(core, context, decimation), float(sfreq), params, dtype.name, (low, high))
        if plan is not None:
            passes.append((plan, context))
    short = direct_plan(float(sfreq), params, dtype.name)
    if short is not None:
        passes.append((short, -(-short.half_taps // decimation) * decimation))
    log_sum = np.zeros((n_channels, len(params.freqs_hz), n_frames), dtype=dtype)
    if one_shot:  # the signal at the start of the FFT, zeros after it stand for zeros on both sides
        whole = np.asarray(x, dtype=dtype)
        for plan, _ in passes:
            log_sum += kernel(whole, plan, n_frames)
        return _finish(log_sum, params, sfreq, trim_edges, zscore)
    for first in range(0, n_frames, chunk_frames):
        frames = min(chunk_frames, n_frames - first)
        for plan, context in passes:
            # the chunk's first output sample sits `context` samples into the segment (a multiple of decimation)
            segment = _segment_with_context(x, first * decimation, frames * decimation, context, dtype)
            skip = context // decimation
            log_sum[:, :, first:first + frames] += kernel(segment, plan, skip + frames)[:, :, skip:]
    return _finish(log_sum, params, sfreq, trim_edges, zscore)


@lru_cache(maxsize=32)
def _context_classes(n_core: int, chunked: bool, sfreq: float, params: SuperletParams, dtype: np.dtype
                     ) -> tuple[tuple[int, int], ...]:
    """(low, high] ranges of wavelet reach in samples, one per class: the split into a short- and a long-reach
    class (or none) that minimises the estimated work, which is proportional to each class's FFT length times
    (a per-sample cost + the bins its bands use per sample)."""
    per_sample = 4.0                    # FFT, periodic spectrum: relative to one band bin's multiply-and-fold
    per_band = 3.5 / params.decimation  # inverse FFT at M = N / D points plus half a row of padding, per sample
    tail = TAIL_SD[dtype]
    reach, bins = [], []
    for freq, order in zip(params.freqs_hz, params.orders()):
        for cycles, _ in wavelet_set(order, params):
            if is_direct(freq, cycles, sfreq, params):
                continue
            reach.append(wavelet_context_samples(freq, cycles, sfreq, params, dtype))
            sd_hz = 1.0 / (2.0 * np.pi * morlet_sd_s(freq, cycles, params.k_sd))
            bins.append(2 * tail * sd_hz / sfreq + per_band)
    if not reach:  # every wavelet is evaluated in the time domain
        return ()
    reach, bins = np.array(reach), np.array(bins)
    longest = int(reach.max())

    def cost(members: np.ndarray) -> float:
        if not members.any():
            return 0.0
        length = n_core + (2 if chunked else 1) * reach[members].max()
        return length * (per_sample + bins[members].sum())

    best_split, best_cost = longest, cost(reach > 0)
    for split in np.unique(reach)[:-1]:
        total = cost(reach <= split) + cost(reach > split)
        if total < best_cost:
            best_split, best_cost = int(split), total
    return ((0, best_split), (best_split, longest)) if best_split < longest else ((0, longest),)


def _kernel(backend: str, device: Any, workers: int | None, decimation: int):
    """(segment, plan, n_frames) -> summed weighted log-magnitudes; the few short, time-domain wavelets are cheap
    enough to stay on numpy whatever the backend."""
    spectral = (lambda segment, plan, frames: folded_log_superlet(segment, plan, frames, workers))
    if backend == "torch":
        from .superlet_torch import TorchSuperletKernel

        spectral = TorchSuperletKernel(device)

    def kernel(segment, plan, frames):
        if isinstance(plan, DirectPlan):
            return direct_log_superlet(segment, plan, frames, decimation)
        return spectral(segment, plan, frames)

    return kernel


def _segment_with_context(x, start: int, length: int, context: int, dtype: np.dtype) -> np.ndarray:
    """Samples [start - context, start + length + context) of every channel, zeros outside the signal."""
    n_samples = x.shape[1]
    lo, hi = start - context, start + length + context
    out = np.zeros((x.shape[0], hi - lo), dtype=dtype)
    a, b = max(lo, 0), min(hi, n_samples)
    out[:, a - lo:b - lo] = x[:, a:b]
    return out


def _finish(log_sum: np.ndarray, params: SuperletParams, sfreq: float, trim_edges: bool, zscore: bool
            ) -> np.ndarray:
    if params.output == "log":
        result = np.maximum(log_sum, np.log(1e-30), out=log_sum)
    elif params.output == "power":
        result = np.exp(np.multiply(log_sum, 2, out=log_sum), out=log_sum)
    else:
        result = np.exp(log_sum, out=log_sum)
    if trim_edges:
        edge = edge_frames(sfreq, params)
        result = result[..., edge:result.shape[-1] - edge]
    if zscore:
        mean = result.mean(axis=-1, keepdims=True)
        sd = result.std(axis=-1, keepdims=True)
        result = (result - mean) / np.where(sd > 0, sd, 1)
    return result
