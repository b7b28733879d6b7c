"""Fast checks of the trust-building pieces: the random-weights control, the verdict's statistics, the contrast
order and the validation share."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import wilcoxon

from bids_brainbert.analyses.verdict import verdict, verdict_sentences
from bids_brainbert.model import BrainBertPretrainModel, ModelConfig
from bids_brainbert.model.random_weights import random_label, random_weights_model, state_sha256
from bids_brainbert.training.validation_share import (WHOLE, WINDOWS, split_by_share, validation_split,
                                                      within_tolerance)
from bids_brainbert.training.windows import SpectrogramWindows
from bids_brainbert.workflows.analyses import natural_contrast_order

TINY = ModelConfig(n_freqs=8, d_model=16, n_layers=2, n_heads=2, d_ff=32)


def test_random_weights_are_the_pretraining_start_and_reproducible():
    control = random_weights_model(TINY, seed=9)
    torch.manual_seed(9)                     # what pretraining does before building its model
    start = BrainBertPretrainModel(TINY)
    for (name, a), (_, b) in zip(sorted(control.state_dict().items()), sorted(start.state_dict().items())):
        assert torch.equal(a, b), name
    assert not control.training
    assert state_sha256(control) == state_sha256(random_weights_model(TINY, seed=9))
    assert state_sha256(control) != state_sha256(random_weights_model(TINY, seed=10))
    assert random_label("brainbert") == "brainbertRandom"


def _summary(rng, features, n=20, shift=None):
    rows = []
    for feature in features:
        for k in range(n):
            auc = 0.55 + 0.1 * rng.random() + (shift or {}).get(feature, 0.0)
            rows.append({"subject": "01" if k < n // 2 else "02", "target": "aVsB", "positive_class": "a",
                         "feature": feature, "feature_kind": "embedding" if feature.startswith("bb") else
                         "random-weights" if feature.endswith("Random") else "baseline",
                         "probe": "electrode", "electrode": f"E{k}", "auc_mean": auc})
    rows.append({**rows[0], "probe": "population", "electrode": "n/a", "auc_mean": 0.9})
    return pd.DataFrame(rows)


def test_verdict_pairs_electrodes_and_tests_with_wilcoxon():
    rng = np.random.default_rng(0)
    summary = _summary(rng, ["laplacianSuperlet", "bb", "bbRandom"], shift={"bb": 0.2})
    summary = summary.drop(index=summary.index[(summary["feature"] == "laplacianSuperlet")
                                               & (summary["electrode"] == "E3")])   # one unpaired electrode
    table = verdict(summary)
    assert list(table["feature"]) == ["laplacianSuperlet", "bb", "bbRandom", "laplacianSuperlet"]
    assert list(table["level"]) == ["electrode"] * 3 + ["population"]
    table = table[table["level"] == "electrode"]
    row = table.set_index("feature").loc["bb"]
    electrodes = summary[summary["probe"] == "electrode"].set_index(["feature", "subject", "electrode"])["auc_mean"]
    diff = (electrodes.loc["bb"] - electrodes.loc["laplacianSuperlet"]).dropna()
    assert row["minus_laplacian_n"] == 19 == len(diff)
    assert row["minus_laplacian_median"] == pytest.approx(np.median(diff))
    assert row["minus_laplacian_p"] == pytest.approx(wilcoxon(diff.to_numpy()).pvalue)
    assert row["minus_random_n"] == 20 and row["auc_median"] == pytest.approx(electrodes.loc["bb"].median())
    assert table.set_index("feature").loc["bbRandom", "vs_random"] == "n/a"
    text = " ".join(verdict_sentences(table))
    assert "bb beats laplacianSuperlet" in text and "bb beats bbRandom" in text and "positive class: a" in text
    # no difference -> said so
    same = _summary(np.random.default_rng(1), ["laplacianSuperlet", "bb", "bbRandom"])
    assert "do not differ" in " ".join(verdict_sentences(verdict(same)))


def _population_summary(rng, n_subjects=6, n_electrodes=5):
    """Electrode probes of laplacianSuperlet, bb, bbRandom and, per subject, their concatenated population probes
    and the population model populationBb (which reads bb's electrodes)."""
    kinds = {"laplacianSuperlet": "baseline", "bb": "embedding", "bbRandom": "random-weights",
             "populationBb": "embedding"}
    rows = []
    for s in range(n_subjects):
        ident = {"subject": f"{s + 1:02d}", "target": "aVsB", "positive_class": "a"}
        for feature in ("laplacianSuperlet", "bb", "bbRandom"):
            for e in range(n_electrodes):
                rows.append({**ident, "feature": feature, "feature_kind": kinds[feature], "probe": "electrode",
                             "electrode": f"E{e}", "auc_mean": 0.5 + 0.1 * rng.random()})
        for feature, level in (("laplacianSuperlet", 0.6), ("bb", 0.65), ("bbRandom", 0.55), ("populationBb", 0.8)):
            rows.append({**ident, "feature": feature, "feature_kind": kinds[feature], "probe": "population",
                         "electrode": "n/a", "auc_mean": level + 0.05 * rng.random()})
    return pd.DataFrame(rows)


def test_population_rows_pair_subjects_with_the_laplacian_probe_and_single_electrodes():
    summary = _population_summary(np.random.default_rng(3))
    table = verdict(summary)
    population = table[table["level"] == "population"].set_index("feature")
    assert list(population.index) == ["laplacianSuperlet", "bb", "bbRandom", "populationBb"]
    assert (population["n_subjects"] == 6).all() and population["n_electrodes"].isna().all()
    pop = summary[summary["probe"] == "population"].set_index(["feature", "subject"])["auc_mean"]
    electrodes = summary[summary["probe"] == "electrode"]
    model = population.loc["populationBb"]
    diff = (pop.loc["populationBb"] - pop.loc["laplacianSuperlet"]).to_numpy()
    assert model["vs_laplacian"] == "laplacianSuperlet" and model["minus_laplacian_n"] == 6
    assert model["minus_laplacian_median"] == pytest.approx(np.median(diff))
    assert model["minus_laplacian_p"] == pytest.approx(wilcoxon(diff).pvalue)
    bb = electrodes[electrodes["feature"] == "bb"].groupby("subject")["auc_mean"]
    assert model["vs_electrodes"] == "bb" and model["minus_best_electrode_n"] == 6
    assert model["minus_best_electrode_median"] == pytest.approx(np.median(pop.loc["populationBb"] - bb.max()))
    assert model["minus_median_electrode_median"] == pytest.approx(np.median(pop.loc["populationBb"] - bb.median()))
    assert model["vs_random"] == "n/a"                  # no population model over the random-weights control
    concatenated = population.loc["bb"]                 # the concatenated probe: its random control, same readout
    assert concatenated["vs_random"] == "bbRandom" and concatenated["minus_random_n"] == 6
    assert concatenated["minus_random_median"] == pytest.approx(np.median(pop.loc["bb"] - pop.loc["bbRandom"]))
    # the electrode rows pair electrodes only (30 of them), never a subject's population score
    electrode_bb = table[(table["level"] == "electrode") & (table["feature"] == "bb")].iloc[0]
    assert electrode_bb["minus_laplacian_n"] == 30 and electrode_bb["n_electrodes"] == 30
    text = " ".join(verdict_sentences(table))
    assert "population level" in text and "populationBb beats laplacianSuperlet" in text and "6 subjects" in text
    assert "the best single bb electrode of each subject" in text


def test_too_few_subjects_to_reach_significance_is_said_plainly():
    summary = _population_summary(np.random.default_rng(3))
    three = summary[summary["subject"].isin(sorted(summary["subject"].unique())[:3])]
    text = " ".join(verdict_sentences(verdict(three)))
    # with 3 subjects the exact signed-rank test's smallest two-sided p is 2 / 2**3 = 0.25
    assert "With 3 pairs the test cannot reach p < 0.05 (its smallest p is 0.25)" in text
    assert wilcoxon([0.1, 0.2, 0.3]).pvalue == pytest.approx(0.25)
    # with 6 subjects it can (the full summary's population model beats the Laplacian probe), and nothing is added
    assert "With 6 pairs" not in " ".join(verdict_sentences(verdict(summary)))


@pytest.mark.parametrize("values, expected", [
    (["speech", "nonspeech"], ("speech", "nonspeech")),
    (["rest", "task"], ("task", "rest")),
    (["baseline", "stim"], ("stim", "baseline")),
    (["a", "b"], ("a", "b")),
    (["face", "house"], ("face", "house")),
])
def test_the_positive_class_of_two_values_reads_naturally(values, expected):
    assert natural_contrast_order(values) == expected


def _derivative(folder, name, n_frames, n_channels=2):
    path = folder / f"{name}_desc-superlet_spectrogram.npy"
    np.save(path, np.ones((n_channels, n_frames, 4), np.float32))
    path.with_suffix(".json").write_text(json.dumps({"SamplingFrequency": 10.0, "EdgeFrames": 0}))
    return path


def test_validation_share_stays_near_the_fraction_whatever_the_file_sizes(tmp_path):
    # one long recording (as the demo's 43 %) and several short ones
    files = [_derivative(tmp_path, "sub-01_run-01", 4000)] + [
        _derivative(tmp_path, f"sub-0{i}_run-01", 600) for i in range(2, 8)]
    for seed in range(6):
        train, val, share = split_by_share(files, 0.1, "run", seed, window_s=2.0)
        assert val and train and set(train).isdisjoint(val) and set(train) | set(val) == set(files)
        assert 0.0 < share <= 0.15, (seed, share)
        assert files[0] in train
    # only two recordings, both larger than the bound: whole runs give the smaller one, and say the share
    two = [_derivative(tmp_path, "sub-09_run-01", 1000), _derivative(tmp_path, "sub-09_run-02", 3000)]
    train, val, share = split_by_share(two, 0.1, "run", 0, window_s=2.0)
    assert val == [two[0]] and share == pytest.approx(0.25)
    assert split_by_share(two, 0.0, "run", 0, window_s=2.0) == (sorted(two), [], 0.0)
    # many runs of one size: whole runs are within tolerance, no run is cut
    many = [_derivative(tmp_path, f"sub-1{i}_run-01", 600) for i in range(10)]
    split = validation_split(many, 0.1, "run", 0, window_s=2.0)
    assert split.mode == WHOLE and len(split.val) == 1 and split.share == pytest.approx(0.1)
    assert not split.train_spans and not split.val_spans


@pytest.mark.parametrize("lengths", [(1000, 3000), (4000,), (4000, 900, 1000)])
def test_few_runs_are_split_by_windows_with_a_gap_and_the_share_near_the_fraction(tmp_path, lengths):
    """The demo's case (few runs, one long): whole runs give 25 % (or nothing with a single run); blocks of
    windows at the end of each run give ~10 %, and no training window overlaps or touches a validation window."""
    files = [_derivative(tmp_path, f"sub-09_run-0{i}", n) for i, n in enumerate(lengths)]
    split = validation_split(files, 0.1, "run", 0, window_s=2.0)
    assert split.mode == WINDOWS and split.train == sorted(files) and within_tolerance(split.share, 0.1)
    assert abs(split.share - 0.1) < abs(split_by_share(files, 0.1, "run", 0, 2.0)[2] - 0.1)
    train = SpectrogramWindows(split.train, window_s=2.0, spans=split.train_spans)
    val = SpectrogramWindows(split.val, window_s=2.0, spans=split.val_spans)
    assert split.share == pytest.approx(len(val) / (len(train) + len(val)))
    whole = SpectrogramWindows(files, window_s=2.0)
    for path in files:
        frames = whole.window_frames
        mine = [r for r in train.recordings if r.path == path][0].starts
        held = [r for r in val.recordings if r.path == path][0].starts
        assert held == tuple(sorted(held)) and max(mine) + 2 * frames <= min(held)   # one window of gap at least
        everything = [r for r in whole.recordings if r.path == path][0].starts
        assert set(mine) | set(held) <= set(everything) and len(everything) - len(mine) - len(held) == 1
        assert list(held) == list(range(min(held), max(held) + 1, frames))           # one contiguous block
    # a split by subject keeps subjects whole, whatever the share
    by_subject = validation_split(files, 0.1, "subject", 0, window_s=2.0)
    assert by_subject.mode == WHOLE and not by_subject.val_spans


def test_readout_offset_moves_the_middle_frames_and_finds_a_delayed_response():
    """A 40 Hz burst 0.3 s after each onset: the readout centred there sees it, the one on the onset does not;
    one transform serves every offset."""
    from bids_brainbert.analyses.features import spectrogram_features, spectrogram_features_at_offsets
    from bids_brainbert.params import SpectrogramParams, StftParams
    from bids_brainbert.transforms.spectrogram import spectrogram_front_end

    sfreq = 512.0
    t = np.arange(int(40 * sfreq)) / sfreq
    onsets = np.arange(3.0, 37.0, 3.0)
    burst = np.zeros_like(t)
    for onset in onsets:
        inside = (t >= onset + 0.25) & (t < onset + 0.35)
        burst[inside] = np.sin(2 * np.pi * 40 * t[inside])
    signal = np.stack([burst + 0.01 * np.random.default_rng(0).standard_normal(len(t))])
    front_end = spectrogram_front_end(SpectrogramParams(kind="stft", stft=StftParams(nperseg=64, noverlap=56, n_bins=33)),
                                      sfreq, "test")
    band = np.argmin(np.abs(front_end.freqs_hz - 40))
    grid = spectrogram_features_at_offsets(signal, front_end, onsets, 2.0, 4, (0.0, 0.3))
    at_onset, after = grid[0, 0, :, band], grid[1, 0, :, band]
    assert (after > at_onset + 1.0).all()           # more than 10x the magnitude where the burst is
    np.testing.assert_array_equal(spectrogram_features(signal, front_end, onsets, 2.0, 4, offset_s=0.3), grid[1])
    with pytest.raises(ValueError, match="leaves"):
        spectrogram_features(signal, front_end, onsets, 2.0, 4, offset_s=1.0)


def test_in_pretraining_says_trained_validation_only_or_held_out(tmp_path):
    """A subject whose only recording went to validation was never trained on: the role says so."""
    from bids_brainbert.model import save_checkpoint
    from bids_brainbert.workflows.analyses import model_training_subjects
    from bids_brainbert.workflows.provenance import model_record

    step = tmp_path / "models" / "desc-bb" / "checkpoints" / "step-00000007"
    training = {"train_files": ["/o/sub-01/ieeg/sub-01_task-x_run-01_desc-superlet_spectrogram.npy",
                                "/o/sub-02/ieeg/sub-02_task-x_run-01_desc-superlet_spectrogram.npy"],
                "val_files": ["/o/sub-01/ieeg/sub-01_task-x_run-02_desc-superlet_spectrogram.npy",
                              "/o/sub-03/ieeg/sub-03_task-x_desc-superlet_spectrogram.npy"],
                "n_train_windows": 90, "n_val_windows": 10, "total_steps": 7, "batch_size": 4}
    save_checkpoint(step, random_weights_model(TINY, seed=0), TINY, extra=training)
    for name in ("training_state.json", "training_state.safetensors"):
        (step / name).write_text("{}")
    roles = model_training_subjects(tmp_path, "bb")
    assert roles == {"01": "trained", "02": "trained", "03": "validation only"}
    assert roles.get("04", "held out") == "held out"
    record = model_record(tmp_path, "bb")
    assert record["steps_trained"] == 7 and record["validation_share"] == pytest.approx(0.1)
