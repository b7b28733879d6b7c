"""Compiled inner loops of the numpy superlet kernel (numba): the band fold and the log-power accumulation.

Both are memory-bound loops that numpy can only express with large temporaries (duplicated gains, one logarithm per
wavelet and frame); compiled, they stream the spectrum and the inverse FFTs once, in cache. Loops are written
without ``fastmath`` so that their rounding, hence the derivatives' bits, never depend on vectorisation choices.
"""

from __future__ import annotations

import math

import numpy as np

from .numba_cache import compiled


def _compiled(func):
    """``numba.njit`` cached in the per-user cache directory (never inside the installed package), in memory only
    where no cache directory can be written (a read-only container without a writable home): see numba_cache."""
    return compiled(func, nogil=True, boundscheck=False)


# Gains are generated in blocks of this many bins: within a block by a sequential recurrence, from block to block by
# an element-wise one (which vectorises).
GAIN_BLOCK = 64


@_compiled
def gaussian_gains(first_bin, n, centre_bin, sd_bins, out, block, ratio):
    """out[t] = exp(-((first_bin + t - centre_bin) / sd_bins)**2 / 2) for t < n: a wavelet's spectral gain.

    By recurrence instead of n exponentials (100x faster): g(t + 1) / g(t) and g(t + B) / g(t) are exponentials
    of linear functions of t, so they too follow from products. Six exponentials per call; in float64 the relative
    error stays below 1e-11 over a stretch (the recurrence restarts at every call). block, ratio: float64 (B,).
    """
    inv = 1.0 / (sd_bins * sd_bins)
    u = first_bin - centre_bin
    gain, step, step_ratio = math.exp(-0.5 * u * u * inv), math.exp(-(u + 0.5) * inv), math.exp(-inv)
    size = block.shape[0]
    for t in range(min(size, n)):
        block[t] = gain
        gain *= step
        step *= step_ratio
    if n <= size:
        out[:n] = block[:n]
        return
    jump, jump_step = math.exp(-(size * u + 0.5 * size * size) * inv), math.exp(-size * inv)
    for t in range(size):  # ratio[t] = g(t + B) / g(t)
        ratio[t] = jump
        jump *= jump_step
    jump_ratio = math.exp(-size * size * inv)
    for start in range(0, n, size):
        target = out[start:start + size]
        for t in range(target.shape[0]):
            target[t] = block[t]
            block[t] *= ratio[t]
            ratio[t] *= jump_ratio


@_compiled
def fill_gains(first_bins, widths, centre_bins, sd_bins, offsets, out):
    """Every band's gain over its width, concatenated: band b's at out[offsets[b]:][:widths[b]]."""
    block, ratio = np.empty(GAIN_BLOCK), np.empty(GAIN_BLOCK)
    for b in range(widths.shape[0]):
        gaussian_gains(first_bins[b], widths[b], centre_bins[b], sd_bins[b], out[offsets[b]:offsets[b] + widths[b]],
                       block, ratio)


@_compiled
def fold_bands(spectrum, band_starts, band_widths, band_columns, first_bins, centre_bins, sd_bins, gain_offsets,
               gains, first, last, folded):
    """Fold bands ``first .. last - 1`` of one channel's spectrum onto M = folded.shape[1] bins.

    spectrum: complex (bins,), the periodic spectrum from ``band_starts`` = 0 on; band b covers bins
    band_starts[b] .. + band_widths[b] (first_bins[b] .. in the N-point spectrum) and its first bin folds onto column
    band_columns[b]. Its gain is ``gains[gain_offsets[b]:][:band_widths[b]]``, or when ``gains`` is empty generated
    here stretch by stretch (the Gaussian of centre_bins[b] and sd_bins[b], see :func:`gaussian_gains`).
    folded: complex (last - first, M), overwritten: row i is band first + i.
    """
    m = folded.shape[1]
    generated = gains.shape[0] == 0
    stretch = np.empty(m if generated else 0, dtype=gains.dtype)
    block, ratio = np.empty(GAIN_BLOCK), np.empty(GAIN_BLOCK)
    for b in range(first, last):
        row = folded[b - first]
        row[:] = 0
        k, remaining, column, g = band_starts[b], band_widths[b], band_columns[b], gain_offsets[b]
        while remaining > 0:  # one stretch per wrap of the band around the M columns
            n = min(remaining, m - column)
            if generated:
                gaussian_gains(first_bins[b] + (k - band_starts[b]), n, centre_bins[b], sd_bins[b], stretch, block,
                               ratio)
                gain = stretch[:n]
            else:
                gain = gains[g:g + n]
            # slices, not offset indices: numba cannot prove k + t >= 0, and its negative-index check stops the
            # loop from vectorising (3x slower, measured)
            target, source = row[column:column + n], spectrum[k:k + n]
            for t in range(n):
                target[t] += source[t] * gain[t]
            k += n
            g += n
            remaining -= n
            column = 0


@_compiled
def accumulate_log_powers(responses, first, band_slots, n_frames, floor, mantissa_bits, exponent_bias,
                          mantissa_mask, one_bits, mantissas, exponents, scratch, scratch_bits):
    """Multiply each band's power |z|^2 (floored, split into mantissa and binary exponent) into its slot.

    responses: complex (bands, >= n_frames), band i is band first + i of the plan; band_slots maps a band to a row
    of mantissas (float, multiplied in, starts at 1) and exponents (int, added to, starts at 0). A slot gathers the
    wavelets of one frequency that share one exponent in the geometric mean, so one logarithm per slot and frame
    replaces one per wavelet: log(prod p) = log(prod mantissa) + log(2) * sum(exponent). scratch: float
    (2, n_frames), and scratch_bits the same memory viewed as integers of the same width; the bit constants are
    those of the float type (23, 127, 0x7FFFFF, 0x3F800000 for float32).
    """
    power, power_bits = scratch[0], scratch_bits[0]
    mantissa, mantissa_as_bits = scratch[1], scratch_bits[1]
    for i in range(responses.shape[0]):
        z = responses[i]
        slot = band_slots[first + i]
        product, exponent = mantissas[slot], exponents[slot]
        for j in range(n_frames):
            power[j] = max(z[j].real * z[j].real + z[j].imag * z[j].imag, floor)
        # three short passes over cached rows: reading and rewriting the same row through both views in one loop
        # defeats vectorisation (4x slower, measured)
        for j in range(n_frames):
            bits = power_bits[j]
            exponent[j] += (bits >> mantissa_bits) - exponent_bias
            mantissa_as_bits[j] = (bits & mantissa_mask) | one_bits  # the mantissa, as a float in [1, 2)
        for j in range(n_frames):
            product[j] *= mantissa[j]


@_compiled
def add_slot_logs(log_mantissas, exponents, slot_freqs, slot_weights, log_sum):
    """log_sum[f] += weight * (log(mantissa product) + log(2) * exponent sum), for every slot (of frequency f)."""
    ln2 = math.log(2.0)
    for s in range(log_mantissas.shape[0]):
        out, weight = log_sum[slot_freqs[s]], slot_weights[s]
        for j in range(out.shape[0]):
            out[j] += weight * (log_mantissas[s, j] + ln2 * exponents[s, j])


def float_layout(dtype: np.dtype) -> tuple[type, int, int, int, int]:
    """(integer type of the same width, mantissa bits, exponent bias, mantissa mask, bits of 1.0) of a float type."""
    if np.dtype(dtype) == np.float32:
        return np.int32, 23, 127, 0x7FFFFF, 0x3F800000
    return np.int64, 52, 1023, 0xFFFFFFFFFFFFF, 0x3FF0000000000000
