"""Linear probes with leakage-free cross-validation, label-permutation chance levels and data-efficiency curves.

A probe is ``StandardScaler -> LogisticRegression(L2, class_weight="balanced")`` (scikit-learn). Its inverse
regularisation ``C`` is chosen inside each training fold by an inner leakage-free cross-validation (nested CV), the
probe is refitted on the whole training fold and scored by ROC-AUC on the held-out fold.

Chance level: the held-out labels of every fold are permuted ``n_permutations`` times while the probes' held-out
scores are kept; the mean AUC over folds under each permutation gives the null distribution (its mean is the
chance level, its 2.5/97.5 percentiles the chance band) and ``p = (1 + #{null >= observed}) / (1 + n)``.
Because a probe never sees its test fold, its held-out scores are independent of the held-out labels when the
features carry no label information, so no refit is needed. The permutations are random circular shifts of the
labels in time order within each test fold: unlike a shuffle, they keep the labels' autocorrelation (blocks of
one condition, as in movies or block designs), which a shuffle would break and so give too small p-values when
slow signal fluctuations happen to line up with label blocks.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import rankdata
from sklearn import config_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from .cross_validation import Fold, leakage_free_folds

DEFAULT_CS = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
BRAINBERT_SIZES = (50, 100, 200, 500, 1000)


@dataclass(frozen=True)
class DecodingParams:
    n_folds: int = 5                    # outer folds (or fewer runs)
    inner_folds: int = 3                # folds of the nested search for C
    gap_s: float = 0.0                  # extra seconds kept clear between training and test windows
    cs: tuple[float, ...] = DEFAULT_CS  # inverse regularisation strengths searched
    n_permutations: int = 100
    max_iter: int = 1000

    def to_dict(self) -> dict:
        return {"OuterFolds": self.n_folds, "InnerFolds": self.inner_folds, "GapS": self.gap_s,
                "RegularizationGrid": list(self.cs), "Permutations": self.n_permutations,
                "PermutationScheme": "random circular shifts of the held-out labels in time order, per fold",
                "Probe": "features z-scored with training-fold statistics, then LogisticRegression (L2, liblinear, class_weight=balanced)"}


@dataclass
class FoldScore:
    fold: int
    n_train: int
    n_test: int
    auc: float
    c: float


@dataclass
class ProbeResult:
    scheme: str                                      # "run" or "block"
    folds: list[FoldScore] = field(default_factory=list)
    auc_mean: float = float("nan")
    auc_sd: float = float("nan")
    chance_mean: float = float("nan")
    chance_low: float = float("nan")                 # 2.5th percentile of the null mean AUC
    chance_high: float = float("nan")                # 97.5th percentile
    p_value: float = float("nan")
    fold_splits: list[Fold] = field(default_factory=list)   # the folds that were scored


def roc_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """ROC-AUC (Mann-Whitney U with average ranks for ties); NaN when ``y`` holds a single class."""
    y = np.asarray(y).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def permuted_aucs(y: np.ndarray, scores: np.ndarray, n_permutations: int, rng: np.random.Generator,
                  scheme: str = "shift") -> np.ndarray:
    """AUCs of ``scores`` against ``n_permutations`` permutations of ``y`` (vectorised).

    ``scheme="shift"``: random non-zero circular shifts of ``y`` (given in time order); ``"shuffle"``: random
    permutations."""
    y = np.asarray(y).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    ranks = rankdata(scores)
    if scheme == "shift" and len(y) > 1:
        shifts = rng.integers(1, len(y), size=n_permutations)
        labels = y[(np.arange(len(y))[None, :] - shifts[:, None]) % len(y)]
    else:
        labels = rng.permuted(np.tile(y, (n_permutations, 1)), axis=1)
    return ((labels * ranks).sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def make_probe(c: float, seed: int, max_iter: int = 1000) -> LogisticRegression:
    return LogisticRegression(C=c, solver="liblinear", class_weight="balanced", max_iter=max_iter, random_state=seed)


def _standardise(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """z-score every feature with the training part's mean and standard deviation (constant features -> 0)."""
    mean = x_train.mean(axis=0)
    sd = x_train.std(axis=0)
    sd[sd == 0] = 1.0
    return (x_train - mean) / sd, (x_test - mean) / sd


def _fit_scores(x_train, y_train, x_test, c: float, seed: int, max_iter: int) -> np.ndarray:
    """Held-out decision values of a probe fitted on the training part (standardised with its statistics)."""
    z_train, z_test = _standardise(x_train, x_test)
    # the arrays are checked once by us; skipping scikit-learn's per-call validation makes small fits ~3x faster
    with warnings.catch_warnings(), config_context(assume_finite=True, skip_parameter_validation=True):
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe = make_probe(c, seed, max_iter).fit(z_train, y_train)
    return z_test @ probe.coef_[0] + probe.intercept_[0]


def choose_c(x: np.ndarray, y: np.ndarray, starts_s, stops_s, runs, params: DecodingParams, seed: int) -> float:
    """The C with the best mean inner-fold AUC (ties: the strongest regularisation); 1.0 if no inner fold works."""
    folds, _ = leakage_free_folds(starts_s, stops_s, runs, n_folds=params.inner_folds, gap_s=params.gap_s)
    folds = [f for f in folds if _two_classes(y[f.train]) and _two_classes(y[f.test])]
    if not folds:
        return 1.0
    means = []
    for c in sorted(params.cs):
        means.append(np.mean([roc_auc(y[f.test], _fit_scores(x[f.train], y[f.train], x[f.test], c, seed,
                                                               params.max_iter)) for f in folds]))
    return float(sorted(params.cs)[int(np.argmax(means))])


def _two_classes(y: np.ndarray) -> bool:
    return len(np.unique(y)) == 2


def decode(x: np.ndarray, y: np.ndarray, starts_s, stops_s, runs, params: DecodingParams,
           rng: np.random.Generator) -> ProbeResult:
    """Cross-validated ROC-AUC of a linear probe predicting binary ``y`` from ``x`` (n_examples, n_features).

    ``starts_s``/``stops_s`` are each example's window in seconds within its run (``runs``); see
    :func:`leakage_free_folds`. Folds whose training or test part holds one class only are not scored.
    """
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("features must be finite")
    y = np.asarray(y).astype(int)
    starts_s, stops_s = np.asarray(starts_s, float), np.asarray(stops_s, float)
    runs = np.asarray(runs) if runs is not None else np.zeros(len(y), dtype=int)
    folds, scheme = leakage_free_folds(starts_s, stops_s, runs, n_folds=params.n_folds, gap_s=params.gap_s)
    result = ProbeResult(scheme=scheme)
    seed = int(rng.integers(2**31 - 1))
    held_out: list[tuple[np.ndarray, np.ndarray]] = []
    for index, fold in enumerate(folds):
        if not (_two_classes(y[fold.train]) and _two_classes(y[fold.test])):
            continue
        tr = fold.train
        fold = Fold(tr, fold.test[np.lexsort((starts_s[fold.test], runs[fold.test]))])   # test in time order
        c = choose_c(x[tr], y[tr], starts_s[tr], stops_s[tr], runs[tr], params, seed)
        scores = _fit_scores(x[tr], y[tr], x[fold.test], c, seed, params.max_iter)
        result.folds.append(FoldScore(index, len(tr), len(fold.test), roc_auc(y[fold.test], scores), c))
        result.fold_splits.append(fold)
        held_out.append((y[fold.test], scores))
    if not result.folds:
        return result
    aucs = np.array([f.auc for f in result.folds])
    result.auc_mean = float(aucs.mean())
    result.auc_sd = float(aucs.std(ddof=1)) if len(aucs) > 1 else 0.0
    if params.n_permutations > 0:
        null = np.mean([permuted_aucs(yt, s, params.n_permutations, rng) for yt, s in held_out], axis=0)
        result.chance_mean = float(null.mean())
        result.chance_low, result.chance_high = (float(v) for v in np.percentile(null, [2.5, 97.5]))
        result.p_value = float((1 + np.sum(null >= result.auc_mean - 1e-12)) / (1 + params.n_permutations))
    return result


def data_efficiency_sizes(requested, n_available: int, minimum: int = 6) -> list[int]:
    """Training-set sizes to evaluate: the requested ones that fit ``n_available`` examples, else (none fits) up
    to four sizes spaced geometrically from ``minimum`` to ``n_available``."""
    fitting = sorted({int(s) for s in requested if minimum <= int(s) <= n_available})
    if fitting:
        return fitting
    if n_available < minimum:
        return []
    return sorted({int(round(v)) for v in np.geomspace(minimum, n_available, num=4)})


def stratified_draw(y: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` indices drawn without replacement, class proportions kept, at least one example per class."""
    classes = np.unique(y)
    chosen = []
    remaining = size
    for i, cls in enumerate(classes):
        members = np.flatnonzero(y == cls)
        share = remaining if i == len(classes) - 1 else max(1, int(round(size * len(members) / len(y))))
        share = min(share, len(members), remaining - (len(classes) - 1 - i))
        chosen.append(rng.choice(members, size=share, replace=False))
        remaining -= share
    return np.sort(np.concatenate(chosen))


def data_efficiency(x: np.ndarray, y: np.ndarray, result: ProbeResult, sizes: list[int], n_draws: int,
                    params: DecodingParams, rng: np.random.Generator) -> list[dict]:
    """Held-out AUC against the number of training examples: for every scored fold of ``result``, ``n_draws``
    stratified random subsets of each size are drawn from its training part and fitted with that fold's C.

    Returns rows (fold, n_train, draw, auc)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y).astype(int)
    seed = int(rng.integers(2**31 - 1))
    rows = []
    for score, fold in zip(result.folds, result.fold_splits):
        for size in sizes:
            if size > len(fold.train):
                continue
            for draw in range(n_draws):
                subset = fold.train[stratified_draw(y[fold.train], size, rng)]
                scores = _fit_scores(x[subset], y[subset], x[fold.test], score.c, seed, params.max_iter)
                rows.append({"fold": score.fold, "n_train": size, "draw": draw,
                             "auc": roc_auc(y[fold.test], scores)})
    return rows
