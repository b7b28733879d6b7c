"""Was pretraining worth it? Each embedding model against the Laplacian spectrogram baseline and against its own
random-weights control, electrode by electrode.

Input is the decoding summary (one row per subject x target x probe x feature). Electrodes are paired by
(subject, electrode name): a comparison uses only the electrodes both features scored, and says how many.
The test is the Wilcoxon signed-rank test of the paired AUC differences (two-sided, scipy's default handling of
zero differences), the median difference its effect size.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

from ..model.random_weights import random_label

ALPHA = 0.05
VERDICT_COLUMNS = {
    "target": "Decoded contrast (see the decoding summary)",
    "positive_class": "Value that is the positive class",
    "feature": "Feature",
    "feature_kind": "baseline, embedding or random-weights",
    "n_electrodes": "Electrodes scored with this feature (all subjects)",
    "auc_median": "Median over electrodes of the fold-mean ROC-AUC",
    "vs_laplacian": "Laplacian baseline compared with (embedding rows only)",
    "minus_laplacian_median": "Median over paired electrodes of (this feature's AUC - the Laplacian baseline's)",
    "minus_laplacian_n": "Electrodes scored by both (the pairs of the test)",
    "minus_laplacian_p": "Wilcoxon signed-rank p-value of the paired differences (two-sided)",
    "vs_random": "Random-weights control compared with (embedding rows only)",
    "minus_random_median": "Median over paired electrodes of (this feature's AUC - its random-weights control's)",
    "minus_random_n": "Electrodes scored by both",
    "minus_random_p": "Wilcoxon signed-rank p-value of the paired differences (two-sided)",
}


def paired_comparison(summary: pd.DataFrame, feature: str, other: str) -> tuple[float, int, float]:
    """(median of feature - other, number of paired electrodes, Wilcoxon p) over the electrodes both scored."""
    def auc_by_electrode(name: str) -> pd.Series:
        rows = summary[summary["feature"] == name]
        return rows.set_index([rows["subject"].astype(str), rows["electrode"].astype(str)])["auc_mean"].astype(float)

    mine, theirs = auc_by_electrode(feature), auc_by_electrode(other)
    common = mine.index.intersection(theirs.index)
    if not len(common):
        return float("nan"), 0, float("nan")
    diff = (mine.loc[common] - theirs.loc[common]).to_numpy()
    p = float("nan")
    if len(diff) >= 2 and np.any(diff != 0):
        p = float(wilcoxon(diff).pvalue)
    elif len(diff) >= 2:
        p = 1.0
    return float(np.median(diff)), int(len(diff)), p


def laplacian_feature(features: list[str]) -> str | None:
    return next((f for f in features if f.startswith("laplacian")), None)


def verdict(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per target and feature (see :data:`VERDICT_COLUMNS`), features in the summary's order."""
    electrodes = summary[summary["probe"] == "electrode"]
    rows = []
    for target, by_target in electrodes.groupby("target", sort=False):
        features = list(dict.fromkeys(by_target["feature"]))
        laplacian = laplacian_feature(features)
        for feature in features:
            own = by_target[by_target["feature"] == feature]
            kind = str(own["feature_kind"].iloc[0])
            row = {"target": target, "positive_class": own["positive_class"].iloc[0] if "positive_class" in own
                   else "n/a", "feature": feature, "feature_kind": kind, "n_electrodes": len(own),
                   "auc_median": float(own["auc_mean"].astype(float).median())}
            for prefix, other in (("laplacian", laplacian), ("random", random_label(feature))):
                if kind == "embedding" and other in features:
                    median, n, p = paired_comparison(by_target, feature, other)
                    row.update({f"vs_{prefix}": other, f"minus_{prefix}_median": median, f"minus_{prefix}_n": n,
                                f"minus_{prefix}_p": p})
                else:
                    row.update({f"vs_{prefix}": "n/a", f"minus_{prefix}_median": float("nan"),
                                f"minus_{prefix}_n": 0, f"minus_{prefix}_p": float("nan")})
            rows.append(row)
    return pd.DataFrame(rows, columns=list(VERDICT_COLUMNS))


def _outcome(feature: str, other: str, median: float, n: int, p: float) -> str:
    if n < 2 or not np.isfinite(p):
        return f"{feature} vs {other}: too few paired electrodes ({n}) to compare."
    if p < ALPHA:
        winner, loser = (feature, other) if median > 0 else (other, feature)
        return (f"{winner} beats {loser} (median paired AUC difference {median:+.3f} for {feature}, "
                f"{n} electrodes, Wilcoxon p = {p:.2g}).")
    return (f"{feature} and {other} do not differ (median paired AUC difference {median:+.3f}, {n} electrodes, "
            f"Wilcoxon p = {p:.2g}).")


def verdict_sentences(table: pd.DataFrame) -> list[str]:
    """Plain-words outcome per target: the best feature by median AUC and each embedding comparison."""
    out = []
    for target, rows in table.groupby("target", sort=False):
        best = rows.loc[rows["auc_median"].astype(float).idxmax()]
        text = (f"{target} (positive class: {best['positive_class']}): highest median electrode AUC "
                f"{best['feature']} ({float(best['auc_median']):.3f}, {int(best['n_electrodes'])} electrodes).")
        for _, row in rows[rows["feature_kind"] == "embedding"].iterrows():
            for prefix in ("laplacian", "random"):
                if row[f"vs_{prefix}"] != "n/a":
                    text += " " + _outcome(row["feature"], row[f"vs_{prefix}"], float(row[f"minus_{prefix}_median"]),
                                           int(row[f"minus_{prefix}_n"]), float(row[f"minus_{prefix}_p"]))
        out.append(text)
    return out
