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

from .superlet_plan import DirectPlan, SuperletPlan, periodic_spectrum


def folded_log_superlet(segment: np.ndarray, plan: SuperletPlan, n_frames: int, workers: int | None = None
                        ) -> np.ndarray:
    """Sum of the plan's wavelets' weighted log-magnitude responses to ``segment`` (channels, <= n_fft samples,
    zero-padded to n_fft) at samples 0, D, 2D, ... (n_frames of them): (channels, n_freqs, n_frames) in the plan's
    dtype. With every wavelet in the plan this is the log superlet."""
    dtype = plan.dtype
    complex_dtype = np.result_type(dtype, np.complex64)
    n_channels, m = segment.shape[0], plan.n_folded
    half = spfft.rfft(segment, n=plan.n_fft, axis=-1, workers=workers).astype(complex_dtype, copy=False)
    spectrum = periodic_spectrum(half, plan.n_fft, plan.spectrum_start, plan.spectrum_stop).view(dtype)
    del half
    log_sum = np.zeros((n_channels, plan.n_freqs, n_frames), dtype=dtype)
    floor = np.sqrt(np.finfo(dtype).tiny)            # magnitude floor: the power stays >= tiny, log finite
    with single_threaded_blas():
        for start, stop in plan.groups:
            folded = np.empty((n_channels, stop - start, m), dtype=complex_dtype)
            folded_real = folded.view(dtype)  # interleaved (re, im)
            for row, band in enumerate(plan.bands[start:stop]):
                first = 2 * (band.row_start - plan.spectrum_start)
                rows = spectrum[:, first:first + 2 * band.rows * m].reshape(n_channels, band.rows, 2 * m)
                # product with the gain and sum over rows in one pass: the band folded onto M bins
                np.einsum("crk,rk->ck", rows, plan.gain(start + row), out=folded_real[:, row])
            response = spfft.ifft(folded, axis=-1, workers=workers, overwrite_x=True)
            magnitude = np.abs(response[..., :n_frames])
            np.maximum(magnitude, floor, out=magnitude)
            np.log(magnitude, out=magnitude)
            freqs, weights = plan.group_weights[start // plan.group_size]
            log_sum[:, freqs] += np.matmul(weights, magnitude)
    log_sum *= 2.0                                   # log |z| -> log |z|^2, the power the plan's scale refers to
    log_sum += plan.log_scale[None, :, None]
    return log_sum


def direct_log_superlet(segment: np.ndarray, plan: DirectPlan, n_frames: int, decimation: int) -> np.ndarray:
    """Like :func:`folded_log_superlet` for the short wavelets of a :class:`DirectPlan`: each output sample is the
    dot product of the signal around it (zeros outside ``segment``) with every kernel, all in one matrix product."""
    dtype = plan.dtype
    x = np.asarray(segment, dtype=dtype)
    padded = np.zeros((x.shape[0], plan.half_taps + max(x.shape[1], (n_frames - 1) * decimation + 1)
                       + plan.half_taps), dtype=dtype)
    padded[:, plan.half_taps:plan.half_taps + x.shape[1]] = x
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * plan.half_taps + 1, axis=-1)
    windows = windows[:, :(n_frames - 1) * decimation + 1:decimation]          # (channels, frames, taps)
    with single_threaded_blas():
        response = np.matmul(windows, plan.kernels)                             # (channels, frames, 2 W)
    np.multiply(response, response, out=response)
    power = np.add(response[..., 0::2], response[..., 1::2])                    # (channels, frames, W)
    np.maximum(power, np.finfo(dtype).tiny, out=power)
    np.log(power, out=power)
    log_sum = np.zeros((x.shape[0], plan.n_freqs, n_frames), dtype=dtype)
    with single_threaded_blas():
        log_sum[:, plan.freqs] = np.matmul(plan.weights, power.transpose(0, 2, 1))
    return log_sum


@lru_cache(maxsize=1)
def _blas_controller() -> ThreadpoolController:
    return ThreadpoolController()


def single_threaded_blas():
    """Context with one BLAS thread: a matrix product's summation order, hence its bits, then never depends on
    the number of cores (re-runs and resumed runs must give byte-identical derivatives)."""
    return _blas_controller().limit(limits=1, user_api="blas")
