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
from bids_brainbert.training.validation_share import split_by_share
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
    assert list(table["feature"]) == ["laplacianSuperlet", "bb", "bbRandom"]
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
    # only two recordings, both larger than the bound: the smaller one, and the share reported
    two = [_derivative(tmp_path, "sub-09_run-01", 1000), _derivative(tmp_path, "sub-09_run-02", 3000)]
    train, val, share = split_by_share(two, 0.1, "run", 0, window_s=2.0)
    assert val == [two[0]] and share == pytest.approx(0.25)
    assert split_by_share(two, 0.0, "run", 0, window_s=2.0) == (sorted(two), [], 0.0)
