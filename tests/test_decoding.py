"""Decoding: leakage-free cross-validation, permutation chance levels, and recovery of the planted responses of
the simulated dataset through the command line (`group --analysis decoding`)."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import gaussian_filter1d, uniform_filter1d
from scipy.stats import binom
from sklearn.linear_model import LogisticRegression

from bids_brainbert.analyses.cross_validation import leakage_free_folds, shuffled_folds
from bids_brainbert.analyses.decoding import (DecodingParams, data_efficiency_sizes, decode, held_out_scores,
                                             label_permutations, roc_auc)
from bids_brainbert.analyses.logistic import fit_logistic
from bids_brainbert.cli.run import main


def run(*args) -> int:
    return main([str(a) for a in args])


def overlapping_null_data(seed: int, seconds: float = 600.0):
    """Slow label-independent signals in 5 s windows every 0.5 s (90 % overlap), labels in blocks of ~5 s."""
    rng = np.random.default_rng(seed)
    rate, n_channels, window = 20.0, 100, 5.0
    signal = uniform_filter1d(rng.standard_normal((n_channels, int(seconds * rate))), size=int(rate), axis=1)
    onsets = np.arange(3.0, seconds - 3.0, 0.5)
    labels, state = np.zeros(len(onsets), int), 0
    for i in range(len(onsets)):
        state = 1 - state if rng.random() < 0.1 else state
        labels[i] = state
    first = ((onsets - window / 2) * rate).astype(int)
    x = np.stack([signal[:, f:f + int(window * rate)].mean(axis=1) for f in first])
    return x, labels, onsets - window / 2, onsets + window / 2, rng


def test_leakage_guard_overlapping_windows_give_chance():
    x, y, starts, stops, rng = overlapping_null_data(seed=0)
    result = decode(x, y, starts, stops, None, DecodingParams(n_permutations=20), rng)
    # the same data under an ordinary shuffled K-fold: neighbouring windows share data and label -> leak
    shuffled = np.mean([roc_auc(y[f.test], held_out_scores(x[f.train], y[f.train], x[f.test], 1.0)[:, 0])
                        for f in shuffled_folds(len(y), 5, rng)])
    assert shuffled > 0.7, "the leak this test guards against did not show: the test would prove nothing"
    assert abs(result.auc_mean - 0.5) < 0.07, result.auc_mean
    assert result.p_value > 0.05
    assert result.chance_low < result.auc_mean < result.chance_high
    assert result.scheme == "block" and len(result.folds) == 5


@pytest.mark.parametrize("n_examples, n_features", [(30, 5), (22, 40), (24, 600)])
def test_batched_logistic_regression_matches_scikit_learn(n_examples, n_features):
    rng = np.random.default_rng(n_features)
    x = rng.standard_normal((n_examples, n_features))
    labels = rng.random((n_examples, 4)) < 0.4
    labels[:2] = [[True] * 4, [False] * 4]
    x[:, 0] += 1.5 * labels[:, 0]
    cs = np.array([1e-3, 0.1, 1.0, 10.0])
    fits = fit_logistic(x, labels, cs)
    for column, c in enumerate(cs):
        reference = LogisticRegression(C=c, class_weight="balanced", tol=1e-12, max_iter=100_000).fit(
            x, labels[:, column])
        scale = max(np.abs(reference.coef_).max(), 1e-3)
        assert np.abs(fits.coef[column] - reference.coef_[0]).max() < 1e-4 * scale, c
        assert abs(fits.intercept[column] - reference.intercept_[0]) < 1e-4 * max(1.0, scale), c
        np.testing.assert_allclose(fits.decision(x)[:, column], reference.decision_function(x), atol=1e-4 * scale)


def test_label_permutations_stay_within_runs():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 30)
    runs = np.repeat([0, 1, 2], 10)
    starts = rng.permutation(30).astype(float)
    for scheme in ("shuffle", "shift"):
        labels = label_permutations(y, starts, runs, 50, rng, scheme)
        assert labels.shape == (30, 51) and np.array_equal(labels[:, 0], y)
        for run in range(3):
            members = np.flatnonzero(runs == run)
            assert np.all(labels[members].sum(axis=0) == y[members].sum()), "class counts change inside a run"
        assert np.mean(np.all(labels[:, 1:] == y[:, None], axis=0)) < 0.1
    order = np.argsort(starts[runs == 0])
    shifted = labels[np.flatnonzero(runs == 0)[order], 1:]
    in_time = y[np.flatnonzero(runs == 0)[order]]
    assert all(any(np.array_equal(np.roll(in_time, k), col) for k in range(1, 10)) for col in shifted.T)


def small_null_dataset(rng: np.random.Generator, n: int = 28, n_features: int = 40):
    """A few dozen trials whose features (smooth across "frequencies", like a spectrum) carry no label information."""
    x = gaussian_filter1d(rng.standard_normal((n, n_features)), 3, axis=1)
    y = rng.permutation(np.arange(n) % 2)
    onsets = 2.5 + 2.0 * np.arange(n)
    return x, y, onsets - 1.0, onsets + 1.0


def test_refitted_permutation_null_is_calibrated_on_small_samples():
    """With few trials the folds' AUCs are correlated under the null; the refitted null must account for it
    (permuting only the held-out labels gave p <= 0.1 for ~30 % of such label-free datasets)."""
    rng = np.random.default_rng(2024)
    n_sets, alpha = 40, 0.1
    p_values = [decode(*small_null_dataset(rng), None, DecodingParams(n_permutations=50), rng).p_value
                for _ in range(n_sets)]
    assert np.sum(np.array(p_values) <= alpha) <= binom.ppf(0.999, n_sets, alpha), p_values
    assert 0.3 < np.mean(p_values) < 0.7


@pytest.mark.parametrize("runs", [None, np.repeat([0, 1, 2], 40), np.repeat([0, 1, 2, 3, 4, 5, 6], 20)])
def test_no_training_window_overlaps_a_test_window(runs):
    rng = np.random.default_rng(1)
    n = 120 if runs is None or len(runs) == 120 else len(runs)
    starts = np.sort(rng.uniform(0, 300, n))
    stops = starts + 5.0
    folds, scheme = leakage_free_folds(starts, stops, runs, n_folds=5)
    run_ids = np.zeros(n) if runs is None else runs
    assert scheme == ("block" if runs is None else "run")
    assert len(folds) == (5 if runs is None or len(np.unique(runs)) >= 5 else len(np.unique(runs)))
    tested = np.concatenate([f.test for f in folds])
    assert sorted(tested) == list(range(n)), "every example is tested exactly once"
    for fold in folds:
        assert not set(fold.train) & set(fold.test)
        for i in fold.test:
            same = fold.train[run_ids[fold.train] == run_ids[i]]
            assert not np.any((starts[same] < stops[i]) & (stops[same] > starts[i])), "overlapping windows"
        if runs is not None:
            assert not set(run_ids[fold.train]) & set(run_ids[fold.test]), "a run on both sides"


def test_data_efficiency_sizes_fit_the_data():
    assert data_efficiency_sizes([50, 100, 200, 500, 1000], 640) == [50, 100, 200, 500]
    small = data_efficiency_sizes([50, 100], 24)
    assert small[0] == 6 and small[-1] == 24 and len(small) >= 3
    assert data_efficiency_sizes([50], 4) == []


DECODING = ["--analysis", "decoding", "--decoding-features", "superlet", "laplacian", "--decoding-window-s", "2",
            "--embedding-middle-frames", "40", "--decoding-contrast", "speech,nonspeech",
            "--data-efficiency-draws", "2", "--skip-bids-validation", "--random-seed", "11"]


def test_group_decoding_on_the_simulated_dataset(demo_derivatives, tmp_path):
    """One run checked twice (one test, so that parallel workers do not each repeat the run)."""
    root, out, truth = demo_derivatives
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    assert run(root, copy, "group", *DECODING) == 0
    check_planted_responses_are_recovered_and_others_stay_at_chance(copy, truth)
    check_decoding_tables_and_sidecars(copy)


def check_planted_responses_are_recovered_and_others_stay_at_chance(out, truth):
    summary = pd.read_csv(out / "task-listening_desc-decoding_summary.tsv", sep="\t", dtype={"subject": str},
                          keep_default_na=False, na_values=[""])
    electrodes = summary[summary["probe"] == "electrode"]
    unreferenced = electrodes[electrodes["feature"] == "superlet"]
    assert set(unreferenced["subject"]) == set(truth.responsive)
    above = []
    for subject, responsive in truth.responsive.items():
        rows = unreferenced[unreferenced["subject"] == subject].set_index("electrode")
        for name in responsive:
            assert rows.loc[name, "auc_mean"] >= 0.8, (subject, name, rows.loc[name, "auc_mean"])
            assert rows.loc[name, "p_value"] < 0.05
        quiet = rows.drop(index=responsive)
        assert len(quiet) >= 10
        assert 0.4 < quiet["auc_mean"].median() < 0.6
        above += [f"sub-{subject} {e}" for e in quiet.index[quiet["auc_mean"] > quiet["chance_high"]]]
        assert quiet["auc_mean"].max() < rows.loc[responsive, "auc_mean"].min(), "a quiet contact outranks a planted one"
    # a valid null puts each quiet contact above its 97.5 % bound with probability 2.5 %: the count must be a
    # plausible binomial draw (the per-fold null of our first version put 7 of 58 there)
    n_quiet = len(unreferenced) - sum(map(len, truth.responsive.values()))
    assert len(above) <= binom.ppf(0.99, n_quiet, 0.025), above
    # the Laplacian baseline: channels built from a responsive contact decode, the others are at chance
    channels = {}
    for tsv in out.rglob("*_desc-superlet_channels.tsv"):
        table = pd.read_csv(tsv, sep="\t")
        channels[tsv.name.split("_")[0][4:]] = dict(zip(table["name"], table["sources"].str.split(",")))
    laplacian = electrodes[electrodes["feature"] == "laplacianSuperlet"]
    quiet, planted = [], []
    for subject, responsive in truth.responsive.items():
        rows = laplacian[laplacian["subject"] == subject].set_index("electrode")
        for name in rows.index:
            own, *neighbours = channels[subject][name]
            if own in responsive:
                assert rows.loc[name, "auc_mean"] >= 0.8, (subject, name)
                planted.append(rows.loc[name, "auc_mean"])
            elif not set(neighbours) & set(responsive):
                quiet.append(rows.loc[name])
    quiet = pd.DataFrame(quiet)
    assert 0.4 < quiet["auc_mean"].median() < 0.6
    assert quiet["auc_mean"].max() < min(planted)
    assert (quiet["auc_mean"] > quiet["chance_high"]).sum() <= binom.ppf(0.99, len(quiet), 0.025)


def check_decoding_tables_and_sidecars(out):
    scores = pd.read_csv(out / "task-listening_desc-decoding_scores.tsv", sep="\t", dtype={"subject": str},
                         keep_default_na=False)
    sidecar = json.loads((out / "task-listening_desc-decoding_scores.json").read_text())
    for column in scores.columns:
        assert sidecar[column]["Description"], column
    assert sidecar["SoftwareVersion"] and sidecar["RandomSeed"] == 11
    assert sidecar["Targets"] == {"speechVsNonspeech": {"Positive": "speech", "Negative": "nonspeech"}}
    assert sidecar["Features"]["laplacianSuperlet"]["Reference"] == "laplacian"
    assert sidecar["CrossValidation"]["Permutations"] == 100
    # one row per subject x electrode x feature x fold; sub-01 has two runs -> leave-one-run-out
    per_probe = scores.groupby(["subject", "feature", "probe", "electrode"]).size()
    assert set(per_probe.loc["01"]) == {2} and set(per_probe.loc["02"]) == {5}
    assert set(scores.loc[scores["subject"] == "01", "cv_scheme"]) == {"run"}
    assert set(scores.loc[scores["subject"] == "03", "cv_scheme"]) == {"block"}
    assert scores["auc"].between(0, 1).all() and (scores["n_train"] > 0).all()
    assert set(scores["in_pretraining"]) == {"n/a"}
    assert {"population"} <= set(scores["probe"])
    efficiency = pd.read_csv(out / "task-listening_desc-dataefficiency_scores.tsv", sep="\t", dtype={"subject": str})
    eff_sidecar = json.loads((out / "task-listening_desc-dataefficiency_scores.json").read_text())
    assert eff_sidecar["RequestedSizes"] == [50, 100, 200, 500, 1000]
    for subject, sizes in eff_sidecar["SizesUsed"].items():
        assert sorted(set(efficiency.loc[efficiency["subject"] == subject[4:], "n_train"])) == sizes
    assert (out / "figures" / "task-listening_desc-dataEfficiency_figure.png").stat().st_size > 5000
    # the population probe holds the planted responses: with the most training examples it decodes
    curve = efficiency[efficiency["feature"] == "laplacianSuperlet"].groupby("n_train")["auc"].mean()
    assert curve.iloc[-1] >= 0.8 and efficiency["auc"].between(0, 1).all()


def test_reproducible_with_the_same_seed(demo_derivatives, tmp_path):
    root, out, _ = demo_derivatives
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    args = [a if a != "superlet" else "stft" for a in DECODING]
    args[args.index("laplacian")] = "voltage"
    args += ["--participant-label", "03", "--decoding-permutations", "30", "--decoding-offset-s", "0.1"]
    assert run(root, copy, "group", *args) == 0
    first = (copy / "task-listening_desc-decoding_summary.tsv").read_bytes()
    assert run(root, copy, "group", *args) == 0
    assert (copy / "task-listening_desc-decoding_summary.tsv").read_bytes() == first
    table = pd.read_csv(copy / "task-listening_desc-decoding_summary.tsv", sep="\t")
    assert set(table["feature"]) == {"stft", "voltage"}
    # the readout offset is recorded, and the offset curve re-scores the best stft electrodes around it
    sidecar = json.loads((copy / "task-listening_desc-decoding_summary.json").read_text())
    assert sidecar["ReadoutOffsetS"] == 0.1 and sidecar["Features"]["stft"]["ReadoutOffsetS"] == 0.1
    offsets = pd.read_csv(copy / "task-listening_desc-readoutoffset_summary.tsv", sep="\t", dtype={"subject": str})
    assert set(offsets["feature"]) == {"stft"} and offsets["electrode"].nunique() == 3
    assert {0.0, 0.1, 0.5} <= set(offsets["offset_s"]) and offsets["auc_mean"].between(0, 1).all()
    best = table[table["probe"] == "electrode"].sort_values("auc_mean").iloc[-1]
    at_offset = offsets[(offsets["electrode"] == best["electrode"]) & (offsets["offset_s"] == 0.1)]["auc_mean"]
    assert abs(at_offset.iloc[0] - best["auc_mean"]) < 1e-6     # same readout, same folds: the same AUC
    assert (copy / "figures" / "task-listening_desc-readoutOffset_figure.png").stat().st_size > 5000


def test_bad_decoding_requests_fail_with_one_line(demo_derivatives, tmp_path, capsys):
    root, out, _ = demo_derivatives
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    assert run(root, copy, "group", "--analysis", "decoding", "--decoding-column", "stimulus",
               "--skip-bids-validation") == 64
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and "_events.tsv: no column 'stimulus'" in errors[0]
    assert run(root, copy, "group", "--analysis", "decoding", "--decoding-contrast", "speech,music",
               "--skip-bids-validation") == 64
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and "'music'" in errors[0] and "_events.tsv" in errors[0]
    assert run(root, copy, "group", "--analysis", "decoding", "--decoding-contrast", "speech",
               "--skip-bids-validation") == 64
    assert not list(copy.glob("task-*_desc-decoding_*"))
