"""Intrinsic dimensionality of a set of vectors: the fewest principal components explaining more than a given
fraction of the variance (BrainBERT: > 95 %, 500 examples per electrode)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_EXAMPLES = 3


@dataclass(frozen=True)
class Dimensionality:
    dimension: int                      # fewest components explaining > threshold of the variance
    n_examples: int
    n_features: int
    explained: np.ndarray               # cumulative explained-variance ratio per component

    @property
    def max_rank(self) -> int:
        """The most components the data can have: min(n_examples - 1, n_features)."""
        return min(self.n_examples - 1, self.n_features)


def explained_variance_ratio(x: np.ndarray) -> np.ndarray:
    """Fraction of the total variance along each principal component of ``x`` (n_examples, n_features)."""
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(axis=0)
    singular = np.linalg.svd(centred, compute_uv=False)
    variance = singular ** 2
    total = variance.sum()
    return variance / total if total > 0 else np.zeros_like(variance)


def intrinsic_dimension(x: np.ndarray, threshold: float = 0.95) -> Dimensionality:
    """PCA dimension of ``x`` (n_examples, n_features) at ``threshold`` (0 < threshold < 1).

    A constant set (no variance) has dimension 0.
    """
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] < MIN_EXAMPLES:
        raise ValueError(f"need a 2-d array with at least {MIN_EXAMPLES} examples, got shape {x.shape}")
    cumulative = np.cumsum(explained_variance_ratio(x))
    if not cumulative.size or cumulative[-1] == 0:
        return Dimensionality(0, x.shape[0], x.shape[1], cumulative)
    dimension = int(np.searchsorted(cumulative, threshold, side="right") + 1)
    return Dimensionality(min(dimension, cumulative.size), x.shape[0], x.shape[1], cumulative)


def draw_examples(n_available: int, n_wanted: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of at most ``n_wanted`` examples drawn without replacement (all of them, in order, if fewer)."""
    if n_available <= n_wanted:
        return np.arange(n_available)
    return np.sort(rng.choice(n_available, size=n_wanted, replace=False))
