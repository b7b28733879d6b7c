"""Was pretraining worth it? Each embedding model against the Laplacian spectrogram baseline and against its own
random-weights control, at two levels that are never mixed:

* ``electrode`` rows: one score per electrode (the per-electrode probes). Electrodes are paired by (subject,
  electrode name): a comparison uses only the electrodes both features scored, and says how many.
* ``population`` rows: one score per subject (all of a subject's electrodes read at once: the concatenated
  population probe of a feature, the population model ``population<Label>``, a fine-tuned population feature).
  They are paired by subject with the Laplacian baseline's concatenated population probe and with the random
  control's population score of the same readout (when it exists), and, per subject, with the best and with the
  median single electrode of the feature they read (the best electrode is picked on the same held-out AUCs, which
  favours it). n is then a number of subjects.

The test is the Wilcoxon signed-rank test of the paired AUC differences (two-sided, scipy's default handling of
zero differences), the median difference its effect size.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

from ..model.random_weights import random_label

ALPHA = 0.05
COMPARED_KINDS = ("embedding", "finetuned")      # rows compared with the Laplacian baseline and the random control
POPULATION_PREFIX = "population"                 # population<Label>: the population model over <label>'s embeddings
VERDICT_COLUMNS = {
    "target": "Decoded contrast (see the decoding summary)",
    "positive_class": "Value that is the positive class",
    "level": "electrode: one score per electrode (per-electrode probes); population: one score per subject (all "
             "of its electrodes read together: concatenated population probe, population model, fine-tuned "
             "population feature). Comparisons pair scores of the same level only",
    "feature": "Feature",
    "feature_kind": "baseline, embedding, random-weights or finetuned",
    "n_electrodes": "Electrodes scored with this feature (all subjects); n/a on population rows",
    "n_subjects": "Subjects with at least one score of this feature at this level",
    "auc_median": "Median of the fold-mean ROC-AUC over electrodes (electrode rows) or over subjects (population "
                  "rows)",
    "vs_laplacian": "Laplacian baseline compared with, at the same level (embedding and fine-tuned rows only; on "
                    "population rows its concatenated population probe)",
    "minus_laplacian_median": "Median over the pairs of (this feature's AUC - the Laplacian baseline's)",
    "minus_laplacian_n": "Pairs of the test: electrodes scored by both (electrode rows) or subjects (population rows)",
    "minus_laplacian_p": "Wilcoxon signed-rank p-value of the paired differences (two-sided)",
    "vs_random": "Random-weights control compared with, same level and readout (embedding rows only)",
    "minus_random_median": "Median over the pairs of (this feature's AUC - its random-weights control's)",
    "minus_random_n": "Pairs: electrodes (electrode rows) or subjects (population rows) scored by both",
    "minus_random_p": "Wilcoxon signed-rank p-value of the paired differences (two-sided)",
    "vs_electrodes": "Population rows: the feature whose single electrodes are compared with (the one the row reads)",
    "minus_best_electrode_median": "Median over subjects of (this population AUC - the subject's best single "
                                   "electrode AUC of vs_electrodes; the best is picked on the same held-out AUCs, "
                                   "which favours the electrode)",
    "minus_best_electrode_n": "Subjects in the comparison",
    "minus_best_electrode_p": "Wilcoxon signed-rank p-value over subjects (two-sided)",
    "minus_median_electrode_median": "Median over subjects of (this population AUC - the subject's median single "
                                     "electrode AUC of vs_electrodes)",
    "minus_median_electrode_n": "Subjects in the comparison",
    "minus_median_electrode_p": "Wilcoxon signed-rank p-value over subjects (two-sided)",
}
COMPARISONS = ("laplacian", "random", "best_electrode", "median_electrode")


def _scores(rows: pd.DataFrame, level: str) -> pd.Series:
    """AUC per electrode (subject, electrode) or per subject."""
    keys = [rows["subject"].astype(str)] + ([rows["electrode"].astype(str)] if level == "electrode" else [])
    return rows.set_index(keys)["auc_mean"].astype(float)


def paired_difference(mine: pd.Series, theirs: pd.Series) -> tuple[float, int, float]:
    """(median of mine - theirs, number of pairs, Wilcoxon p) over the index entries both hold."""
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


def paired_comparison(summary: pd.DataFrame, feature: str, other: str, level: str = "electrode"
                      ) -> tuple[float, int, float]:
    """(median of feature - other, number of pairs, Wilcoxon p) over the electrodes (or subjects) both scored."""
    rows = summary[summary["probe"] == level]
    return paired_difference(_scores(rows[rows["feature"] == feature], level),
                             _scores(rows[rows["feature"] == other], level))


def laplacian_feature(features: list[str]) -> str | None:
    return next((f for f in features if f.startswith("laplacian")), None)


def electrode_source(feature: str, electrode_features: list[str]) -> str | None:
    """The feature whose single electrodes a population row reads: itself (concatenated probe, fine-tuned), or
    ``<label>`` for the population model ``population<Label>``."""
    if feature in electrode_features:
        return feature
    if feature.startswith(POPULATION_PREFIX):
        rest = feature[len(POPULATION_PREFIX):]
        return next((f for f in electrode_features if f[:1].upper() + f[1:] == rest), None)
    return None


def _no_comparison(prefix: str) -> dict:
    return {f"vs_{prefix}" if prefix in ("laplacian", "random") else "vs_electrodes": "n/a",
            f"minus_{prefix}_median": float("nan"), f"minus_{prefix}_n": 0, f"minus_{prefix}_p": float("nan")}


def _with(prefix: str, other: str, result: tuple[float, int, float]) -> dict:
    median, n, p = result
    return {f"vs_{prefix}": other, f"minus_{prefix}_median": median, f"minus_{prefix}_n": n, f"minus_{prefix}_p": p}


def _population_versus_electrodes(own: pd.DataFrame, electrodes: pd.DataFrame, source: str) -> dict:
    mine = _scores(own, "population")
    singles = electrodes[electrodes["feature"] == source].groupby(electrodes["subject"].astype(str))["auc_mean"]
    row = {"vs_electrodes": source}
    for prefix, per_subject in (("best_electrode", singles.max()), ("median_electrode", singles.median())):
        median, n, p = paired_difference(mine, per_subject.astype(float))
        row.update({f"minus_{prefix}_median": median, f"minus_{prefix}_n": n, f"minus_{prefix}_p": p})
    return row


def verdict(summary: pd.DataFrame) -> pd.DataFrame:
    """Per target: one row per feature and level (see :data:`VERDICT_COLUMNS`): the electrode rows, then the
    population rows, features in the summary's order."""
    rows = []
    for target, by_target in summary.groupby("target", sort=False):
        electrodes = by_target[by_target["probe"] == "electrode"]
        electrode_features = list(dict.fromkeys(electrodes["feature"]))
        for level in ("electrode", "population"):
            at_level = by_target[by_target["probe"] == level]
            features = list(dict.fromkeys(at_level["feature"]))
            laplacian = laplacian_feature(features)
            for feature in features:
                own = at_level[at_level["feature"] == feature]
                kind = str(own["feature_kind"].iloc[0])
                row = {"target": target, "positive_class": own["positive_class"].iloc[0] if "positive_class" in own
                       else "n/a", "level": level, "feature": feature, "feature_kind": kind,
                       "n_electrodes": len(own) if level == "electrode" else float("nan"),
                       "n_subjects": int(own["subject"].astype(str).nunique()),
                       "auc_median": float(own["auc_mean"].astype(float).median())}
                for prefix, other in (("laplacian", laplacian), ("random", random_label(feature))):
                    wanted = kind in COMPARED_KINDS if prefix == "laplacian" else kind == "embedding"
                    if wanted and other in features and other != feature:
                        row.update(_with(prefix, other, paired_comparison(at_level, feature, other, level)))
                    else:
                        row.update(_no_comparison(prefix))
                source = electrode_source(feature, electrode_features) if level == "population" else None
                if source is not None:
                    row.update(_population_versus_electrodes(own, electrodes, source))
                else:
                    row.update({**_no_comparison("best_electrode"), **_no_comparison("median_electrode")})
                rows.append(row)
    table = pd.DataFrame(rows, columns=list(VERDICT_COLUMNS))
    return table.astype({"n_electrodes": "Int64"})          # an integer count, n/a on population rows


def compared(value) -> bool:
    """A vs_* cell that names a comparison (not n/a, also when read back from a TSV as NaN)."""
    return isinstance(value, str) and value not in ("n/a", "nan", "")


def _compared_with(row: pd.Series, prefix: str):
    """The vs_* cell of a comparison (n/a in a table written before it existed)."""
    return row.get("vs_electrodes" if prefix.endswith("electrode") else f"vs_{prefix}", "n/a")


def _outcome(feature: str, other: str, median: float, n: int, p: float, unit: str = "electrodes") -> str:
    if n < 2 or not np.isfinite(p):
        return f"{feature} vs {other}: too few paired {unit} ({n}) to compare."
    if p < ALPHA:
        winner, loser = (feature, other) if median > 0 else (other, feature)
        return (f"{winner} beats {loser} (median paired AUC difference {median:+.3f} for {feature}, "
                f"{n} {unit}, Wilcoxon p = {p:.2g}).")
    text = (f"{feature} and {other} do not differ (median paired AUC difference {median:+.3f}, {n} {unit}, "
            f"Wilcoxon p = {p:.2g}).")
    if smallest_p(n) >= ALPHA:      # e.g. 3 subjects: no outcome of the test could have been significant
        text += (f" With {n} pairs the test cannot reach p < {ALPHA:g} (its smallest p is {smallest_p(n):.2g}): "
                 f"more {unit} are needed to tell them apart.")
    return text


def smallest_p(n: int) -> float:
    """The smallest two-sided p-value the exact signed-rank test can give with n non-zero pairs (all signs equal)."""
    return min(1.0, 2.0 ** (1 - n))


def _level_of(rows: pd.DataFrame) -> pd.Series:
    return rows["level"].astype(str) if "level" in rows else pd.Series("electrode", index=rows.index)


def verdict_sentences(table: pd.DataFrame) -> list[str]:
    """Plain-words outcome per target and level: the best feature by median AUC and each comparison."""
    out = []
    levels = _level_of(table)
    for (target, level), rows in table.groupby([table["target"], levels], sort=False):
        best = rows.loc[rows["auc_median"].astype(float).idxmax()]
        if level == "population":
            text = (f"{target} (positive class: {best['positive_class']}), population level (one score per "
                    f"subject, all of its electrodes together): highest median subject AUC {best['feature']} "
                    f"({float(best['auc_median']):.3f}, {int(best['n_subjects'])} subjects).")
        else:
            text = (f"{target} (positive class: {best['positive_class']}): highest median electrode AUC "
                    f"{best['feature']} ({float(best['auc_median']):.3f}, {int(best['n_electrodes'])} electrodes).")
        unit = "subjects" if level == "population" else "electrodes"
        for _, row in rows[rows["feature_kind"].astype(str).isin(COMPARED_KINDS)].iterrows():
            for prefix in COMPARISONS:
                other = _compared_with(row, prefix)
                if not compared(other):
                    continue
                if prefix.endswith("electrode"):
                    other = f"the {prefix.split('_')[0]} single {other} electrode of each subject"
                text += " " + _outcome(row["feature"], other, float(row[f"minus_{prefix}_median"]),
                                       int(row[f"minus_{prefix}_n"]), float(row[f"minus_{prefix}_p"]), unit)
        out.append(text)
    return out


def report_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The verdict as the report shows it: one comparison per cell, n with its unit."""
    levels = _level_of(frame)

    def comparison(row, level: str, prefix: str) -> str:
        other = _compared_with(row, prefix)
        if not compared(other):
            return ""
        unit = "subjects" if level == "population" else "electrodes"
        p, n = float(row[f"minus_{prefix}_p"]), int(row[f"minus_{prefix}_n"])
        return (f"{float(row[f'minus_{prefix}_median']):+.3f} (n = {n} {unit}, p = {p:.2g})" if np.isfinite(p)
                else f"n = {n} {unit}: too few")

    def scored(row, level: str) -> str:
        if level == "population":
            return f"{int(row['n_subjects'])} subjects"
        return f"{int(row['n_electrodes'])} electrodes"

    cells = {prefix: [comparison(r, lv, prefix) for (_, r), lv in zip(frame.iterrows(), levels)]
             for prefix in COMPARISONS}
    return pd.DataFrame({
        "target": frame["target"], "positive class": frame["positive_class"], "level": levels,
        "feature": frame["feature"], "kind": frame["feature_kind"],
        "scored": [scored(r, lv) for (_, r), lv in zip(frame.iterrows(), levels)],
        "median AUC": frame["auc_median"], "minus Laplacian": cells["laplacian"],
        "minus random weights": cells["random"], "minus best electrode": cells["best_electrode"],
        "minus median electrode": cells["median_electrode"]})
