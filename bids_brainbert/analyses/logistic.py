"""L2-regularised logistic regression fitted for many label vectors (and regularisation strengths) at once.

A valid permutation null for a cross-validated AUC refits the whole nested cross-validation for every permutation
of the labels (hundreds of small fits per probe); one fit is cheap but scikit-learn's per-call overhead is not, so
here one damped Newton solve handles every label column together. The objective is scikit-learn's
``LogisticRegression(C=C, class_weight="balanced")`` with an unpenalised intercept (the lbfgs/newton solvers)::

    0.5 ||w||^2 + C * sum_i s_i * log(1 + exp(-t_i (x_i . w + b))),   t_i = +-1,   s_i = n / (2 n_class(i))

and a test checks the coefficients against scikit-learn's. The minimiser's ``w`` lies in the span of the training
examples, so the problem is solved in the basis of the training matrix's right singular vectors: at most
``min(n, d)`` unknowns however many features there are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

MAX_NEWTON_STEPS = 100
CHUNK_ELEMENTS = 1 << 22          # columns are solved in groups of at most this many Hessian/design elements
MAX_HALVINGS = 12


@dataclass(frozen=True)
class LogisticFits:
    """Fitted probes, one per label column: ``w_p = basis.T @ theta[p, :-1]``, ``b_p = theta[p, -1]``."""

    basis: np.ndarray             # (r, n_features) orthonormal rows spanning the training examples
    theta: np.ndarray             # (n_columns, r + 1)

    @property
    def coef(self) -> np.ndarray:
        return self.theta[:, :-1] @ self.basis

    @property
    def intercept(self) -> np.ndarray:
        return self.theta[:, -1]

    def decision(self, x: np.ndarray) -> np.ndarray:
        """(n_examples, n_columns) decision values ``x @ w_p + b_p``."""
        return (x @ self.basis.T) @ self.theta[:, :-1].T + self.theta[:, -1]


def balanced_weights(labels: np.ndarray) -> np.ndarray:
    """scikit-learn's ``class_weight="balanced"`` per example and column: n / (2 * size of the example's class)."""
    n = labels.shape[0]
    n_pos = labels.sum(axis=0)
    with np.errstate(divide="ignore"):
        return np.where(labels, n / (2.0 * n_pos), n / (2.0 * (n - n_pos)))


def fit_logistic(x: np.ndarray, labels: np.ndarray, c) -> LogisticFits:
    """Fit one probe per column of ``labels`` (n_examples, n_columns; 0/1, both classes in every column).

    ``c``: one inverse regularisation strength, or one per column.
    """
    x = np.asarray(x, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    if labels.ndim == 1:
        labels = labels[:, None]
    n, n_columns = labels.shape
    n_pos = labels.sum(axis=0)
    if np.any((n_pos == 0) | (n_pos == n)):
        raise ValueError("every label column needs both classes")
    c = np.broadcast_to(np.asarray(c, dtype=np.float64), (n_columns,))
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    rank = int(np.sum(s > (s[0] if len(s) else 0.0) * max(x.shape) * np.finfo(float).eps)) if len(s) else 0
    basis = vt[:rank]
    design = np.hstack([x @ basis.T, np.ones((n, 1))])          # (n, rank + 1): reduced features and intercept
    theta = np.zeros((n_columns, rank + 1))
    signs = np.where(labels, 1.0, -1.0).T                          # (n_columns, n)
    weights = (balanced_weights(labels) * c).T                     # C * s_i, (n_columns, n)
    chunk = max(1, CHUNK_ELEMENTS // ((rank + 1) * max(n, rank + 1)))
    for lo in range(0, n_columns, chunk):
        part = slice(lo, lo + chunk)
        theta[part] = _newton(design, signs[part], weights[part])
    return LogisticFits(basis, theta)


def _objective(theta: np.ndarray, margins: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per column: 0.5 ||w||^2 + sum_i weights_i * log(1 + exp(-margin_i))."""
    return 0.5 * np.sum(theta[..., :-1] ** 2, axis=-1) + np.sum(weights * np.logaddexp(0.0, -margins), axis=-1)


def _newton(design: np.ndarray, signs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Damped Newton (backtracking on the objective) for every column at once; returns theta (n_columns, r + 1)."""
    n_columns, dim = signs.shape[0], design.shape[1]
    theta = np.zeros((n_columns, dim))
    penalised = np.ones(dim)
    penalised[-1] = 0.0                                            # the intercept is not penalised
    active = np.arange(n_columns)
    for _ in range(MAX_NEWTON_STEPS):
        th, sg, wt = theta[active], signs[active], weights[active]
        margins = sg * (th @ design.T)
        value = _objective(th, margins, wt)
        wrong = expit(-margins)                                    # probability given to the other class
        grad = th * penalised - (wt * sg * wrong) @ design
        curvature = wt * wrong * (1.0 - wrong)
        hessian = (design.T[None] * curvature[:, None, :]) @ design
        hessian[:, np.arange(dim), np.arange(dim)] += penalised
        step = np.linalg.solve(hessian, grad[..., None])[..., 0]
        decrement = np.sum(grad * step, axis=1)                    # Newton decrement squared
        done = decrement <= 1e-24 + 1e-13 * np.abs(value)
        # step 1, halved where it does not decrease the objective enough (Armijo); rarely needed near the optimum
        trial = th - step
        short = np.flatnonzero(_objective(trial, sg * (trial @ design.T), wt) > value - 1e-4 * decrement)
        size = 1.0
        for _ in range(MAX_HALVINGS):
            if not len(short):
                break
            size *= 0.5
            trial[short] = th[short] - size * step[short]
            margins = sg[short] * (trial[short] @ design.T)
            ok = _objective(trial[short], margins, wt[short]) <= value[short] - 1e-4 * size * decrement[short]
            short = short[~ok]
        theta[active] = np.where(done[:, None], th, trial)
        active = active[~done]
        if not len(active):
            break
    return theta
