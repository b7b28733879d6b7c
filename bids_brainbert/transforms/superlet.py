"""Fractional adaptive superlet transform (Moca et al. 2021), exact and fast.

Definition (BrainBERT's parameters by default): for frequency ``f`` the order ``o(f)`` rises linearly from
``order_min`` at the lowest to ``order_max`` at the highest frequency (adaptive) or is ``order_max`` everywhere
(multiplicative). The superlet response is the geometric mean of the magnitudes of Morlet responses with
``c1 * i`` cycles, i = 1..ceil(o), the last one weighted by the fractional part of ``o``::

    S(f, t) = ( prod_{i < ceil(o)} |x * psi_{f, c1 i}|(t) * |x * psi_{f, c1 ceil(o)}|(t) ** frac ) ** (1 / o)

with ``frac = o - floor(o)`` (1 when ``o`` is whole). A Morlet wavelet with ``c`` cycles is a complex exponential
at ``f`` under a Gaussian of standard deviation ``c / (k_sd f)`` seconds, normalised to unit area, so a sinusoid of
amplitude A at ``f`` gives a response of magnitude A/2. Convolutions are 'same'-mode with zeros outside the signal.

Speed: the signal is Fourier transformed once; each wavelet's spectrum is an analytic Gaussian, so its response
is the band of the signal's spectrum around ``f`` times that Gaussian. Because only the magnitude is kept, the band
is shifted to zero frequency (which changes only the phase) and inverted at the decimated length (a few times more
when the band is wider than the decimated rate), giving the response exactly at every ``decimation``-th sample
without ever forming it at full rate. The original computes every wavelet at full rate by FFT convolution.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import fft as spfft

# The Gaussian spectrum is kept where it exceeds exp(-TAIL**2 / 2) ~ 6e-13 of its peak: below float64 precision
# for the sums involved, so dropping the rest changes nothing at the 1e-8 level.
TAIL_SD = 7.5
# Frames within this many wavelet standard deviations of an end see the zero padding (reported as EdgeFrames).
EDGE_SD = 3.0
WAVELETS_PER_BLOCK = 32
# Largest complex work array of one inverse-FFT call (elements): 2**24 complex64 = 128 MiB.
MAX_WORK_ELEMENTS = 2 ** 24


@dataclass(frozen=True)
class SuperletParams:
    """Superlet settings; frequencies in Hz. ``decimation``: output frame j is the response at sample j*decimation."""

    freqs_hz: tuple[float, ...] = tuple(np.linspace(0.1, 200.0, 40).tolist())
    base_cycles: float = 1.0
    order_min: float = 3.0
    order_max: float = 30.0
    mode: str = "adaptive"          # "adaptive" (order rises with frequency) or "multiplicative" (order_max everywhere)
    decimation: int = 50
    output: str = "magnitude"       # "magnitude" | "power" | "log" (natural log of magnitude, floored at 1e-30)
    k_sd: float = 5.0

    def __post_init__(self) -> None:
        if self.mode not in ("adaptive", "multiplicative"):
            raise ValueError(f"superlet mode must be adaptive or multiplicative, got {self.mode!r}")
        if self.output not in ("magnitude", "power", "log"):
            raise ValueError(f"superlet output must be magnitude, power or log, got {self.output!r}")
        if min(self.freqs_hz) <= 0 or self.order_min < 1 or self.order_max < self.order_min or self.decimation < 1:
            raise ValueError("superlet frequencies must be > 0, orders >= 1 and increasing, decimation >= 1")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["freqs_hz"] = [float(f) for f in self.freqs_hz]
        return out

    def orders(self) -> np.ndarray:
        """Superlet order of every frequency."""
        freqs = np.asarray(self.freqs_hz, dtype=float)
        if self.mode == "multiplicative" or len(freqs) == 1 or freqs.max() == freqs.min():
            return np.full(len(freqs), float(self.order_max))
        fraction = (freqs - freqs.min()) / (freqs.max() - freqs.min())
        return self.order_min + (self.order_max - self.order_min) * fraction


def wavelet_set(order: float, base_cycles: float) -> list[tuple[float, float]]:
    """(cycles, exponent) of the Morlet wavelets making up one superlet of (fractional) ``order``."""
    count = int(math.ceil(order - 1e-12))
    fraction = order - math.floor(order + 1e-12)
    exponents = [1.0] * count
    if fraction > 1e-12:
        exponents[-1] = fraction
    return [(base_cycles * (i + 1), e / order) for i, e in enumerate(exponents)]


def morlet_sd_s(freq_hz: float, cycles: float, k_sd: float) -> float:
    """Standard deviation (seconds) of the Gaussian envelope of a Morlet wavelet."""
    return cycles / (k_sd * freq_hz)


def longest_wavelet_sd_s(params: SuperletParams) -> float:
    orders = params.orders()
    return max(morlet_sd_s(f, params.base_cycles * math.ceil(o - 1e-12), params.k_sd)
               for f, o in zip(params.freqs_hz, orders))


def edge_frames(sfreq: float, params: SuperletParams) -> int:
    """Output frames at each end within EDGE_SD standard deviations of the longest wavelet (zero-padding zone)."""
    return int(math.ceil(EDGE_SD * longest_wavelet_sd_s(params) * sfreq / params.decimation))


def superlet_frame_times(n_samples: int, sfreq: float, decimation: int) -> np.ndarray:
    """Time in seconds of each output frame (frame j is sample j*decimation)."""
    return np.arange(-(-n_samples // decimation)) * decimation / sfreq


@dataclass(frozen=True)
class _Block:
    """Wavelets sharing one inverse-FFT length, with everything precomputed for a fixed FFT length."""

    length: int                     # inverse FFT length M = upsample * n_fft / decimation
    upsample: int                   # keep every upsample-th output sample
    freq_index: np.ndarray          # (n_w,) which frequency each wavelet contributes to
    exponent: np.ndarray            # (n_w,) weight of log|response| in the superlet's geometric mean
    source: np.ndarray              # (n_w, width) bins of the signal spectrum, width = widest band in block
    dest: np.ndarray                # (n_w, width) bins of the shifted band in the M-point array (M = unused)
    gain: np.ndarray                # (n_w, width) Gaussian spectrum values (0 where padded)


def sampled_morlet_spectrum(freqs_hz: np.ndarray, centre_hz: float, sd_hz: float, sfreq: float) -> np.ndarray:
    """Spectrum of a unit-area Morlet wavelet sampled at ``sfreq``: the Gaussian around ``centre_hz`` plus its
    aliased images one and two sampling rates away (which matter only for wavelets shorter than a few samples)."""
    images = np.arange(-2, 3)[:, None] * sfreq
    return np.exp(-0.5 * ((freqs_hz[None, :] - centre_hz + images) / sd_hz) ** 2).sum(axis=0)


@lru_cache(maxsize=8)
def _wavelet_bank(n_fft: int, sfreq: float, params: SuperletParams, complex_dtype: str) -> tuple[_Block, ...]:
    """Spectral bands and gains of every wavelet for an FFT of ``n_fft`` samples (cached: shared by channels)."""
    n_out = n_fft // params.decimation
    df = sfreq / n_fft
    entries = []  # (upsample, freq index, exponent, k0, half band, sd_f)
    for fi, (freq, order) in enumerate(zip(params.freqs_hz, params.orders())):
        k0 = int(round(freq / df))
        for cycles, exponent in wavelet_set(order, params.base_cycles):
            sd_f = 1.0 / (2.0 * math.pi * morlet_sd_s(freq, cycles, params.k_sd))  # Hz
            half = min(int(math.ceil(TAIL_SD * sd_f / df)) + 1, n_fft // 2)
            upsample = max(1, int(math.ceil(min(2 * half + 1, n_fft) / n_out)))
            entries.append((upsample, fi, exponent, k0, half, sd_f, freq))
    entries.sort(key=lambda e: (e[0], e[4]))
    blocks = []
    for start in range(0, len(entries), WAVELETS_PER_BLOCK):
        chunk = entries[start:start + WAVELETS_PER_BLOCK]
        upsample = max(e[0] for e in chunk)
        length = upsample * n_out
        width = max(min(2 * e[4] + 1, n_fft) for e in chunk) + 1
        source = np.zeros((len(chunk), width), dtype=np.int64)
        dest = np.full((len(chunk), width), length, dtype=np.int64)  # padding goes to a spare bin past the end
        gain = np.zeros((len(chunk), width), dtype=np.float64)
        for row, (_, _, _, k0, half, sd_f, freq) in enumerate(chunk):
            if 2 * half + 1 >= n_fft - 1:  # a band as wide as the spectrum: take every bin once
                offsets = np.arange(-(n_fft // 2), n_fft - n_fft // 2)
            else:
                offsets = np.arange(-half, half + 1)
            source[row, :len(offsets)] = (k0 + offsets) % n_fft
            dest[row, :len(offsets)] = offsets % length
            gain[row, :len(offsets)] = sampled_morlet_spectrum((k0 + offsets) * df, freq, sd_f, sfreq)
        blocks.append(_Block(length, upsample, np.array([e[1] for e in chunk]), np.array([e[2] for e in chunk]),
                             source, dest, gain.astype(np.dtype(complex_dtype).type(0).real.dtype)))
    return tuple(blocks)


def fft_length(n_samples: int, sfreq: float, params: SuperletParams) -> int:
    """A fast FFT length, multiple of the decimation, with room for the longest wavelet's tails as zeros."""
    pad = int(math.ceil(TAIL_SD * longest_wavelet_sd_s(params) * sfreq))
    blocks = -(-(n_samples + pad) // params.decimation)
    return spfft.next_fast_len(blocks, real=False) * params.decimation


def _accumulate_block(log_sum: np.ndarray, spectrum: np.ndarray, block: _Block, wavelets: slice, n_fft: int,
                      n_frames: int, complex_dtype: type, dtype: type, workers: int | None) -> None:
    """Add the weighted log-magnitudes of some of a block's wavelets into ``log_sum`` (channels, freqs, frames)."""
    source, dest, gain = block.source[wavelets], block.dest[wavelets], block.gain[wavelets]
    banded = np.zeros((spectrum.shape[0], len(source), block.length + 1), dtype=complex_dtype)
    banded[:, np.arange(len(source))[:, None], dest] = spectrum[:, source] * gain
    response = spfft.ifft(banded[..., :-1], axis=-1, workers=workers, overwrite_x=True)
    # the inverse at M points of N-point bins: scale M/N restores the full-rate amplitude
    magnitude = np.abs(response[..., ::block.upsample][..., :n_frames]) * (block.length / n_fft)
    tiny = np.finfo(dtype).tiny
    weighted = np.log(np.maximum(magnitude, tiny)) * block.exponent[wavelets][None, :, None]
    np.add.at(log_sum, (slice(None), block.freq_index[wavelets]), weighted.astype(dtype, copy=False))


def superlet_transform(signal: np.ndarray, sfreq: float, params: SuperletParams = SuperletParams(), *,
                       dtype: type = np.float32, workers: int | None = None) -> np.ndarray:
    """Superlet spectrogram of every channel.

    Parameters
    ----------
    signal : (n_channels, n_samples) or (n_samples,) real array (any unit; the output has the same unit).
    sfreq : sampling rate in Hz.
    params : :class:`SuperletParams`.
    dtype : np.float32 (complex64 arithmetic) or np.float64 (complex128).
    workers : threads for the FFTs (scipy.fft); None = scipy's default.

    Returns
    -------
    (n_channels, n_freqs, ceil(n_samples / decimation)) array of ``dtype``.
    """
    x = np.atleast_2d(np.asarray(signal, dtype=np.float64))
    n_channels, n_samples = x.shape
    if max(params.freqs_hz) >= sfreq / 2:
        raise ValueError(f"superlet frequency {max(params.freqs_hz)} Hz is not below Nyquist ({sfreq / 2} Hz)")
    complex_dtype = np.complex64 if np.dtype(dtype) == np.float32 else np.complex128
    n_fft = fft_length(n_samples, sfreq, params)
    n_frames = -(-n_samples // params.decimation)
    spectrum = spfft.fft(x, n=n_fft, axis=-1, workers=workers).astype(complex_dtype, copy=False)
    log_sum = np.zeros((n_channels, len(params.freqs_hz), n_frames), dtype=dtype)
    for block in _wavelet_bank(n_fft, float(sfreq), params, np.dtype(complex_dtype).name):
        # bounded work arrays: (channels x wavelets) rows of M+1 bins per inverse FFT call
        rows_per_call = max(1, MAX_WORK_ELEMENTS // (block.length + 1))
        w_step = min(len(block.freq_index), rows_per_call)
        c_step = max(1, rows_per_call // w_step)
        for c0 in range(0, n_channels, c_step):
            for w0 in range(0, len(block.freq_index), w_step):
                _accumulate_block(log_sum[c0:c0 + c_step], spectrum[c0:c0 + c_step], block,
                                  slice(w0, w0 + w_step), n_fft, n_frames, complex_dtype, dtype, workers)
    if params.output == "log":
        return np.maximum(log_sum, np.log(1e-30)).astype(dtype, copy=False)
    result = np.exp(log_sum)
    return (result ** 2 if params.output == "power" else result).astype(dtype, copy=False)
