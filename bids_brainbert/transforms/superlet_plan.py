"""Where each Morlet wavelet of a superlet lives in the spectrum of an N-point FFT, and its spectral gain there.

A plan is built once per (FFT length, sampling rate, parameters, precision, wavelet class) and shared by every
channel and every chunk of a recording. For each wavelet it holds a contiguous band of bins around the wavelet's
centre frequency (the Gaussian spectrum is dropped where it is below ``exp(-tail**2 / 2)`` of its peak), widened to
whole rows of M = N / decimation bins that start at a multiple of M, so that folding the band onto M bins (see
:mod:`.superlet_numpy`) is a reshape and a sum over rows.

Bins are indexed in the N-periodic spectrum of a real signal (X[-k] = conj X[k], X[k + N] = X[k]), so bands
reaching below 0 Hz or past Nyquist are contiguous too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from .superlet_params import SuperletParams, longest_wavelet_sd_s, morlet_sd_s, wavelet_set

# Spectral tail kept, in standard deviations of each wavelet's Gaussian spectrum. float32: beyond 5 sd the gain is
# below 3.7e-6 and results stay within ~2e-5 of the exact transform (tests ask 1e-3); float64: beyond 7.5 sd it is
# below 6e-13, far under the 1e-8 target.
TAIL_SD = {np.dtype(np.float32): 5.0, np.dtype(np.float64): 7.5}
# Gains of all wavelets are kept when they total at most this many bins (128 MiB in float32), else recomputed for
# each channel batch (a small cost per channel when batches hold several channels).
GAIN_CACHE_ELEMENTS = 2 ** 24
# Wavelets whose Gaussian envelope is at most this many samples wide (sd) are cheaper to evaluate in the time domain
# at the output samples (a few dozen taps, one matrix product for all of them) than through their wide spectral
# band: the time-domain cost grows with the sd, the band's with 1/sd, and they cross near 7.5 samples (measured).
DIRECT_MAX_SD_SAMPLES = 7.5


@dataclass(frozen=True)
class WaveletBand:
    freq_index: int        # which output frequency this wavelet contributes to
    weight: float          # exponent of |response| in the geometric mean (sums to 1 per frequency)
    centre_hz: float
    sd_hz: float           # standard deviation of the wavelet's Gaussian spectrum
    start: int             # first bin of the band (periodic-spectrum index, may be negative)
    width: int             # bins with a non-zero gain
    row_start: int         # start rounded down to a multiple of M: first bin of the folded rows
    rows: int              # rows of M bins covering the band


@dataclass(frozen=True)
class SuperletPlan:
    n_fft: int
    n_folded: int                      # M = n_fft / decimation
    sfreq: float
    dtype: np.dtype                    # real dtype of the computation (float32 or float64)
    n_freqs: int
    bands: tuple[WaveletBand, ...]     # sorted by frequency index
    group_size: int                    # bands inverted together
    spectrum_start: int                # bins [spectrum_start, spectrum_stop) of the periodic spectrum are used
    spectrum_stop: int
    cached_gains: tuple[np.ndarray, ...] | None
    group_weights: tuple[tuple[np.ndarray, np.ndarray], ...]  # per group, see weights_of_group()

    @property
    def groups(self) -> list[tuple[int, int]]:
        return [(s, min(s + self.group_size, len(self.bands))) for s in range(0, len(self.bands), self.group_size)]

    @cached_property
    def log_scale(self) -> np.ndarray:
        """(n_freqs,) constant to add to the summed weighted log-magnitudes: the M-point inverse of N-point bins
        is M/N times the full-rate response."""
        out = np.zeros(self.n_freqs)
        for band in self.bands:
            out[band.freq_index] += band.weight * math.log(self.n_folded / self.n_fft)
        return out.astype(self.dtype)

    def gain(self, index: int) -> np.ndarray:
        """(rows, 2M) gain of band ``index`` over its rows, each value twice: it multiplies the spectrum viewed as
        interleaved (re, im) reals, which is cheaper than a complex-by-real product."""
        if self.cached_gains is not None:
            return self.cached_gains[index]
        return row_gain(self.bands[index], self.n_fft, self.n_folded, self.sfreq, self.dtype)



def weights_of_group(bands: tuple[WaveletBand, ...], dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies touched by ``bands`` and the (frequencies, bands) matrix turning their log-powers into weighted
    log-magnitudes (log|r| = log(power) / 2)."""
    freqs = np.unique([b.freq_index for b in bands])
    weights = np.zeros((len(freqs), len(bands)), dtype=dtype)
    for column, band in enumerate(bands):
        weights[np.searchsorted(freqs, band.freq_index), column] = 0.5 * band.weight
    return freqs, weights


def sampled_morlet_spectrum(freqs_hz: np.ndarray, centre_hz: float, sd_hz: float, sfreq: float) -> np.ndarray:
    """Spectrum of a unit-area Morlet wavelet sampled at ``sfreq``: the Gaussian around ``centre_hz`` plus its
    aliased images one and two sampling rates away (which matter only for wavelets a few samples long; images
    more than 12 sd from every requested frequency, below 1e-31, are not evaluated)."""
    freqs_hz = np.asarray(freqs_hz, dtype=float)
    out = np.zeros(freqs_hz.shape)
    lo, hi = freqs_hz.min(initial=0.0), freqs_hz.max(initial=0.0)
    for image in range(-2, 3):
        centre = centre_hz - image * sfreq
        if centre + 12 * sd_hz < lo or centre - 12 * sd_hz > hi:
            continue
        out += np.exp(-0.5 * ((freqs_hz - centre) / sd_hz) ** 2)
    return out


def band_gain(band: WaveletBand, n_fft: int, sfreq: float) -> np.ndarray:
    bins = np.arange(band.start, band.start + band.width)
    return sampled_morlet_spectrum(bins * (sfreq / n_fft), band.centre_hz, band.sd_hz, sfreq)


def wavelet_context_samples(freq_hz: float, cycles: float, sfreq: float, params: SuperletParams, dtype) -> int:
    """Samples of signal a wavelet reaches on each side (its Gaussian to TAIL_SD sd), rounded up to a multiple of
    the decimation so that chunks stay aligned with output frames."""
    samples = math.ceil(TAIL_SD[np.dtype(dtype)] * morlet_sd_s(freq_hz, cycles, params.k_sd) * sfreq)
    return -(-samples // params.decimation) * params.decimation


def padding_samples(sfreq: float, params: SuperletParams, dtype=np.float32) -> int:
    """Context the longest wavelet needs on each side, in samples (a multiple of the decimation)."""
    samples = math.ceil(TAIL_SD[np.dtype(dtype)] * longest_wavelet_sd_s(params) * sfreq)
    return -(-samples // params.decimation) * params.decimation


def row_gain(band: WaveletBand, n_fft: int, n_folded: int, sfreq: float, dtype: np.dtype) -> np.ndarray:
    gain = np.zeros(band.rows * n_folded, dtype=dtype)
    offset = band.start - band.row_start
    gain[offset:offset + band.width] = band_gain(band, n_fft, sfreq)
    return np.repeat(gain, 2).reshape(band.rows, 2 * n_folded)


def fft_length(n_samples: int, context: int, decimation: int) -> int:
    """A fast FFT length, a multiple of the decimation, holding ``n_samples`` plus ``context`` zeros so that
    circular wrap-around reaches only zeros."""
    from scipy import fft as spfft

    blocks = -(-(n_samples + context) // decimation)
    return spfft.next_fast_len(blocks, real=False) * decimation


@lru_cache(maxsize=8)
def superlet_plan(n_fft: int, sfreq: float, params: SuperletParams, dtype_name: str,
                  context_range: tuple[int, int] = (0, 2 ** 62), group_size: int = 48) -> SuperletPlan | None:
    """Plan for the wavelets whose context (samples, see :func:`wavelet_context_samples`) lies in
    ``(context_range[0], context_range[1]]``; None when there are none."""
    dtype = np.dtype(dtype_name)
    tail = TAIL_SD[dtype]
    n_folded = n_fft // params.decimation
    df = sfreq / n_fft
    bands = []
    for fi, (freq, order) in enumerate(zip(params.freqs_hz, params.orders())):
        centre_bin = int(round(freq / df))
        for cycles, weight in wavelet_set(order, params.base_cycles):
            context = wavelet_context_samples(freq, cycles, sfreq, params, dtype)
            if not context_range[0] < context <= context_range[1] or is_direct(freq, cycles, sfreq, params):
                continue
            sd_hz = 1.0 / (2.0 * math.pi * morlet_sd_s(freq, cycles, params.k_sd))
            half = int(math.ceil(tail * sd_hz / df)) + 1
            if 2 * half + 1 >= n_fft:  # a band as wide as the spectrum: every bin once, with the periodic gain
                start, width = centre_bin - n_fft // 2, n_fft
            else:
                start, width = centre_bin - half, 2 * half + 1
            row_start = start - start % n_folded
            bands.append(WaveletBand(fi, weight, float(freq), sd_hz, start, width, row_start,
                                     -(-(start + width - row_start) // n_folded)))
    if not bands:
        return None
    gains = None
    if sum(b.rows for b in bands) * n_folded <= GAIN_CACHE_ELEMENTS:
        gains = tuple(row_gain(b, n_fft, n_folded, sfreq, dtype) for b in bands)
    weights = tuple(weights_of_group(tuple(bands[s:s + group_size]), dtype) for s in range(0, len(bands), group_size))
    return SuperletPlan(n_fft, n_folded, float(sfreq), dtype, len(params.freqs_hz), tuple(bands), group_size,
                        min(b.row_start for b in bands), max(b.row_start + b.rows * n_folded for b in bands), gains,
                        weights)


def is_direct(freq_hz: float, cycles: float, sfreq: float, params: SuperletParams) -> bool:
    return morlet_sd_s(freq_hz, cycles, params.k_sd) * sfreq <= DIRECT_MAX_SD_SAMPLES


@dataclass(frozen=True)
class DirectPlan:
    """The short wavelets evaluated in the time domain: sampled unit-area Morlet kernels (to TAIL_SD sd), whose
    discrete-time spectrum is exactly the aliased Gaussian the spectral path uses."""

    half_taps: int
    kernels: np.ndarray        # (2 * half_taps + 1, 2 * n_wavelets): real and imaginary parts, interleaved columns
    freqs: np.ndarray          # output frequencies touched
    weights: np.ndarray        # (len(freqs), n_wavelets): 0.5 * exponent, as in weights_of_group
    n_freqs: int
    dtype: np.dtype


@lru_cache(maxsize=8)
def direct_plan(sfreq: float, params: SuperletParams, dtype_name: str) -> DirectPlan | None:
    dtype = np.dtype(dtype_name)
    wavelets = [(fi, freq, cycles, weight)
                for fi, (freq, order) in enumerate(zip(params.freqs_hz, params.orders()))
                for cycles, weight in wavelet_set(order, params.base_cycles) if is_direct(freq, cycles, sfreq, params)]
    if not wavelets:
        return None
    half_taps = max(math.ceil(TAIL_SD[dtype] * morlet_sd_s(f, c, params.k_sd) * sfreq) for _, f, c, _ in wavelets)
    t = np.arange(-half_taps, half_taps + 1) / sfreq
    kernels = np.zeros((len(t), 2 * len(wavelets)))
    for column, (_, freq, cycles, _) in enumerate(wavelets):
        sd = morlet_sd_s(freq, cycles, params.k_sd)
        wavelet = np.exp(-0.5 * (t / sd) ** 2 + 2j * np.pi * freq * t) / (sfreq * sd * math.sqrt(2 * math.pi))
        kernels[:, 2 * column], kernels[:, 2 * column + 1] = wavelet.real, wavelet.imag
    freqs, weights = weights_of_group(tuple(WaveletBand(fi, w, f, 0.0, 0, 0, 0, 0) for fi, f, _, w in wavelets),
                                      dtype)
    return DirectPlan(half_taps, kernels.astype(dtype), freqs, weights, len(params.freqs_hz), dtype)


def periodic_spectrum(half_spectrum: np.ndarray, n_fft: int, start: int, stop: int) -> np.ndarray:
    """Bins [start, stop) of the N-periodic spectrum of a real signal from its one-sided ``rfft``
    (channels, n_fft // 2 + 1), built from contiguous pieces: X[k] for 0 <= k mod N <= N/2, else conj X[N - k]."""
    half = n_fft // 2
    out = np.empty((half_spectrum.shape[0], stop - start), dtype=half_spectrum.dtype)
    k = start
    while k < stop:
        r = k % n_fft
        if r <= half:
            end = min(stop, k + half + 1 - r)
            out[:, k - start:end - start] = half_spectrum[:, r:r + end - k]
        else:  # mirrored half: indices N - r, N - r - 1, ... (all >= 1)
            end = min(stop, k + n_fft - r)
            first = n_fft - r
            np.conjugate(half_spectrum[:, first - (end - k) + 1:first + 1][:, ::-1], out=out[:, k - start:end - start])
        k = end
    return out
