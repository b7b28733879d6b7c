"""Report figures drawn with matplotlib (Agg) and returned as PNG bytes; tables in, bytes out."""

from __future__ import annotations

import functools
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

DPI = 90


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
        for onset, kind in zip(events["onset"], events.get("trial_type", pd.Series([""] * len(events)))):
            if extent[0] <= onset <= extent[1]:
                ax.axvline(onset, color="cyan" if str(kind) == str(events.iloc[0].get("trial_type", "")) else "white",
                           linewidth=0.7, alpha=0.8)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    ax.set_title(title, fontsize=9)
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
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return _png(fig)


@_plain_text
def auc_by_feature(summary: pd.DataFrame, title: str) -> bytes:
    """Electrode probes' mean AUC per feature (one box per feature) with the chance band."""
    rows = summary[summary["probe"] == "electrode"]
    if rows.empty:
        return _empty("no electrode probe was scored")
    features = list(dict.fromkeys(rows["feature"]))
    fig, ax = plt.subplots(figsize=(1.4 * len(features) + 2.5, 3.2))
    data = [rows.loc[rows["feature"] == f, "auc_mean"].astype(float).to_numpy() for f in features]
    ax.boxplot(data, showfliers=False)
    ax.set_xticks(range(1, len(features) + 1), features, rotation=20, fontsize=8)
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
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
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
    return _heatmap(table, title, label, vmin=0.3, vmax=1.0)


def _heatmap(table: pd.DataFrame, title: str, label: str, vmin=None, vmax=None) -> bytes:
    fig, ax = plt.subplots(figsize=(1.1 * table.shape[1] + 3.5, 0.28 * table.shape[0] + 1.8))
    image = ax.imshow(table.to_numpy(dtype=float), aspect="auto", cmap="viridis", vmin=vmin, vmax=vmax)
    ax.set_xticks(range(table.shape[1]), table.columns, rotation=25, fontsize=8, ha="right")
    ax.set_yticks(range(table.shape[0]), table.index, fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label=label)
    return _png(fig)


@_plain_text
def data_efficiency_curve(efficiency: pd.DataFrame, title: str) -> bytes:
    """Population-probe AUC (mean over draws, folds and subjects) against training-set size, per feature."""
    if efficiency is None or len(efficiency) == 0:
        return _empty("no data-efficiency result")
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for i, (feature, rows) in enumerate(efficiency.groupby("feature", sort=False)):
        curve = rows.groupby("n_train")["auc"].agg(["mean", "std"]).reset_index()
        ax.errorbar(curve["n_train"], curve["mean"], yerr=curve["std"].fillna(0), marker="o", capsize=2,
                    label=feature, color=f"C{i}")
    ax.axhline(0.5, color="0.4", linestyle="--", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("training examples")
    ax.set_ylabel("ROC-AUC")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return _png(fig)


@_plain_text
def decoding_figures(summary: pd.DataFrame, efficiency: pd.DataFrame | None) -> dict[str, bytes]:
    """The group figures of one task: by feature, by region, data efficiency."""
    out = {}
    for target, rows in summary.groupby("target", sort=False):
        out[f"decoding{target[0].upper()}{target[1:]}ByFeature"] = auc_by_feature(rows, f"{target}: all subjects")
        out[f"decoding{target[0].upper()}{target[1:]}ByRegion"] = auc_by_region(rows, f"{target}: by region")
    if efficiency is not None and len(efficiency):
        out["dataEfficiency"] = data_efficiency_curve(efficiency, "data efficiency (population probe)")
    return out


@_plain_text
def dimensionality_by_region(regions: pd.DataFrame) -> bytes:
    """Mean (± sd) intrinsic dimension per region, one bar per feature."""
    if regions is None or regions.empty:
        return _empty("no intrinsic-dimensionality result")
    table = regions.pivot_table(index="region", columns="feature", values="dimension_mean")
    spread = regions.pivot_table(index="region", columns="feature", values="dimension_sd").reindex_like(table)
    fig, ax = plt.subplots(figsize=(0.9 * len(table) + 3, 3.4))
    width = 0.8 / max(1, table.shape[1])
    positions = np.arange(len(table))
    for i, feature in enumerate(table.columns):
        ax.bar(positions + i * width, table[feature].to_numpy(float), width,
               yerr=np.nan_to_num(spread[feature].to_numpy(float)), capsize=2, label=feature, color=f"C{i}")
    ax.set_xticks(positions + width * (table.shape[1] - 1) / 2, table.index, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("components for > threshold variance")
    ax.set_title("intrinsic dimensionality by region", fontsize=9)
    ax.legend(fontsize=7)
    return _png(fig)
