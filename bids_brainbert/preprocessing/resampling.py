"""Rational-factor resampling to a common sampling rate.

BrainBERT works at 2048 Hz; iEEG datasets come at 500, 512, 1000, 2000, 30000 Hz and odd rates. Polyphase
resampling by a rational factor ``up / down`` (:func:`scipy.signal.resample_poly`) is exact for the common
rates and, unlike FFT resampling, does not assume the recording is periodic.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
from scipy import signal

__all__ = ["resampling_factors", "resample_signal", "resampling_description", "resampled_length"]

# Bounds the polyphase filter length (about 20 * max(up, down) taps) while still allowing exact factors such as
# 30000 -> 2048 Hz (up 128 / down 1875).
MAX_DENOMINATOR = 10_000


def resampling_factors(sfreq: float, target_sfreq: float, *,
                       max_denominator: int = MAX_DENOMINATOR) -> tuple[int, int, float]:
    """Integer factors approximating ``target_sfreq / sfreq`` and the rate they actually give.

    Parameters
    ----------
    sfreq, target_sfreq : float
        Original and wanted sampling rates in Hz.
    max_denominator : int
        Largest allowed ``down`` factor (:meth:`fractions.Fraction.limit_denominator`).

    Returns
    -------
    up, down : int
        Coprime factors, ``up / down`` the closest fraction to ``target_sfreq / sfreq`` with ``down`` at most
        ``max_denominator``.
    achieved_sfreq : float
        ``sfreq * up / down`` in Hz; equal to ``target_sfreq`` whenever the ratio is representable.
    """
    if not (sfreq > 0 and math.isfinite(sfreq)):
        raise ValueError(f"sfreq must be a positive finite rate in Hz, got {sfreq!r}")
    if not (target_sfreq > 0 and math.isfinite(target_sfreq)):
        raise ValueError(f"target_sfreq must be a positive finite rate in Hz, got {target_sfreq!r}")
    # Fraction(float) is exact, so integer-valued rates give the exact ratio before limiting.
    ratio = (Fraction(target_sfreq) / Fraction(sfreq)).limit_denominator(max_denominator)
    if ratio == 0:
        raise ValueError(f"cannot resample from {sfreq:g} Hz to {target_sfreq:g} Hz with a denominator "
                         f"of at most {max_denominator}")
    achieved = float(Fraction(sfreq) * ratio)
    return ratio.numerator, ratio.denominator, achieved


def resample_signal(data: np.ndarray, sfreq: float, target_sfreq: float | None, *,
                    max_denominator: int = MAX_DENOMINATOR) -> tuple[np.ndarray, float]:
    """Resample every channel to (a rational approximation of) ``target_sfreq``.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_samples)
        Signal, any unit. Not modified.
    sfreq : float
        Sampling rate of ``data`` in Hz.
    target_sfreq : float or None
        Wanted rate in Hz. None, or a rate the factors reduce to 1/1: returned unchanged (float64 copy).
    max_denominator : int
        See :func:`resampling_factors`.

    Returns
    -------
    resampled : ndarray, shape (n_channels, ceil(n_samples * up / down)), float64
    achieved_sfreq : float
        The exact rate of ``resampled`` in Hz (``sfreq * up / down``), to be used downstream instead of
        ``target_sfreq``.

    Notes
    -----
    :func:`scipy.signal.resample_poly` low-pass filters at the lower of the two Nyquist frequencies with its
    default Kaiser-windowed FIR (beta 5). The signal is extended linearly beyond its ends (``padtype="line"``)
    so that DC offsets and slow drifts, common in iEEG, do not produce edge transients.
    """
    x = np.array(data, dtype=np.float64, copy=True)
    if x.ndim != 2:
        raise ValueError(f"data must have shape (n_channels, n_samples), got shape {x.shape}")
    if target_sfreq is None:
        return x, float(sfreq)
    up, down, achieved = resampling_factors(sfreq, target_sfreq, max_denominator=max_denominator)
    if up == down:
        return x, float(sfreq)
    if x.shape[1] == 0:
        return x, achieved
    # "line" padding fits a line through the samples, which needs at least two of them.
    padtype = "line" if x.shape[1] >= 2 else "constant"
    return signal.resample_poly(x, up, down, axis=-1, padtype=padtype), achieved


def resampling_description(sfreq: float, target_sfreq: float | None, *,
                           max_denominator: int = MAX_DENOMINATOR) -> dict[str, Any]:
    """JSON-serialisable record of what :func:`resample_signal` does with these arguments, for sidecars."""
    if target_sfreq is None:
        return {"applied": False, "original_sfreq_hz": float(sfreq), "sfreq_hz": float(sfreq)}
    up, down, achieved = resampling_factors(sfreq, target_sfreq, max_denominator=max_denominator)
    return {
        "applied": up != down,
        "original_sfreq_hz": float(sfreq),
        "target_sfreq_hz": float(target_sfreq),
        "sfreq_hz": achieved if up != down else float(sfreq),
        "up": up,
        "down": down,
        "method": "polyphase FIR resampling (scipy.signal.resample_poly, Kaiser window beta 5, padtype line)",
    }


def resampled_length(n_samples: int, sfreq: float, target_sfreq: float | None, *,
                     max_denominator: int = MAX_DENOMINATOR) -> int:
    """Samples :func:`resample_signal` returns for ``n_samples`` input samples (known before resampling, so that
    an output file can be sized first)."""
    if target_sfreq is None:
        return n_samples
    up, down, _ = resampling_factors(sfreq, target_sfreq, max_denominator=max_denominator)
    return n_samples if up == down else -(-n_samples * up // down)
