"""Where each Morlet wavelet of a superlet lives in the spectrum of an N-point FFT, and its spectral gain there.

A plan is built once per (FFT length, sampling rate, parameters, precision, wavelet class) and shared by every
channel and every chunk of a recording. For each wavelet it holds a contiguous band of bins around the wavelet's
centre frequency (the Gaussian spectrum is dropped where it is below ``exp(-tail**2 / 2)`` of its peak) and its gain
there; the band also knows the whole rows of M = N / decimation bins (starting at a multiple of M) that cover it,
over which the torch kernel folds it as a reshape and a sum (see :mod:`.superlet_numpy` for the folding).

Bins are indexed in the N-periodic spectrum of a real signal (X[-k] = conj X[k], X[k + N] = X[k]), so bands
reaching below 0 Hz or past Nyquist are contiguous too.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
from scipy import fft as spfft

from .superlet_numba import fill_gains
from .superlet_params import SuperletParams, longest_wavelet_sd_s, morlet_sd_s, wavelet_set

# Spectral tail kept, in standard deviations of each wavelet's Gaussian spectrum. float32: beyond 5 sd the gain is
# below 3.7e-6 and results stay within ~2e-5 of the exact transform (tests ask 1e-3); float64: beyond 7.5 sd it is
# below 6e-13, far under the 1e-8 target.
TAIL_SD = {np.dtype(np.float32): 5.0, np.dtype(np.float64): 7.5}
# Gains of all wavelets are kept when they total at most this many bins (64 MiB in float32: recordings up to about
# 4 minutes at BrainBERT's settings); longer ones are generated as the kernel folds (about a fifth more time).
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
    cached_gains: np.ndarray | None    # every band's gain over its width, concatenated (see gain_offsets)
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

    @cached_property
    def band_arrays(self) -> dict[str, np.ndarray]:
        """Per band, for the compiled kernels: first bin relative to spectrum_start, width, the folded column of
        its first bin, where its gain starts in the concatenated gains (one more entry: the total), and its first
        bin, centre and sd in bins of the N-point spectrum (to generate its gain)."""
        df = self.sfreq / self.n_fft
        widths = np.array([b.width for b in self.bands], dtype=np.int64)
        return {"starts": np.array([b.start - self.spectrum_start for b in self.bands], dtype=np.int64),
                "widths": widths,
                "columns": np.array([b.start % self.n_folded for b in self.bands], dtype=np.int64),
                "gain_offsets": np.concatenate([[0], np.cumsum(widths)]).astype(np.int64),
                "first_bins": np.array([b.start for b in self.bands], dtype=np.float64),
                "centre_bins": np.array([b.centre_hz / df for b in self.bands]),
                "sd_bins": np.array([b.sd_hz / df for b in self.bands])}

    @cached_property
    def slots(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Bands grouped by (frequency, exponent): the slot of every band, then every slot's frequency and
        weight (half the exponent: log|z| = log(|z|^2) / 2), slots sorted by frequency."""
        keys = sorted({(b.freq_index, b.weight) for b in self.bands})
        index = {key: i for i, key in enumerate(keys)}
        return (np.array([index[(b.freq_index, b.weight)] for b in self.bands], dtype=np.int64),
                np.array([k[0] for k in keys], dtype=np.int64), np.array([0.5 * k[1] for k in keys]))


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


def fft_length(n_samples: int, context: int, decimation: int) -> int:
    """A fast FFT length, a multiple of the decimation, holding ``n_samples`` plus ``context`` zeros so that
    circular wrap-around reaches only zeros."""
    blocks = -(-(n_samples + context) // decimation)
    # Among the 5-smooth lengths up to 6 % longer, the one with the most factors 2: pocketfft's radix-4 passes are
    # the fastest (an M-point inverse FFT at 2560 = 2^9 * 5 costs 8 % less per point than at 2500 = 2^2 * 5^4,
    # 30 % less at 25600 than at 25000; radix 7 and 11 cost more still), and more bins cost only a little.
    best, candidate = None, spfft.next_fast_len(blocks, real=True)
    while candidate <= blocks * 1.06 or best is None:
        if best is None or _twos(candidate) > _twos(best):
            best = candidate
        candidate = spfft.next_fast_len(candidate + 1, real=True)
    return best * decimation


def _twos(n: int) -> int:
    return (n & -n).bit_length() - 1


@lru_cache(maxsize=8)
def superlet_plan(n_fft: int, sfreq: float, params: SuperletParams, dtype_name: str,
                  context_range: tuple[int, int] = (0, 2 ** 62), group_size: int = 16) -> SuperletPlan | None:
    """Plan for the wavelets whose context (samples, see :func:`wavelet_context_samples`) lies in
    ``(context_range[0], context_range[1]]``; None when there are none."""
    dtype = np.dtype(dtype_name)
    tail = TAIL_SD[dtype]
    n_folded = n_fft // params.decimation
    df = sfreq / n_fft
    bands = []
    for fi, (freq, order) in enumerate(zip(params.freqs_hz, params.orders())):
        centre_bin = int(round(freq / df))
        for cycles, weight in wavelet_set(order, params):
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
    weights = tuple(weights_of_group(tuple(bands[s:s + group_size]), dtype) for s in range(0, len(bands), group_size))
    plan = SuperletPlan(n_fft, n_folded, float(sfreq), dtype, len(params.freqs_hz), tuple(bands), group_size,
                        min(b.row_start for b in bands), max(b.row_start + b.rows * n_folded for b in bands), None,
                        weights)
    if sum(b.width for b in bands) > GAIN_CACHE_ELEMENTS:
        return plan  # the kernels generate the gains as they go
    return dataclasses.replace(plan, cached_gains=plan_gains(plan))


def plan_gains(plan: SuperletPlan) -> np.ndarray:
    """Every band's gain over its width, concatenated (see SuperletPlan.band_arrays["gain_offsets"]).

    Generated as Gaussians: a spectral wavelet is more than DIRECT_MAX_SD_SAMPLES (7.5) samples wide, so its
    spectrum's sd is below sfreq / 47 and its aliased images, a sampling rate away, lie about 40 sd beyond its
    band (exactly 0 in float64). Only in a spectrum of a few bins can a band be the whole spectrum, with images
    that count: those take the sampled spectrum, images included."""
    arrays = plan.band_arrays
    gains = np.empty(int(arrays["gain_offsets"][-1]), dtype=plan.dtype)
    fill_gains(arrays["first_bins"], arrays["widths"], arrays["centre_bins"], arrays["sd_bins"],
               arrays["gain_offsets"], gains)
    for index, band in enumerate(plan.bands):
        if band.width == plan.n_fft:
            first = arrays["gain_offsets"][index]
            gains[first:first + band.width] = band_gain(band, plan.n_fft, plan.sfreq)
    return gains


def is_direct(freq_hz: float, cycles: float, sfreq: float, params: SuperletParams) -> bool:
    return morlet_sd_s(freq_hz, cycles, params.k_sd) * sfreq <= DIRECT_MAX_SD_SAMPLES


@dataclass(frozen=True)
class DirectPlan:
    """The short wavelets evaluated in the time domain: sampled unit-area Morlet kernels (to TAIL_SD sd), whose
    discrete-time spectrum is exactly the aliased Gaussian the spectral path uses. A Morlet kernel's real part is
    even in time and its imaginary part odd, so each is kept for t >= 0 only and applied to the sum and the
    difference of the signal on both sides (half the multiplications)."""

    half_taps: int
    cosine: np.ndarray         # (half_taps + 1, n_wavelets): real part at t = 0 .. half_taps, halved at t = 0
    sine: np.ndarray           # (half_taps, n_wavelets): imaginary part at t = 1 .. half_taps
    freqs: np.ndarray          # output frequencies touched
    weights: np.ndarray        # (len(freqs), n_wavelets): 0.5 * exponent, as in weights_of_group
    n_freqs: int
    dtype: np.dtype


@lru_cache(maxsize=8)
def direct_plan(sfreq: float, params: SuperletParams, dtype_name: str) -> DirectPlan | None:
    dtype = np.dtype(dtype_name)
    wavelets = [(fi, freq, cycles, weight)
                for fi, (freq, order) in enumerate(zip(params.freqs_hz, params.orders()))
                for cycles, weight in wavelet_set(order, params) if is_direct(freq, cycles, sfreq, params)]
    if not wavelets:
        return None
    half_taps = max(math.ceil(TAIL_SD[dtype] * morlet_sd_s(f, c, params.k_sd) * sfreq) for _, f, c, _ in wavelets)
    t = np.arange(half_taps + 1) / sfreq
    kernels = np.zeros((len(t), len(wavelets)), dtype=complex)
    for column, (_, freq, cycles, _) in enumerate(wavelets):
        sd = morlet_sd_s(freq, cycles, params.k_sd)
        kernels[:, column] = np.exp(-0.5 * (t / sd) ** 2 + 2j * np.pi * freq * t) / (sfreq * sd * math.sqrt(2 * math.pi))
    cosine = kernels.real.copy()
    cosine[0] /= 2  # the sum of both sides counts the centre sample twice
    freqs, weights = weights_of_group(tuple(WaveletBand(fi, w, f, 0.0, 0, 0, 0, 0) for fi, f, _, w in wavelets),
                                      dtype)
    return DirectPlan(half_taps, cosine.astype(dtype), kernels.imag[1:].astype(dtype), freqs, weights,
                      len(params.freqs_hz), dtype)


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
