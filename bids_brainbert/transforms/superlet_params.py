"""Superlet parameters and the definition of the wavelets that make up each superlet.

For frequency ``f`` the order ``o(f)`` rises linearly from ``order_min`` at the lowest to ``order_max`` at the
highest frequency (adaptive) or is ``order_max`` everywhere (multiplicative). The superlet is a weighted geometric
mean of the magnitudes of Morlet responses; which wavelets, and their weights, depend on ``definition``:

- ``"brainbert"`` (default; what BrainBERT's superlet code, taken from Syncopy, computes): ``c1 * k`` cycles for
  k = order_min, order_min + 1, ... up to o, each with exponent ``1 / (o - order_min + 1)``, the last one
  weighted by the fractional part of ``o - order_min`` (BrainBERT's 3 -> 30: 3, 4, ..., ceil(o) cycles);
- ``"moca"`` (Moca et al. 2021, equation 7): ``c1 * k`` cycles for k = 1..ceil(o), exponent ``1 / o``, the last
  one weighted by the fractional part of ``o``.

A Morlet wavelet with ``c`` cycles is a complex exponential at ``f`` under a Gaussian of standard deviation
``c / (k_sd f)`` seconds, normalised to unit area (a sinusoid of amplitude A gives A/2).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# Frames within this many wavelet standard deviations of an end see the zero padding (reported as EdgeFrames).
EDGE_SD = 3.0
DEFINITIONS = ("brainbert", "moca")


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
    definition: str = "brainbert"   # "brainbert" (cycles c1*order_min .. c1*o) or "moca" (c1*1 .. c1*o)

    def __post_init__(self) -> None:
        if self.mode not in ("adaptive", "multiplicative"):
            raise ValueError(f"superlet mode must be adaptive or multiplicative, got {self.mode!r}")
        if self.output not in ("magnitude", "power", "log"):
            raise ValueError(f"superlet output must be magnitude, power or log, got {self.output!r}")
        if self.definition not in DEFINITIONS:
            raise ValueError(f"superlet definition must be one of {', '.join(DEFINITIONS)}, got {self.definition!r}")
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


def wavelet_set(order: float, params: SuperletParams) -> list[tuple[float, float]]:
    """(cycles, exponent) of the Morlet wavelets making up one superlet of (fractional) ``order``: orders
    first, first + 1, ... with first = order_min (BrainBERT's) or 1 (Moca's), the last one weighted by the
    fractional part of the span; the exponents sum to 1."""
    first = params.order_min if params.definition == "brainbert" else 1.0
    span = order - first + 1.0
    count = int(math.ceil(span - 1e-12))
    fraction = span - math.floor(span + 1e-12)
    exponents = [1.0] * count
    if fraction > 1e-12:
        exponents[-1] = fraction
    return [(params.base_cycles * (first + i), e / span) for i, e in enumerate(exponents)]


def morlet_sd_s(freq_hz: float, cycles: float, k_sd: float) -> float:
    """Standard deviation (seconds) of the Gaussian envelope of a Morlet wavelet."""
    return cycles / (k_sd * freq_hz)


def longest_wavelet_sd_s(params: SuperletParams) -> float:
    return max(morlet_sd_s(f, max(cycles for cycles, _ in wavelet_set(o, params)), params.k_sd)
               for f, o in zip(params.freqs_hz, params.orders()))


def edge_frames(sfreq: float, params: SuperletParams) -> int:
    """Output frames at each end within EDGE_SD standard deviations of the longest wavelet (zero-padding zone)."""
    return int(math.ceil(EDGE_SD * longest_wavelet_sd_s(params) * sfreq / params.decimation))


def superlet_frame_times(n_samples: int, sfreq: float, decimation: int) -> np.ndarray:
    """Time in seconds of each output frame (frame j is sample j*decimation)."""
    return np.arange(-(-n_samples // decimation)) * decimation / sfreq
