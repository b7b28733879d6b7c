"""Report figures drawn with matplotlib (Agg) and returned as PNG bytes; tables in, bytes out."""

from __future__ import annotations

import functools
import io
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

DPI = 100
# legible at 100 % zoom: the smallest text in a figure is 9 pt
plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "xtick.labelsize": 9,
                     "ytick.labelsize": 9, "legend.fontsize": 9})


def natural_key(text) -> list:
    """Sort key putting G2 before G10 (digit runs compared as numbers)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", str(text))]


def natural_sorted(values) -> list:
    return sorted(values, key=natural_key)


def _plain_text(draw):
    """Labels from the dataset (channel, region, task names) are drawn as written: '$...$' in a name would
    otherwise be parsed as matplotlib mathtext, and crash the report when it is not valid TeX."""
    @functools.wraps(draw)
    def drawn(*args, **kwargs):
        with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):
            return draw(*args, **kwargs)
    return drawn


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _empty(message: str) -> bytes:
    fig, ax = plt.subplots(figsize=(5, 1.5))
    ax.text(0.5, 0.5, message, ha="center", va="center")
    ax.set_axis_off()
    return _png(fig)


@_plain_text
def spectrogram_example(spectrogram: np.ndarray, freqs_hz: np.ndarray, frame_rate_hz: float, start_time_s: float,
                        title: str, events: pd.DataFrame | None = None, seconds: float = 20.0) -> bytes:
    """log10 magnitude of one electrode, (n_frames, n_freqs), first ``seconds`` s after the edge zone, with event
    onsets marked."""
    n = min(spectrogram.shape[0], max(2, int(seconds * frame_rate_hz)))
    first = max(0, (spectrogram.shape[0] - n) // 2)
    shown = np.log10(np.maximum(np.asarray(spectrogram[first:first + n], np.float64), 1e-30)).T
    t0 = start_time_s + first / frame_rate_hz
    fig, ax = plt.subplots(figsize=(8, 2.6))
    extent = (t0, t0 + n / frame_rate_hz, float(freqs_hz[0]), float(freqs_hz[-1]))
    image = ax.imshow(shown, aspect="auto", origin="lower", extent=extent, cmap="magma")
    if events is not None and len(events):
        kinds = events.get("trial_type", pd.Series(["event"] * len(events))).astype(str)
        colours = dict(zip(sorted(set(kinds)), ["cyan", "white", "lime", "orange", "magenta", "yellow"] * 10))
        shown_kinds = set()
        for onset, kind in zip(pd.to_numeric(events["onset"], errors="coerce"), kinds):
            if extent[0] <= onset <= extent[1]:
                ax.axvline(onset, color=colours[kind], linewidth=0.9, alpha=0.9,
                           label=f"onset: {kind}" if kind not in shown_kinds else None)
                shown_kinds.add(kind)
        if shown_kinds:
            ax.legend(loc="upper right", framealpha=0.6, facecolor="0.3", labelcolor="white")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="log10 |V|")
    return _png(fig)


@_plain_text
def embedding_scatter(embeddings: np.ndarray, labels: list[str], title: str) -> bytes:
    """First two principal components of event embeddings (n_events, d), coloured by label."""
    x = np.asarray(embeddings, np.float64)
    if len(x) < 3:
        return _empty("too few events for an embedding plot")
    centred = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    pcs = u[:, :2] * s[:2]
    fig, ax = plt.subplots(figsize=(4.2, 3.4))
    for i, value in enumerate(sorted(set(labels))):
        sel = np.asarray(labels) == value
        ax.scatter(pcs[sel, 0], pcs[sel, 1] if pcs.shape[1] > 1 else np.zeros(sel.sum()), s=14, label=value,
                   color=f"C{i}")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(title)
    ax.legend()
    return _png(fig)


def feature_order(summary: pd.DataFrame) -> list[str]:
    """Features in the order the decoding summary lists them (the order of every decoding figure)."""
    return list(dict.fromkeys(summary["feature"]))


@_plain_text
def auc_by_feature(summary: pd.DataFrame, title: str) -> bytes:
    """Electrode probes' mean AUC per feature (one box per feature, its electrode count under the name) with the
    chance band."""
    rows = summary[summary["probe"] == "electrode"]
    if rows.empty:
        return _empty("no electrode probe was scored")
    features = feature_order(rows)
    fig, ax = plt.subplots(figsize=(1.5 * len(features) + 2.5, 3.6))
    data = [rows.loc[rows["feature"] == f, "auc_mean"].astype(float).to_numpy() for f in features]
    ax.boxplot(data, showfliers=False)
    ax.set_xticks(range(1, len(features) + 1), [f"{f}\nn = {len(d)}" for f, d in zip(features, data)],
                  rotation=20)
    rng = np.random.default_rng(0)
    for i, values in enumerate(data, start=1):
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(values)), values, s=9, color="C0", alpha=0.7)
    population = summary[summary["probe"] == "population"]
    for i, f in enumerate(features, start=1):
        pop = population.loc[population["feature"] == f, "auc_mean"].astype(float)
        if len(pop):
            ax.scatter([i] * len(pop), pop, marker="D", color="C3", s=26, label="population" if i == 1 else None)
    high = rows["chance_high"].astype(float).median()
    ax.axhline(0.5, color="0.4", linestyle="--", linewidth=0.8)
    if np.isfinite(high):
        ax.axhspan(1 - high, high, color="0.85", zorder=0, label="median chance band")
    ax.set_ylabel("ROC-AUC (mean over folds)")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(loc="lower right")
    return _png(fig)


@_plain_text
def auc_by_region(summary: pd.DataFrame, title: str) -> bytes:
    """Mean electrode AUC per region (rows) and feature (columns) as a heat map."""
    return _electrode_auc_heatmap(summary, "region", title, "mean ROC-AUC")


@_plain_text
def electrode_auc_map(summary: pd.DataFrame, title: str) -> bytes:
    """AUC per electrode (rows) and feature (columns) for one subject and target."""
    return _electrode_auc_heatmap(summary, "electrode", title, "ROC-AUC")


def _electrode_auc_heatmap(summary: pd.DataFrame, rows_by: str, title: str, label: str) -> bytes:
    rows = summary[summary["probe"] == "electrode"]
    if rows.empty:
        return _empty("no electrode probe was scored")
    table = rows.pivot_table(index=rows_by, columns="feature", values="auc_mean", aggfunc="mean")
    counts = rows.pivot_table(index=rows_by, columns="feature", values="auc_mean", aggfunc="count")
    order = natural_sorted(table.index)
    columns = [f for f in feature_order(rows) if f in table.columns]
    table, counts = table.reindex(index=order, columns=columns), counts.reindex(index=order, columns=columns)
    # one electrode per cell needs no count; a region's cells say how many electrodes they average
    return _heatmap(table, title, label, vmin=0.3, vmax=1.0, counts=counts if rows_by == "region" else None)


def _heatmap(table: pd.DataFrame, title: str, label: str, vmin=None, vmax=None,
             counts: pd.DataFrame | None = None) -> bytes:
    fig, ax = plt.subplots(figsize=(1.3 * table.shape[1] + 3.5, 0.32 * table.shape[0] + 2.0))
    values = table.to_numpy(dtype=float)
    image = ax.imshow(values, aspect="auto", cmap="viridis", vmin=vmin, vmax=vmax)
    ax.set_xticks(range(table.shape[1]), table.columns, rotation=25, ha="right")
    ax.set_yticks(range(table.shape[0]), table.index)
    if counts is not None:
        for (i, j), n in np.ndenumerate(counts.to_numpy(dtype=float)):
            if np.isfinite(n) and n > 0:
                bright = np.isfinite(values[i, j]) and values[i, j] > ((vmin or 0) + (vmax or 1)) / 2
                ax.text(j, i, f"{values[i, j]:.2f}\nn={int(n)}", ha="center", va="center", fontsize=9,
                        color="black" if bright else "white")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label=label)
    return _png(fig)


@_plain_text
def data_efficiency_curve(efficiency: pd.DataFrame, title: str) -> bytes:
    """Population-probe AUC (mean ± sd over draws and folds) against training-set size, one panel per subject (its
    sizes differ with its recordings), one line per feature; the ticks are the sizes actually used."""
    if efficiency is None or len(efficiency) == 0:
        return _empty("no data-efficiency result")
    subjects = natural_sorted(set(efficiency["subject"].astype(str)))
    features = list(dict.fromkeys(efficiency["feature"]))
    fig, axes = plt.subplots(1, len(subjects), figsize=(3.6 * len(subjects) + 1.0, 3.4), squeeze=False,
                             sharey=True)
    for ax, subject in zip(axes[0], subjects):
        rows = efficiency[efficiency["subject"].astype(str) == subject]
        for i, feature in enumerate(features):
            curve = (rows[rows["feature"] == feature].groupby("n_train")["auc"].agg(["mean", "std"])
                     .reset_index())
            if len(curve):
                ax.errorbar(curve["n_train"], curve["mean"], yerr=curve["std"].fillna(0), marker="o", capsize=2,
                            label=feature, color=f"C{i}")
        sizes = sorted(set(rows["n_train"].astype(int)))
        ax.axhline(0.5, color="0.4", linestyle="--", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xticks(sizes, [str(n) for n in sizes])
        ax.minorticks_off()
        ax.set_xlabel("training examples used")
        ax.set_title(f"sub-{subject}")
    axes[0][0].set_ylabel("ROC-AUC")
    axes[0][-1].legend(loc="lower right")
    fig.suptitle(title, y=1.03)
    return _png(fig)


@_plain_text
def auc_by_offset(offsets: pd.DataFrame, chosen_offset_s: float) -> bytes:
    """Spectrogram-baseline AUC of the best electrodes against the readout offset from the onset."""
    if offsets is None or len(offsets) == 0:
        return _empty("no readout-offset result")
    targets = list(dict.fromkeys(offsets["target"]))
    fig, axes = plt.subplots(1, len(targets), figsize=(7.5 * len(targets), 3.8), squeeze=False)
    for ax, target in zip(axes[0], targets):
        rows = offsets[offsets["target"] == target]
        for i, ((subject, electrode), curve) in enumerate(rows.groupby(["subject", "electrode"], sort=False)):
            curve = curve.sort_values("offset_s")
            ax.plot(curve["offset_s"], curve["auc_mean"], marker="o", color=f"C{i % 10}",
                    label=f"sub-{subject} {electrode}")
        ax.axvline(chosen_offset_s, color="0.2", linestyle=":", label=f"offset used ({chosen_offset_s:g} s)")
        ax.axvline(0, color="0.6", linewidth=0.8)
        ax.axhline(0.5, color="0.4", linestyle="--", linewidth=0.8)
        ax.set_ylim(0.3, 1.0)
        ax.set_xlabel("readout centre after the onset (s)")
        ax.set_ylabel("ROC-AUC")
        ax.set_title(f"{target}: {rows['feature'].iloc[0]} baseline, best electrodes")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(fig)


@_plain_text
def decoding_figures(summary: pd.DataFrame, efficiency: pd.DataFrame | None) -> dict[str, bytes]:
    """The group figures of one task: by feature, by region, data efficiency."""
    out = {}
    for target, rows in summary.groupby("target", sort=False):
        positive = rows["positive_class"].iloc[0] if "positive_class" in rows else None
        suffix = f" (positive class: {positive})" if positive is not None else ""
        out[f"decoding{target[0].upper()}{target[1:]}ByFeature"] = auc_by_feature(rows, f"{target}{suffix}: all "
                                                                                        "subjects")
        out[f"decoding{target[0].upper()}{target[1:]}ByRegion"] = auc_by_region(rows, f"{target}{suffix}: by "
                                                                                      "region")
    if efficiency is not None and len(efficiency):
        out["dataEfficiency"] = data_efficiency_curve(efficiency, "data efficiency (population probe)")
    return out


@_plain_text
def dimensionality_by_region(regions: pd.DataFrame) -> bytes:
    """Mean (± sd) intrinsic dimension per region, one bar per feature; a black tick marks the mean ceiling
    min(n_examples - 1, n_features) of its electrodes and "k/n" counts the electrodes at their ceiling."""
    if regions is None or regions.empty:
        return _empty("no intrinsic-dimensionality result")
    table = regions.pivot_table(index="region", columns="feature", values="dimension_mean")
    table = table.reindex(index=natural_sorted(table.index))
    spread = regions.pivot_table(index="region", columns="feature", values="dimension_sd").reindex_like(table)
    has_ceiling = {"max_dimension_mean", "n_at_ceiling"} <= set(regions.columns)
    if has_ceiling:
        ceiling = regions.pivot_table(index="region", columns="feature", values="max_dimension_mean"
                                      ).reindex_like(table)
        at_ceiling = regions.pivot_table(index="region", columns="feature", values="n_at_ceiling").reindex_like(table)
        counts = regions.pivot_table(index="region", columns="feature", values="n_electrodes").reindex_like(table)
    fig, ax = plt.subplots(figsize=(min(10.0, 1.1 * len(table) + 3.0), 4.2))
    width = 0.8 / max(1, table.shape[1])
    positions = np.arange(len(table))
    for i, feature in enumerate(table.columns):
        x = positions + i * width
        ax.bar(x, table[feature].to_numpy(float), width, yerr=np.nan_to_num(spread[feature].to_numpy(float)),
               capsize=2, label=feature, color=f"C{i}")
        if has_ceiling:
            ax.scatter(x, ceiling[feature].to_numpy(float), marker="_", s=220, color="black", linewidths=2,
                       label="mean ceiling min(n-1, features); k/n: electrodes at it" if i == 0 else None,
                       zorder=3)
            for xi, k, n in zip(x, at_ceiling[feature].to_numpy(float), counts[feature].to_numpy(float)):
                if np.isfinite(k) and np.isfinite(n):
                    ax.text(xi, 0.2, f"{int(k)}/{int(n)}", ha="center", va="bottom", fontsize=9, rotation=90,
                            color="white")
    ax.set_xticks(positions + width * (table.shape[1] - 1) / 2, table.index, rotation=30, ha="right")
    ax.set_ylabel("components for > threshold variance")
    ax.set_title("intrinsic dimensionality by region")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.32), ncol=2)
    return _png(fig)
