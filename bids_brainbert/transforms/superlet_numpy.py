"""The numpy/scipy superlet kernel: one FFT per channel, then per wavelet a band product folded to the output rate.

Why folding is exact: the response of wavelet ``w`` at sample ``n`` is ``(1/N) sum_k X[k] G_w[k] exp(2 pi i k n / N)``.
At the output samples ``n = j D`` (D the decimation, M = N / D) the exponential depends on ``k`` only through
``k mod M``, so summing the band's bins that are congruent mod M and taking one M-point inverse FFT gives the
response at every D-th sample exactly, without ever forming it at the full rate. Only magnitudes are kept, so
where the band sits in the spectrum (its phase) does not matter either.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import fft as spfft
from threadpoolctl import ThreadpoolController

from .superlet_numba import accumulate_log_powers, add_slot_logs, float_layout, fold_bands
from .superlet_plan import DirectPlan, SuperletPlan, periodic_spectrum

# Output frames per matrix product in the time-domain path: 4096 frames x 39 taps of float32 are 0.6 MB.
DIRECT_FRAMES = 4096


def folded_log_superlet(segment: np.ndarray, plan: SuperletPlan, n_frames: int, workers: int | None = None
                        ) -> np.ndarray:
    """Sum of the plan's wavelets' weighted log-magnitude responses to ``segment`` (channels, <= n_fft samples,
    zero-padded to n_fft) at samples 0, D, 2D, ... (n_frames of them): (channels, n_freqs, n_frames) in the plan's
    dtype. With every wavelet in the plan this is the log superlet.

    One channel at a time, so that the spectrum, the folded bands and the accumulators stay in cache; the bands go
    through in groups (one batched inverse FFT per group). The wavelets of a frequency that share an exponent are
    multiplied together (as mantissas and binary exponents, which never overflow) and take one logarithm.
    """
    dtype = plan.dtype
    complex_dtype = np.result_type(dtype, np.complex64)
    bands = plan.band_arrays
    band_slots, slot_freqs, slot_weights = plan.slots
    int_type, *bit_constants = float_layout(dtype)
    floor = np.finfo(dtype).tiny                     # power floor: the log stays finite
    log_sum = np.zeros((segment.shape[0], plan.n_freqs, n_frames), dtype=dtype)
    folded = np.empty((plan.group_size, plan.n_folded), dtype=complex_dtype)
    scratch = np.empty((2, n_frames), dtype=dtype)
    gains = plan.cached_gains if plan.cached_gains is not None else np.empty(0, dtype=dtype)  # empty: generated
    padded = np.zeros(plan.n_fft, dtype=dtype)       # zero-padded here: scipy's own padding (n=) is ~2x slower
    for channel in range(segment.shape[0]):
        padded[:segment.shape[1]] = segment[channel]
        half = spfft.rfft(padded, workers=workers).astype(complex_dtype, copy=False)
        spectrum = periodic_spectrum(half[None], plan.n_fft, plan.spectrum_start, plan.spectrum_stop)[0]
        del half
        mantissas = np.ones((len(slot_freqs), n_frames), dtype=dtype)
        exponents = np.zeros((len(slot_freqs), n_frames), dtype=int_type)
        for start, stop in plan.groups:
            group = folded[:stop - start]
            fold_bands(spectrum, bands["starts"], bands["widths"], bands["columns"], bands["first_bins"],
                       bands["centre_bins"], bands["sd_bins"], bands["gain_offsets"], gains, start, stop, group)
            responses = spfft.ifft(group, axis=-1, workers=workers, overwrite_x=True)
            accumulate_log_powers(responses, start, band_slots, n_frames, floor, *bit_constants, mantissas,
                                  exponents, scratch, scratch.view(int_type))
        add_slot_logs(np.log(mantissas, out=mantissas), exponents, slot_freqs, slot_weights, log_sum[channel])
    log_sum += plan.log_scale[None, :, None]
    return log_sum


def direct_log_superlet(segment: np.ndarray, plan: DirectPlan, n_frames: int, decimation: int) -> np.ndarray:
    """Like :func:`folded_log_superlet` for the short wavelets of a :class:`DirectPlan`: each output sample is the
    dot product of the signal around it (zeros outside ``segment``) with every kernel (see DirectPlan), as matrix
    products over one channel and DIRECT_FRAMES frames at a time (small temporaries, in cache)."""
    dtype = plan.dtype
    x = np.asarray(segment, dtype=dtype)
    taps = 2 * plan.half_taps + 1
    padded = np.zeros(plan.half_taps + max(x.shape[1], (n_frames - 1) * decimation + 1) + plan.half_taps, dtype=dtype)
    log_sum = np.zeros((x.shape[0], plan.n_freqs, n_frames), dtype=dtype)
    with single_threaded_blas():
        for channel in range(x.shape[0]):
            padded[plan.half_taps:plan.half_taps + x.shape[1]] = x[channel]
            windows = np.lib.stride_tricks.sliding_window_view(padded, taps)[::decimation][:n_frames]  # (frames, taps)
            for first in range(0, n_frames, DIRECT_FRAMES):
                window = windows[first:first + DIRECT_FRAMES]
                after, before = window[:, plan.half_taps:], window[:, plan.half_taps::-1]  # t = 0, 1, .. and 0, -1, ..
                real = np.matmul(after + before, plan.cosine)                              # (frames, W)
                imaginary = np.matmul(after[:, 1:] - before[:, 1:], plan.sine)
                np.multiply(real, real, out=real)
                power = np.add(real, np.multiply(imaginary, imaginary, out=imaginary), out=real)
                np.maximum(power, np.finfo(dtype).tiny, out=power)
                np.log(power, out=power)
                log_sum[channel, plan.freqs, first:first + DIRECT_FRAMES] = np.matmul(plan.weights, power.T)
    return log_sum


@lru_cache(maxsize=1)
def _blas_controller() -> ThreadpoolController:
    return ThreadpoolController()


def single_threaded_blas():
    """Context with one BLAS thread: a matrix product's summation order, hence its bits, then never depends on
    the number of cores (re-runs and resumed runs must give byte-identical derivatives)."""
    return _blas_controller().limit(limits=1, user_api="blas")
