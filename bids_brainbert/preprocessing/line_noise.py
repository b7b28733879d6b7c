"""Power-line noise removal with zero-phase IIR notch filters.

BrainBERT removes 60 Hz and its harmonics up to 360 Hz with second-order IIR notches (Q = 30) applied causally.
Here each notch is run forward and backward (:func:`scipy.signal.sosfiltfilt`) so that the filtered signal has
no phase lag: downstream spectrograms and event-locked windows stay aligned with the raw timing.

Running a notch twice squares its magnitude response, so the -3 dB width of the applied notch is narrower than
``line_freq / quality`` (about 0.64 times it) and the attenuation at the notch centre is effectively complete.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import signal

__all__ = ["notch_count", "notch_frequencies", "remove_line_noise", "line_noise_description"]

# Notches are kept clear of Nyquist, where a second-order notch degenerates.
NYQUIST_FRACTION = 0.98
# At most this many notches: mains at 50 or 60 Hz needs 7 up to 360 Hz (16.7 Hz railway mains 21), while a
# PowerLineFrequency of 0.001 Hz would ask for hundreds of thousands (minutes of filtering per channel).
MAX_NOTCHES = 64
# Reflection padding long enough for the slowest notch's transient to decay to this fraction.
_EDGE_DECAY = 1e-3


def _line_freq_given(line_freq: float | None) -> bool:
    """False for None, 0 or NaN, the ways a missing PowerLineFrequency reaches us."""
    if line_freq is None:
        return False
    line_freq = float(line_freq)
    if math.isnan(line_freq) or line_freq == 0.0:
        return False
    if line_freq < 0 or math.isinf(line_freq):
        raise ValueError(f"line_freq must be a positive frequency in Hz, got {line_freq!r}")
    return True


def notch_frequencies(sfreq: float, line_freq: float | None, *,
                      harmonics_up_to_hz: float | None = None) -> list[float]:
    """Frequencies (Hz) that :func:`remove_line_noise` notches out.

    Parameters
    ----------
    sfreq : float
        Sampling rate in Hz.
    line_freq : float or None
        Power-line frequency in Hz (50 or 60). None, 0 or NaN mean "not known": no notches.
    harmonics_up_to_hz : float or None
        Highest frequency in Hz to notch (inclusive; BrainBERT used 360). None: every harmonic that fits.

    Returns
    -------
    list of float
        ``k * line_freq`` for k = 1, 2, ... while it is <= ``harmonics_up_to_hz`` and strictly below
        ``0.98 * sfreq / 2``. Empty when line_freq is not given or already lies above those limits.
    """
    if not sfreq > 0:
        raise ValueError(f"sfreq must be positive, got {sfreq!r}")
    if not _line_freq_given(line_freq):
        return []
    if harmonics_up_to_hz is not None and not harmonics_up_to_hz > 0:
        raise ValueError(f"harmonics_up_to_hz must be positive or None, got {harmonics_up_to_hz!r}")
    line_freq = float(line_freq)
    nyquist_limit = NYQUIST_FRACTION * float(sfreq) / 2.0
    count = notch_count(sfreq, line_freq, harmonics_up_to_hz=harmonics_up_to_hz)
    if count > MAX_NOTCHES:
        raise ValueError(f"line_freq {line_freq:g} Hz would need {count} notches (at most {MAX_NOTCHES})")
    freqs: list[float] = []
    k = 1
    while True:
        f = k * line_freq
        if f >= nyquist_limit or (harmonics_up_to_hz is not None and f > harmonics_up_to_hz):
            break
        freqs.append(float(f))
        k += 1
    return freqs


def notch_count(sfreq: float, line_freq: float, *, harmonics_up_to_hz: float | None = None) -> int:
    """How many harmonics of ``line_freq`` lie below the limits of :func:`notch_frequencies` (a bound computed
    without listing them: exact up to one at the boundary)."""
    limit = NYQUIST_FRACTION * float(sfreq) / 2.0
    if harmonics_up_to_hz is not None:
        limit = min(limit, float(harmonics_up_to_hz))
    if not line_freq > 0 or not math.isfinite(line_freq):
        return 0
    ratio = limit / float(line_freq)
    return int(ratio) + 1 if math.isfinite(ratio) else 2**63 - 1


def _notch_sos(sfreq: float, freqs: list[float], quality: float) -> np.ndarray:
    """One second-order section per notch, shape (n_notches, 6)."""
    sections = []
    for f in freqs:
        b, a = signal.iirnotch(f, quality, fs=sfreq)
        sections.append(np.concatenate([b / a[0], a / a[0]]))
    return np.asarray(sections, dtype=np.float64)


def _edge_padlen(sos: np.ndarray) -> int:
    """Samples of padding for the longest-ringing notch (pole radius r decays as r**n)."""
    # For a section with complex-conjugate poles, |pole|**2 = a2 / a0 (a0 is normalised to 1).
    radius = float(np.sqrt(np.max(np.abs(sos[:, 5]))))
    if radius <= 0.0 or radius >= 1.0:
        return 3 * (2 * len(sos) + 1)
    return int(math.ceil(math.log(_EDGE_DECAY) / math.log(radius)))


def remove_line_noise(data: np.ndarray, sfreq: float, line_freq: float | None, *,
                      harmonics_up_to_hz: float | None = None, quality: float = 30.0) -> np.ndarray:
    """Notch out power-line noise and its harmonics without phase distortion.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_samples)
        Signal, any unit (volts in the pipeline). Not modified.
    sfreq : float
        Sampling rate in Hz.
    line_freq : float or None
        Power-line frequency in Hz. None, 0 or NaN: the data are returned unchanged (as a float64 copy).
    harmonics_up_to_hz : float or None
        Highest notch frequency in Hz (inclusive). None: all harmonics below ``0.98 * sfreq / 2``.
    quality : float
        Quality factor of each second-order notch (centre frequency / -3 dB bandwidth of a single pass), the
        same for every harmonic, so higher harmonics get proportionally wider notches.

    Returns
    -------
    ndarray, shape (n_channels, n_samples), float64
        The filtered signal, a new array.

    Notes
    -----
    The notches are cascaded and applied forward and backward with :func:`scipy.signal.sosfiltfilt` using odd
    reflection padding long enough for the narrowest notch's ringing to decay to 1e-3 (capped at the signal
    length), which keeps edge transients short.
    """
    x = np.array(data, dtype=np.float64, copy=True)
    if x.ndim != 2:
        raise ValueError(f"data must have shape (n_channels, n_samples), got shape {x.shape}")
    if not quality > 0:
        raise ValueError(f"quality must be positive, got {quality!r}")
    freqs = notch_frequencies(sfreq, line_freq, harmonics_up_to_hz=harmonics_up_to_hz)
    if not freqs or x.shape[0] == 0 or x.shape[1] < 2:
        return x
    sos = _notch_sos(float(sfreq), freqs, float(quality))
    padlen = min(_edge_padlen(sos), x.shape[1] - 1)
    return signal.sosfiltfilt(sos, x, axis=-1, padtype="odd", padlen=padlen)


def line_noise_description(sfreq: float, line_freq: float | None, *,
                           harmonics_up_to_hz: float | None = None, quality: float = 30.0) -> dict[str, Any]:
    """JSON-serialisable record of what :func:`remove_line_noise` does with these arguments, for sidecars.

    Parameters are those of :func:`remove_line_noise` (without the data).

    Returns
    -------
    dict
        ``applied`` (bool), ``line_freq_hz`` (float or None), ``notch_freqs_hz`` (list of float, Hz),
        ``quality``, ``harmonics_up_to_hz``, ``nyquist_limit_hz`` (notches must lie strictly below it),
        ``method`` and ``zero_phase``.
    """
    freqs = notch_frequencies(sfreq, line_freq, harmonics_up_to_hz=harmonics_up_to_hz)
    given = _line_freq_given(line_freq)
    return {
        "applied": bool(freqs),
        "line_freq_hz": float(line_freq) if given else None,
        "notch_freqs_hz": freqs,
        "quality": float(quality),
        "harmonics_up_to_hz": None if harmonics_up_to_hz is None else float(harmonics_up_to_hz),
        "nyquist_limit_hz": NYQUIST_FRACTION * float(sfreq) / 2.0,
        "method": "second-order IIR notch per frequency (scipy.signal.iirnotch), applied forward and backward "
                  "(scipy.signal.sosfiltfilt)",
        "zero_phase": True,
    }
